// One simulated machine: its PostgreSQL (pg.ts), its lease watchdog, its persisted controller
// state, and — while it runs — one controller incarnation: the product's raft driver and NC
// (src/controller/driver) wired to simulated effects.
import type { ClusterConfig, NodeInfo, PersistentState, SoftState } from '../raft/index.js';
import type { Driver } from '../controller/driver/driver.js';
import type { NodeErrorReport } from '../controller/driver/types.js';
import type { SimPg } from './pg.js';

/** A running controller process. */
export interface Controller {
  /** Incarnation: events of a dead one are dropped. */
  readonly inc: number;
  readonly driver: Driver;
}

export class Host {
  ctl: Controller | null = null;
  ctlInc = 0;
  removed = false;
  /** The whole host (controller, watchdog, PostgreSQL) is stopped (SIGSTOP, VM pause) until then. */
  pausedUntil = 0;
  /** Resumed after a pause that outlasted its lease: its primary is unguarded until fenced. */
  frozenPastLease = false;
  /** The watchdog's deadline when the pause began (a watchdog killed while frozen held it until then). */
  deadlineAtPause: number | null = null;
  /** The watchdog sent its fence (SIGQUIT) and PostgreSQL has not stopped yet. */
  wdFired = false;
  /** pg_rewind runs (PostgreSQL stopped; its data becomes the source's). */
  rewinding = false;
  /** When the host last resumed from a pause. */
  resumedAt = Number.NEGATIVE_INFINITY;
  crashAfterPersist = false;
  /** The lease watchdog process: alive, and the deadline it holds (simulation time; null: disarmed). */
  wdAlive = true;
  wdDeadline: number | null = null;
  wdToken = 0;
  /** What the running (or last) controller reported. */
  soft: SoftState;
  config: ClusterConfig;
  /** Persisted NODE_ERROR (biha.state), with when it was entered. */
  nodeError: NodeErrorReport | null = null;
  nodeErrorAt = 0;

  constructor(
    readonly info: NodeInfo,
    /** Clock rate (ms of local clock per ms of simulation time) and offset. */
    readonly rate: number,
    readonly offset: number,
    readonly rand: () => number,
    public persisted: PersistentState,
    public pg: SimPg,
    /** biha.autorewind in this node's postgresql.biha.conf. */
    readonly autorewind: boolean,
  ) {
    this.soft = downSoft(persisted.hard.term);
    this.config = persisted.log.snapshot.config;
  }

  get id(): number {
    return this.info.id;
  }

  get up(): boolean {
    return this.ctl !== null;
  }
}

export function downSoft(term: number): SoftState {
  return { role: 'follower', term, leaderId: 0, writable: false, state: 'UNKNOWN', transferTarget: 0 };
}
