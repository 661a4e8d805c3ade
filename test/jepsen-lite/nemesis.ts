// Nemeses: each one starts a fault and returns how to heal it. Targets are picked when the fault
// starts (usually the current LEADER_RW). Every heal is idempotent and bounded in time.
import type { Prng } from '../../src/sim/prng.js';
import type { NsCluster } from './nodes.js';
import { sleep } from './proc.js';

export const NEMESES = [
  'kill-controller', // kill -9 of the leader's controller (restarted at the end of the interval)
  'kill-postgres', // kill -9 of the leader's postmaster (its controller restarts it)
  'crash', // kill -9 of everything in the leader's namespace: controller, watchdog, PostgreSQL
  'pause', // SIGSTOP of the leader's controller for longer than the lease, then SIGCONT
  'partition-leader', // the leader cannot reach any other node (the client still reaches it)
  'partition-half', // a random majority / minority split
  'partition-bridge', // two halves that only a bridge node connects
  'partition-ring', // majorities ring: every node sees a majority, no two the same (5 nodes)
  'cut-control', // the leader's control channel (biha ports) cut, replication still flows
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
