// Which PostgreSQL programs serve a data directory: fake installations (bin directories whose
// pg_ctl is a shell script printing a version) under a temporary root stand in for /usr.
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { dataDirMajor, installedMajors, requireDataDirMajor, resolveBindir } from '../../src/controller/pg/bindir.js';
import type { BindirSearch } from '../../src/controller/pg/bindir.js';
import { writeBihaConf } from '../../src/controller/pg/conf.js';
import { BihaError, oneLine } from '../../src/controller/errors.js';

let root = '';
let n = 0;

beforeAll(async () => {
  root = await fsp.mkdtemp(path.join(os.tmpdir(), 'biha-bindir-'));
});
afterAll(async () => {
  await fsp.rm(root, { recursive: true, force: true });
});

/** A fresh directory under the test root. */
async function fresh(name: string): Promise<string> {
  const d = path.join(root, `${name}-${++n}`);
  await fsp.mkdir(d, { recursive: true });
  return d;
}

/** A bin directory whose pg_ctl reports `version` (e.g. "16.2"). */
async function fakeBin(dir: string, version: string): Promise<string> {
  await fsp.mkdir(dir, { recursive: true });
  const script = `#!/bin/sh\nif [ "$1" = "--version" ]; then echo "pg_ctl (PostgreSQL) ${version}"; exit 0; fi\nexit 1\n`;
  await fsp.writeFile(path.join(dir, 'pg_ctl'), script, { mode: 0o755 });
  return dir;
}

/** A pg_config that prints `bindir` for --bindir. */
async function fakePgConfig(dir: string, bindir: string): Promise<string> {
  const file = path.join(dir, 'pg_config');
  await fsp.writeFile(file, `#!/bin/sh\n[ "$1" = "--bindir" ] && echo "${bindir}"\n`, { mode: 0o755 });
  return file;
}

/** An empty fake /usr: Debian root, RPM root and no pg_config. */
async function fakeUsr(): Promise<BindirSearch & { base: string }> {
  const base = await fresh('usr');
  const debianRoot = path.join(base, 'lib', 'postgresql');
  await fsp.mkdir(debianRoot, { recursive: true });
  return { base, debianRoot, rpmRoot: base, pgConfig: null };
}

const debian = (s: BindirSearch, major: number): string => path.join(s.debianRoot, String(major), 'bin');
const rpm = (s: BindirSearch, major: number): string => path.join(s.rpmRoot, `pgsql-${major}`, 'bin');

/** A data directory with the given PG_VERSION contents (none when undefined). */
async function dataDir(version?: string): Promise<string> {
  const d = await fresh('pgdata');
  if (version !== undefined) await fsp.writeFile(path.join(d, 'PG_VERSION'), `${version}\n`);
  return d;
}

async function failure(p: Promise<unknown>): Promise<BihaError> {
  const e = await p.then(
    () => null,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(BihaError);
  const err = e as BihaError;
  // Every refusal is one line that says what to do.
  expect(oneLine(err)).not.toMatch(/\n/);
  expect(err.hint ?? '').not.toBe('');
  return err;
}

const savedEnv = process.env.BIHA_PG_BINDIR;
afterEach(() => {
  if (savedEnv === undefined) delete process.env.BIHA_PG_BINDIR;
  else process.env.BIHA_PG_BINDIR = savedEnv;
});

describe('the data directory PG_VERSION', () => {
  it('is read as a major version; absent is null; unsupported or unreadable versions are refused', async () => {
    expect(await dataDirMajor(await dataDir('16'))).toBe(16);
    expect(await dataDirMajor(await dataDir('13'))).toBe(13);
    expect(await dataDirMajor(await dataDir('18'))).toBe(18);
    expect(await dataDirMajor(await dataDir())).toBeNull();
    expect(await dataDirMajor(path.join(root, 'does-not-exist'))).toBeNull();
    const old = await failure(dataDirMajor(await dataDir('12')));
    expect(old.code).toBe('pg_unsupported');
    expect(old.message).toMatch(/PostgreSQL 12 data directory; biha supports PostgreSQL 13 to 18/);
    expect((await failure(dataDirMajor(await dataDir('9.6')))).code).toBe('pg_unsupported');
    expect((await failure(dataDirMajor(await dataDir('19')))).code).toBe('pg_unsupported');
    await expect(dataDirMajor(await dataDir('banana'))).rejects.toMatchObject({ code: 'pg_version_unreadable' });
  });

  it('is required where the configuration depends on it: no default version', async () => {
    expect(await requireDataDirMajor(await dataDir('15'))).toBe(15);
    const missing = await failure(requireDataDirMajor(await dataDir()));
    expect(missing.code).toBe('pg_version_missing');
    const noVersion = await dataDir();
    await fsp.writeFile(path.join(noVersion, 'postgresql.conf'), '');
    await expect(
      writeBihaConf(noVersion, { listenAddresses: '*', port: 5432, nodeId: 1, host: 'h', bihaPort: 5433, syncStandbyNames: '', autorewind: false, superuser: 'postgres' }),
    ).rejects.toMatchObject({ code: 'pg_version_missing' });
  });
});

describe('resolveBindir with a PG_VERSION', () => {
  it('takes the Debian directory of that major, then the RPM one, among several installed versions', async () => {
    const s = await fakeUsr();
    await fakeBin(debian(s, 15), '15.8');
    await fakeBin(debian(s, 16), '16.2');
    await fakeBin(rpm(s, 16), '16.2');
    await fakeBin(rpm(s, 17), '17.0');
    expect(await resolveBindir(await dataDir('16'), { explicit: undefined, search: s })).toEqual({ bindir: debian(s, 16), major: 16 });
    expect(await resolveBindir(await dataDir('15'), { explicit: undefined, search: s })).toEqual({ bindir: debian(s, 15), major: 15 });
    expect(await resolveBindir(await dataDir('17'), { explicit: undefined, search: s })).toEqual({ bindir: rpm(s, 17), major: 17 });
  });

  it('uses pg_config --bindir only when its programs are of the same major', async () => {
    const s = await fakeUsr();
    const other = await fakeBin(path.join(s.base, 'opt', 'pg16', 'bin'), '16.4');
    s.pgConfig = await fakePgConfig(s.base, other);
    expect(await resolveBindir(await dataDir('16'), { explicit: undefined, search: s })).toEqual({ bindir: other, major: 16 });
    const err = await failure(resolveBindir(await dataDir('14'), { explicit: undefined, search: s }));
    expect(err.code).toBe('pg_not_found');
    expect(oneLine(err)).toMatch(/PostgreSQL 14, but its programs \(pg_ctl\) are not installed here \(install postgresql-14 or set BIHA_PG_BINDIR/);
  });

  it('names the version to install when nothing of it is installed', async () => {
    const s = await fakeUsr();
    await fakeBin(debian(s, 15), '15.8');
    const err = await failure(resolveBindir(await dataDir('16'), { explicit: undefined, search: s }));
    expect(err.code).toBe('pg_not_found');
    expect(oneLine(err)).toMatch(/PostgreSQL 16.*install postgresql-16 or set BIHA_PG_BINDIR/);
  });

  it('refuses a data directory of an unsupported major even when its programs are there', async () => {
    const s = await fakeUsr();
    await fakeBin(debian(s, 12), '12.20');
    const err = await failure(resolveBindir(await dataDir('12'), { explicit: undefined, search: s }));
    expect(err.code).toBe('pg_unsupported');
  });
});

describe('resolveBindir with an explicit directory (BIHA_PG_BINDIR, bihactl --pg-bindir)', () => {
  it('accepts a directory whose pg_ctl matches the data directory, also through the environment', async () => {
    const s = await fakeUsr();
    await fakeBin(debian(s, 15), '15.8');
    const mine = await fakeBin(path.join(s.base, 'custom', 'bin'), '16.2');
    const pgdata = await dataDir('16');
    expect(await resolveBindir(pgdata, { explicit: mine, search: s })).toEqual({ bindir: mine, major: 16 });
    process.env.BIHA_PG_BINDIR = mine;
    expect(await resolveBindir(pgdata, { search: s })).toEqual({ bindir: mine, major: 16 });
    // No data directory yet: any supported version is accepted.
    expect(await resolveBindir(await dataDir(), { search: s })).toEqual({ bindir: mine, major: 16 });
  });

  it('refuses a directory of another major than the data directory, saying which of both', async () => {
    const s = await fakeUsr();
    const mine = await fakeBin(path.join(s.base, 'custom', 'bin'), '15.8');
    const err = await failure(resolveBindir(await dataDir('16'), { explicit: mine, search: s }));
    expect(err.code).toBe('pg_version_mismatch');
    expect(err.message).toMatch(/holds PostgreSQL 15, but the data directory .* is PostgreSQL 16/);
    expect(err.hint).toMatch(/bin directory of PostgreSQL 16/);
  });

  it('refuses a directory without pg_ctl and one with unsupported programs', async () => {
    const s = await fakeUsr();
    const empty = await fresh('empty-bin');
    const noCtl = await failure(resolveBindir(await dataDir('16'), { explicit: empty, search: s }));
    expect(noCtl.code).toBe('pg_not_found');
    expect(noCtl.message).toBe(`BIHA_PG_BINDIR=${empty} does not contain pg_ctl`);
    const old = await fakeBin(path.join(s.base, 'old', 'bin'), '12.20');
    const unsupported = await failure(resolveBindir(await dataDir(), { explicit: old, search: s }));
    expect(unsupported.code).toBe('pg_unsupported');
    expect(unsupported.message).toMatch(/PostgreSQL 12; biha supports PostgreSQL 13 to 18/);
  });
});

describe('resolveBindir without a PG_VERSION (a new cluster, a node before its copy)', () => {
  it('prefers pg_config --bindir', async () => {
    const s = await fakeUsr();
    await fakeBin(debian(s, 17), '17.1');
    const chosen = await fakeBin(debian(s, 15), '15.8');
    s.pgConfig = await fakePgConfig(s.base, chosen);
    expect(await resolveBindir(await dataDir(), { explicit: undefined, search: s })).toEqual({ bindir: chosen, major: 15 });
  });

  it('else takes the newest supported version installed in either layout', async () => {
    const s = await fakeUsr();
    await fakeBin(debian(s, 14), '14.13');
    await fakeBin(debian(s, 16), '16.2');
    await fakeBin(rpm(s, 17), '17.0');
    await fakeBin(rpm(s, 19), '19devel');
    await fsp.mkdir(debian(s, 18), { recursive: true }); // a leftover directory without programs
    await fsp.mkdir(path.join(s.debianRoot, 'common'), { recursive: true });
    expect((await installedMajors(s)).map((i) => i.major)).toEqual([19, 17, 16, 14]);
    expect(await resolveBindir(await dataDir(), { explicit: undefined, search: s })).toEqual({ bindir: rpm(s, 17), major: 17 });
    expect(await resolveBindir(null, { explicit: undefined, search: s })).toEqual({ bindir: rpm(s, 17), major: 17 });
  });

  it('follows the major of the cluster being joined when one is given', async () => {
    const s = await fakeUsr();
    await fakeBin(debian(s, 14), '14.13');
    await fakeBin(debian(s, 16), '16.2');
    expect(await resolveBindir(await dataDir(), { explicit: undefined, search: s, clusterMajor: 14 })).toEqual({ bindir: debian(s, 14), major: 14 });
    const err = await failure(resolveBindir(await dataDir(), { explicit: undefined, search: s, clusterMajor: 15 }));
    expect(oneLine(err)).toMatch(/the cluster is PostgreSQL 15.*install postgresql-15/);
    // A copy that already arrived decides over the hint.
    expect(await resolveBindir(await dataDir('16'), { explicit: undefined, search: s, clusterMajor: 14 })).toEqual({ bindir: debian(s, 16), major: 16 });
  });

  it('refuses when only unsupported versions or none are installed', async () => {
    const s = await fakeUsr();
    const none = await failure(resolveBindir(await dataDir(), { explicit: undefined, search: s }));
    expect(none.code).toBe('pg_not_found');
    await fakeBin(debian(s, 12), '12.20');
    const old = await failure(resolveBindir(await dataDir(), { explicit: undefined, search: s }));
    expect(old.code).toBe('pg_unsupported');
    expect(old.message).toContain(debian(s, 12));
  });
});
