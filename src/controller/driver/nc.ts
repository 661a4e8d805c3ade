// NC — the node controller. It reconciles the local PostgreSQL to what the raft core decided.
//
// Transitions are data. `decideGoal` turns the raft soft state into a goal (what PostgreSQL should
// be); `TABLE[observed][goal]` lists rows, each with the condition it applies under, what it does
// and why, and the first row whose condition holds is taken. Every change NC makes to PostgreSQL is
// a row: starting it, following a leader (after comparing timelines), re-establishing replication
// that stalled, rewinding, entering NODE_ERROR, keeping slots, promoting, fencing, stopping.
// One reconcile cycle takes one snapshot of the world, picks the row, logs
//   transition from "STANDBY" to "PRIMARY": promote: this node leads term 3 with a valid lease
// runs it, and looks again. One action runs at a time; the votes-fence-WAL step of the raft driver
// shares that lock. `bihactl fsm` prints the table.
import type { ClusterConfig, NodeId, NodeInfo, SoftState, WalPos } from '../../raft/index.js';
import { findNode } from '../../raft/index.js';
import { isDataNode, slotsToHold, syncStandbyNames, wantedSlots } from './duties.js';
import { divergence, timelineAt } from './timeline.js';
import type { Divergence } from './timeline.js';
import type { DriverLog, NodeErrorReport, PeerPort, PgPort, PgRole, Scheduler, TimelineInfo, WatchdogPort } from './types.js';

export { PG_ROLES } from './types.js';
export type { PgRole } from './types.js';

/** What the local PostgreSQL should be. `upstream` is the node to stream from (0 = none, detached). */
export interface Goal {
  readonly role: PgRole;
  readonly upstream: NodeId | 'keep';
  /** Why: the sentence logged with the transition. */
  readonly reason: string;
  /** How to stop a primary that must stop being writable. */
  readonly fence: 'immediate' | 'fast';
}

/** The last attempt to follow `from` found this node's WAL past the fork point of its timeline. */
export interface Diverged {
  readonly from: NodeId;
  readonly at: Divergence;
  /** The timeline this node's WAL is on at the fork point (shared with the leader up to there). */
  readonly sharedTli: number;
  readonly tli: number;
  readonly end: number;
  readonly replay: number | null;
  readonly leaderTli: number;
  /** biha.autorewind when the divergence was found. */
  readonly autorewind: boolean;
}

/** What NC knows of PostgreSQL: what it last did to it, corrected by the poll. */
export interface Observed {
  readonly role: PgRole;
  /** The node primary_conninfo points at (0 = detached). */
  readonly upstream: NodeId;
  /** Replication from `upstream` made no progress for no_wal_on_follower while heartbeats arrive. */
  readonly stalled: boolean;
  readonly diverged: Diverged | null;
  /** The upstream's timeline when this node last compared its WAL with it (0: never). */
  readonly checkedTli: number;
}

/** Decide what PostgreSQL should be from the raft decision. Pure; unit-tested. */
export function decideGoal(selfId: NodeId, soft: SoftState, nodeError: boolean, stopping: boolean, hold: string | null = null): Goal {
  if (stopping) return { role: 'STOPPED', upstream: 0, reason: 'the controller is stopping', fence: 'fast' };
  // The data directory may be half rewound: PostgreSQL must not run on it.
  if (hold !== null) return { role: 'STOPPED', upstream: 0, reason: `PostgreSQL stays stopped: ${hold}`, fence: 'immediate' };
  if (nodeError)
    return { role: 'STANDBY', upstream: 0, reason: 'NODE_ERROR: replication stays stopped until the error is reset', fence: 'immediate' };
  if (soft.role === 'leader') {
    if (soft.writable) return { role: 'PRIMARY', upstream: 0, reason: `this node leads term ${soft.term} with a valid lease`, fence: 'immediate' };
    if (soft.transferTarget !== 0 && soft.givingWay === true)
      return { role: 'STANDBY', upstream: 0, reason: `giving way to node ${soft.transferTarget}: the followers receive no WAL from this node`, fence: 'immediate' };
    if (soft.transferTarget !== 0)
      return { role: 'STANDBY', upstream: 0, reason: `switchover to node ${soft.transferTarget}: hand over the WAL`, fence: 'fast' };
    return { role: 'STANDBY', upstream: 0, reason: `leader of term ${soft.term} without minnodes acknowledgements (LEADER_RO)`, fence: 'immediate' };
  }
  if (soft.leaderId !== 0 && soft.leaderId !== selfId)
    return { role: 'STANDBY', upstream: soft.leaderId, reason: `node ${soft.leaderId} leads term ${soft.term}`, fence: 'immediate' };
  return { role: 'STANDBY', upstream: 'keep', reason: `no known leader in term ${soft.term}`, fence: 'immediate' };
}

/** Where the promotion stands with the timeline it must switch to (RaftNode.timelineReservation). */
export type TimelineStep =
  | { readonly kind: 'reserve' }
  | { readonly kind: 'wait'; readonly tli: number }
  | { readonly kind: 'ready'; readonly tli: number };

/** Everything a row's condition may look at: one consistent snapshot, taken under the lock. */
export interface Situation {
  readonly goal: Goal;
  readonly o: Observed;
  readonly config: ClusterConfig;
  /** The goal's upstream as a node to follow (null: none, or keep the current one). */
  readonly follow: NodeInfo | null;
  /** The divergence found applies to the leader to follow now. */
  readonly divergedFromGoal: boolean;
  /** The upstream reports a newer timeline than the one compared when following it (it promoted since). */
  readonly upstreamNewTimeline: boolean;
  readonly rewindAllowed: boolean;
  /** The slots to keep (wantedSlots) and, on a primary, those to make hold WAL (slotsToHold). */
  readonly slots: { readonly want: readonly string[]; readonly hold: readonly string[] };
  readonly slotsPending: boolean;
  readonly syncPending: boolean;
  readonly timeline: TimelineStep;
  /** Members in NODE_ERROR: left out of synchronous_standby_names while enough others remain. */
  readonly inError: ReadonlySet<NodeId>;
}

/** What rows act through. */
export interface NcContext {
  readonly selfId: NodeId;
  readonly pg: PgPort;
  readonly watchdog: WatchdogPort | null;
  /** The upstream's timeline as fetched just before this cycle (NC never waits on the network under its lock). */
  upstreamTimeline(id: NodeId): TimelineInfo;
  readonly log: DriverLog;
  setObserved(patch: Partial<Observed>): void;
  /** The running action has stopped PostgreSQL and leaves it detached: a vote need not wait for it. */
  markTransparent(): void;
  /** PostgreSQL stopped cleanly with its WAL ending at `end` (raft learns it at once). */
  stoppedAt(end: WalPos): void;
  noteApplied(what: 'slots' | 'sync', value: string): void;
  enterNodeError(e: NodeErrorReport): Promise<void>;
  autorewind(): Promise<boolean>;
  /** Propose a further timeline reservation (PostgreSQL is already on or past the reserved one). */
  reserveTimeline(): void;
  /** The lease deadline now, or null when this node is no longer a writable leader. */
  leaseUntil(): number | null;
  /** The timeline of the last promotion PostgreSQL did (for the reservation bookkeeping). */
  notePromoted(tli: number): void;
  /** The scheduler's clock (ms). */
  now(): number;
}

export interface Row {
  /** The condition, as `bihactl fsm` prints it. */
  readonly when: string;
  readonly test: (s: Situation) => boolean;
  readonly comment: string;
  /** null: nothing to do. */
  readonly run: ((c: NcContext, s: Situation) => Promise<void>) | null;
}

const always = (): boolean => true;

/** Whether `e` carries error code `code` (a BihaError; the driver does not import the controller's classes). */
function isCodedError(e: unknown, code: string): boolean {
  return typeof e === 'object' && e !== null && (e as { code?: unknown }).code === code;
}

/** How long a fetched upstream timeline is used for (a new leader's is fetched again at once). */
const PREFETCH_FRESH_MS = 1000;
const nothing: Row = { when: 'always', test: always, comment: 'nothing to do', run: null };

function fmtLsn(n: number): string {
  return `${Math.floor(n / 0x100000000).toString(16).toUpperCase()}/${(n % 0x100000000).toString(16).toUpperCase()}`;
}

/** The leader's timeline first: follow it, or record where this node left its history. */
async function followLeader(c: NcContext, s: Situation): Promise<void> {
  const node = s.follow!;
  const leader = c.upstreamTimeline(node.id);
  const mine = await c.pg.position();
  const at = divergence(mine, leader);
  if (at) {
    const autorewind = await c.autorewind();
    c.log.warn(
      { tli: mine.tli, end: fmtLsn(mine.end), leaderTli: leader.tli, fork: fmtLsn(at.switchLsn) },
      `timelines diverged: this node's WAL (timeline ${mine.tli}, up to ${fmtLsn(mine.end)}) went past the point where timeline ${at.nextTli} of leader node ${node.id} forked off (${fmtLsn(at.switchLsn)})`,
    );
    const sharedTli = timelineAt(mine, Math.max(0, at.switchLsn - 1));
    c.setObserved({ diverged: { from: node.id, at, sharedTli, tli: mine.tli, end: mine.end, replay: mine.replay, leaderTli: leader.tli, autorewind } });
    return;
  }
  await c.pg.follow(node);
  c.setObserved({ role: 'STANDBY', upstream: node.id, stalled: false, diverged: null, checkedTli: leader.tli });
}

function divergedDetails(d: Diverged): string {
  return (
    `this node's WAL (timeline ${d.tli}, up to ${fmtLsn(d.end)}) went past the point where ` +
    `timeline ${d.at.nextTli} of leader node ${d.from} forked off (${fmtLsn(d.at.switchLsn)})`
  );
}

function errorReport(d: Diverged, type: NodeErrorReport['type'], details: string): NodeErrorReport {
  return {
    type, details, beginLsn: d.at.switchLsn, endLsn: d.end, currentTli: d.tli, nextTli: d.at.nextTli, replayLsn: d.replay,
    kept: { tli: d.sharedTli, lsn: d.at.switchLsn },
  };
}

/**
 * The transition table: TABLE[observed][goal], rows tried in order. A `Record` over the roles, so
 * a forgotten pair does not compile; the last row of every cell holds `always`.
 */
export const TABLE: Record<PgRole, Record<PgRole, readonly Row[]>> = {
  STOPPED: {
    STOPPED: [nothing],
    STANDBY: [
      {
        when: 'always',
        test: always,
        comment: 'start PostgreSQL as a standby that follows nobody yet',
        run: async (c) => {
          await c.pg.startStandby();
          c.setObserved({ role: 'STANDBY', upstream: 0, stalled: false });
        },
      },
    ],
    PRIMARY: [
      {
        // Always through a standby: the promotion then happens under the lease, in a later cycle.
        when: 'always',
        test: always,
        comment: 'start PostgreSQL as a detached standby before promoting it',
        run: async (c) => {
          await c.pg.startStandby();
          c.setObserved({ role: 'STANDBY', upstream: 0, stalled: false });
        },
      },
    ],
  },
  STANDBY: {
    STOPPED: [{ when: 'always', test: always, comment: 'stop PostgreSQL', run: stopRun }],
    STANDBY: [
      {
        when: 'WAL diverged from the leader, biha.autorewind on, service mode off',
        test: (s) => s.divergedFromGoal && s.rewindAllowed,
        comment: 'pg_rewind from the leader',
        run: async (c, s) => {
          const d = s.o.diverged!;
          try {
            await c.pg.rewind(s.follow!, () => c.markTransparent());
            c.setObserved({ role: 'STANDBY', upstream: 0, stalled: false, diverged: null });
          } catch (e) {
            // The leader could not be reached before anything changed: try again (bounded backoff).
            if (isCodedError(e, 'rewind_source_unreachable')) throw e;
            c.setObserved({ diverged: null });
            await c.enterNodeError(errorReport(d, 'REWIND_FAILED', `${divergedDetails(d)}; automatic pg_rewind failed: ${e instanceof Error ? e.message : String(e)}`));
          }
        },
      },
      {
        when: 'WAL diverged from the leader, no automatic rewind',
        test: (s) => s.divergedFromGoal,
        comment: 'stop replication: NODE_ERROR',
        run: async (c, s) => {
          const d = s.o.diverged!;
          const why = s.config.params.serviceMode
            ? 'service mode is on, so no automatic pg_rewind: run bihactl rewind or follow docs/runbooks/node-error.md'
            : 'set biha.autorewind = true or follow docs/runbooks/node-error.md';
          c.setObserved({ diverged: null });
          await c.enterNodeError(errorReport(d, 'TIMELINE_DIVERGED', `${divergedDetails(d)}; ${why}`));
        },
      },
      {
        when: 'the leader to follow is not the upstream',
        test: (s) => s.follow !== null && s.follow.id !== s.o.upstream,
        comment: 'follow the leader (after comparing timelines)',
        run: followLeader,
      },
      {
        // A leader is followed as soon as it is known, maybe before it promoted; its new timeline
        // can fork off below this node's WAL (this node had WAL the leader never got).
        when: 'the upstream switched to a newer timeline since the comparison',
        test: (s) => s.follow !== null && s.follow.id === s.o.upstream && s.upstreamNewTimeline,
        comment: 'compare timelines with the leader again',
        run: followLeader,
      },
      {
        when: 'no upstream wanted, one is set',
        test: (s) => s.goal.upstream === 0 && s.o.upstream !== 0,
        comment: 'stop streaming (detach)',
        run: async (c) => {
          await c.pg.detach();
          c.setObserved({ upstream: 0, stalled: false });
        },
      },
      {
        when: 'no WAL from the upstream for no_wal_on_follower',
        test: (s) => s.o.stalled && s.o.upstream !== 0,
        comment: 're-establish replication (detach, then follow again)',
        run: async (c) => {
          await c.pg.detach();
          c.setObserved({ upstream: 0, stalled: false });
        },
      },
      {
        when: 'slots for the other data nodes missing',
        test: (s) => s.slotsPending,
        comment: 'keep slots for the other data nodes (ready for a promotion)',
        run: async (c, s) => {
          await c.pg.ensureSlots(s.slots.want, s.slots.hold);
          c.noteApplied('slots', slotsKey(s.slots));
        },
      },
      nothing,
    ],
    PRIMARY: [
      {
        when: 'no timeline of this term to promote to',
        test: (s) => s.timeline.kind === 'reserve',
        comment: 'reserve a timeline through the config log',
        run: async (c) => {
          c.reserveTimeline();
          await Promise.resolve();
        },
      },
      {
        when: 'timeline reservation not committed yet',
        test: (s) => s.timeline.kind === 'wait',
        comment: 'wait until the timeline reservation is committed',
        run: null,
      },
      {
        when: 'always',
        test: always,
        comment: 'promote: synchronous standbys and slots first, watchdog armed, then pg_promote',
        run: promoteRun,
      },
    ],
  },
  PRIMARY: {
    STOPPED: [{ when: 'always', test: always, comment: 'stop PostgreSQL', run: stopRun }],
    STANDBY: [
      {
        when: 'always',
        test: always,
        comment: 'fence: stop accepting writes and restart as a standby',
        run: async (c, s) => {
          await c.pg.fence(s.goal.fence, (end) => {
            if (!end) return;
            // Stopped cleanly and restarting detached, with its WAL end known: a switchover target
            // may take over and a vote need not wait for the restart.
            c.stoppedAt(end);
            c.markTransparent();
          });
          c.setObserved({ role: 'STANDBY', upstream: 0, stalled: false });
          c.noteApplied('sync', '');
        },
      },
    ],
    PRIMARY: [
      {
        when: 'slots or synchronous standbys differ from the configuration',
        test: (s) => s.slotsPending || s.syncPending,
        comment: 'keep slots and synchronous standbys in line',
        run: async (c, s) => {
          await applyDuties(c, s);
        },
      },
      nothing,
    ],
  },
};

async function stopRun(c: NcContext): Promise<void> {
  await c.pg.stop();
  c.setObserved({ role: 'STOPPED', upstream: 0, stalled: false });
}

/** How long a new primary leaves the slots of live followers to their first reply (duties.ts slotsToHold). */
export const SLOT_GRACE_MS = 10_000;

function slotsKey(p: Situation['slots']): string {
  return `${p.want.join(',')}|hold:${p.hold.join(',')}`;
}

async function applyDuties(c: NcContext, s: Situation): Promise<void> {
  const sync = syncStandbyNames(s.config, c.selfId, s.inError);
  await c.pg.ensureSlots(s.slots.want, s.slots.hold);
  c.noteApplied('slots', slotsKey(s.slots));
  await c.pg.setSyncStandbyNames(sync);
  c.noteApplied('sync', sync);
}

/**
 * Promotion, in the order that keeps both promises: synchronous_standby_names and slots are in
 * place before PostgreSQL accepts its first write (no commit is acknowledged asynchronously), the
 * watchdog holds the lease deadline before PostgreSQL becomes writable (a controller killed at any
 * later point leaves nothing unfenced), PostgreSQL picks exactly the reserved timeline, and the
 * lease is checked once more right before pg_promote.
 */
async function promoteRun(c: NcContext, s: Situation): Promise<void> {
  if (s.timeline.kind !== 'ready') return;
  const tli = s.timeline.tli;
  const steps = stepTimer(c);
  await applyDuties(c, s);
  steps.mark('duties');
  const until = c.leaseUntil();
  if (until === null) return;
  if (c.watchdog && !(await c.watchdog.arm(until))) throw new Error('the lease watchdog did not confirm the deadline; not promoting');
  steps.mark('watchdog');
  await c.pg.prepareTimeline(tli);
  steps.mark('timeline');
  if (c.leaseUntil() === null) return;
  const got = await c.pg.promote();
  steps.mark('pg_promote');
  c.setObserved({ role: 'PRIMARY', upstream: 0, stalled: false, diverged: null });
  c.notePromoted(got);
  if (got !== tli) c.log.error({ reserved: tli, got }, `PostgreSQL switched to timeline ${got}, not the reserved ${tli}`);
  c.log.info(steps.done(), 'promotion steps (ms)');
}

/** Durations of an action's steps, for one log line. */
function stepTimer(c: NcContext): { mark(step: string): void; done(): Record<string, number> } {
  const out: Record<string, number> = {};
  let last = c.now();
  return {
    mark(step) {
      const t = c.now();
      out[step] = Math.round(t - last);
      last = t;
    },
    done: () => out,
  };
}

/** One row of the table as `bihactl fsm` prints it. */
export interface FsmLine {
  readonly from: PgRole;
  readonly to: PgRole;
  readonly when: string;
  readonly action: string;
}

export function fsmTable(): FsmLine[] {
  const out: FsmLine[] = [];
  for (const [from, cells] of Object.entries(TABLE) as [PgRole, Record<PgRole, readonly Row[]>][]) {
    for (const [to, rows] of Object.entries(cells) as [PgRole, readonly Row[]][]) {
      for (const r of rows) out.push({ from, to, when: r.when, action: r.comment });
    }
  }
  return out;
}

export interface NodeCtlDeps {
  readonly selfId: NodeId;
  /** Whether this node runs PostgreSQL at all (referees do not). */
  readonly hasData: boolean;
  readonly log: DriverLog;
  readonly sched: Scheduler;
  readonly pg: PgPort;
  readonly peers: PeerPort;
  readonly watchdog: WatchdogPort | null;
  soft(): SoftState;
  config(): ClusterConfig;
  nodeError(): boolean;
  stopping(): boolean;
  /** Members in NODE_ERROR (left out of synchronous_standby_names while enough others remain). */
  nodesInError(): ReadonlySet<NodeId>;
  /** Members heard within T and not in NODE_ERROR: followers that connect to a new leader at once. */
  liveNodes(): ReadonlySet<NodeId>;
  timelineStep(pgTli: number): TimelineStep;
  /** The timeline `id` last reported (in the leader's heartbeats), if known. */
  upstreamTli(id: NodeId): number | null;
  reserveTimeline(pgTli: number): void;
  leaseUntil(): number | null;
  enterNodeError(e: NodeErrorReport): Promise<void>;
  autorewind(): Promise<boolean>;
  /** Called after every cycle with the observation (the driver tells raft whether PostgreSQL is writable). */
  afterCycle(o: Observed): void;
  /** A fence stopped PostgreSQL cleanly; its WAL ends at `end`. */
  stoppedAt(end: WalPos): void;
}

/** Runs the reconcile cycles, one at a time. */
export class NodeCtl {
  private running = false;
  private again = false;
  private failures = 0;
  private lastSentence = '';
  private cancelRetry: (() => void) | null = null;
  private idleWaiters: Array<() => void> = [];
  private chain: Promise<unknown> = Promise.resolve();
  private actionRunning = false;
  /** The running action has PostgreSQL stopped or detached and will not connect it anywhere. */
  private transparent = false;
  private closed = false;
  private obs: Observed = { role: 'STOPPED', upstream: 0, stalled: false, diverged: null, checkedTli: 0 };
  private applied = { slots: '', sync: '' };
  private pgTli = 0;
  /** When PostgreSQL was last seen to become a primary (slotsToHold's grace runs from there). */
  private primarySince = 0;
  /** Upstream timelines fetched before a cycle, with when. */
  private fetched = new Map<NodeId, { info: TimelineInfo; at: number }>();
  private readonly ctx: NcContext;

  constructor(private readonly d: NodeCtlDeps) {
    this.ctx = {
      selfId: d.selfId,
      pg: d.pg,
      watchdog: d.watchdog,
      upstreamTimeline: (id) => {
        const t = this.fetched.get(id);
        if (!t) throw new Error(`the timeline of node ${id} is not known (it did not answer)`);
        return t.info;
      },
      log: d.log,
      setObserved: (p) => this.setObserved(p),
      markTransparent: () => this.markTransparent(),
      stoppedAt: (end) => d.stoppedAt(end),
      noteApplied: (what, value) => {
        this.applied = { ...this.applied, [what]: value };
      },
      enterNodeError: (e) => d.enterNodeError(e),
      autorewind: () => d.autorewind(),
      reserveTimeline: () => d.reserveTimeline(this.pgTli),
      leaseUntil: () => d.leaseUntil(),
      notePromoted: (tli) => {
        this.pgTli = Math.max(this.pgTli, tli);
      },
      now: () => d.sched.now(),
    };
  }

  observed(): Observed {
    return this.obs;
  }

  /** The poll saw PostgreSQL in another role than NC's record (it crashed, was started by someone). */
  noteRole(role: PgRole): void {
    if (role === this.obs.role) return;
    const standby = role === 'STANDBY';
    this.obs = { role, upstream: standby ? this.obs.upstream : 0, stalled: false, diverged: standby ? this.obs.diverged : null, checkedTli: standby ? this.obs.checkedTli : 0 };
    // Whatever PostgreSQL holds now was not put there by NC: slots and settings are checked again.
    this.applied = { slots: '', sync: '' };
    if (role === 'PRIMARY') this.primarySince = this.d.sched.now();
    this.kick();
  }

  /** The poll's timeline of the local WAL (the reservation must be above it). */
  noteTimeline(tli: number): void {
    this.pgTli = tli;
  }

  /** The votes-fence-WAL step detached PostgreSQL from its upstream. */
  noteDetached(): void {
    this.obs = { ...this.obs, upstream: 0, stalled: false };
  }

  /** The upstream sent no WAL for no_wal_on_follower while its heartbeats arrived. */
  noteStalled(): void {
    if (this.obs.role !== 'STANDBY' || this.obs.upstream === 0 || this.obs.stalled) return;
    this.obs = { ...this.obs, stalled: true };
    this.kick();
  }

  /** After reset_node_error: the next attempt to follow compares timelines again. */
  clearDivergence(): void {
    this.obs = { ...this.obs, diverged: null, upstream: this.obs.role === 'STANDBY' ? this.obs.upstream : 0 };
    this.kick();
  }

  private setObserved(p: Partial<Observed>): void {
    const next = { ...this.obs, ...p };
    if (next.role !== this.obs.role) this.applied = { slots: '', sync: '' };
    if (next.role === 'PRIMARY' && this.obs.role !== 'PRIMARY') this.primarySince = this.d.sched.now();
    this.obs = next;
  }

  /** Schedule a reconcile cycle (merged with one already running). */
  kick(): void {
    if (this.closed) return;
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

  /** True while the running action keeps PostgreSQL stopped or detached to the end (a rewind). */
  fenceTransparent(): boolean {
    return this.actionRunning && this.transparent;
  }

  /** Called by an action once PostgreSQL is stopped and the action will leave it detached. */
  markTransparent(): void {
    if (this.actionRunning) this.transparent = true;
  }

  /**
   * Run `fn` with PostgreSQL to ourselves: reconcile actions and out-of-band work (the votes-fence-WAL
   * detach, bihactl rewind) never overlap.
   */
  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const prev = this.chain;
    let release!: () => void;
    this.chain = new Promise<void>((r) => (release = r));
    await prev.catch(() => undefined);
    this.actionRunning = true;
    this.transparent = false;
    try {
      return await fn();
    } finally {
      this.actionRunning = false;
      this.transparent = false;
      release();
    }
  }

  lastDecision(): string {
    return this.lastSentence;
  }

  private goal(): Goal {
    return decideGoal(this.d.selfId, this.d.soft(), this.d.nodeError(), this.d.stopping(), this.d.hasData ? this.d.pg.hold() : null);
  }

  /** The snapshot a cycle decides on. */
  situation(goal: Goal): Situation {
    const o = this.obs;
    const config = this.d.config();
    const up = goal.upstream === 'keep' || goal.upstream === 0 ? null : (findNode(config, goal.upstream) ?? null);
    const follow = up && isDataNode(up) ? up : null;
    const slots = {
      want: wantedSlots(config, this.d.selfId),
      // Right after a promotion the live followers are connecting: their slots are left to them.
      // After SLOT_GRACE_MS a slot still without WAL is made to hold it whoever its node is.
      hold: o.role !== 'PRIMARY' ? [] : slotsToHold(config, this.d.selfId, this.d.sched.now() - this.primarySince < SLOT_GRACE_MS ? this.d.liveNodes() : new Set()),
    };
    const inError = this.d.nodesInError();
    const syncWanted = syncStandbyNames(config, this.d.selfId, inError);
    return {
      goal,
      o,
      config,
      follow,
      divergedFromGoal: o.diverged !== null && follow !== null && o.diverged.from === follow.id,
      upstreamNewTimeline: o.upstream !== 0 && (this.d.upstreamTli(o.upstream) ?? 0) > o.checkedTli,
      rewindAllowed: o.diverged !== null && o.diverged.autorewind && !config.params.serviceMode,
      slots,
      slotsPending: this.applied.slots !== slotsKey(slots),
      syncPending: o.role === 'PRIMARY' && this.applied.sync !== syncWanted,
      timeline: goal.role === 'PRIMARY' ? this.d.timelineStep(this.pgTli) : { kind: 'wait', tli: 0 },
      inError,
    };
  }

  /**
   * A cycle that may follow a node needs that node's timeline. It is fetched here, without the lock:
   * a vote must not wait for a peer that does not answer.
   */
  private async prefetch(): Promise<void> {
    const goal = this.goal();
    if (goal.role !== 'STANDBY' || typeof goal.upstream !== 'number' || goal.upstream === 0) return;
    const id = goal.upstream;
    const have = this.fetched.get(id);
    const o = this.obs;
    const needed = o.upstream !== id || o.diverged !== null || (this.d.upstreamTli(id) ?? 0) > o.checkedTli;
    const fresh = have !== undefined && this.d.sched.now() - have.at < PREFETCH_FRESH_MS && have.info.tli >= (this.d.upstreamTli(id) ?? 0);
    if (!needed || fresh) return;
    try {
      this.fetched.set(id, { info: await this.d.peers.timeline(id), at: this.d.sched.now() });
    } catch (e) {
      this.fetched.delete(id);
      this.d.log.warn({ upstream: id, err: e instanceof Error ? e.message : String(e) }, `cannot fetch the timeline of node ${id}`);
    }
  }

  private async loop(): Promise<void> {
    try {
      for (let i = 0; i < 20 && !this.closed; i++) {
        this.again = false;
        await this.prefetch();
        const acted = await this.cycle();
        if (acted === null && !this.again) break;
      }
    } finally {
      this.running = false;
      const w = this.idleWaiters;
      this.idleWaiters = [];
      for (const f of w) f();
    }
  }

  /** One cycle: returns the sentence it logged when an action ran, null when there was nothing to do. */
  async cycle(): Promise<string | null> {
    if (!this.d.hasData) return null;
    let row: Row = nothing;
    let sentence: string | null = null;
    let pending: Promise<void> | null = null;
    const t0 = this.d.sched.now();
    try {
      await this.exclusive(async () => {
        // One snapshot of the world, taken under the lock.
        const goal = this.goal();
        const s = this.situation(goal);
        row = TABLE[s.o.role][goal.role].find((r) => r.test(s)) ?? nothing;
        if (!row.run) return;
        sentence = `transition from "${s.o.role}" to "${goal.role}": ${row.comment}: ${goal.reason}`;
        this.lastSentence = sentence;
        this.d.log.info({ from: s.o.role, to: goal.role, upstream: goal.upstream }, sentence);
        pending = row.run(this.ctx, s);
        await pending;
      });
      if (sentence !== null) {
        this.failures = 0;
        this.d.log.info({ ms: Math.round(this.d.sched.now() - t0) }, `done: ${(row as Row).comment}`);
      }
    } catch (e) {
      this.failures++;
      this.d.log.error({ err: e instanceof Error ? e.message : String(e), failures: this.failures }, `failed: ${(row as Row).comment}`);
      // Retry later with a bounded backoff instead of spinning.
      if (!this.cancelRetry && !this.closed) {
        const delay = Math.min(5000, 100 * 2 ** Math.min(this.failures, 6));
        this.cancelRetry = this.d.sched.after(delay, () => {
          this.cancelRetry = null;
          this.kick();
        });
      }
      this.d.afterCycle(this.obs);
      return null;
    }
    this.d.afterCycle(this.obs);
    return sentence;
  }

  close(): void {
    this.closed = true;
    this.cancelRetry?.();
    this.cancelRetry = null;
  }
}
