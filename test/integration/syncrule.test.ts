// The zero-loss rule of synchronous mode on a real cluster: an acknowledged commit is on the leader
// and sync_standbys followers, and it survives every failover while sync_standbys + 1 + nquorum is
// more than the voting nodes (referees included). `bihactl add` of a voter,
// `biha.set_sync_standbys` and `biha.set_nquorum_and_minnodes` refuse a change that would break it
// (through the leader's controller, which checks before it proposes), unless the DBA accepts the
// risk explicitly: `bihactl add --allow-sync-loss`, or `allow_sync_loss => true` in SQL.
//
// Two data nodes (sync_standbys 1: every commit waits for the other one) and referees 3 and 4
// (voters without PostgreSQL), nquorum 2 / minnodes 2.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestCluster, waitFor } from '../helpers/cluster.js';

const c = new TestCluster({ nodes: 4, basePort: 23500, nquorum: 2, minnodes: 2, syncStandbys: 1, modes: { 3: 'referee', 4: 'referee' } });

let leader = 1;

async function members(): Promise<number[]> {
  return (await c.status(leader)).status.map((s) => s.id).sort((a, b) => a - b);
}

/** Runs one SQL statement in biha_db on the leader as a biha_cluster_management_role member: the value, or the error message. */
async function sql(text: string): Promise<{ ok: true; value: unknown } | { ok: false; error: string }> {
  try {
    const rows = await c.sql<Record<string, unknown>>(leader, text);
    return { ok: true, value: Object.values(rows[0] ?? {})[0] };
  } catch (e) {
    return { ok: false, error: (e as Error).message };
  }
}

async function config(): Promise<{ nquorum: number; minnodes: number; sync_standbys: number }> {
  const rows = await c.sql<{ nquorum: number; minnodes: number; sync_standbys: number }>(leader, 'select nquorum, minnodes, sync_standbys from biha.config()');
  return rows[0]!;
}

function controllerLog(i: number): string {
  return fs.readFileSync(path.join(c.pgdata(i), 'pg_biha', 'log', 'controller.log'), 'utf8');
}

describe('the zero-loss rule of synchronous mode on a real cluster', () => {
  beforeAll(async () => {
    await c.create([], 3);
    leader = await c.waitLeader();
    await waitFor('three members seen by the leader', async () => (await members()).length === 3);
  }, 240_000);

  afterAll(async () => {
    await c.destroy();
  }, 120_000);

  it('a referee that keeps the rule is added: 1 + 1 + 2 > 3 voting nodes', async () => {
    // (checked by beforeAll: node 3 was added) — the configuration the refusals start from
    expect(await config()).toEqual({ nquorum: 2, minnodes: 2, sync_standbys: 1 });
    expect(await members()).toEqual([1, 2, 3]);
  });

  it('bihactl add of a fourth voter is refused (1 + 1 + 2 = 4 voting nodes): exit 3, one line with the numbers and the way out, nothing registered or left behind', async () => {
    const r = await c.add(4);
    expect(r.code, r.stderr).toBe(3);
    expect(r.stdout).toBe('');
    const last = r.stderr.trim().split('\n').pop() ?? '';
    expect(last).toMatch(/^bihactl: .*adding node 4 breaks the zero-loss rule of synchronous mode/);
    expect(last).toContain('1 + 1 + 2 = 4 is not more than the 4 voting nodes');
    expect(last).toMatch(/raise nquorum to 3 first/);
    expect(last).toMatch(/--allow-sync-loss/);
    expect(!fs.existsSync(c.pgdata(4)) || fs.readdirSync(c.pgdata(4)).length === 0).toBe(true);
    expect(await members()).toEqual([1, 2, 3]);
  });

  it('bihactl add --allow-sync-loss adds it, and the leader logs that the risk was accepted', async () => {
    const r = await c.add(4, ['--allow-sync-loss']);
    expect(r.code, r.stderr).toBe(0);
    await c.start(4);
    await waitFor('four members', async () => (await members()).length === 4);
    expect(controllerLog(leader)).toMatch(/accepted with allow_sync_loss.*adding node 4 breaks the zero-loss rule/);
  });

  it('biha.set_sync_standbys keeps a cluster as unsafe as it is, refuses to turn synchronous mode on in it, and takes allow_sync_loss => true', async () => {
    // Already broken (1 + 1 + 2 = 4, 4 voting nodes): setting the same value changes nothing.
    expect(await sql('select biha.set_sync_standbys(1)')).toEqual({ ok: true, value: true });
    // Asynchronous mode is never refused.
    expect(await sql('select biha.set_sync_standbys(0)')).toEqual({ ok: true, value: true });
    // Synchronous mode that would not keep acknowledged commits: refused, with the numbers.
    const r = await sql('select biha.set_sync_standbys(1)');
    expect(r.ok).toBe(false);
    const msg = r.ok ? '' : r.error;
    expect(msg).toMatch(/^biha: sync_standbys 1 breaks the zero-loss rule of synchronous mode/);
    expect(msg).toContain('1 + 1 + 2 = 4 is not more than the 4 voting nodes');
    expect(msg).toContain('raise nquorum to 3 first');
    expect(msg).toContain('select biha.set_sync_standbys(1, allow_sync_loss => true)');
    expect((await config()).sync_standbys).toBe(0);
    // An explicit false is no override.
    expect((await sql('select biha.set_sync_standbys(1, false)')).ok).toBe(false);
    expect(await sql('select biha.set_sync_standbys(1, allow_sync_loss => true)')).toEqual({ ok: true, value: true });
    expect((await config()).sync_standbys).toBe(1);
  });

  it('biha.set_nquorum_and_minnodes refuses to make it worse or to break it, takes a change that makes it safe, and takes allow_sync_loss => true', async () => {
    // Worse than it is (1 + 1 + 1 = 3 against 4): refused.
    const worse = await sql('select biha.set_nquorum_and_minnodes(1, 2)');
    expect(worse.ok).toBe(false);
    expect(worse.ok ? '' : worse.error).toMatch(/nquorum 1 breaks the zero-loss rule.*1 \+ 1 \+ 1 = 3 is not more than the 4 voting nodes.*allow_sync_loss => true/);
    // Safe again: 1 + 1 + 3 > 4.
    expect(await sql('select biha.set_nquorum_and_minnodes(3, 2)')).toEqual({ ok: true, value: true });
    // From safe to broken: refused, and the reference's two-argument call gets the same answer.
    const broken = await sql('select biha.set_nquorum_and_minnodes(2, 2)');
    expect(broken.ok).toBe(false);
    expect(broken.ok ? '' : broken.error).toContain('choose nquorum 3 or more');
    expect(broken.ok ? '' : broken.error).toContain('select biha.set_nquorum_and_minnodes(2, 2, allow_sync_loss => true)');
    expect(await config()).toEqual({ nquorum: 3, minnodes: 2, sync_standbys: 1 });
    // A change to minnodes alone keeps the rule as it is.
    expect(await sql('select biha.set_nquorum_and_minnodes(3, 3)')).toEqual({ ok: true, value: true });
    expect(await sql('select biha.set_nquorum_and_minnodes(2, 2, allow_sync_loss => true)')).toEqual({ ok: true, value: true });
    expect(await config()).toEqual({ nquorum: 2, minnodes: 2, sync_standbys: 1 });
  });

  it('every node applied the accepted changes', async () => {
    for (const i of [1, 2]) {
      await waitFor(`node ${i} to hold nquorum 2, sync_standbys 1`, async () => {
        const s = await c.status(i);
        return s.config.nquorum === 2 && s.config.sync_standbys === 1;
      });
    }
  });
});
