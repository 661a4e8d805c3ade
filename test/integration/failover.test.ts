// init/add/start of 3 nodes, failover after kill -9 of the leader, rejoin, switchover, clean stop.
import { describe, expect, it } from 'vitest';
import { connectMultiHost, parseMultiHostUri } from '../../src/client/multihost.js';
import { TestCluster, bihaOk, waitFor } from '../helpers/cluster.js';
import { useCluster } from '../helpers/suite.js';

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

  it('the HTTP endpoints of a real leader and follower answer as Patroni\'s do, and follow a switchover', async () => {
    const get = async (i: number, p: string): Promise<{ status: number; body: string }> => {
      const r = await fetch(`http://127.0.0.1:${c.httpPort(i)}${p}`, { signal: AbortSignal.timeout(5000) });
      return { status: r.status, body: await r.text() };
    };
    const codes = async (i: number): Promise<Record<string, number>> => {
      const out: Record<string, number> = {};
      for (const p of ['/primary', '/replica', '/replica?lag=1GB', '/read-only', '/health', '/liveness', '/readiness']) out[p] = (await get(i, p)).status;
      return out;
    };
    const l = await c.waitLeader();
    const f = (l % 3) + 1;
    await c.waitState(f, 'FOLLOWER');
    const leaderCodes = { '/primary': 200, '/replica': 503, '/replica?lag=1GB': 503, '/read-only': 200, '/health': 200, '/liveness': 200, '/readiness': 200 };
    const followerCodes = { '/primary': 503, '/replica': 200, '/replica?lag=1GB': 200, '/read-only': 200, '/health': 200, '/liveness': 200, '/readiness': 200 };
    expect(await waitFor('leader endpoints', async () => { const r = await codes(l); return JSON.stringify(r) === JSON.stringify(leaderCodes) ? r : null; }, 30_000)).toEqual(leaderCodes);
    expect(await waitFor('follower endpoints', async () => { const r = await codes(f); return JSON.stringify(r) === JSON.stringify(followerCodes) ? r : null; }, 30_000)).toEqual(followerCodes);
    expect((await get(f, '/replica?lag=lots')).status).toBe(400);

    const cluster = JSON.parse((await get(f, '/cluster')).body) as { leader_id: number; members: { id: number; state: string }[] };
    expect(cluster.leader_id).toBe(l);
    expect(cluster.members.map((m) => m.id)).toEqual([1, 2, 3]);
    expect(cluster.members.find((m) => m.id === l)?.state).toBe('LEADER_RW');
    const metrics = (await get(l, '/metrics')).body;
    expect(metrics).toMatch(new RegExp(`^biha_state\\{[^}]*state="LEADER_RW"[^}]*\\} 1$`, 'm'));
    expect(metrics).toMatch(new RegExp(`^biha_leader\\{[^}]*leader_id="${l}"[^}]*\\} 1$`, 'm'));
    expect(metrics).toMatch(/^biha_follower_lag_bytes\{[^}]*follower="\d"[^}]*\} \d+$/m);

    // After a switchover the roles of the endpoints swap.
    await bihaOk(['set-leader', `--id=${f}`, `--pgdata=${c.pgdata(l)}`]);
    await waitFor('the new leader\'s /primary', async () => (await get(f, '/primary')).status === 200, 30_000);
    await waitFor('the old leader\'s /replica', async () => (await get(l, '/replica')).status === 200, 60_000);
    expect((await get(l, '/primary')).status).toBe(503);
    await bihaOk(['set-leader', `--id=${l}`, `--pgdata=${c.pgdata(f)}`]);
    await c.waitState(f, 'FOLLOWER');
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
