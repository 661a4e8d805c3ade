// Idle soak: a 3-node cluster at heartbeat 100 ms x 5 left alone for SOAK_MINUTES, counting the
// elections nobody asked for.
//
//   npx vite-node bench/soak.ts idle     no fault
//   npx vite-node bench/soak.ts loss     SOAK_LOSS_PCT (default 5) % of the packets to and from the
//                                        biha control-channel ports dropped on every node
//   SOAK_MINUTES=M (default 30)
//
// Each node is a host of its own (a network namespace, test/jepsen-lite/hosts.ts) so that packet
// loss can be put on one port class; both modes use them, so the figures compare. The two modes
// use different run ids, subnets and ports and may run at the same time.
//
// Every second each controller's own state (state, term, leader; what `bihactl status --json`
// prints, over its local socket, which the loss does not touch) is polled; every new term, leader
// change and state change is printed with its time. At the end, the lines "state CANDIDATE" of
// each controller.log written during the soak are counted as well, and so are the leases that
// expired without renewal (the watchdog then fences PostgreSQL, with or without an election).
// The nodes' logs are kept in /tmp/biha-soak-<mode>-<run id>-logs.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Hosts, cleanupStale } from '../test/jepsen-lite/hosts.js';
import { NsCluster, snapshotProduct } from '../test/jepsen-lite/nodes.js';
import { run, sleep } from '../test/jepsen-lite/proc.js';
import { ElectionWatch } from './lib/elections.js';
import type { Seen } from './lib/elections.js';
import { logEvents } from './lib/logs.js';

const MODES = { idle: { subnet: 170, basePort: 30000 }, loss: { subnet: 171, basePort: 30100 } } as const;
type Mode = keyof typeof MODES;

const MINUTES = Math.max(1, Number(process.env['SOAK_MINUTES'] ?? 30) || 30);
const LOSS_PCT = Math.max(1, Math.min(50, Number(process.env['SOAK_LOSS_PCT'] ?? 5) || 5));
const HB_MS = 100;
const HB_LOST = 5;

const loadavg = (): string => fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
const iso = (t: number): string => new Date(t).toISOString();
const log = (s: string): void => console.log(`${iso(Date.now())} ${s}`);

/**
 * Drops pct % of the TCP packets to or from the control-channel ports on node i, both ways, in a
 * table of its own in the node's namespace (removed with the namespace).
 */
async function controlChannelLoss(hosts: Hosts, c: NsCluster, i: number, pct: number): Promise<void> {
  const ports = `{ ${c.ids().map((k) => c.bihaPort(k)).join(', ')} }`;
  const table = `${hosts.prefix}loss`;
  const script = [
    `table inet ${table} {`,
    '  chain input { type filter hook input priority 0; policy accept;',
    `    tcp dport ${ports} numgen random mod 100 < ${pct} counter drop`,
    `    tcp sport ${ports} numgen random mod 100 < ${pct} counter drop`,
    '  }',
    '  chain output { type filter hook output priority 0; policy accept;',
    `    tcp dport ${ports} numgen random mod 100 < ${pct} counter drop`,
    `    tcp sport ${ports} numgen random mod 100 < ${pct} counter drop`,
    '  }',
    '}',
    '',
  ].join('\n');
  const r = await run('ip', ['netns', 'exec', hosts.ns(i), 'nft', '-f', '-'], { timeoutMs: 10_000, input: script });
  if (r.code !== 0) throw new Error(`nft on node ${i} failed: ${r.stderr}`);
}

function printSeen(xs: readonly Seen[], t0: number): void {
  for (const e of xs) console.log(`    ${iso(e.t)} (+${((e.t - t0) / 1000).toFixed(1)} s) node ${e.node}: ${e.what}`);
}

/** Packets the loss rules of node i dropped so far (their counters), or null without the table. */
async function dropped(hosts: Hosts, i: number): Promise<number | null> {
  const r = await run('ip', ['netns', 'exec', hosts.ns(i), 'nft', 'list', 'table', 'inet', `${hosts.prefix}loss`], { timeoutMs: 10_000 });
  if (r.code !== 0) return null;
  return [...r.stdout.matchAll(/counter packets (\d+)/g)].reduce((a, m) => a + Number(m[1]), 0);
}

/** One poll of every node's own state into the watch; returns how many nodes did not answer. */
async function poll(c: NsCluster, watch: ElectionWatch): Promise<number> {
  const at = Date.now();
  const st = await c.ownStates(900);
  let missing = 0;
  for (const i of c.ids()) {
    const s = st.get(i);
    if (!s) {
      missing++;
      continue;
    }
    for (const e of watch.observe(at, i, { state: s.state, term: s.term, leader: s.leader })) log(`node ${i}: ${e.what}`);
  }
  return missing;
}

async function soak(hosts: Hosts, c: NsCluster, mode: Mode): Promise<void> {
  const watch = new ElectionWatch();
  const t0 = Date.now();
  const end = t0 + MINUTES * 60_000;
  let polls = 0;
  let missing = 0;
  log(`soak ${mode}: ${MINUTES} min, one poll of every node per second; load average ${loadavg()}`);
  for (let k = 0; k < MINUTES * 60 + 60 && Date.now() < end; k++) {
    const at = Date.now();
    missing += await poll(c, watch);
    polls++;
    if (polls % 300 === 0) log(`${polls} polls, ${watch.newTerms().length} new terms so far; load average ${loadavg()}`);
    await sleep(1000 - (Date.now() - at));
  }
  const stopWall = Date.now();
  // A last look a few seconds later, so that an election that began in the last second is seen.
  await sleep(3000);
  missing += await poll(c, watch);
  const candidates = c.ids().flatMap((i) => logEvents(c, i, t0).filter((e) => e.t <= stopWall && /^state CANDIDATE/.test(e.msg)).map((e) => ({ t: e.t, node: i, what: e.msg })));
  candidates.sort((a, b) => a.t - b.t);
  const terms = watch.newTerms();
  console.log(`\n[soak ${mode}] ${MINUTES} min, heartbeat ${HB_MS} ms x ${HB_LOST}, 3 nodes${mode === 'loss' ? `, ${LOSS_PCT} % packet loss on the control-channel ports of every node` : ''}; ${polls} polls, ${missing} node answers missing; load average at the end ${loadavg()}`);
  if (mode === 'loss') {
    const d = await Promise.all(c.ids().map(async (i) => `node ${i} ${(await dropped(hosts, i)) ?? '?'}`));
    console.log(`  packets dropped by the loss rules: ${d.join(', ')}`);
  }
  console.log(`  new terms (elections): ${terms.length}`);
  console.log(`  terms at the end: ${[...watch.lastTerms()].map(([i, t]) => `node ${i} ${t}`).join(', ')}`);
  for (const x of terms) console.log(`    ${iso(x.t)} (+${((x.t - t0) / 1000).toFixed(1)} s) term ${x.term}, first seen on node ${x.node}`);
  console.log(`  leader changes seen by a node: ${watch.leaderChanges.length}`);
  printSeen(watch.leaderChanges, t0);
  console.log(`  state changes: ${watch.stateChanges.length}`);
  printSeen(watch.stateChanges, t0);
  console.log(`  "state CANDIDATE" lines in controller.log: ${candidates.length}`);
  printSeen(candidates, t0);
  // A leader whose lease ran out has its PostgreSQL fenced by the watchdog even when no election
  // follows (it restarts and promotes it again in the same term): a write outage the polls miss.
  const fences = c.ids().flatMap((i) => logEvents(c, i, t0).filter((e) => e.t <= stopWall && /lease expired without renewal/.test(e.msg)).map((e) => ({ t: e.t, node: i, what: e.msg })));
  fences.sort((a, b) => a.t - b.t);
  console.log(`  leases that expired without renewal (the watchdog fenced PostgreSQL): ${fences.length}`);
  printSeen(fences, t0);
}

async function main(): Promise<void> {
  const mode = (process.argv[2] ?? '') as Mode;
  if (!(mode in MODES)) throw new Error(`usage: npx vite-node bench/soak.ts idle|loss (SOAK_MINUTES=M, SOAK_LOSS_PCT=P)`);
  const { subnet, basePort } = MODES[mode];
  const runId = `s${mode[0]}${randomBytes(2).toString('hex')}`;
  const dataDir = path.join('/tmp', `biha-jepsen-${runId}`);
  cleanupStale(log);
  const hosts = new Hosts(runId, 3, subnet, dataDir);
  const product = await snapshotProduct(runId);
  const c = new NsCluster(hosts, { nodes: 3, basePort, nquorum: 2, minnodes: 2, syncStandbys: 0, hbPeriodMs: HB_MS, hbMaxLost: HB_LOST, autorewind: true }, log, product.bihactl);
  const cleanup = (): void => {
    hosts.teardownSync();
    fs.rmSync(dataDir, { recursive: true, force: true });
    fs.rmSync(product.dir, { recursive: true, force: true });
  };
  const onSignal = (sig: NodeJS.Signals): void => {
    log(`${sig}: removing the namespaces, bridge and processes of run ${runId}`);
    cleanup();
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  log(`bench/soak.ts ${mode}: run ${runId}, namespaces ${hosts.ns(1)}..${hosts.ns(3)}, 10.213.${subnet}.0/24, ports ${basePort}..${basePort + 22}; node ${process.version}; load average ${loadavg()}`);
  try {
    await hosts.setup();
    await c.create();
    const first = await c.waitConverged(60_000);
    if (!first.ok) throw new Error(`no leader: ${first.why}`);
    log(`cluster ready, node ${first.leader} leads`);
    if (mode === 'loss') {
      for (const i of c.ids()) await controlChannelLoss(hosts, c, i, LOSS_PCT);
      log(`${LOSS_PCT} % loss on TCP ports ${c.ids().map((i) => c.bihaPort(i)).join(', ')} (control channel) on every node, both directions`);
    }
    await soak(hosts, c, mode);
    const last = await c.waitConverged(60_000);
    console.log(`  at the end: ${last.ok ? `converged, node ${last.leader} leads` : `NOT converged: ${last.why}`}`);
    await c.stopAll();
    const logs = path.join('/tmp', `biha-soak-${mode}-${runId}-logs`);
    c.copyLogs(logs);
    log(`controller and PostgreSQL logs kept in ${logs}`);
  } finally {
    await hosts.teardown().catch((e: unknown) => log(`teardown: ${String(e)}`));
    cleanup();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
