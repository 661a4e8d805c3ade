// The cluster's history of promotions, as GET /history shows it.
//
// Two sources are merged:
//   - the leader's PostgreSQL timeline history files (pg_wal/NNNNNNNN.history): for every timeline
//     of the leader's current history, the LSN where it forked off its parent;
//   - what biha records when a node promotes: the committed configuration's meta key `promotions`
//     holds the latest PROMOTIONS_KEPT records {tli, term, leader, reason, at}, proposed by the new
//     leader once PostgreSQL runs as the primary on the timeline it reserved (raft's timeline
//     reservation, src/raft/config.ts). The reason is `switchover` when the leader was elected
//     through a transfer (TimeoutNow), `failover` for any other election.
// A timeline without a record (older than the records, or promoted by hand) shows nulls.
import { reservationOf } from '../../raft/index.js';
import type { ConfigChange, Entry, SoftState } from '../../raft/index.js';
import { PLACEHOLDER_MARK } from '../pg/actions.js';
import { formatLsn } from '../pg/lsn.js';
import { parseTimelineHistory } from '../pg/tools.js';

export const PROMOTIONS_META_KEY = 'promotions';
/** How many promotion records the configuration keeps (the oldest go first). */
export const PROMOTIONS_KEPT = 32;

export type PromotionReason = 'failover' | 'switchover';

export interface PromotionRecord {
  readonly tli: number;
  readonly term: number;
  readonly leader: number;
  readonly reason: PromotionReason;
  /** ISO-8601 time on the new leader. */
  readonly at: string;
}

export interface HistoryItem {
  timeline: number;
  switch_lsn: string;
  time: string | null;
  new_leader: number | null;
  reason: string | null;
}

function isRecord(v: unknown): v is PromotionRecord {
  const o = v as Partial<PromotionRecord> | null;
  return (
    o !== null && typeof o === 'object' && Number.isInteger(o.tli) && Number.isInteger(o.term) && Number.isInteger(o.leader) &&
    (o.reason === 'failover' || o.reason === 'switchover') && typeof o.at === 'string'
  );
}

/** The records under PROMOTIONS_META_KEY; an absent or unreadable value is no records. */
export function decodePromotions(value: string | undefined): PromotionRecord[] {
  if (value === undefined) return [];
  try {
    const v = JSON.parse(value) as unknown;
    return Array.isArray(v) ? v.filter(isRecord) : [];
  } catch {
    return [];
  }
}

/** The change that adds `r` to the records (replacing one of the same timeline), keeping the newest PROMOTIONS_KEPT. */
export function promotionChange(current: string | undefined, r: PromotionRecord): ConfigChange {
  const list = decodePromotions(current).filter((x) => x.tli !== r.tli);
  list.push(r);
  list.sort((a, b) => a.tli - b.tli);
  return { type: 'set_meta', key: PROMOTIONS_META_KEY, value: JSON.stringify(list.slice(-PROMOTIONS_KEPT)) };
}

/** A history file's text that biha wrote to reserve a number (no WAL on that timeline). */
export function isPlaceholderHistory(text: string): boolean {
  return text.includes(PLACEHOLDER_MARK);
}

/**
 * The history of timeline `current` from its history file's text (null: timeline 1, no file),
 * merged with the promotion records. Oldest first. Each line "parent switch-LSN ..." of the file
 * is the fork into the next timeline of the chain: the parent of the next line, or `current`.
 */
export function buildHistory(current: number, historyText: string | null, records: readonly PromotionRecord[]): HistoryItem[] {
  const forks = historyText === null ? [] : parseTimelineHistory(historyText);
  const byTli = new Map(records.map((r) => [r.tli, r]));
  return forks.map((f, i) => {
    const timeline = i + 1 < forks.length ? forks[i + 1]!.parentTli : current;
    const r = byTli.get(timeline);
    return { timeline, switch_lsn: formatLsn(f.switchLsn), time: r?.at ?? null, new_leader: r?.leader ?? null, reason: r?.reason ?? null };
  });
}

/**
 * Decides when the leader records a promotion: when the timeline reservation of its own term
 * commits (PostgreSQL is then promoted to that timeline). Elected in the term that follows a
 * TimeoutNow it received, the leader came from a switchover; otherwise from a failover (the same
 * rule as the callbacks' events).
 */
export class PromotionNotes {
  private transferTerm = -1;

  /** The leader in `term` asked this node to campaign now (raft TimeoutNow). */
  noteTimeoutNow(term: number): void {
    this.transferTerm = term + 1;
  }

  /** The record to add for a committed entry, or null when it is not this leader's reservation. */
  recordFor(e: Entry, soft: SoftState, selfId: number, now: Date): PromotionRecord | null {
    const r = reservationOf(e.change);
    if (!r || soft.role !== 'leader' || r.term !== soft.term) return null;
    return { tli: r.tli, term: r.term, leader: selfId, reason: r.term === this.transferTerm ? 'switchover' : 'failover', at: now.toISOString() };
  }
}
