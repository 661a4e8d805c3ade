// The cluster settings under the names of the reference's SQL functions, read (GET /config) and
// changed as a subset (PATCH /config). A change becomes the same commands the SQL functions run
// (commands.ts), in a fixed order; every value is checked here before the first is applied, so a
// bad value changes nothing and its error names the SQL parameter.
import { BihaError } from './errors.js';
import { BRIDGE_ARGS } from './bridge/sqlbridge.js';
import type { StatusFile } from './bridge/sqlbridge.js';

export interface ClusterSettings {
  heartbeat_send_period: number;
  heartbeat_max_lost: number;
  no_wal_on_follower: number;
  nquorum: number;
  minnodes: number;
  sync_standbys: number;
  service_mode: boolean;
}

/** In the order a patch applies them. */
export const CONFIG_KEYS = [
  'heartbeat_send_period',
  'heartbeat_max_lost',
  'no_wal_on_follower',
  'nquorum',
  'minnodes',
  'sync_standbys',
  'service_mode',
] as const satisfies ReadonlyArray<keyof ClusterSettings>;

type BridgeFn = keyof typeof BRIDGE_ARGS;

export function configOf(c: StatusFile['config']): ClusterSettings {
  return {
    heartbeat_send_period: c.heartbeat_send_period,
    heartbeat_max_lost: c.heartbeat_max_lost,
    no_wal_on_follower: c.no_wal_on_follower,
    nquorum: c.nquorum,
    minnodes: c.minnodes,
    sync_standbys: c.sync_standbys,
    service_mode: c.service_mode,
  };
}

export interface ConfigStep {
  /** A command of commands.ts. */
  readonly fn: string;
  readonly args: Record<string, unknown>;
}

/** A JSON number for `key` (the ranges are the SQL functions', checked with their arguments). */
function intValue(patch: Record<string, unknown>, key: string): unknown {
  const v = patch[key];
  if (typeof v !== 'number') throw new BihaError('bad_args', `${key} must be a JSON number, not ${JSON.stringify(v)}`);
  return v;
}

/** The step for SQL function `fn`, its arguments checked as the SQL bridge checks them (same messages). */
function step(fn: BridgeFn, args: Record<string, unknown>): ConfigStep {
  const r = BRIDGE_ARGS[fn].safeParse(args);
  if (!r.success) throw new BihaError('bad_args', r.error.issues[0]?.message ?? `bad arguments for ${fn}`);
  return { fn, args };
}

/**
 * The commands that apply `patch` (a subset of the settings, plus allow_sync_loss) on top of
 * `current`; throws a one-line BihaError('bad_args') naming the parameter for an unknown name or a
 * bad value. An empty patch is refused.
 */
export function parseConfigPatch(patch: Record<string, unknown>, current: ClusterSettings): ConfigStep[] {
  const known = new Set<string>([...CONFIG_KEYS, 'allow_sync_loss']);
  const unknown = Object.keys(patch).filter((k) => !known.has(k));
  if (unknown.length > 0) throw new BihaError('bad_args', `unknown parameter ${unknown.map((k) => JSON.stringify(k)).join(', ')}: the settings are ${CONFIG_KEYS.join(', ')}`);
  const allow = patch['allow_sync_loss'];
  if (allow !== undefined && typeof allow !== 'boolean') throw new BihaError('bad_args', 'allow_sync_loss must be true or false');
  const allowSyncLoss = allow === true;
  const has = (k: string): boolean => patch[k] !== undefined;
  if (!CONFIG_KEYS.some(has)) throw new BihaError('bad_args', `nothing to change: give one or more of ${CONFIG_KEYS.join(', ')}`);
  const steps: ConfigStep[] = [];
  for (const key of ['heartbeat_send_period', 'heartbeat_max_lost', 'no_wal_on_follower'] as const)
    if (has(key)) steps.push(step(`set_${key}`, { value: intValue(patch, key) }));
  if (has('nquorum') || has('minnodes')) {
    const nquorum = has('nquorum') ? intValue(patch, 'nquorum') : current.nquorum;
    const minnodes = has('minnodes') ? intValue(patch, 'minnodes') : current.minnodes;
    steps.push(step('set_nquorum_and_minnodes', { nquorum, minnodes, allow_sync_loss: allowSyncLoss }));
  }
  if (has('sync_standbys')) steps.push(step('set_sync_standbys', { value: intValue(patch, 'sync_standbys'), allow_sync_loss: allowSyncLoss }));
  if (has('service_mode')) steps.push(step('service_mode', { value: patch['service_mode'] }));
  return steps;
}
