// Fencing on real PostgreSQL: the watchdog fences a leader whose controller died or froze before
// another leader can be elected; a leader without minnodes acknowledgements (LEADER_RO) refuses
// writes from every client, also one that turns the soft fences off in its session.
import * as fs from 'node:fs';
import * as path from 'node:path';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { connectMultiHost, parseMultiHostUri } from '../../src/client/multihost.js';
import { PASSWORD, TestCluster, bihaOk, sleep, waitFor } from '../helpers/cluster.js';
import { useCluster } from '../helpers/suite.js';
import { WriteLoop } from '../helpers/writer.js';

/** A client pinned to one node that inserts as fast as it can and records when each insert was acknowledged. */
class PinnedWriter {
  lastAck = 0;
  acks = 0;
  private readonly loop: WriteLoop;
  constructor(port: number) {
    this.loop = new WriteLoop(
      async () => {
        const c = new pg.Client({ host: '127.0.0.1', port, user: 'biha_replication_user', password: PASSWORD, database: 'biha_db', connectionTimeoutMillis: 1000 });
        c.on('error', () => undefined);
        await c.connect();
        // Walk through both soft fences, as any client could.
        await c.query('set default_transaction_read_only = off; set synchronous_commit = local');
        await c.query('create table if not exists pinned (id bigserial primary key, at timestamptz default clock_timestamp())');
        return c;
      },
      async (c) => {
        await c.query('insert into pinned default values');
        this.lastAck = Date.now();
        this.acks++;
      },
    );
  }
  start(): void {
    this.loop.start();
  }
  async stop(): Promise<void> {
    await this.loop.stop();
  }
}

/** Writes through the multi-host string until one insert succeeds; returns when (ms) and where. */
async function firstWrite(c: TestCluster, notPort: number): Promise<{ at: number; port: number }> {
  return await waitFor('a write on the new leader', async () => {
    const { client, port } = await connectMultiHost(parseMultiHostUri(c.connString()));
    try {
      if (port === notPort) return null;
      await client.query('create table if not exists t2 (id bigserial primary key)');
      await client.query('insert into t2 default values');
      return { at: Date.now(), port };
    } finally {
      await client.end();
    }
  }, 60_000, 10);
}

function log(c: TestCluster, i: number): string {
  return fs.readFileSync(path.join(c.pgdata(i), 'pg_biha', 'log', 'controller.log'), 'utf8');
}

describe('fencing a leader on real PostgreSQL', () => {
  const c = new TestCluster({ nodes: 3, basePort: 16300 });
  useCluster(c, () => {
    // A fenced leader may hold a few records its followers never received (asynchronous mode):
    // it then rejoins through pg_rewind.
    c.setAutorewind(true);
  });

  it('kill -9 of the leader controller: the watchdog fences PostgreSQL before the new leader acknowledges a write', async () => {
    const old = await c.waitLeader();
    const w = new PinnedWriter(c.port(old));
    w.start();
    await waitFor('the pinned client to write', async () => w.acks > 5);
    c.kill9(old, 'controller');
    const first = await firstWrite(c, c.port(old));
    await sleep(500);
    await w.stop();
    expect(first.port).not.toBe(c.port(old));
    expect(w.lastAck).toBeLessThan(first.at);
    expect(log(c, old)).toContain('fenced with an immediate shutdown');
    await bihaOk(['start', `--pgdata=${c.pgdata(old)}`]);
    await c.waitStreaming(old);
  });

  it('SIGSTOP of the leader controller longer than the lease: fenced, and after SIGCONT the node follows', async () => {
    const old = await c.waitLeader();
    const w = new PinnedWriter(c.port(old));
    w.start();
    await waitFor('the pinned client to write', async () => w.acks > 5);
    c.signalController(old, 'SIGSTOP');
    try {
      const first = await firstWrite(c, c.port(old));
      await sleep(500);
      await w.stop();
      expect(w.lastAck).toBeLessThan(first.at);
      expect(log(c, old)).toContain('fenced with an immediate shutdown');
    } finally {
      c.signalController(old, 'SIGCONT');
    }
    await c.waitStreaming(old);
  });

  it('a leader without minnodes acknowledgements stops being writable for every client; writes resume when the followers return', async () => {
    const leader = await c.waitLeader();
    const followers = c.ids().filter((i) => i !== leader);
    for (const f of followers) c.signalController(f, 'SIGSTOP');
    try {
      // LEADER_RO once the lease ends; a moment later CheckQuorum makes it step down altogether.
      await waitFor('the leader to lose write permission', async () => {
        const st = (await c.status(leader)).status.find((x) => x.id === leader)?.state;
        return st !== undefined && st !== 'LEADER_RW';
      }, 30_000, 20);
      // PostgreSQL on the leader is fenced (a standby): writes fail even with the soft fences off.
      const err = await waitFor('writes to be refused', async () => {
        const cl = new pg.Client({ host: '127.0.0.1', port: c.port(leader), user: 'biha_replication_user', password: PASSWORD, database: 'biha_db', connectionTimeoutMillis: 1000 });
        cl.on('error', () => undefined);
        try {
          await cl.connect();
          await cl.query('set default_transaction_read_only = off; set synchronous_commit = local');
          await cl.query('create table if not exists ro_probe (id int)');
          await cl.query('insert into ro_probe values (1)');
          return null;
        } catch (e) {
          return e instanceof Error ? e.message : String(e);
        } finally {
          await cl.end().catch(() => undefined);
        }
      }, 30_000, 50);
      expect(err).toMatch(/read-only|recovery|connect|terminat|shutting down|starting up/i);
      // Reads keep working on the fenced leader.
      const r = await waitFor('reads on the fenced leader', async () => c.sql<{ one: number }>(leader, 'select 1 as one', [], 'biha_db').catch(() => null), 30_000);
      expect(r[0]?.one).toBe(1);
    } finally {
      for (const f of followers) c.signalController(f, 'SIGCONT');
    }
    const back = await c.waitLeader({ timeoutMs: 60_000 });
    expect(c.ids()).toContain(back);
    // LEADER_RW is the raft decision; PostgreSQL's promotion follows within moments.
    await waitFor('writes to resume', async () => {
      const { client } = await connectMultiHost(parseMultiHostUri(c.connString()));
      try {
        await client.query('create table if not exists reopened (id int)');
        await client.query('insert into reopened values (1)');
        return true;
      } finally {
        await client.end();
      }
    }, 30_000);
  });
});
