// The controller's JSON log read back after a run: when each state change and NC action happened.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { TestCluster } from '../../test/helpers/cluster.js';

export interface LogEvent {
  t: number;
  msg: string;
  ms?: number;
  /** Every field of the log line. */
  fields: Record<string, unknown>;
}

/** Node i's controller.log lines written at or after `sinceWall` (wall clock ms). */
export function logEvents(c: TestCluster, i: number, sinceWall: number): LogEvent[] {
  let text = '';
  try {
    text = fs.readFileSync(path.join(c.pgdata(i), 'pg_biha', 'log', 'controller.log'), 'utf8');
  } catch {
    return [];
  }
  const out: LogEvent[] = [];
  for (const l of text.split('\n')) {
    if (!l.startsWith('{')) continue;
    try {
      const j = JSON.parse(l) as Record<string, unknown> & { time?: string; msg?: string; ms?: number };
      const t = j.time ? Date.parse(j.time) : NaN;
      if (!Number.isFinite(t) || t < sinceWall) continue;
      out.push({ t, msg: j.msg ?? '', ...(typeof j.ms === 'number' ? { ms: j.ms } : {}), fields: j });
    } catch {
      // a line cut by kill -9
    }
  }
  return out;
}

export function firstAt(ev: readonly LogEvent[], re: RegExp): LogEvent | undefined {
  return ev.find((e) => re.test(e.msg));
}

/** "label +N ms" for each found event, relative to `zero` (wall clock ms). */
export function timeline(ev: readonly LogEvent[], zero: number, marks: ReadonlyArray<[string, RegExp]>): string {
  return marks
    .map(([label, re]) => {
      const e = firstAt(ev, re);
      return e ? `${label} +${e.t - zero} ms${e.ms !== undefined ? ` (took ${e.ms} ms)` : ''}` : `${label} -`;
    })
    .join(', ');
}
