// What one node is, derived from one StatusFile: PostgreSQL's role in Patroni's words, the biha
// state, the timeline and this node's own replication lag. The health checks (http.ts) and the
// metrics (metrics.ts) read a node the same way through nodeView().
import { lsnOf } from '../pg/lsn.js';
import type { StatusFile } from '../bridge/sqlbridge.js';

/** What the checks look at, derived from one StatusFile. */
export interface NodeView {
  node_id: number;
  /** PostgreSQL's role in Patroni's words: primary, replica, stopped or unknown; none on a referee. */
  role: 'primary' | 'replica' | 'stopped' | 'unknown' | 'none';
  /** The biha state of this node (FOLLOWER, LEADER_RW, NODE_ERROR, ...). */
  state: string;
  term: number;
  leader_id: number | null;
  pg_state: string;
  upstream: number | null;
  timeline: number | null;
  lsn: string | null;
  lag_bytes: number | null;
  lag_ms: number | null;
  error: string;
  /** PostgreSQL's server_version_num (150004), null when unknown. */
  server_version: number | null;
  /** Patroni's xlog: the primary's write position, or a replica's received and replayed positions. */
  xlog: { location: string | null } | { received_location: string | null; replayed_location: string | null } | null;
}

function pgRoleOf(st: StatusFile): string {
  const r = st.extra?.pg_role;
  if (typeof r === 'string') return r;
  switch (st.monitoring.pg_state) {
    case 'promoted':
      return 'PRIMARY';
    case 'recovery':
    case 'recovery_paused':
    case 'promoting':
      return 'STANDBY';
    default:
      return 'UNKNOWN';
  }
}

/**
 * This node's replication lag: 0 on a leader; on a follower extra.lag_bytes / extra.lag_ms when the
 * controller provides them, else the bytes between extra.leader_lsn and extra.lsn, else the
 * leader's monitoring row for this node if the status carries one. null when unknown.
 */
export function ownLag(st: StatusFile): { bytes: number | null; ms: number | null } {
  const self = st.status.find((r) => r.id === st.nodeId);
  if (self?.state === 'LEADER_RW' || self?.state === 'LEADER_RO') return { bytes: 0, ms: 0 };
  const x = st.extra ?? {};
  const row = st.monitoring.followers.find((f) => f.id === st.nodeId);
  let bytes: number | null = typeof x.lag_bytes === 'number' && Number.isFinite(x.lag_bytes) ? Math.max(0, x.lag_bytes) : null;
  if (bytes === null) {
    const leader = lsnOf(x.leader_lsn);
    const mine = lsnOf(x.lsn);
    if (leader !== null && mine !== null) bytes = Math.max(0, leader - mine);
  }
  if (bytes === null && row && row.lag_bytes !== null) bytes = row.lag_bytes;
  let ms: number | null = typeof x.lag_ms === 'number' && Number.isFinite(x.lag_ms) ? Math.max(0, x.lag_ms) : null;
  if (ms === null && row && row.lag_ms !== null) ms = row.lag_ms;
  return { bytes, ms };
}

export function nodeView(st: StatusFile): NodeView {
  const self = st.status.find((r) => r.id === st.nodeId);
  const pgRole = pgRoleOf(st);
  const lag = ownLag(st);
  const up = st.extra?.upstream;
  return {
    node_id: st.nodeId,
    role: pgRole === 'PRIMARY' ? 'primary' : pgRole === 'STANDBY' ? 'replica' : pgRole === 'STOPPED' ? 'stopped' : pgRole === 'NONE' ? 'none' : 'unknown',
    state: self?.state ?? 'UNKNOWN',
    term: st.config.term,
    leader_id: self?.leader_id ?? null,
    pg_state: st.monitoring.pg_state,
    upstream: typeof up === 'number' ? up : null,
    timeline: st.extra?.tli ?? null,
    lsn: st.extra?.lsn ?? null,
    lag_bytes: lag.bytes,
    lag_ms: lag.ms,
    error: st.error.type,
    server_version: st.extra?.server_version ?? null,
    xlog: xlogOf(pgRole, st.extra),
  };
}

function xlogOf(pgRole: string, x: StatusFile['extra']): NodeView['xlog'] {
  if (pgRole === 'PRIMARY') return { location: x?.lsn ?? null };
  if (pgRole === 'STANDBY') return { received_location: x?.receive_lsn ?? null, replayed_location: x?.replay_lsn ?? null };
  return null;
}

/** PostgreSQL runs and the controller could query it (pg_state 'startup' means it could not). */
export function pgRunning(v: NodeView): boolean {
  return (v.role === 'primary' || v.role === 'replica') && v.pg_state !== 'startup';
}
