// npm run jepsen -- --nodes 3|5 --time SECONDS --nemesis LIST|all|main --mode sync|async [--seed S]
//   [--runs N] [--hb-period MS] [--hb-max-lost N] [--autorewind] [--keep-data] [--no-png]
//   npm run jepsen -- --cleanup | --report [--since DIR]
//   npm run jepsen -- --matrix [--matrix-runs 104] [--time 75] [--seed S] [--run-timeout S] [--dry-run]
// Runs jepsen-lite against real biha clusters in network namespaces (needs root, nft, ip).
import * as path from 'node:path';
import { Command } from 'commander';
import { cleanupStale } from './hosts.js';
import { runMatrix } from './matrix.js';
import { NEMESES, parseNemeses } from './nemesis.js';
import { ROOT } from './nodes.js';
import { report } from './report.js';
import { runJepsen } from './run.js';
import type { RunOptions } from './run.js';

function int(name: string, v: string, min: number, max: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be an integer in ${min}..${max}, not "${v}"`);
  return n;
}

/** The optional run settings (subnet, run id prefix, fault length, no_wal_on_follower) and their command-line form. */
function runExtras(o: { subnet?: string; runIdPrefix?: string; faultMs?: string; setNoWalOnFollower?: string }): { options: Partial<RunOptions>; args: string } {
  const options: { subnet?: number; runIdPrefix?: string; faultMs?: readonly [number, number]; noWalOnFollowerMs?: number } = {};
  let args = '';
  if (o.subnet !== undefined) {
    options.subnet = int('subnet', o.subnet, 1, 254);
    args += ` --subnet ${options.subnet}`;
  }
  if (o.runIdPrefix !== undefined) {
    if (!/^[a-z0-9]{1,2}$/.test(o.runIdPrefix)) throw new Error(`--run-id-prefix must be 1-2 lowercase letters or digits, not "${o.runIdPrefix}"`);
    options.runIdPrefix = o.runIdPrefix;
    args += ` --run-id-prefix ${o.runIdPrefix}`;
  }
  if (o.faultMs !== undefined) {
    const m = /^(\d+):(\d+)$/.exec(o.faultMs);
    if (!m) throw new Error(`--fault-ms must be A:B (milliseconds), not "${o.faultMs}"`);
    const a = int('fault-ms', m[1]!, 1000, 3_600_000);
    const b = int('fault-ms', m[2]!, a, 3_600_000);
    options.faultMs = [a, b];
    args += ` --fault-ms ${a}:${b}`;
  }
  if (o.setNoWalOnFollower !== undefined) {
    options.noWalOnFollowerMs = int('set-no-wal-on-follower', o.setNoWalOnFollower, 0, 86_400_000);
    args += ` --set-no-wal-on-follower ${options.noWalOnFollowerMs}`;
  }
  return { options, args };
}

async function main(argv: string[]): Promise<number> {
  const p = new Command('jepsen')
    .description('jepsen-lite: faults against a real biha cluster in network namespaces; checks lost writes, split-brain, consensus and convergence')
    .option('--nodes <n>', '3 or 5', '3')
    .option('--time <seconds>', 'length of the fault phase', '120')
    .option('--nemesis <list>', `comma-separated list, "main" or "all": ${NEMESES.join(', ')}`, 'main')
    .option('--mode <mode>', 'sync (bihactl init --sync-standbys=1 for 3 nodes, 2 for 5) or async', 'sync')
    .option('--seed <s>', 'seed of the fault schedule (default: random)')
    .option('--runs <n>', 'run this many times with seeds seed, seed+1, ...', '1')
    .option('--hb-period <ms>', 'heartbeat_send_period', '200')
    .option('--hb-max-lost <n>', 'heartbeat_max_lost', '10')
    .option('--keep-data', 'keep the data directories under /tmp')
    .option('--autorewind', 'set biha.autorewind = true on every node (default: false, the product default)')
    .option('--subnet <n>', 'use the network 10.213.N.0/24 (default: a random free one)')
    .option('--run-id-prefix <p>', 'run ids start with these 1-2 letters or digits')
    .option('--fault-ms <a:b>', 'length of one fault interval, from A to B ms (default: from 3 to 6 election timeouts, at least 6000:12000)')
    .option('--set-no-wal-on-follower <ms>', 'set biha.no_wal_on_follower to MS once the cluster is formed')
    .option('--no-png', 'do not convert the timeline to PNG')
    .option('--cleanup', 'only remove namespaces, bridges and processes that dead runs left behind')
    .option('--report', 'only print a Markdown table of the runs in test/jepsen-lite/runs')
    .option('--since <dir>', 'with --report: runs whose directory name sorts at or after this one')
    .option('--matrix', 'the full matrix: --matrix-runs runs over 3/5 nodes x sync/async, every nemesis in turn, one child process each; prints the results table')
    .option('--matrix-runs <n>', 'with --matrix: number of runs', '104')
    .option('--run-timeout <seconds>', 'with --matrix: hard limit of one run (default: --time + 480)')
    .option('--matrix-slice <a:b>', 'with --matrix: only runs a..b of the plan (to run it in parts)')
    .option('--dry-run', 'with --matrix: print the plan and the estimated time only')
    .allowExcessArguments(false);
  p.parse(argv.filter((a) => a !== '--'), { from: 'user' });
  const o = p.opts<{ nodes: string; time: string; nemesis: string; mode: string; seed?: string; runs: string; hbPeriod: string; hbMaxLost: string; keepData?: boolean; autorewind?: boolean; png: boolean; cleanup?: boolean; report?: boolean; subnet?: string; runIdPrefix?: string; faultMs?: string; setNoWalOnFollower?: string; since?: string; matrix?: boolean; matrixRuns: string; runTimeout?: string; matrixSlice?: string; dryRun?: boolean }>();
  if (o.report) {
    process.stdout.write(report(path.join(ROOT, 'test', 'jepsen-lite', 'runs'), o.since ?? ''));
    return 0;
  }
  if (o.matrix) {
    // The matrix's runs have 75 s of faults unless --time says otherwise (the results' convention).
    const timeSec = p.getOptionValueSource('time') === 'default' ? 75 : int('time', o.time, 10, 86_400);
    const seed = o.seed !== undefined ? int('seed', o.seed, 0, 2 ** 31) : 1000;
    const runTimeoutSec = o.runTimeout !== undefined ? int('run-timeout', o.runTimeout, 60, 86_400) : undefined;
    if (!o.dryRun && process.getuid?.() !== 0) throw new Error('jepsen-lite needs root (network namespaces, nft)');
    const runs = int('matrix-runs', o.matrixRuns, 1, 10_000);
    let slice: [number, number] | undefined;
    if (o.matrixSlice !== undefined) {
      const m = /^(\d+):(\d+)$/.exec(o.matrixSlice);
      if (!m) throw new Error(`--matrix-slice must be A:B, not "${o.matrixSlice}"`);
      slice = [int('matrix-slice', m[1]!, 1, runs), int('matrix-slice', m[2]!, 1, runs)];
      if (slice[0] > slice[1]) throw new Error('--matrix-slice: A must not be above B');
    }
    return await runMatrix({ runs, timeSec, seed, dryRun: !!o.dryRun, ...(runTimeoutSec !== undefined ? { runTimeoutSec } : {}), ...(slice ? { slice } : {}) });
  }
  if (process.getuid?.() !== 0) throw new Error('jepsen-lite needs root (network namespaces, nft)');
  if (o.cleanup) {
    const k = cleanupStale((s) => process.stdout.write(`${s}\n`));
    process.stdout.write(`removed what ${k} dead run(s) left behind\n`);
    return 0;
  }
  const nodes = int('nodes', o.nodes, 3, 5);
  if (nodes !== 3 && nodes !== 5) throw new Error('--nodes must be 3 or 5');
  if (o.mode !== 'sync' && o.mode !== 'async') throw new Error('--mode must be sync or async');
  const timeSec = int('time', o.time, 10, 86_400);
  const nemeses = parseNemeses(o.nemesis);
  const runs = int('runs', o.runs, 1, 1000);
  const seed0 = o.seed !== undefined ? int('seed', o.seed, 0, 2 ** 31) : Math.floor(Math.random() * 1_000_000);
  const extra = runExtras(o);
  let invalid = 0;
  const results: string[] = [];
  for (let k = 0; k < runs; k++) {
    const seed = seed0 + k;
    const r = await runJepsen({
      nodes, timeSec, nemeses, mode: o.mode, seed,
      hbPeriodMs: int('hb-period', o.hbPeriod, 10, 60_000), hbMaxLost: int('hb-max-lost', o.hbMaxLost, 2, 1000),
      keepData: !!o.keepData, autorewind: !!o.autorewind, png: o.png, ...extra.options,
      command: `npm run jepsen -- --nodes ${nodes} --time ${timeSec} --nemesis ${o.nemesis} --mode ${o.mode} --seed ${seed}${o.autorewind ? ' --autorewind' : ''}${extra.args}`,
    });
    if (!r.valid) invalid++;
    results.push(`${r.valid ? 'VALID  ' : 'INVALID'} seed ${seed}: ${r.set ? `${r.set.ok} ok, ${r.set.lost.length} lost` : 'no final read'}, ${r.splitBrain.length} split-brain, ${r.converged.ok ? 'converged' : 'NOT converged'} -> ${r.dir}`);
  }
  if (runs > 1) process.stdout.write(`\n${results.join('\n')}\n`);
  return invalid > 0 ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`jepsen: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(2);
  },
);
