// biha and Patroni side by side on this machine: the same write client and the same fault, one
// tool after the other, in one invocation.
//
//   npm run bench:compare [-- name ...]      names: failover, failover-fast, switchover (default: all)
//   BENCH_RUNS=N (default 3)   BENCH_BIHA_FAST=<heartbeat ms>x<max lost> (default 100x5)
//
// failover       3 nodes at each tool's defaults (biha heartbeat 1000 ms x 10; Patroni ttl 30,
//                loop_wait 10, retry_timeout 10): SIGKILL of the leader's whole process tree
//                while a client inserts every 20 ms through a multi-host
//                target_session_attrs=read-write URI (measureWriteGap); figure = first write the
//                new leader acknowledged - last acknowledged write before it
// failover-fast  the same at each tool's most aggressive settings run here (biha
//                BENCH_BIHA_FAST; Patroni ttl 5, loop_wait 1, retry_timeout 2)
// switchover     the same client during `bihactl set-leader` / `patronictl switchover`
//
// Both tools rejoin a killed old leader by themselves (biha.autorewind = true; Patroni
// use_pg_rewind: true); the killed node is started again between runs and the next run waits for a
// healthy cluster. Raw runs go to bench/results/compare-<timestamp>.json.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { TestCluster } from '../test/helpers/cluster.js';
import { PG_BIN } from '../test/helpers/cluster.js';
import type { GapRun, SwitchoverRun } from './lib/biharuns.js';
import { bihaFailoverRun, bihaSwitchoverRun } from './lib/biharuns.js';
import { clusters, destroyOnSignal, dropCluster, makeCluster } from './lib/cluster.js';
import type { CompareRow } from './lib/comparetable.js';
import { compareTable } from './lib/comparetable.js';
import { gapOf, writeGapAround } from './lib/gap.js';
import { ETCD_BIN, PATRONI_BIN, PATRONICTL_BIN, PatroniCluster, patroniClusters, patroniVersions, waitGone } from './lib/patroni.js';
import type { PatroniTiming } from './lib/patroniconf.js';
import { PATRONI_DEFAULTS, PATRONI_FAST } from './lib/patroniconf.js';
import { benchRunsOr, fmtMs, line, loadAverage } from './lib/report.js';

/** Runs per tool and scenario: BENCH_RUNS, default 3 (read in main). */
let RUNS = 3;
const runsText = (): string => `${RUNS} run${RUNS === 1 ? '' : 's'}`;
const ROOT = path.resolve(import.meta.dirname, '..');
/**
 * How long the write loop of a switchover run lasts (2 s of it before the command): long enough
 * for either command to start, switch over and return on a loaded machine, where starting a
 * command-line tool alone can take seconds.
 */
const SWITCHOVER_SECONDS = 30;

/** One run of either tool; commandMs only for a switchover. */
type Run = GapRun & { commandMs?: number };

interface Scenario {
  name: 'failover' | 'failover-fast' | 'switchover';
  title: string;
  biha: { settings: string; runs: Run[] };
  patroni: { settings: string; runs: Run[] };
}

/** BENCH_BIHA_FAST ("100x5"): biha's heartbeat period (ms) and max lost heartbeats for failover-fast. */
function bihaFast(): { hb: number; lost: number } {
  const v = process.env['BENCH_BIHA_FAST'] ?? '100x5';
  const m = /^(\d+)x(\d+)$/.exec(v);
  const hb = Number(m?.[1]);
  const lost = Number(m?.[2]);
  if (!m || hb < 10 || hb > 60000 || lost < 2 || lost > 1000)
    throw new Error(`BENCH_BIHA_FAST="${v}" is not <heartbeat ms>x<max lost> within 10..60000 x 2..1000; use for example BENCH_BIHA_FAST=100x5`);
  return { hb, lost };
}

// ---- Patroni runs (biha's are bench/lib/biharuns.ts, shared with bench/cluster.ts) ----

/** The write loop of a Patroni failover: 3 s before the kill, 2.5 × ttl plus one loop_wait, 15 s. */
function patroniFailoverSeconds(t: PatroniTiming): number {
  return Math.ceil(3 + 2.5 * t.ttl + t.loopWait + 15);
}

async function patroniFailoverRun(c: PatroniCluster, r: number): Promise<GapRun | null> {
  const leader = await c.waitHealthy();
  const seconds = patroniFailoverSeconds(c.timing);
  let killed: number[] = [];
  const g = await writeGapAround({
    uri: c.connString(),
    seconds,
    warmupMs: 3000,
    isNewLeader: (port) => port !== c.port(leader),
    action: () => {
      killed = c.kill9(leader);
    },
  });
  const run = gapOf(g);
  if (!run || !g.first) {
    console.log(`  run ${r}: no write acknowledged by a new leader within ${seconds} s of the start (kill of ${killed.length} processes at ${Math.round(g.actionAt)} ms)`);
  } else {
    const next = c.ids().find((i) => c.port(i) === g.first?.port) ?? 0;
    console.log(
      `  run ${r}: ${c.name(leader)} killed (Patroni, postmaster and ${killed.length - 2} processes below them), ${c.name(next)} leads; write gap ${fmtMs(run.gapMs)} ` +
        `(last write on ${c.name(leader)} ${Math.round(g.first.prev - g.actionAt)} ms from the kill), kill -> first write ${fmtMs(run.toFirstWriteMs)}; ` +
        `${g.loop.ok} writes ok, ${g.loop.failed} failed, longest gap of the run ${fmtMs(g.loop.maxGapMs)}\n` +
        `         ${c.name(next)} after the kill: ${c.logTimeline(next, g.actionWall)}`,
    );
  }
  await waitGone(killed);
  const back = performance.now();
  const now = await c.rejoin(leader);
  console.log(`         ${c.name(leader)} restarted: streaming replica of ${c.name(now)} after ${fmtMs(performance.now() - back)}${c.rewound(leader, g.actionWall) ? ' (pg_rewind)' : ''}`);
  return run;
}

async function patroniSwitchoverRun(c: PatroniCluster, r: number): Promise<SwitchoverRun | null> {
  const leader = await c.waitHealthy();
  const target = (leader % c.ids().length) + 1;
  const g = await writeGapAround({
    uri: c.connString(),
    seconds: SWITCHOVER_SECONDS,
    warmupMs: 2000,
    isNewLeader: (port) => port === c.port(target),
    action: () => c.switchover(leader, target),
  });
  const run = gapOf(g);
  if (g.result.code !== 0 || !run || !g.first) {
    const why = g.result.code !== 0
      ? `patronictl switchover failed: ${g.result.out.trim().split('\n').slice(-2).join(' ')}`
      : `patronictl switchover returned after ${fmtMs(g.actionMs)} but ${c.name(target)} acknowledged no write within the ${SWITCHOVER_SECONDS} s of the write loop`;
    console.log(`  run ${r}: switchover ${c.name(leader)} -> ${c.name(target)}: ${why} (longest gap ${fmtMs(g.loop.maxGapMs)})`);
    return null;
  }
  console.log(
    `  run ${r}: ${c.name(leader)} -> ${c.name(target)}: write gap ${fmtMs(run.gapMs)} (${Math.round(g.first.prev - g.actionAt)}..${Math.round(g.first.at - g.actionAt)} ms after the command started; ` +
      `longest of the run ${fmtMs(g.loop.maxGapMs)}), patronictl switchover took ${fmtMs(g.actionMs)}, ${g.loop.failed} writes failed\n` +
      `         ${c.name(target)}: ${c.logTimeline(target, g.actionWall)}`,
  );
  return { ...run, commandMs: g.actionMs };
}

// ---- the scenarios, tool by tool ----

async function repeat<T>(label: string, f: (r: number) => Promise<T | null>): Promise<T[]> {
  console.log(label);
  const out: T[] = [];
  for (let r = 1; r <= RUNS; r++) {
    const x = await f(r);
    if (x) out.push(x);
  }
  return out;
}

function printRuns(tool: string, runs: readonly Run[], switchover: boolean): void {
  line(`${tool} write gap`, runs.map((x) => x.gapMs), fmtMs);
  line(`${tool} ${switchover ? 'command start' : 'kill'} -> first acknowledged write`, runs.map((x) => x.toFirstWriteMs), fmtMs);
  if (switchover) line(`${tool} switchover command (start to return)`, runs.map((x) => x.commandMs ?? 0), fmtMs);
}

async function bihaBlock(s: Scenario, basePort: number, hb: number, lost: number): Promise<TestCluster> {
  console.log(`\n== biha, ${s.title}: ${s.biha.settings}; load average ${loadAverage()}`);
  return makeCluster({ basePort, heartbeatMs: hb, maxLost: lost });
}

async function patroniBlock(s: Scenario, basePort: number, timing: PatroniTiming): Promise<PatroniCluster> {
  console.log(`\n== Patroni, ${s.title}: ${s.patroni.settings}; load average ${loadAverage()}`);
  const c = new PatroniCluster(basePort, timing);
  await c.start();
  return c;
}

const timingText = (t: PatroniTiming): string => `ttl ${t.ttl}, loop_wait ${t.loopWait}, retry_timeout ${t.retryTimeout}, use_pg_rewind: true`;

async function runAll(wanted: ReadonlySet<Scenario['name']>): Promise<Scenario[]> {
  const fast = bihaFast();
  const failover: Scenario = {
    name: 'failover',
    title: 'failover at the defaults',
    biha: { settings: 'heartbeat 1000 ms x 10, biha.autorewind = true', runs: [] },
    patroni: { settings: timingText(PATRONI_DEFAULTS), runs: [] },
  };
  const failoverFast: Scenario = {
    name: 'failover-fast',
    title: 'failover at the most aggressive settings',
    biha: { settings: `heartbeat ${fast.hb} ms x ${fast.lost}, biha.autorewind = true`, runs: [] },
    patroni: { settings: timingText(PATRONI_FAST), runs: [] },
  };
  const switchover: Scenario = {
    name: 'switchover',
    title: 'switchover at the defaults',
    biha: { settings: 'heartbeat 1000 ms x 10, bihactl set-leader --id=<next>', runs: [] },
    patroni: { settings: `${timingText(PATRONI_DEFAULTS)}, patronictl switchover --leader X --candidate Y --force`, runs: [] },
  };
  const killText = (tool: string): string => `[${tool}] SIGKILL of the leader's process tree while writing every 20 ms, ${runsText()}`;

  if (wanted.has('failover') || wanted.has('switchover')) {
    const c = await bihaBlock(wanted.has('failover') ? failover : switchover, 28000, 1000, 10);
    try {
      if (wanted.has('failover')) failover.biha.runs = await repeat(`\n${killText('biha failover')} (controller, postmaster and every process below them: TestCluster.hostPids)`, (r) => bihaFailoverRun(c, r, 1000, 10, 'tree'));
      if (wanted.has('switchover')) switchover.biha.runs = await repeat(`\n[biha switchover] bihactl set-leader --id=<next>, ${runsText()}`, (r) => bihaSwitchoverRun(c, r, SWITCHOVER_SECONDS));
    } finally {
      await dropCluster(c);
    }
    const p = await patroniBlock(wanted.has('failover') ? failover : switchover, 28500, PATRONI_DEFAULTS);
    try {
      if (wanted.has('failover')) failover.patroni.runs = await repeat(`\n${killText('Patroni failover')} (Patroni and its postmaster with every process below them)`, (r) => patroniFailoverRun(p, r));
      if (wanted.has('switchover')) switchover.patroni.runs = await repeat(`\n[Patroni switchover] patronictl switchover --leader X --candidate Y --force, ${runsText()}`, (r) => patroniSwitchoverRun(p, r));
    } finally {
      await p.destroy();
    }
  }
  if (wanted.has('failover-fast')) {
    const c = await bihaBlock(failoverFast, 28100, fast.hb, fast.lost);
    try {
      failoverFast.biha.runs = await repeat(`\n${killText('biha failover-fast')} (controller, postmaster and every process below them: TestCluster.hostPids)`, (r) => bihaFailoverRun(c, r, fast.hb, fast.lost, 'tree'));
    } finally {
      await dropCluster(c);
    }
    const p = await patroniBlock(failoverFast, 28600, PATRONI_FAST);
    try {
      failoverFast.patroni.runs = await repeat(`\n${killText('Patroni failover-fast')} (Patroni and its postmaster with every process below them)`, (r) => patroniFailoverRun(p, r));
    } finally {
      await p.destroy();
    }
  }
  return [failover, failoverFast, switchover].filter((s) => wanted.has(s.name));
}

// ---- report ----

function tableRows(scenarios: readonly Scenario[]): CompareRow[] {
  const rows: CompareRow[] = [];
  for (const s of scenarios) {
    const sw = s.name === 'switchover';
    rows.push({ scenario: `${s.title}: write gap`, biha: s.biha.runs.map((x) => x.gapMs), patroni: s.patroni.runs.map((x) => x.gapMs) });
    rows.push({ scenario: `${s.title}: ${sw ? 'command start' : 'kill'} → first acknowledged write`, biha: s.biha.runs.map((x) => x.toFirstWriteMs), patroni: s.patroni.runs.map((x) => x.toFirstWriteMs) });
    if (sw) rows.push({ scenario: `${s.title}: command start → return`, biha: s.biha.runs.map((x) => x.commandMs ?? 0), patroni: s.patroni.runs.map((x) => x.commandMs ?? 0) });
  }
  return rows;
}

function versions(): Record<string, string> {
  const pgv = ((): string => {
    try {
      return execFileSync(path.join(PG_BIN, 'postgres'), ['--version'], { encoding: 'utf8' }).trim().replace(/^postgres \(PostgreSQL\) /, '');
    } catch {
      return 'unknown';
    }
  })();
  const biha = (JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  return { biha, postgresql: pgv, ...patroniVersions(), node: process.version };
}

function writeResults(data: unknown): string {
  const dir = path.join(ROOT, 'bench', 'results');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `compare-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  fs.writeFileSync(file, `${JSON.stringify(data, null, 2)}\n`);
  return file;
}

/** Root, and Patroni and etcd installed: a clear one-line error otherwise. */
function checkHost(): void {
  if (process.getuid?.() !== 0) throw new Error('bench/compare.ts needs root (PostgreSQL and Patroni run as the postgres OS user): run sudo npm run bench:compare');
  for (const bin of [PATRONI_BIN, PATRONICTL_BIN, ETCD_BIN, path.join(PG_BIN, 'postgres')])
    if (!fs.existsSync(bin)) throw new Error(`${bin} is missing: run scripts/install-bench-deps.sh as root (and scripts/install-deps.sh for PostgreSQL 15)`);
}

const NAMES = ['failover', 'failover-fast', 'switchover'] as const;

async function main(): Promise<void> {
  const args = process.argv.slice(2).filter((a) => !a.startsWith('-'));
  for (const a of args) if (a !== 'all' && !(NAMES as readonly string[]).includes(a)) throw new Error(`unknown scenario "${a}"; choose from ${NAMES.join(', ')}, all`);
  const wanted = new Set<Scenario['name']>(args.length === 0 || args.includes('all') ? NAMES : (args as Scenario['name'][]));
  RUNS = benchRunsOr(3);
  bihaFast();
  checkHost();
  const started = new Date().toISOString();
  const loadStart = loadAverage();
  const v = versions();
  const machine = `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB`;
  console.log(`bench/compare.ts: ${[...wanted].join(', ')}; ${runsText()} each; ${machine}; load average ${loadStart}`);
  console.log(`versions: biha ${v['biha']}, PostgreSQL ${v['postgresql']}, Patroni ${v['patroni']}, etcd ${v['etcd']}, node ${v['node']}`);
  destroyOnSignal(async () => {
    await Promise.all(patroniClusters.map((p) => p.destroy()));
  });
  let scenarios: Scenario[] = [];
  try {
    scenarios = await runAll(wanted);
  } finally {
    for (const c of [...clusters]) await c.destroy();
    for (const p of [...patroniClusters]) await p.destroy();
  }
  const loadEnd = loadAverage();
  console.log('\n==== results ====');
  for (const s of scenarios) {
    console.log(`\n[${s.name}] ${s.title}\n  biha: ${s.biha.settings}\n  Patroni: ${s.patroni.settings}`);
    printRuns('biha', s.biha.runs, s.name === 'switchover');
    printRuns('Patroni', s.patroni.runs, s.name === 'switchover');
  }
  console.log(`\n${compareTable(tableRows(scenarios))}\n`);
  console.log(`Load average at the start ${loadStart}, at the end ${loadEnd}; ${machine}; biha ${v['biha']}, PostgreSQL ${v['postgresql']}, Patroni ${v['patroni']}, etcd ${v['etcd']}, node ${v['node']}; ${runsText()} per tool and scenario.`);
  const file = writeResults({ started, finished: new Date().toISOString(), runsPerScenario: RUNS, loadAverage: { start: loadStart, end: loadEnd }, machine, versions: v, scenarios });
  console.log(`raw runs: ${path.relative(process.cwd(), file)}`);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? `bench/compare.ts: ${err.message}` : err);
  process.exitCode = 1;
});
