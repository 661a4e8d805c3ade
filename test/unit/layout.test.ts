// A configuration outside the data directory (Debian's /etc/postgresql/N/NAME): detection from
// either directory, and where writeBihaConf puts biha's settings and pg_hba lines.
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { bihaConfFile, readBihaGucs, writeBihaConf } from '../../src/controller/pg/conf.js';
import type { BihaConfVars } from '../../src/controller/pg/conf.js';
import { configFileOpt } from '../../src/controller/pg/tools.js';
import { dataDirOf, debianCluster, detectLayout, findDebianConfigDir, layoutOf } from '../../src/controller/pg/layout.js';
import { readConfChain } from '../../src/controller/pg/settings.js';
import { startConfMode } from '../../src/bihactl/debian.js';

const top = fs.mkdtempSync(path.join(os.tmpdir(), 'biha-layout-'));
let n = 0;
let root = '';
let etc = '';
let data = '';

const VARS: BihaConfVars = { listenAddresses: '*', port: 27990, nodeId: 1, host: '127.0.0.1', bihaPort: 27991, syncStandbyNames: '', autorewind: false };

/** A cluster as pg_createcluster lays it out, under a root of our own. */
async function debianCluster15(mainConf: string): Promise<void> {
  await fsp.mkdir(path.join(etc, 'conf.d'), { recursive: true });
  await fsp.mkdir(data, { recursive: true });
  await fsp.writeFile(path.join(data, 'PG_VERSION'), '15\n');
  await fsp.writeFile(path.join(etc, 'postgresql.conf'), mainConf);
  await fsp.writeFile(path.join(etc, 'pg_hba.conf'), 'local all postgres peer\nhost all all 127.0.0.1/32 scram-sha-256\n', { mode: 0o640 });
  await fsp.writeFile(path.join(etc, 'pg_ident.conf'), '# MAPNAME SYSTEM-USERNAME PG-USERNAME\n');
  await fsp.writeFile(path.join(etc, 'start.conf'), '# Automatic startup configuration\nauto\n');
}

function debianConf(extra = ''): string {
  return [
    `data_directory = '${data}'\t\t# use data in another directory`,
    `hba_file = '${etc}/pg_hba.conf'`,
    `ident_file = '${etc}/pg_ident.conf'`,
    "external_pid_file = '/var/run/postgresql/15-x.pid'",
    'port = 5433',
    "unix_socket_directories = '/var/run/postgresql'",
    "include_dir = 'conf.d'",
    extra,
    '',
  ].join('\n');
}

beforeEach(() => {
  root = path.join(top, `r${++n}`, 'etc', 'postgresql');
  etc = path.join(root, '15', 'node');
  data = path.join(top, `r${n}`, 'var', 'lib', 'postgresql', '15', 'node');
});

afterAll(async () => {
  await fsp.rm(top, { recursive: true, force: true });
});

describe('detectLayout', () => {
  it('takes a configuration directory to the data directory its data_directory names', async () => {
    await debianCluster15(debianConf());
    const l = await detectLayout(etc, { debianRoot: root });
    expect(l).toEqual({ dataDir: data, configDir: etc, configFile: path.join(etc, 'postgresql.conf'), external: true });
    expect(debianCluster(l, root)).toEqual({ version: '15', name: 'node' });
    expect(await dataDirOf(etc)).toBe(data);
  });

  it("finds Debian's configuration directory of a data directory without postgresql.conf", async () => {
    await debianCluster15(debianConf());
    expect(await findDebianConfigDir(data, root)).toBe(etc);
    expect((await detectLayout(data, { debianRoot: root })).configDir).toBe(etc);
    expect(await dataDirOf(data)).toBe(data);
  });

  it('keeps a data directory that has its own postgresql.conf', async () => {
    await debianCluster15(debianConf());
    await fsp.writeFile(path.join(data, 'postgresql.conf'), "port = 5432\n");
    expect(await detectLayout(data, { debianRoot: root })).toEqual(layoutOf(data, null));
    expect(layoutOf(data, null).external).toBe(false);
  });

  it('refuses a Debian configuration directory without data_directory, and a relative one', async () => {
    await debianCluster15('port = 5433\n');
    await expect(detectLayout(etc, { debianRoot: root })).rejects.toThrow(/sets no data_directory/);
    await fsp.writeFile(path.join(etc, 'postgresql.conf'), "data_directory = 'rel/dir'\n");
    await expect(detectLayout(etc, { debianRoot: root })).rejects.toThrow(/not an absolute path/);
  });
});

describe('writeBihaConf with a configuration directory', () => {
  it("puts postgresql.biha.conf into conf.d/ and the pg_hba lines into the hba_file, leaving postgresql.conf and the data directory's files alone", async () => {
    await debianCluster15(debianConf());
    const before = await fsp.readFile(path.join(etc, 'postgresql.conf'), 'utf8');
    await writeBihaConf(data, VARS, etc);
    expect(await fsp.readFile(path.join(etc, 'postgresql.conf'), 'utf8')).toBe(before);
    const file = path.join(etc, 'conf.d', 'postgresql.biha.conf');
    expect(await bihaConfFile(data, etc)).toBe(file);
    const eff = await readConfChain(path.join(etc, 'postgresql.conf'));
    expect(eff.get('port')).toEqual({ value: '27990', file });
    expect(eff.get('unix_socket_directories')?.value).toBe('/var/run/postgresql');
    const hba = await fsp.readFile(path.join(etc, 'pg_hba.conf'), 'utf8');
    expect(hba.startsWith('# BEGIN biha')).toBe(true);
    expect(hba).toMatch(/^host\s+replication\s+biha_replication_user\s+0\.0\.0\.0\/0\s+scram-sha-256$/m);
    expect(hba).toMatch(/^local all postgres peer$/m);
    expect((await fsp.stat(path.join(etc, 'pg_hba.conf'))).mode & 0o777).toBe(0o640);
    expect(await fsp.readFile(path.join(etc, 'pg_ident.conf'), 'utf8')).toMatch(/^biha\s+root\s+\S+$/m);
    for (const f of ['postgresql.conf', 'pg_hba.conf', 'postgresql.biha.conf']) expect(fs.existsSync(path.join(data, f))).toBe(false);
    expect((await readBihaGucs(data, etc))['biha.id']).toBe('1');
    // Again: the same files, one marker block.
    await writeBihaConf(data, { ...VARS, nodeId: 2 }, etc);
    expect((await fsp.readFile(path.join(etc, 'pg_hba.conf'), 'utf8')).match(/^# BEGIN biha/gm)).toHaveLength(1);
    expect((await readBihaGucs(data, etc))['biha.id']).toBe('2');
  });

  it('includes postgresql.biha.conf at the end of postgresql.conf when a later line would override conf.d/', async () => {
    await debianCluster15(debianConf('port = 5999'));
    await writeBihaConf(data, VARS, etc);
    const beside = path.join(etc, 'postgresql.biha.conf');
    expect(fs.existsSync(path.join(etc, 'conf.d', 'postgresql.biha.conf'))).toBe(false);
    expect(await bihaConfFile(data, etc)).toBe(beside);
    expect((await fsp.readFile(path.join(etc, 'postgresql.conf'), 'utf8')).match(/^include 'postgresql\.biha\.conf'$/gm)).toHaveLength(1);
    expect((await readConfChain(path.join(etc, 'postgresql.conf'))).get('port')).toEqual({ value: '27990', file: beside });
    // The DBA drops the line: the next run moves biha's file into conf.d/ and takes its include back.
    await fsp.writeFile(path.join(etc, 'postgresql.conf'), (await fsp.readFile(path.join(etc, 'postgresql.conf'), 'utf8')).replace('port = 5999\n', ''));
    await writeBihaConf(data, VARS, etc);
    expect(fs.existsSync(beside)).toBe(false);
    expect(await fsp.readFile(path.join(etc, 'postgresql.conf'), 'utf8')).toBe(debianConf('port = 5999').replace('port = 5999\n', ''));
  });

  it('raises the replication settings the configuration directory has too low', async () => {
    await debianCluster15(debianConf());
    await fsp.writeFile(path.join(etc, 'conf.d', 'repl.conf'), 'max_wal_senders = 4\n');
    const plan = await writeBihaConf(data, VARS, etc);
    expect(plan.raised.map((r) => [r.name, r.source])).toContainEqual(['max_wal_senders', path.join(etc, 'conf.d', 'repl.conf')]);
    expect((await readConfChain(path.join(etc, 'postgresql.conf'))).get('max_wal_senders')?.value).toBe('16');
  });

  it('says what to do when the configuration file is missing', async () => {
    await fsp.mkdir(data, { recursive: true });
    await fsp.writeFile(path.join(data, 'PG_VERSION'), '15\n');
    await expect(writeBihaConf(data, VARS)).rejects.toThrow(/postgresql\.conf does not exist/);
  });
});

describe('starting with a configuration directory', () => {
  it("passes config_file to the server through pg_ctl's -o, quoted for the shell", () => {
    expect(configFileOpt({})).toEqual([]);
    expect(configFileOpt({ configFile: '/etc/postgresql/15/main/postgresql.conf' })).toEqual(['-o', "-c 'config_file=/etc/postgresql/15/main/postgresql.conf'"]);
    expect(configFileOpt({ configFile: "/etc/it's/postgresql.conf" })).toEqual(['-o', "-c 'config_file=/etc/it'\\''s/postgresql.conf'"]);
  });

  it("reads start.conf's mode", () => {
    expect(startConfMode('# Automatic startup configuration\n#   auto: ...\n\nauto\n')).toBe('auto');
    expect(startConfMode('manual # by hand\n')).toBe('manual');
    expect(startConfMode('# nothing\n')).toBeNull();
  });
});
