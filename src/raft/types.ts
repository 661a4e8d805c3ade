// Public types of the pure raft core. Everything here is data: the controller, the simulator and
// the control channel share these shapes. Nothing in src/raft performs I/O or reads a clock; time
// enters as the `now` argument of RaftNode.tick() (milliseconds on a monotonic clock chosen by the
// caller), randomness as the injected `rand` function.

export type NodeId = number;

/** A WAL position as PostgreSQL reports it: timeline id and LSN (as a plain number of bytes). */
export interface WalPos {
  readonly tli: number;
  readonly lsn: number;
}

export const NODE_MODES = ['regular', 'referee', 'referee_with_wal'] as const;
export type NodeMode = (typeof NODE_MODES)[number];

/** One member of the cluster as recorded in the committed configuration. */
export interface NodeInfo {
  readonly id: NodeId;
  readonly host: string;
  /** PostgreSQL port (0 for a referee without PostgreSQL). */
  readonly port: number;
  /** Control-channel (BCP) port. */
  readonly bihaPort: number;
  readonly mode: NodeMode;
  readonly canBeLeader: boolean;
  readonly canVote: boolean;
  /**
   * Added with a vote it does not have yet: a learner takes part in no election, no commit quorum
   * and no synchronous commit until the leader has heard it follow with its own copy of the data,
   * then gives it its vote (`give_vote`). Absent on every other node.
   */
  readonly learner?: boolean;
  /** Breaks ties between equally up-to-date candidates: higher goes first. */
  readonly priority: number;
}

/** Cluster-wide parameters, changed only through the config log. Names follow the reference. */
export interface ClusterParams {
  readonly nquorum: number;
  readonly minnodes: number;
  /** Milliseconds between heartbeats (reference default 1000). */
  readonly heartbeatSendPeriod: number;
  /** Heartbeats a follower may miss before it may campaign (reference default 10). */
  readonly heartbeatMaxLost: number;
  /** Milliseconds a follower may go without WAL while heartbeats arrive (reference default 20000). */
  readonly noWalOnFollower: number;
  /** K in synchronous_standby_names = 'ANY K (...)'; 0 = asynchronous. */
  readonly syncStandbys: number;
  /** Service (maintenance) mode: no automatic elections while true. */
  readonly serviceMode: boolean;
}

export interface ClusterConfig {
  readonly nodes: readonly NodeInfo[];
  readonly params: ClusterParams;
}

export type ConfigChange =
  | { readonly type: 'add_node'; readonly node: NodeInfo }
  | { readonly type: 'remove_node'; readonly id: NodeId }
  /** The leader gives a learner the vote it was added with (see NodeInfo.learner). */
  | { readonly type: 'give_vote'; readonly id: NodeId }
  | { readonly type: 'set_params'; readonly params: Partial<ClusterParams> }
  | {
      readonly type: 'set_node';
      readonly id: NodeId;
      readonly patch: Partial<Pick<NodeInfo, 'canBeLeader' | 'canVote' | 'priority' | 'host' | 'port' | 'bihaPort'>>;
    }
  /** Opaque cluster-wide value (for example the cluster secret after a rotation). */
  | { readonly type: 'set_meta'; readonly key: string; readonly value: string };

/** A config-log entry. `change === null` is the no-op a new leader appends in its term. */
export interface Entry {
  readonly index: number;
  readonly term: number;
  readonly change: ConfigChange | null;
}

/** Everything committed up to `index`, folded into one configuration. */
export interface Snapshot {
  readonly index: number;
  readonly term: number;
  readonly config: ClusterConfig;
  readonly meta: Readonly<Record<string, string>>;
}

/** What a node must persist, fsynced, before sending the messages of the same Ready. */
export interface HardState {
  readonly term: number;
  /** 0 = no vote in this term. */
  readonly vote: NodeId;
  readonly commit: number;
}

export interface PersistentLog {
  readonly snapshot: Snapshot;
  /** Entries after snapshot.index, contiguous. */
  readonly entries: readonly Entry[];
}

/** The full persisted state of a node: enough to restart it. */
export interface PersistentState {
  readonly hard: HardState;
  readonly log: PersistentLog;
}

/** States shown in biha.status_v (names never change meaning). */
export const BIHA_STATES = [
  'STARTUP',
  'CSTATE_FORMING',
  'FOLLOWER',
  'FOLLOWER_OFFERED',
  'FOLLOWER_VOTING',
  'CANDIDATE',
  'LEADER_RW',
  'LEADER_RO',
  'NODE_ERROR',
  'NODE_ERROR_VOTING',
  'UNKNOWN',
] as const;
export type BihaState = (typeof BIHA_STATES)[number];

export type Role = 'follower' | 'precandidate' | 'candidate' | 'leader';

/** What the leader knows of a peer and tells everyone in heartbeats. */
export interface PeerView {
  readonly id: NodeId;
  /** Last WAL position the peer reported. */
  readonly wal: WalPos;
  /** The state the peer last reported (UNKNOWN once the leader lost it). */
  readonly state: BihaState;
  /** The state before it became UNKNOWN. */
  readonly lastKnownState: BihaState;
  /** Milliseconds since the leader last heard from the peer (-1: never). */
  readonly sinceLastHbMs: number;
  readonly online: boolean;
  /** The peer's own last known term: from its last response to the leader (0: unknown). */
  readonly term: number;
  /** The peer has heard the leader without receiving WAL from it for this long (ms); absent: WAL flows. */
  readonly noWalMs?: number;
}

interface MsgBase {
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: number;
}

/** Leader -> follower: heartbeat and config-log replication in one message. */
export interface AppendMsg extends MsgBase {
  readonly type: 'app';
  readonly prevIndex: number;
  readonly prevTerm: number;
  readonly entries: readonly Entry[];
  readonly commit: number;
  /** Present when the follower needs entries the leader has folded into its snapshot. */
  readonly snapshot?: Snapshot;
  /** Heartbeat sequence number; the response echoes it (lease accounting). */
  readonly seq: number;
  /** The leader's view of every member, for status on every node and for election ranking. */
  readonly peers: readonly PeerView[];
  /** The leader's own WAL position. */
  readonly wal: WalPos;
  /**
   * Set on the messages to the target of a leadership transfer: TimeoutNow waits for its WAL
   * report, so it should report a freshly read position.
   */
  readonly transfer?: boolean;
}

export interface AppendRespMsg extends MsgBase {
  readonly type: 'app_resp';
  readonly reject: boolean;
  /** Highest index known to match the leader's log (on reject: a hint where to retry). */
  readonly matchIndex: number;
  readonly seq: number;
  readonly wal: WalPos;
  readonly state: BihaState;
  /**
   * How long (ms) this follower has heard the leader without receiving WAL from it while the
   * leader's PostgreSQL is a primary with WAL it lacks. Absent: 0, WAL flows (or unknown).
   */
  readonly noWalMs?: number;
  /** While `noWalMs` is present: the data nodes whose PostgreSQL port this follower could open. */
  readonly pgReach?: readonly NodeId[];
}

export interface VoteMsg extends MsgBase {
  readonly type: 'prevote' | 'vote';
  readonly lastIndex: number;
  readonly lastTerm: number;
  readonly wal: WalPos;
  readonly priority: number;
  /** Set when the campaign follows a TimeoutNow (leadership transfer): voters ignore leader stickiness. */
  readonly transfer: boolean;
}

export interface VoteRespMsg extends MsgBase {
  readonly type: 'prevote_resp' | 'vote_resp';
  readonly reject: boolean;
  readonly reason?: string;
  /** A voter whose config log is ahead of the candidate's sends it, so the candidate can catch up. */
  readonly catchUp?: PersistentLog;
}

export interface TimeoutNowMsg extends MsgBase {
  readonly type: 'timeout_now';
}

export type Message = AppendMsg | AppendRespMsg | VoteMsg | VoteRespMsg | TimeoutNowMsg;
export type MessageType = Message['type'];

/** Volatile state the controller reconciles PostgreSQL to. */
export interface SoftState {
  readonly role: Role;
  readonly term: number;
  /** 0 = no known leader. */
  readonly leaderId: NodeId;
  /** Leader only: true while at least `minnodes` nodes (itself included) acknowledged within the lease. */
  readonly writable: boolean;
  readonly state: BihaState;
  /** Leader only: a leadership transfer is in progress to this node (0 = none). */
  readonly transferTarget: NodeId;
  /**
   * Present (true) while that transfer gives way because the followers receive no WAL from this
   * leader: nobody can take its WAL, so PostgreSQL is fenced at once (docs/raft.md, "Giving way").
   */
  readonly givingWay?: true;
}

export interface FenceWal {
  readonly term: number;
  /** Absent for the node's own candidacy. */
  readonly candidateWal?: WalPos;
}

/**
 * One batch of work for the driver. Order of execution (exactly one driver does this):
 *   1. persist `hardState` and `log` (fsync) if present;
 *   2. if `fenceWal` is set, stop following the old leader and wait until that took effect; if it
 *      could not, or the final WAL is past `fenceWal.candidateWal`, drop the vote messages;
 *   3. send `messages`;
 *   4. apply `committed` (the effective committed configuration is `config`);
 *   5. reconcile PostgreSQL to `soft`.
 */
export interface Ready {
  readonly hardState?: HardState;
  readonly log?: PersistentLog;
  /**
   * Granting a vote in a newer term (or campaigning): stop acknowledging WAL from the old leader
   * before the vote leaves. `candidateWal` is the WAL the candidate claimed: a voter whose WAL,
   * once nothing arrives any more, ends past it must not send the vote after all.
   */
  readonly fenceWal?: FenceWal;
  readonly messages: readonly Message[];
  readonly committed: readonly Entry[];
  /** The committed configuration after applying `committed` (present when it changed). */
  readonly config?: ClusterConfig;
  /** Present when any field changed. */
  readonly soft?: SoftState;
}

export type ProposeResult =
  | { readonly ok: true; readonly index: number; readonly term: number }
  | { readonly ok: false; readonly code: ProposeErrorCode; readonly message: string };

export type ProposeErrorCode =
  | 'not_leader'
  | 'change_in_progress'
  | 'transfer_in_progress'
  | 'invalid'
  | 'unknown_node';

export interface RaftOptions {
  readonly id: NodeId;
  /** Restored persisted state (a fresh node: term 0, empty log with the bootstrap snapshot). */
  readonly state: PersistentState;
  /** Returns a float in [0, 1); injected so runs are reproducible. */
  readonly rand: () => number;
  /** Current time at construction (ms, monotonic, caller's clock). */
  readonly now: number;
  /** Clock-rate drift bound used in the lease arithmetic (default 0.01 = 1 %). */
  readonly maxDrift?: number;
}
