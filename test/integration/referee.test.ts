// Referee nodes on real PostgreSQL: a referee (votes, no PostgreSQL at all) lets two data nodes
// survive the loss of either one; a referee_with_wal streams WAL but is never elected.
//
// Both clusters use nquorum 2 / minnodes 2 over 3 voting nodes: any 2 nodes elect (2 x 2 > 3, so
// never two groups at once), and a leader stays writable with one other live node, data node or
// referee (2 + 2 > 3, so an old leader cut off alone cannot stay writable while the others elect).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { TestCluster, bihaOk, bihactl, sleep, waitFor } from '../helpers/cluster.js';
import { useCluster } from '../helpers/suite.js';

interface Member {
  id: number;
  state: string;
  mode?: string;
  self: boolean;
}
interface ClusterDoc {
  node_id: number;
  term: number;
  members: Member[];
}

async function clusterDoc(c: TestCluster, i: number): Promise<ClusterDoc | null> {
  try {
    const r = await fetch(`http://127.0.0.1:${c.httpPort(i)}/cluster`, { signal: AbortSignal.timeout(1500) });
    return (await r.json()) as ClusterDoc;
  } catch {
    return null; // node down
  }
}

/**
 * Samples every node's GET /cluster in rounds until stopped. Records rounds in which two nodes
 * each say they are LEADER_RW, documents that show two LEADER_RW, and every node that ever called
 * itself LEADER_RW or CANDIDATE.
 */
class LeaderWatch {
  rounds = 0;
  readonly doubles: string[] = [];
  readonly leadersSeen = new Set<number>();
  readonly candidatesSeen = new Set<number>();
  private stopped = false;
  private done: Promise<void>;

  constructor(private readonly c: TestCluster) {
    this.done = this.loop();
  }

  private async loop(): Promise<void> {
    for (let k = 0; k < 5000 && !this.stopped; k++) {
      const docs = await Promise.all(this.c.ids().map((i) => clusterDoc(this.c, i)));
      this.rounds++;
      const selfRw: number[] = [];
      for (const d of docs) {
        if (!d) continue;
        const me = d.members.find((m) => m.self);
        if (me?.state === 'LEADER_RW') {
          selfRw.push(d.node_id);
          this.leadersSeen.add(d.node_id);
        }
        if (me?.state === 'CANDIDATE') this.candidatesSeen.add(d.node_id);
        const rw = d.members.filter((m) => m.state === 'LEADER_RW').map((m) => m.id);
        if (rw.length > 1) this.doubles.push(`node ${d.node_id} shows ${rw.join(' and ')} as LEADER_RW`);
      }
      if (selfRw.length > 1) this.doubles.push(`nodes ${selfRw.join(' and ')} both say LEADER_RW`);
      await sleep(150);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
  }
}

async function insert(c: TestCluster, i: number, v: string): Promise<void> {
  await c.sql(i, 'create table if not exists r (v text primary key)', [], 'biha_db');
  await c.sql(i, 'insert into r values ($1)', [v], 'biha_db');
}

async function hasRow(c: TestCluster, i: number, v: string): Promise<boolean> {
  const rows = await c.sql<{ n: string }>(i, 'select count(*) as n from r where v = $1', [v], 'biha_db');
  return rows[0]?.n === '1';
}

/** The node stays LEADER_RW (as it says itself) for `ms`, and accepts a write at the end. */
async function staysWritable(c: TestCluster, leader: number, ms: number, v: string): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const s = await c.status(leader);
    expect(s.status.find((x) => x.id === leader)?.state).toBe('LEADER_RW');
    await sleep(250);
  }
  await insert(c, leader, v);
}

describe('two data nodes and a referee', () => {
  const c = new TestCluster({ nodes: 3, basePort: 21000, nquorum: 2, minnodes: 2, modes: { 3: 'referee' } });
  useCluster(c);

  it('the referee runs only its controller: no PostgreSQL, and every status view names its mode', async () => {
    expect(await c.waitLeader()).toBe(1);
    await c.waitState(3, 'FOLLOWER');
    expect(fs.readdirSync(c.pgdata(3))).toEqual(['pg_biha']);
    expect(c.postmasterPid(3)).toBeNull();
    expect(c.controllerPid(3)).not.toBeNull();

    const table = await bihaOk(['status', `--pgdata=${c.pgdata(3)}`]);
    expect(table.stdout).toMatch(/\| 3\* +\| 127\.0\.0\.1 \(no PostgreSQL\) +\| FOLLOWER +\| 1 +\| referee +\| referee +\| /);
    expect(table.stdout).toMatch(new RegExp(`\\| 1 +\\| 127\\.0\\.0\\.1:${c.port(1)} +\\| LEADER_RW +\\| 1 +\\| leader +\\| regular +\\| `));
    const fromLeader = await bihaOk(['status', `--pgdata=${c.pgdata(1)}`]);
    expect(fromLeader.stdout).toMatch(/\| 3 +\| 127\.0\.0\.1 \(no PostgreSQL\) +\| FOLLOWER +\| 1 +\| referee +\| referee +\| /);

    const rows = await c.sql<{ id: number; state: string; mode: string }>(1, 'select id, state, mode from biha.status_v order by id');
    expect(rows).toEqual([
      { id: 1, state: 'LEADER_RW', mode: 'regular' },
      { id: 2, state: 'FOLLOWER', mode: 'regular' },
      { id: 3, state: 'FOLLOWER', mode: 'referee' },
    ]);
    // The leader creates no replication slot for a referee.
    const slots = await c.sql<{ slot_name: string }>(1, 'select slot_name from pg_replication_slots order by 1');
    expect(slots.map((s) => s.slot_name)).toContain('biha_node_2');
    expect(slots.map((s) => s.slot_name)).not.toContain('biha_node_3');

    const doc = await clusterDoc(c, 3);
    expect(doc?.members.map((m) => [m.id, m.mode, m.state])).toEqual([
      [1, 'regular', 'LEADER_RW'],
      [2, 'regular', 'FOLLOWER'],
      [3, 'referee', 'FOLLOWER'],
    ]);
    const health = await fetch(`http://127.0.0.1:${c.httpPort(3)}/health`);
    expect(health.status).toBe(200);
    const metrics = await fetch(`http://127.0.0.1:${c.httpPort(3)}/metrics`);
    expect(metrics.status).toBe(200);
    const text = await metrics.text();
    expect(text).toMatch(/^biha_leader\{[^}]*leader_id="1"[^}]*\} 1$/m);
    // A referee runs no PostgreSQL: it exports none of the PostgreSQL gauges.
    expect(text).not.toMatch(/^biha_postgres_running/m);
    const replica = await fetch(`http://127.0.0.1:${c.httpPort(3)}/replica`);
    expect(replica.status).toBe(503);
    expect(((await replica.json()) as { reason: string }).reason).toContain('referee');

    // A referee without a PostgreSQL port must be told its control channel port; nothing is left behind.
    const bad = await bihactl(['add', '--biha-node-id=9', '--host=127.0.0.1', '--mode=referee', `--magic-string=${c.magic}`, `--pgdata=${path.join(c.dir, 'n9')}`]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('a referee has no PostgreSQL port to derive its ports from: give --biha-port');
    expect(fs.existsSync(path.join(c.dir, 'n9'))).toBe(false);

    // biha.set_leader to the referee is refused with the reason.
    await expect(c.sql(1, 'select biha.set_leader(3)')).rejects.toThrow(/node 3 is a referee node and can never be the leader/);
  });

  it('kill -9 of the leader: the other data node wins with the referee\'s vote; the old leader rejoins; losing the follower keeps the leader writable', async () => {
    await insert(c, 1, 'before');
    await waitFor('node 2 to replay the first row', async () => hasRow(c, 2, 'before'));
    const watch = new LeaderWatch(c);
    try {
      c.kill9(1);
      const next = await c.waitLeader({ not: 1, timeoutMs: 30_000 });
      expect(next).toBe(2);
      watch.leadersSeen.clear(); // from here on only node 2 may say LEADER_RW
      await waitFor('a write on node 2', async () => insert(c, 2, 'after-failover').then(() => true, () => false), 30_000);
      const s = await c.status(3);
      expect(s.status.find((x) => x.id === 3)).toMatchObject({ state: 'FOLLOWER', leader_id: 2 });

      await c.start(1);
      await c.waitState(1, 'FOLLOWER', 90_000);
      await waitFor('node 1 to replay the row written on node 2', async () => hasRow(c, 1, 'after-failover'), 60_000);

      c.kill9(1);
      // T is 200 ms x 5 = 1 s: after 4 s node 2 has long noticed, and keeps its lease with the referee.
      await staysWritable(c, 2, 4000, 'follower-gone');
      expect((await c.status(2)).status.find((x) => x.id === 1)?.online).toBe(false);
    } finally {
      await watch.stop();
    }
    expect(watch.rounds).toBeGreaterThan(10);
    expect(watch.doubles).toEqual([]);
    expect([...watch.leadersSeen].sort()).toEqual([2]);
    expect(watch.candidatesSeen.has(3)).toBe(false);

    await c.start(1);
    await c.waitState(1, 'FOLLOWER', 90_000);
    await waitFor('node 1 to replay the last row', async () => hasRow(c, 1, 'follower-gone'), 60_000);
  });

  it('kill -9 of the referee: the leader keeps writing with the other data node; bihactl stop/start/status work on the referee', async () => {
    const leader = await c.waitLeader();
    c.kill9(3);
    await staysWritable(c, leader, 4000, 'referee-gone');
    expect((await c.status(leader)).status.find((x) => x.id === 3)?.online).toBe(false);

    await c.start(3);
    await c.waitState(3, 'FOLLOWER');
    const stop = await bihactl(['stop', `--pgdata=${c.pgdata(3)}`]);
    expect(stop.code).toBe(0);
    expect(stop.stderr).toContain('node 3 stopped');
    expect(c.controllerPid(3) === null || !fs.existsSync(`/proc/${c.controllerPid(3)}`)).toBe(true);
    const down = await bihactl(['status', `--pgdata=${c.pgdata(3)}`], {}, 10_000);
    expect(down.code).not.toBe(0);
    await c.start(3);
    await c.waitState(3, 'FOLLOWER');
    expect(fs.readdirSync(c.pgdata(3))).toEqual(['pg_biha']);

    // Nothing failed over and over on the referee (it has no PostgreSQL and no SQL bridge).
    const log = fs.readFileSync(path.join(c.pgdata(3), 'pg_biha', 'log', 'controller.log'), 'utf8');
    const errors = log.split('\n').filter((l) => /"level":(50|60)/.test(l));
    expect(errors).toEqual([]);
    expect(log).not.toMatch(/waiting for PostgreSQL|pg_ctl|status\.json/);
  });

  it('the referee does not help elect a data node that missed writes the leader made with the referee alone', async () => {
    const leader = await c.waitLeader();
    const stale = leader === 1 ? 2 : 1;
    await c.waitState(stale, 'FOLLOWER');
    c.kill9(stale);
    await waitFor(`node ${leader} to see node ${stale} offline`, async () => (await c.status(leader)).status.find((x) => x.id === stale)?.online === false, 30_000);
    await staysWritable(c, leader, 1000, 'written-alone');
    await sleep(1500); // a few heartbeats: the referee sees the leader's WAL with no follower online
    c.kill9(leader);

    // The stale node comes back alone with the referee: it must not be elected.
    await c.start(stale);
    const states = new Set<string>();
    const end = Date.now() + 10_000;
    while (Date.now() < end) {
      const s = await c.status(stale);
      states.add(s.status.find((x) => x.id === stale)?.state ?? '?');
      expect(s.status.filter((x) => x.state === 'LEADER_RW')).toEqual([]);
      await sleep(300);
    }
    expect([...states].filter((st) => st.startsWith('LEADER'))).toEqual([]);
    expect((await c.status(3)).status.find((x) => x.id === 3)?.leader_id).toBeNull();

    // The node that has the writes returns and is elected; the stale node follows it and gets them.
    await c.start(leader);
    expect(await c.waitLeader({ timeoutMs: 60_000 })).toBe(leader);
    await waitFor('a write on the returned leader', async () => insert(c, leader, 'after-return').then(() => true, () => false), 30_000);
    await c.waitState(stale, 'FOLLOWER', 90_000);
    await waitFor('the stale node to replay the writes it missed', async () => (await hasRow(c, stale, 'written-alone')) && (await hasRow(c, stale, 'after-return')), 60_000);
  });
});

describe('two data nodes and a referee_with_wal', () => {
  const c = new TestCluster({ nodes: 3, basePort: 21100, nquorum: 2, minnodes: 2, modes: { 3: 'referee_with_wal' } });
  useCluster(c);

  it('receives WAL like a standby, cannot be made leader and is no synchronous standby', async () => {
    expect(await c.waitLeader()).toBe(1);
    await c.waitState(3, 'FOLLOWER');
    await insert(c, 1, 'w1');
    await waitFor('node 3 to replay the row', async () => hasRow(c, 3, 'w1'), 60_000);
    const rec = await c.sql<{ r: boolean }>(3, 'select pg_is_in_recovery() as r');
    expect(rec[0]?.r).toBe(true);
    const rows = await c.sql<{ id: number; mode: string }>(1, 'select id, mode from biha.status_v order by id');
    expect(rows.map((r) => r.mode)).toEqual(['regular', 'regular', 'referee_with_wal']);

    await expect(c.sql(1, 'select biha.set_leader(3)')).rejects.toThrow(/node 3 is a referee_with_wal node and can never be the leader/);
    await expect(c.sql(3, 'select biha.set_leader(3)')).rejects.toThrow(/referee_with_wal node and can never be the leader/);
    await expect(c.sql(1, 'select biha.set_can_be_leader(3, true)')).rejects.toThrow(/node 3 is a referee_with_wal node and can never be the leader/);
    const cfg = await c.sql<{ mode: string; can_be_leader: boolean }>(3, 'select mode, can_be_leader from biha.config()');
    expect(cfg).toEqual([{ mode: 'referee_with_wal', can_be_leader: false }]);
    expect(await c.leader()).toBe(1);

    // With synchronous replication on, only the regular node is a synchronous standby.
    await c.sql(1, 'select biha.set_sync_standbys(1)');
    let seen = '';
    try {
      await waitFor('the synchronous standby list on node 1', async () => {
        const r = await c.su<{ v: string }>(1, "select current_setting('synchronous_standby_names') as v");
        seen = r[0]?.v ?? '';
        return seen === 'ANY 1 (biha_node_2)';
      }, 30_000);
    } finally {
      await c.sql(1, 'select biha.set_sync_standbys(0)');
    }
    expect(seen).toBe('ANY 1 (biha_node_2)');
    await waitFor('asynchronous replication again', async () => {
      const r = await c.su<{ v: string }>(1, "select current_setting('synchronous_standby_names') as v");
      return r[0]?.v === '';
    }, 30_000);
  });

  it('when the only data leader dies the other data node is elected, never the referee_with_wal', async () => {
    await insert(c, 1, 'w2');
    await waitFor('nodes 2 and 3 to replay the row', async () => (await hasRow(c, 2, 'w2')) && (await hasRow(c, 3, 'w2')), 60_000);
    const watch = new LeaderWatch(c);
    try {
      c.kill9(1);
      expect(await c.waitLeader({ not: 1, timeoutMs: 30_000 })).toBe(2);
      watch.leadersSeen.clear();
      await waitFor('a write on node 2', async () => insert(c, 2, 'w3').then(() => true, () => false), 30_000);
      // The referee_with_wal now streams from node 2.
      await waitFor('node 3 to replay the row written on node 2', async () => hasRow(c, 3, 'w3'), 60_000);
      await sleep(2000);
    } finally {
      await watch.stop();
    }
    expect(watch.doubles).toEqual([]);
    expect([...watch.leadersSeen]).toEqual([2]);
    expect(watch.candidatesSeen.has(3)).toBe(false);
    const s = await c.status(3);
    expect(s.status.find((x) => x.id === 3)).toMatchObject({ state: 'FOLLOWER', leader_id: 2 });
  });
});
