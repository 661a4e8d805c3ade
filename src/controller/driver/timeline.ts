// Timelines: may this node follow a leader (is its WAL a prefix of the leader's), and how a leader
// makes PostgreSQL switch to the timeline number the cluster reserved for it.
//
// PostgreSQL picks a promotion's timeline as one more than the newest history file it has, so two
// nodes that never saw each other's history pick the same number for different WAL. A timeline
// number alone then says nothing about the WAL on it. biha makes numbers unique: a leader reserves
// its number through the raft log before promoting (RaftNode.timelineToPromote), and the reserved
// number is what PostgreSQL must pick (placeholders fill the gap, see `placeholdersFor`). With
// unique numbers, "the same timeline at a position" means "the same WAL up to there", and two
// histories are compared position by position (`divergence`), switch points included.
import type { TimelineFork, TimelineInfo } from './types.js';

interface Segment {
  readonly tli: number;
  /** First LSN on this timeline; it runs until the next segment's start. */
  readonly start: number;
}

function segments(info: TimelineInfo): Segment[] {
  const out: Segment[] = [];
  let start = 0;
  for (const f of info.history) {
    out.push({ tli: f.parentTli, start });
    start = f.switchLsn;
  }
  out.push({ tli: info.tli, start });
  return out;
}

/** The timeline a history puts position `lsn` on. */
export function timelineAt(info: TimelineInfo, lsn: number): number {
  return tliAt(segments(info), lsn);
}

function tliAt(segs: readonly Segment[], lsn: number): number {
  let t = segs[0]!.tli;
  for (const s of segs) {
    if (s.start > lsn) break;
    t = s.tli;
  }
  return t;
}

/** Where a node's WAL leaves the leader's history: the first LSN on another timeline, and that timeline there. */
export interface Divergence {
  readonly switchLsn: number;
  readonly nextTli: number;
}

/**
 * Can a node whose WAL ends at `end` on timeline `local.tli` (with `local.history`) follow a leader
 * with `leader`'s history? It can when every position before `end` lies on the same timeline in
 * both histories. Returns null when it can, else where they part. A history that is missing for a
 * timeline above 1 (its file could not be read) is compared by numbers only, as PostgreSQL does.
 */
export function divergence(local: TimelineInfo & { readonly end: number }, leader: TimelineInfo): Divergence | null {
  if (local.end <= 0) return null;
  if (local.tli > 1 && local.history.length === 0) return numbersOnly(local.tli, local.end, leader);
  const mine = segments(local);
  const theirs = segments(leader);
  const points = new Set<number>([0]);
  for (const s of mine) if (s.start < local.end) points.add(s.start);
  for (const s of theirs) if (s.start < local.end) points.add(s.start);
  for (const p of [...points].sort((a, b) => a - b)) {
    const t = tliAt(theirs, p);
    if (tliAt(mine, p) !== t) return { switchLsn: p, nextTli: t };
  }
  return null;
}

function numbersOnly(tli: number, end: number, leader: TimelineInfo): Divergence | null {
  if (tli === leader.tli) return null;
  if (tli > leader.tli) return { switchLsn: 0, nextTli: leader.tli };
  const idx = leader.history.findIndex((h) => h.parentTli === tli);
  if (idx < 0) return { switchLsn: 0, nextTli: leader.tli };
  const sw = leader.history[idx]!.switchLsn;
  const next = leader.history[idx + 1]?.parentTli ?? leader.tli;
  return end > sw ? { switchLsn: sw, nextTli: next } : null;
}

/**
 * The timeline numbers for which a promoting node must write a placeholder history file: every
 * number below `target` (timeline 1 has no file) that it has no file for. PostgreSQL's next
 * promotion then picks exactly `target` (one more than the newest file it finds counting up from
 * its timeline), and a standby on any older timeline finds every history file its walreceiver asks
 * the new primary for (it fetches each number between its timeline and the primary's, and fails
 * on a missing one). A placeholder names no WAL; it only keeps the number taken.
 */
export function placeholdersFor(target: number, have: ReadonlySet<number>): number[] {
  const out: number[] = [];
  for (let t = 2; t < target; t++) if (!have.has(t)) out.push(t);
  return out;
}

/** The history a new timeline `tli` forked from `parent` at `switchLsn` has. */
export function childHistory(parent: TimelineInfo, switchLsn: number): TimelineFork[] {
  return [...parent.history, { parentTli: parent.tli, switchLsn }];
}
