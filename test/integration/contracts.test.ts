// The reference's contracts on a real cluster (three nodes, a fourth added with --use-leader):
// biha.set_leader typed on the leader's own session returns true to that session; bihactl
// set-leader on the leader's host; a switchover whose target cannot catch up returns false and the
// old leader leads on; the term column of biha.status_v is each node's own term; the SQL and the
// controller agree on parameter ranges and name the SQL parameter in their errors;
// biha.reset_node_error() and bihactl reset-node-error on a node really in NODE_ERROR, with
// biha.error_details() read through SQL.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestCluster, bihaOk, bihactl, waitFor } from '../helpers/cluster.js';
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
  const c = new TestCluster({ nodes: 4, basePort: 24600 });
  beforeAll(async () => {
    await c.create([], 3);
    await c.waitLeader();
  }, 180_000);
  afterAll(async () => {
    await c.destroy();
  }, 120_000);

  it('bihactl add --use-leader reads the magic string from the leader over SQL and the node follows', async () => {
    const l = await c.waitLeader();
    const r = await bihactl(['add', '--biha-node-id=4', '--host=127.0.0.1', `--port=${c.port(4)}`, `--use-leader=host=127.0.0.1 port=${c.port(l)}`, `--pgdata=${c.pgdata(4)}`]);
    expect(r.code, r.stderr).toBe(0);
    await c.start(4);
    await c.waitState(4, 'FOLLOWER', 90_000);
    await c.waitStreaming(4);
    const rows = await c.su<{ id: number; state: string }>(l, 'select id, state from biha.status_v order by id', 'biha_db');
    expect(rows.map((x) => x.id)).toEqual([1, 2, 3, 4]);
    expect(rows.find((x) => x.id === 4)?.state).toBe('FOLLOWER');
  });

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
  it('a switchover whose target cannot catch up returns false and the old leader leads on', async () => {
    const l = await c.waitLeader();
    for (const i of c.ids()) await c.waitState(i, i === l ? 'LEADER_RW' : 'FOLLOWER');
    const [t, via] = c.ids().filter((i) => i !== l);
    const pgpass = path.join(c.pgdata(t!), 'pg_biha', 'pgpass');
    // The target stops receiving WAL (and cannot authenticate again meanwhile); the leader writes on.
    const conninfo = (await c.su<{ primary_conninfo: string }>(t!, 'show primary_conninfo'))[0]!.primary_conninfo;
    fs.renameSync(pgpass, `${pgpass}.aside`);
    try {
      await c.su(t!, "alter system set primary_conninfo = ''");
      await c.su(t!, 'select pg_reload_conf()');
      await waitFor('the target to disconnect', async () => {
        const r = await c.su<{ n: string }>(l, `select count(*) as n from pg_stat_replication where application_name = 'biha_node_${t}'`);
        return r[0]?.n === '0';
      });
      await c.su(l, 'create table behind_target (id int)', 'biha_db');
      await c.su(l, 'insert into behind_target select generate_series(1, 1000)', 'biha_db');
      const r = await c.su<{ ok: boolean }>(via!, `select biha.set_leader(${t}) as ok`, 'biha_db');
      expect(r[0]?.ok).toBe(false);
    } finally {
      fs.renameSync(`${pgpass}.aside`, pgpass);
      await c.su(t!, `alter system set primary_conninfo = '${conninfo.replace(/'/g, "''")}'`).catch(() => undefined);
      await c.su(t!, 'select pg_reload_conf()').catch(() => undefined);
    }
    expect(await c.waitLeader()).toBe(l);
    const sw = await waitFor('the failed switchover on the old leader', async () => {
      const rows = await c.su<{ target: number; state: string; detail: string }>(l, 'select * from biha.last_switchover()', 'biha_db').catch(() => []);
      return rows[0]?.state === 'failed' ? rows[0] : null;
    });
    expect(sw.target).toBe(t);
    expect(sw.detail).toMatch(/did not catch up/);
    const rows = await c.su<{ n: string }>(l, 'select count(*) as n from behind_target', 'biha_db');
    expect(rows[0]?.n).toBe('1000');
    await c.waitState(t!, 'FOLLOWER', 90_000);
    await c.waitStreaming(t!);
  });

  /** With autorewind off, a diverged old leader restarted: it is in NODE_ERROR (TIMELINE_DIVERGED). */
  async function oldLeaderInNodeError(): Promise<number> {
    const l0 = await c.waitLeader();
    for (const i of c.ids()) if (i !== l0) await c.waitStreaming(i);
    c.setAutorewind(false);
    const old = await c.divergeAndCrashLeader();
    await c.start(old);
    await c.waitState(old, 'NODE_ERROR', 60_000);
    return old;
  }

  it('biha.reset_node_error() on a node in NODE_ERROR, with biha.error_details() through SQL', async () => {
    const old = await oldLeaderInNodeError();
    const e = await waitFor('error_details through SQL', async () => {
      const rows = await c.su<{ type: string; begin_lsn: string | null; current_tli: string | null; next_tli: string | null }>(old, 'select * from biha.error_details()', 'biha_db').catch(() => []);
      return rows[0]?.type === 'TIMELINE_DIVERGED' ? rows[0] : null;
    });
    expect(e.begin_lsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    expect(Number(e.next_tli)).toBeGreaterThan(Number(e.current_tli));
    // The repair: this node may now rewind itself; then reset the error through SQL.
    c.setAutorewind(true);
    await c.su(old, 'select biha.reset_node_error()', 'biha_db');
    await c.waitState(old, 'FOLLOWER', 90_000);
    const after = await waitFor('NO_ERROR through SQL', async () => {
      const rows = await c.su<{ type: string }>(old, 'select type from biha.error_details()', 'biha_db').catch(() => []);
      return rows[0]?.type === 'NO_ERROR' ? rows[0] : null;
    });
    expect(after.type).toBe('NO_ERROR');
    const t = await c.su<{ t: string | null }>(old, "select to_regclass('only_on_old')::text as t", 'biha_db');
    expect(t[0]?.t).toBeNull();
  });

  it('bihactl reset-node-error on a node in NODE_ERROR', async () => {
    const old = await oldLeaderInNodeError();
    const e = await waitFor('error_details through SQL', async () => {
      const rows = await c.su<{ type: string }>(old, 'select type from biha.error_details()', 'biha_db').catch(() => []);
      return rows[0]?.type === 'TIMELINE_DIVERGED' ? rows[0] : null;
    });
    expect(e.type).toBe('TIMELINE_DIVERGED');
    c.setAutorewind(true);
    await bihaOk(['reset-node-error', `--pgdata=${c.pgdata(old)}`]);
    const st = await c.waitState(old, 'FOLLOWER', 90_000);
    expect(st.error.type).toBe('NO_ERROR');
  });
});
