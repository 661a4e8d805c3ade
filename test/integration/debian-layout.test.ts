// biha on Debian's own layout: clusters made with pg_createcluster (configuration in
// /etc/postgresql/15/NAME, data in /var/lib/postgresql/15/NAME, sockets in /var/run/postgresql)
// become a two-node biha cluster: the first with bihactl init --convert on its configuration
// directory, the second with bihactl add over its emptied data directory. Both keep their /etc
// configuration; a switchover and a failover work. Ports from 27500 on (test/helpers/ports.ts).
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StatusFile } from '../../src/controller/bridge/sqlbridge.js';
import { PG_BIN, asPostgres, bihaOk, bihactl, ensureBuilt, sleep, waitFor } from '../helpers/cluster.js';
import { claimPorts } from '../helpers/ports.js';

const pexec = promisify(execFile);

// pg_createcluster and pg_dropcluster need root (CI runs the suite as root).
const asRoot = process.getuid?.() === 0;

const tag = `biha${process.pid % 100000}`;
interface Node {
  id: number;
  name: string;
  port: number;
  bihaPort: number;
  httpPort: number;
  etc: string;
  data: string;
}
const base = claimPorts(27500, 20);
const nodes: Node[] = [1, 2].map((id) => {
  const name = `${tag}n${id}`;
  const port = base + (id - 1) * 10;
  return { id, name, port, bihaPort: port + 1, httpPort: port + 2, etc: `/etc/postgresql/15/${name}`, data: `/var/lib/postgresql/15/${name}` };
});
const n1 = nodes[0]!;
const n2 = nodes[1]!;
const created: Node[] = [];

async function run(cmd: string, args: string[]): Promise<string> {
  const r = await pexec(cmd, args, { timeout: 180_000, maxBuffer: 16 << 20 });
  return r.stdout;
}

/** Names of the clusters pg_lsclusters lists for PostgreSQL 15. */
async function clusters15(): Promise<string[]> {
  const out = await run('pg_lsclusters', ['--no-header']);
  return out.split('\n').map((l) => l.trim().split(/\s+/)).filter((f) => f[0] === '15').map((f) => f[1]!);
}

/** psql as the postgres OS user with no -h: libpq's default socket directory, Debian's /var/run/postgresql. */
async function psql(n: Node, sql: string, db = 'postgres'): Promise<string> {
  const r = await asPostgres(`${PG_BIN}/psql`, ['-X', '-At', '-v', 'ON_ERROR_STOP=1', '-p', String(n.port), '-d', db, '-c', sql], {}, 30_000);
  if (r.code !== 0) throw new Error(`psql on port ${n.port} failed: ${r.stderr.trim()}`);
  return r.stdout.trim();
}

async function status(n: Node): Promise<StatusFile> {
  const r = await bihactl(['status', `--pgdata=${n.etc}`, '--json'], {}, 10_000);
  if (r.code !== 0) throw new Error(`status of node ${n.id}: ${r.stderr}`);
  return JSON.parse(r.stdout) as StatusFile;
}

async function waitState(n: Node, state: string, timeoutMs = 120_000): Promise<void> {
  await waitFor(`node ${n.id} in ${state}`, async () => (await status(n)).status.find((x) => x.id === n.id)?.state === state, timeoutMs, 250);
}

async function waitStreaming(n: Node): Promise<void> {
  await waitState(n, 'FOLLOWER');
  await waitFor(`node ${n.id} to stream WAL`, async () => (await psql(n, 'select status from pg_stat_wal_receiver')) === 'streaming', 120_000, 250);
}

function pidFrom(file: string): number | null {
  try {
    return Number(fs.readFileSync(file, 'utf8').split('\n')[0]!.trim()) || null;
  } catch {
    return null;
  }
}

/** A PID only if its command line names our data directory (or it is our postmaster). */
function killOwn(pid: number | null, n: Node): void {
  if (!pid) return;
  try {
    if (!fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(n.data)) return;
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone
  }
}

/** kill -9 of node n's controller, its watchdog and its postmaster. */
function kill9(n: Node): void {
  killOwn(pidFrom(path.join(n.data, 'pg_biha', 'controller.pid')), n);
  killOwn(pidFrom(path.join(n.data, 'pg_biha', 'watchdog.pid')), n);
  killOwn(pidFrom(path.join(n.data, 'postmaster.pid')), n);
}

let magic = '';

beforeAll(async () => {
  if (!asRoot) return;
  ensureBuilt();
  const existing = await clusters15();
  for (const n of nodes) {
    if (existing.includes(n.name) || fs.existsSync(n.etc) || fs.existsSync(n.data))
      throw new Error(`a cluster 15/${n.name} exists already; it is not this run's, so it is left alone`);
  }
}, 60_000);

afterAll(async () => {
  for (const n of created) {
    if (fs.existsSync(path.join(n.data, 'pg_biha', 'biha.conf'))) await bihactl(['stop', `--pgdata=${n.data}`], {}, 60_000);
    kill9(n);
  }
  await sleep(300);
  for (const n of created) {
    await pexec('pg_dropcluster', ['--stop', '15', n.name], { timeout: 120_000 }).catch(() => undefined);
    for (const d of [n.etc, n.data]) fs.rmSync(d, { recursive: true, force: true });
    for (const e of fs.readdirSync(path.dirname(n.data))) {
      if (e.startsWith(`${n.name}.biha-`) || e.startsWith(`${n.name}.old-`)) fs.rmSync(path.join(path.dirname(n.data), e), { recursive: true, force: true });
    }
  }
}, 180_000);

describe.skipIf(!asRoot)("Debian's layout (pg_createcluster, pg_ctlcluster)", () => {
  it('bihactl init --convert takes the /etc configuration directory of a stopped cluster and keeps its data and configuration', async () => {
    await run('pg_createcluster', ['15', n1.name, '-p', String(n1.port), '--start']);
    created.push(n1);
    await psql(n1, "create table before_biha (v text); insert into before_biha values ('made by Debian')");
    await run('pg_ctlcluster', ['15', n1.name, 'stop']);
    const mainConf = fs.readFileSync(path.join(n1.etc, 'postgresql.conf'), 'utf8');

    // An existing cluster's configuration is refused without --convert, before anything is written.
    const noConvert = await bihactl(initArgs().filter((a) => a !== '--convert'));
    expect(noConvert.code).toBe(2);
    expect(noConvert.stderr).toContain('add --convert');
    expect(fs.existsSync(path.join(n1.data, 'pg_biha'))).toBe(false);

    // Running clusters are refused with Debian's own way to stop them.
    await run('pg_ctlcluster', ['15', n1.name, 'start']);
    const refused = await bihactl(initArgs());
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain(`pg_ctlcluster 15 ${n1.name} stop`);
    await run('pg_ctlcluster', ['15', n1.name, 'stop']);

    const r = await bihactl(initArgs());
    expect(r.code, r.stderr).toBe(0);
    magic = r.stdout.trim();
    expect(r.stderr).toContain(`systemctl disable --now postgresql@15-${n1.name}`);
    // biha's settings in conf.d/, nothing edited in the DBA's postgresql.conf, nothing in the data directory.
    expect(fs.readFileSync(path.join(n1.etc, 'postgresql.conf'), 'utf8')).toBe(mainConf);
    expect(fs.readFileSync(path.join(n1.etc, 'conf.d', 'postgresql.biha.conf'), 'utf8')).toMatch(/^biha\.id = 1$/m);
    expect(fs.readFileSync(path.join(n1.etc, 'pg_hba.conf'), 'utf8').startsWith('# BEGIN biha')).toBe(true);
    for (const f of ['postgresql.conf', 'pg_hba.conf', 'postgresql.biha.conf']) expect(fs.existsSync(path.join(n1.data, f))).toBe(false);

    await bihaOk(['start', `--pgdata=${n1.etc}`]);
    await waitState(n1, 'LEADER_RW');
    expect(await psql(n1, 'select v from before_biha')).toBe('made by Debian');
    // PostgreSQL reads the /etc configuration, biha's file included, and keeps Debian's socket directory.
    expect(await psql(n1, "select current_setting('config_file') || ' ' || current_setting('hba_file') || ' ' || current_setting('data_directory')")).toBe(
      `${n1.etc}/postgresql.conf ${n1.etc}/pg_hba.conf ${n1.data}`,
    );
    expect(await psql(n1, "select current_setting('unix_socket_directories') || ' ' || current_setting('biha.id')")).toBe('/var/run/postgresql 1');
    // Debian's tools see the cluster that biha runs.
    expect(await run('pg_lsclusters', ['--no-header', '15', n1.name])).toMatch(/\bonline\b/);
  });

  it('bihactl add makes a second pg_createcluster cluster a follower: the copy in its data directory, its configuration in /etc', async () => {
    await run('pg_createcluster', ['15', n2.name, '-p', String(n2.port)]);
    created.push(n2);
    const notEmpty = await bihactl(addArgs());
    expect(notEmpty.code).not.toBe(0);
    expect(notEmpty.stderr).toContain(`empty ${n2.data}`);
    for (const e of fs.readdirSync(n2.data)) fs.rmSync(path.join(n2.data, e), { recursive: true, force: true });

    const r = await bihactl(addArgs());
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`systemctl disable --now postgresql@15-${n2.name}`);
    expect(fs.readFileSync(path.join(n2.etc, 'conf.d', 'postgresql.biha.conf'), 'utf8')).toMatch(/^biha\.id = 2$/m);
    expect(fs.readFileSync(path.join(n2.etc, 'postgresql.conf'), 'utf8')).toContain(`data_directory = '${n2.data}'`);
    for (const f of ['postgresql.conf', 'postgresql.biha.conf']) expect(fs.existsSync(path.join(n2.data, f))).toBe(false);

    await bihaOk(['start', `--pgdata=${n2.data}`]);
    await waitStreaming(n2);
    expect(await psql(n2, 'select v from before_biha')).toBe('made by Debian');
    await psql(n1, "insert into before_biha values ('after add')");
    await waitFor('the row on node 2', async () => (await psql(n2, "select count(*) from before_biha where v = 'after add'")) === '1', 60_000, 250);
    expect(await psql(n2, "select current_setting('config_file') || ' ' || current_setting('biha.id')")).toBe(`${n2.etc}/postgresql.conf 2`);
  });

  it('switches over to node 2, fails over to node 1 when node 2 crashes with WAL of its own, and node 2 rewinds', async () => {
    await bihaOk(['set-leader', `--pgdata=${n1.etc}`, '--id=2']);
    await waitState(n2, 'LEADER_RW');
    await waitStreaming(n1);
    await psql(n2, "insert into before_biha values ('on node 2')");
    await waitFor('the row on node 1', async () => (await psql(n1, "select count(*) from before_biha where v = 'on node 2'")) === '1', 60_000, 250);

    // biha.autorewind in node 2's conf.d/postgresql.biha.conf: the controller reads it there.
    const bihaConf = path.join(n2.etc, 'conf.d', 'postgresql.biha.conf');
    fs.writeFileSync(bihaConf, fs.readFileSync(bihaConf, 'utf8').replace(/^biha\.autorewind\s*=.*$/m, 'biha.autorewind = true'));
    // Node 2 commits rows node 1 never receives (node 1 cannot log in to stream meanwhile), then crashes.
    const pgpass = path.join(n1.data, 'pg_biha', 'pgpass');
    fs.renameSync(pgpass, `${pgpass}.aside`);
    try {
      await psql(n1, "alter system set primary_conninfo = ''");
      await psql(n1, 'select pg_reload_conf()');
      await waitFor('node 1 to stop streaming', async () => (await psql(n2, 'select count(*) from pg_stat_replication')) === '0', 60_000, 250);
      await psql(n2, 'create table only_on_node2 as select generate_series(1, 1000) as id');
      kill9(n2);
    } finally {
      fs.renameSync(`${pgpass}.aside`, pgpass);
    }
    await waitState(n1, 'LEADER_RW');
    // The promotion may still be finishing when the status says LEADER_RW: the write is retried.
    await waitFor('a write on node 1', async () => (await psql(n1, "insert into before_biha values ('after failover') returning 'ok'")).split('\n')[0] === 'ok', 60_000, 250);

    // Node 2 comes back crashed and diverged: crash recovery in single-user mode and pg_rewind, both
    // with the /etc configuration, then it follows node 1.
    await bihaOk(['start', `--pgdata=${n2.etc}`]);
    await waitStreaming(n2);
    await waitFor('the row on node 2', async () => (await psql(n2, "select count(*) from before_biha where v = 'after failover'")) === '1', 60_000, 250);
    expect(await psql(n2, 'select count(*) from before_biha')).toBe('4');
    expect(await psql(n2, "select to_regclass('only_on_node2') is null")).toBe('t');
    expect(await psql(n2, "select current_setting('config_file')")).toBe(`${n2.etc}/postgresql.conf`);
  });

  it('bihactl reinit copies node 2 again into its data directory and keeps its /etc configuration', async () => {
    const r = await bihactl(['reinit', `--pgdata=${n2.etc}`, '--no-keep']);
    expect(r.code, r.stderr).toBe(0);
    expect(fs.existsSync(path.join(n2.data, 'postgresql.conf'))).toBe(false);
    expect(fs.readFileSync(path.join(n2.etc, 'conf.d', 'postgresql.biha.conf'), 'utf8')).toMatch(/^biha\.id = 2$/m);
    await bihaOk(['start', `--pgdata=${n2.etc}`]);
    await waitStreaming(n2);
    await psql(n1, "insert into before_biha values ('after reinit')");
    await waitFor('the row on node 2', async () => (await psql(n2, "select count(*) from before_biha where v = 'after reinit'")) === '1', 60_000, 250);
    expect(await psql(n2, "select current_setting('config_file') || ' ' || current_setting('biha.id')")).toBe(`${n2.etc}/postgresql.conf 2`);
  });
});

function initArgs(): string[] {
  return [
    'init', '--convert', `--pgdata=${n1.etc}`, '--biha-node-id=1', '--host=127.0.0.1',
    `--port=${n1.port}`, `--biha-port=${n1.bihaPort}`, `--http-port=${n1.httpPort}`, '--nquorum=1', '--minnodes=1',
  ];
}

function addArgs(): string[] {
  return [
    'add', `--pgdata=${n2.etc}`, '--biha-node-id=2', '--host=127.0.0.1',
    `--port=${n2.port}`, `--biha-port=${n2.bihaPort}`, `--http-port=${n2.httpPort}`, `--magic-string=${magic}`,
  ];
}
