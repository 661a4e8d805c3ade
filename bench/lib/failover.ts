// Failover after kill -9 of the leader on a reused cluster: the write gap a multi-host client
// sees, the time to the first write a new leader acknowledged, and the old leader's return.
import * as fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import { measureWriteGap, parseMultiHostUri } from '../../src/client/multihost.js';
import type { TestCluster } from '../../test/helpers/cluster.js';
import { bihactl, sleep } from '../../test/helpers/cluster.js';
import { healthyLeader } from './cluster.js';
import { logEvents, timeline } from './logs.js';
import { fmtMs, line } from './report.js';

export interface GapRun {
  gapMs: number;
  /** From the kill / the switchover command to the first acknowledged write after it. */
  toFirstWriteMs: number;
}

/**
 * `runs` times: a client inserts every 20 ms through the multi-host read-write URI
 * (measureWriteGap), the leader's controller and postmaster get kill -9, and the killed node is
 * started again and rejoins before the next run. Returns the write gaps.
 */
export async function failover(c: TestCluster, label: string, hb: number, lost: number, runs: number, targetMs?: number): Promise<GapRun[]> {
  console.log(`\n[${label}] failover after kill -9 of the leader's controller and postmaster (TestCluster.kill9(leader, 'both')), heartbeat ${hb} ms x ${lost}, ${runs} runs; load average ${fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
  const out: GapRun[] = [];
  const seconds = Math.ceil((3000 + 2.5 * hb * lost + 15_000) / 1000);
  for (let r = 1; r <= runs; r++) {
    const leader = await healthyLeader(c);
    let killAt = Infinity;
    let lastAck = 0;
    // The first write a new leader acknowledged after the kill, and the last acknowledged write
    // before it (which can be an in-flight insert the dying leader answered just after the kill).
    let first: { at: number; port: number; prev: number } | null = null;
    const t0 = performance.now();
    const gapP = measureWriteGap(parseMultiHostUri(c.connString()), {
      periodMs: 20,
      seconds,
      table: 'bench_gap',
      onAck: (at, port) => {
        if (at > killAt && port !== c.port(leader) && !first) first = { at, port, prev: lastAck };
        lastAck = at;
      },
    });
    await sleep(3000);
    const killWall = Date.now();
    killAt = performance.now() - t0;
    c.kill9(leader, 'both');
    const g = await gapP;
    const f = first as { at: number; port: number; prev: number } | null;
    const next = f ? c.ids().find((i) => c.port(i) === f.port) ?? 0 : 0;
    if (!f) {
      console.log(`  run ${r}: no write acknowledged by a new leader within ${seconds} s of the start (kill at ${Math.round(killAt)} ms)`);
    } else {
      const gap = f.at - f.prev;
      out.push({ gapMs: gap, toFirstWriteMs: f.at - killAt });
      const ev = logEvents(c, next, killWall - 50);
      console.log(
        `  run ${r}: node ${leader} killed, node ${next} leads; write gap ${fmtMs(gap)} (last write on node ${leader} ${Math.round(f.prev - killAt)} ms from the kill), ` +
          `kill -> first write ${fmtMs(f.at - killAt)}; ${g.ok} writes ok, ${g.failed} failed, longest gap of the run ${fmtMs(g.maxGapMs)}\n` +
          `         node ${next} after the kill: ${timeline(ev, killWall, [
            ['CANDIDATE', /^state CANDIDATE/],
            ['LEADER_RO', /^state LEADER_RO/],
            ['LEADER_RW', /^state LEADER_RW/],
            ['promote', /to "PRIMARY": promote/],
            ['promoted', /^done: promote/],
          ])}, first write +${Math.round(f.at - killAt)} ms`,
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
  }
  line('write gap', out.map((x) => x.gapMs), fmtMs, targetMs === undefined ? undefined : { max: targetMs, text: `<= ${fmtMs(targetMs)}` });
  line('kill -> first acknowledged write', out.map((x) => x.toFirstWriteMs), fmtMs);
  return out;
}
