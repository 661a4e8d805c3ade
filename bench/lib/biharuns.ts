// One failover or switchover repetition on a biha benchmark cluster: the fault or command, the
// write gap around it (gap.ts), the controllers' own timeline from their logs, and, after a
// failover, the killed node back as a streaming FOLLOWER.
import { performance } from 'node:perf_hooks';
import type { TestCluster } from '../../test/helpers/cluster.js';
import { bihactl } from '../../test/helpers/cluster.js';
import { healthyLeader } from './cluster.js';
import { gapOf, writeGapAround } from './gap.js';
import { failoverBreakdown, formatBreakdown } from './breakdown.js';
import type { Breakdown } from './breakdown.js';
import { logEvents, timeline } from './logs.js';
import { fmtMs } from './report.js';

export interface GapRun {
  gapMs: number;
  /** From the kill / the switchover command to the first acknowledged write after it. */
  toFirstWriteMs: number;
  /** Where a failover's time went, from the new leader's log. */
  breakdown?: Breakdown;
}

export interface SwitchoverRun extends GapRun {
  /** How long the switchover command took to return. */
  commandMs: number;
}

/** How long the write loop of a failover run lasts: 3 s before the kill, twice the election timeout, 15 s. */
export function failoverSeconds(hb: number, lost: number): number {
  return Math.ceil((3000 + 2.5 * hb * lost + 15_000) / 1000);
}

/**
 * The fault of a failover run: `kill9` is kill -9 of the leader's controller and postmaster
 * (TestCluster.kill9(leader, 'both')); `tree` adds every process below them (the lease watchdog,
 * backends, walsenders) in the same instant, as a crashed host.
 */
export type BihaFault = 'kill9' | 'tree';

function inflict(c: TestCluster, i: number, fault: BihaFault): void {
  if (fault === 'kill9') {
    c.kill9(i, 'both');
    return;
  }
  for (const pid of c.hostPids(i)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
}

/**
 * Repetition r of a failover: the fault on the leader while the client writes; then
 * `bihactl start` of the killed node and a wait for a healthy cluster. Null when no new leader
 * acknowledged a write in time.
 */
export async function bihaFailoverRun(c: TestCluster, r: number, hb: number, lost: number, fault: BihaFault = 'kill9'): Promise<GapRun | null> {
  const leader = await healthyLeader(c);
  const seconds = failoverSeconds(hb, lost);
  const g = await writeGapAround({
    uri: c.connString(),
    seconds,
    warmupMs: 3000,
    isNewLeader: (port) => port !== c.port(leader),
    action: () => inflict(c, leader, fault),
  });
  const gap = gapOf(g);
  const next = g.first ? c.ids().find((i) => c.port(i) === g.first?.port) ?? 0 : 0;
  let run: GapRun | null = gap;
  if (!gap || !g.first) {
    console.log(`  run ${r}: no write acknowledged by a new leader within ${seconds} s of the start (kill at ${Math.round(g.actionAt)} ms)`);
  } else {
    const ev = logEvents(c, next, g.actionWall - 50);
    const breakdown = failoverBreakdown(ev, g.actionWall, g.actionWall + gap.toFirstWriteMs);
    run = { ...gap, breakdown };
    console.log(
      `  run ${r}: node ${leader} killed, node ${next} leads; write gap ${fmtMs(gap.gapMs)} (last write on node ${leader} ${Math.round(g.first.prev - g.actionAt)} ms from the kill), ` +
        `kill -> first write ${fmtMs(gap.toFirstWriteMs)}; ${g.loop.ok} writes ok, ${g.loop.failed} failed, longest gap of the run ${fmtMs(g.loop.maxGapMs)}\n` +
        `         node ${next} after the kill: ${timeline(ev, g.actionWall, [
          ['CANDIDATE', /^state CANDIDATE/],
          ['LEADER_RO', /^state LEADER_RO/],
          ['LEADER_RW', /^state LEADER_RW/],
          ['promote', /to "PRIMARY": promote/],
          ['promoted', /^done: promote/],
        ])}, first write +${Math.round(gap.toFirstWriteMs)} ms\n` +
        `         breakdown: ${formatBreakdown(breakdown)}`,
    );
  }
  // The killed node comes back as a follower of the new leader before the next repetition.
  const back = performance.now();
  const startWall = Date.now();
  const s = await bihactl(['start', `--pgdata=${c.pgdata(leader)}`]);
  if (s.code !== 0) throw new Error(`bihactl start of node ${leader} failed: ${s.stderr}`);
  const now = await healthyLeader(c);
  const rewound = logEvents(c, leader, startWall).some((e) => /timelines diverged/.test(e.msg));
  console.log(`         node ${leader} restarted with bihactl start: FOLLOWER of node ${now} after ${fmtMs(performance.now() - back)}${rewound ? ' (its WAL had diverged: pg_rewind)' : ''}`);
  return run;
}

/**
 * Repetition r of a switchover: `bihactl set-leader --id=<next>` while the client writes for
 * `seconds` in all (2 s of them before the command). Null when it failed.
 */
export async function bihaSwitchoverRun(c: TestCluster, r: number, seconds = 15): Promise<SwitchoverRun | null> {
  const leader = await healthyLeader(c);
  const target = (leader % c.ids().length) + 1;
  const g = await writeGapAround({
    uri: c.connString(),
    seconds,
    warmupMs: 2000,
    isNewLeader: (port) => port === c.port(target),
    action: () => bihactl(['set-leader', `--id=${target}`, `--pgdata=${c.pgdata(leader)}`]),
  });
  const run = gapOf(g);
  if (g.result.code !== 0 || !run || !g.first) {
    const why = g.result.code !== 0 ? `bihactl set-leader failed: ${g.result.stderr.trim()}` : `bihactl set-leader returned after ${fmtMs(g.actionMs)} but node ${target} acknowledged no write within the ${seconds} s of the write loop`;
    console.log(`  run ${r}: switchover ${leader} -> ${target}: ${why} (longest gap ${fmtMs(g.loop.maxGapMs)})`);
    return null;
  }
  const evOld = logEvents(c, leader, g.actionWall - 50);
  const evNew = logEvents(c, target, g.actionWall - 50);
  console.log(
    `  run ${r}: node ${leader} -> node ${target}: write gap ${fmtMs(run.gapMs)} (${Math.round(g.first.prev - g.actionAt)}..${Math.round(g.first.at - g.actionAt)} ms after the command started; longest of the run ${fmtMs(g.loop.maxGapMs)}), bihactl set-leader took ${fmtMs(g.actionMs)}, ${g.loop.failed} writes failed\n` +
      `         old leader node ${leader}: ${timeline(evOld, g.actionWall, [['fence', /to "STANDBY": fence/], ['stopped', /^PostgreSQL stopped cleanly/], ['fenced', /^done: fence/], ['FOLLOWER', /^state FOLLOWER/]])}\n` +
      `         new leader node ${target}: ${timeline(evNew, g.actionWall, [['CANDIDATE', /^state CANDIDATE/], ['LEADER_RO', /^state LEADER_RO/], ['LEADER_RW', /^state LEADER_RW/], ['promote', /to "PRIMARY": promote/], ['promoted', /^done: promote/]])}` +
      ` (promotion steps: ${JSON.stringify(evNew.find((e) => e.msg === 'promotion steps (ms)')?.fields ?? {}, ['duties', 'watchdog', 'timeline', 'pg_promote'])})`,
  );
  return { ...run, commandMs: g.actionMs };
}
