// The controller's pure decisions about PostgreSQL: which nodes can follow a leader by streaming
// and which need pg_rewind (the timeline comparison against the leader's 'tl_history'), and the
// synchronous_standby_names a leader sets.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { divergence, syncStandbyNames } from '../../src/controller/pg/actions.js';
import { DEFAULT_PARAMS } from '../../src/raft/index.js';
import type { ClusterConfig, NodeInfo, NodeMode } from '../../src/raft/index.js';
import type { TimelineInfo } from '../../src/controller/pg/actions.js';
import { formatLsn } from '../../src/controller/pg/lsn.js';

// Leader on timeline 3: timeline 1 forked into 2 at 0/5000000, timeline 2 into 3 at 0/6000000.
const LEADER: TimelineInfo = {
  tli: 3,
  history: [
    { parentTli: 1, switchLsn: '0/5000000' },
    { parentTli: 2, switchLsn: '0/6000000' },
  ],
};

describe('divergence from the leader\'s timeline history', () => {
  it('a node on the leader\'s timeline follows, wherever its WAL ends', () => {
    expect(divergence(3, 0x1, LEADER)).toBeNull();
    expect(divergence(3, 0x7000000, LEADER)).toBeNull();
  });

  it('a node on an ancestor timeline follows up to the fork point and diverges one byte past it', () => {
    expect(divergence(1, 0x4000000, LEADER)).toBeNull();
    expect(divergence(1, 0x5000000, LEADER)).toBeNull();
    expect(divergence(1, 0x5000001, LEADER)).toEqual({ switchLsn: 0x5000000, nextTli: 2 });
    expect(divergence(2, 0x6000000, LEADER)).toBeNull();
    expect(divergence(2, 0x6000100, LEADER)).toEqual({ switchLsn: 0x6000000, nextTli: 3 });
  });

  it('a node on a timeline the leader never had, or a newer one, has diverged', () => {
    expect(divergence(4, 0x1, LEADER)).toEqual({ switchLsn: 0, nextTli: 3 });
    expect(divergence(7, 0x1, { tli: 3, history: [{ parentTli: 1, switchLsn: '0/100' }, { parentTli: 2, switchLsn: '0/200' }] })).toEqual({ switchLsn: 0, nextTli: 3 });
    // Timeline 2 is missing from this leader's history: it forked 1 -> 3 directly.
    expect(divergence(2, 0x1, { tli: 3, history: [{ parentTli: 1, switchLsn: '0/100' }] })).toEqual({ switchLsn: 0, nextTli: 3 });
  });

  it('property: on an ancestor timeline, diverged exactly when the WAL ends past its fork point', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 0x7fffffff }), { minLength: 1, maxLength: 6 }),
        fc.nat(),
        fc.integer({ min: 0, max: 0x7fffffff }),
        (gaps, pick, end) => {
          // Increasing fork points on timelines 1..n; the leader is on n+1.
          let at = 0;
          const history = gaps.map((g, i) => ({ parentTli: i + 1, switchLsn: formatLsn((at += g)) }));
          const leader: TimelineInfo = { tli: gaps.length + 1, history };
          const idx = pick % gaps.length;
          const fork = gaps.slice(0, idx + 1).reduce((a, b) => a + b, 0);
          const d = divergence(idx + 1, end, leader);
          if (end > fork) expect(d).toEqual({ switchLsn: fork, nextTli: idx + 2 });
          else expect(d).toBeNull();
        },
      ),
    );
  });
});

function cluster(k: number, modes: NodeMode[]): ClusterConfig {
  const nodes: NodeInfo[] = modes.map((mode, i) => ({
    id: i + 1, host: '127.0.0.1', port: mode === 'referee' ? 0 : 5432 + i, bihaPort: 6000 + i, mode,
    canBeLeader: mode === 'regular', canVote: true, priority: 0,
  }));
  return { nodes, params: { ...DEFAULT_PARAMS, syncStandbys: k } };
}

describe('synchronous_standby_names of a leader', () => {
  it('is empty in asynchronous mode', () => {
    expect(syncStandbyNames(cluster(0, ['regular', 'regular', 'regular']), 1)).toBe('');
  });

  it('lists the other regular nodes, never the leader itself, a referee or a referee_with_wal', () => {
    expect(syncStandbyNames(cluster(1, ['regular', 'regular', 'regular']), 2)).toBe('ANY 1 (biha_node_1, biha_node_3)');
    expect(syncStandbyNames(cluster(1, ['regular', 'regular', 'referee', 'referee_with_wal']), 1)).toBe('ANY 1 (biha_node_2)');
    expect(syncStandbyNames(cluster(1, ['regular', 'referee']), 1)).toBe('');
  });

  it('asks for no more confirmations than there are standbys', () => {
    expect(syncStandbyNames(cluster(3, ['regular', 'regular', 'regular']), 1)).toBe('ANY 2 (biha_node_2, biha_node_3)');
  });

  it('leaves NODE_ERROR nodes out while k healthy ones remain, and keeps them when too few would remain', () => {
    const c = cluster(1, ['regular', 'regular', 'regular', 'regular']);
    expect(syncStandbyNames(c, 1, new Set([3]))).toBe('ANY 1 (biha_node_2, biha_node_4)');
    expect(syncStandbyNames(c, 1, new Set([2, 3]))).toBe('ANY 1 (biha_node_4)');
    // No healthy standby left: keep waiting on all of them rather than dropping to asynchronous.
    expect(syncStandbyNames(c, 1, new Set([2, 3, 4]))).toBe('ANY 1 (biha_node_2, biha_node_3, biha_node_4)');
    const c2 = cluster(2, ['regular', 'regular', 'regular', 'regular']);
    expect(syncStandbyNames(c2, 1, new Set([3, 4]))).toBe('ANY 2 (biha_node_2, biha_node_3, biha_node_4)');
  });
});
