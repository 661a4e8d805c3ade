// Direct unit tests of the safety rules of the raft core (votes, eligibility, fencing, lease).
import { describe, expect, it } from 'vitest';
import { RaftNode, DEFAULT_PARAMS, joiningState, leaseMs } from '../../src/raft/index.js';
import type { Message, PersistentState, VoteMsg, VoteRespMsg } from '../../src/raft/index.js';
import { TestCluster, nodeInfo } from './cluster.js';
import { seededRand } from './scenario.js';

const three = (): TestCluster => new TestCluster([nodeInfo(1), nodeInfo(2), nodeInfo(3)]);

function voteReq(from: number, to: number, term: number, over: Partial<VoteMsg> = {}): VoteMsg {
  return { type: 'vote', from, to, term, lastIndex: 1, lastTerm: 1, wal: { tli: 1, lsn: 0 }, priority: 0, transfer: false, ...over };
}

function responses(msgs: readonly Message[]): VoteRespMsg[] {
  return msgs.filter((m): m is VoteRespMsg => m.type === 'vote_resp' || m.type === 'prevote_resp');
}

describe('votes', () => {
  it('never votes twice in a term, across a restart (Raft §5.2, vote in hard state)', () => {
    const c = three();
    const n2 = c.node(2);
    n2.tick(c.time);
    n2.step(voteReq(1, 2, 2), c.time);
    const rd = n2.ready();
    expect(rd.hardState).toEqual({ term: 2, vote: 1, commit: 1 });
    expect(responses(rd.messages)).toMatchObject([{ to: 1, term: 2, reject: false }]);
    const persisted: PersistentState = { hard: rd.hardState!, log: rd.log ?? n2.persistent().log };

    // Restart long after (no leader stickiness) and ask again for the same term.
    const later = c.time + 60_000;
    const again = new RaftNode({ id: 2, state: persisted, rand: seededRand(2), now: later - 10_000 });
    again.tick(later);
    again.ready();
    again.step(voteReq(3, 2, 2), later);
    again.step(voteReq(1, 2, 2), later);
    const rs = responses(again.ready().messages);
    expect(rs).toMatchObject([
      { to: 3, reject: true, reason: 'already_voted' },
      { to: 1, reject: false },
    ]);
    expect(again.persistent().hard.vote).toBe(1);
  });

  it('refuses candidates behind in WAL, behind in config log, or not allowed to lead', () => {
    const c = new TestCluster([nodeInfo(1), nodeInfo(2), nodeInfo(3, { canBeLeader: false })]);
    c.setWal(2, { tli: 1, lsn: 5000 });
    const n2 = c.node(2);
    n2.tick(c.time);
    n2.step(voteReq(1, 2, 2, { wal: { tli: 1, lsn: 4999 } }), c.time);
    n2.step(voteReq(1, 2, 2, { wal: { tli: 1, lsn: 6000 }, lastIndex: 0, lastTerm: 0 }), c.time);
    n2.step(voteReq(3, 2, 2, { wal: { tli: 1, lsn: 9000 } }), c.time);
    n2.step(voteReq(9, 2, 2, { wal: { tli: 1, lsn: 9000 } }), c.time);
    const rs = responses(n2.ready().messages);
    expect(rs.map((r) => r.reason)).toEqual(['wal_behind', 'config_log_behind', 'candidate_not_eligible', 'candidate_not_eligible']);
    expect(rs[1]?.catchUp?.snapshot.index).toBe(1);
    expect(n2.persistent().hard.vote).toBe(0);
  });

  it('keeps voting for the current leader out of reach for T after hearing it, except for transfers', () => {
    const c = three();
    c.run(3000);
    const [leader] = c.leaders();
    expect(leader).toBeDefined();
    const f = [1, 2, 3].find((id) => id !== leader)!;
    const other = [1, 2, 3].find((id) => id !== leader && id !== f)!;
    const term = c.node(f).soft().term;
    const n = c.node(f);
    n.step(voteReq(other, f, term + 1, { lastIndex: 99, lastTerm: 99, wal: { tli: 9, lsn: 0 } }), c.time);
    expect(responses(n.ready().messages)).toMatchObject([{ reject: true, reason: 'leader_alive' }]);
    expect(n.soft().term).toBe(term); // a refused disruptive vote does not raise the term
    n.step(voteReq(other, f, term + 1, { lastIndex: 99, lastTerm: 99, wal: { tli: 9, lsn: 0 }, transfer: true }), c.time);
    expect(responses(n.ready().messages)).toMatchObject([{ reject: false }]);
  });

  it('a restarted node waits T before voting (it may have acked the old leader just before)', () => {
    const c = three();
    c.time += 50_000;
    c.crash(2);
    c.start(2);
    const n2 = c.node(2);
    n2.tick(c.time + 100);
    n2.step(voteReq(1, 2, 2), c.time + 100);
    expect(responses(n2.ready().messages)).toMatchObject([{ reject: true, reason: 'leader_alive' }]);
    n2.step(voteReq(1, 2, 2), c.time + 1000);
    expect(responses(n2.ready().messages)).toMatchObject([{ reject: false }]);
  });
});

describe('a vote request that arrives after its term has a leader', () => {
  it('is refused by a follower that learned the leader of its term without voting (etcd raft: no vote once a leader is known)', () => {
    // Simulator seed 1255 (5 nodes): node 4's vote request of its own (transfer) election in term 6
    // reached node 1 only after node 1 followed node 4 in term 6 and took WAL of its new timeline.
    const config = { nodes: [nodeInfo(1), nodeInfo(2), nodeInfo(3)], params: DEFAULT_PARAMS };
    const snapshot = { index: 4, term: 5, config, meta: {} };
    const n = new RaftNode({ id: 3, state: { hard: { term: 5, vote: 0, commit: 4 }, log: { snapshot, entries: [] } }, rand: seededRand(3), now: 0 });
    // The position its raft core last polled; its PostgreSQL already streams the leader's newer WAL.
    n.setWal({ tli: 5, lsn: 254 });
    n.tick(10);
    n.ready();
    n.step({ type: 'app', from: 2, to: 3, term: 5, prevIndex: 4, prevTerm: 5, entries: [], commit: 4, seq: 1, peers: [], wal: { tli: 6, lsn: 261 } }, 10);
    expect(n.soft().leaderId).toBe(2);
    n.ready();
    n.step(voteReq(2, 3, 5, { lastIndex: 4, lastTerm: 5, transfer: true, wal: { tli: 5, lsn: 257 } }), 20);
    const rd = n.ready();
    expect(responses(rd.messages)).toMatchObject([{ type: 'vote_resp', reject: true }]);
    expect(rd.hardState?.vote ?? 0).toBe(0);
    expect(rd.fenceWal).toBeUndefined();
  });
});

describe('votes of nodes that do not know their membership', () => {
  it('a node without any configuration (bihactl add) votes at once, on config log and WAL', () => {
    const n = new RaftNode({ id: 4, state: joiningState(), rand: seededRand(4), now: 0 });
    n.setWal({ tli: 1, lsn: 5000 });
    n.tick(10);
    n.ready();
    n.step({ ...voteReq(2, 4, 3, { wal: { tli: 1, lsn: 4999 } }), type: 'prevote' }, 10);
    n.step({ ...voteReq(2, 4, 3, { wal: { tli: 1, lsn: 5000 } }), type: 'prevote' }, 10);
    n.step(voteReq(2, 4, 3, { wal: { tli: 1, lsn: 5000 } }), 10);
    n.step(voteReq(3, 4, 3, { wal: { tli: 1, lsn: 9000 } }), 10);
    const rd = n.ready();
    expect(responses(rd.messages).map((r) => [r.type, r.from === 4 && r.to, r.reject, r.reason])).toEqual([
      ['prevote_resp', 2, true, 'wal_behind'],
      ['prevote_resp', 2, false, undefined],
      ['vote_resp', 2, false, undefined],
      ['vote_resp', 3, true, 'already_voted'],
    ]);
    expect(rd.hardState).toEqual({ term: 3, vote: 2, commit: 0 });
    expect(rd.fenceWal).toMatchObject({ term: 3, candidateWal: expect.any(Object) });
    expect(n.soft().state).toBe('CSTATE_FORMING');
  });

  it('a node prepared by bihactl add from a snapshot of term 6 never campaigns in term 6 or earlier', () => {
    // The leader of term 6 copied its config log (last entry in term 6) to the new node, whose
    // persisted term is still 0. Campaigning in term 6 would let it win a term that already has a
    // leader (simulator seed 1875: nodes 3 and 4 both leader in term 6).
    const config = { nodes: [nodeInfo(2), nodeInfo(3), nodeInfo(4)], params: DEFAULT_PARAMS };
    const n = new RaftNode({ id: 4, state: { hard: { term: 0, vote: 0, commit: 9 }, log: { snapshot: { index: 9, term: 6, config, meta: {} }, entries: [] } }, rand: seededRand(4), now: 0 });
    n.setWal({ tli: 5, lsn: 195 });
    expect(n.soft().term).toBe(6);
    expect(n.ready().hardState).toEqual({ term: 6, vote: 0, commit: 9 });
    const asked: Message[] = [];
    for (let t = 10; t < 20_000 && asked.length === 0; t += 10) {
      n.tick(t);
      asked.push(...n.ready().messages.filter((m) => m.type === 'prevote' || m.type === 'vote'));
    }
    expect(asked.length).toBeGreaterThan(0);
    for (const m of asked) expect(m.term).toBeGreaterThanOrEqual(7);
  });

  it('a member that is no voter in its own configuration grants when asked (it may have been promoted)', () => {
    const c = new TestCluster([nodeInfo(1), nodeInfo(2), nodeInfo(3, { canVote: false })]);
    const n3 = c.node(3);
    n3.tick(c.time);
    n3.step(voteReq(1, 3, 2), c.time);
    expect(responses(n3.ready().messages)).toMatchObject([{ to: 1, reject: false }]);
  });

  it('a removed node votes on config log and its own WAL; a candidate that no longer lists it does not ask it', () => {
    const c = three();
    c.run(3000);
    const [leader] = c.leaders();
    const gone = leader === 3 ? 2 : 3;
    const cand = [1, 2, 3].find((id) => id !== leader && id !== gone)!;
    expect(c.node(leader!).propose({ type: 'remove_node', id: gone }, c.time)).toMatchObject({ ok: true });
    c.settle();
    const sent = c.readies.get(cand)!.length;
    c.crash(leader!);
    c.run(5000);
    // nquorum 2 of the two remaining voters needs the crashed leader; the removed node is never asked.
    expect(c.leaders()).toEqual([]);
    expect(c.readies.get(cand)!.slice(sent).flatMap((r) => r.messages).some((m) => m.to === gone)).toBe(false);
    const n = c.node(gone);
    expect(n.soft().state).toBe('CSTATE_FORMING');
    c.setWal(gone, { tli: 1, lsn: 700 });
    const { term } = n.soft();
    const last = n.persistent().log.snapshot;
    n.step(voteReq(cand, gone, term + 1, { lastIndex: last.index, lastTerm: last.term, wal: { tli: 1, lsn: 600 } }), c.time);
    n.step(voteReq(cand, gone, term + 1, { lastIndex: last.index, lastTerm: last.term, wal: { tli: 1, lsn: 700 } }), c.time);
    expect(responses(n.ready().messages).map((r) => r.reason ?? 'granted')).toEqual(['wal_behind', 'granted']);
  });
});

describe('votes of removed referees', () => {
  it('a removed referee, no longer knowing its mode, keeps demanding the WAL it saw', () => {
    const c = new TestCluster([nodeInfo(1), nodeInfo(2), nodeInfo(3, { mode: 'referee', port: 0, canBeLeader: false })]);
    c.run(3000);
    expect(c.leaders()).toEqual([1]);
    c.setWal(2, { tli: 1, lsn: 500 });
    c.run(1000);
    expect(c.node(1).propose({ type: 'remove_node', id: 3 }, c.time)).toMatchObject({ ok: true });
    c.settle();
    c.crash(1);
    c.run(2000);
    const n3 = c.node(3);
    expect(n3.soft().state).toBe('CSTATE_FORMING');
    const { term } = n3.soft();
    const last = n3.persistent().log.snapshot;
    n3.step(voteReq(2, 3, term + 1, { lastIndex: last.index, lastTerm: last.term, wal: { tli: 1, lsn: 499 } }), c.time);
    n3.step(voteReq(2, 3, term + 1, { lastIndex: last.index, lastTerm: last.term, wal: { tli: 1, lsn: 500 } }), c.time);
    expect(responses(n3.ready().messages).map((r) => r.reason ?? 'granted')).toEqual(['wal_behind', 'granted']);
  });
});

describe('eligibility', () => {
  it('referees ignore their own WAL position and never lead', () => {
    const c = new TestCluster([nodeInfo(1), nodeInfo(2), nodeInfo(3, { mode: 'referee', port: 0, canBeLeader: true })]);
    c.setWal(3, { tli: 9, lsn: 9 }); // ignored: a referee has no WAL
    c.crash(2);
    c.run(10_000);
    expect(c.leaders()).toEqual([1]);
    expect(c.readies.get(3)!.some((r) => r.soft?.role === 'candidate' || r.soft?.role === 'precandidate')).toBe(false);
    c.node(3).campaign(c.time);
    expect(c.node(3).soft().role).toBe('follower');
    expect(c.node(3).transferLeadership(3, c.time)).toMatchObject({ ok: false, code: 'not_leader' });
    expect(c.node(1).transferLeadership(3, c.time)).toMatchObject({ ok: false, code: 'invalid' });
  });

  it('a referee grants a vote to a follower that lags the leader when another follower was online (asynchronous lag)', () => {
    const c = new TestCluster([nodeInfo(1), nodeInfo(2), nodeInfo(3, { mode: 'referee', port: 0, canBeLeader: false })]);
    c.run(3000);
    expect(c.leaders()).toEqual([1]);
    c.setWal(2, { tli: 1, lsn: 100 });
    c.run(1000);
    c.setWal(1, { tli: 1, lsn: 500 }); // not yet on node 2
    c.run(1000);
    c.crash(1);
    c.run(10_000);
    expect(c.leaders()).toEqual([2]);
  });

  it('a referee refuses a candidate missing WAL the leader wrote while it had no online data follower', () => {
    const c = new TestCluster([nodeInfo(1), nodeInfo(2), nodeInfo(3, { mode: 'referee', port: 0, canBeLeader: false })]);
    c.run(3000);
    expect(c.leaders()).toEqual([1]);
    c.crash(2);
    c.run(3000); // node 1 stays leader with the referee's acknowledgements
    c.setWal(1, { tli: 1, lsn: 800 });
    c.run(1000);
    expect(c.node(1).soft().state).toBe('LEADER_RW');
    c.crash(1);
    c.start(2); // node 2 comes back without the WAL node 1 wrote alone
    c.run(15_000);
    expect(c.leaders()).toEqual([]);
    const refused = c.readies.get(3)!.flatMap((r) => responses(r.messages)).filter((m) => m.to === 2 && m.reject);
    expect(refused.some((m) => m.reason === 'wal_behind')).toBe(true);
    c.setWal(2, { tli: 1, lsn: 800 }); // e.g. the WAL copied over by hand: now it may lead
    c.run(10_000);
    expect(c.leaders()).toEqual([2]);
  });

  it('a follower in NODE_ERROR does not count as a copy: the referee demands what the leader wrote meanwhile', () => {
    const c = new TestCluster([nodeInfo(1), nodeInfo(2), nodeInfo(3, { mode: 'referee', port: 0, canBeLeader: false })]);
    c.run(3000);
    c.node(2).setNodeError(true);
    c.run(1000);
    c.setWal(1, { tli: 1, lsn: 800 });
    c.run(1000);
    expect(c.node(1).soft().state).toBe('LEADER_RW');
    c.crash(1);
    c.node(2).setNodeError(false); // e.g. reset after a rewind that did not bring the leader's last WAL
    c.run(15_000);
    expect(c.leaders()).toEqual([]);
  });

  it('in synchronous mode a referee does not demand the WAL of a leader without followers (nothing there was acknowledged)', () => {
    const c = new TestCluster([nodeInfo(1), nodeInfo(2), nodeInfo(3, { mode: 'referee', port: 0, canBeLeader: false })], { syncStandbys: 1 });
    c.run(3000);
    c.crash(2);
    c.run(3000);
    c.setWal(1, { tli: 1, lsn: 800 });
    c.run(1000);
    c.crash(1);
    c.start(2);
    c.run(15_000);
    expect(c.leaders()).toEqual([2]);
  });

  it('a node with canBeLeader=false never campaigns, even when it alone is left', () => {
    const c = new TestCluster([nodeInfo(1), nodeInfo(2, { canBeLeader: false })], { nquorum: 1, minnodes: 1 });
    c.crash(1);
    c.run(20_000);
    expect(c.readies.get(2)!.some((r) => r.soft && r.soft.role !== 'follower')).toBe(false);
    expect(c.node(2).soft().state).toBe('FOLLOWER');
  });

  it('NODE_ERROR votes (NODE_ERROR_VOTING) but never campaigns; a leader in NODE_ERROR steps down', () => {
    const c = three();
    c.crash(1);
    c.node(2).setNodeError(true);
    c.node(2).tick(c.time);
    expect(c.node(2).soft().state).toBe('NODE_ERROR');
    c.run(5000);
    // Node 3 needs node 2's vote (nquorum 2): NODE_ERROR gives it.
    expect(c.leaders()).toEqual([3]);
    expect(c.readies.get(2)!.some((r) => r.soft?.role === 'precandidate' || r.soft?.role === 'candidate')).toBe(false);
    expect(c.readies.get(2)!.some((r) => r.soft?.state === 'NODE_ERROR_VOTING')).toBe(true);
    c.node(3).setNodeError(true);
    expect(c.node(3).soft()).toMatchObject({ role: 'follower', state: 'NODE_ERROR', writable: false });
  });

  it('a NODE_ERROR voter whose diverged WAL lies ahead does not block the healthy candidate', () => {
    const c = three();
    c.crash(1);
    // Node 2 diverged: its WAL claims more than node 3 holds, on a branch the cluster left.
    c.setWal(2, { tli: 3, lsn: 0x302d9d0 });
    c.setWal(3, { tli: 3, lsn: 0x302d920 });
    c.node(2).setNodeError(true);
    c.run(5000);
    expect(c.leaders()).toEqual([3]);
    // Healthy, the same WAL would refuse node 3 (wal_behind) and leave the cluster without a leader.
    const d = three();
    d.crash(1);
    d.setWal(2, { tli: 3, lsn: 0x302d9d0 });
    d.setWal(3, { tli: 3, lsn: 0x302d920 });
    d.run(5000);
    expect(d.leaders()).toEqual([2]);
  });

  it('service mode stops automatic elections but not a transfer', () => {
    const c = three();
    c.run(3000);
    const [leader] = c.leaders();
    expect(c.node(leader!).propose({ type: 'set_params', params: { serviceMode: true } }, c.time)).toMatchObject({ ok: true });
    c.settle();
    const target = leader === 1 ? 2 : 1;
    expect(c.node(leader!).transferLeadership(target, c.time)).toMatchObject({ ok: true, index: 0 });
    c.node(leader!).setLocalFenced(true);
    c.run(200);
    expect(c.leaders()).toEqual([target]);
    c.crash(target);
    c.run(10_000);
    expect(c.leaders()).toEqual([]);
  });

  it('a leaderless cluster in service mode elects again only when a node is asked to, and that leader can turn service mode off', () => {
    const c = three();
    c.run(3000);
    const [leader] = c.leaders();
    expect(c.node(leader!).propose({ type: 'set_params', params: { serviceMode: true } }, c.time)).toMatchObject({ ok: true });
    c.settle();
    c.crash(leader!);
    c.run(10_000);
    expect(c.leaders()).toEqual([]);
    const other = [1, 2, 3].find((id) => id !== leader)!;
    expect(c.node(other).campaignDespiteServiceMode(c.time)).toBeNull();
    c.run(3000);
    expect(c.leaders()).toEqual([other]);
    expect(c.node(other).config().params.serviceMode).toBe(true);
    expect(c.node(other).propose({ type: 'set_params', params: { serviceMode: false } }, c.time)).toMatchObject({ ok: true });
    c.settle();
    expect(c.node(other).config().params.serviceMode).toBe(false);
    const third = [1, 2, 3].find((id) => id !== leader && id !== other)!;
    expect(c.node(third).config().params.serviceMode).toBe(false);
  });

  it('a node asked to campaign despite service mode refuses while it hears a leader', () => {
    const c = three();
    c.run(3000);
    const [leader] = c.leaders();
    const other = [1, 2, 3].find((id) => id !== leader)!;
    expect(c.node(other).campaignDespiteServiceMode(c.time)).toMatch(/leads: ask it/);
    expect(c.node(leader!).campaignDespiteServiceMode(c.time)).toBe('this node is the leader');
    c.run(2000);
    expect(c.leaders()).toEqual([leader]);
  });
});

describe('setMayLead (nothing would fence this PostgreSQL)', () => {
  const campaigned = (c: TestCluster, id: number, from = 0): boolean =>
    c.readies.get(id)!.slice(from).some((r) => r.soft?.role === 'precandidate' || r.soft?.role === 'candidate' || r.soft?.role === 'leader');

  it('a leader steps down at once; a blocked node still votes', () => {
    const c = three();
    c.run(3000);
    const [leader] = c.leaders();
    const l = c.node(leader!);
    expect(l.leadBlockedReason()).toBeNull();
    l.setMayLead(false, 'the lease watchdog is not running');
    expect(l.soft()).toMatchObject({ role: 'follower', writable: false, leaderId: 0 });
    expect(l.leadBlockedReason()).toBe('the lease watchdog is not running');
    // With one follower gone, nquorum 2 needs the blocked node's vote.
    const [gone, next] = [1, 2, 3].filter((id) => id !== leader) as [number, number];
    c.crash(gone);
    const from = c.readies.get(leader!)!.length;
    c.run(5000);
    expect(c.leaders()).toEqual([next]);
    expect(campaigned(c, leader!, from)).toBe(false);
    expect(l.persistent().hard.vote).toBe(next);
    expect(l.soft()).toMatchObject({ role: 'follower', leaderId: next });
  });

  it('a blocked follower never campaigns, also not when asked to, and campaigns again once unblocked', () => {
    const c = three();
    c.run(3000);
    const [leader] = c.leaders();
    const [a, b] = [1, 2, 3].filter((id) => id !== leader) as [number, number];
    c.node(a).setMayLead(false);
    c.node(b).setMayLead(false, 'no watchdog');
    expect(c.node(a).leadBlockedReason()).toBe('blocked by the controller');
    const [fa, fb] = [c.readies.get(a)!.length, c.readies.get(b)!.length];
    c.crash(leader!);
    c.run(10_000);
    expect(c.leaders()).toEqual([]);
    expect(campaigned(c, a, fa) || campaigned(c, b, fb)).toBe(false);
    c.node(b).campaign(c.time);
    expect(c.node(b).soft().role).toBe('follower');
    expect(c.node(b).campaignDespiteServiceMode(c.time)).toBe('this node may not lead: no watchdog');
    c.node(b).setMayLead(true);
    expect(c.node(b).leadBlockedReason()).toBeNull();
    c.run(3000);
    expect(c.leaders()).toEqual([b]);
  });

  it('a candidate that gets blocked gives up its campaign', () => {
    const c = three();
    c.crash(1);
    c.node(2).campaign(c.time);
    expect(c.node(2).soft().role).toBe('precandidate');
    c.node(2).setMayLead(false);
    expect(c.node(2).soft().role).toBe('follower');
  });

  it('a transfer to a blocked node times out: the target ignores timeout_now, the leader falls back to an election', () => {
    const c = three();
    c.run(3000);
    const [leader] = c.leaders();
    const target = leader === 3 ? 2 : 3;
    c.node(target).setMayLead(false);
    expect(c.node(leader!).transferLeadership(target, c.time)).toMatchObject({ ok: true });
    c.node(leader!).setLocalFenced(true);
    const from = c.readies.get(target)!.length;
    c.run(300);
    // timeout_now left (the target caught up and the leader is fenced); nobody campaigned for it.
    expect(c.readies.get(leader!)!.flatMap((r) => r.messages).some((m) => m.type === 'timeout_now' && m.to === target)).toBe(true);
    expect(c.node(leader!).soft()).toMatchObject({ role: 'leader', transferTarget: target, writable: false });
    c.run(10_000);
    const [now] = c.leaders();
    expect(now).toBeDefined();
    expect(now).not.toBe(target);
    expect(c.node(now!).soft()).toMatchObject({ writable: true, transferTarget: 0 });
    expect(campaigned(c, target, from)).toBe(false);
  });
});

describe('fencing and lease', () => {
  it('a vote in a newer term carries fenceWal in the same Ready as the vote', () => {
    const c = three();
    c.run(3000);
    const [leader] = c.leaders();
    const voter = leader === 3 ? 2 : 3;
    const cand = [1, 2, 3].find((id) => id !== leader && id !== voter)!;
    const term = c.node(voter).soft().term;
    c.time += 5000; // the leader is silent
    const n = c.node(voter);
    n.tick(c.time);
    n.ready();
    n.step(voteReq(cand, voter, term + 1, { lastIndex: 50, lastTerm: term }), c.time);
    const rd = n.ready();
    expect(rd.fenceWal).toMatchObject({ term: term + 1, candidateWal: expect.any(Object) });
    expect(rd.hardState).toMatchObject({ term: term + 1, vote: cand });
    expect(responses(rd.messages)).toMatchObject([{ reject: false }]);
  });

  it('a cut-off leader is read-only before any follower may vote or campaign', () => {
    const c = three();
    c.run(3000);
    const [leader] = c.leaders();
    const n = c.node(leader!);
    expect(n.soft().writable).toBe(true);
    const cutAt = c.time;
    c.isolate(leader!);
    let roAt = -1;
    let campaignAt = -1;
    for (let i = 0; i < 300 && campaignAt < 0; i++) {
      c.run(10);
      if (roAt < 0 && !n.soft().writable) roAt = c.time;
      for (const [id, node] of c.nodes) {
        if (id !== leader && node && node.soft().role !== 'follower') campaignAt = c.time;
      }
    }
    const lease = leaseMs({ ...DEFAULT_PARAMS, heartbeatSendPeriod: 200, heartbeatMaxLost: 5 });
    expect(roAt).toBeGreaterThan(0);
    expect(roAt).toBeLessThanOrEqual(cutAt + lease + 10);
    // Read-only at least the lease margin (hb/2 = 100 ms) minus one tick before the first campaign.
    expect(campaignAt - roAt).toBeGreaterThanOrEqual(90);
  });

  it('minnodes 3 of 3: one lost follower makes the leader read-only, not a follower', () => {
    const c = new TestCluster([nodeInfo(1), nodeInfo(2), nodeInfo(3)], { nquorum: 2, minnodes: 3 });
    c.run(3000);
    const [leader] = c.leaders();
    const lost = leader === 3 ? 2 : 3;
    c.crash(lost);
    c.run(3000);
    expect(c.node(leader!).soft()).toMatchObject({ role: 'leader', writable: false, state: 'LEADER_RO' });
    const view = c.node(leader!).peers().find((p) => p.id === lost);
    expect(view).toMatchObject({ online: false, state: 'UNKNOWN', lastKnownState: 'FOLLOWER' });
  });
});

describe('leaseExpiresAt (for the controller watchdog)', () => {
  it('is the moment the leader turns read-only if no acknowledgement arrives', () => {
    const c = three();
    c.run(3000);
    const [leader] = c.leaders();
    const l = c.node(leader!);
    const until = l.leaseExpiresAt(c.time);
    expect(until).not.toBeNull();
    const lease = leaseMs({ ...DEFAULT_PARAMS, heartbeatSendPeriod: 200, heartbeatMaxLost: 5 });
    expect(until!).toBeGreaterThan(c.time);
    expect(until!).toBeLessThanOrEqual(c.time + lease);
    c.isolate(leader!);
    c.run(Math.ceil(until! - c.time) - 10, 1);
    expect(l.soft().writable).toBe(true);
    c.run(10, 1);
    expect(l.soft().writable).toBe(false);
    expect(l.leaseExpiresAt(c.time)).toBeNull();
    const follower = leader === 1 ? 2 : 1;
    expect(c.node(follower).leaseExpiresAt(c.time)).toBeNull();
  });

  it('with minnodes 1 is renewed from now at every call', () => {
    const c = new TestCluster([nodeInfo(1)], { nquorum: 1, minnodes: 1 });
    c.run(100);
    const lease = leaseMs({ ...DEFAULT_PARAMS, heartbeatSendPeriod: 200, heartbeatMaxLost: 5 });
    expect(c.node(1).leaseExpiresAt(c.time)).toBe(c.time + lease);
  });
});

describe('proposals and transfers', () => {
  it('refuses what it cannot do with a reason', () => {
    const c = three();
    c.run(3000);
    const [leader] = c.leaders();
    const follower = leader === 1 ? 2 : 1;
    expect(c.node(follower).propose({ type: 'set_meta', key: 'k', value: 'v' }, c.time)).toMatchObject({ ok: false, code: 'not_leader' });
    const l = c.node(leader!);
    expect(l.transferLeadership(leader!, c.time)).toMatchObject({ ok: false, code: 'invalid' });
    expect(l.transferLeadership(9, c.time)).toMatchObject({ ok: false, code: 'unknown_node' });
    expect(l.propose({ type: 'set_params', params: { nquorum: 0 } }, c.time)).toMatchObject({ ok: false, code: 'invalid' });
    expect(l.propose({ type: 'set_meta', key: 'k', value: 'v' }, c.time)).toMatchObject({ ok: true });
    expect(l.propose({ type: 'set_meta', key: 'k', value: 'w' }, c.time)).toMatchObject({ ok: false, code: 'change_in_progress' });
    c.settle();
    expect(c.node(follower).meta()).toMatchObject({ k: 'v' });
  });

  it('refuses a transfer to a node that a pending change removes or forbids to lead', () => {
    // Five voters, nquorum 3: every change below needs acknowledgements, so it stays pending until settle().
    const c = new TestCluster([1, 2, 3, 4, 5].map((id) => nodeInfo(id)), { nquorum: 3, minnodes: 3 });
    c.run(3000);
    const [leader] = c.leaders();
    const [a, b] = [1, 2, 3, 4, 5].filter((id) => id !== leader) as [number, number];
    const l = c.node(leader!);
    const remove = l.propose({ type: 'remove_node', id: a }, c.time);
    expect(remove).toMatchObject({ ok: true });
    const removing = l.transferLeadership(a, c.time);
    expect(removing).toMatchObject({ ok: false, code: 'invalid' });
    expect(!removing.ok && removing.message).toMatch(new RegExp(`node ${a} is being removed from the cluster .*config change ${remove.ok && remove.index} is not committed yet`));
    c.settle();
    expect(l.config().nodes.map((n) => n.id)).not.toContain(a);

    const demote = l.propose({ type: 'set_node', id: b, patch: { canBeLeader: false } }, c.time);
    expect(demote).toMatchObject({ ok: true });
    const demoting = l.transferLeadership(b, c.time);
    expect(demoting).toMatchObject({ ok: false, code: 'invalid' });
    expect(!demoting.ok && demoting.message).toMatch(new RegExp(`node ${b} is losing can_be_leader .*config change ${demote.ok && demote.index} is not committed yet`));
    c.settle();
    expect(l.propose({ type: 'set_node', id: b, patch: { canBeLeader: true } }, c.time)).toMatchObject({ ok: true });
    c.settle();

    // Losing its vote does not stop a node from leading: that transfer goes ahead.
    expect(l.propose({ type: 'set_node', id: b, patch: { canVote: false } }, c.time)).toMatchObject({ ok: true });
    expect(l.transferLeadership(b, c.time)).toMatchObject({ ok: true });
  });

  it('followers keep the leader view, aged by their own clock', () => {
    const c = three();
    c.run(3000);
    const [leader] = c.leaders();
    const follower = leader === 1 ? 2 : 1;
    c.crash(leader!);
    c.time += 300;
    c.node(follower).tick(c.time);
    const view = c.node(follower).peers();
    expect(view.map((p) => p.id)).toEqual([1, 2, 3]);
    const lv = view.find((p) => p.id === leader)!;
    expect(lv.online).toBe(true);
    expect(lv.sinceLastHbMs).toBeGreaterThanOrEqual(300);
    c.time += 1000;
    c.node(follower).tick(c.time);
    expect(c.node(follower).peers().find((p) => p.id === leader)).toMatchObject({ online: false, state: 'UNKNOWN', lastKnownState: 'LEADER_RW' });
  });
});
