// The full matrix: N runs spread evenly over 3 and 5 nodes × sync and async, every nemesis in turn,
// one run at a time, each in its own child process with a hard time limit (SIGTERM — the run
// removes its namespaces, processes and data — then SIGKILL of the child's process group, then
// the removal of whatever a dead run left behind). At the end: the per-configuration Markdown
// table of docs/reliability.md over exactly these runs, and a manifest of their directories.
//
//   npm run jepsen -- --matrix [--matrix-runs 104] [--time 75] [--seed 1000] [--run-timeout S] [--matrix-slice A:B] [--dry-run]
//
// A session or CI job has a time limit below the matrix's wall time: --matrix-slice A:B runs only
// runs A..B of the same plan (same seeds), so the matrix can be done in parts; the table over all
// parts is `npm run jepsen -- --report --since <first run directory>` (its last table).
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cleanupStale } from './hosts.js';
import { NEMESES } from './nemesis.js';
import type { NemesisName } from './nemesis.js';
import { ROOT } from './nodes.js';
import { sleep } from './proc.js';
import { configurationTable } from './report.js';

export interface MatrixRun {
  readonly index: number;
  readonly nodes: 3 | 5;
  readonly mode: 'sync' | 'async';
  readonly nemeses: NemesisName[];
  readonly autorewind: boolean;
  readonly seed: number;
}

export interface MatrixOptions {
  readonly runs: number;
  readonly timeSec: number;
  readonly seed: number;
  /** Nemeses per run (consecutive in a fixed rotation, so every nemesis gets its share). */
  readonly perRun?: number;
  /** Hard limit of one run, seconds (default: the fault phase + 8 minutes). */
  readonly runTimeoutSec?: number;
  readonly dryRun?: boolean;
  /** Only runs from..to (1-based, inclusive) of the plan. */
  readonly slice?: readonly [number, number];
  readonly log?: (s: string) => void;
}

const CONFIGS: ReadonlyArray<{ nodes: 3 | 5; mode: 'sync' | 'async' }> = [
  { nodes: 3, mode: 'sync' },
  { nodes: 3, mode: 'async' },
  { nodes: 5, mode: 'sync' },
  { nodes: 5, mode: 'async' },
];

/**
 * Measured overhead of one run beyond its fault phase (cluster creation, the final heal,
 * convergence, final read, teardown, checks), seconds, on the 2-core machine of the results.
 */
export const OVERHEAD_SEC: Readonly<Record<3 | 5, number>> = { 3: 50, 5: 60 };
/** What a run with a timed fault (promotion-fault, rewind-fault: their own waits) takes longer, seconds. */
export const TIMED_FAULT_SEC = 40;

/** The plan: run k goes to configuration k mod 4; each configuration walks the nemesis rotation. */
export function planMatrix(runs: number, seed: number, perRun = 4): MatrixRun[] {
  const out: MatrixRun[] = [];
  const slot = new Map<number, number>();
  for (let k = 0; k < runs; k++) {
    const ci = k % CONFIGS.length;
    const cfg = CONFIGS[ci]!;
    const j = slot.get(ci) ?? 0;
    slot.set(ci, j + 1);
    // Offset per configuration so that the four configurations do not pair the same nemeses.
    const nemeses = Array.from({ length: perRun }, (_, m) => NEMESES[(j * perRun + m + ci * 5) % NEMESES.length]!);
    const unique = [...new Set(nemeses)];
    // rewind-fault needs biha.autorewind = true; otherwise every other run of a configuration has it.
    const autorewind = unique.includes('rewind-fault') || j % 2 === 1;
    out.push({ index: k, nodes: cfg.nodes, mode: cfg.mode, nemeses: unique, autorewind, seed: seed + k });
  }
  return out;
}

export function argsOf(r: MatrixRun, timeSec: number): string[] {
  return ['--nodes', String(r.nodes), '--time', String(timeSec), '--nemesis', r.nemeses.join(','), '--mode', r.mode, '--seed', String(r.seed), '--no-png', ...(r.autorewind ? ['--autorewind'] : [])];
}

export function estimateSec(plan: readonly MatrixRun[], timeSec: number): number {
  return plan.reduce((a, r) => a + timeSec + OVERHEAD_SEC[r.nodes] + (r.nemeses.some((n) => n === 'promotion-fault' || n === 'rewind-fault') ? TIMED_FAULT_SEC : 0), 0);
}

function hms(sec: number): string {
  const h = Math.floor(sec / 3600);
  const m = Math.round((sec % 3600) / 60);
  return `${h} h ${String(m).padStart(2, '0')} min`;
}

/** One run in a child process, killed at `limitMs`. Returns its run directory (null if none was announced). */
async function runChild(args: readonly string[], limitMs: number, outFile: string, log: (s: string) => void): Promise<{ dir: string | null; code: number | null; timedOut: boolean }> {
  const viteNode = path.join(ROOT, 'node_modules', 'vite-node', 'vite-node.mjs');
  const out = fs.openSync(outFile, 'w');
  const child = spawn(process.execPath, [viteNode, path.join(ROOT, 'test', 'jepsen-lite', 'cli.ts'), '--', ...args], {
    cwd: ROOT,
    detached: true,
    stdio: ['ignore', out, out],
  });
  fs.closeSync(out);
  let code: number | null = null;
  let exited = false;
  const done = new Promise<void>((resolve) =>
    child.once('exit', (c) => {
      code = c;
      exited = true;
      resolve();
    }),
  );
  const pid = child.pid;
  // Ctrl-C or a kill of the matrix reaches the run (in its own process group) as SIGTERM.
  const forward = (): void => {
    if (pid && !exited) process.kill(pid, 'SIGTERM');
  };
  process.once('SIGINT', forward);
  process.once('SIGTERM', forward);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    log(`run exceeded ${Math.round(limitMs / 1000)} s: SIGTERM (the run removes what it created)`);
    if (pid) process.kill(pid, 'SIGTERM');
  }, limitMs);
  await Promise.race([done, sleep(limitMs + 60_000)]);
  clearTimeout(timer);
  process.off('SIGINT', forward);
  process.off('SIGTERM', forward);
  if (!exited && pid) {
    log('the run did not end 60 s after SIGTERM: SIGKILL of its process group');
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // gone
    }
    await Promise.race([done, sleep(10_000)]);
  }
  const text = fs.readFileSync(outFile, 'utf8');
  const dir = /run directory (\S+?);/.exec(text)?.[1] ?? null;
  return { dir, code, timedOut };
}

export async function runMatrix(o: MatrixOptions): Promise<number> {
  const log = o.log ?? ((s: string): void => void process.stdout.write(`${s}\n`));
  const full = planMatrix(o.runs, o.seed, o.perRun ?? 4);
  const [from, to] = o.slice ?? [1, full.length];
  const plan = full.slice(from - 1, to);
  const est = estimateSec(plan, o.timeSec);
  if (plan.length < full.length) log(`slice ${from}..${to} of a plan of ${full.length} runs (estimated ${hms(estimateSec(full, o.timeSec))} for all of it)`);
  const limitSec = o.runTimeoutSec ?? o.timeSec + 480;
  const share = Math.min(...NEMESES.map((n) => plan.filter((r) => r.nemeses.includes(n)).length));
  log(`matrix: ${plan.length} runs (${CONFIGS.map((c) => `${plan.filter((r) => r.nodes === c.nodes && r.mode === c.mode).length} × ${c.nodes} ${c.mode}`).join(', ')}), ${o.timeSec} s of faults each, ${plan.filter((r) => r.autorewind).length} with --autorewind; every one of the ${NEMESES.length} nemeses in at least ${share} runs`);
  log(`estimated wall time ${hms(est)} (fault phase + measured overhead of ${OVERHEAD_SEC[3]} s per 3-node run, ${OVERHEAD_SEC[5]} s per 5-node run, ${TIMED_FAULT_SEC} s more with a timed fault); each run is killed after ${limitSec} s`);
  if (o.dryRun) {
    for (const r of plan) log(`  ${String(r.index + 1).padStart(3)}. npm run jepsen -- ${argsOf(r, o.timeSec).join(' ')}`);
    return 0;
  }
  const runsDir = path.join(ROOT, 'test', 'jepsen-lite', 'runs');
  fs.mkdirSync(runsDir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:]/g, '-').replace(/\..*$/, 'Z');
  const manifest = path.join(runsDir, `matrix-${stamp}.json`);
  const outDir = path.join(runsDir, `matrix-${stamp}.out`);
  fs.mkdirSync(outDir, { recursive: true });
  const dirs: string[] = [];
  const failed: string[] = [];
  const t0 = Date.now();
  for (const r of plan) {
    const args = argsOf(r, o.timeSec);
    log(`[${hms((Date.now() - t0) / 1000)}] run ${r.index + 1} of ${full.length} (${dirs.length + 1} of ${plan.length} here): npm run jepsen -- ${args.join(' ')}`);
    const res = await runChild(args, limitSec * 1000, path.join(outDir, `${String(r.index + 1).padStart(3, '0')}.out`), log);
    cleanupStale(log);
    if (res.dir) dirs.push(res.dir);
    const verdict = res.dir && fs.existsSync(path.join(res.dir, 'summary.txt')) ? (/^VERDICT: .*$/m.exec(fs.readFileSync(path.join(res.dir, 'summary.txt'), 'utf8'))?.[0] ?? '') : 'no summary';
    if (res.timedOut || !verdict.startsWith('VERDICT: VALID')) failed.push(`${r.index + 1} (seed ${r.seed}): ${res.timedOut ? 'timed out; ' : ''}${verdict} ${res.dir ?? ''}`);
    log(`    ${verdict}${res.timedOut ? ' (timed out)' : ''} -> ${res.dir ?? 'no run directory'}`);
    fs.writeFileSync(manifest, JSON.stringify({ plan, timeSec: o.timeSec, dirs, failed }, null, 2));
  }
  log(`\nmatrix done in ${hms((Date.now() - t0) / 1000)}; manifest ${manifest}`);
  if (failed.length) log(`runs that were not VALID:\n${failed.map((f) => `  ${f}`).join('\n')}`);
  log(`\n${configurationTable(dirs)}\n`);
  return failed.length ? 1 : 0;
}
