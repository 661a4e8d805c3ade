import { describe, expect, it } from 'vitest';
import { missingIds } from '../../bench/lib/acked.js';
import { ElectionWatch } from '../../bench/lib/elections.js';
import { parseProgress, parseTps } from '../../bench/lib/pgbench.js';

describe('missingIds', () => {
  it('lists the acknowledged ids not present, ascending and once each', () => {
    expect(missingIds([5, 1, 2, 3, 5], [1, 3, 4])).toEqual([2, 5]);
  });
  it('is empty when every acknowledged id is present', () => {
    expect(missingIds([1, 2], new Set([2, 1, 7]))).toEqual([]);
  });
});

describe('pgbench output', () => {
  const stderr = [
    'pgbench (15.10 (Debian 15.10-1.pgdg120+1))',
    'progress: 1764788401.004 s, 512.3 tps, lat 15.347 ms stddev 4.012, 0 failed',
    'progress: 1764788402.000 s, 498.0 tps, lat 16.001 ms stddev 5.100, 0 failed',
    'pgbench: error: client 3 aborted in command 4 (SQL) of script 0; perhaps the backend died while processing',
  ].join('\n');

  it('reads the progress reports with their wall clock time', () => {
    expect(parseProgress(stderr)).toEqual([
      { at: 1764788401004, tps: 512.3 },
      { at: 1764788402000, tps: 498 },
    ]);
  });
  it('reads the final tps, or null without one', () => {
    expect(parseTps('latency average = 15.9 ms\ntps = 503.112233 (without initial connection time)\n')).toBe(503.112233);
    expect(parseTps(stderr)).toBeNull();
  });
});

describe('ElectionWatch', () => {
  it('reports term, leader and state changes after the first answer of each node', () => {
    const w = new ElectionWatch();
    expect(w.observe(1000, 1, { state: 'LEADER_RW', term: 3, leader: 1 })).toEqual([]);
    expect(w.observe(1000, 2, { state: 'FOLLOWER', term: 3, leader: 1 })).toEqual([]);
    expect(w.observe(2000, 2, { state: 'CANDIDATE', term: 4, leader: null }).map((e) => e.what)).toEqual(['term 3 -> 4', 'leader 1 -> none', 'state FOLLOWER -> CANDIDATE']);
    w.observe(3000, 1, { state: 'FOLLOWER', term: 4, leader: 2 });
    w.observe(3000, 2, { state: 'LEADER_RW', term: 4, leader: 2 });
    expect(w.newTerms()).toEqual([{ term: 4, t: 2000, node: 2 }]);
    expect(w.leaderChanges.map((e) => `${e.node}: ${e.what}`)).toEqual(['2: leader 1 -> none', '1: leader 1 -> 2', '2: leader none -> 2']);
    expect(w.lastTerms()).toEqual(new Map([[1, 4], [2, 4]]));
  });
  it('counts nothing while every node keeps its term and leader', () => {
    const w = new ElectionWatch();
    for (let t = 0; t < 5; t++) for (const i of [1, 2, 3]) w.observe(t, i, { state: i === 1 ? 'LEADER_RW' : 'FOLLOWER', term: 7, leader: 1 });
    expect(w.newTerms()).toEqual([]);
    expect(w.leaderChanges).toEqual([]);
    expect(w.stateChanges).toEqual([]);
  });
});
