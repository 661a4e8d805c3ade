// The driver's pure decisions about PostgreSQL: which nodes can follow a leader by streaming and
// which need pg_rewind (their timeline history against the leader's), the timeline placeholders a
// promotion needs, and the synchronous_standby_names a leader sets.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { divergence, placeholdersFor } from '../../src/controller/driver/timeline.js';
import { syncStandbyNames, parseSyncStandbyNames, slotsToHold, wantedSlots } from '../../src/controller/driver/duties.js';
import type { TimelineInfo } from '../../src/controller/driver/types.js';
import { DEFAULT_PARAMS } from '../../src/raft/index.js';
import type { ClusterConfig, NodeInfo, NodeMode } from '../../src/raft/index.js';

// Leader on timeline 3: timeline 1 forked into 2 at 0x5000000, timeline 2 into 3 at 0x6000000.
const LEADER: TimelineInfo = {
  tli: 3,
  history: [
    { parentTli: 1, switchLsn: 0x5000000 },
    { parentTli: 2, switchLsn: 0x6000000 },
  ],
};
/** A node's own position with the history the leader gave that timeline. */
const on = (tli: number, end: number, leader: TimelineInfo = LEADER): TimelineInfo & { end: number } => ({
  tli,
  end,
  history: tli === leader.tli ? leader.history : leader.history.slice(0, Math.max(0, tli - 1)),
});

describe('divergence from the leader\'s timeline history', () => {
  it('a node on the leader\'s timeline follows, wherever its WAL ends', () => {
    expect(divergence(on(3, 0x1), LEADER)).toBeNull();
    expect(divergence(on(3, 0x7000000), LEADER)).toBeNull();
  });

  it('a node on an ancestor timeline follows up to the fork point and diverges one byte past it', () => {
    expect(divergence(on(1, 0x4000000), LEADER)).toBeNull();
    expect(divergence(on(1, 0x5000000), LEADER)).toBeNull();
    expect(divergence(on(1, 0x5000001), LEADER)).toEqual({ switchLsn: 0x5000000, nextTli: 2 });
    expect(divergence(on(2, 0x6000000), LEADER)).toBeNull();
    expect(divergence(on(2, 0x6000100), LEADER)).toEqual({ switchLsn: 0x6000000, nextTli: 3 });
  });

  it('a node on a timeline the leader never had, or a newer one, has diverged where it left the leader\'s history', () => {
    expect(divergence({ tli: 4, end: 0x6000100, history: [...LEADER.history, { parentTli: 3, switchLsn: 0x6000080 }] }, LEADER)).toEqual({ switchLsn: 0x6000080, nextTli: 3 });
    // Timeline 2 is missing from this leader's history: it forked 1 -> 3 directly.
    expect(divergence({ tli: 2, end: 0x200, history: [{ parentTli: 1, switchLsn: 0x100 }] }, { tli: 3, history: [{ parentTli: 1, switchLsn: 0x100 }] })).toEqual({ switchLsn: 0x100, nextTli: 3 });
  });

  it('the same timeline number with another history has diverged (two promotions picked one number)', () => {
    // Node A promoted 1 -> 2 at 0x300 and wrote on it; node B, which never saw A's history file,
    // promoted 1 -> 2 at 0x200. Same number, different WAL: the node must not stream from B.
    const a = { tli: 2, end: 0x400, history: [{ parentTli: 1, switchLsn: 0x300 }] };
    const b: TimelineInfo = { tli: 2, history: [{ parentTli: 1, switchLsn: 0x200 }] };
    expect(divergence(a, b)).toEqual({ switchLsn: 0x200, nextTli: 2 });
    expect(divergence({ ...a, history: [{ parentTli: 1, switchLsn: 0x200 }] }, b)).toBeNull();
  });

  it('a history that could not be read is compared by timeline numbers', () => {
    expect(divergence({ tli: 3, end: 0x10, history: [] }, LEADER)).toBeNull();
    expect(divergence({ tli: 2, end: 0x6000100, history: [] }, LEADER)).toEqual({ switchLsn: 0x6000000, nextTli: 3 });
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
          const history = gaps.map((g, i) => ({ parentTli: i + 1, switchLsn: (at += g) }));
          const leader: TimelineInfo = { tli: gaps.length + 1, history };
          const idx = pick % gaps.length;
          const fork = gaps.slice(0, idx + 1).reduce((a, b) => a + b, 0);
          const d = divergence({ tli: idx + 1, end, history: history.slice(0, idx) }, leader);
          if (end > fork) expect(d).toEqual({ switchLsn: fork, nextTli: idx + 2 });
          else expect(d).toBeNull();
        },
      ),
    );
  });
});

describe('timeline placeholders before a promotion', () => {
  it('fills every number below the reserved timeline that has no history file', () => {
    expect(placeholdersFor(5, new Set([2, 3]))).toEqual([4]);
    expect(placeholdersFor(5, new Set())).toEqual([2, 3, 4]);
    expect(placeholdersFor(2, new Set())).toEqual([]);
  });
});

describe('slots and synchronous standby names', () => {
  it('parses what syncStandbyNames writes', () => {
    expect(parseSyncStandbyNames('')).toBeNull();
    expect(parseSyncStandbyNames('ANY 2 (biha_node_2, biha_node_3)')).toEqual({ k: 2, names: ['biha_node_2', 'biha_node_3'] });
  });

  it('keeps one slot per other data node, referees left out', () => {
    expect(wantedSlots(cluster(0, ['regular', 'referee', 'referee_with_wal', 'regular']), 1)).toEqual(['biha_node_3', 'biha_node_4']);
  });

  it('makes only the slots of data nodes that are not live hold WAL (a live follower may be connecting)', () => {
    const c = cluster(0, ['regular', 'regular', 'referee', 'referee_with_wal', 'regular']);
    expect(slotsToHold(c, 1, new Set([2, 3, 4, 5]))).toEqual([]);
    expect(slotsToHold(c, 1, new Set([2]))).toEqual(['biha_node_4', 'biha_node_5']);
    expect(slotsToHold(c, 1, new Set())).toEqual(['biha_node_2', 'biha_node_4', 'biha_node_5']);
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
