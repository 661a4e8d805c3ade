// A node added with `bihactl add` votes only once it follows with its own copy of the data: until
// then it is a learner (biha.config() shows can_vote f) and counts in no election. With nquorum
// equal to the number of voters, a voter registered but never started would stop every election;
// a learner does not. `bihactl start` of the new node waits until the leader gave it its vote.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestCluster, waitFor } from '../helpers/cluster.js';

const c = new TestCluster({ nodes: 3, basePort: 23800, nquorum: 2, minnodes: 1, heartbeatSendPeriod: 200, heartbeatMaxLost: 5 });

async function canVote(i: number): Promise<boolean> {
  const rows = await c.sql<{ can_vote: boolean }>(i, 'select can_vote from biha.config()');
  return rows[0]!.can_vote;
}

describe('a node added with a vote learns first', () => {
  beforeAll(async () => {
    const r = await c.init();
    if (r.code !== 0) throw new Error(`init failed: ${r.stderr}`);
    await c.start(1);
    await c.waitLeader();
  }, 120_000);
  afterAll(async () => {
    await c.destroy();
  }, 120_000);

  it('bihactl start of an added node returns once it follows and has its vote', async () => {
    const a = await c.add(2);
    expect(a.code, a.stderr).toBe(0);
    const s = await c.start(2);
    expect(s.stderr + s.stdout).toMatch(/node 2 follows the leader and has its vote/);
    expect((await c.status(2)).config.learner).toBe(false);
    // biha.config() reads the status file the controller rewrites about once a second.
    await waitFor('can_vote t in biha.config() on node 2', async () => ((await canVote(2)) ? true : null), 10_000);
  }, 240_000);

  it('a registered node that never started does not stop elections with nquorum = every voter', async () => {
    // Every voter is needed for an election from now on.
    expect((await c.sql(1, 'select biha.set_nquorum_and_minnodes(3, 1)'))).toHaveLength(1);
    const a = await c.add(3);
    expect(a.code, a.stderr).toBe(0);
    // Node 3 is registered (its data copied) but not started: a learner, no voter.
    const leader = await c.waitLeader();
    const other = leader === 1 ? 2 : 1;
    c.kill9(leader);
    // Nodes 1 and 2 are the voters (nquorum 3 counts as 2): the restarted old leader and the
    // other one elect a leader. Were node 3 a voter, no election could ever succeed.
    await c.start(leader);
    const next = await c.waitLeader({ timeoutMs: 60_000 });
    expect([leader, other]).toContain(next);
    const s = await c.start(3);
    expect(s.stderr + s.stdout).toMatch(/node 3 follows the leader and has its vote/);
    expect((await c.status(3)).config.learner).toBe(false);
    await waitFor('every node a voter', async () => ((await Promise.all([1, 2, 3].map(canVote))).every(Boolean) ? true : null), 30_000);
  }, 300_000);
});
