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
export function runSeed(opts: RunOptions, trace?: { sink?: TraceSink; hash?: boolean }): Promise<RunResult> {
  return new Simulation(simOptions(opts), trace).run();
}

export interface BatchSummary {
  runs: number;
  violations: number;
  failedSeeds: number[];
  elections: number;
  failovers: number;
  switchovers: number;
  /** Replication-only cuts of the leader, and leaders that gave way for want of WAL on their followers. */
  replicationCuts: number;
  gaveWay: number;
  maxFailoverMs: number;
  ackedWrites: number;
  lostAsyncWrites: number;
  rewinds: number;
  nodeErrors: number;
  votesWithheld: number;
  reusedTimelines: number;
  missingSlots: number;
  maxHealElectMs: number;
  maxConvergeMs: number;
  /** Longest total time in one run during which two databases accepted writes (fencing windows). */
  maxDbOverlapMs: number;
  /** Longest such time with a host resumed from a freeze longer than its lease (counted apart). */
  maxFrozenOverlapMs: number;
  simMs: number;
}

export function emptySummary(): BatchSummary {
  return {
    runs: 0, violations: 0, failedSeeds: [], elections: 0, failovers: 0, switchovers: 0, replicationCuts: 0, gaveWay: 0, maxFailoverMs: 0,
    ackedWrites: 0, lostAsyncWrites: 0, rewinds: 0, nodeErrors: 0, votesWithheld: 0, reusedTimelines: 0, missingSlots: 0, maxHealElectMs: 0, maxConvergeMs: 0,
    maxDbOverlapMs: 0, maxFrozenOverlapMs: 0, simMs: 0,
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
  s.replicationCuts += st.replicationCuts;
  s.gaveWay += st.gaveWay;
  s.maxFailoverMs = Math.max(s.maxFailoverMs, st.maxFailoverMs);
  s.ackedWrites += st.ackedWrites;
  s.lostAsyncWrites += st.lostAsyncWrites;
  s.rewinds += st.rewinds;
  s.nodeErrors += st.nodeErrors;
  s.votesWithheld += st.votesWithheld;
  s.reusedTimelines += st.reusedTimelines;
  s.missingSlots += st.missingSlots;
  s.maxHealElectMs = Math.max(s.maxHealElectMs, st.healElectMs);
  s.maxConvergeMs = Math.max(s.maxConvergeMs, st.convergeMs);
  s.maxDbOverlapMs = Math.max(s.maxDbOverlapMs, st.dbOverlapMs - st.frozenOverlapMs);
  s.maxFrozenOverlapMs = Math.max(s.maxFrozenOverlapMs, st.frozenOverlapMs);
  s.simMs += st.simMs;
}

/** Runs `count` consecutive seeds from `seedBase`; `onResult` sees each result as it completes. */
export async function runBatch(
  base: Omit<RunOptions, 'seed'> & { readonly seedBase: number; readonly count: number },
  onResult?: (r: RunResult) => void,
): Promise<BatchSummary> {
  const { seedBase, count, ...rest } = base;
  const s = emptySummary();
  for (let i = 0; i < count; i++) {
    const r = await runSeed({ ...rest, seed: seedBase + i });
    addRun(s, r);
    onResult?.(r);
  }
  return s;
}

/** The CLI's last line: `sim: N runs, V violations, ...`. */
export function summaryLine(s: BatchSummary, elapsedMs: number): string {
  return (
    `sim: ${s.runs} runs, ${s.violations} violations, ${s.elections} elections, ${s.failovers} failovers, ` +
    `${s.switchovers} switchovers, ${s.replicationCuts} replication cuts, ${s.gaveWay} gave way, max failover ${s.maxFailoverMs} ms, max heal election ${s.maxHealElectMs} ms, ` +
    `max converge ${s.maxConvergeMs} ms, ${s.ackedWrites} acked writes, ${s.lostAsyncWrites} lost async writes, ` +
    `${s.rewinds} rewinds, ${s.nodeErrors} node errors, ${s.votesWithheld} votes withheld, ${s.reusedTimelines} reused timelines, ${s.missingSlots} missing slots, max db overlap ${Math.round(s.maxDbOverlapMs)} ms ` +
    `(+${Math.round(s.maxFrozenOverlapMs)} ms after a freeze), ${(s.simMs / 1000).toFixed(0)} simulated s, elapsed ${(elapsedMs / 1000).toFixed(1)} s`
  );
}
