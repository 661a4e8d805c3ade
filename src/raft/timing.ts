// Time arithmetic of elections and the leader lease, and the WAL order used by the election
// restriction. All durations are milliseconds on the caller's monotonic clock.
import { isLeaderCapable } from './config.js';
import type { ClusterConfig, ClusterParams, NodeId, PeerView, WalPos } from './types.js';

/** Default bound on clock-rate drift between two nodes (1 %). */
export const DEFAULT_MAX_DRIFT = 0.01;

/** Order WAL positions by timeline, then LSN (timelines only increase along one history). */
export function compareWal(a: WalPos, b: WalPos): number {
  if (a.tli !== b.tli) return a.tli < b.tli ? -1 : 1;
  if (a.lsn !== b.lsn) return a.lsn < b.lsn ? -1 : 1;
  return 0;
}

/** T: how long a follower waits after the last heartbeat before it may vote or campaign. */
export function electionTimeoutMs(params: ClusterParams): number {
  return params.heartbeatSendPeriod * params.heartbeatMaxLost;
}

/** Safety margin taken off the lease for tick granularity and the time needed to fence PostgreSQL. */
export function leaseMarginMs(params: ClusterParams): number {
  return Math.max(50, Math.floor(params.heartbeatSendPeriod / 2));
}

/**
 * How long after SENDING a heartbeat the leader may count that heartbeat's acknowledgements.
 * A voter that acked it received it no earlier than it was sent and then waits T on its own clock
 * before it votes or campaigns, i.e. at least T/(1+ρ) of real time. The lease of L ms on the
 * leader's clock lasts at most L/(1-ρ) real time, so L < T(1-ρ)/(1+ρ) ends the lease first; the
 * margin covers the tick delay before the leader notices and the time to fence PostgreSQL.
 * Never negative (0 = acknowledgements never count: only minnodes 1 is writable).
 */
export function leaseMs(params: ClusterParams, maxDrift: number = DEFAULT_MAX_DRIFT): number {
  const t = electionTimeoutMs(params);
  const rho = Math.min(Math.max(maxDrift, 0), 0.5);
  return Math.max(0, Math.floor((t * (1 - rho)) / (1 + rho)) - leaseMarginMs(params));
}

/** A candidate as the election ranking sees it. */
export interface RankEntry {
  readonly id: NodeId;
  readonly wal: WalPos;
  readonly priority: number;
}

/** True when `a` should campaign before `b`: more WAL, then higher priority, then lower id. */
export function rankBetter(a: RankEntry, b: RankEntry): boolean {
  const c = compareWal(a.wal, b.wal);
  if (c !== 0) return c > 0;
  if (a.priority !== b.priority) return a.priority > b.priority;
  return a.id < b.id;
}

/**
 * The number of other eligible candidates better placed than `self` according to the last peer
 * view the leader sent: online in that view, not the leader that sent it (we lost it), members
 * that may lead and not in NODE_ERROR. A follower delays its campaign by rank * heartbeatSendPeriod
 * so that the most advanced follower normally campaigns first.
 */
export function electionRank(
  self: RankEntry,
  config: ClusterConfig,
  peers: readonly PeerView[],
  viewFrom: NodeId,
): number {
  let rank = 0;
  for (const p of peers) {
    if (p.id === self.id || p.id === viewFrom || !p.online) continue;
    if (p.state === 'NODE_ERROR' || p.state === 'NODE_ERROR_VOTING') continue;
    const node = config.nodes.find((n) => n.id === p.id);
    if (!node || !isLeaderCapable(node)) continue;
    if (rankBetter({ id: p.id, wal: p.wal, priority: node.priority }, self)) rank++;
  }
  return rank;
}
