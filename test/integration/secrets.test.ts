// The cluster secret on a real cluster: file modes, rotation without downtime through the config
// log, old magic strings refused afterwards, and no secret in any controller log.
import * as fs from 'node:fs';
import * as path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeMagic } from '../../src/controller/security/magic.js';
import { PASSWORD, TestCluster, bihaOk, bihactl, sleep, waitFor } from '../helpers/cluster.js';

function mode(p: string): string {
  return (fs.statSync(p).mode & 0o777).toString(8);
}

function secretsOf(c: TestCluster, i: number): string[] {
  const f = JSON.parse(fs.readFileSync(path.join(c.pgdata(i), 'pg_biha', 'biha.conf'), 'utf8')) as { data: { secrets: string[] } };
  return f.data.secrets;
}

/** Inserts a row every 100 ms on the leader until stopped; counts failures. */
function writer(c: TestCluster, leader: number): { acked: () => number; stop: () => Promise<{ ok: number; failed: string[] }> } {
  let running = true;
  const failed: string[] = [];
  let ok = 0;
  const done = (async () => {
    const cl = new pg.Client({ host: '127.0.0.1', port: c.port(leader), user: 'biha_replication_user', password: PASSWORD, database: 'biha_db', connectionTimeoutMillis: 3000 });
    await cl.connect();
    await cl.query('create table if not exists rot (n serial primary key, at timestamptz default now())');
    for (let k = 0; running && k < 5000; k++) {
      try {
        await cl.query('insert into rot default values');
        ok++;
      } catch (e) {
        failed.push(String(e));
      }
      await sleep(100);
    }
    await cl.end();
  })();
  return {
    acked: () => ok,
    stop: async () => {
      running = false;
      await done;
      return { ok, failed };
    },
  };
}

describe('the cluster secret', () => {
  const c = new TestCluster({ nodes: 4, basePort: 22600 });
  const magicFile = (name: string): string => path.join(c.dir, name);
  let m0 = '';
  let m1 = '';

  beforeAll(async () => {
    await c.create([`--magic-file=${magicFile('init.magic')}`], 3);
    m0 = c.magic;
    await c.waitLeader();
  }, 300_000);
  afterAll(async () => {
    await c.destroy();
  }, 120_000);

  it('keeps every file holding a secret private: 0600 files in a 0700 pg_biha', () => {
    expect(mode(magicFile('init.magic'))).toBe('600');
    expect(fs.readFileSync(magicFile('init.magic'), 'utf8').trim()).toBe(m0);
    for (const i of [1, 2, 3]) {
      const dir = path.join(c.pgdata(i), 'pg_biha');
      expect(mode(dir)).toBe('700');
      for (const f of ['biha.conf', 'biha.state', 'pgpass']) expect(mode(path.join(dir, f)), `${dir}/${f}`).toBe('600');
    }
  });

  it('refuses to start a node whose biha.conf is readable by others', async () => {
    await bihaOk(['stop', `--pgdata=${c.pgdata(3)}`]);
    const f = path.join(c.pgdata(3), 'pg_biha', 'biha.conf');
    fs.chmodSync(f, 0o640);
    const r = await bihactl(['start', `--pgdata=${c.pgdata(3)}`]);
    expect(r.code).toBe(3);
    expect(r.stderr).toBe(`bihactl: ${f} holds the cluster secret and is open to its group or to others (mode 0640) (run: chmod 600 ${f})\n`);
    fs.chmodSync(f, 0o600);
    await bihaOk(['start', `--pgdata=${c.pgdata(3)}`]);
    await c.waitState(3, 'FOLLOWER', 90_000);
  });

  it('rotates the secret from a follower: every node converges, no election, writes go on', async () => {
    const leader = await c.waitLeader();
    const follower = leader === 2 ? 3 : 2;
    const term0 = (await c.status(leader)).config.term;
    const old = decodeMagic(m0).secret;
    for (const i of [1, 2, 3]) expect(secretsOf(c, i)).toEqual([old]);

    const w = writer(c, leader);
    await waitFor('writes before the rotation', async () => w.acked() >= 5);
    const r = await bihactl(['rotate-secret', `--pgdata=${c.pgdata(follower)}`]);
    const before = w.acked();
    await waitFor('writes after the rotation', async () => w.acked() >= before + 5);
    const wr = await w.stop();
    expect(r.code, r.stderr).toBe(0);
    m1 = r.stdout.trim();
    expect(r.stderr).toContain('magic strings made before no longer work');
    const fresh = decodeMagic(m1).secret;
    expect(fresh).not.toBe(old);
    expect(fresh).toMatch(/^[0-9a-f]{64}$/);

    await waitFor('every node to hold only the new secret', async () => [1, 2, 3].every((i) => JSON.stringify(secretsOf(c, i)) === JSON.stringify([fresh])), 30_000);
    expect(wr.failed).toEqual([]);
    expect(wr.ok).toBeGreaterThanOrEqual(10);
    for (const i of [1, 2, 3]) {
      const s = await c.status(i);
      expect(s.config.term).toBe(term0);
      expect(s.status.find((x) => x.state === 'LEADER_RW')?.id).toBe(leader);
      expect(s.nodes.every((n) => n.state === 'ACTIVE')).toBe(true);
    }
    // The completed rotation keeps only the new secret's id in the log, not the sealed value.
    for (const i of [1, 2, 3]) {
      const st = JSON.parse(fs.readFileSync(path.join(c.pgdata(i), 'pg_biha', 'biha.state'), 'utf8')) as { data: { raft: { log: { snapshot: { meta: Record<string, string> } } } } };
      expect(JSON.parse(st.data.raft.log.snapshot.meta['secret']!)).toEqual({ v: 1, id: expect.any(String), done: true });
    }
    // The magic string from SQL carries the new secret too.
    const sqlMagic = await c.sql<{ m: string }>(leader, 'select biha.get_magic_string() as m', [], 'biha_db');
    expect(decodeMagic(sqlMagic[0]!.m).secret).toBe(fresh);
  });

  it('a node restarted after the rotation still talks to the others', async () => {
    const leader = await c.waitLeader();
    const other = leader === 1 ? 2 : 1;
    await bihaOk(['stop', `--pgdata=${c.pgdata(other)}`]);
    await bihaOk(['start', `--pgdata=${c.pgdata(other)}`]);
    await c.waitState(other, 'FOLLOWER', 90_000);
  });

  it('a magic string made before the rotation can no longer add a node; one made after can', async () => {
    const before = await bihactl(['add', '--biha-node-id=4', '--host=127.0.0.1', `--port=${c.port(4)}`, `--http-port=${c.httpPort(4)}`, `--magic-string=${m0}`, `--pgdata=${c.pgdata(4)}`]);
    expect(before.code).toBe(4);
    expect(before.stderr).toMatch(/rejected our cluster secret/);
    expect(before.stderr).toMatch(/bihactl magic-string/);
    expect(fs.existsSync(path.join(c.pgdata(4), 'pg_biha'))).toBe(false);

    fs.writeFileSync(magicFile('after.magic'), m1 + '\n', { mode: 0o600 });
    const after = await bihactl(['add', '--biha-node-id=4', '--host=127.0.0.1', `--port=${c.port(4)}`, `--http-port=${c.httpPort(4)}`, `--magic-file=${magicFile('after.magic')}`, `--pgdata=${c.pgdata(4)}`]);
    expect(after.code, after.stderr).toBe(0);
    await c.start(4);
    await c.waitState(4, 'FOLLOWER', 90_000);
    expect(secretsOf(c, 4)).toEqual([decodeMagic(m1).secret]);
  });

  it('a second rotation writes --magic-file 0600 even over a wider file, and all four nodes follow', async () => {
    const f = magicFile('rot2.magic');
    fs.writeFileSync(f, 'old\n', { mode: 0o644 });
    fs.chmodSync(f, 0o644);
    const r = await bihactl(['rotate-secret', `--pgdata=${c.pgdata(1)}`, `--magic-file=${f}`]);
    expect(r.code, r.stderr).toBe(0);
    expect(mode(f)).toBe('600');
    const m2 = fs.readFileSync(f, 'utf8').trim();
    expect(m2).toBe(r.stdout.trim());
    const s2 = decodeMagic(m2).secret;
    await waitFor('all four nodes to hold only the second new secret', async () => c.ids().every((i) => JSON.stringify(secretsOf(c, i)) === JSON.stringify([s2])), 30_000);
  });

  it('no controller log holds a cluster secret or a magic string', async () => {
    const secrets = [m0, m1].map((m) => decodeMagic(m).secret).concat(secretsOf(c, 1));
    let files = 0;
    for (const i of c.ids()) {
      const dir = path.join(c.pgdata(i), 'pg_biha', 'log');
      for (const f of fs.readdirSync(dir)) {
        files++;
        const text = fs.readFileSync(path.join(dir, f), 'utf8');
        for (const s of secrets) expect(text.includes(s), `${dir}/${f} holds a secret`).toBe(false);
        for (const m of [m0, m1]) expect(text.includes(m), `${dir}/${f} holds a magic string`).toBe(false);
      }
    }
    expect(files).toBeGreaterThanOrEqual(4);
  });
});
