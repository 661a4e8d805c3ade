// bihactl config / config set: the cluster settings under the reference's SQL parameter names, read
// and changed through the same commands as the SQL functions (biha.set_heartbeat_max_lost, ...).
import { BihaError } from '../controller/errors.js';
import type { StatusFile } from '../controller/bridge/sqlbridge.js';
import { nodeRequest } from './lifecycle.js';

/** The settings, by SQL parameter name, and the kind of value each takes. */
export const CONFIG_KEYS = {
  heartbeat_send_period: 'integer',
  heartbeat_max_lost: 'integer',
  no_wal_on_follower: 'integer',
  nquorum: 'integer',
  minnodes: 'integer',
  sync_standbys: 'integer',
  service_mode: 'boolean',
} as const;

export type ConfigKey = keyof typeof CONFIG_KEYS;
export type ClusterConfig = { [K in ConfigKey]: (typeof CONFIG_KEYS)[K] extends 'boolean' ? boolean : number };
export type ConfigPatch = Partial<ClusterConfig>;

function isConfigKey(k: string): k is ConfigKey {
  return Object.hasOwn(CONFIG_KEYS, k);
}

const TRUE = new Set(['true', 'on', 'yes', '1']);
const FALSE = new Set(['false', 'off', 'no', '0']);

function parseValue(key: ConfigKey, raw: string): number | boolean {
  const v = raw.trim().toLowerCase();
  if (CONFIG_KEYS[key] === 'boolean') {
    if (TRUE.has(v)) return true;
    if (FALSE.has(v)) return false;
    throw new BihaError('bad_args', `${key} must be true or false, not "${raw}"`);
  }
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(Number(v))) throw new BihaError('bad_args', `${key} must be a non-negative integer, not "${raw}"`);
  return Number(v);
}

/** KEY=VALUE arguments of `bihactl config set`, checked and typed. */
export function parseAssignments(args: readonly string[]): ConfigPatch {
  if (args.length === 0)
    throw new BihaError('bad_args', 'config set needs at least one KEY=VALUE', { hint: `keys: ${Object.keys(CONFIG_KEYS).join(', ')}` });
  const patch: Record<string, number | boolean> = {};
  for (const a of args) {
    const eq = a.indexOf('=');
    if (eq <= 0) throw new BihaError('bad_args', `"${a}" is not KEY=VALUE`, { hint: 'for example: bihactl config set heartbeat_max_lost=20' });
    const key = a.slice(0, eq).trim();
    if (!isConfigKey(key)) throw new BihaError('bad_args', `unknown setting "${key}"`, { hint: `keys: ${Object.keys(CONFIG_KEYS).join(', ')}` });
    if (key in patch) throw new BihaError('bad_args', `${key} is given twice`);
    patch[key] = parseValue(key, a.slice(eq + 1));
  }
  return patch as ConfigPatch;
}

/** The settings of a node's status. */
export function configOf(s: StatusFile): ClusterConfig {
  const c = s.config;
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

/** `key = value` lines, in the order of CONFIG_KEYS. */
export function renderConfig(c: Record<string, unknown>): string {
  const keys = Object.keys(c);
  const width = Math.max(...keys.map((k) => k.length));
  return keys.map((k) => `${k.padEnd(width)} = ${String(c[k])}`).join('\n');
}

export async function localConfig(pgdata: unknown): Promise<ClusterConfig> {
  return configOf((await nodeRequest(pgdata, 'status', {}, 5000)) as StatusFile);
}

/**
 * Applies a patch through the commands of the SQL functions, in the order of CONFIG_KEYS; nquorum
 * and minnodes change together (the other one kept). Returns the settings afterwards.
 */
export async function applyLocalConfig(pgdata: unknown, patch: ConfigPatch): Promise<ClusterConfig> {
  const now = await localConfig(pgdata);
  const simple = [
    ['heartbeat_send_period', 'set_heartbeat_send_period'],
    ['heartbeat_max_lost', 'set_heartbeat_max_lost'],
    ['no_wal_on_follower', 'set_no_wal_on_follower'],
    ['sync_standbys', 'set_sync_standbys'],
  ] as const;
  for (const [key, cmd] of simple) {
    const v = patch[key];
    if (v !== undefined) await nodeRequest(pgdata, cmd, { value: v });
  }
  if (patch.nquorum !== undefined || patch.minnodes !== undefined)
    await nodeRequest(pgdata, 'set_nquorum_and_minnodes', { nquorum: patch.nquorum ?? now.nquorum, minnodes: patch.minnodes ?? now.minnodes });
  if (patch.service_mode !== undefined) await nodeRequest(pgdata, 'service_mode', { value: patch.service_mode });
  return await localConfig(pgdata);
}
