// bihactl reinit on real PostgreSQL 15: a fresh copy of a follower from the leader that keeps the
// node's identity and its own configuration; refused on the leader; a node in NODE_ERROR back with
// --no-keep. Also biha's limit on the WAL a slot holds (max_slot_wal_keep_size) and the slot metrics.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { TestCluster, bihaOk, bihactl, waitFor } from '../helpers/cluster.js';
import { useCluster } from '../helpers/suite.js';

const c = new TestCluster({ nodes: 3, basePort: 24300 });

function bihaConf(i: number): string {
  return fs.readFileSync(path.join(c.pgdata(i), 'postgresql.biha.conf'), 'utf8');
}

/** Entries of the cluster directory that a reinit of node i left beside its data directory. */
function leftBeside(i: number, suffix: string): string[] {
  return fs.readdirSync(c.dir).filter((n) => n.startsWith(`n${i}${suffix}`));
}

async function rowsOn(i: number): Promise<number> {
  const r = await c.su<{ n: string }>(i, 'select count(*) as n from reinit_rows', 'biha_db');
  return Number(r[0]?.n);
}

async function metricsOf(i: number): Promise<string> {
  return await fetch(`http://127.0.0.1:${c.port(i) + 2}/metrics`).then((r) => r.text());
}

/**
 * The last follower (streaming), with a wrong replication password in its pg_biha/pgpass, so that
 * a copy from the leader fails; `good` is the file as it was.
 */
async function followerWithWrongPassword(): Promise<{ l: number; f: number; dir: string; passfile: string; good: string }> {
  const l = await c.waitLeader();
  const f = c.ids().filter((i) => i !== l).at(-1)!;
  const dir = c.pgdata(f);
  await c.waitStreaming(f);
  const passfile = path.join(dir, 'pg_biha', 'pgpass');
  const good = fs.readFileSync(passfile, 'utf8');
  fs.writeFileSync(passfile, good.replace(/:[^:\n]*\n$/, ':not-the-password\n'));
  return { l, f, dir, passfile, good };
}

describe('bihactl reinit', () => {
  useCluster(c);

  it("writes max_slot_wal_keep_size into postgresql.biha.conf when the DBA has not set it, and it is in effect", async () => {
    const l = await c.waitLeader();
    expect(bihaConf(l)).toMatch(/^max_slot_wal_keep_size = '8GB'/m);
    const r = await c.su<{ max_slot_wal_keep_size: string }>(l, 'show max_slot_wal_keep_size');
    expect(r[0]?.max_slot_wal_keep_size).toBe('8GB');
  });

  it("exposes the WAL each follower's slot holds and its wal_status in /metrics", async () => {
    const l = await c.waitLeader();
    const f = c.ids().find((i) => i !== l)!;
    await c.waitStreaming(f);
    const text = await waitFor('the slot metrics of the leader', async () => {
      const t = await metricsOf(l);
      return new RegExp(`^biha_slot_wal_status\\{[^}]*slot="biha_node_${f}"[^}]*wal_status="reserved"[^}]*\\} 1$`, 'm').test(t) ? t : null;
    });
    expect(text).toMatch(new RegExp(`^biha_slot_retained_wal_bytes\\{[^}]*slot="biha_node_${f}"[^}]*\\} \\d+$`, 'm'));
    expect(text).toMatch(new RegExp(`^biha_slot_active\\{[^}]*slot="biha_node_${f}"[^}]*\\} 1$`, 'm'));
    expect(text).toMatch(new RegExp(`^biha_slot_wal_status\\{[^}]*slot="biha_node_${f}"[^}]*wal_status="lost"[^}]*\\} 0$`, 'm'));
  });

  it('refuses on the leader with one line and changes nothing', async () => {
    const l = await c.waitLeader();
    const pid = c.controllerPid(l);
    const r = await bihactl(['reinit', `--pgdata=${c.pgdata(l)}`]);
    expect(r.code).toBe(3);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(new RegExp(`node ${l} is the leader.*bihactl set-leader`));
    expect(c.controllerPid(l)).toBe(pid);
    expect(leftBeside(l, '.')).toEqual([]);
    expect((await c.status(l)).status.find((s) => s.id === l)?.state).toBe('LEADER_RW');
  });

  it("re-copies a running follower: the old data kept aside, the node's identity and settings kept, streaming again with the rows written meanwhile", async () => {
    const l = await c.waitLeader();
    const f = c.ids().find((i) => i !== l)!;
    const dir = c.pgdata(f);
    await c.su(l, 'create table reinit_rows (id int)', 'biha_db');
    await c.su(l, 'insert into reinit_rows select generate_series(1, 100)', 'biha_db');
    // The DBA's own settings on this node, and a file the copy must not keep (its data is replaced).
    fs.appendFileSync(path.join(dir, 'postgresql.conf'), "\nmax_slot_wal_keep_size = '1GB'\ninclude_if_exists 'dba-local.conf'\n");
    fs.writeFileSync(path.join(dir, 'dba-local.conf'), 'work_mem = 7MB\n');
    fs.writeFileSync(path.join(dir, 'base', 'not-from-the-leader'), 'x');
    const before = fs.readFileSync(path.join(dir, 'pg_biha', 'biha.conf'), 'utf8');

    const r = await bihaOk(['reinit', `--pgdata=${dir}`]);
    expect(r.stderr).toMatch(/stopping node/);
    expect(r.stderr).toMatch(/pg_basebackup/);
    expect(r.stderr).toContain(`start it with: bihactl start --pgdata=${dir}`);
    expect(c.controllerPid(f) === null || !fs.existsSync(`/proc/${c.controllerPid(f)}`)).toBe(true);

    const old = leftBeside(f, '.old-');
    expect(old).toHaveLength(1);
    expect(fs.existsSync(path.join(c.dir, old[0]!, 'base', 'not-from-the-leader'))).toBe(true);
    expect(fs.existsSync(path.join(dir, 'base', 'not-from-the-leader'))).toBe(false);
    expect(leftBeside(f, '.biha-reinit')).toEqual([]);
    expect(fs.readFileSync(path.join(dir, 'pg_biha', 'biha.conf'), 'utf8')).toBe(before);
    expect(fs.existsSync(path.join(dir, 'standby.signal'))).toBe(true);
    expect(fs.existsSync(path.join(dir, 'dba-local.conf'))).toBe(true);
    // The DBA set max_slot_wal_keep_size on this node: biha's file leaves it alone.
    expect(bihaConf(f)).not.toMatch(/^max_slot_wal_keep_size/m);
    expect(bihaConf(f)).toMatch(new RegExp(`^port = ${c.port(f)}`, 'm'));

    // Rows written while the node is down are there once it streams.
    await c.su(l, 'insert into reinit_rows select generate_series(101, 200)', 'biha_db');
    await bihaOk(['start', `--pgdata=${dir}`]);
    await c.waitStreaming(f);
    await waitFor('all rows on the re-copied node', async () => (await rowsOn(f)) === 200);
    const st = await c.status(f);
    expect(st.nodeId).toBe(f);
    expect(st.error.type).toBe('NO_ERROR');
    const s = await c.su<{ slot: string; work_mem: string }>(f, "select current_setting('max_slot_wal_keep_size') as slot, current_setting('work_mem') as work_mem");
    expect(s[0]).toEqual({ slot: '1GB', work_mem: '7MB' });
    fs.rmSync(path.join(c.dir, old[0]!), { recursive: true, force: true });
  });

  it('puts the old data back when the copy fails, and says so', async () => {
    const { l, f, dir, passfile, good } = await followerWithWrongPassword();
    const before = fs.readFileSync(path.join(dir, 'pg_biha', 'biha.conf'), 'utf8');

    const r = await bihactl(['reinit', `--pgdata=${dir}`]);
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split('\n').at(-1)).toMatch(/the copy for node \d+ failed: .*password authentication failed.*the old data of .* is back in place, unchanged \(the node is stopped\)/);
    expect(leftBeside(f, '.')).toEqual([]);
    expect(fs.existsSync(path.join(dir, 'PG_VERSION'))).toBe(true);
    expect(fs.readFileSync(path.join(dir, 'pg_biha', 'biha.conf'), 'utf8')).toBe(before);

    fs.writeFileSync(passfile, good);
    await bihaOk(['start', `--pgdata=${dir}`]);
    await c.waitStreaming(f);
    await waitFor('the rows on the node', async () => (await rowsOn(f)) === 200);
  });

  it("a stopped member's slot past max_slot_wal_keep_size is lost, shows so in /metrics, and reinit brings the member back", async () => {
    const l = await c.waitLeader();
    const f = c.ids().find((i) => i !== l)!;
    await c.waitStreaming(f);
    await bihaOk(['stop', `--pgdata=${c.pgdata(f)}`]);
    // The DBA's limits on the leader: one segment for slots, no wal_keep_size to hold WAL instead.
    await c.su(l, "alter system set max_slot_wal_keep_size = '16MB'");
    await c.su(l, "alter system set wal_keep_size = '0'");
    await c.su(l, 'select pg_reload_conf()');
    try {
      for (let k = 0; k < 6; k++) {
        await c.su(l, `insert into reinit_rows select generate_series(${201 + k * 10}, ${210 + k * 10})`, 'biha_db');
        await c.su(l, 'select pg_switch_wal()');
      }
      await c.su(l, 'checkpoint');
      const slot = await c.su<{ wal_status: string }>(l, `select wal_status from pg_replication_slots where slot_name = 'biha_node_${f}'`);
      expect(slot[0]?.wal_status).toBe('lost');
      await waitFor('the lost slot in the metrics of the leader', async () =>
        new RegExp(`^biha_slot_wal_status\\{[^}]*slot="biha_node_${f}"[^}]*wal_status="lost"[^}]*\\} 1$`, 'm').test(await metricsOf(l)),
      );

      const r = await bihaOk(['reinit', '--no-keep', `--pgdata=${c.pgdata(f)}`]);
      expect(r.stderr).not.toMatch(/stopping node/);
      const again = await c.su<{ wal_status: string }>(l, `select wal_status from pg_replication_slots where slot_name = 'biha_node_${f}'`);
      expect(again[0]?.wal_status).toBe('reserved');
      await bihaOk(['start', `--pgdata=${c.pgdata(f)}`]);
      await c.waitStreaming(f);
      await waitFor('the rows written while the member was down', async () => (await rowsOn(f)) === 260);
    } finally {
      await c.su(l, 'alter system reset max_slot_wal_keep_size');
      await c.su(l, 'alter system reset wal_keep_size');
      await c.su(l, 'select pg_reload_conf()');
    }
  });

  it('brings a diverged node out of NODE_ERROR with --no-keep', async () => {
    const old = await c.waitLeader();
    const followers = c.ids().filter((i) => i !== old);
    for (const f of followers) await c.waitStreaming(f);
    // The leader writes rows its followers never receive, then crashes; another node takes over.
    expect(await c.divergeAndCrashLeader()).toBe(old);
    const leader = await c.waitLeader({ not: old, timeoutMs: 30_000 });
    await c.su(leader, 'insert into reinit_rows select generate_series(1001, 1100)', 'biha_db');
    const total = await rowsOn(leader);
    await bihaOk(['start', `--pgdata=${c.pgdata(old)}`]);
    await c.waitState(old, 'NODE_ERROR', 60_000);

    const r = await bihaOk(['reinit', '--no-keep', `--pgdata=${c.pgdata(old)}`]);
    expect(r.stderr).toContain(`start it with: bihactl start --pgdata=${c.pgdata(old)}`);
    expect(leftBeside(old, '.')).toEqual([]);
    await bihaOk(['start', `--pgdata=${c.pgdata(old)}`]);
    await c.waitStreaming(old);
    const st = await c.status(old);
    expect(st.error.type).toBe('NO_ERROR');
    await waitFor('the rows of the new leader on the re-copied node', async () => (await rowsOn(old)) === total);
    const t = await c.su<{ t: string | null }>(old, "select to_regclass('only_on_old')::text as t", 'biha_db');
    expect(t[0]?.t).toBeNull();
  });

  it('--no-keep: a failed copy says where the identity is, and the same command continues from there', async () => {
    const { l, f, dir, passfile, good } = await followerWithWrongPassword();

    const r = await bihactl(['reinit', '--no-keep', `--pgdata=${dir}`]);
    expect(r.code).toBe(1);
    const save = `${dir}.biha-reinit`;
    expect(r.stderr.trim().split('\n').at(-1)).toContain(`holds no usable data (--no-keep deleted the old data) and the node's identity is in ${save}`);
    expect(r.stderr).toContain(`run bihactl reinit --pgdata=${dir} again: it continues from there`);
    expect(fs.existsSync(path.join(dir, 'PG_VERSION'))).toBe(false);

    // The cause fixed where the identity now is, the same command finishes the job.
    fs.writeFileSync(path.join(save, 'files', 'pg_biha', 'pgpass'), good);
    const again = await bihaOk(['reinit', '--no-keep', `--pgdata=${dir}`]);
    expect(again.stderr).toMatch(/continuing an interrupted reinit/);
    expect(fs.existsSync(save)).toBe(false);
    expect(fs.readFileSync(passfile, 'utf8')).toBe(good);
    await bihaOk(['start', `--pgdata=${dir}`]);
    await c.waitStreaming(f);
    const total = await rowsOn(l);
    await waitFor('the rows on the node', async () => (await rowsOn(f)) === total);
  });
});
