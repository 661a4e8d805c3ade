// The driver's view of the world. The raft driver and NC (this folder) reach PostgreSQL, the
// network, the disk, the watchdog and the clock only through these interfaces. The controller
// passes real ones (src/controller/pg, bcp, state); the simulator (src/sim) passes a simulated
// PostgreSQL, network and clock, so the code it checks is the code that runs in production.
// Nothing in this folder performs I/O or reads a clock (eslint enforces it, as for src/raft).
import type { NodeId, NodeInfo, PersistentState, Message, WalPos } from '../../raft/index.js';

export const PG_ROLES = ['STOPPED', 'STANDBY', 'PRIMARY'] as const;
export type PgRole = (typeof PG_ROLES)[number];

/** One look at the local PostgreSQL, as the poll takes it. */
export interface PgProbe {
  readonly role: PgRole;
  /** A walreceiver process runs (starting, streaming or waiting): WAL may still arrive and be confirmed. */
  readonly receiving: boolean;
  /** Where this node's WAL ends (received or replayed on a standby, written on a primary); null when unknown. */
  readonly wal: WalPos | null;
}

/** One ancestor of a timeline: timeline `parentTli` forked into the next one at `switchLsn`. */
export interface TimelineFork {
  readonly parentTli: number;
  readonly switchLsn: number;
}

/** A timeline and its history (the content of its .history file). */
export interface TimelineInfo {
  readonly tli: number;
  readonly history: readonly TimelineFork[];
}

/** Where the local WAL ends, on which timeline, with that timeline's history. */
export interface WalPosition extends TimelineInfo {
  readonly end: number;
  /** Replay position, when PostgreSQL answers (for NODE_ERROR details). */
  readonly replay: number | null;
}

/** What NC can do to the local PostgreSQL. Every method resolves once the change took effect. */
export interface PgPort {
  probe(): Promise<PgProbe>;
  /** Start PostgreSQL as a standby that follows nobody (an upstream is set by `follow`). */
  startStandby(): Promise<void>;
  stop(): Promise<void>;
  /**
   * A primary stops accepting writes and restarts as a detached standby. `stopped` is called once
   * PostgreSQL is down, with where its WAL ends after a fast (clean) shutdown — every streaming
   * standby has received that WAL by then — or null (an immediate shutdown, or the end could not
   * be read): a switchover need not wait for the restart.
   */
  fence(mode: 'immediate' | 'fast', stopped?: (end: WalPos | null) => void): Promise<void>;
  /** primary_conninfo = '': the walreceiver stops asynchronously (probe() tells when it is gone). */
  detach(): Promise<void>;
  /** This node's WAL end, timeline and history (also while PostgreSQL does not accept connections yet). */
  position(): Promise<WalPosition>;
  /** Stream from `upstream` through this node's slot there. */
  follow(upstream: NodeInfo): Promise<void>;
  /**
   * pg_rewind from `source`; leaves PostgreSQL running as a detached standby (or stopped on
   * failure). `stopped` is called once PostgreSQL is down: from then on nothing streams.
   */
  rewind(source: NodeInfo, stopped: () => void): Promise<void>;
  /**
   * Physical slots named `want` exist; other biha slots that are not in use are dropped. On a
   * primary, the slots named in `hold` that hold no WAL and are not in use are made to hold it
   * (duties.ts slotsToHold); the others are left for their follower's first reply.
   */
  ensureSlots(want: readonly string[], hold: readonly string[]): Promise<void>;
  /** synchronous_standby_names (ALTER SYSTEM + reload; on a standby it takes effect at promotion). */
  setSyncStandbyNames(value: string): Promise<void>;
  /** Make PostgreSQL's next promotion pick exactly timeline `tli` (see timeline.ts). */
  prepareTimeline(tli: number): Promise<void>;
  /** pg_promote; resolves with the timeline PostgreSQL switched to. */
  promote(): Promise<number>;
  /**
   * Why PostgreSQL must stay stopped (a rewind that did not complete may have left the data
   * directory half rewound), or null. Set by a failed rewind, cleared by a successful one.
   */
  hold(): string | null;
  /** The DBA says the data directory is sound again (reset_node_error): PostgreSQL may start. */
  clearHold(): Promise<void>;
}

/** Other nodes, as far as NC needs them (the leader's timeline history before following it). */
export interface PeerPort {
  timeline(id: NodeId): Promise<TimelineInfo>;
}

/** The lease watchdog: a separate process that fences PostgreSQL when the deadline passes. */
export interface WatchdogPort {
  /** Set the deadline (driver clock) and resolve true once the watchdog confirmed holding it. */
  arm(until: number): Promise<boolean>;
  /** Move the deadline without waiting for a confirmation (every tick while leading). */
  renew(until: number): void;
  disarm(): void;
  /** A watchdog process runs and answers. */
  alive(): boolean;
}

/** A NODE_ERROR as the driver reports it (the controller adds the time and persists it). */
export interface NodeErrorReport {
  readonly type: 'TIMELINE_DIVERGED' | 'REWIND_FAILED';
  readonly details: string;
  readonly beginLsn: number | null;
  readonly endLsn: number | null;
  readonly currentTli: number | null;
  readonly nextTli: number | null;
  readonly replayLsn: number | null;
  /** Where this node's WAL leaves the cluster's history: its votes still require WAL up to there. */
  readonly kept: WalPos | null;
}

/** The logging the driver needs (pino's Logger satisfies it). */
export interface DriverLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** Time and timers: the controller's monotonic clock, or the simulator's. */
export interface Scheduler {
  now(): number;
  /** Run `fn` after `ms`; returns a function that cancels it. */
  after(ms: number, fn: () => void): () => void;
}

/** Persistence and messaging of the raft core. */
export interface RaftIo {
  /** Write the raft state durably; resolves once it is on disk. */
  persist(state: PersistentState): Promise<void>;
  send(msg: Message): void;
}
