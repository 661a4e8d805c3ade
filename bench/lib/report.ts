// Statistics and printing shared by the benchmarks: every figure is a median over repeated runs
// with min and max, and, where a target is set, whether the median meets it.
import * as fs from 'node:fs';

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

export interface Summary {
  median: number;
  min: number;
  max: number;
  n: number;
}

export function summary(xs: readonly number[]): Summary {
  return { median: median(xs), min: Math.min(...xs), max: Math.max(...xs), n: xs.length };
}

export function fmtMs(ms: number): string {
  if (Math.abs(ms) >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  if (Math.abs(ms) >= 10) return `${ms.toFixed(0)} ms`;
  return `${ms.toFixed(2)} ms`;
}

export interface Target {
  max: number;
  text: string;
}

/** Prints "what: median X (min, max, n runs)" and, with a target, "met" or "MISSED". */
export function line(what: string, xs: readonly number[], fmt: (x: number) => string, target?: Target): void {
  if (xs.length === 0) {
    console.log(`  ${what}: no successful run`);
    return;
  }
  const s = summary(xs);
  const verdict = target ? `   target ${target.text}: ${s.median <= target.max ? 'met' : 'MISSED'}` : '';
  console.log(`  ${what}: median ${fmt(s.median)} (min ${fmt(s.min)}, max ${fmt(s.max)}, ${s.n} runs)${verdict}`);
}

/** BENCH_RUNS, at least 5. */
export function benchRuns(): number {
  return Math.max(5, Number(process.env['BENCH_RUNS'] ?? 5) || 5);
}

/** BENCH_RUNS, or `def` when unset; a positive integer, else an error that says so. */
export function benchRunsOr(def: number): number {
  const v = process.env['BENCH_RUNS'];
  if (v === undefined || v === '') return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`BENCH_RUNS="${v}" is not a positive whole number of runs; use for example BENCH_RUNS=3`);
  return n;
}

/** The 1-, 5- and 15-minute load averages from /proc/loadavg. */
export function loadAverage(): string {
  try {
    return fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  } catch {
    return 'unknown';
  }
}
