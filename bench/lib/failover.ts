// Failover after kill -9 of the leader on a reused cluster, repeated: every run's write gap and
// timeline (biharuns.ts), then the medians, the time beyond detection and where it went.
import * as fs from 'node:fs';
import type { TestCluster } from '../../test/helpers/cluster.js';
import { printBreakdowns } from './breakdown.js';
import { bihaFailoverRun } from './biharuns.js';
import type { GapRun } from './biharuns.js';
import { fmtMs, line } from './report.js';

export type { GapRun } from './biharuns.js';

/**
 * `runs` times: a client inserts every 20 ms through the multi-host read-write URI, the leader's
 * controller and postmaster get kill -9, and the killed node is started again and rejoins before
 * the next run. Returns the runs that ended with a write on a new leader.
 */
export async function failover(c: TestCluster, label: string, hb: number, lost: number, runs: number, targetMs?: number): Promise<GapRun[]> {
  console.log(
    `\n[${label}] failover after kill -9 of the leader's controller and postmaster (TestCluster.kill9(leader, 'both')), heartbeat ${hb} ms x ${lost}, ${runs} runs; ` +
      `load average ${fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`,
  );
  const out: GapRun[] = [];
  for (let r = 1; r <= runs; r++) {
    const run = await bihaFailoverRun(c, r, hb, lost);
    if (run) out.push(run);
  }
  line('write gap', out.map((x) => x.gapMs), fmtMs, targetMs === undefined ? undefined : { max: targetMs, text: `<= ${fmtMs(targetMs)}` });
  line('kill -> first acknowledged write', out.map((x) => x.toFirstWriteMs), fmtMs);
  line(`kill -> first acknowledged write, minus detection (heartbeat ${hb} ms x ${lost})`, out.map((x) => x.toFirstWriteMs - hb * lost), fmtMs, { max: 100, text: '<= 100 ms' });
  console.log("  breakdown (the new leader's controller.log), medians:");
  printBreakdowns(out.flatMap((x) => (x.breakdown ? [x.breakdown] : [])));
  return out;
}
