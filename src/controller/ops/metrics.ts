// Prometheus metrics of one controller (prom-client, in a registry of its own so that two
// controllers in one process, as in tests, never share samples). Every sample carries the labels
// node_id, node_name and region. docs/operations.md lists the metrics.
//
// Gauges are refreshed from a StatusFile by update() (the HTTP server calls it on every scrape);
// counters and the RTT histogram are fed by the controller as things happen. Reconnections are
// counted by update() from the control channel's per-peer connection counts (nodes[].conn_count),
// so the transport needs no hook; reconnect() is there for callers that see one directly.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { BIHA_STATES } from '../../raft/index.js';
import type { StatusFile } from '../bridge/sqlbridge.js';

export interface MetricLabels {
  node_id: string;
  node_name: string;
  region: string;
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
  private readonly leaderId: Gauge;
  private readonly nodesOnline: Gauge;
  private readonly nodesOffline: Gauge;
  private readonly nodeError: Gauge;
  private readonly serviceMode: Gauge;
  private readonly peerOnline: Gauge<'peer'>;
  private readonly sinceLastHb: Gauge<'peer'>;
  private readonly lagBytes: Gauge<'follower'>;
  private readonly lagSeconds: Gauge<'follower'>;
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

  constructor(labels: MetricLabels) {
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

    this.term = gauge('biha_term', 'Raft term this node is in.');
    this.state = gauge('biha_state', 'State of this node: 1 for the current state, 0 for every other.', ['state']);
    this.leaderId = gauge('biha_leader_id', 'Node id of the leader this node knows of (0: none).');
    this.nodesOnline = gauge('biha_nodes_online', 'Cluster members this node sees online (itself included).');
    this.nodesOffline = gauge('biha_nodes_offline', 'Cluster members this node sees offline.');
    this.nodeError = gauge('biha_node_error', '1 while this node is in NODE_ERROR (see biha.error_details()), else 0.');
    this.serviceMode = gauge('biha_service_mode', '1 while the cluster is in service mode (no automatic elections or rewinds), else 0.');
    this.peerOnline = gauge('biha_peer_online', '1 when the peer is online as this node sees it, else 0.', ['peer']);
    this.sinceLastHb = gauge('biha_peer_since_last_heartbeat_seconds', 'Seconds since the last heartbeat from / to the peer.', ['peer']);
    this.lagBytes = gauge('biha_replication_lag_bytes', 'On the leader: WAL bytes a follower has not replayed yet.', ['follower']);
    this.lagSeconds = gauge('biha_replication_lag_seconds', 'On the leader: replay lag of a follower in seconds.', ['follower']);
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

  update(status: StatusFile): void {
    const self = status.status.find((r) => r.id === status.nodeId);
    const current = self && KNOWN_STATES.has(self.state) ? self.state : 'UNKNOWN';
    this.term.set(finite(status.config.term));
    for (const s of BIHA_STATES) this.state.set({ state: s }, s === current ? 1 : 0);
    this.leaderId.set(finite(self?.leader_id ?? 0));
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

    this.lagBytes.reset();
    this.lagSeconds.reset();
    for (const f of status.monitoring.followers) {
      const follower = f.id > 0 ? String(f.id) : f.application_name;
      if (f.lag_bytes !== null && Number.isFinite(f.lag_bytes)) this.lagBytes.set({ follower }, f.lag_bytes);
      if (f.lag_ms !== null && Number.isFinite(f.lag_ms)) this.lagSeconds.set({ follower }, f.lag_ms / 1000);
    }

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
