// A node added with a vote is a learner until it follows with its data (NodeInfo.learner): it counts
// in no quorum while `bihactl add` copies it, and the leader gives it its vote once it follows.
import { describe, expect, it } from 'vitest';
import { asLearner, electionQuorum, voterIds, zeroLoss, zeroLossViolation } from '../../src/raft/index.js';
import type { ClusterConfig, NodeInfo, PersistentState } from '../../src/raft/index.js';
import { TestCluster, nodeInfo } from './cluster.js';

/** What `bihactl add` writes for a new node: the leader's committed snapshot, no term, no vote. */
function joinFromLeader(c: TestCluster, id: number, from: number): void {
  const snap = c.node(from).persistent().log.snapshot;
  const state: PersistentState = { hard: { term: 0, vote: 0, commit: snap.index }, log: { snapshot: snap, entries: [] } };
  c.disk.set(id, state);
  c.wal.set(id, c.wal.get(from)!);
  c.readies.set(id, []);
  c.start(id);
}

const five = (): TestCluster => new TestCluster([1, 2, 3, 4, 5].map((id) => nodeInfo(id)), { nquorum: 5, minnodes: 1 });

/**
 * Simulator seed 735: nquorum = every voter (5 of 5) and minnodes 1, so a cut-off leader commits
 * configuration entries alone; it replaces node `victim` by node 6 and dies while node 6's data is
 * being copied from it. Node 6 never starts. Returns the old leader.
 */
function replaceThenLoseLeader(c: TestCluster, added: NodeInfo): number {
  c.run(3000);
  const [leader] = c.leaders();
  expect(leader).toBeDefined();
  const victim = leader === 1 ? 2 : 1;
  c.isolate(leader!);
  expect(c.node(leader!).propose({ type: 'remove_node', id: victim }, c.time)).toMatchObject({ ok: true });
  c.settle();
  c.crash(victim);
  const add = c.node(leader!).propose({ type: 'add_node', node: added }, c.time);
  expect(add).toMatchObject({ ok: true });
  c.settle();
  expect(c.node(leader!).persistent().hard.commit).toBe(add.ok ? add.index : -1);
  c.crash(leader!);
  c.cuts.clear();
  c.start(leader!);
  return leader!;
}

describe('learners', () => {
  it('a voter whose copy died with the leader blocks every election when nquorum is every voter', () => {
    const c = five();
    replaceThenLoseLeader(c, nodeInfo(6));
    c.run(20_000);
    expect(c.leaders()).toEqual([]);
  });

  it('a learner whose copy died with the leader leaves the remaining voters a quorum (simulator seed 735)', () => {
    const c = five();
    const old = replaceThenLoseLeader(c, asLearner(nodeInfo(6)));
    c.run(20_000);
    // Only the old leader has the committed removal; the others vote for it on config log.
    expect(c.leaders()).toEqual([old]);
    const cfg = c.node(old).config();
    expect(voterIds(cfg)).toHaveLength(4);
    expect(electionQuorum(cfg)).toBe(4);
    // The same add run again copies from it; the node follows and gets its vote.
    joinFromLeader(c, 6, old);
    c.run(3000);
    expect(voterIds(c.node(old).config())).toContain(6);
    expect(c.node(old).config().nodes.find((n) => n.id === 6)!.learner).toBeUndefined();
    expect(c.node(6).soft().state).toBe('FOLLOWER');
  });

  it('gets its vote only once it is heard, has every committed entry and reports WAL on the leader\'s timeline', () => {
    const c = new TestCluster([1, 2, 3].map((id) => nodeInfo(id)));
    c.run(3000);
    const [leader] = c.leaders();
    const add = c.node(leader!).propose({ type: 'add_node', node: asLearner(nodeInfo(4)) }, c.time);
    expect(add).toMatchObject({ ok: true });
    c.run(3000);
    // Not started yet (its data is being copied): still a learner, and no quorum counts it.
    const during = c.node(leader!).config();
    expect(during.nodes.find((n) => n.id === 4)!.learner).toBe(true);
    expect(voterIds(during)).toEqual([1, 2, 3]);
    // Started on a copy whose WAL is on another timeline (a copy of an older primary): no vote.
    joinFromLeader(c, 4, leader!);
    c.setWal(4, { tli: 7, lsn: 10 });
    c.run(3000);
    expect(c.node(leader!).config().nodes.find((n) => n.id === 4)!.learner).toBe(true);
    c.setWal(4, c.wal.get(leader!)!);
    c.run(3000);
    expect(voterIds(c.node(leader!).config())).toEqual([1, 2, 3, 4]);
  });

  it('a node added with can_vote = false is no learner and never gets a vote', () => {
    expect(asLearner(nodeInfo(4, { canVote: false }))).toEqual(nodeInfo(4, { canVote: false }));
    const c = new TestCluster([1, 2, 3].map((id) => nodeInfo(id)));
    c.run(3000);
    const [leader] = c.leaders();
    expect(c.node(leader!).propose({ type: 'add_node', node: asLearner(nodeInfo(4, { canVote: false })) }, c.time)).toMatchObject({ ok: true });
    c.run(1000);
    joinFromLeader(c, 4, leader!);
    c.run(3000);
    expect(voterIds(c.node(leader!).config())).toEqual([1, 2, 3]);
    expect(c.node(leader!).propose({ type: 'give_vote', id: 4 }, c.time)).toMatchObject({ ok: false, code: 'invalid' });
  });

  it('the zero-loss rule judges a learner as the voter it will be', () => {
    const params = { nquorum: 2, minnodes: 2, heartbeatSendPeriod: 200, heartbeatMaxLost: 5, noWalOnFollower: 0, syncStandbys: 1, serviceMode: false };
    const two: ClusterConfig = { nodes: [nodeInfo(1), nodeInfo(2)], params };
    const withLearner: ClusterConfig = { nodes: [nodeInfo(1), nodeInfo(2), asLearner(nodeInfo(3))], params };
    const withVoter: ClusterConfig = { nodes: [nodeInfo(1), nodeInfo(2), nodeInfo(3)], params };
    expect(zeroLoss(withLearner)).toEqual(zeroLoss(withVoter));
    // 3 voters, nquorum 1, sync_standbys 1: 2 + 1 is not more than 3, whether node 3 learns or votes.
    const q1 = { ...params, nquorum: 1 };
    expect(zeroLossViolation({ nodes: two.nodes, params: q1 }, { type: 'add_node', node: asLearner(nodeInfo(3)) })).toMatch(/zero-loss rule/);
  });
});
