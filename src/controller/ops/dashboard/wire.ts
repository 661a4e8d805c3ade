// What the dashboard's server sends its page: one typed document per snapshot, the recent history
// and the chart samples. Types only: the page (src/dashboard) imports them too.

/** One member of the cluster as the node serving the page sees it. */
export interface DashNode {
  id: number;
  host: string | null;
  port: number | null;
  /** The biha state (FOLLOWER, LEADER_RW, NODE_ERROR, ...; UNKNOWN when not heard from). */
  state: string;
  last_known_state: string | null;
  /** regular, referee or referee_with_wal. */
  mode: string;
  /** PostgreSQL's role in Patroni's words where known: primary, replica, stopped, none, unknown. */
  role: string;
  online: boolean;
  self: boolean;
  leader: boolean;
  /** The node's own last known term (null: never heard from it). */
  term: number | null;
  timeline: number | null;
  lsn: string | null;
  lag_bytes: number | null;
  lag_ms: number | null;
  since_last_hb_ms: number | null;
  /** pg_stat_replication's state and sync_state on the leader for this follower (null elsewhere). */
  replication_state: string | null;
  sync_state: string | null;
  /** The node error type and details (only the serving node knows its own). */
  error: { type: string; details: string | null } | null;
}

/** Why the serving node may not show the cluster as it is (the page shows these in a banner). */
export interface DashHealth {
  leader_known: boolean;
  /** Members this node hears from (itself included) that vote. */
  voters_online: number;
  nquorum: number;
  in_majority: boolean;
}

export interface DashView {
  /** The node serving the page. */
  node_id: number;
  generated_at_ms: number;
  term: number;
  leader_id: number | null;
  service_mode: boolean;
  sync_standbys: number;
  heartbeat_send_period: number;
  heartbeat_max_lost: number;
  /** What the serving node's controller last decided to do with its PostgreSQL, in words. */
  decision: string;
  health: DashHealth;
  nodes: DashNode[];
}

export const EVENT_KINDS = [
  'election',
  'leader_lost',
  'failover',
  'switchover',
  'timeline',
  'rewind',
  'node_error',
  'node_error_cleared',
  'node_offline',
  'node_online',
  'service_mode',
] as const;
export type DashEventKind = (typeof EVENT_KINDS)[number];

/** One entry of the recent history. */
export interface DashEvent {
  /** Increasing per server: the page uses it to merge without duplicates. */
  seq: number;
  at_ms: number;
  kind: DashEventKind;
  /** The node the event is about, when there is one. */
  node: number | null;
  term: number;
  text: string;
}

/** One chart point: the time and, per node id, its lag and state. */
export interface DashSample {
  t_ms: number;
  nodes: Array<{ id: number; lag_bytes: number | null; lag_ms: number | null; state: string }>;
}

/** The whole page state (GET /dashboard/state and the first event of the stream). */
export interface DashState {
  view: DashView;
  events: DashEvent[];
  samples: DashSample[];
}

/** A later event of the stream: the new view, the events since the previous one and one sample. */
export interface DashUpdate {
  view: DashView;
  events: DashEvent[];
  sample: DashSample;
}
