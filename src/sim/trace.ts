// The event trace of one run. Lines are built only when someone listens (a printer for --trace,
// or the hash used to prove that a seed replays identically), so untraced runs pay nothing.

export type TraceSink = (line: string) => void;

/** Incremental 53-bit string hash (two 32-bit lanes), stable across platforms. */
export class TraceHash {
  private h1 = 0xdeadbeef;
  private h2 = 0x41c6ce57;
  private lines = 0;

  add(line: string): void {
    let h1 = this.h1;
    let h2 = this.h2;
    for (let i = 0; i < line.length; i++) {
      const ch = line.charCodeAt(i);
      h1 = Math.imul(h1 ^ ch, 2654435761);
      h2 = Math.imul(h2 ^ ch, 1597334677);
    }
    h1 = Math.imul(h1 ^ 10, 2654435761);
    h2 = Math.imul(h2 ^ 10, 1597334677);
    this.h1 = h1;
    this.h2 = h2;
    this.lines++;
  }

  get count(): number {
    return this.lines;
  }

  /** Hex digest of everything added so far. */
  digest(): string {
    let h1 = Math.imul(this.h1 ^ (this.h1 >>> 16), 2246822507);
    h1 ^= Math.imul(this.h2 ^ (this.h2 >>> 13), 3266489909);
    let h2 = Math.imul(this.h2 ^ (this.h2 >>> 16), 2246822507);
    h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
    const v = 4294967296 * (2097151 & h2) + (h1 >>> 0);
    return v.toString(16).padStart(14, '0');
  }
}
