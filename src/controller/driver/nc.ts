// NC — the node controller. It reconciles the local PostgreSQL to what the raft core decided.
//
// Transitions are data (one row per (observed, goal) pair, typed so that a forgotten pair does not
// compile). One reconcile cycle takes one immutable snapshot of the world (observed PostgreSQL role,
// the raft soft state, the committed config), picks the row, logs
//   transition from "STANDBY" to "PRIMARY": promote: this node won term 3
// runs it, and looks again. Only one action runs at a time; while one runs, further kicks are merged.
import type { Logger } from 'pino';
import type { ClusterConfig, NodeId, SoftState } from '../../raft/index.js';

export const PG_ROLES = ['STOPPED', 'STANDBY', 'PRIMARY'] as const;
export type PgRole = (typeof PG_ROLES)[number];

/** What the local PostgreSQL should be. `upstream` is the node to stream from (0 = none, detached). */
export interface Goal {
  readonly role: PgRole;
  readonly upstream: NodeId | 'keep';
  /** Why: the sentence logged with the transition. */
  readonly reason: string;
  /** How to stop a primary that must stop being writable. */
  readonly fence: 'immediate' | 'fast';
}

export interface Observed {
  readonly role: PgRole;
  /** The node primary_conninfo points at (0 = detached). */
  readonly upstream: NodeId;
}

/** The actions the controller knows how to carry out on PostgreSQL. */
export interface PgActions {
  /** Start PostgreSQL as a detached standby (the upstream is set by a later retarget). */
  startStandby(): Promise<void>;
  promote(): Promise<void>;
  fenceToStandby(mode: 'immediate' | 'fast'): Promise<void>;
  retarget(upstream: NodeId): Promise<void>;
  /** True when slots or synchronous_standby_names on a primary do not match the config yet. */
  primaryDutiesPending(): boolean;
  ensurePrimaryDuties(): Promise<void>;
  stop(): Promise<void>;
}

interface Row {
  readonly comment: string;
  readonly run: (a: PgActions, g: Goal, o: Observed) => Promise<void> | null;
}

const noop: Row = { comment: 'nothing to do', run: () => null };

/** The transition table: TABLE[observed][goal]. */
export const TABLE: Record<PgRole, Record<PgRole, Row>> = {
  STOPPED: {
    STOPPED: noop,
    STANDBY: {
      comment: 'start PostgreSQL as a standby',
      run: (a) => a.startStandby(),
    },
    PRIMARY: {
      // Always through a standby: the promotion then happens under the lease, in the next cycle.
      comment: 'start PostgreSQL as a detached standby before promoting it',
      run: (a) => a.startStandby(),
    },
  },
  STANDBY: {
    STOPPED: { comment: 'stop PostgreSQL', run: (a) => a.stop() },
    STANDBY: {
      comment: 'follow the new leader',
      run: (a, g, o) => (g.upstream === 'keep' || g.upstream === o.upstream ? null : a.retarget(g.upstream)),
    },
    PRIMARY: { comment: 'promote', run: (a) => a.promote() },
  },
  PRIMARY: {
    STOPPED: { comment: 'stop PostgreSQL', run: (a) => a.stop() },
    STANDBY: { comment: 'fence: stop accepting writes and restart as a standby', run: (a, g) => a.fenceToStandby(g.fence) },
    PRIMARY: { comment: 'keep slots and synchronous standbys in line', run: (a) => (a.primaryDutiesPending() ? a.ensurePrimaryDuties() : null) },
  },
};

/** Decide what PostgreSQL should be from the raft decision. Pure; unit-tested. */
export function decideGoal(selfId: NodeId, soft: SoftState, nodeError: boolean, stopping: boolean): Goal {
  if (stopping) return { role: 'STOPPED', upstream: 0, reason: 'the controller is stopping', fence: 'fast' };
  if (nodeError)
    return { role: 'STANDBY', upstream: 0, reason: 'NODE_ERROR: replication stays stopped until the error is reset', fence: 'immediate' };
  if (soft.role === 'leader') {
    if (soft.writable) return { role: 'PRIMARY', upstream: 0, reason: `this node leads term ${soft.term} with a valid lease`, fence: 'immediate' };
    if (soft.transferTarget !== 0)
      return { role: 'STANDBY', upstream: 0, reason: `switchover to node ${soft.transferTarget}: hand over the WAL`, fence: 'fast' };
    return { role: 'STANDBY', upstream: 0, reason: `leader of term ${soft.term} without minnodes acknowledgements (LEADER_RO)`, fence: 'immediate' };
  }
  if (soft.leaderId !== 0 && soft.leaderId !== selfId)
    return { role: 'STANDBY', upstream: soft.leaderId, reason: `node ${soft.leaderId} leads term ${soft.term}`, fence: 'immediate' };
  return { role: 'STANDBY', upstream: 'keep', reason: `no known leader in term ${soft.term}`, fence: 'immediate' };
}

export interface NodeCtlDeps {
  readonly selfId: NodeId;
  readonly log: Logger;
  readonly actions: PgActions;
  /** Current observation of PostgreSQL. */
  observe(): Observed;
  soft(): SoftState;
  config(): ClusterConfig;
  nodeError(): boolean;
  stopping(): boolean;
  /** Whether this node runs PostgreSQL at all (referees do not). */
  hasData(): boolean;
  /** Called after every cycle with the observation, so the caller can tell raft whether PostgreSQL is writable. */
  afterCycle(o: Observed): void;
}

/** Runs the reconcile cycles, one at a time. */
export class NodeCtl {
  private running = false;
  private again = false;
  private failures = 0;
  private lastSentence = '';
  private retryTimer: NodeJS.Timeout | null = null;
  private idleWaiters: Array<() => void> = [];
  private chain: Promise<unknown> = Promise.resolve();
  private actionRunning = false;

  constructor(private readonly d: NodeCtlDeps) {}

  /** Schedule a reconcile cycle (merged with one already running). */
  kick(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    void this.loop();
  }

  /** Resolves when no cycle runs. */
  async idle(): Promise<void> {
    if (!this.running) return;
    await new Promise<void>((r) => this.idleWaiters.push(r));
  }

  /** True while an action on PostgreSQL runs (observations taken meanwhile may be stale). */
  busy(): boolean {
    return this.actionRunning;
  }

  /**
   * Run `fn` with PostgreSQL to ourselves: reconcile actions and out-of-band work (the votes-fence-WAL
   * detach) never overlap.
   */
  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const prev = this.chain;
    let release!: () => void;
    this.chain = new Promise<void>((r) => (release = r));
    await prev.catch(() => undefined);
    this.actionRunning = true;
    try {
      return await fn();
    } finally {
      this.actionRunning = false;
      release();
    }
  }

  lastDecision(): string {
    return this.lastSentence;
  }

  private async loop(): Promise<void> {
    try {
      for (let i = 0; i < 20; i++) {
        this.again = false;
        const acted = await this.cycle();
        if (!acted && !this.again) break;
      }
    } finally {
      this.running = false;
      const w = this.idleWaiters;
      this.idleWaiters = [];
      for (const f of w) f();
    }
  }

  /** One cycle: returns true if an action ran. */
  private async cycle(): Promise<boolean> {
    if (!this.d.hasData()) return false;
    let row: Row = noop;
    let started = false;
    const done = this.exclusive(async () => {
      // One snapshot of the world, taken under the lock.
      const o = this.d.observe();
      const g = decideGoal(this.d.selfId, this.d.soft(), this.d.nodeError(), this.d.stopping());
      row = TABLE[o.role][g.role];
      const p = row.run(this.d.actions, g, o);
      if (p === null) return;
      started = true;
      this.lastSentence = `transition from "${o.role}" to "${g.role}": ${row.comment}: ${g.reason}`;
      this.d.log.info({ from: o.role, to: g.role, upstream: g.upstream }, this.lastSentence);
      await p;
    });
    const t0 = performance.now();
    try {
      await done;
      if (!started) {
        this.d.afterCycle(this.d.observe());
        return false;
      }
      this.failures = 0;
      this.d.log.info({ ms: Math.round(performance.now() - t0) }, `done: ${row.comment}`);
    } catch (e) {
      this.failures++;
      this.d.log.error({ err: e instanceof Error ? e.message : String(e), failures: this.failures }, `failed: ${row.comment}`);
      // Retry later with a bounded backoff instead of spinning.
      if (!this.retryTimer) {
        const delay = Math.min(5000, 100 * 2 ** Math.min(this.failures, 6));
        this.retryTimer = setTimeout(() => {
          this.retryTimer = null;
          this.kick();
        }, delay);
      }
      this.d.afterCycle(this.d.observe());
      return false;
    }
    this.d.afterCycle(this.d.observe());
    return true;
  }

  close(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }
}
