// Benchmarks on a real 3-node biha cluster (real PostgreSQL 15, controllers started by bihactl).
//
//   npx vite-node bench/cluster.ts [name ...]        names: failover, failover-fast, failover-100,
//                                                    failover-sync, failover-freeze, failover-freeze-sync,
//                                                    switchover, sql, resources, all (default)
//   BENCH_RUNS=N (default 5, at least 5)   BENCH_RESOURCE_SECONDS=S (default 30)
//   BENCH_BASE_PORT=P (default 19300: the default cluster's ports; the others follow in blocks of 100)
//
// failover       write-unavailability gap seen by a client inserting every 20 ms through a
//                multi-host target_session_attrs=read-write URI (measureWriteGap), after kill -9 of
//                the leader's controller and postmaster; heartbeat 1000 ms x 10 (the defaults)
// failover-fast  the same with heartbeat 200 ms x 5
// failover-100   the same with heartbeat 100 ms x 5 (target: the whole gap < 0.6 s)
// failover-sync  failover-fast with one synchronous standby
// failover-freeze, failover-freeze-sync  failover-fast / failover-sync, but the leader's host is
//                frozen (SIGSTOP of its processes: no connection reset, as a cut-off host) and the
//                figure is freeze -> first write a new leader acknowledged (direct probes per node)
// switchover     the same client's gap during `bihactl set-leader`
// sql            latency of `select * from biha.status_v` (leader and follower), and
//                `select biha.set_leader(n)` until node n accepts a write
// resources      controller RSS (VmRSS) and idle CPU (utime+stime) per node over 30 s windows
//
// One cluster per heartbeat setting is reused across repetitions: a killed leader is restarted
// with `bihactl start` and the next repetition waits until it is a streaming FOLLOWER again.
// Every figure is printed as the median over the runs with min and max, and each failover or
// switchover run with the durations read from the controller logs (state changes, NC actions).
import * as fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import type pg from 'pg';
import type { TestCluster } from '../test/helpers/cluster.js';
import { sleep } from '../test/helpers/cluster.js';
import type { GapRun, SwitchoverRun } from './lib/biharuns.js';
import { bihaFailoverRun, bihaSwitchoverRun } from './lib/biharuns.js';
import { connect, destroyOnSignal, dropCluster, clusters, healthyLeader, makeCluster, one } from './lib/cluster.js';
import { failover } from './lib/failover.js';
import { logEvents, timeline } from './lib/logs.js';
import { CLK_TCK, childrenOf, cpuTicks, rssKb } from './lib/proc.js';
import { benchRuns, fmtMs, line, median } from './lib/report.js';

const RUNS = benchRuns();
const RESOURCE_SECONDS = Math.max(5, Number(process.env['BENCH_RESOURCE_SECONDS'] ?? 30) || 30);
/** BENCH_BASE_PORT moves every cluster's ports (defaults from 19300, one block of 100 per cluster). */
const PORT_SHIFT = (Number(process.env['BENCH_BASE_PORT'] ?? 19300) || 19300) - 19300;
const at = (basePort: number): number => basePort + PORT_SHIFT;

// ---- 1. write gap: failover after kill -9 (bench/lib/failover.ts), and switchover ----

/**
 * Inserts into bench_freeze on node i every 20 ms until `stop()` or `deadline` (performance.now()),
 * reconnecting after errors; resolves with the time the first insert was acknowledged, or null.
 * A follower refuses (read-only); a new leader in synchronous mode answers once a synchronous
 * standby confirmed the commit.
 */
async function probeInserts(c: TestCluster, i: number, stop: () => boolean, deadline: number): Promise<number | null> {
  let client: pg.Client | null = null;
  try {
    while (!stop() && performance.now() < deadline) {
      try {
        client ??= await connect(c, i);
        await client.query('INSERT INTO bench_freeze(port) VALUES ($1)', [c.port(i)]);
        return performance.now();
      } catch (e) {
        if (!/read-only transaction/.test((e as Error).message)) {
          await client?.end().catch(() => undefined);
          client = null;
        }
        await sleep(20);
      }
    }
    return null;
  } finally {
    await client?.end().catch(() => undefined);
  }
}

/**
 * Failover of a frozen leader host (TestCluster.freeze: SIGSTOP of its controller, postmaster and
 * every process under them). Unlike kill -9 nothing resets a connection, as when a host is cut off:
 * the followers' walreceivers only notice through the cluster. A probe per other node inserts
 * directly every 20 ms (a multi-host client's own timeouts on the frozen node would be measured
 * otherwise); the figure is freeze -> the first insert a new leader acknowledged.
 */
async function freezeFailover(c: TestCluster, label: string, hb: number, lost: number): Promise<number[]> {
  console.log(`\n[${label}] failover after the leader's host froze (TestCluster.freeze(leader): SIGSTOP of its controller, postmaster and their children), heartbeat ${hb} ms x ${lost}, ${RUNS} runs`);
  const toFirst: number[] = [];
  for (let r = 1; r <= RUNS; r++) {
    const leader = await healthyLeader(c);
    await one(c, leader, 'CREATE TABLE IF NOT EXISTS bench_freeze(id bigserial PRIMARY KEY, port int, at timestamptz DEFAULT now())');
    await sleep(1000);
    const others = c.ids().filter((i) => i !== leader);
    let first: { at: number; node: number } | null = null;
    const wall = Date.now();
    const t0 = performance.now();
    const pids = c.freeze(leader);
    const deadline = t0 + 3000 + 2.5 * hb * lost + 15_000;
    await Promise.all(
      others.map(async (i) => {
        const at = await probeInserts(c, i, () => first !== null, deadline);
        if (at !== null && (first === null || at < first.at)) first = { at, node: i };
      }),
    );
    c.thaw(pids);
    const f = first as { at: number; node: number } | null;
    if (!f) {
      console.log(`  run ${r}: node ${leader} frozen; no insert acknowledged by another node within ${Math.round(deadline - t0)} ms`);
    } else {
      toFirst.push(f.at - t0);
      const other = others.find((i) => i !== f.node)!;
      const marks: Array<[string, RegExp]> = [
        ['LEADER_RW', /^state LEADER_RW/],
        ['promote', /to "PRIMARY": promote/],
        ['promoted', /^done: promote/],
      ];
      console.log(
        `  run ${r}: node ${leader} frozen, node ${f.node} leads; freeze -> first acknowledged write ${fmtMs(f.at - t0)}\n` +
          `         node ${f.node}: ${timeline(logEvents(c, f.node, wall - 50), wall, marks)}; node ${other}: ${timeline(logEvents(c, other, wall - 50), wall, [['follows', /^done: follow/]])}`,
      );
    }
    const back = performance.now();
    const now = await healthyLeader(c);
    console.log(`         node ${leader} thawed: FOLLOWER of node ${now} after ${fmtMs(performance.now() - back)}`);
  }
  line('freeze -> first acknowledged write', toFirst, fmtMs);
  return toFirst;
}

async function switchover(c: TestCluster): Promise<number[]> {
  console.log(`\n[switchover] bihactl set-leader --id=<next> --pgdata=<leader's>, ${RUNS} runs`);
  const runs: SwitchoverRun[] = [];
  for (let r = 1; r <= RUNS; r++) {
    const run = await bihaSwitchoverRun(c, r);
    if (run) runs.push(run);
  }
  line('write gap', runs.map((x) => x.gapMs), fmtMs, { max: 150, text: '<= 150 ms' });
  line('bihactl set-leader (process start to exit)', runs.map((x) => x.commandMs), fmtMs, { max: 500, text: '<= 0.5 s' });
  line('command start -> first write on the new leader', runs.map((x) => x.toFirstWriteMs), fmtMs);
  return runs.map((x) => x.gapMs);
}

// ---- 2. SQL: status_v latency, set_leader until writable ----

async function latency(client: pg.Client, sql: string, n: number): Promise<number> {
  const lat: number[] = [];
  for (let k = 0; k < n; k++) {
    const t = performance.now();
    await client.query(sql);
    lat.push(performance.now() - t);
  }
  return median(lat);
}

async function sqlBench(c: TestCluster): Promise<void> {
  const leader = await healthyLeader(c);
  const follower = (leader % 3) + 1;
  const N = 200;
  console.log(`\n[sql] select * from biha.status_v: ${RUNS} runs of ${N} queries on one TCP session as biha_replication_user; median per run`);
  for (const [name, i] of [['leader', leader], ['follower', follower]] as const) {
    const client = await connect(c, i);
    try {
      await client.query('select * from biha.status_v');
      const base: number[] = [];
      const status: number[] = [];
      for (let r = 0; r < RUNS; r++) {
        base.push(await latency(client, 'select 1', N));
        status.push(await latency(client, 'select * from biha.status_v', N));
      }
      line(`${name} (node ${i}) select 1`, base, fmtMs);
      line(`${name} (node ${i}) select * from biha.status_v`, status, fmtMs, { max: 5, text: '<= 5 ms' });
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  console.log(
    `\n[sql] select biha.set_leader(n) on a session to the follower that is not n, until node n accepts an insert ` +
      `(tried every 5 ms, reconnecting when the session breaks); ${RUNS} runs, then one call on the leader's own session`,
  );
  const toWritable: number[] = [];
  const toReturn: number[] = [];
  for (let r = 1; r <= RUNS + 1; r++) {
    const onLeader = r === RUNS + 1;
    const cur = await healthyLeader(c);
    const target = (cur % 3) + 1;
    const origin = onLeader ? cur : (target % 3) + 1;
    const res = await switchoverBySql(c, origin, target);
    const what = `set_leader(${target}) on node ${origin}${onLeader ? ' (the leader)' : ''}: node ${cur} -> node ${target}`;
    console.log(
      `  ${onLeader ? 'extra' : `run ${r}`}: ${what}: answered ${res.answer} after ${fmtMs(res.returnedMs)}; ` +
        `node ${target} writable after ${res.writableMs ? fmtMs(res.writableMs) : 'never (60 s)'}` +
        `${res.probeErrors.length ? `; the probe saw: ${[...new Set(res.probeErrors)].join(' | ')}` : ''}`,
    );
    if (onLeader) continue;
    if (res.writableMs) toWritable.push(res.writableMs);
    if (res.answer === 'true') toReturn.push(res.returnedMs);
  }
  line('set_leader(n) call -> node n writable', toWritable, fmtMs, { max: 500, text: '<= 0.5 s' });
  line('set_leader(n) call -> answer true', toReturn, fmtMs);
}

/** One switchover by `select biha.set_leader(target)` on node `origin`, timed until target takes an insert. */
async function switchoverBySql(c: TestCluster, origin: number, target: number): Promise<{ answer: string; returnedMs: number; writableMs: number; probeErrors: string[] }> {
  const setup = await connect(c, c.ids().find((i) => i !== target && i !== origin) ?? origin);
  await setup.query('create table if not exists bench_sw (id bigserial primary key, at timestamptz default clock_timestamp())').catch(() => undefined);
  await setup.end().catch(() => undefined);
  const from = await connect(c, origin);
  let probe: pg.Client | null = await connect(c, target);
  const probeErrors: string[] = [];
  try {
    const t0 = performance.now();
    let returnedMs = 0;
    let answer = '';
    const call = from
      .query<{ ok: boolean }>(`select biha.set_leader(${target}) as ok`)
      .then((x) => {
        answer = String(x.rows[0]?.ok);
      })
      .catch((e: unknown) => {
        answer = `error "${e instanceof Error ? e.message : String(e)}"`;
      })
      .finally(() => {
        returnedMs = performance.now() - t0;
      });
    let writableMs = 0;
    const deadline = t0 + 60_000;
    while (!writableMs && performance.now() < deadline) {
      try {
        probe ??= await connect(c, target);
        await probe.query('insert into bench_sw default values');
        writableMs = performance.now() - t0;
      } catch (e) {
        const msg = e instanceof Error ? e.message : String(e);
        if (!/read-only transaction/.test(msg)) {
          probeErrors.push(msg);
          await probe?.end().catch(() => undefined);
          probe = null;
        }
        await sleep(5);
      }
    }
    await call;
    return { answer, returnedMs, writableMs, probeErrors };
  } finally {
    await from.end().catch(() => undefined);
    await probe?.end().catch(() => undefined);
  }
}

// ---- 3. resources ----

async function resources(c: TestCluster): Promise<void> {
  const leader = await healthyLeader(c);
  console.log(
    `\n[resources] ${RUNS} windows of ${RESOURCE_SECONDS} s on an idle cluster (node ${leader} leads): VmRSS at the end of each window and ` +
      'utime+stime over it, for the controller, its child processes (the lease watchdog) and its PostgreSQL sessions (application_name biha_controller)',
  );
  interface Group {
    label: string;
    pids: number[];
    rss: number[];
    cpu: number[];
    target?: boolean;
  }
  const groups = new Map<number, Group[]>();
  for (const i of c.ids()) {
    const pid = c.controllerPid(i);
    if (!pid) throw new Error(`no controller PID for node ${i}`);
    const client = await connect(c, i);
    let sessions: number[] = [];
    try {
      sessions = (await client.query<{ pid: number }>("select pid from pg_stat_activity where application_name = 'biha_controller'")).rows.map((x) => x.pid);
    } finally {
      await client.end().catch(() => undefined);
    }
    const kids = childrenOf(pid);
    const names = kids.map((k) => fs.readFileSync(`/proc/${k}/cmdline`, 'utf8').split('\0').slice(1, 3).join(' ').replace(/^.*bihactl\.js /, 'bihactl ').replace(/^\S*\/biha-watchdog /, 'biha-watchdog '));
    groups.set(i, [
      { label: 'controller', pids: [pid], rss: [], cpu: [], target: true },
      ...(kids.length ? [{ label: `controller's child processes (${names.join(', ')})`, pids: kids, rss: [], cpu: [] }] : []),
      { label: `controller's PostgreSQL sessions (${sessions.length})`, pids: sessions, rss: [], cpu: [] },
    ]);
  }
  const alive = (ps: number[]): number[] => ps.filter((p) => fs.existsSync(`/proc/${p}`));
  const ticks = (ps: number[]): number => alive(ps).reduce((a, p) => a + cpuTicks(p), 0);
  const rssMb = (ps: number[]): number => alive(ps).reduce((a, p) => a + rssKb(p), 0) / 1024;
  for (let w = 0; w < RUNS; w++) {
    const t0 = performance.now();
    const before = new Map<Group, number>();
    for (const gs of groups.values()) for (const g of gs) before.set(g, ticks(g.pids));
    await sleep(RESOURCE_SECONDS * 1000);
    const secs = (performance.now() - t0) / 1000;
    for (const gs of groups.values()) {
      for (const g of gs) {
        g.cpu.push(((ticks(g.pids) - (before.get(g) ?? 0)) / CLK_TCK / secs) * 100);
        g.rss.push(rssMb(g.pids));
      }
    }
  }
  const pct = (x: number): string => `${x.toFixed(2)} %`;
  const mb = (x: number): string => `${x.toFixed(1)} MB`;
  for (const [i, gs] of groups) {
    const role = i === leader ? 'leader' : 'follower';
    for (const g of gs) {
      line(`node ${i} (${role}) ${g.label} VmRSS`, g.rss, mb, g.target ? { max: 80, text: '<= 80 MB' } : undefined);
      line(`node ${i} (${role}) ${g.label} CPU, % of one core`, g.cpu, pct, g.target ? { max: 1, text: '<= 1 %' } : undefined);
    }
  }
}

// ---- main ----

const NAMES = ['failover', 'failover-fast', 'failover-100', 'failover-sync', 'failover-freeze', 'failover-freeze-sync', 'switchover', 'sql', 'resources'] as const;
type Name = (typeof NAMES)[number];

async function main(): Promise<void> {
  const args = process.argv.slice(2).filter((a) => !a.startsWith('-'));
  const wanted: Name[] = args.length === 0 || args.includes('all') ? [...NAMES] : (args as Name[]);
  for (const w of wanted) if (!NAMES.includes(w)) throw new Error(`unknown benchmark "${w}"; choose from ${NAMES.join(', ')}, all`);
  console.log(`bench/cluster.ts: ${wanted.join(', ')}; ${RUNS} runs each; node ${process.version}; load average ${fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
  let defaults: TestCluster | null = null;
  destroyOnSignal();
  try {
    for (const w of wanted) {
      if (w === 'failover-fast' || w === 'failover-sync' || w === 'failover-100') {
        const hb = w === 'failover-100' ? 100 : 200;
        const basePort = at({ 'failover-fast': 19400, 'failover-sync': 19500, 'failover-100': 19800 }[w]);
        const fast = await makeCluster({ basePort, heartbeatMs: hb, maxLost: 5, ...(w === 'failover-sync' ? { syncStandbys: 1 } : {}) });
        try {
          await failover(fast, w, hb, 5, RUNS, w === 'failover-100' ? 600 : 1500);
        } finally {
          await dropCluster(fast);
        }
        continue;
      }
      if (w === 'failover-freeze' || w === 'failover-freeze-sync') {
        const fc = w === 'failover-freeze' ? await makeCluster({ basePort: at(19600), heartbeatMs: 200, maxLost: 5 }) : await makeCluster({ basePort: at(19700), heartbeatMs: 200, maxLost: 5, syncStandbys: 1 });
        try {
          await freezeFailover(fc, w, 200, 5);
        } finally {
          await dropCluster(fc);
        }
        continue;
      }
      if (!defaults) {
        defaults = await makeCluster({ basePort: at(19300), heartbeatMs: 1000, maxLost: 10 });
      }
      if (w === 'failover') await failover(defaults, w, 1000, 10, RUNS, 11_000);
      else if (w === 'switchover') await switchover(defaults);
      else if (w === 'sql') await sqlBench(defaults);
      else await resources(defaults);
    }
  } finally {
    for (const c of [...clusters]) await c.destroy();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
