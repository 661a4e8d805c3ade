// The reference's contracts on a real three-node cluster: biha.set_leader typed on the leader's own
// session returns true to that session; bihactl set-leader on the leader's host; the term column of
// biha.status_v is each node's own term; the SQL and the controller agree on parameter ranges and
// name the SQL parameter in their errors.
import { describe, expect, it } from 'vitest';
import { TestCluster, bihaOk, waitFor } from '../helpers/cluster.js';
import { useCluster } from '../helpers/suite.js';
import { PARAM_RANGES } from '../../src/raft/index.js';

async function sqlError(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
  throw new Error('the statement succeeded');
}

describe('reference contracts', () => {
  const c = new TestCluster({ nodes: 3, basePort: 24600 });
  useCluster(c);

  it("select biha.set_leader(n) on the leader's own session returns true, and the switchover completes", async () => {
    const l = await c.waitLeader();
    for (const i of c.ids()) await c.waitState(i, i === l ? 'LEADER_RW' : 'FOLLOWER');
    const target = c.ids().find((i) => i !== l)!;
    const r = await c.su<{ set_leader: boolean }>(l, `select biha.set_leader(${target})`, 'biha_db');
    expect(r[0]?.set_leader).toBe(true);
    expect(await c.waitLeader({ not: l, timeoutMs: 60_000 })).toBe(target);
    await c.waitState(l, 'FOLLOWER', 60_000);
    // The outcome is visible afterwards on the node that ran it.
    const sw = await waitFor('the switchover record', async () => {
      const rows = await c.su<{ target: number; state: string }>(l, 'select * from biha.last_switchover()', 'biha_db').catch(() => []);
      return rows[0]?.state === 'completed' ? rows[0] : null;
    });
    expect(sw.target).toBe(target);
  });

  it("bihactl set-leader on the leader's host returns once the switchover completed", async () => {
    const l = await c.waitLeader();
    for (const i of c.ids()) await c.waitState(i, i === l ? 'LEADER_RW' : 'FOLLOWER');
    const target = c.ids().find((i) => i !== l)!;
    await bihaOk(['set-leader', `--id=${target}`, `--pgdata=${c.pgdata(l)}`]);
    expect(await c.leader(target)).toBe(target);
  });

  it("biha.status_v shows each node's own term", async () => {
    const l = await c.waitLeader();
    const f = c.ids().find((i) => i !== l)!;
    // Stop one follower, let the term move on with a switchover, start it again: while it is down
    // its last known term is the old one.
    const down = c.ids().find((i) => i !== l && i !== f)!;
    for (const i of c.ids()) await c.waitState(i, i === l ? 'LEADER_RW' : 'FOLLOWER');
    const before = (await c.status(down)).status.find((x) => x.id === down)!.term ?? 0;
    await bihaOk(['stop', `--pgdata=${c.pgdata(down)}`]);
    await bihaOk(['set-leader', `--id=${f}`, `--pgdata=${c.pgdata(l)}`]);
    const rows = await waitFor('the new leader to know every term', async () => {
      const r = await c.su<{ id: number; term: string; state: string }>(f, 'select id, term, state from biha.status_v order by id', 'biha_db');
      const mine = r.find((x) => x.id === f);
      const other = r.find((x) => x.id === l);
      return mine && other && Number(mine.term) > before && Number(other.term) === Number(mine.term) ? r : null;
    });
    expect(Number(rows.find((x) => x.id === down)!.term)).toBe(before);
    await c.start(down);
    await waitFor('the restarted node to report the new term', async () => {
      const r = await c.su<{ id: number; term: string }>(f, 'select id, term from biha.status_v', 'biha_db');
      return Number(r.find((x) => x.id === down)?.term) === Number(r.find((x) => x.id === f)?.term) ? r : null;
    });
  });

  it('the SQL and the controller agree on ranges and name the SQL parameter', async () => {
    const l = await c.waitLeader();
    const cases: Array<[string, string, number, number]> = [
      ['set_heartbeat_max_lost', 'heartbeat_max_lost', ...(PARAM_RANGES.heartbeatMaxLost as [number, number])],
      ['set_heartbeat_send_period', 'heartbeat_send_period', ...(PARAM_RANGES.heartbeatSendPeriod as [number, number])],
    ];
    for (const [fn, name, min, max] of cases) {
      for (const v of [min - 1, max + 1]) {
        const e = await sqlError(c.su(l, `select biha.${fn}(${v})`, 'biha_db'));
        expect(e).toBe(`biha: ${name} must be an integer from ${min} to ${max}, not ${v}`);
      }
    }
    // The controller takes 0 (no limit); so does SQL.
    expect(PARAM_RANGES.noWalOnFollower[0]).toBe(0);
    const r = await c.su<{ ok: boolean }>(l, 'select biha.set_no_wal_on_follower(0) as ok', 'biha_db');
    expect(r[0]?.ok).toBe(true);
    const cfg = await c.su<{ v: number }>(l, 'select no_wal_on_follower as v from biha.config()', 'biha_db');
    expect(cfg[0]?.v).toBe(0);
    await c.su(l, 'select biha.set_no_wal_on_follower(20000)', 'biha_db');
    const neg = await sqlError(c.su(l, 'select biha.set_no_wal_on_follower(-1)', 'biha_db'));
    expect(neg).toBe('biha: no_wal_on_follower must be a non-negative integer, not -1');
  });
});
