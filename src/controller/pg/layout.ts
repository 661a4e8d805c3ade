// Where a node's PostgreSQL keeps its configuration: in the data directory (initdb's layout), or
// in a configuration directory of its own (Debian's postgresql-common: /etc/postgresql/N/NAME
// with postgresql.conf, pg_hba.conf, pg_ident.conf, conf.d/, and data_directory pointing at
// /var/lib/postgresql/N/NAME).
//
// The data directory stays the node's home either way (PG_VERSION, pg_biha/, postmaster.pid,
// postgresql.auto.conf, signal files); a configuration directory is recorded in the node's
// identity (NodeConf.configDir) and PostgreSQL is started with config_file pointing into it.
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { BihaError } from '../errors.js';
import { identityDir, readNodeConf } from '../state/nodefiles.js';
import { parseConfLine, readConfChain } from './settings.js';

/** Debian's root of cluster configuration directories: <root>/<N>/<NAME>/postgresql.conf. */
export const DEBIAN_CONF_ROOT = '/etc/postgresql';

export interface PgLayout {
  /** The data directory: PG_VERSION, pg_biha/, postmaster.pid, postgresql.auto.conf. */
  readonly dataDir: string;
  /** The directory of the postgresql.conf PostgreSQL reads: dataDir, or a directory of its own. */
  readonly configDir: string;
  /** configDir/postgresql.conf. */
  readonly configFile: string;
  /** The configuration lives outside the data directory. */
  readonly external: boolean;
}

export function layoutOf(dataDir: string, configDir: string | null | undefined): PgLayout {
  const data = path.resolve(dataDir);
  const conf = configDir ? path.resolve(configDir) : data;
  return { dataDir: data, configDir: conf, configFile: path.join(conf, 'postgresql.conf'), external: conf !== data };
}

function isFile(p: string): boolean {
  try {
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

function realOrResolved(p: string): string {
  try {
    return fs.realpathSync(p);
  } catch {
    return path.resolve(p);
  }
}

/** The data_directory a configuration file sets (its includes followed), or null. */
export async function configuredDataDir(configFile: string): Promise<string | null> {
  const settings = await readConfChain(configFile);
  const v = settings.get('data_directory')?.value;
  if (v === undefined || v === '') return null;
  if (!path.isAbsolute(v))
    throw new BihaError('bad_layout', `${configFile} sets data_directory = '${v}', which is not an absolute path`, {
      hint: 'set data_directory to the absolute path of the data directory',
    });
  return path.resolve(v);
}

/** Debian's configuration directory whose data_directory is dataDir, or null when there is none. */
export async function findDebianConfigDir(dataDir: string, root = DEBIAN_CONF_ROOT): Promise<string | null> {
  const want = realOrResolved(dataDir);
  let versions: string[];
  try {
    versions = (await fsp.readdir(root)).sort();
  } catch {
    return null;
  }
  for (const v of versions) {
    let names: string[];
    try {
      names = (await fsp.readdir(path.join(root, v))).sort();
    } catch {
      continue;
    }
    for (const n of names) {
      const file = path.join(root, v, n, 'postgresql.conf');
      if (!isFile(file)) continue;
      const dd = await configuredDataDir(file).catch(() => null);
      if (dd !== null && realOrResolved(dd) === want) return path.join(root, v, n);
    }
  }
  return null;
}

/**
 * What --pgdata names: a data directory, or a configuration directory (a postgresql.conf and no
 * PG_VERSION) whose data_directory is the data directory. A data directory without a
 * postgresql.conf whose Debian configuration directory sets it as data_directory gets that one.
 */
export async function detectLayout(arg: string, o: { debianRoot?: string } = {}): Promise<PgLayout> {
  const dir = path.resolve(arg);
  const hasConf = isFile(path.join(dir, 'postgresql.conf'));
  if (hasConf && !isFile(path.join(dir, 'PG_VERSION'))) {
    const dataDir = await configuredDataDir(path.join(dir, 'postgresql.conf'));
    if (dataDir !== null && realOrResolved(dataDir) !== realOrResolved(dir)) return layoutOf(dataDir, dir);
    if (dataDir === null && isDebianConfigDir(dir, o.debianRoot))
      throw new BihaError('bad_layout', `${dir}/postgresql.conf sets no data_directory, so the data directory of this configuration is unknown`, {
        hint: 'set data_directory in it, or give the data directory as --pgdata',
      });
    return layoutOf(dir, null);
  }
  if (hasConf) return layoutOf(dir, null);
  const debian = await findDebianConfigDir(dir, o.debianRoot);
  return layoutOf(dir, debian);
}

/**
 * The data directory --pgdata means for a command on an existing node: a configuration directory
 * (postgresql.conf, no PG_VERSION) stands for the data directory its data_directory names.
 */
export async function dataDirOf(arg: string): Promise<string> {
  const dir = path.resolve(arg);
  if (!isFile(path.join(dir, 'postgresql.conf')) || isFile(path.join(dir, 'PG_VERSION'))) return dir;
  return (await configuredDataDir(path.join(dir, 'postgresql.conf')).catch(() => null)) ?? dir;
}

function isDebianConfigDir(dir: string, root = DEBIAN_CONF_ROOT): boolean {
  return path.dirname(path.dirname(dir)) === path.resolve(root);
}

/**
 * The configuration directory recorded in the node's identity; null without one (the data
 * directory's configuration, no node yet, or an identity that cannot be read, which the commands
 * reading it report themselves).
 */
export async function recordedConfigDir(dataDir: string): Promise<string | null> {
  if (!isFile(path.join(identityDir(dataDir), 'biha.conf'))) return null;
  return await readNodeConf(dataDir).then(
    (c) => c.configDir ?? null,
    () => null,
  );
}

/**
 * The directory a configuration directory's postgresql.conf includes with include_dir, when its
 * name is conf.d (Debian's `include_dir = 'conf.d'`): null when the file has no such line.
 */
export async function confDDir(layout: PgLayout): Promise<string | null> {
  let text: string;
  try {
    text = await fsp.readFile(layout.configFile, 'utf8');
  } catch {
    return null;
  }
  for (const raw of text.split('\n')) {
    const l = parseConfLine(raw);
    if (l?.include !== 'include_dir') continue;
    const target = path.resolve(layout.configDir, l.value);
    if (path.basename(target) === 'conf.d') return target;
  }
  return null;
}

/** Debian's cluster version and name of a configuration directory /etc/postgresql/N/NAME, or null. */
export function debianCluster(layout: PgLayout, root = DEBIAN_CONF_ROOT): { version: string; name: string } | null {
  if (!layout.external || !isDebianConfigDir(layout.configDir, root)) return null;
  return { version: path.basename(path.dirname(layout.configDir)), name: path.basename(layout.configDir) };
}
