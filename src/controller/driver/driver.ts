// The raft driver: the one piece of code that executes the raft core's Ready batches and connects
// the core to PostgreSQL through NC. The controller runs it with real effects, the simulator with
// simulated ones; both run this file.
//
// For every Ready, in this order:
//   1. persist hard state and log (durable before anything leaves this node);
//   2. votes fence WAL: before a vote in a newer term (or a candidacy) leaves, this node's
//      PostgreSQL must neither accept writes nor receive WAL from an older leader, and the vote is
//      only sent if that took effect and the WAL it ends with is not past what the candidate has;
//   3. send the messages;
//   4. hand committed entries, the new configuration and the soft state to the owner;
//   5. let NC reconcile PostgreSQL.
// Around that: the tick (raft time, the lease watchdog), the poll of PostgreSQL (WAL position,
// role, replication progress) and the promotion's prerequisites (timeline reservation, lease).
import { RaftNode, compareWal, electionQuorum, findNode, voterIds } from '../../raft/index.js';
import type { ClusterConfig, Entry, Message, NodeId, NodeInfo, PersistentState, Ready, SoftState, WalPos } from '../../raft/index.js';
import { NodeCtl } from './nc.js';
import type { Observed, TimelineStep } from './nc.js';
import type { DriverLog, NodeErrorReport, PeerPort, PgPort, PgProbe, RaftIo, Scheduler, WatchdogPort } from './types.js';

export interface DriverHooks {
  /** The soft state changed (prev null: the first one). */
  soft?(prev: SoftState | null, s: SoftState): void;
  committed?(entries: readonly Entry[]): void;
  config?(cfg: ClusterConfig): void;
  /** The persisted log changed (secrets and other meta may follow it). */
  logChanged?(): void;
  sent?(m: Message): void;
  /** A vote was not sent: the fence failed or the final WAL is past the candidate's. */
  voteWithheld?(term: number, why: string): void;
  /** Persisting failed: the owner must stop this node (it must never send what it did not persist). */
  fatal?(err: unknown): void;
  /** After every poll with the probe (status, metrics). */
  polled?(p: PgProbe | null): void;
  nodeError?(e: NodeErrorReport | null): void;
  /** An unexpected error in the driver's own code (a bug): the owner logs it, the simulator fails the run. */
  bug?(err: unknown): void;
}

export interface DriverDeps {
  readonly id: NodeId;
  /** Whether this node runs PostgreSQL (a referee does not). */
  readonly hasData: boolean;
  readonly state: PersistentState;
  readonly rand: () => number;
  readonly io: RaftIo;
  /** null for a referee. */
  readonly pg: PgPort | null;
  readonly peers: PeerPort;
  readonly watchdog: WatchdogPort | null;
  readonly sched: Scheduler;
  readonly log: DriverLog;
  readonly ncLog: DriverLog;
  /** This node's persisted NODE_ERROR, or null. */
  nodeError(): NodeErrorReport | null;
  /** Persist this node's NODE_ERROR (null: cleared); resolves once durable. */
  saveNodeError(e: NodeErrorReport | null): Promise<void>;
  autorewind(): Promise<boolean>;
  stopping(): boolean;
  /**
   * The data nodes among `nodes` whose PostgreSQL port this host can open now (a TCP connect with
   * a short timeout). Asked only while no WAL arrives from the leader (giving way, docs/raft.md).
   */
  pgReachable?(nodes: readonly NodeInfo[]): Promise<NodeId[]>;
  readonly hooks?: DriverHooks;
}

/**
 * The driver's tick and poll periods for a heartbeat period: ticks fine enough for the lease margin
 * (>= 50 ms) and cheap when idle; WAL positions matter at heartbeat granularity. `tickMs` overrides.
 */
export function driverPeriods(heartbeatSendPeriod: number, tickMs?: number): { tickMs: number; pollMs: number } {
  return {
    tickMs: tickMs ?? Math.max(5, Math.min(50, Math.floor(heartbeatSendPeriod / 20))),
    pollMs: Math.max(50, Math.min(250, Math.floor(heartbeatSendPeriod / 4))),
  };
}

/** How long a vote waits at most for the walreceiver to be gone after a detach. */
export const RECEIVER_STOP_WAIT_MS = 5000;
const RECEIVER_POLL_MS = 10;
/** The driver's tick while this node hands leadership over (TRANSFER_APP_INTERVAL_MS paces the reports). */
const TRANSFER_TICK_MS = 10;

const NO_PG: PgPort = new Proxy({} as PgPort, {
  get: () => () => Promise.reject(new Error('this node has no PostgreSQL')),
});

export class Driver {
  private raftNode: RaftNode | null = null;
  readonly nc: NodeCtl;
  private pumping = false;
  private pumpAgain = false;
  private polling = false;
  private lastSoft: SoftState | null = null;
  private cancels: Array<() => void> = [];
  /** The term and reason of the last refused timeline reservation (logged once). */
  private reserveRefused: string | null = null;
  private stopped = false;
  private lastProbe: PgProbe | null = null;
  // no_wal_on_follower bookkeeping.
  private walProgressAt = 0;
  private lastReceiveLsn = -1;
  /** Since when this follower hears `leader` without receiving WAL it lacks (reported to raft). */
  private noWal = { leader: 0 as NodeId, since: 0, lsn: -1 };
  private pgReach: { at: number; ids: NodeId[] } = { at: Number.NEGATIVE_INFINITY, ids: [] };
  private probingReach = false;

  constructor(private readonly d: DriverDeps) {
    this.nc = new NodeCtl({
      selfId: d.id,
      hasData: d.hasData,
      log: d.ncLog,
      sched: d.sched,
      pg: d.pg ?? NO_PG,
      peers: d.peers,
      watchdog: d.watchdog,
      soft: () => this.soft(),
      config: () => this.config(),
      nodeError: () => d.nodeError() !== null,
      stopping: () => d.stopping() || this.stopped,
      nodesInError: () => this.nodesInError(),
      liveNodes: () => this.liveNodes(),
      timelineStep: (pgTli) => this.timelineStep(pgTli),
      upstreamTli: (id) => {
        const w = this.raftNode?.peers().find((p) => p.id === id)?.wal;
        return w && w.tli > 0 ? w.tli : null;
      },
      reserveTimeline: (pgTli) => this.reserveTimeline(pgTli),
      leaseUntil: () => this.leaseUntil(),
      enterNodeError: (e) => this.enterNodeError(e),
      autorewind: () => d.autorewind(),
      afterCycle: (o) => this.afterCycle(o),
      stoppedAt: (end) => this.stoppedAt(end),
    });
  }

  /** The raft core (null until boot() measured the WAL position). */
  get raft(): RaftNode | null {
    return this.raftNode;
  }

  /**
   * The raft state as of the last executed Ready: a term, a vote or a leadership that is not yet
   * persisted (and whose vote's fence has not yet run) is not acted on by NC or the lease.
   */
  soft(): SoftState {
    if (this.raftNode && this.lastSoft) return this.lastSoft;
    return { role: 'follower', term: this.d.state.hard.term, leaderId: 0, writable: false, state: 'STARTUP', transferTarget: 0 };
  }

  config(): ClusterConfig {
    return this.raftNode ? this.raftNode.config() : this.d.state.log.snapshot.config;
  }

  observed(): Observed {
    return this.nc.observed();
  }

  probe(): PgProbe | null {
    return this.lastProbe;
  }

  /**
   * PostgreSQL first: a node must know its WAL position before it may vote. Starts PostgreSQL as a
   * detached standby when it is down, waits (up to `waitMs`) until it answers with a position, then
   * creates the raft core. A referee has no WAL and starts at once.
   */
  async boot(waitMs: number): Promise<WalPos> {
    let wal: WalPos = { tli: 0, lsn: 0 };
    let role: PgProbe['role'] = 'STOPPED';
    if (this.d.hasData && this.d.pg && this.d.pg.hold() !== null) {
      // PostgreSQL stays stopped (a rewind did not complete): its WAL position decides nothing, as
      // the node is in NODE_ERROR and votes on the WAL it shares with the cluster only.
      this.d.ncLog.warn({}, `PostgreSQL stays stopped: ${this.d.pg.hold()}`);
    } else if (this.d.hasData && this.d.pg) {
      const pg = this.d.pg;
      const first = await pg.probe();
      role = first.role;
      if (first.role === 'STOPPED') {
        await this.nc.exclusive(() => pg.startStandby());
        role = 'STANDBY';
      }
      this.nc.noteRole(role);
      const deadline = this.d.sched.now() + waitMs;
      let last = '';
      for (;;) {
        let p: PgProbe | null = null;
        try {
          p = await pg.probe();
        } catch (e) {
          const msg = e instanceof Error ? e.message : String(e);
          if (msg !== last) this.d.ncLog.warn({ err: msg }, 'waiting for PostgreSQL to accept connections');
          last = msg;
        }
        if (p?.wal) {
          wal = p.wal;
          role = p.role;
          this.lastProbe = p;
          break;
        }
        if (this.d.sched.now() > deadline) throw new Error(`PostgreSQL did not report its WAL position within ${Math.round(waitMs / 1000)} s`);
        await this.sleep(100);
      }
      this.nc.noteRole(role);
      this.nc.noteTimeline(wal.tli);
    }
    const raft = new RaftNode({ id: this.d.id, state: this.d.state, rand: this.d.rand, now: this.d.sched.now() });
    raft.setWal(wal);
    const err = this.d.nodeError();
    if (err) raft.setNodeError(true, err.kept ?? undefined);
    raft.setLocalFenced(role !== 'PRIMARY');
    this.raftNode = raft;
    this.lastSoft = raft.soft();
    this.walProgressAt = this.d.sched.now();
    // A rewind cut short by a crash left the hold but no NODE_ERROR (nobody was left to record it):
    // the node says so, and bihactl rewind is its way back.
    const hold = this.d.hasData ? (this.d.pg?.hold() ?? null) : null;
    if (hold !== null && err?.type !== 'REWIND_FAILED') {
      await this.enterNodeError({ type: 'REWIND_FAILED', details: hold, beginLsn: null, endLsn: null, currentTli: null, nextTli: null, replayLsn: null, kept: err?.kept ?? null });
    }
    return wal;
  }

  /** Start ticking and polling (after boot). */
  start(tickMs: number, pollMs: number): void {
    // One pending timer per loop: its slot in `cancels` is replaced, not appended to, on every round.
    const every = (ms: () => number, fn: () => void): void => {
      const slot = this.cancels.length;
      const loop = (): void => {
        if (this.stopped) return;
        fn();
        this.cancels[slot] = this.d.sched.after(ms(), loop);
      };
      this.cancels[slot] = this.d.sched.after(ms(), loop);
    };
    // A leadership transfer sends its target WAL reports and TimeoutNow on ticks: tick finely meanwhile.
    every(() => (this.lastSoft?.transferTarget ? Math.min(tickMs, TRANSFER_TICK_MS) : tickMs), () => this.tick());
    if (this.d.hasData) every(() => pollMs, () => void this.poll());
    this.pump();
    this.nc.kick();
  }

  stop(): void {
    this.stopped = true;
    for (const c of this.cancels) c();
    this.cancels = [];
    this.nc.close();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((r) => this.d.sched.after(ms, r));
  }

  // ---------------------------------------------------------------- inputs

  tick(): void {
    const raft = this.raftNode;
    if (!raft || this.stopped) return;
    // A primary nobody would fence if this process died must not exist: no watchdog, no leading.
    if (this.d.watchdog) raft.setMayLead(this.d.watchdog.alive(), 'the lease watchdog is not running');
    raft.tick(this.d.sched.now());
    this.guardLease();
    this.pump();
  }

  /** A raft message from a peer (already checked to be addressed to this node). */
  step(msg: Message): void {
    const raft = this.raftNode;
    if (!raft || this.stopped) return;
    raft.step(msg, this.d.sched.now());
    this.pump();
    // The leader hands leadership to this node once its WAL report reaches the leader's end.
    if (msg.type === 'app' && msg.transfer === true && !this.polling) void this.poll();
  }

  /** Wake NC (a command changed something NC looks at). */
  kick(): void {
    this.pump();
    this.nc.kick();
  }

  /**
   * One look at PostgreSQL: the WAL position goes to raft, a role NC did not cause (a crash, a
   * restart by someone else) goes to NC, and replication progress is checked against
   * no_wal_on_follower.
   */
  async poll(): Promise<PgProbe | null> {
    const pg = this.d.pg;
    if (!pg || this.polling || this.stopped) return this.lastProbe;
    this.polling = true;
    try {
      const busy = this.nc.busy();
      let p: PgProbe | null = null;
      try {
        p = await pg.probe();
      } catch {
        p = null;
      }
      this.lastProbe = p;
      const raft = this.raftNode;
      if (p?.wal && raft) {
        raft.setWal(p.wal);
        this.nc.noteTimeline(p.wal.tli);
      }
      this.d.hooks?.polled?.(p);
      // Observations taken while an action ran may predate its effect.
      if (busy || this.nc.busy() || !raft || !p) return p;
      this.nc.noteRole(p.role);
      raft.setLocalFenced(p.role !== 'PRIMARY');
      this.measureNoWal(p, raft);
      this.checkWalFlow(p, raft);
      this.nc.kick();
      this.pump();
      return p;
    } finally {
      this.polling = false;
    }
  }

  /**
   * How long this follower has heard the leader without receiving WAL from it, for the leader to
   * give way (docs/raft.md, "Giving way"). It counts only while the leader says it is a writable
   * primary (LEADER_RW) with WAL this node lacks, and unlike checkWalFlow's clock it does not start
   * again when replication is re-established. Past half of no_wal_on_follower, the PostgreSQL ports
   * of the other data nodes are probed (at most once a second) so that the leader can pick a node
   * this one can replicate from.
   */
  private measureNoWal(p: PgProbe, raft: RaftNode): void {
    const now = this.d.sched.now();
    const soft = this.soft();
    const leader = soft.role === 'follower' ? soft.leaderId : 0;
    const view = leader !== 0 && leader !== this.d.id ? raft.peers().find((x) => x.id === leader) : undefined;
    const behind = view !== undefined && view.state === 'LEADER_RW' && p.wal !== null && compareWal(view.wal, p.wal) > 0;
    const lsn = p.wal?.lsn ?? -1;
    if (!behind || p.role !== 'STANDBY' || leader !== this.noWal.leader || lsn > this.noWal.lsn || this.d.nodeError() !== null) {
      this.noWal = { leader, since: now, lsn };
      raft.setNoWal(leader, 0, []);
      return;
    }
    const ms = now - this.noWal.since;
    const limit = this.config().params.noWalOnFollower;
    if (limit > 0 && ms >= limit / 2) this.probeReach(now);
    raft.setNoWal(leader, ms, this.pgReach.ids);
  }

  private probeReach(now: number): void {
    const probe = this.d.pgReachable;
    if (!probe || this.probingReach || now - this.pgReach.at < 1000) return;
    const nodes = this.config().nodes.filter((n) => n.id !== this.d.id && n.mode === 'regular' && n.port > 0);
    this.probingReach = true;
    probe(nodes).then(
      (ids) => {
        this.pgReach = { at: this.d.sched.now(), ids };
      },
      () => {
        this.pgReach = { at: this.d.sched.now(), ids: [] };
      },
    ).finally(() => {
      this.probingReach = false;
    });
  }

  /**
   * no_wal_on_follower: a follower that hears the leader but gets no WAL for that long re-establishes
   * replication (an NC row) and says so.
   */
  private checkWalFlow(p: PgProbe, raft: RaftNode): void {
    const now = this.d.sched.now();
    const o = this.nc.observed();
    if (p.role !== 'STANDBY' || o.role !== 'STANDBY' || o.upstream === 0 || !p.wal) {
      this.walProgressAt = now;
      return;
    }
    const soft = this.soft();
    const limit = this.config().params.noWalOnFollower;
    const leaderWal = raft.peers().find((x) => x.id === soft.leaderId)?.wal;
    const recv = p.wal.lsn;
    const caughtUp = leaderWal !== undefined && compareWal(leaderWal, p.wal) <= 0;
    if (recv > this.lastReceiveLsn || caughtUp || soft.leaderId !== o.upstream) {
      this.lastReceiveLsn = Math.max(this.lastReceiveLsn, recv);
      this.walProgressAt = now;
      return;
    }
    if (limit > 0 && now - this.walProgressAt > limit) {
      this.d.ncLog.warn(
        { leader: soft.leaderId, receiveLsn: recv, ms: Math.round(now - this.walProgressAt) },
        `no WAL from leader node ${soft.leaderId} for more than no_wal_on_follower (${limit} ms) while heartbeats arrive: re-establishing replication`,
      );
      this.walProgressAt = now;
      this.nc.noteStalled();
    }
  }

  /**
   * Keep the watchdog's deadline at the end of the lease while this node is a writable leader, so
   * PostgreSQL is fenced even if this process dies or is paused. Disarm only once PostgreSQL is no
   * longer a primary. (The first deadline is set, and confirmed, before pg_promote: nc.ts.)
   */
  private guardLease(): void {
    const wd = this.d.watchdog;
    const raft = this.raftNode;
    if (!wd || !raft) return;
    const now = this.d.sched.now();
    const soft = this.soft();
    if (soft.role === 'leader' && soft.writable && raft.soft().writable) {
      const until = raft.leaseExpiresAt(now);
      if (until !== null) wd.renew(until);
    } else if (!this.nc.busy() && this.nc.observed().role !== 'PRIMARY' && this.lastProbe?.role !== 'PRIMARY') {
      // Not while an action runs: a pg_promote in flight (the host paused in it, the lease gone)
      // ends with a primary that only the deadline held now fences.
      wd.disarm();
    }
  }

  // ---------------------------------------------------------------- the Ready loop

  pump(): void {
    const raft = this.raftNode;
    if (!raft || !raft.hasReady() || this.stopped) return;
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    this.pumping = true;
    void this.drain(raft)
      .catch((e: unknown) => this.bug(e))
      .finally(() => {
      this.pumping = false;
      if (this.pumpAgain) {
        this.pumpAgain = false;
        this.pump();
      }
    });
  }

  private bug(e: unknown): void {
    this.d.log.error({ err: e instanceof Error ? (e.stack ?? e.message) : String(e) }, 'raft driver error');
    this.d.hooks?.bug?.(e);
  }

  private async drain(raft: RaftNode): Promise<void> {
    while (raft.hasReady() && !this.stopped && this.raftNode === raft) {
      const rd = raft.ready();
      if (!(await this.execute(raft, rd))) return;
    }
  }

  /** Executes one Ready; false when the node must stop (persisting failed). */
  private async execute(raft: RaftNode, rd: Ready): Promise<boolean> {
    const h = this.d.hooks;
    if (rd.hardState || rd.log) {
      try {
        await this.d.io.persist(raft.persistent());
      } catch (e) {
        this.d.log.error({ err: e instanceof Error ? e.message : String(e) }, 'cannot persist raft state; stopping');
        this.stop();
        h?.fatal?.(e);
        return false;
      }
    }
    let messages = rd.messages;
    if (rd.fenceWal) {
      const why = await this.fenceWal(raft, rd.fenceWal);
      if (why !== null) {
        messages = messages.filter((m) => !((m.type === 'vote_resp' && !m.reject) || m.type === 'vote'));
        this.d.log.warn({ term: rd.fenceWal.term }, `vote in term ${rd.fenceWal.term} withheld: ${why}`);
        h?.voteWithheld?.(rd.fenceWal.term, why);
      } else {
        messages = withFencedWal(messages, raft.walPosition());
      }
    }
    for (const m of messages) {
      h?.sent?.(m);
      this.d.io.send(m);
    }
    if (rd.committed.length > 0) h?.committed?.(rd.committed);
    if (rd.config) h?.config?.(rd.config);
    if (rd.log) h?.logChanged?.();
    if (rd.soft) {
      const prev = this.lastSoft;
      this.noteGivingWay(raft, prev, rd.soft);
      this.lastSoft = rd.soft;
      h?.soft?.(prev, rd.soft);
    }
    if (rd.soft || rd.committed.length > 0) this.nc.kick();
    return true;
  }

  /** One line when this leader starts to give way for want of WAL on its followers. */
  private noteGivingWay(raft: RaftNode, prev: SoftState | null, s: SoftState): void {
    if (s.transferTarget === 0 || prev?.transferTarget === s.transferTarget) return;
    const g = raft.givingWay();
    if (!g || g.target !== s.transferTarget) return;
    this.d.log.warn(
      { target: g.target, noWalMs: g.noWalMs, term: s.term },
      `synchronous commits are blocked: followers have received no WAL for ${g.noWalMs} ms while heartbeats arrive: giving leadership to node ${g.target}`,
    );
  }

  /**
   * Votes fence WAL. Returns null when the vote may leave, else why not. PostgreSQL must neither
   * accept writes nor receive WAL from an older leader, judged by what PostgreSQL really does
   * (the probe), not by what NC last did. Then the WAL position it ends with, which can no longer
   * grow, is compared with the candidate's: the raft core checked the last polled position, which
   * may be older.
   */
  private async fenceWal(raft: RaftNode, f: NonNullable<Ready['fenceWal']>): Promise<string | null> {
    const pg = this.d.pg;
    if (!this.d.hasData || !pg) return null;
    const run = async (): Promise<WalPos | null> => {
      let p = await pg.probe();
      if (p.role === 'PRIMARY') {
        this.d.ncLog.info({ term: f.term }, 'vote in a newer term: fence this primary first');
        await pg.fence('immediate');
        this.nc.noteRole('STANDBY');
      } else if (p.role === 'STANDBY' && (p.receiving || this.nc.observed().upstream !== 0)) {
        this.d.ncLog.info({ term: f.term }, 'vote in a newer term: stop streaming from the old leader first');
        await pg.detach();
        this.nc.noteDetached();
      }
      const deadline = this.d.sched.now() + RECEIVER_STOP_WAIT_MS;
      p = await pg.probe();
      while (p.receiving && this.d.sched.now() < deadline) {
        await this.sleep(RECEIVER_POLL_MS);
        p = await pg.probe();
      }
      if (p.role === 'PRIMARY') throw new Error('PostgreSQL is still a primary');
      if (p.receiving) throw new Error(`the walreceiver still runs ${RECEIVER_STOP_WAIT_MS} ms after the detach`);
      return p.wal;
    };
    let wal: WalPos | null;
    try {
      // A rewind keeps PostgreSQL stopped and leaves it detached: the vote need not wait for it.
      wal = this.nc.fenceTransparent() ? null : await this.nc.exclusive(run);
    } catch (e) {
      return `the fence did not take effect (${e instanceof Error ? e.message : String(e)})`;
    }
    if (wal) {
      raft.setWal(wal);
      // The same WAL the raft core judges votes on: the node's own (a regular node), the part it
      // shares with the cluster (in NODE_ERROR); a referee_with_wal votes on what it saw the leader report.
      const me = findNode(raft.config(), this.d.id);
      const err = this.d.nodeError();
      const need = me !== undefined && me.mode !== 'regular' ? null : err ? err.kept : wal;
      if (f.candidateWal && need && compareWal(f.candidateWal, need) < 0) {
        return `this node's WAL ends at ${need.tli}/${need.lsn}, past the candidate's ${f.candidateWal.tli}/${f.candidateWal.lsn}`;
      }
    }
    return null;
  }

  // ---------------------------------------------------------------- NODE_ERROR

  /** Record a NODE_ERROR (durably), stop counting as a candidate, and let NC keep replication stopped. */
  async enterNodeError(e: NodeErrorReport): Promise<void> {
    await this.d.saveNodeError(e);
    this.raftNode?.setNodeError(true, e.kept ?? undefined);
    this.d.ncLog.error({ type: e.type }, `NODE_ERROR: ${e.details}`);
    this.d.hooks?.nodeError?.(e);
    this.kick();
  }

  /** biha.reset_node_error(): clear the error; the next attempt to follow compares timelines again. */
  async resetNodeError(): Promise<void> {
    if (!this.d.nodeError()) return;
    // The DBA repaired the data directory: PostgreSQL may start again.
    await this.d.pg?.clearHold();
    await this.d.saveNodeError(null);
    this.raftNode?.setNodeError(false);
    this.d.ncLog.info({}, 'NODE_ERROR reset');
    this.d.hooks?.nodeError?.(null);
    this.nc.clearDivergence();
    this.kick();
  }

  /**
   * bihactl rewind: pg_rewind from the current leader (whatever NODE_ERROR says), then clear the
   * error. Returns the leader it rewound from.
   */
  async rewindFromLeader(): Promise<NodeInfo> {
    const pg = this.d.pg;
    if (!pg) throw new Error('a referee has no data to rewind');
    const soft = this.soft();
    const leader = findNode(this.config(), soft.leaderId);
    if (!leader || leader.id === this.d.id || soft.role === 'leader') throw new Error('rewind needs another node to be the leader; none is known right now');
    try {
      await this.nc.exclusive(async () => {
        await pg.rewind(leader, () => this.nc.markTransparent());
        this.nc.noteRole('STANDBY');
        this.nc.noteDetached();
      });
    } catch (e) {
      // A rewind that failed half-way keeps PostgreSQL stopped: the node says so in NODE_ERROR.
      const hold = pg.hold();
      if (hold !== null && this.d.nodeError()?.type !== 'REWIND_FAILED') {
        await this.enterNodeError({ type: 'REWIND_FAILED', details: hold, beginLsn: null, endLsn: null, currentTli: null, nextTli: null, replayLsn: null, kept: this.d.nodeError()?.kept ?? null });
      }
      throw e;
    }
    if (this.d.nodeError()) await this.resetNodeError();
    else {
      this.nc.clearDivergence();
      this.kick();
    }
    return leader;
  }

  // ---------------------------------------------------------------- promotion prerequisites

  private timelineStep(pgTli: number): TimelineStep {
    const raft = this.raftNode;
    const r = raft?.timelineReservation() ?? null;
    if (!r || r.tli <= pgTli) return { kind: 'reserve' };
    // Where the parameters allow two leaders anyway, a lone leader cannot wait for a commit quorum.
    const cfg = this.config();
    const splitBrainAllowed = electionQuorum(cfg) * 2 <= voterIds(cfg).length;
    return r.committed || splitBrainAllowed ? { kind: 'ready', tli: r.tli } : { kind: 'wait', tli: r.tli };
  }

  private reserveTimeline(pgTli: number): void {
    const raft = this.raftNode;
    if (!raft) return;
    const r = raft.reserveTimeline(pgTli, this.d.sched.now());
    // NC asks again on every cycle until raft's new state reaches it: say why once per term.
    const why = r.ok ? null : `${raft.soft().term}:${r.code}`;
    if (!r.ok && why !== this.reserveRefused) this.d.ncLog.warn({ code: r.code }, `cannot reserve a timeline yet: ${r.message}`);
    this.reserveRefused = why;
    this.pump();
  }

  private leaseUntil(): number | null {
    const raft = this.raftNode;
    if (!raft || !raft.soft().writable || !this.lastSoft?.writable) return null;
    return raft.leaseExpiresAt(this.d.sched.now());
  }

  private nodesInError(): ReadonlySet<NodeId> {
    const peers = this.raftNode?.peers() ?? [];
    return new Set(peers.filter((p) => p.state === 'NODE_ERROR' || p.state === 'NODE_ERROR_VOTING').map((p) => p.id));
  }

  private liveNodes(): ReadonlySet<NodeId> {
    const peers = this.raftNode?.peers() ?? [];
    return new Set(peers.filter((p) => p.online && p.state !== 'NODE_ERROR' && p.state !== 'NODE_ERROR_VOTING').map((p) => p.id));
  }

  /**
   * The fence of a switchover stopped PostgreSQL cleanly and its WAL ends at `end`, which can no
   * longer grow: raft may hand leadership over as soon as the target has that WAL, while PostgreSQL
   * restarts as a standby.
   */
  private stoppedAt(end: WalPos): void {
    const raft = this.raftNode;
    if (!raft) return;
    raft.setWal(end);
    raft.setLocalFenced(true);
    this.d.ncLog.info({ tli: end.tli, lsn: end.lsn }, 'PostgreSQL stopped cleanly: its WAL end is known; restarting it as a standby');
    this.pump();
  }

  private afterCycle(o: Observed): void {
    const raft = this.raftNode;
    if (!raft) return;
    raft.setLocalFenced(o.role !== 'PRIMARY');
    this.guardLease();
    this.pump();
  }
}

/**
 * The vote requests of this node's own campaign were built with the WAL position last polled; the
 * fence that preceded them read where its WAL ends now that it can no longer grow. Voters compare
 * it with their own freshly fenced WAL, so they get the position read last.
 */
function withFencedWal(messages: readonly Message[], wal: WalPos): Message[] {
  return messages.map((m) => (m.type === 'vote' && compareWal(wal, m.wal) > 0 ? { ...m, wal } : m));
}
