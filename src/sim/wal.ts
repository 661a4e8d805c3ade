// The WAL of one simulated PostgreSQL instance: a list of record ids, each with the timeline it
// was written on. Client writes have positive ids (1, 2, 3 ...), records PostgreSQL writes on
// its own (timeline switch at promotion, checkpoints) negative ids. Every id is written exactly
// once, at one position, by one primary; copies (streaming, basebackup) always copy a prefix and
// a rewind truncates to a prefix. Hence two logs that hold the same id at the same position share
// everything before it, and divergence after a failover is visible record by record.
import type { WalPos } from '../raft/types.js';

/** Timeline of an empty WAL (initdb). */
export const FIRST_TLI = 1;

export class WalLog {
  readonly ids: number[];
  readonly tlis: number[];

  constructor(ids: number[] = [], tlis: number[] = []) {
    if (ids.length !== tlis.length) throw new Error('ids and tlis differ in length');
    this.ids = ids;
    this.tlis = tlis;
  }

  /** Number of records; the LSN of the end of the WAL in this model. */
  get lsn(): number {
    return this.ids.length;
  }

  /** The timeline of the last record (the one this node is on). */
  get tli(): number {
    const n = this.tlis.length;
    return n === 0 ? FIRST_TLI : (this.tlis[n - 1] as number);
  }

  /** Id of the last record, 0 for an empty WAL. */
  get lastId(): number {
    const n = this.ids.length;
    return n === 0 ? 0 : (this.ids[n - 1] as number);
  }

  pos(): WalPos {
    return { tli: this.tli, lsn: this.ids.length };
  }

  append(id: number, tli: number): void {
    this.ids.push(id);
    this.tlis.push(tli);
  }

  /** True when this WAL holds `id` at position `pos` (0-based). */
  has(pos: number, id: number): boolean {
    return this.ids[pos] === id;
  }

  /** True when the first `len` records end with `lastId` (so they equal the other log's prefix). */
  endsWithAt(len: number, lastId: number): boolean {
    if (len === 0) return true;
    return this.ids[len - 1] === lastId;
  }

  /** True when this WAL is a prefix of `other` (possibly equal). */
  isPrefixOf(other: WalLog): boolean {
    return this.lsn <= other.lsn && other.endsWithAt(this.lsn, this.lastId);
  }

  /** Length of the longest common prefix (the switch point a rewind goes back to). */
  commonPrefix(other: WalLog): number {
    // Matching at position i implies matching everywhere before i, so binary search works.
    let lo = 0;
    let hi = Math.min(this.lsn, other.lsn);
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.ids[mid - 1] === other.ids[mid - 1]) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** Drops everything from `len` on and returns the dropped ids. */
  truncate(len: number): number[] {
    if (len >= this.ids.length) return [];
    const lost = this.ids.splice(len);
    this.tlis.splice(len);
    return lost;
  }

  clone(): WalLog {
    return new WalLog(this.ids.slice(), this.tlis.slice());
  }
}
