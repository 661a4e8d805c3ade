// The life of a cluster on real PostgreSQL, driven through bihactl and SQL as a DBA would:
// a single node that grows to three, changes nquorum/minnodes from SQL, loses a node with
// remove-node, restarts a follower; and the two conversions (--convert, --convert-standby).
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PASSWORD, PG_BIN, TestCluster, asPostgres, bihaOk, bihactl, psqlAsPostgres, waitFor } from '../helpers/cluster.js';

/** Waits until every node in `ids` sees exactly `ids` as members, all online, and the same LEADER_RW. */
async function waitAgreed(c: TestCluster, ids: number[], timeoutMs = 120_000): Promise<number> {
  const want = [...ids].sort((x, y) => x - y).join(',');
  return await waitFor(`nodes ${want} to agree on the members and a LEADER_RW`, async () => {
    let leader: number | null = null;
    for (const i of ids) {
      const s = await c.status(i);
      if (s.status.map((x) => x.id).sort((x, y) => x - y).join(',') !== want) return null;
      if (!s.status.every((x) => x.online)) return null;
      const l = s.status.find((x) => x.state === 'LEADER_RW');
      if (!l || (leader !== null && l.id !== leader)) return null;
      if (!s.status.every((x) => x.leader_id === l.id)) return null;
      leader = l.id;
    }
    return leader;
  }, timeoutMs, 250);
}

async function rowsOf(c: TestCluster, i: number): Promise<string[]> {
  return (await c.sql<{ v: string }>(i, 'select v from grow order by v')).map((r) => r.v);
}

// Growing from one node: `bihactl add` to a running nquorum 1 / minnodes 1 leader must succeed, and
// the new nodes must get the data written before they joined.
describe('a single-node cluster (nquorum 1, minnodes 1) grows to three nodes', () => {
  const c = new TestCluster({ nodes: 3, basePort: 20300, nquorum: 1, minnodes: 1 });
  afterAll(async () => {
    await c.destroy();
  }, 120_000);

  it('starts alone as LEADER_RW and accepts writes', async () => {
    const r = await c.init();
    expect(r.code, r.stderr).toBe(0);
    await c.start(1);
    const s = await c.waitState(1, 'LEADER_RW');
    expect(s.status.map((x) => x.id)).toEqual([1]);
    expect(s.config.nquorum).toBe(1);
    expect(s.config.minnodes).toBe(1);
    await c.sql(1, 'create table grow (v text primary key)');
    await c.sql(1, "insert into grow values ('written-alone')");
    expect(await rowsOf(c, 1)).toEqual(['written-alone']);
  }, 180_000);

  it('adds node 2 and node 3 to the running cluster, and each new node has the rows written before it joined', async () => {
    for (const i of [2, 3]) {
      const a = await c.add(i);
      expect(a.code, a.stderr).toBe(0);
      await c.start(i);
      const ids = Array.from({ length: i }, (_, k) => k + 1);
      await waitAgreed(c, ids);
      await waitFor(`node ${i} to have the row written before it joined`, async () => (await rowsOf(c, i)).includes('written-alone'));
    }
    const l = await waitAgreed(c, [1, 2, 3]);
    await c.sql(l, "insert into grow values ('written-by-three')");
    for (const i of c.ids())
      await waitFor(`node ${i} to replay the new row`, async () => (await rowsOf(c, i)).join() === 'written-alone,written-by-three');
  }, 360_000);
});

describe('a three-node cluster changes nquorum/minnodes from SQL, removes a node and restarts a follower', () => {
  // Built with nquorum 2 so that it does not depend on growing from nquorum 1 (see the suite above);
  // minnodes starts at 1 so that set_nquorum_and_minnodes(2, 2) is a real change.
  const c = new TestCluster({ nodes: 3, basePort: 20340, nquorum: 2, minnodes: 1 });
  beforeAll(async () => {
    await c.create();
    await waitAgreed(c, [1, 2, 3]);
    const l = await c.waitLeader();
    await c.sql(l, 'create table grow (v text primary key)');
    await c.sql(l, "insert into grow values ('first-row')");
  }, 240_000);
  afterAll(async () => {
    await c.destroy();
  }, 120_000);

  it('select biha.set_nquorum_and_minnodes(2,2) on the leader, as biha_replication_user, is seen in biha.config() on every node', async () => {
    const l = await waitAgreed(c, [1, 2, 3]);
    const who = await c.sql<{ u: string; m: boolean }>(l, "select current_user as u, pg_has_role(current_user, 'biha_cluster_management_role', 'member') as m");
    expect(who).toEqual([{ u: 'biha_replication_user', m: true }]);
    const r = await c.sql<{ ok: boolean }>(l, 'select biha.set_nquorum_and_minnodes(2, 2) as ok');
    expect(r).toEqual([{ ok: true }]);
    for (const i of c.ids()) {
      await waitFor(`biha.config() of node ${i} to show nquorum 2 and minnodes 2`, async () => {
        const cfg = await c.sql<{ id: number; nquorum: number; minnodes: number }>(i, 'select id, nquorum, minnodes from biha.config()');
        return cfg.length === 1 && cfg[0]!.id === i && cfg[0]!.nquorum === 2 && cfg[0]!.minnodes === 2;
      });
    }
  }, 180_000);

  it('bihactl remove-node --id=3: two members on every node, and the slot of node 3 is gone on the leader', async () => {
    let l = await waitAgreed(c, [1, 2, 3]);
    if (l === 3) {
      await bihaOk(['set-leader', '--id=1', `--pgdata=${c.pgdata(3)}`]);
      l = await waitAgreed(c, [1, 2, 3]);
    }
    expect(l).not.toBe(3);
    const slots0 = await c.sql<{ slot_name: string }>(l, 'select slot_name from pg_replication_slots order by 1');
    expect(slots0.map((x) => x.slot_name)).toContain('biha_node_3');
    // As in the reference: stop the node, then remove it from the cluster.
    const st = await c.stop(3);
    expect(st.code, st.stderr).toBe(0);
    const r = await bihactl(['remove-node', '--id=3', `--pgdata=${c.pgdata(l)}`]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('node 3 removed');
    const leader = await waitAgreed(c, [1, 2]);
    expect(leader).toBe(l);
    for (const i of [1, 2]) {
      const s = await c.status(i);
      expect(s.status.map((x) => x.id)).toEqual([1, 2]);
      const nodes = await c.sql<{ id: number }>(i, 'select id from biha.status_v order by id');
      expect(nodes.map((x) => x.id)).toEqual([1, 2]);
    }
    const slots = await waitFor('the slot of node 3 to be dropped on the leader', async () => {
      const rows = await c.sql<{ slot_name: string }>(l, 'select slot_name from pg_replication_slots order by 1');
      return rows.some((x) => x.slot_name === 'biha_node_3') ? null : rows.map((x) => x.slot_name);
    });
    expect(slots).toEqual([`biha_node_${l === 1 ? 2 : 1}`]);
  }, 180_000);

  it('a follower stopped and started with bihactl stays a follower; bihactl status names every node and the leader', async () => {
    const l = await waitAgreed(c, [1, 2]);
    const f = l === 1 ? 2 : 1;
    const st = await c.stop(f);
    expect(st.code, st.stderr).toBe(0);
    expect(st.stderr).toContain(`node ${f} stopped`);
    await c.start(f);
    expect(await waitAgreed(c, [1, 2])).toBe(l);
    const s = await c.status(f);
    expect(s.status.find((x) => x.id === f)?.state).toBe('FOLLOWER');
    await c.sql(l, "insert into grow values ('after-restart')");
    await waitFor(`node ${f} to replay after its restart`, async () => (await rowsOf(c, f)).includes('after-restart'));

    // The table: one row per node, with its state and the leader each node follows.
    const t = await bihactl(['status', `--pgdata=${c.pgdata(f)}`]);
    expect(t.code, t.stderr).toBe(0);
    const rows = t.stdout.split('\n').filter((x) => /^\|\s*\d/.test(x)).map((x) => x.split('|').slice(1, -1).map((y) => y.trim()));
    expect(rows.map((r) => r[0])).toEqual(['1', '2'].map((id) => (Number(id) === f ? `${id}*` : id)));
    const byId = new Map(rows.map((r) => [Number(r[0]!.replace('*', '')), r]));
    expect(byId.get(l)![2]).toBe('LEADER_RW');
    expect(byId.get(f)![2]).toBe('FOLLOWER');
    expect(byId.get(l)![1]).toBe(`127.0.0.1:${c.port(l)}`);
    for (const r of rows) expect(r[3]).toBe(String(l));
    expect(t.stdout).toMatch(/nquorum 2, minnodes 2/);
  }, 180_000);
});

describe('--convert of a plain data directory and --convert-standby of a plain standby', () => {
  // nquorum 2 as well, so that the conversion itself is tested rather than the growth from nquorum 1.
  const c = new TestCluster({ nodes: 2, basePort: 20400, nquorum: 2, minnodes: 1 });
  afterAll(async () => {
    await c.destroy();
  }, 120_000);

  async function pgCtl(i: number, action: 'start' | 'stop'): Promise<void> {
    const args = action === 'start'
      ? ['-D', c.pgdata(i), '-o', `-p ${c.port(i)} -k /tmp`, '-l', path.join(c.dir, `plain-${i}.log`), '-w', '-t', '60', 'start']
      : ['-D', c.pgdata(i), '-m', 'fast', '-w', '-t', '60', 'stop'];
    const r = await asPostgres(`${PG_BIN}/pg_ctl`, args);
    if (r.code !== 0) throw new Error(`pg_ctl ${action} of node ${i}: ${r.stderr}${r.stdout}`);
  }

  it('bihactl init --convert makes a plain data directory a biha leader and keeps its data', async () => {
    const i = await asPostgres(`${PG_BIN}/initdb`, ['-D', c.pgdata(1)]);
    expect(i.code, i.stderr).toBe(0);
    await pgCtl(1, 'start');
    await psqlAsPostgres(c.port(1), 'postgres', "create table kept (v text); insert into kept values ('from-before-biha')");
    await pgCtl(1, 'stop');

    const r = await c.init(['--convert']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^biha1\.[A-Za-z0-9_-]+\n$/);
    await c.start(1);
    await c.waitState(1, 'LEADER_RW');
    expect(await psqlAsPostgres(c.port(1), 'postgres', 'select v from kept')).toBe('from-before-biha');
    expect(await psqlAsPostgres(c.port(1), 'postgres', 'select pg_is_in_recovery()')).toBe('f');
    await psqlAsPostgres(c.port(1), 'postgres', "insert into kept values ('written-on-the-leader')");
    // The biha roles exist: the replication user logs in with the cluster's password.
    expect(await c.sql<{ u: string }>(1, 'select current_user as u')).toEqual([{ u: 'biha_replication_user' }]);
  }, 180_000);

  it('bihactl add --convert-standby makes a stopped plain standby of the leader a FOLLOWER', async () => {
    const bb = await asPostgres(
      `${PG_BIN}/pg_basebackup`,
      ['-h', '127.0.0.1', '-p', String(c.port(1)), '-U', 'biha_replication_user', '-D', c.pgdata(2), '-R', '-X', 'stream'],
      { PGPASSWORD: PASSWORD },
    );
    expect(bb.code, bb.stderr).toBe(0);
    await pgCtl(2, 'start');
    expect(await psqlAsPostgres(c.port(2), 'postgres', 'select pg_is_in_recovery()')).toBe('t');
    expect(await psqlAsPostgres(c.port(2), 'postgres', 'select v from kept order by v')).toBe('from-before-biha\nwritten-on-the-leader');
    await pgCtl(2, 'stop');

    const a = await c.add(2, ['--convert-standby']);
    expect(a.code, a.stderr).toBe(0);
    await c.start(2);
    const s = await waitFor('node 2 to follow node 1', async () => {
      const st = await c.status(2);
      const me = st.status.find((x) => x.id === 2);
      const l = st.status.find((x) => x.id === 1);
      return me?.state === 'FOLLOWER' && me.leader_id === 1 && l?.state === 'LEADER_RW' ? st : null;
    }, 120_000);
    expect(s.status.map((x) => x.id)).toEqual([1, 2]);
    await waitFor('node 1 to see node 2 as its follower', async () => {
      const st = await c.status(1);
      return st.status.find((x) => x.id === 2)?.state === 'FOLLOWER' && st.status.find((x) => x.id === 1)?.state === 'LEADER_RW';
    }, 120_000);
    await psqlAsPostgres(c.port(1), 'postgres', "insert into kept values ('after-convert-standby')");
    await waitFor('the converted standby to replay a new row', async () =>
      (await psqlAsPostgres(c.port(2), 'postgres', "select count(*) from kept where v = 'after-convert-standby'")) === '1');
    expect(await psqlAsPostgres(c.port(2), 'postgres', 'select pg_is_in_recovery()')).toBe('t');
  }, 240_000);
});
