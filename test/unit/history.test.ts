// GET /history: timeline history files merged with biha's promotion records, and the records kept
// in the configuration's meta.
import { describe, expect, it } from 'vitest';
import { PROMOTIONS_KEPT, PROMOTIONS_META_KEY, PromotionNotes, buildHistory, decodePromotions, isPlaceholderHistory, promotionChange } from '../../src/controller/ops/history.js';
import type { PromotionRecord } from '../../src/controller/ops/history.js';
import { PLACEHOLDER_MARK } from '../../src/controller/pg/actions.js';
import { timelineChange } from '../../src/raft/index.js';
import type { SoftState } from '../../src/raft/index.js';

const rec = (tli: number, reason: 'failover' | 'switchover' = 'failover'): PromotionRecord => ({ tli, term: tli + 3, leader: tli, reason, at: `2026-01-0${tli}T00:00:00.000Z` });

describe('buildHistory', () => {
  it('lists each timeline of the chain with its switch LSN, oldest first', () => {
    const text = '1\t0/3000060\tno recovery target specified\n\n2\t0/5000000\tno recovery target specified\n';
    const h = buildHistory(4, text, [rec(4, 'switchover')]);
    expect(h).toEqual([
      { timeline: 2, switch_lsn: '0/3000060', time: null, new_leader: null, reason: null },
      { timeline: 4, switch_lsn: '0/5000000', time: '2026-01-04T00:00:00.000Z', new_leader: 4, reason: 'switchover' },
    ]);
  });
  it('is empty on timeline 1', () => {
    expect(buildHistory(1, null, [])).toEqual([]);
  });
  it('tells placeholders apart', () => {
    expect(isPlaceholderHistory(`# ${PLACEHOLDER_MARK}\n`)).toBe(true);
    expect(isPlaceholderHistory('1\t0/3000060\tno recovery target specified\n')).toBe(false);
  });
});

describe('promotion records', () => {
  it('keeps the newest records, one per timeline, in timeline order', () => {
    let value: string | undefined;
    for (let t = 2; t < PROMOTIONS_KEPT + 10; t++) {
      const c = promotionChange(value, rec(t));
      expect(c.type === 'set_meta' && c.key).toBe(PROMOTIONS_META_KEY);
      value = c.type === 'set_meta' ? c.value : undefined;
    }
    const list = decodePromotions(value);
    expect(list).toHaveLength(PROMOTIONS_KEPT);
    expect(list[0]!.tli).toBe(10);
    const again = promotionChange(value, { ...rec(20), reason: 'switchover' });
    const l2 = decodePromotions(again.type === 'set_meta' ? again.value : undefined);
    expect(l2.filter((r) => r.tli === 20)).toEqual([{ ...rec(20), reason: 'switchover' }]);
  });
  it('reads garbage as no records', () => {
    expect(decodePromotions('not json')).toEqual([]);
    expect(decodePromotions('[{"tli":"x"}]')).toEqual([]);
    expect(decodePromotions(undefined)).toEqual([]);
  });
  it("records the leader's own committed reservation, as a switchover after TimeoutNow", () => {
    const notes = new PromotionNotes();
    const soft = (term: number): SoftState => ({ role: 'leader', term, leaderId: 2, writable: true, state: 'LEADER_RW', transferTarget: 0 });
    const entry = (tli: number, term: number) => ({ index: 9, term, change: timelineChange({ tli, term }) });
    const now = new Date(Date.UTC(2026, 0, 1));
    expect(notes.recordFor(entry(3, 5), soft(5), 2, now)).toEqual({ tli: 3, term: 5, leader: 2, reason: 'failover', at: now.toISOString() });
    notes.noteTimeoutNow(5);
    expect(notes.recordFor(entry(4, 6), soft(6), 2, now)?.reason).toBe('switchover');
    // Another leader's reservation, or no reservation at all: nothing to record.
    expect(notes.recordFor(entry(4, 6), soft(7), 2, now)).toBeNull();
    expect(notes.recordFor({ index: 9, term: 6, change: null }, soft(6), 2, now)).toBeNull();
    expect(notes.recordFor(entry(4, 6), { ...soft(6), role: 'follower' }, 2, now)).toBeNull();
  });
});
