// bihactl lifecycle commands on one real three-node cluster: status (table, JSON, watch), conninfo
// (the printed URIs reach the leader, also after a switchover), drain/rejoin (a rolling upgrade
// step) and backup (from a follower, one at a time cluster-wide, never into a non-empty directory).
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIHACTL, PASSWORD, PG_BIN, TestCluster, asPostgres, bihaOk, bihactl, waitFor } from '../helpers/cluster.js';
import { connectMultiHost, parseMultiHostUri } from '../../src/client/multihost.js';

interface Member {
  id: number;
  self: boolean;
  host: string;
  port: number;
  role: string;
  state: string;
  term: number;
  lag_bytes: number | null;
}
interface View {
  cluster_id: string;
  leader_id: number | null;
  nodeId: number;
  members: Member[];
  config: { nquorum: number; minnodes: number };
}

/** psql as the postgres OS user through a connection URI; returns "port|in_recovery". */
async function psqlUri(uri: string): Promise<string> {
  const r = await asPostgres(`${PG_BIN}/psql`, ['-X', '-At', '-v', 'ON_ERROR_STOP=1', '-d', uri, '-c', 'select inet_server_port(), pg_is_in_recovery()'], { PGPASSWORD: PASSWORD }, 30_000);
  if (r.code !== 0) throw new Error(`psql ${uri}: ${r.stderr.trim()}`);
  return r.stdout.trim();
}

async function insertRow(c: TestCluster, v: string): Promise<void> {
  const { client } = await connectMultiHost(parseMultiHostUri(c.connString()));
  try {
    await client.query('insert into drained (v) values ($1)', [v]);
  } finally {
    await client.end();
  }
}

describe('bihactl status, conninfo, drain/rejoin and backup on a three-node cluster', () => {
  const c = new TestCluster({ nodes: 3, basePort: 22000 });
  const backups = (): string => path.join(c.dir, 'backups');

  beforeAll(async () => {
    await c.create();
    const l = await c.waitLeader();
    await c.sql(l, 'create table drained (v text primary key)');
    fs.mkdirSync(backups(), { mode: 0o755 });
  }, 240_000);

  afterAll(async () => {
    await c.destroy();
  }, 120_000);

  it('status prints a table with the cluster id, leader, quorum settings and one row per node; --json has the same data', async () => {
    const l = await c.waitLeader();
    const j = await bihaOk(['status', `--pgdata=${c.pgdata(2)}`, '--json']);
    const v = JSON.parse(j.stdout) as View;
    expect(v.nodeId).toBe(2);
    expect(v.leader_id).toBe(l);
    expect(v.cluster_id).toMatch(/\S{6,}/);
    expect(v.members.map((m) => m.id)).toEqual([1, 2, 3]);
    for (const m of v.members) {
      expect(`${m.host}:${m.port}`).toBe(`127.0.0.1:${c.port(m.id)}`);
      expect(m.role).toBe(m.id === l ? 'leader' : 'follower');
      expect(m.self).toBe(m.id === 2);
    }
    expect(v.members.find((m) => m.id === l)!.state).toBe('LEADER_RW');

    const t = await bihaOk(['status', `--pgdata=${c.pgdata(2)}`]);
    const lines = t.stdout.trimEnd().split('\n');
    expect(lines[0]).toContain(`Cluster ${v.cluster_id}`);
    expect(lines[0]).toContain(`leader ${l}`);
    expect(lines[0]).toMatch(/nquorum 2, minnodes 2/);
    expect(lines[2]).toMatch(/Node .*Host:Port .*State .*Leader .*Role .*Term .*Lag .*Since last HB/);
    for (const m of v.members) {
      const row = lines.find((x) => x.startsWith(`| ${m.id}`));
      expect(row, `a row for node ${m.id}`).toBeDefined();
      expect(row).toContain(`127.0.0.1:${c.port(m.id)}`);
      const cells = row!.split('|').slice(1, -1).map((x) => x.trim());
      expect(cells.slice(1, 5)).toEqual([`127.0.0.1:${c.port(m.id)}`, m.state, String(l), m.id === l ? 'leader' : 'follower']);
    }
    expect(lines.find((x) => x.startsWith('| 2*'))).toBeDefined();

    // Service mode shows in the header while it is on.
    await c.sql(l, 'select biha.service_mode(true)');
    try {
      const sm = await waitFor('SERVICE MODE in the header', async () => {
        const r = await bihactl(['status', `--pgdata=${c.pgdata(2)}`]);
        return r.stdout.split('\n')[0]!.includes('SERVICE MODE on') ? r : null;
      }, 30_000, 250);
      expect(sm.code).toBe(0);
    } finally {
      await c.sql(l, 'select biha.service_mode(false)');
    }
    await waitFor('SERVICE MODE gone', async () => !(await bihactl(['status', `--pgdata=${c.pgdata(2)}`])).stdout.includes('SERVICE MODE'), 30_000, 250);
  }, 120_000);

  it('status --watch redraws and stops after --count refreshes, as text and as one JSON document per line', async () => {
    const w = await bihaOk(['status', `--pgdata=${c.pgdata(1)}`, '--watch=0.2', '--count=3']);
    expect(w.stdout.match(/^\+ Cluster /gm)).toHaveLength(3);
    expect(w.stdout).toMatch(/3\/3\)/);
    const wj = await bihaOk(['status', `--pgdata=${c.pgdata(1)}`, '--json', '--watch', '0.2', '--count', '2']);
    const docs = wj.stdout.trim().split('\n').map((x) => JSON.parse(x) as View);
    expect(docs).toHaveLength(2);
    for (const d of docs) expect(d.members).toHaveLength(3);
    const bad = await bihactl(['status', `--pgdata=${c.pgdata(1)}`, '--watch=0', '--count=1']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^bihactl: --watch must be a number of seconds/);
  }, 60_000);

  it('conninfo prints a read-write and a read-only URI over every data node; the read-write one reaches the leader, also after a switchover', async () => {
    const r = await bihaOk(['conninfo', `--pgdata=${c.pgdata(3)}`, '--dbname=biha_db', '--user=biha_replication_user']);
    const [rw, ro, ...rest] = r.stdout.trimEnd().split('\n');
    expect(rest).toEqual([]);
    const hosts = c.ids().map((i) => `127.0.0.1:${c.port(i)}`).join(',');
    expect(rw).toBe(`postgresql://biha_replication_user@${hosts}/biha_db?connect_timeout=2&target_session_attrs=read-write`);
    expect(ro).toBe(`postgresql://biha_replication_user@${hosts}/biha_db?connect_timeout=2&target_session_attrs=prefer-standby`);
    const j = JSON.parse((await bihaOk(['conninfo', `--pgdata=${c.pgdata(3)}`, '--dbname=biha_db', '--user=biha_replication_user', '--json'])).stdout) as { read_write: string; read_only: string; hosts: unknown[] };
    expect(j.read_write).toBe(rw);
    expect(j.read_only).toBe(ro);
    expect(j.hosts).toHaveLength(3);

    const l = await c.waitLeader();
    expect(await psqlUri(rw!)).toBe(`${c.port(l)}|f`);
    const [roPort, roRec] = (await psqlUri(ro!)).split('|');
    expect(roRec).toBe('t');
    expect(Number(roPort)).not.toBe(c.port(l));

    const to = c.ids().find((i) => i !== l)!;
    await bihaOk(['set-leader', `--pgdata=${c.pgdata(l)}`, `--id=${to}`]);
    await c.waitLeader({ not: l });
    expect(await waitFor('the read-write URI to reach the new leader', async () => {
      const out = await psqlUri(rw!);
      return out === `${c.port(to)}|f` ? out : null;
    }, 60_000, 500)).toBe(`${c.port(to)}|f`);
  }, 120_000);

  /** rejoin brings node i back as a streaming follower of `leader` that has the row `v`. */
  async function rejoined(i: number, leader: number, v: string): Promise<void> {
    const r = await bihactl(['rejoin', `--pgdata=${c.pgdata(i)}`, '--wait=120']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(new RegExp(`node ${i} is a streaming follower of the leader, node ${leader}`));
    const s = await c.waitState(i, 'FOLLOWER');
    expect(s.status.find((x) => x.id === i)!.leader_id).toBe(leader);
    await waitFor(`node ${i} to have the row written while it was down`, async () =>
      (await c.sql<{ v: string }>(i, 'select v from drained where v = $1', [v])).length === 1, 30_000, 250);
  }

  it('drain of the leader hands the leadership over and stops the node; writes go on; rejoin makes it a follower with the rows it missed', async () => {
    const l = await c.waitLeader();
    const d = await bihactl(['drain', `--pgdata=${c.pgdata(l)}`, '--drain-secs=60']);
    expect(d.code, d.stderr).toBe(0);
    expect(d.stderr).toMatch(/handing the leadership over to node \d+/);
    expect(c.controllerPid(l)).toBeNull();
    expect(c.postmasterPid(l)).toBeNull();
    const others = c.ids().filter((i) => i !== l);
    const nl = await c.waitLeader({ from: others[0]!, not: l });
    expect(others).toContain(nl);
    expect(d.stderr).toContain(`node ${nl} is LEADER_RW`);
    await insertRow(c, 'while-leader-down');
    await rejoined(l, nl, 'while-leader-down');
    expect(await c.waitLeader()).toBe(nl);
  }, 180_000);

  it('drain of a follower just stops it; rejoin brings it back', async () => {
    const l = await c.waitLeader();
    const f = c.ids().find((i) => i !== l)!;
    const d = await bihactl(['drain', `--pgdata=${c.pgdata(f)}`]);
    expect(d.code, d.stderr).toBe(0);
    expect(d.stderr).not.toMatch(/handing/);
    expect(c.controllerPid(f)).toBeNull();
    expect(c.postmasterPid(f)).toBeNull();
    expect(await c.leader(l)).toBe(l);
    await insertRow(c, 'while-follower-down');
    await rejoined(f, l, 'while-follower-down');
  }, 180_000);

  it('drain refuses to stop the leader when no other node may take over, and the node keeps running; --force stops it', async () => {
    const l = await c.waitLeader();
    const others = c.ids().filter((i) => i !== l);
    for (const i of others) await c.sql(l, `select biha.set_can_be_leader(${i}, false)`);
    try {
      const r = await bihactl(['drain', `--pgdata=${c.pgdata(l)}`, '--drain-secs=3']);
      expect(r.code).toBe(3);
      expect(r.stdout).toBe('');
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/^bihactl: node \d+ is the leader and no other node can take over within --drain-secs 3 s \(.*has can_be_leader off.*\); the node keeps running \(.*--force.*\)\n$/);
      expect(c.controllerPid(l)).not.toBeNull();
      expect(c.postmasterPid(l)).not.toBeNull();
      expect(await c.leader(l)).toBe(l);

      // --force stops it anyway; rejoin brings it back, and as the only node that may lead it leads again.
      const f = await bihactl(['drain', `--pgdata=${c.pgdata(l)}`, '--drain-secs=3', '--force']);
      expect(f.code, f.stderr).toBe(0);
      expect(f.stderr).toMatch(/--force: stopping the leader anyway/);
      expect(c.controllerPid(l)).toBeNull();
      expect(c.postmasterPid(l)).toBeNull();
      const back = await bihactl(['rejoin', `--pgdata=${c.pgdata(l)}`, '--wait=120']);
      expect(back.code, back.stderr).toBe(0);
      expect(back.stderr).toMatch(new RegExp(`node ${l} is back and is the leader`));
      expect(await c.waitLeader()).toBe(l);
    } finally {
      for (const i of others) await c.sql(await c.waitLeader(), `select biha.set_can_be_leader(${i}, true)`);
    }
  }, 240_000);

  it('backup copies a streaming follower into a new directory: a valid data directory with a verified manifest', async () => {
    const l = await c.waitLeader();
    const target = path.join(backups(), 'b1');
    const r = await bihactl(['backup', `--pgdata=${c.pgdata(l)}`, `--target=${target}`]);
    expect(r.code, r.stderr).toBe(0);
    const src = Number(/copying node (\d+)/.exec(r.stderr)?.[1]);
    expect(c.ids()).toContain(src);
    expect(src).not.toBe(l);
    for (const f of ['PG_VERSION', 'backup_label', 'backup_manifest', 'global/pg_control']) expect(fs.existsSync(path.join(target, f)), f).toBe(true);
    expect(fs.readFileSync(path.join(target, 'PG_VERSION'), 'utf8').trim()).toBe('15');
    const v = await asPostgres(`${PG_BIN}/pg_verifybackup`, [target]);
    expect(v.code, v.stderr).toBe(0);
    // Detached from the cluster: started by itself it would not stream from it or use a node's slot.
    expect(fs.existsSync(path.join(target, 'standby.signal'))).toBe(false);
    expect(fs.readFileSync(path.join(target, 'postgresql.auto.conf'), 'utf8')).not.toMatch(/primary_conninfo|primary_slot_name/);
  }, 120_000);

  it('backup refuses a non-empty target and leaves it as it was', async () => {
    const target = path.join(backups(), 'full');
    fs.mkdirSync(target);
    fs.writeFileSync(path.join(target, 'keep.txt'), 'mine\n');
    const r = await bihactl(['backup', `--pgdata=${c.pgdata(1)}`, `--target=${target}`]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^bihactl: --target \S+ is not empty; refusing to overwrite it \(give a new or empty directory\)\n$/);
    expect(fs.readdirSync(target)).toEqual(['keep.txt']);
  }, 60_000);

  it('two concurrent backups: exactly one runs, the other backs off at once naming the lock holder; the lock is free again afterwards', async () => {
    const targets = [path.join(backups(), 'c2'), path.join(backups(), 'c3')];
    // A throttled copy keeps the first backup running for several seconds.
    const [r2, r3] = await Promise.all([
      bihactl(['backup', `--pgdata=${c.pgdata(2)}`, `--target=${targets[0]}`, '--max-rate=2M']),
      bihactl(['backup', `--pgdata=${c.pgdata(3)}`, `--target=${targets[1]}`, '--max-rate=2M']),
    ]);
    const results = [r2, r3];
    const ok = results.filter((r) => r.code === 0);
    const failed = results.filter((r) => r.code !== 0);
    expect(ok, results.map((r) => r.stderr).join('\n')).toHaveLength(1);
    expect(failed).toHaveLength(1);
    const winner = results.indexOf(ok[0]!) + 2;
    expect(failed[0]!.code).toBe(3);
    expect(failed[0]!.stderr).toMatch(new RegExp(`^bihactl: another backup is running: node ${winner} holds the cluster backup lock \\(taken \\d+ s ago, expires in \\d+ s unless renewed\\) \\(try again when that backup has finished\\)\\n$`));
    const loserTarget = targets[winner === 2 ? 1 : 0]!;
    expect(!fs.existsSync(loserTarget) || fs.readdirSync(loserTarget).length === 0).toBe(true);
    expect(fs.existsSync(path.join(targets[winner - 2]!, 'PG_VERSION'))).toBe(true);

    // Released, not expired: a third backup right away succeeds.
    const third = await bihactl(['backup', `--pgdata=${c.pgdata(winner === 2 ? 3 : 2)}`, `--target=${path.join(backups(), 'b3')}`]);
    expect(third.code, third.stderr).toBe(0);
    expect(fs.existsSync(path.join(backups(), 'b3', 'backup_manifest'))).toBe(true);
  }, 180_000);

  it('an interrupted backup cleans its target and releases the lock at once', async () => {
    const target = path.join(backups(), 'interrupted');
    const child = spawn(process.execPath, [BIHACTL, 'backup', `--pgdata=${c.pgdata(1)}`, `--target=${target}`, '--max-rate=1M'], {
      env: { ...process.env, BIHA_REPLICATION_PASSWORD: PASSWORD },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => (stderr += d));
    const exited = new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? -1)));
    try {
      await waitFor('the backup to start copying', async () => /copying node \d+/.test(stderr), 60_000, 100);
      // While it runs the lock is taken.
      const busy = await bihactl(['backup', `--pgdata=${c.pgdata(2)}`, `--target=${path.join(backups(), 'busy')}`]);
      expect(busy.code).toBe(3);
      expect(busy.stderr).toMatch(/another backup is running: node 1 holds the cluster backup lock/);
      child.kill('SIGINT');
      expect(await exited).toBe(1);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    expect(stderr).toMatch(/bihactl: backup stopped: interrupted; \S+ was cleaned up\n$/);
    expect(fs.existsSync(target)).toBe(false);
    const after = await bihactl(['backup', `--pgdata=${c.pgdata(2)}`, `--target=${path.join(backups(), 'after')}`]);
    expect(after.code, after.stderr).toBe(0);
  }, 120_000);
});
