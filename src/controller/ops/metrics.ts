// Prometheus metrics of one controller (prom-client, in a registry of its own so that two
// controllers in one process, as in tests, never share samples). Every sample carries the labels
// node_id, node_name and region. docs/operations.md lists the metrics; docs/grafana and
// docs/prometheus hold a dashboard and alert rules built on them.
//
// Node ids only ever appear as label values (leader_id, peer, follower), never as a sample's
// value: a value is something to graph or compare with a threshold.
//
// Gauges are refreshed from a StatusFile by update() (the HTTP server calls it on every scrape);
// counters and the RTT histogram are fed by the controller as things happen. Reconnections are
// counted by update() from the control channel's per-peer connection counts (nodes[].conn_count),
// so the transport needs no hook; reconnect() is there for callers that see one directly.
import { Counter, Gauge, Histogram, Registry } from './promclasses.js';
import { BIHA_STATES } from '../../raft/index.js';
import type { StatusFile } from '../bridge/sqlbridge.js';
import { nodeView, pgRunning } from './nodeview.js';

export interface MetricLabels {
  node_id: string;
  node_name: string;
  region: string;
}

/** What biha_cluster_info and biha_build_info say. */
export interface MetricInfo {
  /** The cluster's id (biha.conf clusterId). */
  cluster: string;
  /** biha's version (package.json). */
  version: string;
}

/** Buckets of biha_control_rtt_seconds: loopback (sub-millisecond) up to a slow WAN. */
export const RTT_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/** pg_replication_slots.wal_status values (PostgreSQL 13+). */
export const SLOT_WAL_STATUSES = ['reserved', 'extended', 'unreserved', 'lost'] as const;

const KNOWN_STATES: ReadonlySet<string> = new Set(BIHA_STATES);

export class Metrics {
  readonly registry: Registry;
  private readonly term: Gauge;
  private readonly state: Gauge<'state'>;
  private readonly leader: Gauge<'leader_id'>;
  private readonly isLeader: Gauge;
  private readonly nodesOnline: Gauge;
  private readonly nodesOffline: Gauge;
  private readonly nodeError: Gauge;
  private readonly serviceMode: Gauge;
  private readonly peerOnline: Gauge<'peer'>;
  private readonly sinceLastHb: Gauge<'peer'>;
  private readonly lagBytes: Gauge;
  private readonly lagSeconds: Gauge;
  private readonly followerLagBytes: Gauge<'follower'>;
  private readonly followerLagSeconds: Gauge<'follower'>;
  private readonly timeline: Gauge;
  private readonly pgRunning: Gauge;
  private readonly pgPrimary: Gauge;
  private readonly pgReplica: Gauge;
  private readonly serverVersion: Gauge;
  private readonly xlogLocation: Gauge;
  private readonly xlogReceived: Gauge;
  private readonly xlogReplayed: Gauge;
  private readonly syncStandby: Gauge;
  private readonly slotRetained: Gauge<'slot' | 'peer'>;
  private readonly slotWalStatus: Gauge<'slot' | 'peer' | 'wal_status'>;
  private readonly slotActive: Gauge<'slot' | 'peer'>;
  private readonly hbSent: Counter;
  private readonly hbReceived: Counter;
  private readonly reconnects: Counter<'peer'>;
  private readonly electionsStarted: Counter;
  private readonly electionsWon: Counter;
  private readonly controlRtt: Histogram;
  private readonly callbacks: Counter<'event' | 'outcome'>;
  private readonly proxyConns: Counter<'endpoint'>;
  private readonly proxyOpenConns: Gauge<'endpoint'>;
  private readonly proxyDropped: Counter<'endpoint' | 'reason'>;
  private readonly vipHeld: Gauge;
  /** Last conn_count seen per peer (reconnections are its increases after the first connection). */
  private readonly connSeen = new Map<number, number>();

  constructor(labels: MetricLabels, info: MetricInfo = { cluster: 'unknown', version: 'unknown' }) {
    this.registry = new Registry();
    this.registry.setDefaultLabels({
      node_id: labels.node_id,
      node_name: labels.node_name !== '' ? labels.node_name : `node${labels.node_id}`,
      // An empty label value is no label at all for Prometheus: keep the label visible.
      region: labels.region !== '' ? labels.region : 'default',
    });
    const registers = [this.registry];
    const gauge = <L extends string = never>(name: string, help: string, labelNames: L[] = []): Gauge<L> =>
      new Gauge<L>({ name, help, labelNames, registers });
    const counter = <L extends string = never>(name: string, help: string, labelNames: L[] = []): Counter<L> =>
      new Counter<L>({ name, help, labelNames, registers });

    gauge('biha_cluster_info', 'Always 1; the cluster label is the id of the cluster this node belongs to.', ['cluster']).set({ cluster: info.cluster || 'unknown' }, 1);
    gauge('biha_build_info', 'Always 1; the labels are the biha version and the Node.js version the controller runs on.', ['version', 'node_version'])
      .set({ version: info.version || 'unknown', node_version: process.version }, 1);
    this.term = gauge('biha_term', 'Raft term this node is in.');
    this.state = gauge('biha_state', 'State of this node: 1 for the current state, 0 for every other.', ['state']);
    this.leader = gauge('biha_leader', 'Always 1, labelled with the node id of the leader this node knows of; absent while it knows none.', ['leader_id']);
    this.isLeader = gauge('biha_is_leader', '1 while this node is the leader (LEADER_RW or LEADER_RO), else 0.');
    this.nodesOnline = gauge('biha_nodes_online', 'Cluster members this node sees online (itself included).');
    this.nodesOffline = gauge('biha_nodes_offline', 'Cluster members this node sees offline.');
    this.nodeError = gauge('biha_node_error', '1 while this node is in NODE_ERROR (see biha.error_details()), else 0.');
    this.serviceMode = gauge('biha_service_mode', '1 while the cluster is in service mode (no automatic elections or rewinds), else 0.');
    this.peerOnline = gauge('biha_peer_online', '1 when the peer is online as this node sees it, else 0.', ['peer']);
    this.sinceLastHb = gauge('biha_peer_since_last_heartbeat_seconds', 'Seconds since the last heartbeat from / to the peer.', ['peer']);
    this.lagBytes = gauge('biha_replication_lag_bytes', "This node's own replication lag: WAL bytes it has not replayed yet of what the leader last reported (0 on the leader; absent when unknown).");
    this.lagSeconds = gauge('biha_replication_lag_seconds', "This node's own replay lag in seconds: age of the oldest leader WAL position it has not replayed (0 on the leader and when caught up; absent when unknown).");
    this.followerLagBytes = gauge('biha_follower_lag_bytes', 'On the leader: WAL bytes a follower has not replayed yet (pg_stat_replication).', ['follower']);
    this.followerLagSeconds = gauge('biha_follower_lag_seconds', "On the leader: a follower's replay lag in seconds (pg_stat_replication.replay_lag).", ['follower']);
    this.timeline = gauge('biha_timeline', "Timeline of this node's PostgreSQL.");
    this.pgRunning = gauge('biha_postgres_running', "1 while this node's PostgreSQL runs and answers the controller, else 0 (absent on a referee).");
    this.pgPrimary = gauge('biha_postgres_primary', "1 while this node's PostgreSQL runs as a primary (not in recovery), else 0.");
    this.pgReplica = gauge('biha_postgres_replica', "1 while this node's PostgreSQL runs as a standby (in recovery), else 0.");
    this.serverVersion = gauge('biha_postgres_server_version', "server_version_num of this node's PostgreSQL, as 150004.");
    this.xlogLocation = gauge('biha_xlog_location', 'Current WAL write position of this primary in bytes (pg_current_wal_lsn()); 0 on a standby.');
    this.xlogReceived = gauge('biha_xlog_received_location', 'WAL position this standby has received, in bytes (pg_last_wal_receive_lsn()); 0 on a primary.');
    this.xlogReplayed = gauge('biha_xlog_replayed_location', 'WAL position this standby has replayed, in bytes (pg_last_wal_replay_lsn()); 0 on a primary.');
    this.syncStandby = gauge('biha_sync_standby', "1 while this follower is one of the leader's synchronous standbys (synchronous_standby_names), else 0.");
    this.slotRetained = gauge('biha_slot_retained_wal_bytes', "WAL this node keeps for a biha replication slot (from the slot's restart_lsn to this node's WAL position).", ['slot', 'peer']);
    this.slotWalStatus = gauge(
      'biha_slot_wal_status',
      "wal_status of a biha replication slot: 1 for the current one (reserved, extended, unreserved or lost), 0 for the others. 'lost': the member needs bihactl reinit.",
      ['slot', 'peer', 'wal_status'],
    );
    this.slotActive = gauge('biha_slot_active', '1 while a walsender uses the biha replication slot, else 0.', ['slot', 'peer']);
    this.hbSent = counter('biha_heartbeats_sent_total', 'Heartbeats (raft append messages) sent.');
    this.hbReceived = counter('biha_heartbeats_received_total', 'Heartbeats (raft append messages) received.');
    this.reconnects = counter('biha_reconnects_total', 'Control-channel connections to a peer after the first one.', ['peer']);
    this.electionsStarted = counter('biha_elections_started_total', 'Elections this node started as a candidate.');
    this.electionsWon = counter('biha_elections_won_total', 'Elections this node won (it became the leader).');
    this.callbacks = counter('biha_callbacks_total', 'Event callbacks by event and outcome (ok, failed, timeout, error, dropped).', ['event', 'outcome']);
    this.proxyConns = counter('biha_proxy_connections_total', 'Client connections accepted by the proxy (endpoint rw: --proxy-port, ro: --proxy-ro-port).', ['endpoint']);
    this.proxyOpenConns = gauge('biha_proxy_connections_open', 'Client connections open through the proxy now (held ones included).', ['endpoint']);
    this.proxyDropped = counter(
      'biha_proxy_connections_dropped_total',
      'Client connections the proxy closed without a backend session (reason: hold_timeout, backend_error, limit, stopping).',
      ['endpoint', 'reason'],
    );
    this.vipHeld = gauge('biha_vip_held', '1 while this node holds the virtual IP (--vip), else 0.');
    this.controlRtt = new Histogram({
      name: 'biha_control_rtt_seconds',
      help: 'Round trip of a heartbeat and its acknowledgement on the control channel.',
      buckets: RTT_BUCKETS,
      registers,
    });
  }

  /** Every metric name this registry exports, with a histogram's _bucket, _sum and _count series. */
  async names(): Promise<string[]> {
    const out: string[] = [];
    for (const m of await this.registry.getMetricsAsJSON()) {
      if (String(m.type) === 'histogram') out.push(`${m.name}_bucket`, `${m.name}_sum`, `${m.name}_count`);
      else out.push(m.name);
    }
    return out;
  }

  update(status: StatusFile): void {
    const self = status.status.find((r) => r.id === status.nodeId);
    const current = self && KNOWN_STATES.has(self.state) ? self.state : 'UNKNOWN';
    this.term.set(finite(status.config.term));
    for (const s of BIHA_STATES) this.state.set({ state: s }, s === current ? 1 : 0);
    this.leader.reset();
    const leaderId = self?.leader_id ?? 0;
    if (Number.isInteger(leaderId) && leaderId > 0) this.leader.set({ leader_id: String(leaderId) }, 1);
    this.isLeader.set(current === 'LEADER_RW' || current === 'LEADER_RO' ? 1 : 0);
    const online = status.status.filter((r) => r.online).length;
    this.nodesOnline.set(online);
    this.nodesOffline.set(status.status.length - online);
    this.nodeError.set(status.error.type !== 'NO_ERROR' ? 1 : 0);
    this.serviceMode.set(status.config.service_mode ? 1 : 0);

    // Labelled gauges start empty each time, so that removed nodes disappear.
    this.peerOnline.reset();
    this.sinceLastHb.reset();
    for (const r of status.status) {
      if (r.id === status.nodeId) continue;
      const peer = String(r.id);
      this.peerOnline.set({ peer }, r.online ? 1 : 0);
      if (r.since_last_hb_ms !== null && Number.isFinite(r.since_last_hb_ms))
        this.sinceLastHb.set({ peer }, Math.max(0, r.since_last_hb_ms) / 1000);
    }

    this.followerLagBytes.reset();
    this.followerLagSeconds.reset();
    for (const f of status.monitoring.followers) {
      const follower = f.id > 0 ? String(f.id) : f.application_name;
      if (f.lag_bytes !== null && Number.isFinite(f.lag_bytes)) this.followerLagBytes.set({ follower }, f.lag_bytes);
      if (f.lag_ms !== null && Number.isFinite(f.lag_ms)) this.followerLagSeconds.set({ follower }, f.lag_ms / 1000);
    }
    this.updatePostgres(status);

    this.slotRetained.reset();
    this.slotWalStatus.reset();
    this.slotActive.reset();
    for (const sl of status.extra?.slots ?? []) {
      const l = { slot: sl.slot_name, peer: String(sl.id) };
      this.slotActive.set(l, sl.active ? 1 : 0);
      if (sl.retained_bytes !== null && Number.isFinite(sl.retained_bytes)) this.slotRetained.set(l, sl.retained_bytes);
      for (const w of SLOT_WAL_STATUSES) this.slotWalStatus.set({ ...l, wal_status: w }, w === sl.wal_status ? 1 : 0);
    }

    for (const n of status.nodes) {
      const prev = this.connSeen.get(n.id);
      this.connSeen.set(n.id, n.conn_count);
      // The first connection is not a reconnection; a count that went down (new transport) restarts.
      if (prev === undefined) {
        if (n.conn_count > 1) this.reconnects.inc({ peer: String(n.id) }, n.conn_count - 1);
      } else if (n.conn_count > prev && prev > 0) {
        this.reconnects.inc({ peer: String(n.id) }, n.conn_count - prev);
      } else if (n.conn_count > prev) {
        this.reconnects.inc({ peer: String(n.id) }, n.conn_count - prev - 1);
      }
    }
    const ids = new Set(status.nodes.map((n) => n.id));
    for (const id of [...this.connSeen.keys()]) if (!ids.has(id)) this.connSeen.delete(id);
  }

  /** This node's own PostgreSQL as Patroni's metrics show it; none of it on a referee, which runs no PostgreSQL. */
  private updatePostgres(status: StatusFile): void {
    const v = nodeView(status);
    const x = status.extra ?? {};
    const hasPg = v.role !== 'none';
    const running = hasPg && pgRunning(v);
    setOrDrop(this.pgRunning, hasPg ? flag(running) : null);
    setOrDrop(this.pgPrimary, hasPg ? flag(running && v.role === 'primary') : null);
    setOrDrop(this.pgReplica, hasPg ? flag(running && v.role === 'replica') : null);
    setOrDrop(this.timeline, hasPg ? v.timeline : null);
    setOrDrop(this.lagBytes, hasPg ? v.lag_bytes : null);
    setOrDrop(this.lagSeconds, hasPg && v.lag_ms !== null ? v.lag_ms / 1000 : null);
    setOrDrop(this.serverVersion, hasPg ? (x.server_version ?? null) : null);
    // As Patroni: the positions that do not apply to the role PostgreSQL was polled in are 0.
    const wal = hasPg ? x.wal : null;
    const primary = wal !== null && wal !== undefined && wal.current !== null;
    setOrDrop(this.xlogLocation, wal ? (primary ? wal.current : 0) : null);
    setOrDrop(this.xlogReceived, wal ? (primary ? 0 : wal.received) : null);
    setOrDrop(this.xlogReplayed, wal ? (primary ? 0 : wal.replayed) : null);
    setOrDrop(this.syncStandby, hasPg ? flag(x.sync_standby === true) : null);
  }

  heartbeatSent(): void {
    this.hbSent.inc();
  }

  heartbeatReceived(): void {
    this.hbReceived.inc();
  }

  reconnect(peer: number): void {
    this.reconnects.inc({ peer: String(peer) });
  }

  electionStarted(): void {
    this.electionsStarted.inc();
  }

  electionWon(): void {
    this.electionsWon.inc();
  }

  callbackRun(event: string, outcome: string): void {
    this.callbacks.inc({ event, outcome });
  }

  proxyAccepted(endpoint: string): void {
    this.proxyConns.inc({ endpoint });
  }

  proxyOpen(endpoint: string, n: number): void {
    this.proxyOpenConns.set({ endpoint }, n);
  }

  proxyDrop(endpoint: string, reason: string): void {
    this.proxyDropped.inc({ endpoint, reason });
  }

  vip(held: boolean): void {
    this.vipHeld.set(held ? 1 : 0);
  }

  observeControlRtt(seconds: number): void {
    if (Number.isFinite(seconds) && seconds >= 0) this.controlRtt.observe(seconds);
  }
}

/**
 * Heartbeat round trips for biha_control_rtt_seconds: sent() when a heartbeat (raft `app`) goes to
 * a peer, acked() when that peer's `app_resp` echoes its seq. Only the newest outstanding heartbeat
 * per peer is remembered, so lost heartbeats cost nothing.
 */
export class HeartbeatRtt {
  private readonly outstanding = new Map<number, { seq: number; at: number }>();

  constructor(
    private readonly metrics: Pick<Metrics, 'observeControlRtt'>,
    private readonly nowMs: () => number = () => performance.now(),
  ) {}

  sent(peer: number, seq: number): void {
    this.outstanding.set(peer, { seq, at: this.nowMs() });
  }

  acked(peer: number, seq: number): void {
    const o = this.outstanding.get(peer);
    if (!o || o.seq !== seq) return;
    this.outstanding.delete(peer);
    this.metrics.observeControlRtt(Math.max(0, this.nowMs() - o.at) / 1000);
  }

  forget(peer: number): void {
    this.outstanding.delete(peer);
  }
}

function finite(n: number): number {
  return Number.isFinite(n) ? n : 0;
}

function flag(b: boolean): number {
  return b ? 1 : 0;
}

/** An unlabelled gauge's sample, or no sample at all for an unknown (null or not finite) value. */
function setOrDrop(g: Gauge, v: number | null | undefined): void {
  if (v === null || v === undefined || !Number.isFinite(v)) g.remove({});
  else g.set(v);
}
