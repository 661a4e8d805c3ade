// The jepsen-lite checkers on hand-made histories: each must flag what it exists for, and must not
// flag a clean failover.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkConsensus, checkSet, checkSplitBrain, lateAcks, unavailability } from './checker.js';
import type { HardStateRecord, NemesisRecord, OpRecord, Outcome } from './history.js';
import { parseControllerLog } from './logs.js';
import type { StateEvent } from './logs.js';
import { LogFollower } from './votelog.js';
import { classifyStatementError, isSyncCancelNotice } from './workload.js';

let nextId = 1;
function op(value: string, outcome: Outcome, node: number | null, term: number | null, invoke: number, complete: number): OpRecord {
  return { type: 'op', id: nextId++, client: 'c', value, invoke, complete, outcome, node, term };
}

describe('set checker', () => {
  it('reports an acknowledged write missing from the final read as lost', () => {
    const ops = [op('a', 'ok', 1, 2, 0, 10), op('b', 'ok', 1, 2, 20, 30), op('c', 'info', 1, 2, 40, 50), op('d', 'fail', null, null, 60, 61)];
    const r = checkSet(ops, new Set(['a', 'c']));
    expect(r.lost.map((o) => o.value)).toEqual(['b']);
    expect(r.infoPresent).toBe(1);
    expect(r.failedButPresent).toEqual([]);
    expect([r.ok, r.info, r.fail]).toEqual([2, 1, 1]);
  });

  it('reports a write classified as failed that is present, and values nobody wrote', () => {
    const r = checkSet([op('a', 'fail', 1, null, 0, 1)], new Set(['a', 'zz']));
    expect(r.failedButPresent.map((o) => o.value)).toEqual(['a']);
    expect(r.unexpected).toEqual(['zz']);
  });
});

describe('writable-leader probe', () => {
  it('accepts a failover: node 2 acknowledges in a higher term after node 1 stopped', () => {
    const ops = [op('a', 'ok', 1, 3, 0, 10), op('b', 'ok', 1, 3, 5, 20), op('c', 'ok', 2, 4, 15, 40), op('d', 'ok', 2, 4, 50, 60), op('e', 'ok', 1, 5, 100, 110)];
    expect(checkSplitBrain(ops)).toEqual([]);
  });

  it('ignores writes that were not acknowledged', () => {
    const ops = [op('a', 'ok', 2, 4, 0, 10), op('b', 'info', 1, 3, 20, 30), op('c', 'fail', 1, null, 20, 21)];
    expect(checkSplitBrain(ops)).toEqual([]);
  });

  it('flags two nodes acknowledging writes in the same term', () => {
    const r = checkSplitBrain([op('a', 'ok', 1, 3, 0, 10), op('b', 'ok', 2, 3, 50, 60)]);
    expect(r.map((s) => s.kind)).toEqual(['same-term']);
  });

  it('flags an old leader acknowledging a write sent after a newer term acknowledged one', () => {
    const r = checkSplitBrain([op('a', 'ok', 2, 4, 0, 10), op('b', 'ok', 1, 3, 20, 30)]);
    expect(r.map((s) => s.kind)).toEqual(['stale-term']);
    expect(r[0]!.earlier.value).toBe('a');
    expect(r[0]!.later.value).toBe('b');
  });

  it('reports, without flagging, an old leader acknowledging after a newer term did a write sent before that', () => {
    // a: sent at 0 to node 1 (term 3), acknowledged at 50; node 2 (term 4) acknowledged b at 30.
    const ops = [op('a', 'ok', 1, 3, 0, 50), op('b', 'ok', 2, 4, 20, 30), op('c', 'ok', 1, 3, 0, 10)];
    expect(checkSplitBrain(ops)).toEqual([]);
    const late = lateAcks(ops);
    expect(late.map((l) => [l.op.value, l.newer.value, l.afterMs])).toEqual([['a', 'b', 20]]);
  });

  it('flags overlapping writable windows when a term is unknown, but not disjoint ones', () => {
    const overlap = [op('a', 'ok', 1, null, 0, 10), op('b', 'ok', 2, null, 5, 15), op('c', 'ok', 1, null, 20, 30), op('d', 'ok', 2, null, 25, 35)];
    expect(checkSplitBrain(overlap).map((s) => s.kind)).toEqual(['overlap']);
    const disjoint = [op('a', 'ok', 1, null, 0, 10), op('b', 'ok', 1, null, 12, 20), op('c', 'ok', 2, null, 30, 40)];
    expect(checkSplitBrain(disjoint)).toEqual([]);
  });
});

function st(node: number, at: number, role: string, term: number, leader: number): StateEvent {
  return { at, node, role, term, leader, state: role === 'leader' ? 'LEADER_RW' : 'FOLLOWER' };
}

describe('consensus invariants', () => {
  it('accepts one leader per term and growing terms', () => {
    const m = new Map([
      [1, [st(1, 0, 'leader', 2, 1), st(1, 10, 'follower', 3, 2)]],
      [2, [st(2, 0, 'follower', 2, 1), st(2, 9, 'leader', 3, 2)]],
    ]);
    const r = checkConsensus(m, []);
    expect([...r.twoLeaders, ...r.disagreeingLeader, ...r.termDecrease, ...r.doubleVote]).toEqual([]);
    expect(r.leaderTerms).toBe(2);
  });

  it('flags two leaders in a term, a decreasing term and a changed vote', () => {
    const m = new Map([
      [1, [st(1, 0, 'leader', 5, 1), st(1, 10, 'follower', 4, 0)]],
      [2, [st(2, 0, 'leader', 5, 2)]],
    ]);
    const hard: HardStateRecord[] = [
      { type: 'hard', at: 0, node: 3, term: 5, vote: 1 },
      { type: 'hard', at: 5, node: 3, term: 5, vote: 2 },
    ];
    const r = checkConsensus(m, hard);
    expect(r.twoLeaders).toEqual(['term 5: leaders 1, 2']);
    expect(r.disagreeingLeader).toEqual(['term 5: nodes named leaders 1, 2']);
    expect(r.termDecrease.length).toBe(1);
    expect(r.doubleVote).toEqual(['node 3 voted for 1 (sample at 1970-01-01T00:00:00.000Z) and 2 (sample at 1970-01-01T00:00:00.005Z) in term 5']);
  });

  it('flags a double vote that only the log records (the samples saw one vote), and not votes across terms', () => {
    const hard: HardStateRecord[] = [
      // node 2 voted for 1 in term 4, then for 3 in term 5: fine.
      { type: 'hard', at: 0, node: 2, term: 4, vote: 1, src: 'log' },
      { type: 'hard', at: 5, node: 2, term: 5, vote: 0, src: 'log' },
      { type: 'hard', at: 6, node: 2, term: 5, vote: 3, src: 'log' },
      // node 1: term 6 vote 2, then (within 0.5 s, between two samples) vote 3 in the same term.
      { type: 'hard', at: 100, node: 1, term: 6, vote: 2, src: 'log' },
      { type: 'hard', at: 150, node: 1, term: 6, vote: 3, src: 'log' },
      { type: 'hard', at: 400, node: 1, term: 6, vote: 3, src: 'sample' },
      { type: 'hard', at: 400, node: 2, term: 5, vote: 3, src: 'sample' },
    ];
    const r = checkConsensus(new Map(), hard);
    expect(r.doubleVote).toEqual(['node 1 voted for 2 (log at 1970-01-01T00:00:00.100Z) and 3 (log at 1970-01-01T00:00:00.150Z) in term 6']);
    expect([r.voteLogLines, r.voteSamples]).toEqual([5, 2]);
    expect(r.unloggedVotes).toEqual([]);
  });

  it('reports a sampled vote that no log line of a logging node holds, and does not count it as a vote', () => {
    const hard: HardStateRecord[] = [
      { type: 'hard', at: 0, node: 1, term: 3, vote: 1, src: 'log' },
      { type: 'hard', at: 500, node: 1, term: 4, vote: 2, src: 'sample' },
      // node 1's own vote in term 4, logged: the sample above (a peer's file copied over by a
      // rewind, say) is not a second vote of node 1.
      { type: 'hard', at: 600, node: 1, term: 4, vote: 1, src: 'log' },
      // node 2 does not log votes at all (an older build): its samples are not "unlogged".
      { type: 'hard', at: 500, node: 2, term: 4, vote: 2 },
    ];
    const r = checkConsensus(new Map(), hard);
    expect(r.unloggedVotes).toEqual(['node 1: term 4 vote 2 sampled at 1970-01-01T00:00:00.500Z is in no log line']);
    expect(r.doubleVote).toEqual([]);
  });
});

describe('vote log', () => {
  it('reads every "hard state persisted" line of the node, and only of that node', () => {
    const text = [
      '{"level":30,"time":"2026-01-01T00:00:00.000Z","node":2,"component":"BIHA","term":3,"vote":0,"msg":"hard state persisted: term 3, vote 0 (as loaded at start)"}',
      '{"level":30,"time":"2026-01-01T00:00:01.000Z","node":2,"component":"BIHA","term":4,"vote":1,"msg":"hard state persisted: term 4, vote 1"}',
      '{"level":30,"time":"2026-01-01T00:00:01.100Z","node":1,"component":"BIHA","term":4,"vote":1,"msg":"hard state persisted: term 4, vote 1"}',
      '{"level":30,"time":"2026-01-01T00:00:01.200Z","node":2,"component":"BIHA","term":4,"vote":3,"msg":"hard state persisted: term 4, vote 3"}',
    ].join('\n');
    const p = parseControllerLog(text, 2);
    expect(p.votes.map((v) => [v.term, v.vote])).toEqual([[3, 0], [4, 1], [4, 3]]);
    expect(p.foreign).toEqual(new Map([[1, 1]]));
    const hard: HardStateRecord[] = p.votes.map((v) => ({ type: 'hard', ...v, src: 'log' }));
    expect(checkConsensus(new Map(), hard).doubleVote).toEqual(['node 2 voted for 1 (log at 2026-01-01T00:00:01.000Z) and 3 (log at 2026-01-01T00:00:01.200Z) in term 4']);
  });

  it('follows a log file as it grows and after it is rewritten underneath, as a rewind does', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'votelog-'));
    try {
      const file = path.join(dir, 'controller.log');
      const line = (ms: number, term: number, vote: number, node = 1): string =>
        `{"level":30,"time":"${new Date(ms).toISOString()}","node":${node},"term":${term},"vote":${vote},"msg":"hard state persisted: term ${term}, vote ${vote}"}\n`;
      fs.writeFileSync(file, line(0, 1, 1) + '{"msg":"other"}\n');
      const f = new LogFollower(file, 1);
      expect(f.poll().map((v) => v.term)).toEqual([1]);
      fs.appendFileSync(file, line(1000, 2, 2).slice(0, 20));
      expect(f.poll()).toEqual([]);
      fs.appendFileSync(file, line(1000, 2, 2).slice(20));
      expect(f.poll().map((v) => v.term)).toEqual([2]);
      // Rewritten in place (same inode) with a peer's log, then with an older copy plus new lines.
      fs.writeFileSync(file, line(1500, 3, 2, 2) + line(1600, 3, 2, 2) + line(1700, 3, 2, 2));
      expect(f.poll()).toEqual([]);
      fs.writeFileSync(file, line(0, 1, 1) + line(2000, 3, 3));
      expect(f.poll().map((v) => [v.term, v.vote])).toEqual([[1, 1], [3, 3]]);
      expect(f.poll()).toEqual([]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('unavailability windows', () => {
  it('finds the stretches without an acknowledged write and the faults during them', () => {
    const nem: NemesisRecord[] = [{ type: 'nemesis', name: 'crash', what: 'x', start: 1500, end: 4000, nodes: [1] }];
    const ops = [op('a', 'ok', 1, 1, 0, 1000), op('b', 'ok', 2, 2, 0, 5000), op('c', 'ok', 2, 2, 5000, 5100)];
    const w = unavailability(ops, nem, 500, 5500);
    expect(w.map((x) => [x.from, x.to, x.faults])).toEqual([[1000, 5000, ['crash']]]);
  });
});

describe('client classification', () => {
  it('treats a commit with a cancelled synchronous wait as indeterminate', () => {
    expect(isSyncCancelNotice('WARNING canceling wait for synchronous replication due to user request The transaction has already committed locally, but might not have been replicated to the standby.')).toBe(true);
    expect(isSyncCancelNotice('NOTICE relation "jepsen_set" already exists, skipping')).toBe(false);
  });

  it('counts only refusals before execution as definite failures', () => {
    expect(classifyStatementError({ code: '25006', message: 'cannot execute INSERT in a read-only transaction' }).outcome).toBe('fail');
    expect(classifyStatementError({ code: '42P01', message: 'relation "jepsen_set" does not exist' }).outcome).toBe('fail');
    expect(classifyStatementError(new Error('Client has encountered a connection error and is not queryable')).outcome).toBe('fail');
    expect(classifyStatementError({ code: '57P01', message: 'terminating connection due to administrator command' }).outcome).toBe('info');
    expect(classifyStatementError(new Error('Query read timeout')).outcome).toBe('info');
    expect(classifyStatementError(new Error('Connection terminated unexpectedly')).outcome).toBe('info');
  });
});

describe('controller log parser', () => {
  it('reads role, term and leader from "state" lines and marks restarts and fences', () => {
    const text = [
      '{"level":30,"time":"2026-01-01T00:00:00.000Z","node":2,"component":"BIHA","msg":"controller started"}',
      '{"level":30,"time":"2026-01-01T00:00:01.000Z","node":2,"component":"BIHA","role":"leader","term":7,"leader":2,"state":"LEADER_RW","msg":"state LEADER_RW, term 7, leader 2"}',
      '{"level":40,"time":"2026-01-01T00:00:02.000Z","component":"WD","pid":1,"msg":"lease expired without renewal: PostgreSQL (PID 5) fenced with an immediate shutdown"}',
      'not json',
      '{"level":30,"time":"2026-01-01T00:00:03.000Z","node":3,"component":"BIHA","role":"leader","term":7,"leader":3,"state":"LEADER_RW","msg":"state LEADER_RW, term 7, leader 3"}',
    ].join('\n');
    const p = parseControllerLog(text, 2);
    expect(p.states).toEqual([{ at: Date.parse('2026-01-01T00:00:01.000Z'), node: 2, role: 'leader', term: 7, leader: 2, state: 'LEADER_RW' }]);
    expect(p.events.map((e) => [e.node, e.kind])).toEqual([[2, 'started'], [2, 'fence']]);
    expect(p.garbage).toBe(1);
    // A line of node 3 in node 2's file (copied from a peer) is not node 2's state.
    expect(p.foreign).toEqual(new Map([[3, 1]]));
  });
});
