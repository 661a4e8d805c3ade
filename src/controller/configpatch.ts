// The cluster settings under the names of the reference's SQL functions, read (GET /config) and
// changed as a subset (PATCH /config). A change becomes the same commands the SQL functions run
// (commands.ts), in a fixed order; every value is checked here before the first is applied, so a
// bad value changes nothing and its error names the SQL parameter.
import { PARAM_RANGES } from '../raft/index.js';
import { BihaError } from './errors.js';
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

type IntKey = Exclude<keyof ClusterSettings, 'service_mode'>;

const RANGE: Record<IntKey, readonly [number, number | null]> = {
  heartbeat_send_period: PARAM_RANGES.heartbeatSendPeriod,
  heartbeat_max_lost: PARAM_RANGES.heartbeatMaxLost,
  no_wal_on_follower: PARAM_RANGES.noWalOnFollower,
  nquorum: PARAM_RANGES.nquorum,
  minnodes: PARAM_RANGES.minnodes,
  sync_standbys: PARAM_RANGES.syncStandbys,
};

const INT4_MAX = 2_147_483_647;

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

function intValue(key: IntKey, v: unknown): number {
  const [min, max] = RANGE[key];
  const top = max ?? INT4_MAX;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > top)
    throw new BihaError('bad_args', `${key} must be an integer between ${min} and ${top}, not ${JSON.stringify(v) ?? 'nothing'}`);
  return v;
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
  const setInt = (key: 'heartbeat_send_period' | 'heartbeat_max_lost' | 'no_wal_on_follower'): void => {
    if (has(key)) steps.push({ fn: `set_${key}`, args: { value: intValue(key, patch[key]) } });
  };
  setInt('heartbeat_send_period');
  setInt('heartbeat_max_lost');
  setInt('no_wal_on_follower');
  if (has('nquorum') || has('minnodes')) {
    const nquorum = has('nquorum') ? intValue('nquorum', patch['nquorum']) : current.nquorum;
    const minnodes = has('minnodes') ? intValue('minnodes', patch['minnodes']) : current.minnodes;
    steps.push({ fn: 'set_nquorum_and_minnodes', args: { nquorum, minnodes, allow_sync_loss: allowSyncLoss } });
  }
  if (has('sync_standbys')) steps.push({ fn: 'set_sync_standbys', args: { value: intValue('sync_standbys', patch['sync_standbys']), allow_sync_loss: allowSyncLoss } });
  if (has('service_mode')) {
    const v = patch['service_mode'];
    if (typeof v !== 'boolean') throw new BihaError('bad_args', `service_mode must be true or false, not ${JSON.stringify(v)}`);
    steps.push({ fn: 'service_mode', args: { value: v } });
  }
  return steps;
}
