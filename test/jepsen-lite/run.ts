// One jepsen-lite run: hosts → cluster → workload + nemesis schedule → heal → convergence → final
// read → checkers → run directory (history.jsonl, node logs, summary.txt, summary.json,
// timeline.svg). Everything the run creates is removed at the end, also on failure or a signal.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readNodeState } from '../../src/controller/state/nodefiles.js';
import { Prng } from '../../src/sim/prng.js';
import { checkConsensus, checkSet, checkSplitBrain, lateAcks, lostContext, unavailability } from './checker.js';
import type { ConsensusResult, SetResult, SplitBrain, Window } from './checker.js';
import { History } from './history.js';
import { Hosts, REGISTRY_DIR, cleanupStale } from './hosts.js';
import { parseControllerLog } from './logs.js';
import type { LogEvent, StateEvent } from './logs.js';
import { startFault } from './nemesis.js';
import type { ActiveFault, NemesisName } from './nemesis.js';
import { DB, NsCluster, PASSWORD, ROOT, USER, snapshotProduct } from './nodes.js';
import { run, sleep } from './proc.js';
import { renderTimeline } from './timeline.js';
import { LogFollower } from './votelog.js';
import { CREATE_TABLE, RoleProbe, Workload, exec, readSet } from './workload.js';
import type { ClientSpec } from './workload.js';
import { claimPorts } from '../helpers/ports.js';

export interface RunOptions {
  readonly nodes: number;
  readonly timeSec: number;
  readonly nemeses: readonly NemesisName[];
  readonly mode: 'sync' | 'async';
  readonly seed: number;
  readonly hbPeriodMs?: number;
  readonly hbMaxLost?: number;
  /** Fault interval length range (ms). */
  readonly faultMs?: readonly [number, number];
  /** Quiet time between faults (ms). */
  readonly quietMs?: readonly [number, number];
  /** Probability that an interval combines a process fault and a network fault. */
  readonly mixProbability?: number;
  /** Bound on convergence after the final heal (ms). */
  readonly convergeMs?: number;
  readonly runsDir?: string;
  readonly keepData?: boolean;
  /** biha.autorewind = true on every node (default: the product default, false). */
  readonly autorewind?: boolean;
  /** Also render timeline.png (ImageMagick convert or rsvg-convert, if installed). */
  readonly png?: boolean;
  readonly log?: (s: string) => void;
  /** Command line shown in the summary. */
  readonly command?: string;
  /** Use this 10.213.X.0/24 (it must be free) instead of a random one. */
  readonly subnet?: number;
  /** Run ids start with this (1-2 lowercase letters or digits), so that runs are told apart. */
  readonly runIdPrefix?: string;
  /** biha.set_no_wal_on_follower(ms) once the cluster is formed (default: leave the product default). */
  readonly noWalOnFollowerMs?: number;
}

export interface RunSummary {
  readonly dir: string;
  readonly valid: boolean;
  readonly text: string;
  readonly set: SetResult | null;
  readonly splitBrain: SplitBrain[];
  readonly consensus: ConsensusResult;
  readonly converged: { ok: boolean; ms: number; leader: number; why: string; nodeErrors: number[] };
  readonly windows: Window[];
}

// Faults that a mixed interval may combine (one of each). The timed faults (promotion-fault,
// rewind-fault) are never mixed: they make their own second fault.
const PROCESS_FAULTS: readonly NemesisName[] = ['kill-controller', 'kill-follower-controller', 'kill-postgres', 'kill-watchdog', 'crash', 'freeze', 'pause', 'restart'];
const NET_FAULTS: readonly NemesisName[] = ['partition-leader', 'partition-half', 'partition-bridge', 'partition-ring', 'cut-control', 'cut-control-out', 'cut-control-in', 'cut-replication', 'slow', 'loss', 'flap'];

function stamp(d: Date): string {
  return d.toISOString().replace(/[:]/g, '-').replace(/\..*$/, 'Z');
}

/**
 * Picks a free 10.213.X.0/24 and claims a block of 50 ports from a random point of 18000-18999
 * on (test/helpers/ports.ts: the nodes listen inside their namespaces, but their socket files and
 * the claims are shared by every run on this machine).
 */
async function pickResources(rng: Prng, fixedSubnet?: number): Promise<{ subnet: number; basePort: number }> {
  const addrs = (await run('ip', ['-br', 'addr'])).stdout;
  let subnet = 0;
  if (fixedSubnet !== undefined) {
    if (addrs.includes(`10.213.${fixedSubnet}.`)) throw new Error(`subnet 10.213.${fixedSubnet}.0/24 is in use: choose another --subnet`);
    subnet = fixedSubnet;
  }
  for (let k = 0; k < 200 && !subnet; k++) {
    const s = 1 + rng.int(250);
    if (!addrs.includes(`10.213.${s}.`)) subnet = s;
  }
  if (!subnet) throw new Error('no free subnet for this run');
  for (let k = 0; k < 20; k++) {
    const basePort = claimPorts(18000 + 50 * rng.int(20), 50);
    const sockets = Array.from({ length: 50 }, (_, i) => basePort + i).some((p) => fs.existsSync(`/tmp/.s.PGSQL.${p}`) || fs.existsSync(`/tmp/.s.BIHA.${p}`));
    if (!sockets) return { subnet, basePort };
  }
  throw new Error('no free port block for this run');
}

export async function runJepsen(o: RunOptions): Promise<RunSummary> {
  const log = o.log ?? ((s: string): void => void process.stdout.write(`${s}\n`));
  const hbPeriodMs = o.hbPeriodMs ?? 200;
  const hbMaxLost = o.hbMaxLost ?? 10;
  const electionMs = hbPeriodMs * hbMaxLost;
  const faultMs = o.faultMs ?? [Math.max(6000, electionMs * 3), Math.max(12_000, electionMs * 6)];
  const quietMs = o.quietMs ?? [3000, 6000];
  const convergeMs = o.convergeMs ?? 90_000;
  const n = o.nodes;
  const nquorum = Math.floor(n / 2) + 1;
  const syncStandbys = o.mode === 'sync' ? (n >= 5 ? 2 : 1) : 0;
  const rng = new Prng(o.seed);
  // A rewind only happens with biha.autorewind = true: without it the rewind fault has nothing to hit.
  const nemeses = o.autorewind ? o.nemeses : o.nemeses.filter((x) => x !== 'rewind-fault');
  if (nemeses.length === 0) throw new Error('rewind-fault needs --autorewind (biha.autorewind = true): without it no node rewinds');
  const prefix = o.runIdPrefix ?? '';
  if (!/^[a-z0-9]{0,2}$/.test(prefix)) throw new Error(`run id prefix "${prefix}" must be at most 2 lowercase letters or digits`);
  const runId = prefix + randomBytes(3).toString('hex').slice(0, 4 - prefix.length);
  const runsDir = o.runsDir ?? path.join(ROOT, 'test', 'jepsen-lite', 'runs');
  const dir = path.join(runsDir, `${stamp(new Date())}-${runId}`);
  fs.mkdirSync(dir, { recursive: true });
  const dataDir = path.join('/tmp', `biha-jepsen-${runId}`);

  cleanupStale(log);
  const res = await pickResources(rng.fork(1), o.subnet);
  const hosts = new Hosts(runId, n, res.subnet, dataDir);
  const product = await snapshotProduct(runId);
  const c = new NsCluster(hosts, { nodes: n, basePort: res.basePort, nquorum, minnodes: nquorum, syncStandbys, hbPeriodMs, hbMaxLost, autorewind: !!o.autorewind }, log, product.bihactl);
  const h = new History(path.join(dir, 'history.jsonl'));
  const command = o.command ?? `npm run jepsen -- --nodes ${n} --time ${o.timeSec} --nemesis ${o.nemeses.join(',')} --mode ${o.mode} --seed ${o.seed}${o.autorewind ? ' --autorewind' : ''}`;
  log(`run ${runId}: ${command}`);
  if (nemeses.length < o.nemeses.length) log('rewind-fault left out: it needs --autorewind');
  log(`run directory ${dir}; namespaces ${hosts.ns(1)}..${hosts.ns(n)}, bridge ${hosts.bridge} 10.213.${res.subnet}.0/24, ports ${res.basePort}..${res.basePort + 10 * (n - 1) + 2}`);

  // Emergency cleanup on Ctrl-C / kill / unexpected exit.
  const emergency = (): void => {
    hosts.teardownSync();
    if (!o.keepData) fs.rmSync(dataDir, { recursive: true, force: true });
    fs.rmSync(product.dir, { recursive: true, force: true });
  };
  const onSignal = (sig: NodeJS.Signals): void => {
    log(`${sig}: removing namespaces, bridge and processes of run ${runId}`);
    emergency();
    process.exit(sig === 'SIGINT' ? 130 : 143);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);
  process.on('exit', emergency);

  let sampler: Promise<void> | null = null;
  let voteTail: Promise<void> | null = null;
  let stopSampler = false;
  let workload: Workload | null = null;
  let finalRead: Set<string> | null = null;
  let converged: RunSummary['converged'] = { ok: false, ms: 0, leader: 0, why: 'not reached', nodeErrors: [] };
  let wlStart = Date.now();
  let wlEnd = Date.now();
  let tEnd = Date.now();
  const followerNotes: string[] = [];
  let setupError: string | null = null;
  try {
    await hosts.setup();
    await c.create();
    const first = await c.waitConverged(60_000);
    if (!first.ok) throw new Error(`no leader before the workload: ${first.why}`);
    await exec(c.addr(first.leader), c.port(first.leader), CREATE_TABLE);
    if (o.noWalOnFollowerMs !== undefined) {
      await exec(c.addr(first.leader), c.port(first.leader), `select biha.set_no_wal_on_follower(${o.noWalOnFollowerMs})`);
      log(`no_wal_on_follower set to ${o.noWalOnFollowerMs} ms`);
    }
    h.mark(`cluster ready, leader ${first.leader}`);
    log(`cluster ready: leader ${first.leader}; mode ${o.mode} (sync standbys ${syncStandbys}), nquorum=minnodes=${nquorum}, heartbeat ${hbPeriodMs} ms x ${hbMaxLost}`);

    // Every persisted vote, from the controllers' logs as they are written (votelog.ts).
    const followers = c.ids().map((i) => new LogFollower(path.join(c.pgdata(i), 'pg_biha', 'log', 'controller.log'), i));
    voteTail = (async () => {
      for (let k = 0; k < 1_000_000 && !stopSampler; k++) {
        for (const f of followers) for (const v of f.poll()) h.loggedVote(v);
        await sleep(100);
      }
    })();
    // Samples of every node's state and persisted vote, for the timeline and the vote check.
    // The PostgreSQL role comes from PostgreSQL itself (pg_is_in_recovery), not from the controller.
    const probe = new RoleProbe(new Map(c.ids().map((i) => [i, { host: c.addr(i), port: c.port(i) }])));
    sampler = (async () => {
      for (let k = 0; k < 100_000 && !stopSampler; k++) {
        const at = Date.now();
        const [st, roles] = await Promise.all([c.ownStates(800), Promise.all(c.ids().map((i) => probe.roleOf(i)))]);
        for (const i of c.ids()) {
          const s = st.get(i);
          h.sample({ at, node: i, state: s?.state ?? null, term: s?.term ?? null, leader: s?.leader ?? null, pgRole: roles[i - 1] ?? null });
          try {
            const ns = await readNodeState(c.pgdata(i));
            h.hardState({ at, node: i, term: ns.raft.hard.term, vote: ns.raft.hard.vote });
          } catch {
            // being rewritten or gone
          }
        }
        await sleep(Math.max(50, 500 - (Date.now() - at)));
      }
      probe.close();
    })();

    const hostsList = c.ids().map((i) => ({ host: c.addr(i), port: c.port(i) }));
    const multi = (order: Array<{ host: string; port: number }>): ClientSpec['target'] => ({
      kind: 'multi',
      t: { hosts: order, user: USER, password: PASSWORD, database: DB, targetSessionAttrs: 'read-write', connectTimeoutMs: 2000 },
    });
    const clients: ClientSpec[] = [
      { name: 'mh1', target: multi(hostsList), periodMs: 40 },
      { name: 'mh2', target: multi([...hostsList].reverse()), periodMs: 40 },
      ...c.ids().map((i): ClientSpec => ({ name: `n${i}`, target: { kind: 'pinned', node: i, host: c.addr(i), port: c.port(i) }, periodMs: 150 })),
    ];
    workload = new Workload(
      {
        clients,
        nodeOf: (host, port) => c.ids().find((i) => c.addr(i) === host && c.port(i) === port) ?? 0,
        statementTimeoutMs: 4000,
        queryTimeoutMs: 8000,
        maxOpsPerClient: 200_000,
      },
      h,
    );
    wlStart = Date.now();
    workload.start();
    const deadline = wlStart + o.timeSec * 1000;
    const nrng = rng.fork(2);
    const leaderOrAny = async (): Promise<{ id: number; isLeader: boolean }> => {
      const st = await c.ownStates();
      const l = [...st].find(([, s]) => s.state === 'LEADER_RW');
      return l ? { id: l[0], isLeader: true } : { id: nrng.pick(c.ids()), isLeader: false };
    };

    for (let cycle = 0; cycle < 1000; cycle++) {
      const quiet = nrng.range(quietMs[0], quietMs[1]);
      if (Date.now() + quiet + faultMs[0] > deadline) break;
      await sleep(quiet);
      const interval = Math.min(nrng.range(faultMs[0], faultMs[1]), Math.max(faultMs[0], deadline - Date.now()));
      // One fault, or (mixed) one process fault and one network fault at once.
      let names: NemesisName[] = [nrng.pick(nemeses)];
      const procs = nemeses.filter((x) => PROCESS_FAULTS.includes(x));
      const nets = nemeses.filter((x) => NET_FAULTS.includes(x) && x !== 'flap');
      if (procs.length && nets.length && PROCESS_FAULTS.concat(NET_FAULTS).includes(names[0]!) && nrng.chance(o.mixProbability ?? 0.25)) names = [nrng.pick(nets), nrng.pick(procs)];
      const active: Array<{ f: ActiveFault; rec: ReturnType<History['nemesisStart']> }> = [];
      for (const name of names) {
        const startAt = Date.now();
        try {
          const f = await startFault(name, { c, rng: nrng, log, leaderOrAny, intervalMs: interval, autorewind: !!o.autorewind });
          const rec = h.nemesisStart(f.name, f.what, f.nodes, startAt);
          active.push({ f, rec });
          log(`[${((startAt - wlStart) / 1000).toFixed(1)} s] fault ${f.name}: ${f.what}`);
        } catch (e) {
          log(`fault ${name} could not start: ${e instanceof Error ? e.message : String(e)}`);
          h.mark(`fault ${name} could not start: ${e instanceof Error ? e.message : String(e)}`);
          // A fault that failed half-way (a crash done, an isolation not) leaves no heal: undo everything.
          await hosts.healAll();
          for (const i of c.ids()) {
            c.signal(i, 'controller', 'SIGCONT');
            await c.thaw(i);
            await c.ensureStarted(i);
          }
        }
      }
      await sleep(interval);
      for (const a of [...active].reverse()) {
        try {
          await a.f.heal();
        } catch (e) {
          log(`heal of ${a.f.name} failed: ${e instanceof Error ? e.message : String(e)}`);
        }
        h.nemesisEnd(a.rec);
      }
      await hosts.healAll();
      const rc = await c.waitConverged(30_000);
      h.mark(rc.ok ? `converged after ${rc.ms} ms, leader ${rc.leader}` : `not converged within 30 s after healing: ${rc.why}`);
      log(`[${((Date.now() - wlStart) / 1000).toFixed(1)} s] healed; ${rc.ok ? `converged in ${rc.ms} ms, leader ${rc.leader}` : `NOT converged: ${rc.why}`}`);
      if (Date.now() > deadline) break;
    }

    // Final heal: every rule and qdisc gone, every process running (not stopped), every controller started.
    await hosts.healAll();
    for (const i of c.ids()) {
      c.signal(i, 'controller', 'SIGCONT');
      await c.thaw(i);
      const r = await c.ensureStarted(i);
      if (r && r.code !== 0) log(`final heal: bihactl start node ${i} failed: ${r.stderr.trim()}`);
    }
    h.mark('final heal');
    await sleep(5000);
    await workload.stop();
    wlEnd = Date.now();
    log(`workload stopped: ${workload.counts.ok} ok, ${workload.counts.info} info, ${workload.counts.fail} fail`);
    converged = await c.waitConverged(convergeMs);
    h.mark(converged.ok ? `final convergence after ${converged.ms} ms, leader ${converged.leader}` : `no convergence within ${convergeMs} ms: ${converged.why}`);
    log(converged.ok ? `converged in ${converged.ms} ms: leader ${converged.leader}${converged.nodeErrors.length ? `, NODE_ERROR on ${converged.nodeErrors.join(',')}` : ''}` : `NOT converged within ${convergeMs} ms: ${converged.why}`);

    // Final read on the leader (the converged one, or any LEADER_RW).
    for (let k = 0; k < 30 && !finalRead; k++) {
      const st = await c.ownStates();
      const l = converged.ok ? converged.leader : ([...st].find(([, s]) => s.state === 'LEADER_RW')?.[0] ?? 0);
      if (l) {
        try {
          finalRead = await readSet(c.addr(l), c.port(l));
          log(`final read on node ${l}: ${finalRead.size} rows`);
          h.mark(`final read on node ${l}: ${finalRead.size} rows`);
          // Followers, for information: rows missing there, and rows they have that the leader lacks.
          await sleep(2000);
          for (const i of c.ids().filter((x) => x !== l)) {
            try {
              const f = await readSet(c.addr(i), c.port(i));
              const extra = [...f].filter((v) => !finalRead!.has(v)).length;
              const missing = [...finalRead].filter((v) => !f.has(v)).length;
              followerNotes.push(`node ${i}: ${f.size} rows, ${missing} of the leader's missing, ${extra} not on the leader`);
            } catch (e) {
              followerNotes.push(`node ${i}: unreadable (${e instanceof Error ? e.message : String(e)})`);
            }
          }
        } catch (e) {
          log(`final read on node ${l} failed: ${e instanceof Error ? e.message : String(e)}`);
        }
      }
      if (!finalRead) await sleep(1000);
    }
  } catch (e) {
    setupError = e instanceof Error ? e.stack ?? e.message : String(e);
    log(`run error: ${setupError}`);
  } finally {
    if (workload) await workload.stop();
    stopSampler = true;
    if (sampler) await sampler;
    if (voteTail) await voteTail;
    tEnd = Date.now();
    for (const i of c.ids()) await c.thaw(i).catch(() => 0);
    await c.stopAll().catch(() => undefined);
    c.copyLogs(path.join(dir, 'logs'));
    // The final logs: every vote line (those the follower already had are not recorded twice).
    for (const i of c.ids()) for (const v of new LogFollower(path.join(dir, 'logs', `n${i}-controller.log`), i).poll(1 << 30)) h.loggedVote(v);
    h.close();
    await hosts.teardown().catch((e: unknown) => log(`teardown: ${String(e)}`));
    if (!o.keepData) fs.rmSync(dataDir, { recursive: true, force: true });
    fs.rmSync(product.dir, { recursive: true, force: true });
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('SIGHUP', onSignal);
    process.off('exit', emergency);
    fs.rmSync(path.join(REGISTRY_DIR, `${hosts.prefix}.json`), { force: true });
  }

  // ---- checks ----
  const statesByNode = new Map<number, StateEvent[]>();
  const events: LogEvent[] = [];
  const foreignLines: string[] = [];
  for (const i of c.ids()) {
    let text = '';
    try {
      text = fs.readFileSync(path.join(dir, 'logs', `n${i}-controller.log`), 'utf8');
    } catch {
      // no log
    }
    const p = parseControllerLog(text, i);
    statesByNode.set(i, p.states);
    events.push(...p.events);
    for (const [other, count] of p.foreign) foreignLines.push(`node ${i}'s controller.log holds ${count} lines of node ${other}'s log (a copy from that peer, e.g. by pg_rewind)`);
  }
  const consensus = checkConsensus(statesByNode, h.hard);
  const splitBrain = checkSplitBrain(h.ops);
  const late = lateAcks(h.ops);
  const set = finalRead ? checkSet(h.ops, finalRead) : null;
  const windows = unavailability(h.ops, h.nemeses, wlStart, wlEnd);
  const consensusOk = consensus.twoLeaders.length === 0 && consensus.disagreeingLeader.length === 0 && consensus.termDecrease.length === 0 && consensus.doubleVote.length === 0;
  const lostOk = set !== null && (o.mode === 'async' || set.lost.length === 0);
  const valid = setupError === null && lostOk && splitBrain.length === 0 && consensusOk && converged.ok && (set?.failedButPresent.length ?? 0) === 0;

  const lines: string[] = [];
  const fmt = (ms: number): string => `${((ms - wlStart) / 1000).toFixed(1)} s`;
  lines.push(`biha jepsen-lite run ${path.basename(dir)}`);
  lines.push(`command: ${command}`);
  lines.push(`cluster: ${n} nodes, mode ${o.mode} (sync standbys ${syncStandbys}), nquorum=minnodes=${nquorum}, heartbeat ${hbPeriodMs} ms x ${hbMaxLost}, biha.autorewind ${o.autorewind ? 'true' : 'false'}`);
  lines.push(`VERDICT: ${valid ? 'VALID' : 'INVALID'}${o.mode === 'async' && set && set.lost.length ? ' (async mode: lost writes are reported, not failed)' : ''}`);
  if (setupError) lines.push(`run error: ${setupError.split('\n')[0]}`);
  if (set) {
    lines.push(`writes: ${set.ok + set.fail + set.info} attempted, ${set.ok} ok, ${set.info} info (${set.infoPresent} present, ${set.infoAbsent} absent), ${set.fail} fail`);
    lines.push(`lost acknowledged writes: ${set.lost.length}${set.lost.length ? ` (acknowledged between ${fmt(Math.min(...set.lost.map((x) => x.complete)))} and ${fmt(Math.max(...set.lost.map((x) => x.complete)))}; during faults: ${[...lostContext(set.lost, h.nemeses)].map(([k, v]) => `${k} ${v}`).join(', ')})` : ''}`);
    if (set.lost.length) {
      // How long after the fault began the lost writes were still acknowledged (the loss window).
      const offs = set.lost
        .map((l) => {
          const f = h.nemeses.filter((x) => x.start <= l.complete).sort((a, b) => b.start - a.start)[0];
          return f ? { f, off: l.complete - f.start } : null;
        })
        .filter((x): x is { f: (typeof h.nemeses)[number]; off: number } => x !== null);
      const byFault = new Map<(typeof h.nemeses)[number], number[]>();
      for (const x of offs) byFault.set(x.f, [...(byFault.get(x.f) ?? []), x.off]);
      for (const [f, v] of byFault)
        lines.push(`  ${v.length} lost, acknowledged ${(Math.min(...v) / 1000).toFixed(1)}..${(Math.max(...v) / 1000).toFixed(1)} s after ${f.name} began at ${fmt(f.start)} (${f.what})`);
    }
    for (const l of set.lost.slice(0, 10)) lines.push(`  lost ${l.value} on node ${l.node} term ${l.term ?? '?'} acked at ${fmt(l.complete)}`);
    if (set.failedButPresent.length) lines.push(`failed but present: ${set.failedButPresent.length} (e.g. ${set.failedButPresent.slice(0, 3).map((x) => `${x.value}: ${x.error ?? ''}`).join('; ')})`);
    if (set.unexpected.length) lines.push(`unexpected values in the final read: ${set.unexpected.length}`);
  } else lines.push('final read: FAILED (no leader answered)');
  lines.push(`split-brain: ${splitBrain.length}`);
  for (const s of splitBrain.slice(0, 10)) lines.push(`  ${s.kind}: ${s.message} (${s.earlier.value} acked at ${fmt(s.earlier.complete)}, ${s.later.value} sent at ${fmt(s.later.invoke)} acked at ${fmt(s.later.complete)})`);
  if (late.length) {
    lines.push(`late acknowledgements (reported, not failed: sent before a newer term acknowledged, acknowledged after): ${late.length}`);
    for (const l of late.slice(0, 5)) lines.push(`  ${l.op.value} on node ${l.op.node} term ${l.op.term} sent at ${fmt(l.op.invoke)}, acked at ${fmt(l.op.complete)}: ${(l.afterMs / 1000).toFixed(3)} s after node ${l.newer.node} acked ${l.newer.value} in term ${l.newer.term}${set?.lost.some((x) => x.value === l.op.value) ? ' (lost)' : ''}`);
  }
  lines.push(`consensus (logs): ${consensus.leaderTerms} terms with a leader; two leaders in a term: ${consensus.twoLeaders.length}; disagreeing leader names: ${consensus.disagreeingLeader.length}; term decreases: ${consensus.termDecrease.length}; double votes (${consensus.voteLogLines} persisted hard states from the controller logs, ${consensus.voteSamples} changes sampled from pg_biha/biha.state): ${consensus.doubleVote.length}`);
  for (const s of [...consensus.twoLeaders, ...consensus.disagreeingLeader, ...consensus.termDecrease, ...consensus.doubleVote].slice(0, 10)) lines.push(`  ${s}`);
  for (const f of foreignLines) lines.push(`  note: ${f}`);
  if (consensus.voteLogLines === 0) lines.push('  note: no "hard state persisted" line in any controller log (a build that does not log its votes): double votes only from samples');
  for (const u of consensus.unloggedVotes.slice(0, 10)) lines.push(`  note: biha.state held a vote its controller never logged (an incomplete log, or a peer's state file copied over by pg_rewind): ${u}`);
  lines.push(`convergence after the final heal: ${converged.ok ? `yes, in ${(converged.ms / 1000).toFixed(1)} s (bound ${convergeMs / 1000} s), leader ${converged.leader}${converged.nodeErrors.length ? `, NODE_ERROR on ${converged.nodeErrors.join(',')}` : ''}` : `NO within ${convergeMs / 1000} s: ${converged.why}`}`);
  for (const f of followerNotes) lines.push(`  ${f}`);
  const totalUnav = windows.reduce((a, w) => a + w.ms, 0);
  lines.push(`unavailability (>= 1 s without any acknowledged write): ${windows.length} windows, longest ${((Math.max(0, ...windows.map((w) => w.ms))) / 1000).toFixed(1)} s, total ${(totalUnav / 1000).toFixed(1)} s of ${((wlEnd - wlStart) / 1000).toFixed(0)} s`);
  for (const w of windows) lines.push(`  ${fmt(w.from)} .. ${fmt(w.to)}: ${(w.ms / 1000).toFixed(1)} s${w.faults.length ? ` (${w.faults.join(', ')})` : ''}`);
  lines.push(`faults (${h.nemeses.length}):`);
  for (const x of h.nemeses) lines.push(`  ${fmt(x.start)} .. ${fmt(x.end)} ${x.name}: ${x.what}`);
  lines.push('marks:');
  for (const m of h.marks) lines.push(`  ${fmt(m.at)} ${m.what}`);
  const text = lines.join('\n') + '\n';
  fs.writeFileSync(path.join(dir, 'summary.txt'), text);

  const svg = renderTimeline({
    title: `biha jepsen-lite ${path.basename(dir)}: ${n} nodes, ${o.mode}, seed ${o.seed}`,
    subtitle: command,
    verdict: `${valid ? 'VALID' : 'INVALID'}: ${set ? `${set.ok} ok, ${set.info} info, ${set.fail} fail, ${set.lost.length} lost` : 'no final read'}, ${splitBrain.length} split-brain, consensus ${consensusOk ? 'ok' : 'VIOLATED'}, ${converged.ok ? `converged in ${(converged.ms / 1000).toFixed(1)} s` : 'NOT converged'}${converged.nodeErrors.length ? ` (NODE_ERROR: ${converged.nodeErrors.join(',')})` : ''}`,
    ok: valid,
    nodes: c.ids(),
    start: wlStart - 2000,
    zero: wlStart,
    end: Math.max(wlEnd, tEnd),
    states: statesByNode,
    events,
    samples: h.samples,
    ops: h.ops,
    lost: set?.lost ?? [],
    splitBrain,
    nemeses: h.nemeses,
    windows,
  });
  fs.writeFileSync(path.join(dir, 'timeline.svg'), svg);
  if (o.png) await toPng(path.join(dir, 'timeline.svg'), path.join(dir, 'timeline.png'), log);
  fs.writeFileSync(
    path.join(dir, 'summary.json'),
    JSON.stringify({ command, options: { ...o, log: undefined }, valid, set: set && { ...set, lost: set.lost, failedButPresent: set.failedButPresent.length, unexpected: set.unexpected.length }, splitBrain, lateAcks: late.length, consensus, converged, windows, nemeses: h.nemeses, setupError }, null, 2),
  );
  log(text);
  return { dir, valid, text, set, splitBrain, consensus, converged, windows };
}

async function toPng(svg: string, png: string, log: (s: string) => void): Promise<void> {
  const rsvg = await run('rsvg-convert', ['-o', png, svg], { timeoutMs: 60_000 });
  if (rsvg.code === 0) return;
  const im = await run('convert', ['-density', '96', svg, png], { timeoutMs: 60_000 });
  if (im.code !== 0) log(`no PNG: neither rsvg-convert nor ImageMagick convert worked (${im.stderr.trim().split('\n')[0]})`);
}
