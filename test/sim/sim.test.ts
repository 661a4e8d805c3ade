import { describe, expect, it } from 'vitest';
import {
  InvariantChecker,
  Network,
  Prng,
  WalLog,
  runBatch,
  runSeed,
  simOptions,
  summaryLine,
  syncStandbysFor,
  walBefore,
} from '../../src/sim/index.js';
import type { RunResult, Violation } from '../../src/sim/index.js';

function describeViolations(results: readonly RunResult[]): string {
  return results
    .flatMap((r) => r.violations.map((v: Violation) => `seed ${r.seed} (${r.nodes} nodes): invariant ${v.invariant} at step ${v.step}: ${v.description}`))
    .join('\n');
}

describe('seeded cluster runs', () => {
  it('200 three-node runs break no invariant', async () => {
    const failed: RunResult[] = [];
    const s = await runBatch({ nodes: 3, seedBase: 1, count: 200 }, (r) => {
      if (r.violations.length > 0) failed.push(r);
    });
    expect(describeViolations(failed)).toBe('');
    expect(s.runs).toBe(200);
    expect(s.violations).toBe(0);
    // The runs really did fail over, switch over, rewind and acknowledge writes.
    expect(s.failovers).toBeGreaterThan(100);
    expect(s.switchovers).toBeGreaterThan(20);
    expect(s.rewinds).toBeGreaterThan(20);
    expect(s.nodeErrors).toBeGreaterThan(0);
    expect(s.ackedWrites).toBeGreaterThan(10_000);
    // Every promotion got a timeline number of its own (reserved through the config log), and a
    // new leader's followers found their slots there (kept on standbys before the promotion).
    expect(s.reusedTimelines).toBe(0);
    expect(s.missingSlots).toBe(0);
  });

  it('100 five-node runs break no invariant', async () => {
    const failed: RunResult[] = [];
    const s = await runBatch({ nodes: 5, seedBase: 1, count: 100 }, (r) => {
      if (r.violations.length > 0) failed.push(r);
    });
    expect(describeViolations(failed)).toBe('');
    expect(s.violations).toBe(0);
    expect(s.failovers).toBeGreaterThan(50);
  });

  it('WAL-ahead and config-ahead survivors elect a leader within 10 x T', async () => {
    for (const nodes of [3, 4, 5, 7]) {
      for (let seed = 1; seed <= 8; seed++) {
        const r = await runSeed({ seed, nodes, scenario: 'wal-vs-config' });
        expect(describeViolations([r])).toBe('');
        expect(r.stats.scenarioElectMs).toBeGreaterThanOrEqual(0);
        expect(r.stats.scenarioElectMs).toBeLessThanOrEqual(10 * 200 * 5);
      }
    }
  });

  it('a parameter change applied just before the leader is isolated breaks nothing', async () => {
    // Longer election timeout and nquorum raised with minnodes lowered, each on half of the seeds.
    for (const nodes of [3, 5]) {
      const failed: RunResult[] = [];
      await runBatch({ nodes, scenario: 'param-change', seedBase: 1, count: 40 }, (r) => {
        if (r.violations.length > 0) failed.push(r);
      });
      expect(describeViolations(failed)).toBe('');
    }
  });

  it('loses no acknowledged write in sync mode and counts lost async writes', async () => {
    const sync = await runBatch({ nodes: 3, mode: 'sync', seedBase: 500, count: 30 });
    expect(sync.violations).toBe(0);
    expect(sync.lostAsyncWrites).toBe(0);
    expect(sync.ackedWrites).toBeGreaterThan(1000);
    const async = await runBatch({ nodes: 3, mode: 'async', seedBase: 500, count: 30 });
    expect(async.violations).toBe(0);
    expect(async.lostAsyncWrites).toBeGreaterThan(0);
  });

  it('replays a seed exactly: same seed, same trace', async () => {
    const a = await runSeed({ seed: 42, nodes: 5 }, { hash: true });
    const b = await runSeed({ seed: 42, nodes: 5 }, { hash: true });
    const c = await runSeed({ seed: 43, nodes: 5 }, { hash: true });
    expect(a.traceHash).not.toBeNull();
    expect(a.traceHash).toBe(b.traceHash);
    expect(a.stats).toEqual(b.stats);
    expect(c.traceHash).not.toBe(a.traceHash);
    const lines: string[] = [];
    const d = await runSeed({ seed: 42, nodes: 5 }, { sink: (l) => lines.push(l) });
    expect(d.traceHash).toBe(a.traceHash);
    expect(lines.some((l) => l.includes('ELECTED'))).toBe(true);
    // The product's NC decided the transitions (its log lines are in the trace).
    expect(lines.some((l) => l.includes('NC info: transition from "STANDBY" to "PRIMARY": promote'))).toBe(true);
    expect(lines.some((l) => l.includes('ACK write'))).toBe(true);
  });

  it('a fence slower than the lease margin lets two databases accept writes: invariant 5 says so', async () => {
    // The lease margin at 200 ms heartbeats is 100 ms; a fence of 400 ms outlasts it.
    const failed: RunResult[] = [];
    const slow = await runBatch({ nodes: 3, fenceDelayMs: 400, seedBase: 1, count: 40 }, (r) => {
      if (r.violations.length > 0) failed.push(r);
    });
    expect(slow.violations).toBeGreaterThan(0);
    expect(failed.every((r) => r.violations.every((v) => v.invariant === 5))).toBe(true);
  });

  it('detects split brain end to end when nquorum and minnodes allow it', async () => {
    const s = await runBatch({ nodes: 3, nquorum: 1, minnodes: 1, seedBase: 1, count: 20 });
    expect(s.violations).toBeGreaterThan(0);
  });

  it('detects a cluster that never gets a writable leader (invariant 6)', async () => {
    const r = await runSeed({ seed: 1, nodes: 3, minnodes: 4, faultMs: 1000 });
    expect(r.violations.map((v) => v.invariant)).toEqual([6]);
  });

  it('prints the summary line in the documented form', async () => {
    const s = await runBatch({ nodes: 3, seedBase: 7, count: 2 });
    expect(summaryLine(s, 1234)).toMatch(
      /^sim: 2 runs, 0 violations, \d+ elections, \d+ failovers, .*max failover \d+ ms, .*\d+ acked writes, \d+ lost async writes, .*elapsed 1\.2 s$/,
    );
  });
});

describe('invariant checkers catch hand-made bad histories', () => {
  const wal = (tli: number, lsn: number) => ({ tli, lsn });
  const none = () => false;
  const all = () => true;

  it('1: two leaders in one term', () => {
    const c = new InvariantChecker();
    c.becameLeader(1, 5, wal(2, 10), all);
    c.becameLeader(1, 5, wal(2, 10), all);
    expect(c.ok).toBe(true);
    c.becameLeader(2, 5, wal(2, 10), all);
    expect(c.violations.map((v) => v.invariant)).toEqual([1]);
  });

  it('2: a second vote in a term, also after a restart that persisted vote 0; a vote sent but never persisted', () => {
    const c = new InvariantChecker();
    c.persisted(3, { term: 4, vote: 1, commit: 2 });
    c.persisted(3, { term: 4, vote: 1, commit: 3 });
    expect(c.ok).toBe(true);
    c.persisted(3, { term: 4, vote: 0, commit: 3 });
    c.persisted(3, { term: 4, vote: 2, commit: 3 });
    expect(c.violations.map((v) => v.invariant)).toEqual([2]);
    const d = new InvariantChecker();
    d.persisted(1, { term: 7, vote: 0, commit: 0 });
    d.persisted(1, { term: 6, vote: 0, commit: 0 });
    expect(d.violations.map((v) => v.invariant)).toEqual([2]);
    const e = new InvariantChecker();
    e.persisted(2, { term: 5, vote: 0, commit: 0 });
    e.voteSent(2, 5, 1, wal(1, 1), true);
    expect(e.violations.map((v) => v.invariant)).toEqual([2]);
    // A later term persisted covers the vote: the node can no longer vote in term 5.
    const f = new InvariantChecker();
    f.persisted(2, { term: 6, vote: 3, commit: 0 });
    f.voteSent(2, 5, 1, wal(1, 1), true);
    expect(f.ok).toBe(true);
  });

  it('3: a leader with less WAL than one of its voters had when its vote left', () => {
    const c = new InvariantChecker();
    c.persisted(2, { term: 4, vote: 1, commit: 0 });
    c.voteSent(2, 4, 1, wal(2, 50), true);
    c.becameLeader(1, 4, wal(2, 49), all);
    expect(c.violations.map((v) => v.invariant)).toEqual([3]);
    // A vote sent after the election is checked too; a higher timeline wins; unjudged votes are not checked.
    const d = new InvariantChecker();
    d.becameLeader(1, 4, wal(3, 10), all);
    d.persisted(2, { term: 4, vote: 1, commit: 0 });
    d.voteSent(2, 4, 1, wal(2, 500), true);
    d.persisted(4, { term: 4, vote: 1, commit: 0 });
    d.voteSent(4, 4, 1, wal(3, 99), false);
    expect(d.ok).toBe(true);
    d.persisted(3, { term: 4, vote: 1, commit: 0 });
    d.voteSent(3, 4, 1, wal(3, 11), true);
    expect(d.violations.map((v) => v.invariant)).toEqual([3]);
  });

  it('4: an acknowledged synchronous write missing from a later leader or dropped by a rewind', () => {
    const c = new InvariantChecker();
    c.ackedSync({ id: 7, pos: 10, term: 3, by: 1 }, []);
    c.becameLeader(2, 3, wal(2, 5), none); // same term: not a later leader
    expect(c.ok).toBe(true);
    c.becameLeader(2, 4, wal(2, 5), none);
    expect(c.violations.map((v) => v.invariant)).toEqual([4]);

    const d = new InvariantChecker();
    d.ackedSync({ id: 8, pos: 3, term: 3, by: 1 }, [{ id: 2, term: 4, has: none }]);
    expect(d.violations.map((v) => v.invariant)).toEqual([4]);

    const e = new InvariantChecker();
    e.ackedSync({ id: 9, pos: 3, term: 3, by: 1 }, [{ id: 1, term: 3, has: none }]);
    e.rewound(2, [10, 11]);
    expect(e.ok).toBe(true);
    e.rewound(2, [9]);
    expect(e.violations.map((v) => v.invariant)).toEqual([4]);

    const f = new InvariantChecker();
    f.ackedSync({ id: 9, pos: 3, term: 3, by: 1 }, []);
    f.finalLeader(1, (pos, id) => pos === 3 && id === 9);
    expect(f.ok).toBe(true);
    f.finalLeader(2, none);
    expect(f.violations.map((v) => v.invariant)).toEqual([4]);
  });

  it('5: two databases accepting writes at one instant', () => {
    const c = new InvariantChecker();
    c.writable([1]);
    expect(c.ok).toBe(true);
    c.writable([1, 3]);
    expect(c.violations.map((v) => v.invariant)).toEqual([5]);
  });

  it('stamps violations with the step and time', () => {
    const c = new InvariantChecker();
    c.at(17, 1234.5);
    c.writable([1, 2]);
    expect(c.violations[0]).toMatchObject({ step: 17, time: 1234.5, invariant: 5 });
  });

  it('orders WAL positions by timeline, then LSN', () => {
    expect(walBefore(wal(1, 100), wal(2, 1))).toBe(true);
    expect(walBefore(wal(2, 1), wal(2, 2))).toBe(true);
    expect(walBefore(wal(2, 2), wal(2, 2))).toBe(false);
    expect(walBefore(wal(3, 0), wal(2, 9))).toBe(false);
  });
});

describe('models', () => {
  it('WAL: prefix, divergence point and rewind', () => {
    const a = new WalLog();
    for (let i = 1; i <= 5; i++) a.append(i, 1);
    const b = a.clone();
    b.truncate(3);
    expect(b.isPrefixOf(a)).toBe(true);
    b.append(-1, 2);
    b.append(100, 2);
    expect(b.isPrefixOf(a)).toBe(false);
    expect(a.commonPrefix(b)).toBe(3);
    expect(b.pos()).toEqual({ tli: 2, lsn: 5 });
    expect(a.truncate(a.commonPrefix(b))).toEqual([4, 5]);
    expect(a.isPrefixOf(b)).toBe(true);
  });

  it('network: one-way cuts and a majorities ring', () => {
    const net = new Network(new Prng(1));
    net.oneWay([1], [2, 3], ['ctl']);
    expect(net.connected('ctl', 1, 2)).toBe(false);
    expect(net.connected('ctl', 2, 1)).toBe(true);
    expect(net.connected('wal', 1, 2)).toBe(true);
    net.healAll();
    expect(net.whole).toBe(true);
    const ids = [1, 2, 3, 4, 5];
    net.ring(ids, 1, ['ctl', 'wal']);
    for (const a of ids) {
      const seen = ids.filter((b) => b === a || net.linked('ctl', a, b)).length;
      expect(seen).toBe(3);
    }
    expect(net.linked('ctl', 1, 3)).toBe(false);
    expect(net.linked('ctl', 1, 5)).toBe(true);
  });

  it('PRNG streams are reproducible', () => {
    const a = new Prng(9);
    const b = new Prng(9);
    const xs = Array.from({ length: 5 }, () => a.next());
    expect(Array.from({ length: 5 }, () => b.next())).toEqual(xs);
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
  });

  it('options: defaults and the synchronous standby count', () => {
    const o = simOptions({ seed: 4, nodes: 5 });
    expect(o.nquorum).toBe(3);
    expect(o.minnodes).toBe(3);
    expect(o.heartbeatSendPeriod * o.heartbeatMaxLost).toBe(1000);
    expect(o.mode).toBe('sync');
    for (let n = 3; n <= 7; n++) {
      const q = Math.floor(n / 2) + 1;
      const k = syncStandbysFor(n, q);
      expect(k + 1 + q).toBeGreaterThan(n);
      expect(k + q).toBeLessThanOrEqual(n);
    }
    expect(() => simOptions({ seed: 1, nodes: 2 })).toThrow(RangeError);
  });
});
