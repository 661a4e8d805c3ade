// A binary min-heap of timed events. Ties on time are broken by insertion order, which keeps the
// simulation deterministic.

export class EventQueue<T> {
  private times: number[] = [];
  private seqs: number[] = [];
  private items: T[] = [];
  private seq = 0;

  get size(): number {
    return this.items.length;
  }

  push(time: number, item: T): void {
    const times = this.times;
    const seqs = this.seqs;
    const items = this.items;
    let i = items.length;
    const s = this.seq++;
    times.push(time);
    seqs.push(s);
    items.push(item);
    while (i > 0) {
      const p = (i - 1) >> 1;
      const pt = times[p] as number;
      if (pt < time || (pt === time && (seqs[p] as number) < s)) break;
      times[i] = pt;
      seqs[i] = seqs[p] as number;
      items[i] = items[p] as T;
      i = p;
    }
    times[i] = time;
    seqs[i] = s;
    items[i] = item;
  }

  /** Time of the earliest event (Infinity when empty). */
  peekTime(): number {
    return this.items.length === 0 ? Infinity : (this.times[0] as number);
  }

  /** Removes and returns the earliest event; call only when size > 0. */
  pop(): T {
    const times = this.times;
    const seqs = this.seqs;
    const items = this.items;
    const top = items[0] as T;
    const lastT = times.pop() as number;
    const lastS = seqs.pop() as number;
    const lastI = items.pop() as T;
    const n = items.length;
    if (n === 0) return top;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      let c = l;
      if (r < n) {
        const lt = times[l] as number;
        const rt = times[r] as number;
        if (rt < lt || (rt === lt && (seqs[r] as number) < (seqs[l] as number))) c = r;
      }
      const ct = times[c] as number;
      if (lastT < ct || (lastT === ct && lastS < (seqs[c] as number))) break;
      times[i] = ct;
      seqs[i] = seqs[c] as number;
      items[i] = items[c] as T;
      i = c;
    }
    times[i] = lastT;
    seqs[i] = lastS;
    items[i] = lastI;
    return top;
  }
}
