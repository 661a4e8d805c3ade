// Synchronous mode (--sync-standbys=1 on 3 nodes, nquorum 2: 1 + 1 + 2 > 3): commits wait while no
// standby confirms, and no acknowledged commit is lost over repeated failovers.
import * as fs from 'node:fs';
import * as path from 'node:path';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { connectMultiHost, parseMultiHostUri } from '../../src/client/multihost.js';
import { PASSWORD, TestCluster, bihaOk, sleep, waitFor } from '../helpers/cluster.js';
import { useCluster } from '../helpers/suite.js';
import { WriteLoop } from '../helpers/writer.js';

/** Inserts unique ids through the multi-host string; a commit counts as acknowledged only without a
 * "might not have been replicated" warning. */
class SyncWriter {
  readonly acked: number[] = [];
  private next = 1;
  private warned = false;
  private readonly loop: WriteLoop;
  constructor(c: TestCluster) {
    this.loop = new WriteLoop(
      async () => {
        const client = (await connectMultiHost(parseMultiHostUri(c.connString()))).client;
        client.on('notice', (n) => {
          if (/might not have been replicated/.test(n.detail ?? n.message ?? '')) this.warned = true;
        });
        await client.query('create table if not exists acked (id int primary key)');
        return client;
      },
      async (client) => {
        const id = this.next++;
        this.warned = false;
        await client.query({ text: 'insert into acked values ($1)', values: [id], query_timeout: 5000 } as pg.QueryConfig);
        if (!this.warned) this.acked.push(id);
      },
    );
  }
  get errors(): string[] {
    return this.loop.errors;
  }
  start(): void {
    this.loop.start();
  }
  async stop(): Promise<void> {
    await this.loop.stop();
  }
}

describe('synchronous mode on real PostgreSQL', () => {
  const c = new TestCluster({ nodes: 3, basePort: 16700, syncStandbys: 1 });
  useCluster(c, () => {
    // A crashed leader may hold commits that waited for a standby and were never acknowledged:
    // its WAL diverges, and with autorewind it rejoins by itself.
    c.setAutorewind(true);
  });

  it("sets synchronous_standby_names = 'ANY 1 (...)' over the other nodes on the leader", async () => {
    const l = await c.waitLeader();
    const want = c.ids().filter((i) => i !== l).map((i) => `biha_node_${i}`).join(', ');
    const v = await waitFor('synchronous_standby_names', async () => {
      const r = await c.su<{ v: string }>(l, "select current_setting('synchronous_standby_names') as v");
      return r[0]?.v === `ANY 1 (${want})` ? r[0].v : null;
    });
    expect(v).toBe(`ANY 1 (${want})`);
  });

  it('every follower keeps slots for the other data nodes, so a new leader\'s followers stream at once', async () => {
    const l = await c.waitLeader();
    for (const f of c.ids().filter((i) => i !== l)) {
      const want = c.ids().filter((i) => i !== f).map((i) => `biha_node_${i}`);
      const have = await waitFor(`slots on follower ${f}`, async () => {
        const r = await c.su<{ slot_name: string }>(f, 'select slot_name from pg_replication_slots order by 1');
        const names = r.map((x) => x.slot_name);
        return want.every((w) => names.includes(w)) ? names : null;
      });
      expect(have).toEqual(want);
    }
    // After a failover, the remaining follower streams from the new leader without the 5 s
    // wal_retrieve_retry_interval a missing slot would cost.
    const logs = new Map(c.ids().filter((i) => i !== l).map((i) => {
      const f = path.join(c.pgdata(i), 'pg_biha', 'log', 'postgresql.log');
      return [i, { f, from: fs.statSync(f).size }] as const;
    }));
    c.kill9(l, 'both');
    const next = await c.waitLeader({ not: l, timeoutMs: 30_000 });
    const other = c.ids().find((i) => i !== l && i !== next)!;
    await waitFor(`node ${other} to stream from node ${next}`, async () => {
      const r = await c.su<{ n: number }>(next, `select count(*)::int as n from pg_stat_replication where application_name = 'biha_node_${other}' and state = 'streaming'`);
      return (r[0]?.n ?? 0) > 0;
    }, 30_000, 50);
    const log = logs.get(other)!;
    const since = fs.readFileSync(log.f, 'utf8').slice(log.from);
    expect(since).not.toMatch(/replication slot "biha_node_\d+" does not exist/);
    await bihaOk(['start', `--pgdata=${c.pgdata(l)}`]);
    await c.waitStreaming(l);
  });

  it('a commit waits while no standby confirms it, and completes once one does', async () => {
    const l = await c.waitLeader();
    const followers = c.ids().filter((i) => i !== l);
    await c.sql(l, 'create table if not exists waits (id int)', [], 'biha_db');
    // Freeze the walreceivers (the control channel keeps the leader's lease alive).
    const pids: number[] = [];
    for (const f of followers) {
      const r = await c.su<{ pid: number }>(f, 'select pid from pg_stat_wal_receiver');
      if (r[0]) pids.push(r[0].pid);
    }
    expect(pids.length).toBe(2);
    for (const p of pids) process.kill(p, 'SIGSTOP');
    const cl = new pg.Client({ host: '127.0.0.1', port: c.port(l), user: 'biha_replication_user', password: PASSWORD, database: 'biha_db' });
    await cl.connect();
    try {
      let finished = false;
      const p = cl.query('insert into waits values (1)').then(() => (finished = true));
      await sleep(1500);
      expect(finished).toBe(false);
      for (const pid of pids) process.kill(pid, 'SIGCONT');
      await p;
      expect(finished).toBe(true);
    } finally {
      for (const pid of pids) try { process.kill(pid, 'SIGCONT'); } catch { /* gone */ }
      await cl.end();
    }
  });

  it('no acknowledged commit is lost over three failovers', async () => {
    for (let round = 0; round < 3; round++) {
      const w = new SyncWriter(c);
      w.start();
      await waitFor('acknowledged writes', async () => w.acked.length > 20).catch((e: unknown) => {
        throw new Error(`${String(e)}; last errors: ${w.errors.slice(-3).join(' | ')}`);
      });
      const old = await c.waitLeader();
      c.kill9(old, 'both');
      const next = await c.waitLeader({ not: old, timeoutMs: 30_000 });
      const before = w.acked.length;
      await waitFor('writes on the new leader', async () => w.acked.length > before + 10, 90_000).catch((e: unknown) => {
        throw new Error(`${String(e)}; last errors: ${w.errors.slice(-3).join(' | ')}`);
      });
      await w.stop();
      const rows = await c.sql<{ id: number }>(next, 'select id from acked', [], 'biha_db');
      const have = new Set(rows.map((r) => r.id));
      const lost = w.acked.filter((id) => !have.has(id));
      expect(lost).toEqual([]);
      await bihaOk(['start', `--pgdata=${c.pgdata(old)}`]);
      await c.waitStreaming(old);
      await c.sql(next, 'truncate acked', [], 'biha_db');
    }
  });
});
