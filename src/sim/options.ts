// Options of one simulated run. Everything that is not given is derived from the seed, so a seed
// number alone replays a run.
import { mixSeed } from './prng.js';

export type SyncMode = 'sync' | 'async';
export const SYNC_MODES: readonly SyncMode[] = ['sync', 'async'];

/**
 * `random`: faults picked at random for the whole fault phase. `wal-vs-config`: the fault phase
 * opens with a scripted failover in which one group of survivors is ahead in WAL and the other
 * ahead in the config log, so the two vote checks must not deadlock a live majority.
 * `param-change`: the fault phase opens with a set_params change (seeds 0, 1, 4, 5, ...: a longer
 * election timeout; seeds 2, 3, 6, 7, ...: nquorum raised to K and minnodes lowered to 1) and the leader is isolated
 * the instant it applies it. Not in the default mix; run it with --scenario.
 */
export type Scenario = 'random' | 'wal-vs-config' | 'param-change';
export const SCENARIOS: readonly Scenario[] = ['random', 'wal-vs-config', 'param-change'];

export interface SimOptions {
  readonly seed: number;
  /** Cluster size K (3-7). */
  readonly nodes: number;
  readonly mode: SyncMode;
  readonly scenario: Scenario;
  /** Length of the fault phase in simulated ms. */
  readonly faultMs: number;
  /** Controller tick period on each node's own clock (ms). */
  readonly tickMs: number;
  /** Time PostgreSQL needs to stop accepting writes once fencing starts (pg_ctl stop -m immediate). */
  readonly fenceDelayMs: number;
  /** Time from the decision to promote until the new primary accepts writes. */
  readonly promoteDelayMs: number;
  /** Probability that a fence (pg_ctl stop of a primary) fails and PostgreSQL stays a primary. */
  readonly fenceFailProb: number;
  /** Share of nodes with biha.autorewind = true (the others go to NODE_ERROR on divergence). */
  readonly autorewindShare: number;
  /** Probability that pg_rewind fails half-way (after it connected), leaving the data directory held. */
  readonly rewindFailProb: number;
  /** How long the operator leaves a node in NODE_ERROR before running bihactl rewind on it. */
  readonly repairAfterMs: number;
  readonly heartbeatSendPeriod: number;
  readonly heartbeatMaxLost: number;
  /** biha.no_wal_on_follower (ms): short, so that replication-only cuts of the leader outlast it. */
  readonly noWalOnFollower: number;
  readonly nquorum: number;
  readonly minnodes: number;
  /** After healing, a writable leader must exist within electBoundT × T. */
  readonly electBoundT: number;
  /** After healing, the cluster must have converged within convergeBoundT × T. */
  readonly convergeBoundT: number;
}

export const MIN_NODES = 3;
export const MAX_NODES = 7;

export function majority(n: number): number {
  return Math.floor(n / 2) + 1;
}

/** Mode used when none is given: even seeds run synchronous, odd seeds asynchronous. */
export function defaultMode(seed: number): SyncMode {
  return seed % 2 === 0 ? 'sync' : 'async';
}

/** Scenario used when none is given: one seed in four runs the scripted WAL-vs-config failover. */
export function defaultScenario(seed: number): Scenario {
  return mixSeed(seed >>> 0, 0xc0f1) % 4 === 0 ? 'wal-vs-config' : 'random';
}

export function simOptions(o: { readonly seed: number; readonly nodes: number } & Partial<SimOptions>): SimOptions {
  if (!Number.isInteger(o.nodes) || o.nodes < MIN_NODES || o.nodes > MAX_NODES) {
    throw new RangeError(`nodes must be an integer from ${MIN_NODES} to ${MAX_NODES} (got ${o.nodes})`);
  }
  if (!Number.isInteger(o.seed) || o.seed < 0) throw new RangeError(`seed must be a non-negative integer (got ${o.seed})`);
  return {
    seed: o.seed,
    nodes: o.nodes,
    mode: o.mode ?? defaultMode(o.seed),
    scenario: o.scenario ?? defaultScenario(o.seed),
    faultMs: o.faultMs ?? 20_000,
    tickMs: o.tickMs ?? 10,
    fenceDelayMs: o.fenceDelayMs ?? 13,
    promoteDelayMs: o.promoteDelayMs ?? 20,
    fenceFailProb: o.fenceFailProb ?? 0.03,
    autorewindShare: o.autorewindShare ?? 0.7,
    rewindFailProb: o.rewindFailProb ?? 0.05,
    repairAfterMs: o.repairAfterMs ?? 1000,
    heartbeatSendPeriod: o.heartbeatSendPeriod ?? 200,
    heartbeatMaxLost: o.heartbeatMaxLost ?? 5,
    noWalOnFollower: o.noWalOnFollower ?? 2000,
    nquorum: o.nquorum ?? majority(o.nodes),
    minnodes: o.minnodes ?? majority(o.nodes),
    electBoundT: o.electBoundT ?? 10,
    convergeBoundT: o.convergeBoundT ?? 20,
  };
}

/** Synchronous standbys k for a cluster of n with quorum q: the least k with k + 1 + q > n. */
export function syncStandbysFor(n: number, nquorum: number): number {
  return Math.max(1, n - nquorum);
}
