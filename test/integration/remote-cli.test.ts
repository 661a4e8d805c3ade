// bihactl as a remote client of a real 3-node cluster: every request goes to a node's HTTP port
// (--url), none through a data directory. The nodes get HTTP credentials at init/add (--http-user,
// password from BIHA_HTTP_PASSWORD); the changes made over HTTP are checked where they land: the
// leader, biha.config() in SQL, the timeline history.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bihactl, TestCluster, waitFor } from '../helpers/cluster.js';
import type { CliResult } from '../helpers/cluster.js';

const c = new TestCluster({ nodes: 3, basePort: 25500, nquorum: 2, minnodes: 2, heartbeatSendPeriod: 200, heartbeatMaxLost: 5 });
const USER = 'admin';
const HTTP_PASSWORD = 'remote-secret-1';
/** In this suite's port range, with nothing listening. */
const DEAD_URL = 'http://127.0.0.1:25599';

const url = (i: number): string => `http://127.0.0.1:${c.httpPort(i)}`;

/** bihactl with the right HTTP password (or `password`). */
async function remote(args: string[], password = HTTP_PASSWORD): Promise<CliResult> {
  return await bihactl(args, { BIHA_HTTP_PASSWORD: password }, 240_000);
}

function json<T>(r: CliResult): T {
  expect(r.code, r.stderr + r.stdout).toBe(0);
  return JSON.parse(r.stdout) as T;
}

interface ViewDoc {
  leader_id: number | null;
  nodeId: number;
  members: Array<{ id: number; state: string; role: string }>;
}

interface HistoryDoc {
  timeline: number;
  switch_lsn: string;
  time: string | null;
  new_leader: number | null;
  reason: string | null;
}

describe('bihactl remote mode', () => {
  beforeAll(async () => {
    process.env['BIHA_HTTP_PASSWORD'] = HTTP_PASSWORD;
    try {
      const r = await c.init([`--http-user=${USER}`]);
      if (r.code !== 0) throw new Error(`init failed: ${r.stderr}`);
      await c.start(1);
      for (const i of [2, 3]) {
        const a = await c.add(i, [`--http-user=${USER}`]);
        if (a.code !== 0) throw new Error(`add ${i} failed: ${a.stderr}`);
        await c.start(i);
      }
    } finally {
      delete process.env['BIHA_HTTP_PASSWORD'];
    }
    await c.waitLeader();
    for (const i of [2, 3]) await c.waitStreaming(i);
  }, 300_000);
  afterAll(async () => {
    await c.destroy();
  }, 120_000);

  it('status --url --json is the status document of the node that answers, the first live URL', async () => {
    const leader = await c.waitLeader();
    const v = json<ViewDoc>(await remote(['status', `--url=${DEAD_URL}`, `--url=${url(3)}`, '--json']));
    expect(v.nodeId).toBe(3);
    expect(v.leader_id).toBe(leader);
    expect(v.members.map((m) => m.id).sort()).toEqual([1, 2, 3]);
    expect(v.members.find((m) => m.id === leader)?.role).toBe('leader');
    const table = await remote(['status', `--url=${url(2)}`]);
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(new RegExp(`seen from node 2\\): leader ${leader}, term \\d+`));
  }, 120_000);

  it('a wrong password is refused with exit 6 and one line, and nothing changes', async () => {
    const leader = await c.waitLeader();
    const target = leader === 1 ? 2 : 1;
    const r = await remote(['set-leader', String(target), `--url=${url(leader)}`, `--http-user=${USER}`, '--force'], 'wrong-password');
    expect(r.code, r.stderr).toBe(6);
    expect(r.stdout).toBe('');
    const lines = r.stderr.split('\n').filter((l) => l !== '');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^bihactl: http:\/\/127\.0\.0\.1:\d+ refused the credentials of --http-user=admin/);
    const j = await remote(['config', 'set', 'heartbeat_max_lost=9', `--url=${url(leader)}`, `--http-user=${USER}`, '--json'], 'wrong-password');
    expect(j.code).toBe(6);
    expect(JSON.parse(j.stdout)).toMatchObject({ code: 'unauthorized' });
    expect(await c.leader()).toBe(leader);
    const cfg = await c.su<{ v: number }>(leader, 'select heartbeat_max_lost as v from biha.config()', 'biha_db');
    expect(cfg[0]?.v).toBe(5);
  }, 120_000);

  it('a switchover scheduled with --scheduled-at is cancelled with --cancel on the node that took it', async () => {
    const leader = await c.waitLeader();
    const target = leader === 1 ? 2 : 1;
    const at = new Date(Date.now() + 3600_000).toISOString();
    const took = json<{ candidate: number; scheduled_at: string }>(
      await remote(['set-leader', String(target), `--scheduled-at=${at}`, `--url=${url(leader)}`, `--http-user=${USER}`, '--force', '--json']),
    );
    expect(took).toMatchObject({ candidate: target, scheduled_at: at });
    const cancelled = json<{ message: string }>(await remote(['set-leader', '--cancel', `--url=${url(leader)}`, `--http-user=${USER}`, '--json']));
    expect(cancelled.message).toMatch(new RegExp(`switchover to node ${target} scheduled at .* is cancelled`));
    const again = await remote(['set-leader', '--cancel', `--url=${url(leader)}`, `--http-user=${USER}`]);
    expect(again.code, again.stderr).toBe(3);
    expect(again.stderr).toMatch(/^bihactl: http:\/\/127\.0\.0\.1:\d+: no switchover is scheduled on this node\n$/);
    expect(await c.leader()).toBe(leader);
  }, 120_000);

  it('set-leader --url --force switches the leadership over, asked on a follower', async () => {
    const leader = await c.waitLeader();
    const target = leader === 3 ? 2 : 3;
    const asked = [1, 2, 3].find((i) => i !== leader && i !== target)!;
    const r = json<{ leader: number; message: string }>(await remote(['set-leader', String(target), `--url=${url(asked)}`, `--http-user=${USER}`, '--force', '--json']));
    expect(r.leader).toBe(target);
    expect(await c.waitLeader({ not: leader, timeoutMs: 90_000 })).toBe(target);
    const s = json<ViewDoc>(await remote(['status', `--url=${url(target)}`, '--json']));
    expect(s.leader_id).toBe(target);
  }, 240_000);

  it('history --json lists the timeline switches oldest first, the switchover last', async () => {
    const leader = await c.waitLeader();
    const h = await waitFor('the switchover in GET /history', async () => {
      const r = await remote(['history', `--url=${url(leader)}`, '--json']);
      if (r.code !== 0) return null;
      const doc = JSON.parse(r.stdout) as HistoryDoc[];
      return doc.length > 0 && doc[doc.length - 1]!.new_leader === leader ? doc : null;
    }, 60_000);
    const timelines = h.map((e) => e.timeline);
    expect([...timelines].sort((a, b) => a - b)).toEqual(timelines);
    expect(h[h.length - 1]).toMatchObject({ new_leader: leader, reason: 'switchover' });
    expect(h[h.length - 1]!.switch_lsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    // The same history from a follower's data directory, through its local socket.
    const follower = leader === 1 ? 2 : 1;
    expect(json<HistoryDoc[]>(await remote(['history', `--pgdata=${c.pgdata(follower)}`, '--json']))).toEqual(h);
    const table = await remote(['history', `--url=${url(leader)}`]);
    expect(table.stdout.split('\n')[0]).toMatch(/^Timeline\s+Switch LSN\s+Time\s+New leader\s+Reason$/);
  }, 120_000);

  it('config set over HTTP is what biha.config() shows in SQL', async () => {
    const leader = await c.waitLeader();
    const follower = leader === 1 ? 2 : 1;
    const after = json<Record<string, unknown>>(await remote(['config', 'set', 'heartbeat_max_lost=7', `--url=${url(follower)}`, `--http-user=${USER}`, '--json']));
    expect(after['heartbeat_max_lost']).toBe(7);
    await waitFor('heartbeat_max_lost 7 in biha.config() on every node', async () => {
      for (const i of [1, 2, 3]) {
        const r = await c.su<{ v: number }>(i, 'select heartbeat_max_lost as v from biha.config()', 'biha_db');
        if (r[0]?.v !== 7) return null;
      }
      return true;
    }, 30_000);
    const shown = json<Record<string, unknown>>(await remote(['config', `--url=${url(leader)}`, '--json']));
    expect(shown).toMatchObject({ heartbeat_max_lost: 7, nquorum: 2, minnodes: 2, service_mode: false });
    expect(json<Record<string, unknown>>(await remote(['config', `--pgdata=${c.pgdata(follower)}`, '--json']))).toEqual(shown);
    const bad = await remote(['config', 'set', 'heartbeat_max_lost=1', `--url=${url(leader)}`, `--http-user=${USER}`, '--json']);
    expect(bad.code).toBe(2);
    expect(JSON.parse(bad.stdout)).toMatchObject({ error: expect.stringMatching(/heartbeat_max_lost/) as unknown });
  }, 120_000);
});
