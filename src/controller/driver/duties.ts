// What every data node keeps in its PostgreSQL besides the data: replication slots for the other
// data nodes (on standbys too, so a new primary has them before its followers connect) and, on a
// primary, synchronous_standby_names. Pure: the same functions decide for the controller and the
// simulator.
import type { ClusterConfig, NodeId, NodeInfo } from '../../raft/index.js';

export function slotName(id: NodeId): string {
  return `biha_node_${id}`;
}

/** A node with PostgreSQL data (a referee has none). */
export function isDataNode(n: NodeInfo): boolean {
  return n.mode !== 'referee';
}

/** The slots this node keeps: one per other data node of the configuration, sorted. */
export function wantedSlots(config: ClusterConfig, selfId: NodeId): string[] {
  return config.nodes
    .filter((n) => n.id !== selfId && isDataNode(n))
    .map((n) => slotName(n.id))
    .sort();
}

/**
 * The slots a primary makes hold WAL now: those of the data nodes not in `live` (down or in
 * NODE_ERROR; NC passes every node as not live once SLOT_GRACE_MS have passed since the promotion).
 * A slot made on a standby holds no WAL, and PostgreSQL can only make a slot hold WAL when it is
 * created, so a primary drops such a slot and creates it again. It never does that to a slot whose
 * node is live: that follower connects to the new leader as soon as it knows it, maybe while the
 * slot is briefly missing, and would then wait wal_retrieve_retry_interval (5 s) before trying
 * again. A live follower's first reply makes its slot hold WAL anyway; one that has not streamed
 * within the grace (rewinding, its PostgreSQL stopped) gets a slot that holds WAL for it.
 */
export function slotsToHold(config: ClusterConfig, selfId: NodeId, live: ReadonlySet<NodeId>): string[] {
  return config.nodes
    .filter((n) => n.id !== selfId && isDataNode(n) && !live.has(n.id))
    .map((n) => slotName(n.id))
    .sort();
}

/**
 * synchronous_standby_names for a leader: ANY k over the other regular nodes, or '' when asynchronous.
 * A referee_with_wal streams WAL but is no synchronous standby: it can never lead, so its
 * confirmation would not keep a commit through a failover.
 * A learner is left out until it has its vote: its confirmation would not keep a commit through a
 * failover either (its copy elects nobody), and it has no copy before it follows.
 * Nodes in NODE_ERROR are left out while at least k others remain (they confirm nothing).
 */
export function syncStandbyNames(config: ClusterConfig, selfId: NodeId, inError: ReadonlySet<NodeId> = new Set()): string {
  const k = config.params.syncStandbys;
  if (k <= 0) return '';
  const all = config.nodes.filter((n) => n.id !== selfId && n.mode === 'regular' && n.learner !== true);
  const healthy = all.filter((n) => !inError.has(n.id));
  const names = (healthy.length >= k ? healthy : all).map((n) => slotName(n.id));
  if (names.length === 0) return '';
  return `ANY ${Math.min(k, names.length)} (${names.join(', ')})`;
}

/** Parses `ANY k (a, b, ...)` (what syncStandbyNames writes); null for '' (asynchronous). */
export function parseSyncStandbyNames(value: string): { k: number; names: string[] } | null {
  const v = value.trim();
  if (v === '') return null;
  const m = /^ANY\s+(\d+)\s*\(([^)]*)\)$/i.exec(v);
  if (!m) throw new Error(`unsupported synchronous_standby_names: ${value}`);
  return { k: Number(m[1]), names: m[2]!.split(',').map((s) => s.trim()).filter((s) => s !== '') };
}
