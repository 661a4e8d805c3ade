// Nemeses: each one starts a fault and returns how to heal it. Targets are picked when the fault
// starts (usually the current LEADER_RW). Every heal is idempotent and bounded in time.
import type { Prng } from '../../src/sim/prng.js';
import type { NsCluster } from './nodes.js';
import { sleep } from './proc.js';

export const NEMESES = [
  'kill-controller', // kill -9 of the leader's controller (restarted at the end of the interval)
  'kill-follower-controller', // kill -9 of a follower's controller; its PostgreSQL keeps running (restarted at the end)
  'kill-watchdog', // kill -9 of a watchdog (leader or follower); on the leader sometimes followed by SIGSTOP of its controller
  'kill-postgres', // kill -9 of the leader's postmaster (its controller restarts it)
  'crash', // kill -9 of everything in the leader's namespace: controller, watchdog, PostgreSQL
  'pause', // SIGSTOP of the leader's controller for longer than the lease, then SIGCONT
  'freeze', // SIGSTOP of every process in a node's namespace (mostly the leader's) for 1-8 s, then SIGCONT
  'promotion-fault', // force a failover, then crash or isolate the new leader 0-300 ms after it says LEADER_RW
  'rewind-fault', // crash the leader, restart it; when it runs pg_rewind, crash or isolate it or its source (--autorewind)
  'partition-leader', // the leader cannot reach any other node (the client still reaches it)
  'partition-half', // a random majority / minority split
  'partition-bridge', // two halves that only a bridge node connects
  'partition-ring', // majorities ring: every node sees a majority, no two the same (5 nodes)
  'cut-control', // the leader's control channel (biha ports) cut, replication still flows
  'cut-control-out', // one way: the leader's control packets (biha ports) to the others dropped; theirs reach it
  'cut-control-in', // one way: the others' control packets to the leader dropped; the leader's reach them
  'cut-replication', // PostgreSQL ports between the leader and the others cut, control still flows
  'flap', // the leader's links go down and up every 0.3-2 s
  'slow', // a slow link (tc netem delay, or tbf rate limit when the kernel lacks netem) on every node
  'loss', // random packet loss on every node
  'restart', // bihactl stop + start of a random node
  'switchover', // bihactl set-leader to a random follower
] as const;
export type NemesisName = (typeof NEMESES)[number];

/** The default set of the quick run. */
export const MAIN_NEMESES: readonly NemesisName[] = ['kill-controller', 'kill-postgres', 'crash', 'pause', 'partition-leader', 'partition-half', 'cut-control', 'cut-replication', 'switchover'];

export function parseNemeses(list: string): NemesisName[] {
  if (list === 'all') return [...NEMESES];
  if (list === 'main') return [...MAIN_NEMESES];
  const out: NemesisName[] = [];
  for (const raw of list.split(',').map((s) => s.trim()).filter(Boolean)) {
    if (!(NEMESES as readonly string[]).includes(raw)) throw new Error(`unknown nemesis "${raw}"; known: ${NEMESES.join(', ')}, all, main`);
    out.push(raw as NemesisName);
  }
  if (out.length === 0) throw new Error('no nemesis given');
  return out;
}

export interface ActiveFault {
  readonly name: NemesisName;
  readonly what: string;
  readonly nodes: number[];
  /** Undo the fault (idempotent). */
  heal(): Promise<void>;
}

export interface NemesisContext {
  readonly c: NsCluster;
  readonly rng: Prng;
  readonly log: (s: string) => void;
  /** The current LEADER_RW, or a random node when there is none. */
  leaderOrAny(): Promise<{ id: number; isLeader: boolean }>;
  /** Length of the fault interval (ms), so that background faults (flap) stop by themselves. */
  readonly intervalMs: number;
  /** biha.autorewind is on (rewind-fault needs it). */
  readonly autorewind?: boolean;
}

function others(c: NsCluster, id: number): number[] {
  return c.ids().filter((i) => i !== id);
}

function pairsBetween(a: readonly number[], b: readonly number[]): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const x of a) for (const y of b) if (x !== y) out.push([x, y]);
  return out;
}

async function restartIfDown(ctx: NemesisContext, id: number): Promise<void> {
  const r = await ctx.c.ensureStarted(id);
  if (r && r.code !== 0) ctx.log(`bihactl start node ${id} failed (${r.code}): ${r.stderr.trim()}`);
}

/**
 * Polls every node's own status (the controller's local socket) every 20 ms until a node other
 * than `exclude` says LEADER_RW in a term above `aboveTerm` — and, with `primary`, also that its
 * PostgreSQL is a primary (the promotion is done); null after `timeoutMs`.
 */
async function waitNewLeader(c: NsCluster, exclude: number, aboveTerm: number, timeoutMs: number, primary = false): Promise<{ id: number; term: number; afterMs: number } | null> {
  const t0 = Date.now();
  for (let k = 0; k < 10_000 && Date.now() - t0 < timeoutMs; k++) {
    const st = await c.ownStates(300);
    const l = [...st].find(([i, s]) => i !== exclude && s.state === 'LEADER_RW' && s.term > aboveTerm && (!primary || s.pgRole === 'PRIMARY'));
    if (l) return { id: l[0], term: l[1].term, afterMs: Date.now() - t0 };
    await sleep(20);
  }
  return null;
}

/** Crash (kill -9 of every process in its namespace) or isolation (from every other node) of node `id`. */
async function crashOrIsolate(ctx: NemesisContext, id: number, how: 'crash' | 'isolate'): Promise<string> {
  if (how === 'crash') return `crash of node ${id} (${await ctx.c.crash(id)} processes killed)`;
  await ctx.c.hosts.cut(pairsBetween([id], others(ctx.c, id)));
  return `isolation of node ${id}`;
}

/** Starts one fault. */
export async function startFault(name: NemesisName, ctx: NemesisContext): Promise<ActiveFault> {
  const { c, rng } = ctx;
  const hosts = c.hosts;
  const target = await ctx.leaderOrAny();
  const t = target.id;
  const tl = `${target.isLeader ? 'leader' : 'node'} ${t}`;
  switch (name) {
    case 'kill-controller': {
      const sent = c.signal(t, 'controller', 'SIGKILL');
      return { name, what: `kill -9 controller of ${tl}${sent ? '' : ' (not running)'}`, nodes: [t], heal: () => restartIfDown(ctx, t) };
    }
    case 'kill-follower-controller': {
      const st = await c.ownStates();
      const followers = others(c, t).filter((i) => st.get(i)?.state === 'FOLLOWER');
      const f = rng.pick(followers.length ? followers : others(c, t));
      const sent = c.signal(f, 'controller', 'SIGKILL');
      return {
        name, what: `kill -9 controller of ${st.get(f)?.state === 'FOLLOWER' ? 'follower' : 'node'} ${f} (${tl} untouched; its PostgreSQL keeps running)${sent ? '' : ' (not running)'}`, nodes: [f],
        heal: () => restartIfDown(ctx, f),
      };
    }
    case 'kill-watchdog': {
      // The leader's watchdog (guards its lease when the controller cannot) or a follower's.
      const onLeader = target.isLeader && rng.chance(0.6);
      const id = onLeader ? t : rng.pick(others(c, t));
      const pid = c.watchdogPid(id);
      const sent = c.signal(id, 'watchdog', 'SIGKILL');
      // Half of the leader cases then pause the controller: nothing but the watchdog would fence a
      // PostgreSQL whose controller is stopped, so this shows whether the controller replaced it.
      let paused = false;
      let pauseNote = '';
      if (onLeader && rng.chance(0.5)) {
        const delay = Math.round(rng.range(200, 1500));
        await sleep(delay);
        paused = c.signal(id, 'controller', 'SIGSTOP');
        pauseNote = `, then SIGSTOP of its controller ${delay} ms later${paused ? '' : ' (not running)'}`;
      }
      return {
        name, what: `kill -9 watchdog${pid ? ` (PID ${pid})` : ''} of ${onLeader ? 'leader' : 'node'} ${id}${sent ? '' : ' (no watchdog running)'}${pauseNote}`, nodes: [id],
        heal: async () => {
          if (paused) c.signal(id, 'controller', 'SIGCONT');
          await restartIfDown(ctx, id);
        },
      };
    }
    case 'freeze': {
      const id = !target.isLeader || rng.chance(0.75) ? t : rng.pick(others(c, t));
      const ms = Math.round(rng.range(1000, Math.max(1500, Math.min(8000, ctx.intervalMs))));
      const at = Date.now();
      const pids = await c.freeze(id);
      let thawed: Promise<number> | null = null;
      const thaw = (): Promise<number> => (thawed ??= c.thaw(id));
      const timer = setTimeout(() => void thaw(), Math.max(0, ms - (Date.now() - at)));
      return {
        name, what: `host freeze of ${id === t ? tl : `node ${id}`}: SIGSTOP of the ${pids.length} processes in its namespace, SIGCONT after ${ms} ms`, nodes: [id],
        heal: async () => {
          clearTimeout(timer);
          await thaw();
          await restartIfDown(ctx, id);
        },
      };
    }
    case 'promotion-fault': {
      // 1. a failover: switchover to a follower, crash of the leader or its isolation;
      // 2. the new leader is found by polling every controller's status every 20 ms: its own state
      //    LEADER_RW in a higher term (raft leader with a lease; PostgreSQL may still be promoting)
      //    or, half of the time, that and its PostgreSQL a primary (the promotion done);
      // 3. 0-300 ms later it is crashed (kill -9 of everything in its namespace) or isolated.
      if (!target.isLeader) throw new Error('no LEADER_RW to fail over from');
      const st0 = await c.ownStates();
      const term0 = st0.get(t)?.term ?? 0;
      const followers = others(c, t).filter((i) => st0.get(i)?.state === 'FOLLOWER');
      const picked = rng.pick(['switchover', 'crash', 'isolate'] as const);
      // A switchover needs a follower that can take over; without one, crash the leader instead.
      const trigger = picked === 'switchover' && followers.length === 0 ? 'crash' : picked;
      const how = rng.pick(['crash', 'isolate'] as const);
      const delay = Math.round(rng.range(0, 300));
      const moment = rng.pick(['LEADER_RW', 'LEADER_RW and PRIMARY'] as const);
      let switchover: Promise<unknown> | null = null;
      let did: string;
      if (trigger === 'switchover') {
        const to = rng.pick(followers);
        switchover = c.bihactl(t, ['set-leader', `--id=${to}`, `--pgdata=${c.pgdata(t)}`], 60_000);
        did = `bihactl set-leader --id=${to} on leader ${t}`;
      } else did = await crashOrIsolate(ctx, t, trigger);
      const waitMs = trigger === 'switchover' ? 12_000 : 25_000;
      const nl = await waitNewLeader(c, t, term0, waitMs, moment !== 'LEADER_RW');
      const touched = [t];
      let then = `no new ${moment} within ${waitMs / 1000} s (a switchover that did not complete, or no quorum): nothing more done`;
      if (nl) {
        await sleep(Math.max(0, delay - 20));
        const hit = await crashOrIsolate(ctx, nl.id, how);
        touched.push(nl.id);
        then = `node ${nl.id} said ${moment} (term ${nl.term}) ${nl.afterMs} ms later; ${delay} ms after that: ${hit}`;
      }
      return {
        name, what: `${did}; ${then}`, nodes: touched,
        heal: async () => {
          await c.hosts.healAll();
          if (switchover) await switchover;
          for (const i of touched) await restartIfDown(ctx, i);
        },
      };
    }
    case 'rewind-fault': {
      // 1. cut the leader's replication for 1-2 s under the write load (its WAL goes on locally:
      //    acknowledged in async mode, waiting for a standby in sync mode), then crash it, so that
      //    its WAL goes past the new leader's fork;
      // 2. wait for the new leader and ~1 s of writes on its timeline, start the old leader again
      //    (its controller finds the divergence and, biha.autorewind = true, runs pg_rewind);
      // 3. watch the old leader's namespace every 30 ms for a pg_rewind process (the dry run first,
      //    then the real one; the source is the --source-server host in its command line);
      // 4. 0-200 ms after the real rewind is seen (else the dry run), crash or isolate the
      //    rewinding node or the rewind's source.
      if (!ctx.autorewind) throw new Error('rewind-fault needs biha.autorewind = true (--autorewind)');
      if (!target.isLeader) throw new Error('no LEADER_RW to crash');
      const term0 = (await c.ownStates()).get(t)?.term ?? 0;
      const cutMs = Math.round(rng.range(1000, 2000));
      await hosts.cut(pairsBetween([t], others(c, t)), { kind: 'pg', numbers: c.ids().map((i) => c.port(i)) });
      await sleep(cutMs);
      const killed = await c.crash(t);
      await hosts.healAll();
      const nl = await waitNewLeader(c, t, term0, 25_000);
      await sleep(rng.range(700, 1500));
      const starting = c.start(t);
      let seen: { pid: number; dryRun: boolean; source: number } | null = null;
      let dryAt = 0;
      const t0 = Date.now();
      for (let k = 0; k < 2000 && Date.now() - t0 < 30_000; k++) {
        const r = await c.rewinds(t);
        const realOne = r.find((y) => !y.dryRun);
        if (realOne) {
          seen = realOne;
          break;
        }
        if (r[0] && !seen) {
          seen = r[0];
          dryAt = Date.now();
        }
        // A dry run was seen but no real run within 3 s (it failed, or ran between two polls): act now.
        if (seen && Date.now() - dryAt > 3000) break;
        await sleep(30);
      }
      const victimIsSource = rng.chance(0.5);
      const how = rng.pick(['crash', 'isolate'] as const);
      const touched = [t];
      let then = `no pg_rewind seen on node ${t} within 30 s (no divergence, or it ended between two polls)`;
      if (seen) {
        const delay = Math.round(rng.range(0, 200));
        await sleep(delay);
        const victim = victimIsSource && seen.source ? seen.source : t;
        const hit = await crashOrIsolate(ctx, victim, how);
        if (victim !== t) touched.push(victim);
        then = `pg_rewind${seen.dryRun ? ' --dry-run' : ''} (PID ${seen.pid}, source node ${seen.source || '?'}) seen on node ${t} ${Date.now() - t0 - delay} ms after its start; ${delay} ms later: ${hit} (${victim === t ? 'the rewinding node' : 'the source'})`;
      }
      return {
        name, what: `replication of leader ${t} cut for ${cutMs} ms, then its crash (${killed} processes), new leader ${nl ? `${nl.id} (term ${nl.term})` : 'none within 25 s'}, node ${t} started again; ${then}`, nodes: touched,
        heal: async () => {
          await c.hosts.healAll();
          await starting;
          for (const i of touched) await restartIfDown(ctx, i);
        },
      };
    }
    case 'kill-postgres': {
      const sent = c.signal(t, 'postmaster', 'SIGKILL');
      return { name, what: `kill -9 postmaster of ${tl}${sent ? '' : ' (not running)'}`, nodes: [t], heal: () => restartIfDown(ctx, t) };
    }
    case 'crash': {
      const n = await c.crash(t);
      return { name, what: `host crash of ${tl} (${n} processes killed)`, nodes: [t], heal: () => restartIfDown(ctx, t) };
    }
    case 'pause': {
      const sent = c.signal(t, 'controller', 'SIGSTOP');
      let healed = false;
      return {
        name, what: `SIGSTOP controller of ${tl}${sent ? '' : ' (not running)'}`, nodes: [t],
        heal: async () => {
          if (healed) return;
          healed = true;
          c.signal(t, 'controller', 'SIGCONT');
          await restartIfDown(ctx, t);
        },
      };
    }
    case 'partition-leader': {
      await hosts.cut(pairsBetween([t], others(c, t)));
      return { name, what: `isolate ${tl} from the other nodes`, nodes: [t], heal: () => hosts.healAll() };
    }
    case 'partition-half': {
      const shuffled = rng.shuffled(c.ids());
      const minority = shuffled.slice(0, Math.floor(c.ids().length / 2));
      const majority = shuffled.slice(minority.length);
      await hosts.cut(pairsBetween(minority, majority));
      return { name, what: `majority {${majority.join(',')}} / minority {${minority.join(',')}} (leader ${t})`, nodes: minority, heal: () => hosts.healAll() };
    }
    case 'partition-bridge': {
      const ids = rng.shuffled(c.ids());
      const bridge = ids[0]!;
      const rest = ids.slice(1);
      const a = rest.slice(0, Math.ceil(rest.length / 2));
      const b = rest.slice(a.length);
      await hosts.cut(pairsBetween(a, b));
      return { name, what: `bridge: {${a.join(',')}} - ${bridge} - {${b.join(',')}}`, nodes: [bridge], heal: () => hosts.healAll() };
    }
    case 'partition-ring': {
      const ids = rng.shuffled(c.ids());
      const n = ids.length;
      if (n < 5) {
        // With 3 nodes every node already sees a majority; a ring is a bridge.
        await hosts.cut([[ids[0]!, ids[2]!]]);
        return { name, what: `ring on 3 nodes = bridge: ${ids[0]} - ${ids[1]} - ${ids[2]}`, nodes: [ids[1]!], heal: () => hosts.healAll() };
      }
      const cuts: Array<[number, number]> = [];
      for (let k = 0; k < n; k++) for (let d = 2; d <= Math.floor(n / 2); d++) {
        const x = ids[k]!;
        const y = ids[(k + d) % n]!;
        if (!cuts.some(([p, q]) => (p === x && q === y) || (p === y && q === x))) cuts.push([x, y]);
      }
      await hosts.cut(cuts);
      return { name, what: `majorities ring ${ids.join('-')}-${ids[0]} (each node sees its ring neighbours)`, nodes: ids, heal: () => hosts.healAll() };
    }
    case 'cut-control': {
      await hosts.cut(pairsBetween([t], others(c, t)), { kind: 'biha', numbers: c.ids().map((i) => c.bihaPort(i)) });
      return { name, what: `control channel of ${tl} cut (biha ports), replication flows`, nodes: [t], heal: () => hosts.healAll() };
    }
    case 'cut-control-out': {
      await hosts.cutOneWay(t, others(c, t), c.ids().map((i) => c.bihaPort(i)));
      return { name, what: `one way: control packets (biha ports) from ${tl} to the others dropped; theirs reach it; replication flows`, nodes: [t], heal: () => hosts.healAll() };
    }
    case 'cut-control-in': {
      for (const o of others(c, t)) await hosts.cutOneWay(o, [t], c.ids().map((i) => c.bihaPort(i)));
      return { name, what: `one way: control packets (biha ports) from the others to ${tl} dropped; its reach them; replication flows`, nodes: [t], heal: () => hosts.healAll() };
    }
    case 'cut-replication': {
      await hosts.cut(pairsBetween([t], others(c, t)), { kind: 'pg', numbers: c.ids().map((i) => c.port(i)) });
      return { name, what: `replication of ${tl} cut (PostgreSQL ports between nodes), control flows`, nodes: [t], heal: () => hosts.healAll() };
    }
    case 'flap': {
      let stop = false;
      const until = Date.now() + ctx.intervalMs;
      const bg = (async () => {
        for (let k = 0; k < 200 && !stop && Date.now() < until; k++) {
          await hosts.cut(pairsBetween([t], others(c, t)));
          await sleep(rng.range(300, 2000));
          await hosts.healAll();
          await sleep(rng.range(300, 2000));
        }
      })();
      return {
        name, what: `links of ${tl} flap (down/up every 0.3-2 s)`, nodes: [t],
        heal: async () => {
          stop = true;
          await bg;
          await hosts.healAll();
        },
      };
    }
    case 'slow': {
      const how: string[] = [];
      for (const i of c.ids()) how.push(await hosts.slow(i, 100, 256));
      return { name, what: `slow links on every node: ${how[0]}`, nodes: c.ids(), heal: () => hosts.healAll() };
    }
    case 'loss': {
      const pct = Math.round(rng.range(5, 25));
      for (const i of c.ids()) await hosts.loss(i, pct);
      return { name, what: `${pct}% packet loss on every node`, nodes: c.ids(), heal: () => hosts.healAll() };
    }
    case 'restart': {
      const id = rng.pick(c.ids());
      const r = await c.stop(id);
      return {
        name, what: `bihactl stop node ${id}${id === t && target.isLeader ? ' (the leader)' : ''}${r.code === 0 ? '' : ` (stop failed: ${r.stderr.trim()})`}`, nodes: [id],
        heal: () => restartIfDown(ctx, id),
      };
    }
    case 'switchover': {
      const st = await c.ownStates();
      const healthy = others(c, t).filter((i) => st.get(i)?.state === 'FOLLOWER');
      const to = rng.pick(healthy.length ? healthy : others(c, t));
      const r = await c.bihactl(t, ['set-leader', `--id=${to}`, `--pgdata=${c.pgdata(t)}`], 60_000);
      return { name, what: `bihactl set-leader --id=${to} (from ${tl}): ${r.code === 0 ? 'done' : `failed: ${r.stderr.trim()}`}`, nodes: [t, to], heal: async () => undefined };
    }
  }
}
