// The controller's JSON log read back after a run: when each state change and NC action happened.
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface LogEvent {
  t: number;
  msg: string;
  ms?: number;
  /** Every field of the log line. */
  fields: Record<string, unknown>;
}

/** Anything that knows where node i's data directory is (TestCluster, NsCluster). */
export interface HasPgdata {
  pgdata(i: number): string;
}

/** Node i's controller.log lines written at or after `sinceWall` (wall clock ms). */
export function logEvents(c: HasPgdata, i: number, sinceWall: number): LogEvent[] {
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

/** Node i's controller.log messages from `fromWall` to `toWall`, at most `max` lines, each "+N ms msg" from `zero`. */
export function excerpt(c: HasPgdata, i: number, zero: number, fromWall: number, toWall: number, max = 40): string[] {
  return logEvents(c, i, fromWall)
    .filter((e) => e.t <= toWall)
    .slice(0, max)
    .map((e) => `${e.t - zero >= 0 ? '+' : ''}${e.t - zero} ms ${e.msg}${e.ms !== undefined ? ` (took ${e.ms} ms)` : ''}`);
}
