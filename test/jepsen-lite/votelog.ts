// Follows the controllers' logs during a run and keeps every "hard state persisted" line (one per
// persisted raft term/vote change, see logs.ts). The copy of the logs taken at the end of the run
// is read too; following them while the run goes on also keeps the lines that a later rewrite of
// the file removes (an automatic pg_rewind copies the source's pg_biha/log/controller.log over the
// node's own and then puts back the copy saved before the rewind, so lines written in between are
// gone from the final file).
import * as fs from 'node:fs';
import { parseVoteLine } from './logs.js';
import type { VoteEvent } from './logs.js';

const GUARD = 64;

/** One log file read incrementally: new bytes since the last read, or all of it after a rewrite. */
export class LogFollower {
  private offset = 0;
  private guard = Buffer.alloc(0);
  private ino = 0;
  private partial = '';

  constructor(
    readonly file: string,
    readonly node: number,
  ) {}

  /** The vote lines written since the last call (a line may come again after a rewrite). */
  poll(maxBytes = 8 << 20): VoteEvent[] {
    let fd: number;
    try {
      fd = fs.openSync(this.file, 'r');
    } catch {
      return [];
    }
    try {
      const st = fs.fstatSync(fd);
      let from = this.offset;
      // The file was replaced, truncated or rewritten below what was read: read it from the start.
      let rewritten = st.ino !== this.ino || st.size < this.offset;
      if (!rewritten && this.guard.length > 0) {
        const g = Buffer.alloc(this.guard.length);
        fs.readSync(fd, g, 0, g.length, this.offset - this.guard.length);
        rewritten = !g.equals(this.guard);
      }
      if (rewritten) {
        from = 0;
        this.partial = '';
        this.ino = st.ino;
      }
      const len = Math.min(st.size - from, maxBytes);
      if (len <= 0) return [];
      const buf = Buffer.alloc(len);
      const got = fs.readSync(fd, buf, 0, len, from);
      this.offset = from + got;
      const keep = Math.min(GUARD, this.offset);
      this.guard = Buffer.alloc(keep);
      fs.readSync(fd, this.guard, 0, keep, this.offset - keep);
      const text = this.partial + buf.subarray(0, got).toString('utf8');
      const lines = text.split('\n');
      this.partial = lines.pop() ?? '';
      const out: VoteEvent[] = [];
      for (const l of lines) {
        const v = parseVoteLine(l, this.node);
        if (v) out.push(v);
      }
      return out;
    } finally {
      fs.closeSync(fd);
    }
  }
}
