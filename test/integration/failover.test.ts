// init/add/start of 3 nodes, failover after kill -9 of the leader, rejoin, switchover, clean stop.
import { describe, expect, it } from 'vitest';
import { connectMultiHost, parseMultiHostUri } from '../../src/client/multihost.js';
import { TestCluster, bihaOk, useCluster, waitFor } from '../helpers/cluster.js';

async function insertThroughUri(c: TestCluster, value: string): Promise<number> {
  const { client, port } = await connectMultiHost(parseMultiHostUri(c.connString()));
  try {
    await client.query('create table if not exists t (v text primary key, port int)');
    await client.query('insert into t values ($1, $2)', [value, port]);
    return port;
  } finally {
    await client.end();
  }
}

describe('a 3-node cluster on real PostgreSQL', () => {
  const c = new TestCluster({ nodes: 3, basePort: 16100 });
  useCluster(c);

  it('elects node 1 and every node shows the same cluster', async () => {
    const l = await c.waitLeader();
    expect(l).toBe(1);
    for (const i of c.ids()) {
      const s = await waitFor(`node ${i} to see 3 members`, async () => {
        const st = await c.status(i);
        return st.status.length === 3 && st.status.every((x) => x.leader_id === 1) ? st : null;
      });
      expect(s.status.map((x) => x.id)).toEqual([1, 2, 3]);
    }
    expect(await insertThroughUri(c, 'before')).toBe(c.port(1));
  });

  it('fails over after kill -9 of the leader controller and postmaster, and the old leader rejoins as a follower', async () => {
    const old = await c.waitLeader();
    c.kill9(old, 'both');
    const next = await c.waitLeader({ not: old, timeoutMs: 30_000 });
    expect(next).not.toBe(old);
    const port = await waitFor('a write on the new leader', async () => insertThroughUri(c, 'after-failover').catch(() => null), 30_000);
    expect(port).toBe(c.port(next));
    const rows = await c.sql<{ v: string }>(next, 'select v from t order by v', [], 'biha_db');
    expect(rows.map((r) => r.v)).toEqual(['after-failover', 'before']);
    await bihaOk(['start', `--pgdata=${c.pgdata(old)}`]);
    await c.waitState(old, 'FOLLOWER');
    // The rejoined node streams from the new leader and sees the new row.
    await waitFor('the old leader to replay the new row', async () => {
      const r = await c.sql<{ n: string }>(old, "select count(*) as n from t where v = 'after-failover'", [], 'biha_db');
      return r[0]?.n === '1';
    });
  });

  it('switches over with bihactl set-leader and the new leader accepts writes', async () => {
    const cur = await c.waitLeader();
    const target = (cur % 3) + 1;
    const r = await bihaOk(['set-leader', `--id=${target}`, `--pgdata=${c.pgdata(cur)}`]);
    expect(r.stderr).toContain(`node ${target} is the leader`);
    expect(await c.leader()).toBe(target);
    expect(await insertThroughUri(c, 'after-switchover')).toBe(c.port(target));
    await c.waitState(cur, 'FOLLOWER');
  });

  it('a cleanly stopped leader is replaced and restarts as a follower', async () => {
    const cur = await c.waitLeader();
    await bihaOk(['stop', `--pgdata=${c.pgdata(cur)}`]);
    const next = await c.waitLeader({ not: cur, timeoutMs: 30_000 });
    expect(next).not.toBe(cur);
    await bihaOk(['start', `--pgdata=${c.pgdata(cur)}`]);
    await c.waitState(cur, 'FOLLOWER');
    const rows = await c.sql<{ n: string }>(cur, 'select count(*) as n from t', [], 'biha_db');
    expect(Number(rows[0]?.n)).toBeGreaterThanOrEqual(3);
  });
});
