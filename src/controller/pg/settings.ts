// The DBA's effective PostgreSQL settings of a data directory, and the few lines biha must add.
//
// PostgreSQL reads postgresql.conf (include lines processed where they stand) and then
// postgresql.auto.conf; the last line naming a setting wins. biha's postgresql.biha.conf is
// included at the end of postgresql.conf, so a line there wins over every postgresql.conf line
// but loses to postgresql.auto.conf. biha therefore writes a line only where the DBA's value is
// below what biha needs, and refuses when such a value comes from postgresql.auto.conf (which
// the include cannot override) or cannot work at all (wal_level = minimal).

import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { BihaError } from '../errors.js';

/** The file biha writes; never counted as the DBA's. */
export const BIHA_CONF_FILE = 'postgresql.biha.conf';

export interface ConfEntry {
  value: string;
  /** The file the effective line is in (absolute path). */
  file: string;
}

/** Effective values by lower-case setting name. */
export type EffectiveSettings = Map<string, ConfEntry>;

export interface ConfLine {
  name: string;
  value: string;
  /** 'include', 'include_if_exists' or 'include_dir' for include directives. */
  include?: 'include' | 'include_if_exists' | 'include_dir';
}

/**
 * One line of postgresql.conf syntax: `name = value`, `name value`, `include 'file'`. Values may be
 * single-quoted ('' and backslash escapes) or bare up to whitespace or '#'. Null for comments,
 * blank and unreadable lines.
 */
export function parseConfLine(raw: string): ConfLine | null {
  const m = /^\s*([A-Za-z_][A-Za-z0-9_$]*(?:\.[A-Za-z_][A-Za-z0-9_$]*)?)\s*(=?)\s*(.*)$/.exec(raw);
  if (!m?.[1] || m[3] === undefined) return null;
  const name = m[1];
  const rest = m[3];
  let value: string;
  if (rest.startsWith("'")) {
    value = '';
    let i = 1;
    let closed = false;
    while (i < rest.length) {
      const ch = rest.charAt(i);
      if (ch === "'" && rest.charAt(i + 1) === "'") {
        value += "'";
        i += 2;
      } else if (ch === "'") {
        closed = true;
        break;
      } else if (ch === '\\' && i + 1 < rest.length) {
        const nx = rest.charAt(i + 1);
        value += nx === 'n' ? '\n' : nx === 't' ? '\t' : nx === 'r' ? '\r' : nx;
        i += 2;
      } else {
        value += ch;
        i++;
      }
    }
    if (!closed) return null;
  } else {
    value = /^[^\s#]*/.exec(rest)?.[0] ?? '';
    if (value === '' && m[2] === '') return null;
  }
  const lower = name.toLowerCase();
  if (lower === 'include' || lower === 'include_if_exists' || lower === 'include_dir') return { name: lower, value, include: lower };
  return { name, value };
}

const MAX_DEPTH = 10;

async function readConfFile(file: string, out: EffectiveSettings, depth: number, mustExist: boolean, skipBiha: boolean): Promise<void> {
  if (depth > MAX_DEPTH) throw new BihaError('conf_depth', `configuration files are nested more than ${MAX_DEPTH} deep at ${file}`);
  if (skipBiha && path.basename(file) === BIHA_CONF_FILE) return;
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (e) {
    if (!mustExist && (e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new BihaError('conf_unreadable', `cannot read configuration file ${file}: ${(e as Error).message}`);
  }
  const dir = path.dirname(file);
  for (const raw of text.split('\n')) {
    const l = parseConfLine(raw);
    if (!l) continue;
    if (l.include) {
      const target = path.resolve(dir, l.value);
      if (l.include === 'include_dir') {
        let names: string[];
        try {
          names = (await fsp.readdir(target)).filter((n) => n.endsWith('.conf') && !n.startsWith('.')).sort();
        } catch (e) {
          throw new BihaError('conf_unreadable', `cannot read configuration directory ${target}: ${(e as Error).message}`);
        }
        for (const n of names) await readConfFile(path.join(target, n), out, depth + 1, true, skipBiha);
      } else {
        await readConfFile(target, out, depth + 1, l.include === 'include', skipBiha);
      }
      continue;
    }
    out.set(l.name.toLowerCase(), { value: l.value, file: path.resolve(file) });
  }
}

/**
 * The settings one configuration file gives, its includes followed where they stand (biha's
 * postgresql.biha.conf too, unless skipBiha), with the file each effective line is in.
 */
export async function readConfChain(configFile: string, o: { skipBiha?: boolean } = {}): Promise<EffectiveSettings> {
  const out: EffectiveSettings = new Map();
  await readConfFile(path.resolve(configFile), out, 0, true, o.skipBiha ?? false);
  return out;
}

/**
 * The settings the DBA's configuration gives this data directory: postgresql.conf (the data
 * directory's, or configFile when the configuration lives elsewhere) with its includes (every
 * postgresql.biha.conf left out), then the data directory's postgresql.auto.conf.
 */
export async function readDbaSettings(pgdata: string, configFile?: string): Promise<EffectiveSettings> {
  const dir = path.resolve(pgdata);
  const out: EffectiveSettings = new Map();
  await readConfFile(path.resolve(configFile ?? path.join(dir, 'postgresql.conf')), out, 0, true, true);
  await readConfFile(path.join(dir, 'postgresql.auto.conf'), out, 0, false, true);
  return out;
}

/** PostgreSQL's boolean syntax; null when the text is not a boolean. */
export function parseBool(v: string): boolean | null {
  const s = v.trim().toLowerCase();
  if (s === '') return null;
  if (s === '1' || s === 'on') return true;
  if (s === '0' || s === 'of' || s === 'off') return false;
  for (const [word, b] of [['true', true], ['yes', true], ['false', false], ['no', false]] as const) {
    if (word.startsWith(s)) return b;
  }
  return null;
}

/** An integer setting without unit (decimal, 0x hex or 0 octal); null when it is not one. */
export function parseIntSetting(v: string): number | null {
  const s = v.trim();
  if (/^[+-]?0[0-7]+$/.test(s)) return parseInt(s, 8);
  if (/^[+-]?\d+$/.test(s)) return parseInt(s, 10);
  if (/^0x[0-9a-f]+$/i.test(s)) return parseInt(s, 16);
  return null;
}

/** What biha needs at least for the settings it raises (PostgreSQL 15's defaults are lower or off). */
export const MIN_WAL_SENDERS = 16;
export const MIN_REPLICATION_SLOTS = 16;

/** PostgreSQL 15 defaults of the settings biha looks at. */
const PG_DEFAULTS: Readonly<Record<string, string>> = {
  wal_level: 'replica',
  hot_standby: 'on',
  wal_log_hints: 'off',
  max_wal_senders: '10',
  max_replication_slots: '10',
};

/**
 * The most WAL a replication slot may hold back (PostgreSQL's default, -1, has no limit): biha keeps
 * a slot biha_node_<id> for every data node, and the slot of a member that is down holds the WAL
 * from its last position on. Without a limit that member fills the disk of the leader's pg_wal and
 * stops the cluster. 8GB lets a follower that is down for a while (an hour at about 2 MB/s of WAL,
 * a night at a quiet one) catch up by itself and fits on the usual database volume beside
 * max_wal_size (1GB by default); past it the slot is invalidated (wal_status 'lost') and the member
 * comes back with bihactl reinit. A DBA who knows the disk and the WAL rate sets it in postgresql.conf.
 */
export const DEFAULT_MAX_SLOT_WAL_KEEP_SIZE = '8GB';

/** Settings biha prefers but leaves to the DBA: written only when the DBA has not set them. */
const PREFERRED: ReadonlyArray<readonly [string, string, string]> = [
  ['wal_keep_size', "'128MB'", "pg_rewind copies the source's pg_wal: keep it modest"],
  ['max_slot_wal_keep_size', `'${DEFAULT_MAX_SLOT_WAL_KEEP_SIZE}'`, "a down member's slot holds no more WAL than this (then: bihactl reinit)"],
  ['hot_standby_feedback', 'on', ''],
  ['wal_receiver_status_interval', '1s', "standbys report their position every second"],
];

export interface RaisedSetting {
  name: string;
  /** The DBA's effective value (or PostgreSQL's default). */
  from: string;
  to: string;
  /** Where `from` comes from: a file, or 'default'. */
  source: string;
}

export interface SettingsPlan {
  /** Lines for postgresql.biha.conf, in order. */
  lines: string[];
  /** Settings raised above the DBA's (or PostgreSQL's default) value. */
  raised: RaisedSetting[];
}

/**
 * The replication lines postgresql.biha.conf needs for these effective settings. Throws a
 * BihaError (code 'conflicting_setting') with a one-line reason when a setting cannot work with
 * biha, or is too low in postgresql.auto.conf, where the include cannot raise it.
 */
export function planSettings(dba: EffectiveSettings, o: { pgdata: string; dataChecksums: boolean; walReceiverTimeout: string }): SettingsPlan {
  const autoConf = path.join(path.resolve(o.pgdata), 'postgresql.auto.conf');
  const get = (name: string): { value: string; source: string; fromAuto: boolean } => {
    const e = dba.get(name);
    if (e) return { value: e.value, source: e.file, fromAuto: e.file === autoConf };
    return { value: PG_DEFAULTS[name] ?? '', source: 'default', fromAuto: false };
  };
  const where = (s: { source: string }): string => (s.source === 'default' ? "PostgreSQL's default" : s.source);
  const lines: string[] = [];
  const raised: RaisedSetting[] = [];
  const refuse = (msg: string, hint: string): never => {
    throw new BihaError('conflicting_setting', msg, { hint });
  };
  const cannotRaise = (name: string, value: string, needed: string): never =>
    refuse(
      `${name} = ${value} is set in postgresql.auto.conf (ALTER SYSTEM), which wins over postgresql.biha.conf, and biha needs ${needed}`,
      `ALTER SYSTEM RESET ${name}, or set it to ${needed}`,
    );

  const walLevel = get('wal_level');
  const wl = walLevel.value.trim().toLowerCase();
  if (!['replica', 'logical', 'archive', 'hot_standby'].includes(wl)) {
    refuse(`wal_level = ${walLevel.value} (${where(walLevel)}) cannot work with biha: streaming replication needs replica or logical`, 'set wal_level = replica (or logical) and try again');
  }

  const raiseInt = (name: string, min: number, why: string): void => {
    const cur = get(name);
    const n = parseIntSetting(cur.value);
    if (n === null) refuse(`${name} = ${cur.value} (${where(cur)}) is not an integer`, `set ${name} to at least ${min}`);
    if ((n ?? 0) >= min) return;
    if (cur.fromAuto) cannotRaise(name, cur.value, `at least ${min}`);
    lines.push(`${name} = ${min}${' '.repeat(Math.max(1, 40 - `${name} = ${min}`.length))}# raised by biha from ${cur.value}: ${why}`);
    raised.push({ name, from: cur.value, to: String(min), source: cur.source });
  };
  const turnOn = (name: string, why: string): void => {
    const cur = get(name);
    const b = parseBool(cur.value);
    if (b === null) refuse(`${name} = ${cur.value} (${where(cur)}) is not a boolean`, `set ${name} = on`);
    if (b) return;
    if (cur.fromAuto) cannotRaise(name, cur.value, 'on');
    lines.push(`${name} = on${' '.repeat(Math.max(1, 40 - `${name} = on`.length))}# set by biha (was ${cur.value}): ${why}`);
    raised.push({ name, from: cur.value, to: 'on', source: cur.source });
  };

  turnOn('hot_standby', 'a standby must accept read-only connections');
  if (!o.dataChecksums) turnOn('wal_log_hints', 'pg_rewind needs it (or data checksums)');
  raiseInt('max_wal_senders', MIN_WAL_SENDERS, 'one per standby, pg_basebackup and pg_rewind');
  raiseInt('max_replication_slots', MIN_REPLICATION_SLOTS, 'one per standby');

  for (const [name, value, why] of PREFERRED) {
    if (dba.has(name)) continue;
    lines.push(why ? `${name} = ${value}${' '.repeat(Math.max(1, 40 - `${name} = ${value}`.length))}# ${why}` : `${name} = ${value}`);
  }
  if (!dba.has('wal_receiver_timeout')) lines.push(`wal_receiver_timeout = '${o.walReceiverTimeout.replace(/'/g, "''")}'`);
  return { lines, raised };
}

/** One line per raised setting, for the CLI and the log. */
export function describeRaised(r: RaisedSetting): string {
  const src = r.source === 'default' ? "PostgreSQL's default" : path.basename(r.source);
  return `${r.name} raised from ${r.from} (${src}) to ${r.to}, the minimum biha needs`;
}
