// Gray failure in synchronous mode (docs/raft.md, "Giving way"): the leader's PostgreSQL port is
// unreachable from the followers (an nft rule dropping TCP to that port on loopback) while the
// control channel works. A commit waiting for a synchronous standby is blocked; after
// no_wal_on_follower the leader gives way, a new leader takes writes, and the old one, rewound,
// follows it once the cut is gone.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestCluster, waitFor } from '../helpers/cluster.js';

const c = new TestCluster({ nodes: 3, basePort: 29500, nquorum: 2, minnodes: 2, heartbeatSendPeriod: 200, heartbeatMaxLost: 5, syncStandbys: 1 });
const TABLE = 'biha_gray_test';

function nft(args: string[]): void {
  execFileSync('nft', args, { stdio: 'pipe' });
}

/**
 * Drops every TCP packet to and from `port` on this host: the followers' walreceivers (new and
 * established connections) and port probes. Local sessions use the unix socket and still work.
 */
function cutPort(port: number): void {
  nft(['add', 'table', 'inet', TABLE]);
  nft(['add', 'chain', 'inet', TABLE, 'input', '{ type filter hook input priority 0 ; policy accept ; }']);
  nft(['add', 'rule', 'inet', TABLE, 'input', 'tcp', 'dport', String(port), 'drop']);
  nft(['add', 'rule', 'inet', TABLE, 'input', 'tcp', 'sport', String(port), 'drop']);
}

/** One statement in its own session over node i's unix socket; resolves with how it ended. */
async function outcome(i: number, sql: string): Promise<'committed' | 'failed'> {
  const cl = new pg.Client({ host: c.socketDir(i), port: c.port(i), user: 'postgres', database: 'postgres' });
  cl.on('error', () => undefined);
  try {
    await cl.connect();
    await cl.query(sql);
    return 'committed';
  } catch {
    return 'failed';
  } finally {
    await cl.end().catch(() => undefined);
  }
}

function healPort(): void {
  try {
    nft(['delete', 'table', 'inet', TABLE]);
  } catch {
    // not there
  }
}

function controllerLog(i: number): string {
  const f = path.join(c.pgdata(i), 'pg_biha', 'log', 'controller.log');
  return fs.existsSync(f) ? fs.readFileSync(f, 'utf8') : '';
}

describe('a leader whose followers receive no WAL gives way (synchronous mode)', () => {
  beforeAll(async () => {
    healPort();
    await c.create();
    c.setAutorewind(true);
    const l = await c.waitLeader();
    for (const i of c.ids().filter((x) => x !== l)) await c.waitStreaming(i);
  }, 300_000);
  afterAll(async () => {
    healPort();
    await c.destroy();
  }, 120_000);

  it('a write blocked by the cut fails on the old leader, writes go on at a new leader, and the old leader rejoins', async () => {
    const old = await c.waitLeader();
    await c.su(old, 'select biha.set_no_wal_on_follower(2000)', 'biha_db');
    await c.su(old, 'create table gray (id int primary key, note text)');
    await c.su(old, "insert into gray values (1, 'before the cut')");
    cutPort(c.port(old));
    const blocked = outcome(old, "insert into gray values (2, 'during the cut')");
    const next = await c.waitLeader({ not: old, timeoutMs: 120_000 });
    expect(next).not.toBe(old);
    // Its commit waited for a standby that could not receive it; the fence ended the session.
    expect(await blocked).toBe('failed');
    expect(controllerLog(old)).toMatch(new RegExp(`giving leadership to node ${next}`));
    // The write completes on the new leader (the third node streams from it).
    await waitFor('a synchronous write on the new leader', async () => {
      try {
        await c.su(next, "insert into gray values (3, 'after the cut') on conflict do nothing");
        return true;
      } catch {
        return null;
      }
    }, 120_000);
    expect((await c.su<{ n: string }>(next, 'select count(*) as n from gray where id in (1, 3)'))[0]!.n).toBe('2');
    // The old leader's blocked commit never reached the new leader.
    expect(await c.su(next, 'select 1 from gray where id = 2')).toHaveLength(0);
    healPort();
    // Rewound (biha.autorewind), the old leader follows the new one and has its write.
    await c.waitStreaming(old, 180_000);
    await waitFor('the new leader\'s write on the old leader', async () => ((await c.su(old, 'select 1 from gray where id = 3')).length === 1 ? true : null), 60_000);
    expect(await c.su(old, 'select 1 from gray where id = 2')).toHaveLength(0);
  }, 420_000);
});
