// The write-gap measurement the failover and switchover benchmarks share, whatever runs the
// cluster: a client inserts every 20 ms through a multi-host target_session_attrs=read-write URI
// (measureWriteGap of src/client/multihost.ts) while an action (a kill -9, a switchover command)
// runs; the figure is the first write a new leader acknowledged after the action minus the last
// acknowledged write before it.
import { performance } from 'node:perf_hooks';
import type { GapResult } from '../../src/client/multihost.js';
import { measureWriteGap, parseMultiHostUri } from '../../src/client/multihost.js';
import { sleep } from '../../test/helpers/cluster.js';

/** Times in ms from the start of the write loop. */
export interface FirstWrite {
  /** When the new leader acknowledged its first write after the action. */
  at: number;
  /** Its port. */
  port: number;
  /** The last acknowledged write before it (maybe an in-flight insert the old leader answered just after the action). */
  prev: number;
}

export interface GapAround<T> {
  /** What the action returned. */
  result: T;
  /** When the action started, from the start of the write loop, and as wall-clock time (Date.now()). */
  actionAt: number;
  actionWall: number;
  /** How long the action took to return. */
  actionMs: number;
  first: FirstWrite | null;
  loop: GapResult;
}

export interface GapAroundOptions<T> {
  /** postgresql://…@h1,h2,h3/db?target_session_attrs=read-write&… */
  uri: string;
  /** How long the write loop runs in all. */
  seconds: number;
  /** Writes before the action starts. */
  warmupMs: number;
  table?: string;
  /** Whether an acknowledgement from this port after the action is the new leader's. */
  isNewLeader: (port: number) => boolean;
  action: () => T | Promise<T>;
}

/** Runs the write loop, the action after warmupMs, and waits for the loop to end. */
export async function writeGapAround<T>(o: GapAroundOptions<T>): Promise<GapAround<T>> {
  let actionAt = Infinity;
  let lastAck = 0;
  let first: FirstWrite | null = null;
  const t0 = performance.now();
  const loopP = measureWriteGap(parseMultiHostUri(o.uri), {
    periodMs: 20,
    seconds: o.seconds,
    table: o.table ?? 'bench_gap',
    onAck: (at, port) => {
      if (at > actionAt && !first && o.isNewLeader(port)) first = { at, port, prev: lastAck };
      lastAck = at;
    },
  });
  await sleep(o.warmupMs);
  const actionWall = Date.now();
  actionAt = performance.now() - t0;
  const result = await o.action();
  const actionMs = performance.now() - t0 - actionAt;
  const loop = await loopP;
  return { result, actionAt, actionWall, actionMs, first, loop };
}

/** The gap and "action → first acknowledged write" of a measurement, or null without a new leader's write. */
export function gapOf(g: Pick<GapAround<unknown>, 'first' | 'actionAt'>): { gapMs: number; toFirstWriteMs: number } | null {
  return g.first ? { gapMs: g.first.at - g.first.prev, toFirstWriteMs: g.first.at - g.actionAt } : null;
}
