// Gray failure in synchronous mode: the leader's heartbeats arrive but its followers receive no WAL
// from it (its PostgreSQL port is unreachable from them), so no commit can be acknowledged. This
// file decides, from what the followers report in their append responses, whether the leader gives
// way and to whom. Pure: the leader's RaftNode calls it on every tick (docs/raft.md, "Giving way").
import { compareWal, rankBetter } from './timing.js';
import type { ClusterParams, NodeId, NodeInfo, WalPos } from './types.js';

/** What the leader knows of one follower when it decides. */
export interface GiveWayFollower {
  readonly node: NodeInfo;
  /** Heard within T and not in NODE_ERROR. */
  readonly live: boolean;
  /** Reported NODE_ERROR: its WAL may run past the cluster's history and does not count. */
  readonly inError: boolean;
  readonly wal: WalPos;
  /** How long the follower has heard this leader without receiving WAL from it (0: WAL flows). */
  readonly noWalMs: number;
  /** The data nodes whose PostgreSQL port the follower could open (reported while WAL stalls). */
  readonly pgReach: readonly NodeId[];
  /** A leadership transfer to this node would be accepted (RaftNode.transferRefusal). */
  readonly mayLead: boolean;
  /** A voter now (votesNow). */
  readonly votes: boolean;
}

export type GiveWayDecision =
  | { readonly give: true; readonly target: NodeId; readonly noWalMs: number; readonly stalled: readonly NodeId[] }
  | { readonly give: false; readonly why: string };

/** A follower that counts as a synchronous standby (the same nodes as synchronous_standby_names). */
function syncCandidate(n: NodeInfo): boolean {
  return n.mode === 'regular' && n.learner !== true;
}

/**
 * Whether a leader whose synchronous commits cannot be acknowledged gives way, and to which
 * follower. Only in synchronous mode (`syncStandbys` > 0): fewer live followers than
 * sync_standbys receive WAL and at least one has received none for no_wal_on_follower while it
 * heard the leader. The target has at least the WAL of every follower (any of them may have
 * acknowledged a commit), may lead, and enough other live followers can open its PostgreSQL port to
 * acknowledge its commits (min(sync_standbys, the other live synchronous followers), at least one);
 * among those, the
 * one that votes would rank first (most WAL, then priority, then lowest id). The followers that can
 * vote must make an election quorum on their own: this leader, with WAL past theirs, refuses the
 * target its vote.
 */
export function decideGiveWay(params: ClusterParams, electionQuorum: number, followers: readonly GiveWayFollower[]): GiveWayDecision {
  const k = params.syncStandbys;
  const limit = params.noWalOnFollower;
  if (k <= 0) return { give: false, why: 'asynchronous mode' };
  if (limit <= 0) return { give: false, why: 'no_wal_on_follower is 0' };
  const sync = followers.filter((f) => syncCandidate(f.node));
  const live = sync.filter((f) => f.live);
  const stalled = live.filter((f) => f.noWalMs >= limit);
  if (stalled.length === 0) return { give: false, why: 'WAL flows' };
  const receiving = live.length - stalled.length;
  if (receiving >= k) return { give: false, why: `${receiving} followers receive WAL` };
  // The target must win without this leader's vote: this leader's WAL holds the blocked commits
  // past the target's, so it refuses (wal_behind). Every live follower has at most the target's WAL.
  const voters = followers.filter((f) => f.live && f.votes).length;
  if (voters < electionQuorum) return { give: false, why: `only ${voters} live voters besides this leader; an election needs ${electionQuorum}` };
  let most: WalPos = { tli: 0, lsn: 0 };
  for (const f of sync) if (!f.inError && compareWal(f.wal, most) > 0) most = f.wal;
  let best: GiveWayFollower | null = null;
  for (const t of live) {
    if (!t.mayLead || compareWal(t.wal, most) < 0) continue;
    const others = live.filter((f) => f !== t);
    const reaching = others.filter((f) => f.pgReach.includes(t.node.id)).length;
    // At least one: a leader whose only other follower is in NODE_ERROR (or gone) would have no
    // synchronous standby either, and this leader's blocked WAL would diverge for nothing.
    if (reaching < Math.max(1, Math.min(k, others.length))) continue;
    if (best === null || rankBetter({ id: t.node.id, wal: t.wal, priority: t.node.priority }, { id: best.node.id, wal: best.wal, priority: best.node.priority })) best = t;
  }
  if (best === null) return { give: false, why: 'no follower with the most WAL can be reached by enough others' };
  return { give: true, target: best.node.id, noWalMs: Math.max(...stalled.map((f) => f.noWalMs)), stalled: stalled.map((f) => f.node.id) };
}
