// bihactl config / config set: the cluster settings under the reference's SQL parameter names, read
// and changed through the node's config and set_config commands (configpatch.ts), which run the
// commands of the SQL functions (biha.set_heartbeat_max_lost, ...).
import { BihaError } from '../controller/errors.js';
import { CONFIG_KEYS } from '../controller/configpatch.js';
import type { ClusterSettings } from '../controller/configpatch.js';
import { nodeRequest } from './localnode.js';

export type ConfigKey = (typeof CONFIG_KEYS)[number];
export type ConfigPatch = Partial<ClusterSettings>;

function isConfigKey(k: string): k is ConfigKey {
  return (CONFIG_KEYS as readonly string[]).includes(k);
}

const TRUE = new Set(['true', 'on', 'yes', '1']);
const FALSE = new Set(['false', 'off', 'no', '0']);

function parseValue(key: ConfigKey, raw: string): number | boolean {
  const v = raw.trim().toLowerCase();
  if (key === 'service_mode') {
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
    throw new BihaError('bad_args', 'config set needs at least one KEY=VALUE', { hint: `keys: ${CONFIG_KEYS.join(', ')}` });
  const patch: Record<string, number | boolean> = {};
  for (const a of args) {
    const eq = a.indexOf('=');
    if (eq <= 0) throw new BihaError('bad_args', `"${a}" is not KEY=VALUE`, { hint: 'for example: bihactl config set heartbeat_max_lost=20' });
    const key = a.slice(0, eq).trim();
    if (!isConfigKey(key)) throw new BihaError('bad_args', `unknown setting "${key}"`, { hint: `keys: ${CONFIG_KEYS.join(', ')}` });
    if (key in patch) throw new BihaError('bad_args', `${key} is given twice`);
    patch[key] = parseValue(key, a.slice(eq + 1));
  }
  return patch as ConfigPatch;
}

/** `key = value` lines, in the order of CONFIG_KEYS. */
export function renderConfig(c: object): string {
  const entries = Object.entries(c);
  const width = Math.max(...entries.map(([k]) => k.length));
  return entries.map(([k, v]) => `${k.padEnd(width)} = ${String(v)}`).join('\n');
}

export async function localConfig(pgdata: unknown): Promise<ClusterSettings> {
  return (await nodeRequest(pgdata, 'config', {}, 5000)) as ClusterSettings;
}

/** Applies a patch on the leader (from any node) through the commands of the SQL functions; returns the settings afterwards. */
export async function applyLocalConfig(pgdata: unknown, patch: ConfigPatch): Promise<ClusterSettings> {
  return (await nodeRequest(pgdata, 'set_config', { ...patch }, 70_000)) as ClusterSettings;
}
