// The DBA's settings survive bihactl init --convert: biha raises only what is below its minimum
// (and says so), refuses what it cannot work with before touching anything, and the controller
// reloads on SIGHUP instead of ending. Real PostgreSQL 15, real bihactl and controller processes.
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PG_BIN, TestCluster, asPostgres, bihactl, waitFor } from '../helpers/cluster.js';

const MIN = 16;

/** A plain (non-biha) stopped data directory for node 1 of `c`, with `lines` appended to its postgresql.conf. */
async function plainDataDir(c: TestCluster, lines: string[]): Promise<void> {
  const r = await asPostgres(`${PG_BIN}/initdb`, ['-D', c.pgdata(1), '--auth-local=peer', '--auth-host=scram-sha-256']);
  expect(r.code, r.stderr).toBe(0);
  fs.appendFileSync(path.join(c.pgdata(1), 'postgresql.conf'), `\n# the DBA's own settings\n${lines.join('\n')}\n`);
}

/** Every file below dir with its mode and content hash: equal snapshots mean nothing was changed. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      const st = fs.statSync(p);
      if (e.isDirectory()) {
        out[path.relative(dir, p) + '/'] = (st.mode & 0o7777).toString(8);
        walk(p);
      } else {
        out[path.relative(dir, p)] = `${(st.mode & 0o7777).toString(8)} ${createHash('sha256').update(fs.readFileSync(p)).digest('hex')}`;
      }
    }
  };
  walk(dir);
  return out;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('init --convert keeps the DBA settings biha can work with', () => {
  const c = new TestCluster({ nodes: 1, basePort: 24100, nquorum: 1, minnodes: 1 });
  const sockDir = path.join(c.dir, 'sockets');
  afterAll(async () => {
    await c.destroy();
  }, 120_000);

  it('keeps a raised max_wal_senders and a custom unix_socket_directories, and bihactl works through that socket', async () => {
    fs.mkdirSync(sockDir, { mode: 0o755 });
    if (process.getuid?.() === 0) spawnSync('chown', ['postgres:postgres', sockDir]);
    await plainDataDir(c, ['max_wal_senders = 40', `unix_socket_directories = '${sockDir}'`]);

    const r = await c.init(['--convert']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(/max_wal_senders raised/);
    // PostgreSQL's default of 10 slots is below biha's minimum: raised, and said so.
    expect(r.stderr).toContain(`max_replication_slots raised from 10 (PostgreSQL's default) to ${MIN}`);
    const bihaConf = fs.readFileSync(path.join(c.pgdata(1), 'postgresql.biha.conf'), 'utf8');
    expect(bihaConf).not.toMatch(/^\s*(max_wal_senders|unix_socket_directories|logging_collector)\b/m);

    await c.start(1);
    await c.waitState(1, 'LEADER_RW');
    expect(c.socketDir(1)).toBe(sockDir);
    expect(fs.existsSync(path.join(sockDir, `.s.PGSQL.${c.port(1)}`))).toBe(true);
    expect(await c.su<{ max_wal_senders: string }>(1, 'show max_wal_senders')).toEqual([{ max_wal_senders: '40' }]);
    expect(await c.su<{ unix_socket_directories: string }>(1, 'show unix_socket_directories')).toEqual([{ unix_socket_directories: sockDir }]);
    expect(await c.su<{ max_replication_slots: string }>(1, 'show max_replication_slots')).toEqual([{ max_replication_slots: String(MIN) }]);
    // The controller found the server on the DBA's socket: it reports the node writable.
    const st = await c.status(1);
    expect(st.status.find((x) => x.id === 1)?.state).toBe('LEADER_RW');
  }, 240_000);

  it('SIGHUP reloads the controller: it keeps running, reopens its log file and applies a changed log level', async () => {
    const pid = c.controllerPid(1);
    expect(pid).not.toBeNull();
    const logFile = path.join(c.pgdata(1), 'pg_biha', 'log', 'controller.log');
    const rotated = `${logFile}.1`;
    const confFile = path.join(c.pgdata(1), 'postgresql.biha.conf');
    const conf = fs.readFileSync(confFile, 'utf8');
    expect(conf).toMatch(/^biha\.NodeControllerDetails_log_level = DEBUG4$/m);
    fs.writeFileSync(confFile, conf.replace(/^biha\.NodeControllerDetails_log_level = DEBUG4$/m, 'biha.NodeControllerDetails_log_level = LOG'));

    // What logrotate does: move the file away, then signal.
    fs.renameSync(logFile, rotated);
    c.signalController(1, 'SIGHUP');
    const line = await waitFor('the reload line in a new controller.log', async () => {
      if (!fs.existsSync(logFile)) return null;
      return fs.readFileSync(logFile, 'utf8').split('\n').find((l) => l.includes('reloaded on SIGHUP')) ?? null;
    }, 30_000);
    const rec = JSON.parse(line) as { msg: string; levels: Array<{ component: string; from: string; to: string }> };
    expect(rec.levels).toEqual([{ component: 'NC', from: 'info', to: 'debug' }]);
    expect(rec.msg).toMatch(/log file reopened; log levels NC info->debug/);
    expect(fs.readFileSync(rotated, 'utf8')).not.toContain('reloaded on SIGHUP');

    expect(isAlive(pid!)).toBe(true);
    expect(c.controllerPid(1)).toBe(pid);
    const st = await c.status(1);
    expect(st.status.find((x) => x.id === 1)?.state).toBe('LEADER_RW');
    const plain = await bihactl(['status', `--pgdata=${c.pgdata(1)}`]);
    expect(plain.code, plain.stderr).toBe(0);

    // A second SIGHUP with nothing changed says so, in the same (new) file.
    c.signalController(1, 'SIGHUP');
    await waitFor('a second reload line', async () =>
      fs.readFileSync(logFile, 'utf8').split('\n').some((l) => l.includes('reloaded on SIGHUP: log file reopened; log levels unchanged')));
    expect(isAlive(pid!)).toBe(true);

    // A cluster setting edited into the file is not applied by a reload: the controller says so.
    fs.appendFileSync(confFile, 'biha.heartbeat_send_period = 500\n');
    c.signalController(1, 'SIGHUP');
    const warn = await waitFor('the not-applied warning', async () =>
      fs.readFileSync(logFile, 'utf8').split('\n').find((l) => l.includes('biha.heartbeat_send_period changed in the conf file')) ?? null);
    expect(warn).toMatch(/neither a reload nor a restart applies/);
    expect(isAlive(pid!)).toBe(true);
    expect((await c.status(1)).status.find((x) => x.id === 1)?.state).toBe('LEADER_RW');
  }, 120_000);
});

describe('init --convert raises a setting below what biha needs', () => {
  const c = new TestCluster({ nodes: 1, basePort: 24130, nquorum: 1, minnodes: 1 });
  afterAll(async () => {
    await c.destroy();
  }, 120_000);

  it('raises max_wal_senders = 2 to the minimum and says so', async () => {
    await plainDataDir(c, ['max_wal_senders = 2']);
    const r = await c.init(['--convert']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`max_wal_senders raised from 2 (postgresql.conf) to ${MIN}, the minimum biha needs`);
    expect(r.stderr).toContain(`wal_log_hints raised from off (PostgreSQL's default) to on`);
    expect(fs.readFileSync(path.join(c.pgdata(1), 'postgresql.biha.conf'), 'utf8')).toMatch(new RegExp(`^max_wal_senders = ${MIN}\\s+# raised by biha from 2`, 'm'));
    // The DBA's line is left as it was.
    expect(fs.readFileSync(path.join(c.pgdata(1), 'postgresql.conf'), 'utf8')).toMatch(/^max_wal_senders = 2$/m);

    await c.start(1);
    await c.waitState(1, 'LEADER_RW');
    expect(await c.su<{ max_wal_senders: string }>(1, 'show max_wal_senders')).toEqual([{ max_wal_senders: String(MIN) }]);
    expect(await c.su<{ wal_log_hints: string }>(1, 'show wal_log_hints')).toEqual([{ wal_log_hints: 'on' }]);
  }, 240_000);
});

describe('init --convert refuses a setting biha cannot work with', () => {
  const c = new TestCluster({ nodes: 1, basePort: 24160, nquorum: 1, minnodes: 1 });
  afterAll(async () => {
    await c.destroy();
  }, 120_000);

  it('refuses wal_level = minimal with one line and changes nothing in the data directory', async () => {
    await plainDataDir(c, ['wal_level = minimal', 'max_wal_senders = 0']);
    const before = snapshot(c.pgdata(1));
    const r = await c.init(['--convert']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^bihactl: wal_level = minimal \(.*postgresql\.conf\) cannot work with biha.*replica/);
    expect(snapshot(c.pgdata(1))).toEqual(before);
  }, 120_000);
});
