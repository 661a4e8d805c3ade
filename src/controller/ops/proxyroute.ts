// Where the client endpoints (proxy.ts) send a new connection, from what raft tells this node: the
// writable leader for the read-write port, the streaming followers within a lag for the read-only
// port. Pure: one call per decision, on one snapshot of the raft view.
import type { ClusterConfig, NodeId, PeerView, SoftState } from '../../raft/index.js';

/** A PostgreSQL a proxied connection goes to. */
export interface Backend {
  readonly id: NodeId;
  readonly host: string;
  readonly port: number;
}

export interface RouteInputs {
  readonly selfId: NodeId;
  readonly config: ClusterConfig;
  /** This node's soft state (Driver.soft()). */
  readonly soft: SoftState;
  /** The raft view of every member: the leader's own, or the one its heartbeats carry. */
  readonly peers: readonly PeerView[];
}

export interface Routes {
  /** The LEADER_RW node, null while there is none (or it is handing over). */
  readonly leader: Backend | null;
  /** The leader's term (0 without a leader): a new term is a new leader even on the same node. */
  readonly term: number;
  /** Followers in state FOLLOWER, online, on the leader's timeline and within the lag. */
  readonly readers: readonly Backend[];
}

function backendOf(cfg: ClusterConfig, id: NodeId): Backend | null {
  const n = cfg.nodes.find((x) => x.id === id);
  if (!n || n.mode !== 'regular' || n.port === 0) return null;
  return { id: n.id, host: n.host, port: n.port };
}

/** The node that is LEADER_RW as this node sees it. */
function writableLeader(i: RouteInputs): NodeId {
  const { soft } = i;
  if (soft.role === 'leader') return soft.state === 'LEADER_RW' && soft.transferTarget === 0 ? i.selfId : 0;
  if (soft.leaderId === 0) return 0;
  const view = i.peers.find((p) => p.id === soft.leaderId);
  return view?.online && view.state === 'LEADER_RW' ? soft.leaderId : 0;
}

export function computeRoutes(i: RouteInputs, maxLagBytes: number): Routes {
  const leaderId = writableLeader(i);
  const leader = leaderId === 0 ? null : backendOf(i.config, leaderId);
  const lw = i.peers.find((p) => p.id === leaderId)?.wal;
  const readers: Backend[] = [];
  if (leader && lw) {
    for (const p of i.peers) {
      if (p.id === leaderId || !p.online || p.state !== 'FOLLOWER') continue;
      if (p.wal.tli !== lw.tli || lw.lsn - p.wal.lsn > maxLagBytes) continue;
      const b = backendOf(i.config, p.id);
      if (b) readers.push(b);
    }
  }
  readers.sort((a, b) => a.id - b.id);
  return { leader, term: leader ? i.soft.term : 0, readers };
}

/** Round robin over the readers, the leader when there is none. */
export class ReaderRotation {
  private next = 0;

  pick(r: Routes): Backend | null {
    if (r.readers.length === 0) return r.leader;
    const b = r.readers[this.next % r.readers.length]!;
    this.next = (this.next + 1) % 1_000_000;
    return b;
  }
}
