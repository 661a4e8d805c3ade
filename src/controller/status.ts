// The status snapshot: one typed document (StatusFile) that biha.status_v, biha.config(), the HTTP
// endpoints, /metrics and `bihactl status` all read. Built from what the controller knows at this
// instant; no I/O.
import { BIHA_STATES, votesNow } from '../raft/index.js';
import type { ClusterConfig, NodeId, PeerView, SoftState } from '../raft/index.js';
import type { StatusFile } from './bridge/sqlbridge.js';
import type { Observed } from './driver/nc.js';
import { parseSyncStandbyNames, slotName, syncStandbyNames } from './driver/duties.js';
import type { LocalPgStatus } from './pg/conn.js';
import { formatLsn } from './pg/lsn.js';
import type { NodeErrorInfo } from './state/nodefiles.js';
import type { FailbackSetting } from './ops/failback.js';
import type { SwitchoverRecord } from './ops/switchover.js';

export interface StatusInputs {
  readonly selfId: NodeId;
  readonly mode: string;
  readonly hasData: boolean;
  readonly config: ClusterConfig;
  readonly soft: SoftState;
  readonly peers: readonly PeerView[];
  readonly transport: ReadonlyArray<{ id: number; state: string; sinceConnStartMs: number | null; connCount: number }>;
  readonly pg: LocalPgStatus | null;
  readonly observed: Observed;
  readonly nodeError: NodeErrorInfo | null;
  readonly decision: string;
  readonly startedAt: number;
  readonly now: number;
  readonly failback: FailbackSetting | null;
  readonly switchover: SwitchoverRecord | null;
  /** This follower's replay lag behind the leader in milliseconds (a LagClock's); null: unknown. */
  readonly ownLagMs?: number | null;
}

function localState(soft: SoftState): string {
  return BIHA_STATES.includes(soft.state) ? soft.state : 'UNKNOWN';
}

/**
 * This follower's lag behind the leader's last reported WAL position (one heartbeat old at most),
 * in bytes, and in time as the controller's LagClock measured it. null on a leader (ownLag() says 0).
 */
function followerLag(i: StatusInputs, curLsn: number | null): { leader_lsn: string | null; lag_bytes: number | null; lag_ms: number | null } {
  const s = i.pg;
  if (i.soft.role === 'leader') return { leader_lsn: null, lag_bytes: null, lag_ms: null };
  const lw = i.peers.find((p) => p.id === i.soft.leaderId)?.wal;
  const bytes = lw?.lsn && s?.inRecovery ? Math.max(0, lw.lsn - (s.replayLsn ?? curLsn ?? 0)) : null;
  return {
    leader_lsn: lw?.lsn ? formatLsn(lw.lsn) : null,
    lag_bytes: bytes,
    lag_ms: bytes === null ? null : bytes === 0 ? 0 : (i.ownLagMs ?? null),
  };
}

/**
 * A follower the leader names in synchronous_standby_names (ANY k over the other regular voting
 * members, leaving out those in NODE_ERROR while enough others remain): what the leader computes,
 * computed here from the same committed configuration and the states this node sees.
 */
function isSyncStandby(i: StatusInputs, states: ReadonlyArray<{ id: number; state: string }>): boolean {
  const leader = i.soft.leaderId;
  if (i.soft.role === 'leader' || !leader || !i.hasData) return false;
  const inError = new Set(states.filter((r) => r.state === 'NODE_ERROR').map((r) => r.id));
  const names = parseSyncStandbyNames(syncStandbyNames(i.config, leader, inError));
  return names !== null && names.names.includes(slotName(i.selfId));
}

/** This node's WAL positions in bytes, as Patroni's xlog metrics: current on a primary, received and replayed on a standby. */
function walPositions(s: LocalPgStatus | null): { current: number | null; received: number | null; replayed: number | null } | null {
  if (!s) return null;
  if (!s.inRecovery) return { current: s.currentLsn, received: null, replayed: null };
  return { current: null, received: s.receiveLsn, replayed: s.replayLsn };
}

export function buildStatus(i: StatusInputs): StatusFile {
  const { config: cfg, soft, pg: s } = i;
  const me = cfg.nodes.find((n) => n.id === i.selfId);
  const status = cfg.nodes.map((n) => {
    if (n.id === i.selfId) {
      const own = i.peers.find((x) => x.id === n.id)?.noWalMs;
      return {
        id: n.id, leader_id: soft.leaderId || null, term: soft.term, online: true, state: localState(soft), last_known_state: localState(soft), since_last_hb_ms: 0, mode: n.mode,
        ...(own !== undefined && own > 0 ? { no_wal_ms: own } : {}),
      };
    }
    const p = i.peers.find((x) => x.id === n.id);
    return {
      ...(p?.noWalMs !== undefined && p.noWalMs > 0 && p.online ? { no_wal_ms: p.noWalMs } : {}),
      id: n.id,
      leader_id: soft.leaderId || null,
      // The node's own last known term (from its last response to the leader); NULL: never heard.
      term: p && p.term > 0 ? p.term : null,
      online: p?.online ?? false,
      state: p?.state ?? 'UNKNOWN',
      last_known_state: p?.lastKnownState ?? null,
      since_last_hb_ms: p && p.sinceLastHbMs >= 0 ? p.sinceLastHbMs : null,
      mode: n.mode,
    };
  });
  const nodes = cfg.nodes
    .filter((n) => n.id !== i.selfId)
    .map((n) => {
      const t = i.transport.find((x) => x.id === n.id);
      return { id: n.id, host: n.host, port: n.port, state: t?.state ?? 'INIT', since_conn_start_ms: t?.sinceConnStartMs ?? null, conn_count: t?.connCount ?? 0 };
    });
  const err = i.nodeError;
  const curLsn = s ? (s.inRecovery ? Math.max(s.receiveLsn ?? 0, s.replayLsn ?? 0) : (s.currentLsn ?? 0)) : null;
  return {
    version: 1,
    generatedAtMs: i.now,
    nodeId: i.selfId,
    config: {
      id: i.selfId,
      term: soft.term,
      nquorum: cfg.params.nquorum,
      minnodes: cfg.params.minnodes,
      heartbeat_send_period: cfg.params.heartbeatSendPeriod,
      heartbeat_max_lost: cfg.params.heartbeatMaxLost,
      no_wal_on_follower: cfg.params.noWalOnFollower,
      sync_standbys: cfg.params.syncStandbys,
      service_mode: cfg.params.serviceMode,
      mode: me?.mode ?? i.mode,
      can_be_leader: me?.canBeLeader ?? false,
      can_vote: me !== undefined && votesNow(me),
      learner: me?.learner === true,
      priority: me?.priority ?? 0,
    },
    status,
    nodes,
    error: err
      ? { type: err.type, details: err.details, begin_lsn: err.beginLsn, end_lsn: err.endLsn, current_tli: err.currentTli, next_tli: err.nextTli, replay_lsn: err.replayLsn }
      : { type: 'NO_ERROR', details: null, begin_lsn: null, end_lsn: null, current_tli: null, next_tli: null, replay_lsn: null },
    monitoring: {
      pg_state: !i.hasData ? 'none' : !s ? 'startup' : s.inRecovery ? (s.replayPauseState && s.replayPauseState !== 'not paused' ? 'recovery_paused' : 'recovery') : 'promoted',
      followers: (s?.replication ?? []).map((r) => {
        const m = /^biha_node_(\d+)$/.exec(r.applicationName);
        return {
          id: m ? Number(m[1]) : 0,
          application_name: r.applicationName,
          state: r.state,
          sync_state: r.syncState,
          lag_bytes: curLsn !== null && r.replayLsn !== null ? Math.max(0, curLsn - r.replayLsn) : null,
          lag_ms: r.replayLagMs,
        };
      }),
    },
    extra: {
      ...followerLag(i, curLsn),
      pg_role: i.hasData ? i.observed.role : 'NONE',
      upstream: i.observed.upstream,
      tli: s?.tli ?? null,
      lsn: curLsn === null ? null : formatLsn(curLsn),
      receive_lsn: s?.receiveLsn == null ? null : formatLsn(s.receiveLsn),
      replay_lsn: s?.replayLsn == null ? null : formatLsn(s.replayLsn),
      server_version: s?.serverVersion ?? null,
      decision: i.decision,
      uptime_s: Math.round((i.now - i.startedAt) / 1000),
      failback: i.failback,
      slots: (s?.slots ?? []).map((x) => ({
        slot_name: x.slotName,
        id: Number(/^biha_node_(\d+)$/.exec(x.slotName)?.[1] ?? 0),
        active: x.active,
        wal_status: x.walStatus,
        retained_bytes: x.retainedBytes,
      })),
      switchover: i.switchover,
      wal: walPositions(s),
      sync_standby: isSyncStandby(i, status),
      peer_wal: i.peers.filter((p) => p.id !== i.selfId && p.wal.lsn > 0).map((p) => ({ id: p.id, tli: p.wal.tli, lsn: formatLsn(p.wal.lsn) })),
    },
  } satisfies StatusFile;
}
