// Which nodes can follow a leader by streaming and which need pg_rewind (or NODE_ERROR): the
// timeline comparison the controller makes against the leader's history ('tl_history').
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { divergence } from '../../src/controller/pgactions.js';
import type { TimelineInfo } from '../../src/controller/pgactions.js';
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
