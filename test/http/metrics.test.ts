// Prometheus metrics: the text a scrape gets, labels on every sample, counters, and /metrics.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { register as globalRegistry } from 'prom-client';
import { startHttpServer } from '../../src/controller/ops/http.js';
import type { HttpServerHandle } from '../../src/controller/ops/http.js';
import { HeartbeatRtt, Metrics } from '../../src/controller/ops/metrics.js';
import { samples, value } from '../helpers/promtext.js';
import type { Sample } from '../helpers/promtext.js';
import { FakeSource, leaderRW, makeStatus, nodeError, pgStopped, silentLogger, streamingFollower } from './fixtures.js';

const LABELS = { node_id: '1', node_name: 'alpha', region: 'eu-west' };

async function scrape(m: Metrics): Promise<Sample[]> {
  return samples(await m.registry.metrics());
}

describe('Metrics', () => {
  it('puts node_id, node_name and region on every sample', async () => {
    const m = new Metrics(LABELS);
    m.update(leaderRW());
    m.heartbeatSent();
    m.heartbeatReceived();
    m.reconnect(2);
    m.electionStarted();
    m.electionWon();
    m.observeControlRtt(0.002);
    const all = await scrape(m);
    expect(all.length).toBeGreaterThan(30);
    for (const s of all) expect({ name: s.name, ...s.labels }).toMatchObject({ name: s.name, ...LABELS });
  });

  it('keeps the labels visible when name or region are empty', async () => {
    const m = new Metrics({ node_id: '4', node_name: '', region: '' });
    m.update(leaderRW());
    for (const s of await scrape(m)) expect(s.labels).toMatchObject({ node_id: '4', node_name: 'node4', region: 'default' });
  });

  it('exports term, one-hot state, leader, nodes online/offline, node error and service mode', async () => {
    const m = new Metrics(LABELS);
    m.update(leaderRW());
    let all = await scrape(m);
    expect(value(all, 'biha_term')).toBe(7);
    expect(all.filter((s) => s.name === 'biha_leader')).toEqual([{ name: 'biha_leader', labels: { ...LABELS, leader_id: '1' }, value: 1 }]);
    expect(value(all, 'biha_is_leader')).toBe(1);
    expect(value(all, 'biha_state', { state: 'LEADER_RW' })).toBe(1);
    const states = all.filter((s) => s.name === 'biha_state');
    expect(states.length).toBe(11);
    expect(states.reduce((a, s) => a + s.value, 0)).toBe(1);
    expect(value(all, 'biha_nodes_online')).toBe(3);
    expect(value(all, 'biha_nodes_offline')).toBe(0);
    expect(value(all, 'biha_node_error')).toBe(0);
    expect(value(all, 'biha_service_mode')).toBe(0);

    const inService = leaderRW();
    inService.config.service_mode = true;
    m.update(inService);
    expect(value(await scrape(m), 'biha_service_mode')).toBe(1);

    const st = nodeError();
    st.status[0]!.online = false;
    st.status[0]!.since_last_hb_ms = null;
    m.update(st);
    all = await scrape(m);
    expect(value(all, 'biha_state', { state: 'NODE_ERROR' })).toBe(1);
    expect(value(all, 'biha_state', { state: 'LEADER_RW' })).toBe(0);
    expect(value(all, 'biha_nodes_online')).toBe(2);
    expect(value(all, 'biha_nodes_offline')).toBe(1);
    expect(value(all, 'biha_node_error')).toBe(1);
    expect(value(all, 'biha_peer_online', { peer: '1' })).toBe(0);
    expect(value(all, 'biha_peer_since_last_heartbeat_seconds', { peer: '1' })).toBeUndefined();
    expect(value(all, 'biha_peer_since_last_heartbeat_seconds', { peer: '2' })).toBeCloseTo(0.24);
  });

  it('maps a state it does not know to UNKNOWN and a missing leader to no biha_leader sample', async () => {
    const m = new Metrics(LABELS);
    m.update(leaderRW());
    m.update(makeStatus({ state: 'SOMETHING_NEW', leaderId: null }));
    const all = await scrape(m);
    expect(value(all, 'biha_state', { state: 'UNKNOWN' })).toBe(1);
    expect(all.filter((s) => s.name === 'biha_leader')).toEqual([]);
    expect(value(all, 'biha_is_leader')).toBe(0);
  });

  it('exports heartbeat age per peer and, on the leader, lag per follower, and drops removed ones', async () => {
    const m = new Metrics(LABELS);
    m.update(leaderRW());
    let all = await scrape(m);
    expect(value(all, 'biha_peer_since_last_heartbeat_seconds', { peer: '2' })).toBeCloseTo(0.24);
    expect(value(all, 'biha_peer_since_last_heartbeat_seconds', { peer: '3' })).toBeCloseTo(0.36);
    expect(value(all, 'biha_peer_since_last_heartbeat_seconds', { peer: '1' })).toBeUndefined();
    expect(value(all, 'biha_follower_lag_bytes', { follower: '3' })).toBe(4096);
    expect(value(all, 'biha_follower_lag_seconds', { follower: '3' })).toBeCloseTo(0.25);
    expect(value(all, 'biha_follower_lag_bytes', { follower: '2' })).toBe(0);

    const st = leaderRW();
    st.status = st.status.filter((r) => r.id !== 3);
    st.nodes = st.nodes.filter((n) => n.id !== 3);
    st.monitoring.followers = st.monitoring.followers.filter((f) => f.id !== 3);
    m.update(st);
    all = await scrape(m);
    expect(all.filter((s) => s.labels['peer'] === '3' && s.name !== 'biha_reconnects_total')).toEqual([]);
    expect(all.filter((s) => s.labels['follower'] === '3')).toEqual([]);
  });

  it('exports the WAL each biha slot holds, its wal_status one-hot and whether it is in use', async () => {
    const m = new Metrics(LABELS);
    const st = leaderRW();
    st.extra = {
      ...st.extra,
      slots: [
        { slot_name: 'biha_node_2', id: 2, active: true, wal_status: 'reserved', retained_bytes: 8192 },
        { slot_name: 'biha_node_3', id: 3, active: false, wal_status: 'lost', retained_bytes: null },
      ],
    };
    m.update(st);
    let all = await scrape(m);
    expect(value(all, 'biha_slot_retained_wal_bytes', { slot: 'biha_node_2', peer: '2' })).toBe(8192);
    expect(value(all, 'biha_slot_retained_wal_bytes', { slot: 'biha_node_3' })).toBeUndefined();
    expect(value(all, 'biha_slot_wal_status', { slot: 'biha_node_2', wal_status: 'reserved' })).toBe(1);
    expect(value(all, 'biha_slot_wal_status', { slot: 'biha_node_2', wal_status: 'lost' })).toBe(0);
    expect(value(all, 'biha_slot_wal_status', { slot: 'biha_node_3', wal_status: 'lost' })).toBe(1);
    expect(value(all, 'biha_slot_active', { slot: 'biha_node_2' })).toBe(1);
    expect(value(all, 'biha_slot_active', { slot: 'biha_node_3' })).toBe(0);

    st.extra = { ...st.extra, slots: [] };
    m.update(st);
    all = await scrape(m);
    expect(all.filter((s) => s.name.startsWith('biha_slot_'))).toEqual([]);
  });

  it("exports the leader's own PostgreSQL as Patroni does: running, primary, timeline, version, WAL position, no lag", async () => {
    const m = new Metrics(LABELS);
    const st = leaderRW();
    st.extra = { ...st.extra, server_version: 150004, wal: { current: 0x3000060, received: null, replayed: null }, sync_standby: false };
    m.update(st);
    const all = await scrape(m);
    expect(value(all, 'biha_postgres_running')).toBe(1);
    expect(value(all, 'biha_postgres_primary')).toBe(1);
    expect(value(all, 'biha_postgres_replica')).toBe(0);
    expect(value(all, 'biha_timeline')).toBe(3);
    expect(value(all, 'biha_postgres_server_version')).toBe(150004);
    expect(value(all, 'biha_xlog_location')).toBe(0x3000060);
    expect(value(all, 'biha_xlog_received_location')).toBe(0);
    expect(value(all, 'biha_xlog_replayed_location')).toBe(0);
    expect(value(all, 'biha_replication_lag_bytes')).toBe(0);
    expect(value(all, 'biha_replication_lag_seconds')).toBe(0);
    expect(value(all, 'biha_sync_standby')).toBe(0);
    expect(value(all, 'biha_is_leader')).toBe(1);
  });

  it("exports a follower's own lag, standby role, received and replayed WAL and synchronous standby flag", async () => {
    const m = new Metrics({ ...LABELS, node_id: '2' });
    m.update(streamingFollower({ server_version: 150004, wal: { current: null, received: 0x3000100, replayed: 0x3000000 }, sync_standby: true }));
    const all = await scrape(m);
    expect(value(all, 'biha_postgres_running')).toBe(1);
    expect(value(all, 'biha_postgres_primary')).toBe(0);
    expect(value(all, 'biha_postgres_replica')).toBe(1);
    expect(value(all, 'biha_replication_lag_bytes')).toBe(1000);
    expect(value(all, 'biha_replication_lag_seconds')).toBeCloseTo(0.04);
    expect(value(all, 'biha_xlog_location')).toBe(0);
    expect(value(all, 'biha_xlog_received_location')).toBe(0x3000100);
    expect(value(all, 'biha_xlog_replayed_location')).toBe(0x3000000);
    expect(value(all, 'biha_sync_standby')).toBe(1);
    expect(value(all, 'biha_is_leader')).toBe(0);
    expect(all.filter((s) => s.name === 'biha_leader').map((s) => s.labels['leader_id'])).toEqual(['1']);
    expect(all.filter((s) => s.name.startsWith('biha_follower_lag_'))).toEqual([]);
  });

  it('says PostgreSQL is down with 0s and drops what it no longer knows', async () => {
    const m = new Metrics(LABELS);
    m.update(streamingFollower({ server_version: 150004, wal: { current: null, received: 1, replayed: 1 } }));
    m.update(pgStopped());
    const all = await scrape(m);
    expect(value(all, 'biha_postgres_running')).toBe(0);
    expect(value(all, 'biha_postgres_primary')).toBe(0);
    expect(value(all, 'biha_postgres_replica')).toBe(0);
    for (const name of ['biha_timeline', 'biha_replication_lag_bytes', 'biha_replication_lag_seconds', 'biha_postgres_server_version', 'biha_xlog_location', 'biha_xlog_replayed_location'])
      expect(value(all, name), name).toBeUndefined();
  });

  it('exports no PostgreSQL metrics on a referee, which runs none', async () => {
    const m = new Metrics(LABELS);
    m.update(streamingFollower({ server_version: 150004, wal: { current: null, received: 1, replayed: 1 } }));
    m.update(makeStatus({ nodeId: 3, state: 'FOLLOWER', pgState: 'none', extra: { pg_role: 'NONE', upstream: 0, tli: null, lsn: null } }));
    const all = await scrape(m);
    expect(all.filter((s) => /^biha_(postgres_|xlog_|timeline|replication_lag_|sync_standby)/.test(s.name))).toEqual([]);
    expect(value(all, 'biha_state', { state: 'FOLLOWER' })).toBe(1);
  });

  it('exports the cluster and the build as info metrics', async () => {
    const m = new Metrics(LABELS, { cluster: 'c0ffee', version: '1.2.3' });
    const all = await scrape(m);
    expect(all.filter((s) => s.name === 'biha_cluster_info')).toEqual([{ name: 'biha_cluster_info', labels: { ...LABELS, cluster: 'c0ffee' }, value: 1 }]);
    expect(all.filter((s) => s.name === 'biha_build_info')).toEqual([
      { name: 'biha_build_info', labels: { ...LABELS, version: '1.2.3', node_version: process.version }, value: 1 },
    ]);
  });

  it('carries node ids in labels only: no metric is named after an id', async () => {
    const m = new Metrics(LABELS);
    m.update(leaderRW());
    const names = await m.names();
    expect(names.filter((n) => /(^|_)(id|leader_id|node_id|peer_id)$/.test(n))).toEqual([]);
    expect(names).toEqual(expect.arrayContaining(['biha_leader', 'biha_control_rtt_seconds_bucket', 'biha_control_rtt_seconds_count']));
    expect(names).not.toContain('biha_control_rtt_seconds');
  });

  it('counts heartbeats, reconnections and elections', async () => {
    const m = new Metrics(LABELS);
    let all = await scrape(m);
    expect(value(all, 'biha_heartbeats_sent_total')).toBe(0);
    expect(value(all, 'biha_elections_started_total')).toBe(0);
    for (let i = 0; i < 3; i++) m.heartbeatSent();
    for (let i = 0; i < 2; i++) m.heartbeatReceived();
    m.reconnect(2);
    m.reconnect(2);
    m.reconnect(3);
    m.electionStarted();
    m.electionStarted();
    m.electionWon();
    all = await scrape(m);
    expect(value(all, 'biha_heartbeats_sent_total')).toBe(3);
    expect(value(all, 'biha_heartbeats_received_total')).toBe(2);
    expect(value(all, 'biha_reconnects_total', { peer: '2' })).toBe(2);
    expect(value(all, 'biha_reconnects_total', { peer: '3' })).toBe(1);
    expect(value(all, 'biha_elections_started_total')).toBe(2);
    expect(value(all, 'biha_elections_won_total')).toBe(1);
    m.heartbeatSent();
    expect(value(await scrape(m), 'biha_heartbeats_sent_total')).toBe(4);
  });

  it('counts reconnections from the connection counts of the status', async () => {
    const m = new Metrics(LABELS);
    const st = leaderRW(); // conn_count 1 for peers 2 and 3: first connections only
    m.update(st);
    expect(value(await scrape(m), 'biha_reconnects_total', { peer: '2' })).toBeUndefined();
    st.nodes[0]!.conn_count = 3;
    m.update(st);
    m.update(st);
    expect(value(await scrape(m), 'biha_reconnects_total', { peer: '2' })).toBe(2);
    st.nodes[0]!.conn_count = 4;
    m.update(st);
    expect(value(await scrape(m), 'biha_reconnects_total', { peer: '2' })).toBe(3);
  });

  it('observes control-channel round trips in a histogram', async () => {
    const m = new Metrics(LABELS);
    m.observeControlRtt(0.0004);
    m.observeControlRtt(0.003);
    m.observeControlRtt(2);
    m.observeControlRtt(Number.NaN);
    m.observeControlRtt(-1);
    const all = await scrape(m);
    expect(value(all, 'biha_control_rtt_seconds_count')).toBe(3);
    expect(value(all, 'biha_control_rtt_seconds_bucket', { le: '0.0005' })).toBe(1);
    expect(value(all, 'biha_control_rtt_seconds_bucket', { le: '0.005' })).toBe(2);
    expect(value(all, 'biha_control_rtt_seconds_bucket', { le: '+Inf' })).toBe(3);
    expect(value(all, 'biha_control_rtt_seconds_sum')).toBeCloseTo(2.0034);
  });

  it('measures heartbeat round trips by seq per peer', () => {
    const seen: number[] = [];
    let now = 1000;
    const rtt = new HeartbeatRtt({ observeControlRtt: (s) => seen.push(s) }, () => now);
    rtt.sent(2, 10);
    rtt.sent(3, 10);
    now = 1004;
    rtt.acked(2, 10);
    rtt.acked(2, 10); // a duplicate answer counts once
    rtt.acked(3, 9); // an answer to an older heartbeat is ignored
    rtt.sent(3, 11);
    now = 1010;
    rtt.acked(3, 11);
    rtt.sent(2, 11);
    rtt.forget(2);
    rtt.acked(2, 11);
    expect(seen.map((s) => Math.round(s * 1e6))).toEqual([4000, 6000]);
  });

  it('uses a registry of its own', async () => {
    const a = new Metrics(LABELS);
    const b = new Metrics({ ...LABELS, node_id: '2' });
    a.heartbeatSent();
    expect(value(await scrape(a), 'biha_heartbeats_sent_total')).toBe(1);
    expect(value(await scrape(b), 'biha_heartbeats_sent_total')).toBe(0);
    expect(globalRegistry.getSingleMetric('biha_heartbeats_sent_total')).toBeUndefined();
  });
});

describe('GET /metrics', () => {
  let server: HttpServerHandle;
  let source: FakeSource;
  let metrics: Metrics;

  beforeAll(async () => {
    source = new FakeSource(leaderRW());
    metrics = new Metrics(LABELS);
    server = await startHttpServer({ host: '127.0.0.1', port: 0, logger: silentLogger, source, metrics });
  });
  afterAll(async () => {
    await server.close();
  });

  it('serves the Prometheus text of the current status', async () => {
    metrics.heartbeatSent();
    let r = await fetch(`http://127.0.0.1:${server.port}/metrics`);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    let all = samples(await r.text());
    expect(value(all, 'biha_state', { state: 'LEADER_RW' })).toBe(1);
    expect(value(all, 'biha_heartbeats_sent_total')).toBe(1);
    for (const s of all) expect(s.labels).toMatchObject(LABELS);

    source.current = streamingFollower();
    source.current.config.term = 8;
    r = await fetch(`http://127.0.0.1:${server.port}/metrics`);
    all = samples(await r.text());
    expect(value(all, 'biha_state', { state: 'FOLLOWER' })).toBe(1);
    expect(value(all, 'biha_term')).toBe(8);
  });

  it('still serves the counters when the status is not available', async () => {
    source.broken = new Error('starting');
    const r = await fetch(`http://127.0.0.1:${server.port}/metrics`);
    expect(r.status).toBe(200);
    expect(value(samples(await r.text()), 'biha_heartbeats_sent_total')).toBeGreaterThanOrEqual(1);
    source.broken = null;
  });
});
