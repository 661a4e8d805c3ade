// The dashboard's view of the cluster, derived from one StatusFile (what biha.status_v shows plus
// the monitoring rows and the WAL positions the leader relays). Pure.
import type { StatusFile } from '../../bridge/sqlbridge.js';
import { lsnOf } from '../../pg/lsn.js';
import type { DashHealth, DashNode, DashView } from './wire.js';

type Row = StatusFile['status'][number];

function isLeaderState(state: string): boolean {
  return state === 'LEADER_RW' || state === 'LEADER_RO';
}

/** PostgreSQL's role in Patroni's words: observed for the serving node, inferred from the state for the others. */
function roleOf(st: StatusFile, r: Row): string {
  if (r.mode === 'referee') return 'none';
  if (r.id === st.nodeId) {
    switch (st.extra?.pg_role) {
      case 'PRIMARY':
        return 'primary';
      case 'STANDBY':
        return 'replica';
      case 'STOPPED':
        return 'stopped';
      case 'NONE':
        return 'none';
      default:
        return 'unknown';
    }
  }
  if (!r.online) return 'unknown';
  if (isLeaderState(r.state)) return 'primary';
  return r.state.startsWith('FOLLOWER') ? 'replica' : 'unknown';
}

/** The leader's WAL position as the serving node knows it (its own on the leader). */
function leaderLsn(st: StatusFile, leaderId: number | null): number | null {
  if (leaderId === null) return null;
  if (leaderId === st.nodeId) return lsnOf(st.extra?.lsn);
  const relayed = st.extra?.peer_wal?.find((w) => w.id === leaderId);
  return lsnOf(st.extra?.leader_lsn) ?? lsnOf(relayed?.lsn);
}

function walOf(st: StatusFile, id: number): { tli: number | null; lsn: string | null } {
  if (id === st.nodeId) return { tli: st.extra?.tli ?? null, lsn: st.extra?.lsn ?? null };
  const w = st.extra?.peer_wal?.find((x) => x.id === id);
  return w ? { tli: w.tli, lsn: w.lsn } : { tli: null, lsn: null };
}

/**
 * A node's replication lag: 0 on the leader; the leader's pg_stat_replication row where this is
 * the leader; the serving follower's own figures; else the bytes between the leader's and the
 * node's last relayed WAL positions (no time then). null when unknown.
 */
function lagOf(st: StatusFile, r: Row, leaderId: number | null, lsn: string | null): { bytes: number | null; ms: number | null } {
  if (r.mode === 'referee') return { bytes: null, ms: null };
  if (leaderId !== null && r.id === leaderId) return { bytes: 0, ms: 0 };
  const row = st.monitoring.followers.find((f) => f.id === r.id);
  if (row) return { bytes: row.lag_bytes, ms: row.lag_ms };
  if (r.id === st.nodeId) {
    const x = st.extra;
    if (x && (typeof x.lag_bytes === 'number' || typeof x.lag_ms === 'number')) return { bytes: x.lag_bytes ?? null, ms: x.lag_ms ?? null };
  }
  const lead = leaderLsn(st, leaderId);
  const mine = lsnOf(lsn);
  return { bytes: lead !== null && mine !== null ? Math.max(0, lead - mine) : null, ms: null };
}

function nodeOf(st: StatusFile, r: Row, leaderId: number | null): DashNode {
  const conn = st.nodes.find((n) => n.id === r.id);
  const rep = st.monitoring.followers.find((f) => f.id === r.id);
  const wal = walOf(st, r.id);
  const lag = lagOf(st, r, leaderId, wal.lsn);
  const self = r.id === st.nodeId;
  return {
    id: r.id,
    host: conn?.host ?? null,
    port: conn?.port ?? null,
    state: r.state,
    last_known_state: r.last_known_state,
    mode: r.mode ?? 'regular',
    role: roleOf(st, r),
    online: r.online,
    self,
    leader: leaderId !== null && r.id === leaderId,
    term: r.term,
    timeline: wal.tli,
    lsn: wal.lsn,
    lag_bytes: lag.bytes,
    lag_ms: lag.ms,
    since_last_hb_ms: r.since_last_hb_ms,
    replication_state: rep?.state ?? null,
    sync_state: rep?.sync_state ?? null,
    error: self ? (st.error.type === 'NO_ERROR' ? null : { type: st.error.type, details: st.error.details }) : r.state.startsWith('NODE_ERROR') ? { type: 'NODE_ERROR', details: null } : null,
  };
}

/** Whether the serving node knows a leader and hears from a majority (nquorum) of the voting members. */
export function healthOf(st: StatusFile): DashHealth {
  const self = st.status.find((r) => r.id === st.nodeId);
  const leaderKnown = (self?.leader_id ?? null) !== null;
  const votersOnline = st.status.filter((r) => r.online && (r.id === st.nodeId ? st.config.can_vote : true)).length;
  return { leader_known: leaderKnown, voters_online: votersOnline, nquorum: st.config.nquorum, in_majority: votersOnline >= st.config.nquorum };
}

export function dashView(st: StatusFile): DashView {
  const self = st.status.find((r) => r.id === st.nodeId);
  const leaderId = self?.leader_id ?? null;
  return {
    node_id: st.nodeId,
    generated_at_ms: st.generatedAtMs,
    term: st.config.term,
    leader_id: leaderId,
    service_mode: st.config.service_mode,
    sync_standbys: st.config.sync_standbys,
    heartbeat_send_period: st.config.heartbeat_send_period,
    heartbeat_max_lost: st.config.heartbeat_max_lost,
    decision: st.extra?.decision ?? '',
    health: healthOf(st),
    nodes: st.status.map((r) => nodeOf(st, r, leaderId)),
  };
}

/**
 * The parts of a view that change what the page shows, without what moves on every snapshot
 * (generation time, heartbeat ages, WAL positions and lag, which the page gets once a second):
 * two views with the same key show the same cluster.
 */
export function viewKey(v: DashView): string {
  const nodes = v.nodes.map((n) => [n.id, n.state, n.role, n.online, n.leader, n.term, n.timeline, n.sync_state, n.replication_state, n.error?.type ?? '', n.error?.details ?? '']);
  return JSON.stringify([v.term, v.leader_id, v.service_mode, v.sync_standbys, v.decision, v.health, nodes]);
}
