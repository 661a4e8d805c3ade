// npm run sim -- --seeds N --nodes K [--seed-base B] [--seed S --trace] [--mode sync|async]
// Runs seeded simulated clusters and prints one line per violation (with the replay command) and,
// last, the summary line `sim: N runs, V violations, ...`. Exits 1 when V > 0.
import { Command, InvalidArgumentError } from 'commander';
import { INVARIANTS } from './invariants.js';
import { MAX_NODES, MIN_NODES, SCENARIOS, SYNC_MODES } from './options.js';
import type { Scenario, SyncMode } from './options.js';
import { addRun, emptySummary, runSeed, summaryLine } from './run.js';
import type { RunOptions } from './run.js';
import type { RunResult } from './cluster.js';

function intArg(min: number, max: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`expected an integer from ${min} to ${max}`);
    return n;
  };
}

function choice<T extends string>(values: readonly T[]) {
  return (v: string): T => {
    if (!(values as readonly string[]).includes(v)) throw new InvalidArgumentError(`expected one of ${values.join(', ')}`);
    return v as T;
  };
}

interface CliOptions {
  seeds: number;
  nodes: number;
  seedBase: number;
  seed?: number;
  trace?: boolean;
  mode?: SyncMode;
  scenario?: Scenario;
  faultMs?: number;
  nquorum?: number;
  minnodes?: number;
  tickMs?: number;
  fenceMs?: number;
  quiet?: boolean;
}

const program = new Command('sim')
  .description('deterministic simulation of biha clusters: faults, failovers, invariants')
  .option('--seeds <n>', 'number of seeded runs', intArg(1, 10_000_000), 100)
  .option('--nodes <k>', `cluster size (${MIN_NODES}-${MAX_NODES})`, intArg(MIN_NODES, MAX_NODES), 3)
  .option('--seed-base <b>', 'first seed of the batch', intArg(0, 2 ** 31), 1)
  .option('--seed <s>', 'run this one seed only', intArg(0, 2 ** 31))
  .option('--trace', 'print every event of the run (with --seed)')
  .option('--mode <mode>', 'sync or async (default: even seeds sync, odd seeds async)', choice(SYNC_MODES))
  .option('--scenario <name>', `${SCENARIOS.join(' or ')} (default: derived from the seed)`, choice(SCENARIOS))
  .option('--fault-ms <ms>', 'length of the fault phase in simulated ms', intArg(0, 3_600_000))
  .option('--nquorum <n>', 'votes needed to win (default: majority)', intArg(1, MAX_NODES))
  .option('--minnodes <n>', 'live nodes a leader needs to stay writable (default: majority)', intArg(1, MAX_NODES))
  .option('--tick-ms <ms>', 'controller tick period (default 10)', intArg(1, 1000))
  .option('--fence-ms <ms>', 'time PostgreSQL needs to stop accepting writes (default 13)', intArg(0, 10_000))
  .option('--quiet', 'print only violations and the summary')
  .parse();

const o = program.opts<CliOptions>();

function replay(r: RunResult): string {
  const extra = [
    o.faultMs !== undefined ? ` --fault-ms ${o.faultMs}` : '',
    o.nquorum !== undefined ? ` --nquorum ${o.nquorum}` : '',
    o.minnodes !== undefined ? ` --minnodes ${o.minnodes}` : '',
    o.tickMs !== undefined ? ` --tick-ms ${o.tickMs}` : '',
    o.fenceMs !== undefined ? ` --fence-ms ${o.fenceMs}` : '',
  ].join('');
  return `npm run sim -- --seed ${r.seed} --nodes ${r.nodes} --mode ${r.mode} --scenario ${r.scenario}${extra} --trace`;
}

function report(r: RunResult): void {
  for (const v of r.violations) {
    console.log(
      `violation: seed ${r.seed} step ${v.step} t=${v.time.toFixed(3)} ms invariant ${v.invariant} (${INVARIANTS[v.invariant]}): ${v.description}`,
    );
    console.log(`  replay: ${replay(r)}`);
  }
}

const base: Omit<RunOptions, 'seed'> = {
  nodes: o.nodes,
  ...(o.mode ? { mode: o.mode } : {}),
  ...(o.scenario ? { scenario: o.scenario } : {}),
  ...(o.faultMs !== undefined ? { faultMs: o.faultMs } : {}),
  ...(o.nquorum !== undefined ? { nquorum: o.nquorum } : {}),
  ...(o.minnodes !== undefined ? { minnodes: o.minnodes } : {}),
  ...(o.tickMs !== undefined ? { tickMs: o.tickMs } : {}),
  ...(o.fenceMs !== undefined ? { fenceDelayMs: o.fenceMs } : {}),
};

const started = Date.now();
const summary = emptySummary();
if (o.seed !== undefined) {
  const r = await runSeed({ ...base, seed: o.seed }, o.trace ? { sink: (line) => console.log(line) } : undefined);
  addRun(summary, r);
  if (!o.quiet) console.log(`seed ${r.seed}: ${r.mode} ${r.scenario} ${JSON.stringify(r.stats)}${r.traceHash ? ` trace ${r.traceHash}` : ''}`);
  report(r);
} else {
  let lastProgress = started;
  for (let i = 0; i < o.seeds; i++) {
    const r = await runSeed({ ...base, seed: o.seedBase + i });
    addRun(summary, r);
    report(r);
    const t = Date.now();
    if (!o.quiet && t - lastProgress > 10_000) {
      lastProgress = t;
      console.log(`... ${i + 1}/${o.seeds} runs, ${summary.violations} violations`);
    }
  }
  if (summary.failedSeeds.length > 0) console.log(`failed seeds: ${summary.failedSeeds.join(' ')}`);
}
console.log(summaryLine(summary, Date.now() - started));
process.exitCode = summary.violations > 0 ? 1 : 0;
