// Failover and switchover while pgbench runs, on a real 3-node cluster (heartbeat 200 ms x 5,
// biha.autorewind on).
//
//   npx vite-node bench/load.ts [async] [sync] [failover] [switchover]
//        modes: async (ports 30200-30242), sync (--sync-standbys=1, ports 30300-30342); none: both
//        faults: failover (kill -9 of the leader's controller and postmaster), switchover
//                (bihactl set-leader --id=<next>); none: both
//   BENCH_RUNS=N (default 5, at least 5)
//
// Per run, three clients run at once against the leader of the moment:
//   pgbench TPC-B (scale 10, initialised once per cluster on the leader; -c 8 -j 2 -P 1) through
//     the leader's unix socket, as the postgres OS user; its tps before the fault is printed;
//   measureWriteGap (src/client/multihost.ts), an insert every 20 ms through the multi-host
//     read-write URI: the write gap around the fault;
//   an acknowledged-id writer (bench/lib/acked.ts), an insert of sequential ids every 20 ms through
//     the same URI, remembering each id whose commit was acknowledged. Once a new leader serves,
//     the acknowledged ids missing on it are the acknowledged writes lost.
// A lost acknowledged write in synchronous mode is a bug: the run is printed with the controller
// logs of the old and the new leader around the fault.
import * as fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import { measureWriteGap, parseMultiHostUri } from '../src/client/multihost.js';
import type { TestCluster } from '../test/helpers/cluster.js';
import { bihactl, sleep, waitFor } from '../test/helpers/cluster.js';
import { CREATE_ACKED, ACKED_TABLE, missingIds, writeAcked } from './lib/acked.js';
import type { Ack } from './lib/acked.js';
import { clusters, connect, destroyOnSignal, dropCluster, healthyLeader, makeCluster, one } from './lib/cluster.js';
import { excerpt, logEvents, timeline } from './lib/logs.js';
import { initPgbench, parseProgress, runPgbench } from './lib/pgbench.js';
import { benchRuns, fmtMs, line, median } from './lib/report.js';

const RUNS = benchRuns();
const SCALE = 10;
const PRE_S = 6;
const POST_S = 24;
const HB = 200;
const LOST = 5;

const MODES = { async: { basePort: 30200, syncStandbys: 0 }, sync: { basePort: 30300, syncStandbys: 1 } } as const;
type Mode = keyof typeof MODES;
const FAULTS = ['failover', 'switchover'] as const;
type Fault = (typeof FAULTS)[number];

const loadavg = (): string => fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

interface RunResult {
  gapMs: number | null;
  toFirstMs: number | null;
  tps: number | null;
  lost: number;
}

/** The node (other than `not`) whose own view says it is LEADER_RW. */
async function newLeader(c: TestCluster, not: number | null): Promise<number> {
  return await waitFor('a new LEADER_RW', async () => {
    for (const i of c.ids()) {
      if (i === not) continue;
      const r = await one<{ ok: boolean }>(c, i, `select state = 'LEADER_RW' and not pg_is_in_recovery() as ok from biha.status_v where id = ${i}`).catch(() => undefined);
      if (r?.ok) return i;
    }
    return null;
  }, 120_000, 100);
}

/** The acknowledged ids of `run` missing on node i. */
async function lostOn(c: TestCluster, i: number, run: number, acks: readonly Ack[]): Promise<number[]> {
  const rows = await waitFor(`node ${i} to answer`, async () => {
    const client = await connect(c, i).catch(() => null);
    if (!client) return null;
    try {
      return (await client.query<{ id: number }>(`select id from ${ACKED_TABLE} where run = $1`, [run])).rows;
    } catch {
      return null;
    } finally {
      await client.end().catch(() => undefined);
    }
  }, 60_000, 200);
  return missingIds(acks.map((a) => a.id), rows.map((r) => r.id));
}

async function oneRun(c: TestCluster, mode: Mode, fault: Fault, r: number, runNo: number): Promise<RunResult> {
  const leader = await healthyLeader(c);
  const target = fault === 'switchover' ? (leader % c.ids().length) + 1 : null;
  const seconds = PRE_S + POST_S;
  const bench = runPgbench(c, leader, { clients: 8, threads: 2, seconds });
  const t0 = performance.now();
  let faultAt = Infinity;
  let lastAck = 0;
  let first: { at: number; port: number; prev: number } | null = null;
  const gapP = measureWriteGap(parseMultiHostUri(c.connString()), {
    periodMs: 20,
    seconds,
    table: 'bench_gap',
    onAck: (at, port) => {
      const onNew = target === null ? port !== c.port(leader) : port === c.port(target);
      if (at > faultAt && onNew && !first) first = { at, port, prev: lastAck };
      lastAck = at;
    },
  });
  const ackedP = writeAcked(parseMultiHostUri(c.connString()), { run: runNo, periodMs: 20, seconds });
  await sleep(PRE_S * 1000);
  const faultWall = Date.now();
  faultAt = performance.now() - t0;
  let how = '';
  if (fault === 'failover') {
    c.kill9(leader, 'both');
    how = `node ${leader} killed`;
  } else {
    const res = await bihactl(['set-leader', `--id=${target}`, `--pgdata=${c.pgdata(leader)}`]);
    how = `bihactl set-leader ${leader} -> ${target}${res.code === 0 ? '' : ` FAILED: ${res.stderr.trim()}`}`;
  }
  const [g, acked] = await Promise.all([gapP, ackedP]);
  bench.stop();
  const pb = await bench.done;
  const next = await newLeader(c, fault === 'failover' ? leader : null);
  const lost = await lostOn(c, next, runNo, acked.acks);
  const before = parseProgress(pb.stderr).filter((p) => p.at <= faultWall).slice(1);
  const tps = before.length ? median(before.map((p) => p.tps)) : null;
  const f = first as { at: number; port: number; prev: number } | null;
  const faultPerf = t0 + faultAt;
  const afterFault = acked.acks.filter((a) => a.at > faultPerf).length;
  const aborted = (pb.stderr.match(/client \d+ (?:script \d+ )?aborted/g) ?? []).length;
  console.log(
    `  run ${r}: ${how}, node ${next} leads; pgbench ${tps === null ? 'no progress report before the fault' : `${tps.toFixed(0)} tps before the fault`} (${aborted} clients aborted, exit ${pb.code}); ` +
      `write gap ${f ? fmtMs(f.at - f.prev) : '-'}, fault -> first write on node ${next} ${f ? fmtMs(f.at - faultAt) : 'never'} (longest gap of the run ${fmtMs(g.maxGapMs)}, ${g.failed} writes failed); ` +
      `acknowledged ids ${acked.acks.length} (${afterFault} after the fault, ${acked.failed} inserts failed), missing on node ${next}: ${lost.length}` +
      `\n         node ${next}: ${timeline(logEvents(c, next, faultWall - 50), faultWall, [['CANDIDATE', /^state CANDIDATE/], ['LEADER_RW', /^state LEADER_RW/], ['promote', /to "PRIMARY": promote/], ['promoted', /^done: promote/]])}`,
  );
  if (lost.length > 0) {
    const byId = new Map(acked.acks.map((a) => [a.id, a]));
    const detail = lost.map((id) => {
      const a = byId.get(id)!;
      return `id ${id} acknowledged by port ${a.port} ${Math.round(a.at - faultPerf)} ms from the fault`;
    });
    const loud = mode === 'sync' ? '!!! BUG: acknowledged writes lost in synchronous mode' : 'acknowledged writes lost (asynchronous mode)';
    console.log(`  ${loud}: run ${r} (${how}, run number ${runNo} in ${ACKED_TABLE}, cluster ${c.dir}): ${detail.join('; ')}`);
    for (const i of new Set([leader, next])) {
      console.log(`    node ${i} controller.log from 2 s before to 10 s after the fault:`);
      for (const l of excerpt(c, i, faultWall, faultWall - 2000, faultWall + 10_000, 60)) console.log(`      ${l}`);
    }
  }
  if (how.includes('FAILED')) {
    console.log(`    node ${leader} controller.log lines on the switchover (from the command to 60 s after it):`);
    for (const l of excerpt(c, leader, faultWall, faultWall, faultWall + 60_000, 400).filter((x) => /switchover|set.leader|transfer/i.test(x)).slice(0, 20)) console.log(`      ${l}`);
  }
  if (fault === 'failover') {
    const back = performance.now();
    const s = await bihactl(['start', `--pgdata=${c.pgdata(leader)}`]);
    if (s.code !== 0) throw new Error(`bihactl start of node ${leader} failed: ${s.stderr}`);
    const now = await healthyLeader(c);
    console.log(`         node ${leader} restarted: FOLLOWER of node ${now} after ${fmtMs(performance.now() - back)}`);
  }
  return { gapMs: f ? f.at - f.prev : null, toFirstMs: f ? f.at - faultAt : null, tps, lost: lost.length };
}

async function series(c: TestCluster, mode: Mode, fault: Fault, base: number): Promise<void> {
  const what = fault === 'failover' ? "kill -9 of the leader's controller and postmaster (TestCluster.kill9(leader, 'both'))" : 'bihactl set-leader --id=<next>';
  console.log(`\n[${mode} ${fault}] ${what} while pgbench -c 8 -j 2 (TPC-B, scale ${SCALE}) runs on the leader, heartbeat ${HB} ms x ${LOST}${mode === 'sync' ? ', --sync-standbys=1' : ''}; ${RUNS} runs; load average ${loadavg()}`);
  const rs: RunResult[] = [];
  for (let r = 1; r <= RUNS; r++) rs.push(await oneRun(c, mode, fault, r, base + r));
  const num = (xs: Array<number | null>): number[] => xs.filter((x): x is number => x !== null);
  line('pgbench tps before the fault (median of the 1 s progress reports)', num(rs.map((x) => x.tps)), (x) => x.toFixed(0));
  line('write gap', num(rs.map((x) => x.gapMs)), fmtMs);
  line('fault -> first acknowledged write on the new leader', num(rs.map((x) => x.toFirstMs)), fmtMs);
  const lost = rs.map((x) => x.lost);
  const bad = lost.filter((x) => x > 0).length;
  console.log(`  acknowledged writes lost per run: ${lost.join(', ')} (runs with a loss: ${bad} of ${rs.length}; load average ${loadavg()})`);
  if (mode === 'sync' && bad > 0) console.log(`  !!! BUG: synchronous mode lost acknowledged writes in ${bad} of ${rs.length} runs (details above)`);
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  for (const a of args) if (!(a in MODES) && !FAULTS.includes(a as Fault)) throw new Error(`unknown argument "${a}"; use async, sync, failover, switchover`);
  const modes = (Object.keys(MODES) as Mode[]).filter((m) => args.includes(m) || !args.some((a) => a in MODES));
  const faults = FAULTS.filter((f) => args.includes(f) || !args.some((a) => FAULTS.includes(a as Fault)));
  console.log(`bench/load.ts: ${modes.join(', ')} x ${faults.join(', ')}; ${RUNS} runs each; node ${process.version}; load average ${loadavg()} (shared machine)`);
  destroyOnSignal();
  try {
    for (const mode of modes) {
      const c = await makeCluster({ basePort: MODES[mode].basePort, heartbeatMs: HB, maxLost: LOST, syncStandbys: MODES[mode].syncStandbys });
      try {
        const leader = await healthyLeader(c);
        const t = performance.now();
        await initPgbench(c, leader, SCALE);
        await one(c, leader, CREATE_ACKED);
        console.log(`pgbench -i -s ${SCALE} on node ${leader}: ${fmtMs(performance.now() - t)}`);
        for (const [k, fault] of faults.entries()) await series(c, mode, fault, (k + 1) * 1000);
      } finally {
        await dropCluster(c);
      }
    }
  } finally {
    for (const c of [...clusters]) await c.destroy();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
