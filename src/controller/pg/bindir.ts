// Which PostgreSQL programs serve a data directory: those of the major version in its PG_VERSION.
//
// Order:
//  1. An explicit directory (BIHA_PG_BINDIR, which bihactl --pg-bindir sets): it must hold pg_ctl,
//     and when the data directory has a PG_VERSION, `pg_ctl --version` must report that major.
//  2. The data directory has a PG_VERSION of major N: Debian's /usr/lib/postgresql/N/bin, the
//     PGDG RPM layout /usr/pgsql-N/bin, then `pg_config --bindir` when its pg_ctl is of major N.
//  3. No PG_VERSION yet (a new cluster, a node before its base backup): `pg_config --bindir`,
//     else the newest supported major installed in either layout.
// Supported majors are SUPPORTED_MIN..SUPPORTED_MAX; anything else is refused with a clear error.

import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { BihaError } from '../errors.js';
import { programOutput } from '../exec.js';

export const SUPPORTED_MIN = 13;
export const SUPPORTED_MAX = 18;
const SUPPORTED = `${SUPPORTED_MIN} to ${SUPPORTED_MAX}`;

/** Where installed PostgreSQL versions are looked for; tests point these at temporary directories. */
export interface BindirSearch {
  /** Debian layout: <debianRoot>/<N>/bin. */
  debianRoot: string;
  /** PGDG RPM layout: <rpmRoot>/pgsql-<N>/bin. */
  rpmRoot: string;
  /** The pg_config program to ask for its --bindir; null: do not ask. */
  pgConfig: string | null;
}

export const DEFAULT_SEARCH: BindirSearch = {
  debianRoot: '/usr/lib/postgresql',
  rpmRoot: '/usr',
  pgConfig: 'pg_config',
};

export interface ResolvedBindir {
  bindir: string;
  /** Major version of the programs in bindir. */
  major: number;
}

export function isSupportedMajor(major: number): boolean {
  return Number.isInteger(major) && major >= SUPPORTED_MIN && major <= SUPPORTED_MAX;
}

/** Whether a path exists (any type). */
export async function exists(p: string): Promise<boolean> {
  try {
    await fsp.access(p);
    return true;
  } catch {
    return false;
  }
}

/** The major of a version string such as "15", "16.2", "17beta1" or "9.6" (which yields 9). */
function leadingMajor(text: string): number | null {
  const m = /^(\d+)/.exec(text.trim());
  return m?.[1] ? parseInt(m[1], 10) : null;
}

/**
 * The major version in pgdata/PG_VERSION, or null when the file is absent (no cluster yet).
 * A PG_VERSION that cannot be read as a number, or names an unsupported major, is an error.
 */
export async function dataDirMajor(pgdata: string): Promise<number | null> {
  const file = path.join(pgdata, 'PG_VERSION');
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR') return null;
    throw new BihaError('pg_version_unreadable', `cannot read ${file}: ${(e as Error).message}`, { cause: e });
  }
  const major = leadingMajor(text);
  if (major === null) throw new BihaError('pg_version_unreadable', `${file} does not hold a PostgreSQL version ("${text.trim().slice(0, 20)}")`);
  if (!isSupportedMajor(major))
    throw new BihaError('pg_unsupported', `${pgdata} is a PostgreSQL ${text.trim()} data directory; biha supports PostgreSQL ${SUPPORTED}`, {
      hint: `upgrade the cluster to a supported version first (pg_upgrade)`,
    });
  return major;
}

/** The major version of pgdata, which must hold a PG_VERSION. */
export async function requireDataDirMajor(pgdata: string): Promise<number> {
  const major = await dataDirMajor(pgdata);
  if (major === null)
    throw new BihaError('pg_version_missing', `${pgdata} has no PG_VERSION: it is not a PostgreSQL data directory`, {
      hint: 'give the data directory of an initialised cluster',
    });
  return major;
}

/** The major reported by `<bindir>/pg_ctl --version`, or null when it cannot be run or read. */
export async function binMajor(bindir: string): Promise<number | null> {
  const out = await programOutput(path.join(bindir, 'pg_ctl'), ['--version']);
  const m = out ? /\(PostgreSQL\)\s+(\d+)/.exec(out) : null;
  return m?.[1] ? parseInt(m[1], 10) : null;
}

async function pgConfigBindir(search: BindirSearch): Promise<string | null> {
  if (search.pgConfig === null) return null;
  const dir = (await programOutput(search.pgConfig, ['--bindir']))?.trim();
  if (!dir || !(await exists(path.join(dir, 'pg_ctl')))) return null;
  return dir;
}

/** The bin directories of major N in the Debian and RPM layouts, in that order. */
function layoutDirs(search: BindirSearch, major: number): string[] {
  return [path.join(search.debianRoot, String(major), 'bin'), path.join(search.rpmRoot, `pgsql-${major}`, 'bin')];
}

/** Majors installed in either layout (a bin directory with pg_ctl), newest first. */
export async function installedMajors(search: BindirSearch = DEFAULT_SEARCH): Promise<Array<{ major: number; bindir: string }>> {
  const found: Array<{ major: number; bindir: string }> = [];
  const scan = async (root: string, re: RegExp, dirOf: (name: string) => string): Promise<void> => {
    let names: string[];
    try {
      names = await fsp.readdir(root);
    } catch {
      return;
    }
    for (const name of names) {
      const m = re.exec(name);
      if (!m?.[1]) continue;
      const bindir = dirOf(name);
      if (await exists(path.join(bindir, 'pg_ctl'))) found.push({ major: parseInt(m[1], 10), bindir });
    }
  };
  await scan(search.debianRoot, /^(\d+)$/, (n) => path.join(search.debianRoot, n, 'bin'));
  await scan(search.rpmRoot, /^pgsql-(\d+)$/, (n) => path.join(search.rpmRoot, n, 'bin'));
  // Newest first; for one major the Debian directory stays ahead of the RPM one (stable sort).
  return found.sort((a, b) => b.major - a.major);
}

function unsupportedBinaries(bindir: string, major: number, how: string): BihaError {
  return new BihaError('pg_unsupported', `${bindir} (${how}) holds PostgreSQL ${major}; biha supports PostgreSQL ${SUPPORTED}`, {
    hint: 'install a supported PostgreSQL version or set BIHA_PG_BINDIR (bihactl --pg-bindir) to its bin directory',
  });
}

async function checkedExplicit(dir: string, want: number | null, what: string): Promise<ResolvedBindir> {
  const bindir = path.resolve(dir);
  if (!(await exists(path.join(bindir, 'pg_ctl'))))
    throw new BihaError('pg_not_found', `BIHA_PG_BINDIR=${dir} does not contain pg_ctl`, {
      hint: 'point BIHA_PG_BINDIR (bihactl --pg-bindir) at the bin directory of a PostgreSQL installation, or unset it',
    });
  const major = await binMajor(bindir);
  if (major === null)
    throw new BihaError('pg_not_found', `cannot run ${path.join(bindir, 'pg_ctl')} --version`, {
      hint: 'point BIHA_PG_BINDIR (bihactl --pg-bindir) at the bin directory of a working PostgreSQL installation',
    });
  if (!isSupportedMajor(major)) throw unsupportedBinaries(bindir, major, 'BIHA_PG_BINDIR');
  if (want !== null && major !== want)
    throw new BihaError('pg_version_mismatch', `BIHA_PG_BINDIR=${dir} holds PostgreSQL ${major}, but ${what} is PostgreSQL ${want}`, {
      hint: `point BIHA_PG_BINDIR (bihactl --pg-bindir) at the bin directory of PostgreSQL ${want}, or unset it`,
    });
  return { bindir, major };
}

/**
 * The PostgreSQL bin directory for pgdata (see the order at the top of this file).
 * `explicit` is BIHA_PG_BINDIR unless given; pgdata null means no data directory is involved.
 * `clusterMajor` (the major of a cluster being joined) stands in for a PG_VERSION not there yet.
 */
export async function resolveBindir(
  pgdata: string | null,
  opts: { explicit?: string | undefined; search?: BindirSearch; clusterMajor?: number | undefined } = {},
): Promise<ResolvedBindir> {
  const search = opts.search ?? DEFAULT_SEARCH;
  const explicit = 'explicit' in opts ? opts.explicit : process.env.BIHA_PG_BINDIR;
  const own = pgdata === null ? null : await dataDirMajor(pgdata);
  if (own === null && opts.clusterMajor !== undefined && !isSupportedMajor(opts.clusterMajor))
    throw new BihaError('pg_unsupported', `the cluster runs PostgreSQL ${opts.clusterMajor}; biha supports PostgreSQL ${SUPPORTED}`);
  const want = own ?? opts.clusterMajor ?? null;
  const what = own !== null ? `the data directory ${pgdata}` : 'the cluster';
  if (explicit) return checkedExplicit(explicit, want, what);

  if (want !== null) {
    for (const dir of layoutDirs(search, want)) {
      if (await exists(path.join(dir, 'pg_ctl'))) return { bindir: dir, major: want };
    }
    const fromConfig = await pgConfigBindir(search);
    if (fromConfig !== null && (await binMajor(fromConfig)) === want) return { bindir: fromConfig, major: want };
    throw new BihaError('pg_not_found', `${what} is PostgreSQL ${want}, but its programs (pg_ctl) are not installed here`, {
      hint: `install postgresql-${want} or set BIHA_PG_BINDIR (bihactl --pg-bindir) to its bin directory`,
    });
  }

  const fromConfig = await pgConfigBindir(search);
  if (fromConfig !== null) {
    const major = await binMajor(fromConfig);
    if (major === null)
      throw new BihaError('pg_not_found', `cannot run ${path.join(fromConfig, 'pg_ctl')} --version (the bin directory pg_config names)`, {
        hint: 'fix the PostgreSQL installation or set BIHA_PG_BINDIR (bihactl --pg-bindir)',
      });
    if (!isSupportedMajor(major)) throw unsupportedBinaries(fromConfig, major, 'pg_config --bindir');
    return { bindir: fromConfig, major };
  }
  const installed = await installedMajors(search);
  const newest = installed.find((i) => isSupportedMajor(i.major));
  if (newest) return newest;
  if (installed[0]) throw unsupportedBinaries(installed[0].bindir, installed[0].major, 'the newest installed');
  throw new BihaError('pg_not_found', 'cannot find the PostgreSQL programs (pg_ctl)', {
    hint: `install PostgreSQL (${SUPPORTED}) or set BIHA_PG_BINDIR (bihactl --pg-bindir) to its bin directory`,
  });
}
