// The simulated network between nodes. Two channels per ordered pair of nodes, as in the product:
// `ctl` carries the controllers' BCP messages, `wal` the PostgreSQL replication connection. Each
// channel of each direction can be cut on its own, which gives symmetric, asymmetric (one-way),
// bridge and ring partitions, and cuts of the control channel alone or of replication alone.
// Control messages can be lost, duplicated, delayed and reordered; the replication connection is a
// TCP stream, so it delivers in order and a loss resets it (see cluster.ts).
import type { Prng } from './prng.js';

export type Channel = 'ctl' | 'wal';

/** Highest node id the simulator supports (replacement nodes get fresh ids). */
export const MAX_NODE_ID = 63;
const SIDE = MAX_NODE_ID + 1;

export interface NetQuality {
  /** Probability that a control message is lost (and that a replication chunk resets the stream). */
  readonly loss: number;
  /** Probability that a control message is delivered twice. */
  readonly dup: number;
  /** Probability that a message gets an extra delay of up to `reorderMs` (reordering). */
  readonly reorder: number;
  readonly minDelayMs: number;
  readonly maxDelayMs: number;
  readonly reorderMs: number;
}

export const CALM_NETWORK: NetQuality = Object.freeze({
  loss: 0,
  dup: 0,
  reorder: 0,
  minDelayMs: 0.3,
  maxDelayMs: 3,
  reorderMs: 0,
});

export class Network {
  private readonly blocked: Record<Channel, Uint8Array> = {
    ctl: new Uint8Array(SIDE * SIDE),
    wal: new Uint8Array(SIDE * SIDE),
  };
  private cuts = 0;
  quality: NetQuality = CALM_NETWORK;

  constructor(private readonly rng: Prng) {}

  /** True when `from` can currently reach `to` on `ch`. */
  connected(ch: Channel, from: number, to: number): boolean {
    return this.blocked[ch][from * SIDE + to] === 0;
  }

  /** Both directions of `ch` work between a and b. */
  linked(ch: Channel, a: number, b: number): boolean {
    return this.connected(ch, a, b) && this.connected(ch, b, a);
  }

  /** True when no link is cut. */
  get whole(): boolean {
    return this.cuts === 0;
  }

  cut(ch: Channel, from: number, to: number): void {
    const i = from * SIDE + to;
    if (this.blocked[ch][i] === 0) {
      this.blocked[ch][i] = 1;
      this.cuts++;
    }
  }

  /** Cuts a -> b and b -> a on the given channels. */
  cutBoth(a: number, b: number, channels: readonly Channel[]): void {
    for (const ch of channels) {
      this.cut(ch, a, b);
      this.cut(ch, b, a);
    }
  }

  healAll(): void {
    this.blocked.ctl.fill(0);
    this.blocked.wal.fill(0);
    this.cuts = 0;
  }

  /** Symmetric partition: nodes in different groups cannot talk. */
  split(groups: readonly (readonly number[])[], channels: readonly Channel[]): void {
    for (let i = 0; i < groups.length; i++) {
      for (let j = i + 1; j < groups.length; j++) {
        for (const a of groups[i] ?? []) for (const b of groups[j] ?? []) this.cutBoth(a, b, channels);
      }
    }
  }

  /** Asymmetric partition: messages from `senders` to `receivers` are lost, the reverse direction works. */
  oneWay(senders: readonly number[], receivers: readonly number[], channels: readonly Channel[]): void {
    for (const ch of channels) for (const a of senders) for (const b of receivers) if (a !== b) this.cut(ch, a, b);
  }

  /** Bridge: two sides that cannot talk to each other, and one node that talks to both. */
  bridge(left: readonly number[], right: readonly number[], channels: readonly Channel[]): void {
    this.split([left, right], channels);
  }

  /**
   * Majorities ring: nodes sit on a ring and each one reaches only the `reach` nearest on each
   * side, so every node sees a majority but no two far-apart nodes see each other.
   */
  ring(nodes: readonly number[], reach: number, channels: readonly Channel[]): void {
    const n = nodes.length;
    for (let i = 0; i < n; i++) {
      for (let j = i + 1; j < n; j++) {
        const d = Math.min(j - i, n - (j - i));
        if (d > reach) this.cutBoth(nodes[i] as number, nodes[j] as number, channels);
      }
    }
  }

  /**
   * Delays (ms) of the copies of one control message: empty when it is lost, two entries when it
   * is duplicated. The link itself is checked by the caller at send and at delivery time.
   */
  controlDelays(): number[] {
    const q = this.quality;
    if (q.loss > 0 && this.rng.next() < q.loss) return [];
    const first = this.delay(q);
    if (q.dup > 0 && this.rng.next() < q.dup) return [first, this.delay(q)];
    return [first];
  }

  /** Delay of one replication chunk or acknowledgement, or -1 when the stream resets. */
  streamDelay(): number {
    const q = this.quality;
    if (q.loss > 0 && this.rng.next() < q.loss / 4) return -1;
    return this.delay(q);
  }

  private delay(q: NetQuality): number {
    let d = q.minDelayMs + (q.maxDelayMs - q.minDelayMs) * this.rng.next();
    if (q.reorder > 0 && this.rng.next() < q.reorder) d += q.reorderMs * this.rng.next();
    return d;
  }

  /** A short description of the cut links for the trace. */
  describe(ids: readonly number[]): string {
    if (this.cuts === 0) return 'whole';
    const parts: string[] = [];
    for (const ch of ['ctl', 'wal'] as const) {
      const cut: string[] = [];
      for (const a of ids) for (const b of ids) if (a !== b && !this.connected(ch, a, b)) cut.push(`${a}>${b}`);
      if (cut.length > 0) parts.push(`${ch} cut ${cut.join(',')}`);
    }
    return parts.join('; ');
  }
}
