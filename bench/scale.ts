// Larger clusters: failover time with 5 and 7 nodes, idle controller CPU with 3, 5 and 7 nodes,
// and the time to add a node to a loaded cluster against pg_basebackup alone.
//
//   npx vite-node bench/scale.ts [cpu] [failover] [add]      none: all three
//   SCALE_NODES=3,5,7 (clusters to build; failover uses those of 5 nodes or more, add the 3-node one)
//   SCALE_HB=200,1000 (heartbeat settings: 200 = 200 ms x 5, 1000 = 1000 ms x 10, the defaults)
//   BENCH_RUNS=N (default 5, at least 5)   BENCH_CPU_SECONDS=S (one CPU window, default 20)
//
// cpu       per node, the controller's utime+stime (/proc/<pid>/stat) over BENCH_RUNS windows of
//           BENCH_CPU_SECONDS on the idle cluster, as % of one core
// failover  kill -9 of the leader's controller and postmaster -> the first write a new leader
//           acknowledged, as bench/cluster.ts failover (bench/lib/failover.ts)
// add       on the 3-node cluster at heartbeat 200 ms x 5, with pgbench TPC-B (scale 20, -c 8 -j 2)
//           running on the leader: per run, pg_basebackup of the leader into a scratch directory
//           (as bihactl add runs it: stream, fast checkpoint, as biha_replication_user, run by the
//           postgres OS user), then `bihactl add` + `bihactl start` of node 4 until it is a
//           streaming FOLLOWER; then node 4 is stopped, removed (bihactl remove-node) and deleted
import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { TestCluster } from '../test/helpers/cluster.js';
import { PASSWORD, PG_BIN, asPostgres, bihactl, sleep, waitFor } from '../test/helpers/cluster.js';
import { clusters, connect, destroyOnSignal, dropCluster, healthyLeader, makeCluster, one, tuneConf } from './lib/cluster.js';
import { failover } from './lib/failover.js';
import { initPgbench, runPgbench } from './lib/pgbench.js';
import { CLK_TCK, cpuTicks } from './lib/proc.js';
import { benchRuns, fmtMs, line, median } from './lib/report.js';

const RUNS = benchRuns();
const CPU_SECONDS = Math.max(5, Number(process.env['BENCH_CPU_SECONDS'] ?? 20) || 20);
const ADD_SCALE = 20;
const HB: Record<number, { ms: number; lost: number }> = { 200: { ms: 200, lost: 5 }, 1000: { ms: 1000, lost: 10 } };
const NAMES = ['cpu', 'failover', 'add'] as const;
type Name = (typeof NAMES)[number];

const loadavg = (): string => fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

/** Ports 30400-31999: one block of 100 per (nodes, heartbeat) cluster. */
function basePort(nodes: number, hb: number): number {
  return 30400 + [3, 5, 7].indexOf(nodes) * 200 + (hb === 200 ? 0 : 100);
}

function listEnv(name: string, def: number[], allowed: number[]): number[] {
  const raw = process.env[name];
  if (!raw) return def;
  const xs = raw.split(',').map((x) => Number(x.trim()));
  for (const x of xs) if (!allowed.includes(x)) throw new Error(`${name}: ${x} is not one of ${allowed.join(', ')}`);
  return xs;
}

async function cpu(c: TestCluster, nodes: number, hb: { ms: number; lost: number }): Promise<number[]> {
  const leader = await healthyLeader(c);
  console.log(`\n[cpu ${nodes} nodes, heartbeat ${hb.ms} ms x ${hb.lost}] controller utime+stime, ${RUNS} windows of ${CPU_SECONDS} s on the idle cluster (node ${leader} leads); load average ${loadavg()}`);
  const pids = new Map(c.ids().map((i) => [i, c.controllerPid(i)]));
  const per = new Map<number, number[]>(c.ids().map((i) => [i, []]));
  for (let w = 0; w < RUNS; w++) {
    const t0 = performance.now();
    const before = new Map([...pids].map(([i, p]) => [i, p ? cpuTicks(p) : NaN]));
    await sleep(CPU_SECONDS * 1000);
    const secs = (performance.now() - t0) / 1000;
    for (const [i, p] of pids) per.get(i)!.push(p ? ((cpuTicks(p) - before.get(i)!) / CLK_TCK / secs) * 100 : NaN);
  }
  const pct = (x: number): string => `${x.toFixed(2)} %`;
  for (const [i, xs] of per) line(`node ${i} (${i === leader ? 'leader' : 'follower'}) controller CPU, % of one core`, xs, pct);
  const followers = c.ids().filter((i) => i !== leader).flatMap((i) => per.get(i)!);
  line('every follower together (all windows)', followers, pct);
  console.log(`  load average at the end ${loadavg()}`);
  return c.ids().map((i) => median(per.get(i)!));
}

/** Node i streams from the leader and says it is a FOLLOWER. */
async function streamingFollower(c: TestCluster, i: number): Promise<boolean> {
  const r = await one<{ ok: boolean }>(
    c,
    i,
    `select (select state = 'FOLLOWER' from biha.status_v where id = ${i}) and exists (select 1 from pg_stat_wal_receiver where status = 'streaming') as ok`,
  ).catch(() => undefined);
  return r?.ok === true;
}

async function basebackup(c: TestCluster, leader: number, dir: string): Promise<number> {
  fs.rmSync(dir, { recursive: true, force: true });
  const t = performance.now();
  const r = await asPostgres(`${PG_BIN}/pg_basebackup`, ['-h', '127.0.0.1', '-p', String(c.port(leader)), '-U', 'biha_replication_user', '-D', dir, '--wal-method=stream', '--checkpoint=fast', '--no-password'], { PGPASSWORD: PASSWORD }, 600_000);
  const ms = performance.now() - t;
  fs.rmSync(dir, { recursive: true, force: true });
  if (r.code !== 0) throw new Error(`pg_basebackup of node ${leader} failed: ${r.stderr.trim()}`);
  return ms;
}

async function removeNode(c: TestCluster, leader: number, i: number): Promise<void> {
  await bihactl(['stop', `--pgdata=${c.pgdata(i)}`], {}, 120_000);
  const r = await bihactl(['remove-node', `--pgdata=${c.pgdata(leader)}`, `--id=${i}`]);
  if (r.code !== 0) throw new Error(`bihactl remove-node --id=${i} failed: ${r.stderr.trim()}`);
  fs.rmSync(c.pgdata(i), { recursive: true, force: true });
  await healthyLeader(c);
}

async function addNode(c: TestCluster): Promise<void> {
  const leader = await healthyLeader(c);
  const extra = c.ids().length + 1;
  const t = performance.now();
  await initPgbench(c, leader, ADD_SCALE);
  const size = await one<{ s: string }>(c, leader, "select pg_size_pretty(pg_database_size('postgres')) as s");
  console.log(
    `\n[add] node ${extra} into the ${c.ids().length}-node cluster while pgbench TPC-B (scale ${ADD_SCALE}, -c 8 -j 2) runs on node ${leader} ` +
      `(pgbench -i took ${fmtMs(performance.now() - t)}; database postgres ${size?.s ?? '?'}); ${RUNS} runs; load average ${loadavg()}`,
  );
  const bench = runPgbench(c, leader, { clients: 8, threads: 2, seconds: 3600 });
  const scratch = fs.mkdtempSync(path.join(c.dir, 'scratch-'));
  fs.chmodSync(scratch, 0o777);
  const bb: number[] = [];
  const add: number[] = [];
  const ratio: number[] = [];
  try {
    await sleep(5000);
    for (let r = 1; r <= RUNS; r++) {
      const bbMs = await basebackup(c, leader, path.join(scratch, 'copy'));
      const t0 = performance.now();
      const a = await c.add(extra);
      if (a.code !== 0) throw new Error(`bihactl add node ${extra} failed: ${a.stderr.trim()}`);
      const addedMs = performance.now() - t0;
      tuneConf(c, extra);
      await c.start(extra);
      await waitFor(`node ${extra} to be a streaming FOLLOWER`, async () => streamingFollower(c, extra), 600_000, 100);
      const total = performance.now() - t0;
      bb.push(bbMs);
      add.push(total);
      ratio.push(total / bbMs);
      console.log(`  run ${r}: pg_basebackup ${fmtMs(bbMs)}; bihactl add ${fmtMs(addedMs)}, + start until a streaming FOLLOWER ${fmtMs(total)}; ratio ${(total / bbMs).toFixed(2)}; load average ${loadavg()}`);
      await removeNode(c, leader, extra);
    }
  } finally {
    bench.stop();
    await bench.done;
    fs.rmSync(scratch, { recursive: true, force: true });
  }
  line('pg_basebackup alone', bb, fmtMs);
  line('bihactl add + start -> streaming FOLLOWER', add, fmtMs);
  line('ratio (add / pg_basebackup, per run)', ratio, (x) => x.toFixed(2));
}

/** Runs one benchmark; a failure is printed (with the load average) and the next one runs. */
async function section<T>(name: string, fn: () => Promise<T>): Promise<T | null> {
  try {
    return await fn();
  } catch (e) {
    console.log(`  ${name} FAILED: ${e instanceof Error ? e.message : String(e)} (load average ${loadavg()})`);
    return null;
  }
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  for (const a of args) if (!NAMES.includes(a as Name)) throw new Error(`unknown benchmark "${a}"; choose from ${NAMES.join(', ')}`);
  const wanted = args.length ? (args as Name[]) : [...NAMES];
  const sizes = listEnv('SCALE_NODES', [3, 5, 7], [3, 5, 7]);
  const hbs = listEnv('SCALE_HB', [200, 1000], [200, 1000]);
  console.log(`bench/scale.ts: ${wanted.join(', ')}; nodes ${sizes.join(', ')}; heartbeat ${hbs.join(', ')} ms; ${RUNS} runs; node ${process.version}; load average ${loadavg()} (shared machine)`);
  destroyOnSignal();
  const cpuTable: string[] = [];
  try {
    for (const nodes of sizes) {
      for (const h of hbs) {
        const hb = HB[h]!;
        const doCpu = wanted.includes('cpu');
        const doFailover = wanted.includes('failover') && nodes >= 5;
        const doAdd = wanted.includes('add') && nodes === 3 && h === 200;
        if (!doCpu && !doFailover && !doAdd) continue;
        const c = await makeCluster({ basePort: basePort(nodes, h), heartbeatMs: hb.ms, maxLost: hb.lost, nodes, nquorum: Math.floor(nodes / 2) + 1 });
        try {
          if (doCpu) {
            const xs = await section('cpu', () => cpu(c, nodes, hb));
            if (xs) cpuTable.push(`  ${nodes} nodes, heartbeat ${hb.ms} ms x ${hb.lost}: per node ${xs.map((x) => `${x.toFixed(2)} %`).join(', ')}`);
          }
          if (doFailover) await section('failover', () => failover(c, `failover ${nodes} nodes`, hb.ms, hb.lost, RUNS));
          if (doAdd) await section('add', () => addNode(c));
        } finally {
          await dropCluster(c);
        }
      }
    }
    if (cpuTable.length) console.log(`\ncontroller CPU (median of the windows, % of one core), node 1..n:\n${cpuTable.join('\n')}`);
  } finally {
    for (const c of [...clusters]) await c.destroy();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
