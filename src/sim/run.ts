// Running one seed or a batch of seeds, and the one-line summary the CLI prints last.
import { Simulation } from './cluster.js';
import type { RunResult } from './cluster.js';
import { simOptions } from './options.js';
import type { SimOptions } from './options.js';
import type { TraceSink } from './trace.js';

export interface RunOptions extends Partial<SimOptions> {
  readonly seed: number;
  readonly nodes: number;
}

/** Runs one seed. With `sink` every trace line is passed to it; with `hash` the trace is hashed. */
export function runSeed(opts: RunOptions, trace?: { sink?: TraceSink; hash?: boolean }): RunResult {
  return new Simulation(simOptions(opts), trace).run();
}

export interface BatchSummary {
  runs: number;
  violations: number;
  failedSeeds: number[];
  elections: number;
  failovers: number;
  switchovers: number;
  maxFailoverMs: number;
  ackedWrites: number;
  lostAsyncWrites: number;
  rewinds: number;
  maxHealElectMs: number;
  maxConvergeMs: number;
  /** Longest total time in one run during which two databases accepted writes (fencing windows). */
  maxDbOverlapMs: number;
  simMs: number;
}

export function emptySummary(): BatchSummary {
  return {
    runs: 0, violations: 0, failedSeeds: [], elections: 0, failovers: 0, switchovers: 0, maxFailoverMs: 0,
    ackedWrites: 0, lostAsyncWrites: 0, rewinds: 0, maxHealElectMs: 0, maxConvergeMs: 0, maxDbOverlapMs: 0, simMs: 0,
  };
}

export function addRun(s: BatchSummary, r: RunResult): void {
  s.runs++;
  s.violations += r.violations.length;
  if (r.violations.length > 0) s.failedSeeds.push(r.seed);
  const st = r.stats;
  s.elections += st.elections;
  s.failovers += st.failovers;
  s.switchovers += st.switchovers;
  s.maxFailoverMs = Math.max(s.maxFailoverMs, st.maxFailoverMs);
  s.ackedWrites += st.ackedWrites;
  s.lostAsyncWrites += st.lostAsyncWrites;
  s.rewinds += st.rewinds;
  s.maxHealElectMs = Math.max(s.maxHealElectMs, st.healElectMs);
  s.maxConvergeMs = Math.max(s.maxConvergeMs, st.convergeMs);
  s.maxDbOverlapMs = Math.max(s.maxDbOverlapMs, st.dbOverlapMs);
  s.simMs += st.simMs;
}

/** Runs `count` consecutive seeds from `seedBase`; `onResult` sees each result as it completes. */
export function runBatch(
  base: Omit<RunOptions, 'seed'> & { readonly seedBase: number; readonly count: number },
  onResult?: (r: RunResult) => void,
): BatchSummary {
  const { seedBase, count, ...rest } = base;
  const s = emptySummary();
  for (let i = 0; i < count; i++) {
    const r = runSeed({ ...rest, seed: seedBase + i });
    addRun(s, r);
    onResult?.(r);
  }
  return s;
}

/** The CLI's last line: `sim: N runs, V violations, ...`. */
export function summaryLine(s: BatchSummary, elapsedMs: number): string {
  return (
    `sim: ${s.runs} runs, ${s.violations} violations, ${s.elections} elections, ${s.failovers} failovers, ` +
    `${s.switchovers} switchovers, max failover ${s.maxFailoverMs} ms, max heal election ${s.maxHealElectMs} ms, ` +
    `max converge ${s.maxConvergeMs} ms, ${s.ackedWrites} acked writes, ${s.lostAsyncWrites} lost async writes, ` +
    `${s.rewinds} rewinds, max db overlap ${Math.round(s.maxDbOverlapMs)} ms, ${(s.simMs / 1000).toFixed(0)} simulated s, elapsed ${(elapsedMs / 1000).toFixed(1)} s`
  );
}
