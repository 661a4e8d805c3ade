// Giving way (docs/raft.md): in synchronous mode a leader whose followers hear its heartbeats but
// receive none of its WAL transfers leadership after no_wal_on_follower, to a follower with the most
// WAL that the others can replicate from; never in asynchronous mode, never before its PostgreSQL
// is fenced, and a leader that just took over does not give way again at once.
import { describe, expect, it } from 'vitest';
import { decideGiveWay } from '../../src/raft/index.js';
import type { ClusterParams, GiveWayFollower, NodeId } from '../../src/raft/index.js';
import { TestCluster, nodeInfo } from './cluster.js';

const LIMIT = 2000;

function cluster(ids: number[], params: Partial<ClusterParams>): TestCluster {
  return new TestCluster(ids.map((id) => nodeInfo(id)), { noWalOnFollower: LIMIT, ...params });
}

/** The single leader after a quiet start. */
function leaderOf(c: TestCluster): number {
  c.run(3000);
  const ls = c.leaders();
  expect(ls).toHaveLength(1);
  return ls[0]!;
}

/**
 * Run `ms` while the followers in `stalled` report no WAL from `leader` (counting from now) and
 * the PostgreSQL ports in `reach`; the others report WAL flowing.
 */
function stall(c: TestCluster, leader: number, stalled: readonly number[], reach: ReadonlyMap<number, readonly NodeId[]>, ms: number): void {
  const from = c.time;
  for (let t = 0; t < ms; t += 50) {
    for (const [id, n] of c.nodes) {
      if (!n || id === leader) continue;
      n.setNoWal(leader, stalled.includes(id) ? c.time - from : 0, reach.get(id) ?? []);
    }
    c.run(50);
  }
}

function timeoutNowSent(c: TestCluster, from: number): boolean {
  return c.readies.get(from)!.some((r) => r.messages.some((m) => m.type === 'timeout_now'));
}

/** Three nodes: the leader ahead (its blocked commits), followers a and b behind it. */
function threeStuck(params: Partial<ClusterParams> = {}): { c: TestCluster; leader: number; a: number; b: number } {
  const c = cluster([1, 2, 3], { syncStandbys: 1, ...params });
  const leader = leaderOf(c);
  const [a, b] = [1, 2, 3].filter((id) => id !== leader) as [number, number];
  c.setWal(leader, { tli: 1, lsn: 100 });
  c.setWal(a, { tli: 1, lsn: 60 });
  c.setWal(b, { tli: 1, lsn: 50 });
  return { c, leader, a, b };
}

describe('giving way when the followers receive no WAL', () => {
  it('starts a transfer in synchronous mode once a follower reported no WAL for no_wal_on_follower, to the follower with the most WAL', () => {
    const { c, leader, a, b } = threeStuck();
    const reach = new Map([[a, [b]], [b, [a]]]);
    stall(c, leader, [a, b], reach, LIMIT - 200);
    expect(c.node(leader).soft().transferTarget).toBe(0);
    stall(c, leader, [a, b], reach, 400);
    // The stall restarted counting at the second call: it passes the limit only now.
    expect(c.node(leader).soft().transferTarget).toBe(0);
    stall(c, leader, [a, b], reach, LIMIT + 400);
    const s = c.node(leader).soft();
    expect(s.transferTarget).toBe(a);
    expect(s.givingWay).toBe(true);
    expect(s.writable).toBe(false);
    expect(c.node(leader).givingWay()).toMatchObject({ target: a });
    expect(c.node(leader).givingWay()!.noWalMs).toBeGreaterThanOrEqual(LIMIT);
  });

  it('sends TimeoutNow only once its PostgreSQL is fenced; the target wins with the other follower, without the old leader', () => {
    const { c, leader, a, b } = threeStuck();
    const reach = new Map([[a, [b]], [b, [a]]]);
    stall(c, leader, [a, b], reach, LIMIT + 500);
    expect(c.node(leader).soft().transferTarget).toBe(a);
    c.run(1000);
    expect(timeoutNowSent(c, leader)).toBe(false);
    expect(c.leaders()).toEqual([leader]);
    c.node(leader).setLocalFenced(true);
    c.run(1000);
    expect(timeoutNowSent(c, leader)).toBe(true);
    expect(c.leaders()).toEqual([a]);
    // The old leader has WAL past the target's (the blocked commits): it refused its vote.
    expect(c.node(leader).soft().leaderId).toBe(a);
  });

  it('does nothing in asynchronous mode: the leader keeps taking writes', () => {
    const { c, leader, a, b } = threeStuck({ syncStandbys: 0 });
    stall(c, leader, [a, b], new Map([[a, [b]], [b, [a]]]), 3 * LIMIT);
    expect(c.node(leader).soft()).toMatchObject({ transferTarget: 0, writable: true, role: 'leader' });
  });

  it('does nothing with no_wal_on_follower 0', () => {
    const { c, leader, a, b } = threeStuck({ noWalOnFollower: 0 });
    stall(c, leader, [a, b], new Map([[a, [b]], [b, [a]]]), 3 * LIMIT);
    expect(c.node(leader).soft().transferTarget).toBe(0);
  });

  it('does not give way when the others cannot open the PostgreSQL port of the follower with the most WAL', () => {
    const { c, leader, a, b } = threeStuck();
    // b cannot reach a; a can reach b, but b has less WAL than a.
    stall(c, leader, [a, b], new Map([[a, [b]], [b, []]]), 3 * LIMIT);
    expect(c.node(leader).soft().transferTarget).toBe(0);
  });

  it('among followers with equal WAL, picks one the others can replicate from, before priority', () => {
    const c = new TestCluster([nodeInfo(1, { priority: 5 }), nodeInfo(2, { priority: 9 }), nodeInfo(3, { priority: 1 })], { noWalOnFollower: LIMIT, syncStandbys: 1 });
    const leader = leaderOf(c);
    const [a, b] = [1, 2, 3].filter((id) => id !== leader) as [number, number];
    c.setWal(leader, { tli: 1, lsn: 100 });
    c.setWal(a, { tli: 1, lsn: 50 });
    c.setWal(b, { tli: 1, lsn: 50 });
    // Nobody reaches a; a reaches b.
    stall(c, leader, [a, b], new Map([[a, [b]], [b, []]]), LIMIT + 500);
    expect(c.node(leader).soft().transferTarget).toBe(b);
  });

  it('does not give way while enough followers receive WAL (5 nodes, 2 synchronous standbys)', () => {
    const c = cluster([1, 2, 3, 4, 5], { syncStandbys: 2, nquorum: 3, minnodes: 3 });
    const leader = leaderOf(c);
    const f = [1, 2, 3, 4, 5].filter((id) => id !== leader);
    c.setWal(leader, { tli: 1, lsn: 100 });
    for (const id of f) c.setWal(id, { tli: 1, lsn: 50 });
    const reach = new Map(f.map((id) => [id, f.filter((x) => x !== id)]));
    // Two followers receive WAL: commits are acknowledged, one stalled follower changes nothing.
    stall(c, leader, [f[2]!, f[3]!], reach, 3 * LIMIT);
    expect(c.node(leader).soft().transferTarget).toBe(0);
    // Only one receives: commits cannot be acknowledged.
    stall(c, leader, [f[1]!, f[2]!, f[3]!], reach, LIMIT + 500);
    expect(c.node(leader).soft().transferTarget).not.toBe(0);
  });

  it('a leader that gave way does not campaign for no_wal_on_follower when the target fails to win', () => {
    const { c, leader, a, b } = threeStuck();
    stall(c, leader, [a, b], new Map([[a, [b]], [b, [a]]]), LIMIT + 500);
    // The target's vote requests reach only the old leader, which refuses them (it has more WAL).
    c.cuts.add(`${a}->${b}`);
    c.node(leader).setLocalFenced(true);
    c.run(20);
    expect(timeoutNowSent(c, leader)).toBe(true);
    expect(c.node(leader).soft().role).toBe('follower');
    const since = c.time;
    let campaigned = false;
    while (c.time - since < LIMIT - 100) {
      c.run(50);
      if (c.node(leader).soft().role !== 'follower') campaigned = true;
    }
    // Without the hold it would have won: a and b grant it their votes (it has the most WAL).
    expect(campaigned).toBe(false);
    expect(c.leaders()).toEqual([]);
    c.cuts.clear();
    c.run(3000);
    expect(c.leaders()).toHaveLength(1);
  });

  it('a leader that took over this way does not give way again before another no_wal_on_follower', () => {
    const { c, leader, a, b } = threeStuck();
    stall(c, leader, [a, b], new Map([[a, [b]], [b, [a]]]), LIMIT + 500);
    c.node(leader).setLocalFenced(true);
    for (let t = 0; t < 1000 && c.node(a).soft().role !== 'leader'; t += 10) c.run(10);
    expect(c.leaders()).toEqual([a]);
    // The new leader's followers report no WAL at once, with reports that already exceed the limit.
    c.setWal(a, { tli: 2, lsn: 200 });
    const started = c.time;
    const old = leader;
    for (let t = 0; t < LIMIT - 300; t += 50) {
      c.node(old).setNoWal(a, LIMIT * 3, [b]);
      c.node(b).setNoWal(a, LIMIT * 3, [old]);
      c.run(50);
      expect(c.node(a).soft().transferTarget).toBe(0);
    }
    expect(c.time - started).toBeLessThan(LIMIT);
    // Once the new leader has led for no_wal_on_follower, the same reports make it give way.
    for (let t = 0; t < 1000; t += 50) {
      c.node(old).setNoWal(a, LIMIT * 3, [b]);
      c.node(b).setNoWal(a, LIMIT * 3, [old]);
      c.run(50);
    }
    expect(c.node(a).soft().transferTarget).toBe(old);
  });
});

describe('decideGiveWay', () => {
  const params: ClusterParams = {
    nquorum: 2, minnodes: 2, heartbeatSendPeriod: 200, heartbeatMaxLost: 5, noWalOnFollower: LIMIT, syncStandbys: 1, serviceMode: false,
  };
  const f = (id: number, lsn: number, noWalMs: number, pgReach: number[], over: Partial<GiveWayFollower> = {}): GiveWayFollower => ({
    node: nodeInfo(id), live: true, inError: false, wal: { tli: 1, lsn }, noWalMs, pgReach, mayLead: true, votes: true, ...over,
  });

  it('needs an election quorum of live voters besides the leader', () => {
    expect(decideGiveWay(params, 2, [f(2, 50, LIMIT, [3]), f(3, 40, LIMIT, [2], { live: false })])).toMatchObject({ give: false });
    expect(decideGiveWay(params, 2, [f(2, 50, LIMIT, [3]), f(3, 40, LIMIT, [2])])).toMatchObject({ give: true, target: 2 });
  });

  it('ignores the WAL of a follower in NODE_ERROR when it picks the follower with the most WAL', () => {
    const err = f(4, 900, 0, [], { live: false, inError: true });
    expect(decideGiveWay(params, 2, [f(2, 50, LIMIT, [3]), f(3, 40, LIMIT, [2]), err])).toMatchObject({ give: true, target: 2 });
  });

  it('needs another live follower that can replicate from the target', () => {
    // Node 3 is in NODE_ERROR: node 2 would lead with no synchronous standby at all.
    const err = f(3, 40, 0, [], { live: false, inError: true });
    expect(decideGiveWay(params, 1, [f(2, 50, LIMIT, [3]), err])).toMatchObject({ give: false });
  });

  it('never targets a follower that may not lead', () => {
    expect(decideGiveWay(params, 2, [f(2, 50, LIMIT, [3], { mayLead: false }), f(3, 40, LIMIT, [2])])).toMatchObject({ give: false });
  });
});
