// /metrics of every node of a real 3-node cluster: each node's own view as Patroni's dashboards
// read it (one primary, followers with their own lag and replica role, one timeline, the server
// version, build and cluster info), node ids only in labels, and the new leader's view after the
// leader is killed.
import * as fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestCluster, waitFor } from '../helpers/cluster.js';
import { samples, value } from '../helpers/promtext.js';
import type { Sample } from '../helpers/promtext.js';

// Ports 26000-26022: PostgreSQL, control channel and HTTP of three nodes.
const c = new TestCluster({ nodes: 3, basePort: 26000, syncStandbys: 1 });

const VERSION = (JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

async function scrape(i: number): Promise<Sample[]> {
  const r = await fetch(`http://127.0.0.1:${c.httpPort(i)}/metrics`, { signal: AbortSignal.timeout(5000) });
  if (r.status !== 200) throw new Error(`/metrics of node ${i} answered ${r.status}`);
  return samples(await r.text());
}

/** Every node's scrape, once `ok` holds for all of them together. */
async function scrapesWhen(what: string, ids: readonly number[], ok: (m: ReadonlyMap<number, Sample[]>) => boolean, timeoutMs = 60_000): Promise<Map<number, Sample[]>> {
  return await waitFor(what, async () => {
    const m = new Map<number, Sample[]>();
    for (const i of ids) m.set(i, await scrape(i).catch(() => []));
    return ok(m) ? m : null;
  }, timeoutMs, 250);
}

const get = (m: ReadonlyMap<number, Sample[]>, i: number, name: string, labels: Record<string, string> = {}): number | undefined =>
  value(m.get(i) ?? [], name, labels);

function leaderLabels(all: readonly Sample[]): string[] {
  return all.filter((s) => s.name === 'biha_leader').map((s) => `${s.labels['leader_id']}=${s.value}`);
}

describe('/metrics on a 3-node cluster', () => {
  let leader = 0;
  let followers: number[] = [];
  let timeline = 0;

  beforeAll(async () => {
    await c.create();
    leader = await c.waitLeader();
    followers = c.ids().filter((i) => i !== leader);
    for (const f of followers) await c.waitStreaming(f);
  }, 300_000);
  afterAll(async () => {
    await c.destroy();
  }, 120_000);

  it("shows one primary, followers with their own lag and the replica role, one timeline, the server version and the build", async () => {
    await c.su(leader, 'create table metrics_t(i int); insert into metrics_t select generate_series(1, 10000)');
    // Once the writes are replayed everywhere, each follower's own lag is 0 bytes and 0 seconds.
    const m = await scrapesWhen('every node reporting its own view, followers caught up', c.ids(), (m) =>
      get(m, leader, 'biha_postgres_primary') === 1 &&
      followers.every((f) => get(m, f, 'biha_postgres_replica') === 1 && get(m, f, 'biha_replication_lag_bytes') === 0 && get(m, f, 'biha_replication_lag_seconds') === 0),
    );

    expect(c.ids().filter((i) => get(m, i, 'biha_postgres_primary') === 1)).toEqual([leader]);
    expect(get(m, leader, 'biha_is_leader')).toBe(1);
    expect(get(m, leader, 'biha_postgres_replica')).toBe(0);
    expect(get(m, leader, 'biha_replication_lag_bytes')).toBe(0);
    expect(get(m, leader, 'biha_replication_lag_seconds')).toBe(0);
    expect(get(m, leader, 'biha_xlog_location')).toBeGreaterThan(0);
    expect(get(m, leader, 'biha_sync_standby')).toBe(0);
    for (const f of followers) {
      expect(get(m, f, 'biha_is_leader'), `node ${f}`).toBe(0);
      expect(get(m, f, 'biha_postgres_primary'), `node ${f}`).toBe(0);
      expect(get(m, f, 'biha_xlog_location'), `node ${f}`).toBe(0);
      expect(get(m, f, 'biha_xlog_received_location'), `node ${f}`).toBeGreaterThan(0);
      expect(get(m, f, 'biha_xlog_replayed_location'), `node ${f}`).toBeGreaterThan(0);
      // sync_standbys 1: the leader names both followers in ANY 1 (...).
      expect(get(m, f, 'biha_sync_standby'), `node ${f}`).toBe(1);
      // The leader's view of the same follower.
      expect(get(m, leader, 'biha_follower_lag_bytes', { follower: String(f) }), `node ${f} from the leader`).toBeGreaterThanOrEqual(0);
    }

    for (const i of c.ids()) {
      expect(get(m, i, 'biha_postgres_running'), `node ${i}`).toBe(1);
      expect(get(m, i, 'biha_postgres_server_version'), `node ${i}`).toBeGreaterThanOrEqual(150000);
      expect(leaderLabels(m.get(i)!), `node ${i}`).toEqual([`${leader}=1`]);
      expect(get(m, i, 'biha_build_info', { version: VERSION, node_version: process.version }), `node ${i}`).toBe(1);
    }
    const timelines = new Set(c.ids().map((i) => get(m, i, 'biha_timeline')));
    expect(timelines.size).toBe(1);
    timeline = [...timelines][0] ?? 0;
    expect(timeline).toBeGreaterThanOrEqual(1);
    const clusters = c.ids().flatMap((i) => m.get(i)!.filter((s) => s.name === 'biha_cluster_info' && s.value === 1).map((s) => s.labels['cluster']));
    expect(clusters).toHaveLength(3);
    expect(new Set(clusters).size).toBe(1);
    expect(clusters[0]).toMatch(/^\S+$/);
  }, 180_000);

  it("shows a follower whose replay is paused falling behind, in bytes and in growing seconds, and catching up", async () => {
    const f = followers[0]!;
    await c.su(f, 'select pg_wal_replay_pause()');
    try {
      await c.su(leader, 'insert into metrics_t select generate_series(1, 10000)');
      const behind = await scrapesWhen(`node ${f} reporting its own lag`, [f, leader], (m) =>
        (get(m, f, 'biha_replication_lag_bytes') ?? 0) > 0 && (get(m, f, 'biha_replication_lag_seconds') ?? 0) > 0 &&
        (get(m, leader, 'biha_follower_lag_bytes', { follower: String(f) }) ?? 0) > 0,
      );
      const first = get(behind, f, 'biha_replication_lag_seconds')!;
      // Nothing is replayed: the lag in time keeps growing with the clock.
      await scrapesWhen(`node ${f}'s lag growing past ${first} s`, [f], (m) => (get(m, f, 'biha_replication_lag_seconds') ?? 0) > first);
      expect(get(behind, f, 'biha_postgres_replica')).toBe(1);
    } finally {
      await c.su(f, 'select pg_wal_replay_resume()');
    }
    await scrapesWhen(`node ${f} caught up`, [f], (m) => get(m, f, 'biha_replication_lag_bytes') === 0 && get(m, f, 'biha_replication_lag_seconds') === 0);
  }, 180_000);

  it('carries node ids only in labels: no metric has one as its value', async () => {
    for (const i of c.ids()) {
      const all = await scrape(i);
      expect(all.filter((s) => /(^|_)id$/.test(s.name)).map((s) => s.name), `node ${i}`).toEqual([]);
      // Series that name a node (leader, peer, follower) in a label: their values are flags, ages or sizes, never that node.
      for (const s of all.filter((x) => x.labels['leader_id'] !== undefined)) expect(s.value, `${s.name} on node ${i}`).toBe(1);
      expect(all.filter((s) => s.name === 'biha_peer_online').map((s) => s.labels['peer']).sort(), `node ${i}`).toEqual(c.ids().filter((x) => x !== i).map(String));
      expect(all.every((s) => s.labels['node_id'] === String(i)), `node ${i}`).toBe(true);
    }
  }, 60_000);

  it("after the leader is killed, the new leader's metrics say it leads as the primary on a new timeline", async () => {
    const old = leader;
    c.kill9(old);
    const next = await c.waitLeader({ not: old, timeoutMs: 90_000 });
    const other = followers.find((f) => f !== next)!;
    await c.waitStreaming(other);
    const live = [next, other];
    const m = await scrapesWhen(`node ${next} reporting itself as the primary and node ${other} following it`, live, (m) =>
      get(m, next, 'biha_postgres_primary') === 1 &&
      get(m, next, 'biha_is_leader') === 1 &&
      get(m, other, 'biha_postgres_replica') === 1 &&
      get(m, other, 'biha_timeline') === get(m, next, 'biha_timeline') &&
      leaderLabels(m.get(other)!).join() === `${next}=1`,
    90_000);
    expect(live.filter((i) => get(m, i, 'biha_postgres_primary') === 1)).toEqual([next]);
    expect(leaderLabels(m.get(next)!)).toEqual([`${next}=1`]);
    expect(get(m, next, 'biha_replication_lag_bytes')).toBe(0);
    expect(get(m, next, 'biha_timeline')).toBeGreaterThan(timeline);
    expect(get(m, next, 'biha_elections_won_total')).toBeGreaterThanOrEqual(1);
    expect(get(m, next, 'biha_peer_online', { peer: String(old) })).toBe(0);
    expect(get(m, other, 'biha_is_leader')).toBe(0);
    expect(get(m, other, 'biha_replication_lag_bytes')).toBeGreaterThanOrEqual(0);
  }, 240_000);
});
