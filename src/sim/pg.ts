// One simulated PostgreSQL instance: what survives on disk (WAL, timeline history files, slots,
// postgresql.auto.conf settings) and what the running server does. It behaves like PostgreSQL where
// the promises depend on it:
//   - a promotion picks "newest history file + 1" from the files this node has (two nodes that never
//     saw each other's files pick the same number);
//   - a standby streams when PostgreSQL's own checks pass, which compare timeline numbers and
//     switch points, not the records themselves (records streamed after a reused number are
//     corruption, and the simulator says so);
//   - a walreceiver needs its slot on the upstream and waits wal_retrieve_retry_interval after a
//     failed attempt; after primary_conninfo is cleared it stops asynchronously;
//   - synchronous_standby_names is whatever the controller set; '' acknowledges at once.
import type { NodeId } from '../raft/index.js';
import type { TimelineFork, TimelineInfo } from '../controller/driver/types.js';
import type { WalLog } from './wal.js';

/** wal_retrieve_retry_interval (PostgreSQL default 5 s). */
export const WAL_RETRIEVE_RETRY_MS = 5000;

/** A PostgreSQL replication connection from `down` (walreceiver) to `up` (walsender). */
export interface Conn {
  readonly id: number;
  readonly down: SimPg;
  readonly up: SimPg;
  readonly downInc: number;
  readonly upInc: number;
  state: 'connecting' | 'streaming';
  /** Records the sender has sent. */
  sent: number;
  /** Records the receiver acknowledged as flushed. */
  flushed: number;
  closed: boolean;
  /** Arrival time of the last chunk / ack scheduled (a TCP stream delivers in order). */
  downFifo: number;
  upFifo: number;
}

export interface PendingWrite {
  readonly id: number;
  readonly pos: number;
}

export class SimPg {
  /** The server process: down, starting (not answering yet) or up. */
  proc: 'down' | 'starting' | 'up' = 'down';
  /** Up and not in recovery. */
  primary = false;
  /** Incarnation of the server process: events of an older one are ignored. */
  inc = 0;
  /** primary_conninfo (0 = none). */
  upstream: NodeId = 0;
  recv: Conn | null = null;
  senders: Conn[] = [];
  /** Earliest time the walreceiver tries again after a failure. */
  retryAt = 0;
  pending: PendingWrite[] = [];
  lastCheckpoint = 0;
  /** Timeline history files in pg_wal (timeline 1 has none). */
  readonly histories = new Map<number, readonly TimelineFork[]>();
  /** History files written as placeholders (they name no WAL). */
  readonly placeholders = new Set<number>();
  readonly slots = new Set<string>();
  syncNames = '';
  /** Why PostgreSQL must stay stopped (a rewind failed half-way), or null. */
  hold: string | null = null;

  constructor(
    readonly id: NodeId,
    public wal: WalLog,
  ) {}

  /** The server process exists (starting or up). */
  get running(): boolean {
    return this.proc !== 'down';
  }

  get accepting(): boolean {
    return this.proc === 'up' && this.primary;
  }

  get tli(): number {
    return this.wal.tli;
  }

  /** The timeline this node's WAL ends on, with its history. */
  timeline(): TimelineInfo {
    return { tli: this.tli, history: this.historyOf(this.tli) };
  }

  historyOf(tli: number): readonly TimelineFork[] {
    return tli <= 1 ? [] : (this.histories.get(tli) ?? []);
  }

  /** The timelines `tli` descends from, itself included. */
  chain(tli: number): number[] {
    return [...this.historyOf(tli).map((f) => f.parentTli), tli];
  }

  /** The timeline PostgreSQL's next promotion picks: one above the newest history file counting up from the current one. */
  nextTli(): number {
    let t = this.tli;
    while (this.histories.has(t + 1)) t++;
    return t + 1;
  }

  /** A copy for a base backup: WAL and the current timeline's history file only (as pg_basebackup sends). */
  baseBackup(id: NodeId): SimPg {
    const c = new SimPg(id, this.wal.clone());
    const h = this.histories.get(this.tli);
    if (h) c.histories.set(this.tli, h);
    return c;
  }
}
