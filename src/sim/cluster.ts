// One simulated cluster run: K hosts, each with a simulated PostgreSQL (pg.ts), a lease watchdog and
// — while it runs — a controller: the product's raft driver and NC (src/controller/driver) with
// the raft core, wired to simulated effects (disk, network, PostgreSQL, clock). A faulty network,
// a nemesis, an operator (switchovers, config changes, node replacement, NODE_ERROR repair) and a
// client writing all the time. Time is simulated; each host's clock runs at its own rate (within
// ±1 %). Invariants are checked on every step; the first violation stops the run.
//
// The driver is asynchronous (as in the controller); between two events the run waits until every
// promise the event settled has run its continuation, so a run is a deterministic function of
// its seed.
import { DEFAULT_PARAMS, asLearner, bootstrapState, electionQuorum, electionTimeoutMs, isMember, voterIds } from '../raft/index.js';
import type {
  ClusterConfig,
  ClusterParams,
  ConfigChange,
  Message,
  NodeId,
  NodeInfo,
  PersistentState,
  ProposeResult,
  SoftState,
  WalPos,
} from '../raft/index.js';
import { Driver, driverPeriods } from '../controller/driver/driver.js';
import { parseSyncStandbyNames, slotName } from '../controller/driver/duties.js';
import { childHistory, divergence, placeholdersFor } from '../controller/driver/timeline.js';
import type { DriverLog, PeerPort, PgPort, PgProbe, Scheduler, TimelineInfo, WatchdogPort } from '../controller/driver/types.js';
import { fmtChange, fmtMsg, fmtSoft } from './format.js';
import { EventQueue } from './heap.js';
import { Host, downSoft } from './host.js';
import { InvariantChecker } from './invariants.js';
import type { LeaderWal, Violation } from './invariants.js';
import { CALM_NETWORK, MAX_NODE_ID, Network } from './network.js';
import type { Channel, NetQuality } from './network.js';
import { majority, syncStandbysFor } from './options.js';
import type { SimOptions } from './options.js';
import { SimPg, WAL_RETRIEVE_RETRY_MS } from './pg.js';
import type { Conn } from './pg.js';
import { Prng } from './prng.js';
import { TraceHash } from './trace.js';
import type { TraceSink } from './trace.js';
import { WalLog } from './wal.js';

type Phase = 'form' | 'fault' | 'heal' | 'done';

type SimEvent =
  /** Controller side: a timer or the continuation of an effect (dropped if that controller died). */
  | { readonly k: 'ctl'; readonly host: Host; readonly inc: number; readonly fn: () => void }
  /** Host side: PostgreSQL or watchdog work (waits while the host is paused). */
  | { readonly k: 'do'; readonly host: Host; readonly fn: () => void }
  | { readonly k: 'msg'; readonly msg: Message }
  | { readonly k: 'walTick'; readonly host: Host; readonly pgInc: number }
  | { readonly k: 'chunk'; readonly conn: Conn; readonly from: number; readonly prevId: number; readonly ids: number[]; readonly tlis: number[] }
  | { readonly k: 'ack'; readonly conn: Conn; readonly len: number; readonly lastId: number }
  | { readonly k: 'connect'; readonly conn: Conn }
  | { readonly k: 'wd'; readonly host: Host; readonly token: number }
  | { readonly k: 'start'; readonly host: Host }
  | { readonly k: 'resume'; readonly host: Host }
  | { readonly k: 'write' }
  | { readonly k: 'nemesis' }
  | { readonly k: 'heal-net'; readonly token: number }
  | { readonly k: 'operator' }
  | { readonly k: 'phase'; readonly phase: Phase }
  | { readonly k: 'script'; readonly stage: number }
  | { readonly k: 'check' };

/** Events after which no driver code can be waiting to continue. */
const NO_DRIVER = new Set<SimEvent['k']>(['walTick', 'chunk', 'ack', 'connect', 'write', 'check', 'heal-net', 'phase']);

export interface RunStats {
  /** Leaders elected (one per term that had a leader). */
  elections: number;
  /** Changes of the writable primary to another node that were not a requested switchover. */
  failovers: number;
  switchovers: number;
  /** Replication-only cuts of the leader (nemesis) and leaders that then gave way (docs/raft.md "Giving way"). */
  replicationCuts: number;
  gaveWay: number;
  /** Longest time from the loss of the writable primary (crash or isolation, no other fault meanwhile) to the next primary. */
  maxFailoverMs: number;
  ackedWrites: number;
  /** Asynchronously acknowledged writes that the final leader does not have. */
  lostAsyncWrites: number;
  /** Client writes refused because no database accepted writes. */
  refusedWrites: number;
  /** Writes whose synchronous wait was cut short by fencing or a crash (outcome unknown to the client). */
  indeterminateWrites: number;
  rewinds: number;
  /** Records (writes and system records) dropped by rewinds. */
  rewoundRecords: number;
  nodeErrors: number;
  crashes: number;
  partitions: number;
  messages: number;
  dropped: number;
  /** Votes the driver did not send (fence failed, or the final WAL was past the candidate's). */
  votesWithheld: number;
  /** Promotions that picked a timeline number another promotion had already used. */
  reusedTimelines: number;
  /** Walreceiver connections refused because the node's slot did not exist on the upstream. */
  missingSlots: number;
  /** Simulated ms during which two databases accepted writes (a violation unless a frozen host was involved). */
  dbOverlapMs: number;
  /** Part of dbOverlapMs with a host resumed from a freeze longer than its lease (not preventable from that host). */
  frozenOverlapMs: number;
  /** From the start of healing to the first writable leader (-1: none). */
  healElectMs: number;
  /** From the start of healing to convergence (-1: none). */
  convergeMs: number;
  /** wal-vs-config scenario: from the leader crash to the next writable leader (-1: not run). */
  scenarioElectMs: number;
  steps: number;
  simMs: number;
}

export interface RunResult {
  readonly seed: number;
  readonly nodes: number;
  readonly mode: SimOptions['mode'];
  readonly scenario: SimOptions['scenario'];
  readonly violations: readonly Violation[];
  readonly stats: RunStats;
  /** Hash of the full trace when one was requested, else null. */
  readonly traceHash: string | null;
}

const NEMESIS_MIN_MS = 200;
const NEMESIS_MAX_MS = 2000;
const CHECK_PERIOD_MS = 50;
const OPERATOR_PERIOD_MS = 100;
const PROPOSE_RETRY_MS = 300;
const FORM_BOUND_MS = 15_000;
/** The control channel's request timeout (transport.request in the controller). */
const REQUEST_TIMEOUT_MS = 3000;

const QUALITIES: readonly NetQuality[] = [
  CALM_NETWORK,
  { loss: 0.01, dup: 0.01, reorder: 0.05, minDelayMs: 0.5, maxDelayMs: 5, reorderMs: 30 },
  { loss: 0.05, dup: 0.03, reorder: 0.2, minDelayMs: 1, maxDelayMs: 20, reorderMs: 100 },
  { loss: 0.2, dup: 0.05, reorder: 0.3, minDelayMs: 2, maxDelayMs: 40, reorderMs: 250 },
  { loss: 0, dup: 0.1, reorder: 0.5, minDelayMs: 5, maxDelayMs: 80, reorderMs: 300 },
];

const SILENT = { info: (): void => undefined, warn: (): void => undefined, error: (): void => undefined };

/** Lets every settled promise run its continuation (no clock is read). */
function flushMicrotasks(): Promise<void> {
  // eslint-disable-next-line no-restricted-globals -- drains the microtask queue between simulated events; no time is read
  return new Promise((r) => setImmediate(r));
}

export class Simulation {
  private readonly o: SimOptions;
  private readonly rng: Prng;
  private readonly nemRng: Prng;
  private readonly net: Network;
  private readonly queue = new EventQueue<SimEvent>();
  private readonly inv = new InvariantChecker();
  private readonly hosts: Host[] = [];
  private readonly byId = new Map<NodeId, Host>();
  private readonly params: ClusterParams;
  private readonly T: number;
  /** Largest election timeout T the run ever configured (the liveness bounds are multiples of it). */
  private tMax: number;
  private readonly k: number;
  private readonly sink: TraceSink | null;
  private readonly hash: TraceHash | null;
  private readonly tracing: boolean;
  private readonly nodeRng: Prng;

  private now = 0;
  private step = 0;
  private phase: Phase = 'form';
  private finished = false;
  private nextNodeId: number;
  private nextConnId = 1;
  private writeSeq = 0;
  private sysSeq = 0;
  /** Every timeline a promotion created: number -> node and position. */
  private readonly timelines = new Map<number, string>();

  // Operator.
  private pendingAdd: { id: NodeId; proposedAt: number; stage: 'register' | 'copy' | 'started' } | null = null;
  private pendingRemove: { id: NodeId; proposedAt: number } | null = null;
  private formQueue: NodeId[] = [];
  private switchTarget: { from: NodeId; to: NodeId; at: number } | null = null;
  /** Nodes the operator is rewinding, with the controller incarnation doing it. */
  private repairing = new Map<NodeId, number>();

  // Nemesis.
  private netToken = 0;
  /** Isolate the leader the moment it applies the next committed config change. */
  private isolateOnCommit = false;
  private scriptActive = false;
  /** The nemesis does nothing else until then (a replication-only cut runs alone). */
  private quietUntil = Number.NEGATIVE_INFINITY;
  private watch: { since: number; bound: number; what: string; except: NodeId } | null = null;

  // Writes.
  private readonly ackedAll: Array<{ id: number; pos: number }> = [];
  private finalWrite: { id: number; node: NodeId; acked: boolean } | null = null;

  // Heal.
  private healStart = -1;
  private electedAt = -1;

  // Stats.
  private lastWritable: NodeId = 0;
  private failoverClock: { from: NodeId; start: number; clean: boolean } | null = null;
  private overlapSince = -1;
  private overlapFrozen = false;
  private readonly stats: RunStats = {
    elections: 0, failovers: 0, switchovers: 0, replicationCuts: 0, gaveWay: 0, maxFailoverMs: 0, ackedWrites: 0, lostAsyncWrites: 0,
    refusedWrites: 0, indeterminateWrites: 0, rewinds: 0, rewoundRecords: 0, nodeErrors: 0, crashes: 0, partitions: 0,
    messages: 0, dropped: 0, votesWithheld: 0, reusedTimelines: 0, missingSlots: 0, dbOverlapMs: 0, frozenOverlapMs: 0, healElectMs: -1, convergeMs: -1,
    scenarioElectMs: -1, steps: 0, simMs: 0,
  };

  constructor(opts: SimOptions, trace?: { sink?: TraceSink; hash?: boolean }) {
    this.o = opts;
    const root = new Prng(opts.seed);
    this.rng = root.fork(1);
    this.nemRng = root.fork(2);
    this.net = new Network(root.fork(3));
    this.nodeRng = root.fork(4);
    this.sink = trace?.sink ?? null;
    this.hash = trace?.hash || trace?.sink ? new TraceHash() : null;
    this.tracing = this.hash !== null;
    this.k = opts.mode === 'sync' ? syncStandbysFor(opts.nodes, opts.nquorum) : 0;
    this.params = {
      ...DEFAULT_PARAMS,
      nquorum: opts.nquorum,
      minnodes: opts.minnodes,
      heartbeatSendPeriod: opts.heartbeatSendPeriod,
      heartbeatMaxLost: opts.heartbeatMaxLost,
      noWalOnFollower: opts.noWalOnFollower,
      syncStandbys: this.k,
    };
    this.T = electionTimeoutMs(this.params);
    this.tMax = this.T;
    this.nextNodeId = opts.nodes + 1;
  }

  // ------------------------------------------------------------------ run loop

  async run(): Promise<RunResult> {
    this.trace(`sim seed ${this.o.seed} nodes ${this.o.nodes} mode ${this.o.mode} k ${this.k} scenario ${this.o.scenario} T ${this.T}`);
    this.bootstrap();
    while (!this.finished && this.queue.size > 0) {
      const t = this.queue.peekTime();
      const hardStop = FORM_BOUND_MS + this.o.faultMs + this.o.convergeBoundT * this.tMax + 1000;
      if (t > hardStop) {
        this.inv.at(this.step, t);
        this.inv.fail(6, `run did not finish by ${hardStop} ms`);
        break;
      }
      const ev = this.queue.pop();
      this.now = t;
      this.step++;
      this.inv.at(this.step, t);
      try {
        this.handle(ev);
      } catch (e) {
        this.bug(e, `handling ${ev.k}`);
      }
      if (!NO_DRIVER.has(ev.k)) await flushMicrotasks();
      this.checkWritable();
      if (!this.inv.ok) break;
    }
    for (const h of this.hosts) this.stopController(h);
    this.stats.steps = this.step;
    this.stats.simMs = Math.round(this.now);
    for (const v of this.inv.violations) this.trace(`VIOLATION invariant ${v.invariant} at step ${v.step}: ${v.description}`);
    return {
      seed: this.o.seed,
      nodes: this.o.nodes,
      mode: this.o.mode,
      scenario: this.o.scenario,
      violations: this.inv.violations,
      stats: this.stats,
      traceHash: this.hash ? this.hash.digest() : null,
    };
  }

  private bug(e: unknown, where: string): void {
    const err = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
    if (this.inv.ok) this.inv.fail(0, `exception while ${where}: ${err}`);
  }

  /** The host an event is processed on (null: no single host). */
  private target(ev: SimEvent): Host | null {
    switch (ev.k) {
      case 'ctl':
      case 'do':
      case 'walTick':
      case 'wd':
        return ev.host;
      case 'msg':
        return this.byId.get(ev.msg.to) ?? null;
      case 'chunk':
      case 'connect':
        return this.byId.get(ev.conn.down.id) ?? null;
      case 'ack':
        return this.byId.get(ev.conn.up.id) ?? null;
      default:
        return null;
    }
  }

  private handle(ev: SimEvent): void {
    const t = this.target(ev);
    if (t && t.pausedUntil > this.now) {
      // A paused host handles nothing; its input waits (in order) until it resumes.
      this.queue.push(t.pausedUntil, ev);
      return;
    }
    switch (ev.k) {
      case 'ctl':
        if (ev.host.ctl?.inc === ev.inc) ev.fn();
        return;
      case 'do':
        return ev.fn();
      case 'msg':
        return this.onMsg(ev.msg);
      case 'walTick':
        return this.walTick(ev.host, ev.pgInc);
      case 'chunk':
        return this.onChunk(ev.conn, ev.from, ev.prevId, ev.ids, ev.tlis);
      case 'ack':
        return this.onAck(ev.conn, ev.len, ev.lastId);
      case 'connect':
        return this.onConnect(ev.conn);
      case 'wd':
        return this.onWatchdog(ev.host, ev.token);
      case 'start':
        return this.startController(ev.host);
      case 'resume':
        return this.onResume(ev.host);
      case 'write':
        return this.onClientWrite();
      case 'nemesis':
        return this.onNemesis();
      case 'heal-net':
        if (ev.token === this.netToken && this.phase === 'fault' && !this.scriptActive) {
          this.net.healAll();
          this.trace('net heal');
        }
        return;
      case 'operator':
        return this.onOperator();
      case 'phase':
        return this.enterPhase(ev.phase);
      case 'script':
        return this.onScript(ev.stage);
      case 'check':
        return this.onCheck();
    }
  }

  private at(delay: number, ev: SimEvent): void {
    this.queue.push(this.now + delay, ev);
  }

  private trace(line: string): void {
    if (!this.hash) return;
    const full = `${this.now.toFixed(3).padStart(10)} #${this.step} ${line}`;
    this.hash.add(full);
    if (this.sink) this.sink(full);
  }

  private local(h: Host): number {
    return h.offset + h.rate * this.now;
  }

  /** Simulation time at which host `h`'s clock shows `local`. */
  private realAt(h: Host, local: number): number {
    return (local - h.offset) / h.rate;
  }

  // ------------------------------------------------------------------ hosts

  private nodeInfo(id: NodeId): NodeInfo {
    return { id, host: `node${id}`, port: 5432, bihaPort: 5433, mode: 'regular', canBeLeader: true, canVote: true, priority: 0 };
  }

  private makeHost(id: NodeId, state: PersistentState, pg: SimPg): Host {
    const r = this.nodeRng.fork(id);
    const rate = 0.99 + 0.02 * r.next();
    const offset = Math.floor(r.next() * 1e6);
    const autorewind = r.next() < this.o.autorewindShare;
    const h = new Host(this.nodeInfo(id), rate, offset, () => r.next(), state, pg, autorewind);
    this.hosts.push(h);
    this.byId.set(id, h);
    return h;
  }

  private bootstrap(): void {
    const first = this.makeHost(1, bootstrapState(this.nodeInfo(1), this.params), new SimPg(1, new WalLog()));
    this.inv.persisted(1, first.persisted.hard);
    this.startController(first);
    for (let id = 2; id <= this.o.nodes; id++) this.formQueue.push(id);
    this.at(OPERATOR_PERIOD_MS, { k: 'operator' });
    this.at(this.rng.range(10, 40), { k: 'write' });
    this.at(CHECK_PERIOD_MS, { k: 'check' });
  }

  private members(): Host[] {
    return this.hosts.filter((h) => !h.removed);
  }

  private findLeader(): Host | null {
    let best: Host | null = null;
    for (const h of this.hosts) {
      if (!h.up || h.removed || h.soft.role !== 'leader') continue;
      if (!best || h.soft.term > best.soft.term) best = h;
    }
    return best;
  }

  // ------------------------------------------------------------------ the controller (product code)

  /**
   * Starts a host's controller from its persisted state: the product's driver boots (PostgreSQL
   * first: started as a detached standby when it is down), then ticks and polls.
   */
  private startController(h: Host): void {
    if (h.up || h.removed) return;
    const inc = ++h.ctlInc;
    if (!h.wdAlive) {
      h.wdAlive = true;
      h.wdDeadline = null;
    }
    const sched: Scheduler = {
      now: () => this.local(h),
      after: (ms, fn) => {
        let live = true;
        this.queue.push(this.now + Math.max(0, ms) / h.rate, { k: 'ctl', host: h, inc, fn: () => live && fn() });
        return () => {
          live = false;
        };
      },
    };
    const driver = new Driver({
      id: h.id,
      hasData: true,
      state: h.persisted,
      rand: h.rand,
      io: {
        persist: (state) => this.persist(h, inc, state),
        send: (m) => this.send(m),
      },
      pg: this.pgPort(h, inc),
      peers: this.peerPort(h, inc),
      pgReachable: (nodes) => this.pgReachable(h, inc, nodes),
      watchdog: this.watchdogPort(h),
      sched,
      log: this.tracing ? this.logger(h, 'BIHA') : SILENT,
      ncLog: this.tracing ? this.logger(h, 'NC') : SILENT,
      nodeError: () => h.nodeError,
      saveNodeError: (e) =>
        this.toCtl(h, inc, this.hostWait(h, 2).then(() => {
          if (e && !h.nodeError) {
            h.nodeErrorAt = this.now;
            this.stats.nodeErrors++;
          }
          h.nodeError = e;
          this.trace(e ? `n${h.id} NODE_ERROR ${e.type}` : `n${h.id} NODE_ERROR cleared`);
        })),
      autorewind: () => Promise.resolve(h.autorewind),
      stopping: () => false,
      hooks: {
        soft: (prev, s) => this.onSoft(h, prev, s),
        config: (cfg) => this.onConfig(h, cfg),
        sent: (m) => this.onSent(h, m),
        voteWithheld: (term, why) => {
          this.stats.votesWithheld++;
          this.trace(`n${h.id} vote in term ${term} withheld: ${why}`);
        },
        bug: (e) => this.bug(e, `in the driver of node ${h.id}`),
      },
    });
    h.ctl = { inc, driver };
    h.soft = driver.soft();
    h.config = driver.config();
    this.trace(`n${h.id} controller start (db ${h.pg.proc}${h.pg.primary ? ' primary' : ''}) term ${h.persisted.hard.term} vote ${h.persisted.hard.vote} wal ${h.pg.tli}/${h.pg.wal.lsn}`);
    const { tickMs, pollMs } = driverPeriods(this.params.heartbeatSendPeriod, this.o.tickMs);
    driver
      .boot(600_000)
      .then(() => {
        if (h.ctl?.inc !== inc) return;
        h.soft = driver.soft();
        driver.start(tickMs, pollMs);
      })
      .catch((e: unknown) => this.bug(e, `booting node ${h.id}`));
  }

  /** The driver's log lines go into the trace. */
  private logger(h: Host, component: string): DriverLog {
    const line = (level: string) => (obj: object, msg: string): void => {
      const extra = Object.keys(obj).length > 0 ? ` ${JSON.stringify(obj)}` : '';
      this.trace(`n${h.id} ${component} ${level}: ${msg}${extra}`);
    };
    return { info: line('info'), warn: line('warn'), error: line('error') };
  }

  private stopController(h: Host): void {
    if (!h.ctl) return;
    h.ctl.driver.stop();
    h.ctl = null;
    h.soft = downSoft(h.persisted.hard.term);
  }

  /** kill -9 of the controller alone: PostgreSQL and the watchdog keep running. */
  private killController(h: Host): void {
    if (!h.up) return;
    this.trace(`n${h.id} CONTROLLER KILLED (db ${h.pg.proc}${h.pg.primary ? ' primary' : ''})`);
    this.stats.crashes++;
    h.crashAfterPersist = false;
    this.stopController(h);
  }

  /** The whole host stops (controller, watchdog, PostgreSQL); only the disk survives. */
  private crash(h: Host, why: string): void {
    if (!h.up && h.pg.proc === 'down' && !h.wdAlive) return;
    this.trace(`n${h.id} CRASH (${why})`);
    this.stats.crashes++;
    this.stopController(h);
    this.pgDown(h, 'host crashed');
    h.wdAlive = false;
    h.wdDeadline = null;
    h.crashAfterPersist = false;
    h.pausedUntil = 0;
    h.frozenPastLease = false;
  }

  /** Settles a controller's promise on the controller's side: never, if that controller died meanwhile. */
  private toCtl<T>(h: Host, inc: number, p: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      p.then(
        (v) => this.queue.push(this.now, { k: 'ctl', host: h, inc, fn: () => resolve(v) }),
        (e: unknown) => this.queue.push(this.now, { k: 'ctl', host: h, inc, fn: () => reject(e instanceof Error ? e : new Error(String(e))) }),
      );
    });
  }

  /** Resolves on the host's side after `ms` (later if the host is paused meanwhile). */
  private hostWait(h: Host, ms: number): Promise<void> {
    return new Promise<void>((r) => this.at(ms, { k: 'do', host: h, fn: r }));
  }

  private persist(h: Host, inc: number, state: PersistentState): Promise<void> {
    const done = this.hostWait(h, this.rng.range(0.5, 3)).then(() => {
      // A write of a controller that was killed meanwhile never reaches the disk.
      if (h.ctl?.inc !== inc) return;
      h.persisted = state;
      if (this.tracing) this.trace(`n${h.id} persisted term ${state.hard.term} vote ${state.hard.vote} commit ${state.hard.commit}`);
      this.inv.persisted(h.id, state.hard);
      if (h.crashAfterPersist && h.ctl?.inc === inc) {
        this.crash(h, 'after persisting, before sending');
        this.at(this.nemRng.range(300, 3000), { k: 'start', host: h });
      }
    });
    return this.toCtl(h, inc, done);
  }

  private onSoft(h: Host, prev: SoftState | null, s: SoftState): void {
    h.soft = s;
    if (s.givingWay === true && prev?.givingWay !== true) {
      this.stats.gaveWay++;
      this.trace(`n${h.id} gives way to n${s.transferTarget}: its followers receive no WAL`);
    }
    if (s.role === 'leader' && (prev?.role !== 'leader' || prev.term !== s.term)) {
      this.stats.elections++;
      this.trace(`n${h.id} ELECTED term ${s.term} wal ${h.pg.tli}/${h.pg.wal.lsn}`);
      this.inv.becameLeader(h.id, s.term, h.pg.wal.pos(), (p, id) => h.pg.wal.has(p, id));
    } else if (this.tracing && (prev?.role !== s.role || prev.state !== s.state)) {
      this.trace(`n${h.id} ${fmtSoft(s)}`);
    }
  }

  private onConfig(h: Host, cfg: ClusterConfig): void {
    h.config = cfg;
    if (this.isolateOnCommit && h.soft.role === 'leader' && this.phase === 'fault' && !this.scriptActive) {
      this.isolateOnCommit = false;
      this.isolate(h, 'right after it applied a config change');
    }
  }

  private onSent(h: Host, m: Message): void {
    if (m.type === 'vote_resp' && !m.reject) {
      const me = h.config.nodes.find((n) => n.id === h.id);
      // A rewinding node's WAL becomes the source's, whatever it votes: like a node in NODE_ERROR,
      // its vote is judged on the WAL it shares with the cluster.
      const judged = h.nodeError === null && !h.rewinding && (me === undefined || me.mode === 'regular');
      this.inv.voteSent(h.id, m.term, m.to, h.pg.wal.pos(), judged);
    }
  }

  // ------------------------------------------------------------------ control channel

  private send(m: Message): void {
    this.stats.messages++;
    if (!this.net.connected('ctl', m.from, m.to)) {
      this.stats.dropped++;
      if (this.tracing) this.trace(`drop n${m.from}>n${m.to} ${m.type} (cut)`);
      return;
    }
    const delays = this.net.controlDelays();
    if (delays.length === 0) {
      this.stats.dropped++;
      if (this.tracing) this.trace(`drop n${m.from}>n${m.to} ${m.type} (lost)`);
      return;
    }
    for (const d of delays) this.at(d, { k: 'msg', msg: m });
  }

  private onMsg(m: Message): void {
    const to = this.byId.get(m.to);
    if (!to || !to.ctl) {
      this.stats.dropped++;
      if (this.tracing) this.trace(`drop n${m.from}>n${m.to} ${m.type} (down)`);
      return;
    }
    if (!this.net.connected('ctl', m.from, m.to)) {
      this.stats.dropped++;
      if (this.tracing) this.trace(`drop n${m.from}>n${m.to} ${m.type} (cut in flight)`);
      return;
    }
    if (this.tracing) this.trace(`n${m.from}>n${m.to} ${fmtMsg(m)}`);
    to.ctl.driver.step(m);
  }

  /**
   * A TCP connect to each node's PostgreSQL port: it succeeds when the replication channel works both
   * ways and the peer's PostgreSQL runs. Answers after a few ms (a refused or dropped connect in the
   * product waits up to its timeout; the simulated one does not, which only makes probes fresher).
   */
  private pgReachable(h: Host, inc: number, nodes: readonly NodeInfo[]): Promise<NodeId[]> {
    return new Promise<NodeId[]>((resolve) => {
      this.at(2, {
        k: 'do',
        host: h,
        fn: () => {
          const ids = nodes.filter((n) => {
            const peer = this.byId.get(n.id);
            return peer !== undefined && peer.up && peer.pg.proc === 'up' && this.net.linked('wal', h.id, n.id);
          }).map((n) => n.id);
          this.queue.push(this.now, { k: 'ctl', host: h, inc, fn: () => resolve(ids) });
        },
      });
    });
  }

  /** 'tl_history' over the control channel: the peer's controller reads its PostgreSQL's timeline. */
  private peerPort(h: Host, inc: number): PeerPort {
    return {
      timeline: (id) =>
        new Promise<TimelineInfo>((resolve, reject) => {
          let settled = false;
          const settle = (fn: () => void): void => {
            if (settled) return;
            settled = true;
            this.queue.push(this.now, { k: 'ctl', host: h, inc, fn });
          };
          this.at(REQUEST_TIMEOUT_MS, { k: 'do', host: h, fn: () => settle(() => reject(new Error(`node ${id} did not answer within ${REQUEST_TIMEOUT_MS} ms`))) });
          const peer = this.byId.get(id);
          const go = this.net.controlDelays()[0];
          if (!peer || go === undefined || !this.net.connected('ctl', h.id, id)) return;
          this.at(go, {
            k: 'do',
            host: peer,
            fn: () => {
              const back = this.net.controlDelays()[0];
              if (!peer.up || back === undefined || !this.net.connected('ctl', id, h.id)) return;
              if (peer.pg.proc !== 'up') {
                this.at(back, { k: 'do', host: h, fn: () => settle(() => reject(new Error(`node ${id} has no running PostgreSQL`))) });
                return;
              }
              const info = peer.pg.timeline();
              this.at(back, { k: 'do', host: h, fn: () => settle(() => resolve(info)) });
            },
          });
        }),
    };
  }

  // ------------------------------------------------------------------ the watchdog

  private watchdogPort(h: Host): WatchdogPort {
    const set = (until: number): boolean => {
      if (!h.wdAlive) return false;
      const at = Math.max(this.now, this.realAt(h, until));
      const token = ++h.wdToken;
      h.wdDeadline = at;
      this.queue.push(at, { k: 'wd', host: h, token });
      return true;
    };
    return {
      arm: (until) => {
        const ok = set(until);
        return this.hostWait(h, ok ? 0.5 : 1).then(() => ok);
      },
      renew: (until) => {
        set(until);
      },
      disarm: () => {
        h.wdDeadline = null;
        h.wdToken++;
      },
      alive: () => h.wdAlive,
    };
  }

  /**
   * The deadline passed without renewal: the watchdog stops the postmaster (immediate shutdown),
   * whatever it is doing — as the real one sends SIGQUIT to the postmaster, also mid-promotion.
   */
  private onWatchdog(h: Host, token: number): void {
    if (!h.wdAlive || h.wdToken !== token || h.wdDeadline === null || h.pg.proc === 'down') return;
    this.trace(`n${h.id} watchdog fences the database`);
    h.wdDeadline = null;
    h.wdFired = true;
    const pgInc = h.pg.inc;
    this.at(this.o.fenceDelayMs, {
      k: 'do',
      host: h,
      fn: () => {
        if (h.pg.inc === pgInc && h.pg.proc !== 'down') this.pgDown(h, 'watchdog');
      },
    });
  }

  // ------------------------------------------------------------------ PostgreSQL (the product's PgPort, simulated)

  private pgPort(h: Host, inc: number): PgPort {
    const pg = (): SimPg => h.pg;
    const wait = (ms: number): Promise<void> => this.hostWait(h, ms);
    const needUp = (what: string): void => {
      if (pg().proc !== 'up') throw new Error(`${what}: PostgreSQL is not running`);
    };
    return {
      probe: () => this.toCtl(h, inc, wait(this.rng.range(0.5, 2)).then(() => this.probeNow(h))),
      startStandby: () => this.toCtl(h, inc, this.pgStart(h)),
      stop: () => this.toCtl(h, inc, this.pgStop(h)),
      fence: (mode, stopped) =>
        this.toCtl(h, inc, this.pgFence(h, mode === 'fast' ? (end) => h.ctl?.inc === inc && stopped?.(end) : null)),
      detach: () =>
        this.toCtl(h, inc, wait(this.rng.range(1, 4)).then(() => {
          needUp('detach');
          this.pgDetach(h);
        })),
      position: () =>
        this.toCtl(h, inc, wait(this.rng.range(1, 5)).then(() => ({ ...pg().timeline(), end: pg().wal.lsn, replay: pg().wal.lsn }))),
      follow: (up) =>
        this.toCtl(h, inc, wait(this.rng.range(1, 5)).then(() => {
          needUp('follow');
          if (pg().primary) throw new Error('follow: PostgreSQL is a primary');
          // A standby needs no placeholder history files (a promotion writes them again), and a
          // placeholder would shadow the real file of that timeline the walreceiver must fetch.
          for (const t of pg().placeholders) pg().histories.delete(t);
          pg().placeholders.clear();
          pg().upstream = up.id;
          pg().retryAt = 0;
          if (pg().recv && pg().recv!.up.id !== up.id) this.closeRecv(pg(), 'new upstream');
          this.trace(`n${h.id} db follows n${up.id}`);
        })),
      rewind: (src, stopped) => this.toCtl(h, inc, this.pgRewind(h, src.id, () => h.ctl?.inc === inc && stopped())),
      ensureSlots: (want) =>
        this.toCtl(h, inc, wait(this.rng.range(1, 4)).then(() => {
          needUp('slots');
          const p = pg();
          for (const s of want) p.slots.add(s);
          for (const s of [...p.slots]) if (!want.includes(s) && !p.senders.some((c) => !c.closed && slotName(c.down.id) === s)) p.slots.delete(s);
        })),
      setSyncStandbyNames: (value) =>
        this.toCtl(h, inc, wait(this.rng.range(1, 5)).then(() => {
          needUp('synchronous_standby_names');
          const p = pg();
          if (p.syncNames === value) return;
          p.syncNames = value;
          if (this.tracing) this.trace(`n${h.id} synchronous_standby_names = '${value}'`);
          if (p.primary) this.syncAcks(h);
        })),
      prepareTimeline: (tli) =>
        this.toCtl(h, inc, wait(this.rng.range(0.5, 2)).then(() => {
          const p = pg();
          for (const t of [...p.placeholders]) {
            if (t >= tli) {
              p.placeholders.delete(t);
              p.histories.delete(t);
            }
          }
          const have = new Set(p.histories.keys());
          for (const t of placeholdersFor(tli, have)) {
            p.histories.set(t, childHistory(p.timeline(), p.wal.lsn));
            p.placeholders.add(t);
          }
        })),
      promote: () => this.toCtl(h, inc, this.pgPromote(h)),
      hold: () => pg().hold,
      clearHold: () =>
        this.toCtl(h, inc, wait(1).then(() => {
          pg().hold = null;
        })),
    };
  }

  private probeNow(h: Host): PgProbe {
    const p = h.pg;
    return {
      role: p.proc === 'down' ? 'STOPPED' : p.primary ? 'PRIMARY' : 'STANDBY',
      receiving: p.recv !== null && !p.recv.closed,
      wal: p.proc === 'up' ? p.wal.pos() : null,
    };
  }

  private async pgStart(h: Host): Promise<void> {
    const p = h.pg;
    for (let i = 0; p.proc === 'starting' && i < 100; i++) await this.hostWait(h, 5);
    if (p.proc === 'up') return;
    if (p.hold !== null) throw new Error(`PostgreSQL stays stopped: ${p.hold}`);
    if (p.proc === 'starting') throw new Error('PostgreSQL did not start');
    p.inc++;
    const myInc = p.inc;
    p.proc = 'starting';
    p.primary = false;
    // The controller clears primary_conninfo before every start (detached standby).
    p.upstream = 0;
    await this.hostWait(h, this.rng.range(20, 60));
    if (p.inc !== myInc || p.proc !== 'starting') throw new Error('PostgreSQL start interrupted');
    p.proc = 'up';
    p.retryAt = 0;
    this.trace(`n${h.id} db up (standby, detached)`);
    this.at(this.rng.range(0, this.o.tickMs), { k: 'walTick', host: h, pgInc: myInc });
  }

  private async pgStop(h: Host): Promise<void> {
    const p = h.pg;
    if (p.proc === 'down') return;
    const myInc = p.inc;
    await this.hostWait(h, this.rng.range(10, 30));
    if (p.inc === myInc && p.running) this.pgDown(h, 'stopped');
  }

  /**
   * A primary stops accepting writes (after the fence delay; it may fail) and restarts as a detached
   * standby. A clean (fast) stop tells `stopped` where its WAL ends before the restart.
   */
  private async pgFence(h: Host, stopped: ((end: WalPos) => void) | null): Promise<void> {
    const p = h.pg;
    if (!p.primary || p.proc === 'down') {
      if (p.proc === 'down') await this.pgStart(h);
      return;
    }
    const myInc = p.inc;
    await this.hostWait(h, this.o.fenceDelayMs);
    if (this.rng.chance(this.o.fenceFailProb)) {
      this.trace(`n${h.id} db fence FAILED`);
      throw new Error('pg_ctl stop did not complete');
    }
    if (p.inc === myInc && p.running) {
      this.pgDown(h, 'fenced');
      stopped?.(p.wal.pos());
    }
    await this.pgStart(h);
  }

  private pgDown(h: Host, why: string): void {
    const p = h.pg;
    if (p.proc === 'down') return;
    const was = p.primary;
    p.proc = 'down';
    p.primary = false;
    p.inc++;
    this.dropPending(h);
    this.closeRecv(p, why);
    for (const c of p.senders.slice()) this.closeConn(c, 'upstream down');
    if (was && h.frozenPastLease) h.frozenPastLease = false;
    h.wdFired = false;
    this.trace(`n${h.id} db down (${why})`);
  }

  /** primary_conninfo = '' + reload: the walreceiver notices a little later. */
  private pgDetach(h: Host): void {
    const p = h.pg;
    p.upstream = 0;
    const c = p.recv;
    if (c) this.at(this.rng.range(0, 30), { k: 'do', host: h, fn: () => c.down.recv === c && this.closeConn(c, 'detached') });
  }

  private async pgPromote(h: Host): Promise<number> {
    const p = h.pg;
    if (p.proc !== 'up') throw new Error('promote: PostgreSQL is not running');
    if (p.primary) throw new Error('promote: already a primary');
    const myInc = p.inc;
    const started = this.now;
    this.closeRecv(p, 'promotion');
    p.upstream = 0;
    await this.hostWait(h, this.o.promoteDelayMs);
    if (p.inc !== myInc || p.proc !== 'up' || p.primary) throw new Error('promote: PostgreSQL restarted meanwhile');
    this.closeRecv(p, 'promotion');
    const tli = p.nextTli();
    const who = `n${h.id}@${p.wal.lsn}`;
    const before = this.timelines.get(tli);
    if (before !== undefined && before !== who) {
      this.stats.reusedTimelines++;
      this.trace(`n${h.id} promotion reuses timeline ${tli} (first created by ${before})`);
    }
    this.timelines.set(tli, who);
    p.histories.set(tli, childHistory(p.timeline(), p.wal.lsn));
    p.placeholders.delete(tli);
    p.wal.append(this.sysId(), tli);
    p.primary = true;
    // A promotion the host was frozen in finishes when it resumes; if its lease ran out meanwhile,
    // it is a primary only its overdue watchdog can fence (as a primary frozen past its lease).
    if (h.resumedAt > started && this.overdue(h)) h.frozenPastLease = true;
    p.lastCheckpoint = this.now;
    this.trace(`n${h.id} db PRIMARY tli ${tli} at ${p.wal.lsn} (term ${h.soft.term})`);
    this.onWritable(h);
    this.syncAcks(h);
    return tli;
  }

  /**
   * pg_rewind from `srcId`: PostgreSQL stops, the fork point is found from the timeline histories
   * (as pg_rewind does), the data becomes the source's, and PostgreSQL starts as a detached standby.
   */
  private async pgRewind(h: Host, srcId: NodeId, stopped: () => void): Promise<void> {
    const p = h.pg;
    if (p.proc !== 'down') {
      const myInc = p.inc;
      await this.hostWait(h, this.rng.range(10, 30));
      if (p.inc === myInc) this.pgDown(h, 'rewind');
    }
    stopped();
    h.rewinding = true;
    try {
      await this.rewindCopy(h, srcId);
    } finally {
      h.rewinding = false;
    }
  }

  /** The copy step of pg_rewind; PostgreSQL is down. */
  private async rewindCopy(h: Host, srcId: NodeId): Promise<void> {
    const p = h.pg;
    await this.hostWait(h, this.rng.range(100, 300));
    const src = this.byId.get(srcId);
    if (!src || src.pg.proc !== 'up' || !this.net.linked('wal', h.id, srcId)) throw new Error(`pg_rewind: cannot connect to node ${srcId}`);
    const at = divergence({ ...p.timeline(), end: p.wal.lsn }, src.pg.timeline());
    if (at && this.rng.chance(this.o.rewindFailProb)) {
      // Failed half-way: the data directory is neither the old one nor the source's.
      p.hold = `pg_rewind from node ${srcId} failed half-way`;
      const dropped = p.wal.truncate(Math.min(p.wal.lsn, at.switchLsn));
      this.inv.rewound(h.id, dropped.filter((id) => id > 0));
      this.trace(`n${h.id} pg_rewind FAILED half-way: PostgreSQL held stopped`);
      throw new Error(p.hold);
    }
    if (at) {
      const keep = Math.min(at.switchLsn, src.pg.wal.lsn);
      if (p.wal.commonPrefix(src.pg.wal) < keep) {
        this.inv.fail(7, `pg_rewind of node ${h.id} from node ${srcId} kept ${keep} records as common, but they differ from position ${p.wal.commonPrefix(src.pg.wal)}: a timeline number was used for two histories`);
        return;
      }
      const cp = p.wal.commonPrefix(src.pg.wal);
      const lost = p.wal.ids.slice(cp);
      p.wal = src.pg.wal.clone();
      p.histories.clear();
      p.placeholders.clear();
      for (const [t, hh] of src.pg.histories) p.histories.set(t, hh);
      for (const t of src.pg.placeholders) p.placeholders.add(t);
      this.stats.rewinds++;
      this.stats.rewoundRecords += lost.length;
      const lostWrites = lost.filter((id) => id > 0);
      this.trace(`n${h.id} REWOUND from n${srcId} to ${cp}: dropped ${lost.length} records (writes ${lostWrites.join(',') || 'none'})`);
      this.inv.rewound(h.id, lostWrites);
    } else {
      this.trace(`n${h.id} pg_rewind from n${srcId}: no rewind required`);
    }
    p.hold = null;
    await this.pgStart(h);
  }

  // ------------------------------------------------------------------ replication

  private walTick(h: Host, pgInc: number): void {
    const p = h.pg;
    if (p.inc !== pgInc || p.proc !== 'up') return;
    for (const c of p.senders.slice()) if (c.state === 'streaming') this.push(c);
    if (p.primary && this.now - p.lastCheckpoint >= 1000) {
      // PostgreSQL writes WAL of its own (checkpoints, running-xacts) without any client commit.
      p.lastCheckpoint = this.now;
      p.wal.append(this.sysId(), p.tli);
    }
    if (!p.primary) this.receiverStep(h);
    this.at(this.o.tickMs / h.rate, { k: 'walTick', host: h, pgInc });
  }

  private receiverStep(h: Host): void {
    const p = h.pg;
    if (p.recv) {
      if (p.recv.up.id !== p.upstream && p.upstream !== 0) this.closeRecv(p, 'upstream changed');
      return;
    }
    if (p.upstream === 0 || this.now < p.retryAt) return;
    const up = this.byId.get(p.upstream);
    if (!up || up.removed || up.pg.proc !== 'up' || !this.net.linked('wal', h.id, up.id)) {
      p.retryAt = this.now + WAL_RETRIEVE_RETRY_MS;
      if (this.tracing) this.trace(`wal n${h.id}: cannot connect to n${p.upstream}; retry in ${WAL_RETRIEVE_RETRY_MS} ms`);
      return;
    }
    const c: Conn = {
      id: this.nextConnId++, down: p, up: up.pg, downInc: p.inc, upInc: up.pg.inc, state: 'connecting',
      sent: 0, flushed: 0, closed: false, downFifo: 0, upFifo: 0,
    };
    p.recv = c;
    up.pg.senders.push(c);
    this.at(this.rng.range(1, 5), { k: 'connect', conn: c });
  }

  private valid(c: Conn): boolean {
    return !c.closed && c.down.proc === 'up' && c.down.inc === c.downInc && c.up.proc === 'up' && c.up.inc === c.upInc && c.down.recv === c;
  }

  private closeConn(c: Conn, why: string): void {
    if (c.closed) return;
    c.closed = true;
    if (c.down.recv === c) c.down.recv = null;
    const i = c.up.senders.indexOf(c);
    if (i >= 0) c.up.senders.splice(i, 1);
    if (this.tracing) this.trace(`wal n${c.up.id}>n${c.down.id} closed (${why})`);
  }

  private closeRecv(p: SimPg, why: string): void {
    if (p.recv) this.closeConn(p.recv, why);
  }

  private failConn(c: Conn, why: string): void {
    this.closeConn(c, why);
    c.down.retryAt = this.now + WAL_RETRIEVE_RETRY_MS;
  }

  /** The walreceiver's start as PostgreSQL does it: slot, history files, timeline checks. */
  private onConnect(c: Conn): void {
    if (!this.valid(c)) return;
    if (!this.net.linked('wal', c.down.id, c.up.id)) return this.failConn(c, 'connect failed');
    const d = c.down;
    const u = c.up;
    if (!u.slots.has(slotName(d.id))) {
      // A node the upstream's configuration no longer lists (its removal is under way) has no slot
      // by design; only a member's missing slot costs a failover time.
      const uh = this.byId.get(u.id);
      if (!uh || isMember(uh.ctl?.driver.config() ?? uh.config, d.id)) this.stats.missingSlots++;
      return this.failConn(c, `replication slot "${slotName(d.id)}" does not exist`);
    }
    const missing = this.fetchHistories(d, u, u.tli);
    if (missing !== null) return this.failConn(c, `could not open timeline history file of timeline ${missing} on the upstream`);
    if (!u.chain(u.tli).includes(d.tli)) return this.failConn(c, `timeline ${u.tli} is not a child of timeline ${d.tli}`);
    if (d.tli !== u.tli) {
      const fork = u.historyOf(u.tli).find((f) => f.parentTli === d.tli);
      if (fork && d.wal.lsn > fork.switchLsn) return this.failConn(c, `timeline ${u.tli} forked off timeline ${d.tli} before the current recovery point`);
    }
    if (d.wal.lsn > u.wal.lsn) return this.failConn(c, 'requested starting point is ahead of the WAL flush position of the upstream');
    if (!d.wal.isPrefixOf(u.wal)) {
      this.inv.fail(
        7,
        `node ${d.id} streams from node ${c.up.id} after position ${d.wal.lsn} on timeline ${d.tli}, but their WAL differs from position ${d.wal.commonPrefix(u.wal)}: one timeline number was used for two histories`,
      );
      return;
    }
    c.state = 'streaming';
    c.sent = d.wal.lsn;
    if (this.tracing) this.trace(`wal n${u.id}>n${d.id} streaming from ${d.wal.lsn}`);
  }

  /**
   * The walreceiver fetches the history file of every timeline number above its own up to `upTo`
   * that it lacks (at connection and at each timeline switch of the stream). Returns the first
   * number the upstream has no file for (PostgreSQL then fails the connection), else null.
   */
  private fetchHistories(d: SimPg, u: SimPg, upTo: number): number | null {
    for (let t = d.tli + 1; t <= upTo; t++) {
      if (d.histories.has(t)) continue;
      const hh = u.histories.get(t);
      if (!hh) return t;
      d.histories.set(t, hh);
      if (u.placeholders.has(t)) d.placeholders.add(t);
    }
    return null;
  }

  private push(c: Conn): void {
    if (!this.valid(c)) {
      this.closeConn(c, 'stale');
      return;
    }
    const u = c.up.wal;
    if (u.lsn < c.sent) {
      this.closeConn(c, 'sender lost records');
      return;
    }
    if (u.lsn === c.sent) return;
    const delay = this.net.streamDelay();
    if (delay < 0 || !this.net.connected('wal', c.up.id, c.down.id)) {
      this.closeConn(c, delay < 0 ? 'reset' : 'cut');
      return;
    }
    const from = c.sent;
    const ev: SimEvent = {
      k: 'chunk', conn: c, from, prevId: from > 0 ? (u.ids[from - 1] as number) : 0,
      ids: u.ids.slice(from), tlis: u.tlis.slice(from),
    };
    c.sent = u.lsn;
    const arrive = Math.max(this.now + delay, c.downFifo);
    c.downFifo = arrive;
    this.queue.push(arrive, ev);
  }

  private onChunk(c: Conn, from: number, prevId: number, ids: number[], tlis: number[]): void {
    if (!this.valid(c)) return;
    if (!this.net.connected('wal', c.up.id, c.down.id)) {
      this.closeConn(c, 'cut in flight');
      return;
    }
    const d = c.down.wal;
    if (from !== d.lsn || !d.endsWithAt(from, prevId)) {
      this.closeConn(c, 'out of step');
      return;
    }
    const last = tlis[tlis.length - 1];
    if (last !== undefined && last > d.tli) {
      const missing = this.fetchHistories(c.down, c.up, last);
      if (missing !== null) return this.failConn(c, `could not open timeline history file of timeline ${missing} on the upstream`);
    }
    for (let i = 0; i < ids.length; i++) d.append(ids[i] as number, tlis[i] as number);
    if (this.tracing) this.trace(`wal n${c.up.id}>n${c.down.id} +${ids.length} -> ${d.tli}/${d.lsn}`);
    const delay = this.net.streamDelay();
    if (delay < 0 || !this.net.connected('wal', c.down.id, c.up.id)) {
      this.closeConn(c, delay < 0 ? 'reset' : 'cut');
      return;
    }
    const arrive = Math.max(this.now + delay, c.upFifo);
    c.upFifo = arrive;
    this.queue.push(arrive, { k: 'ack', conn: c, len: d.lsn, lastId: d.lastId });
  }

  private onAck(c: Conn, len: number, lastId: number): void {
    if (!this.valid(c)) return;
    if (!this.net.connected('wal', c.down.id, c.up.id)) {
      this.closeConn(c, 'cut in flight');
      return;
    }
    if (len > c.flushed && c.up.wal.endsWithAt(len, lastId)) {
      c.flushed = len;
      const up = this.byId.get(c.up.id);
      if (up) this.syncAcks(up);
    }
  }

  /** Acknowledges pending writes as synchronous_standby_names (ANY k (...)) allows. */
  private syncAcks(h: Host): void {
    const p = h.pg;
    if (!p.accepting || p.pending.length === 0) return;
    const names = parseSyncStandbyNames(p.syncNames);
    let upTo = Number.POSITIVE_INFINITY;
    if (names !== null) {
      const flushed: number[] = [];
      for (const c of p.senders) if (c.state === 'streaming' && !c.closed && names.names.includes(slotName(c.down.id))) flushed.push(c.flushed);
      if (flushed.length < names.k) return;
      flushed.sort((a, b) => b - a);
      upTo = flushed[names.k - 1] as number;
    }
    let i = 0;
    while (i < p.pending.length && p.pending[i]!.pos < upTo) i++;
    if (i === 0) return;
    for (const w of p.pending.splice(0, i)) this.acked(h, w.id, w.pos, names === null ? 'without standbys' : 'sync');
  }

  private acked(h: Host, id: number, pos: number, how: string): void {
    this.stats.ackedWrites++;
    this.ackedAll.push({ id, pos });
    if (this.finalWrite?.id === id) this.finalWrite.acked = true;
    if (this.tracing) this.trace(`ACK write ${id} @n${h.id} pos ${pos} (${how})`);
    if (this.k > 0 && this.syncSafe(h.config)) this.inv.ackedSync({ id, pos, term: h.soft.term, by: h.id }, this.leaderWals());
  }

  /** k + 1 + nquorum > N: an acknowledged synchronous write survives any failover. */
  private syncSafe(config: ClusterConfig): boolean {
    return this.k + 1 + electionQuorum(config) > voterIds(config).length;
  }

  private leaderWals(): LeaderWal[] {
    const out: LeaderWal[] = [];
    for (const h of this.hosts) {
      if (h.up && h.soft.role === 'leader') out.push({ id: h.id, term: h.soft.term, has: (p, id) => h.pg.wal.has(p, id) });
    }
    return out;
  }

  private sysId(): number {
    return -++this.sysSeq;
  }

  private dropPending(h: Host): void {
    const p = h.pg;
    if (p.pending.length === 0) return;
    this.stats.indeterminateWrites += p.pending.length;
    if (this.tracing) this.trace(`n${h.id} ${p.pending.length} sync waits cancelled`);
    if (this.finalWrite && p.pending.some((w) => w.id === this.finalWrite?.id)) this.finalWrite = null;
    p.pending = [];
  }

  // ------------------------------------------------------------------ invariant 5: databases accepting writes

  private checkWritable(): void {
    let n = 0;
    let unexcused = 0;
    for (const h of this.hosts) {
      // A paused database accepts nothing until it resumes.
      if (!h.pg.accepting || h.pausedUntil > this.now) continue;
      n++;
      if (!h.frozenPastLease) unexcused++;
    }
    if (unexcused > 1) {
      const ids = this.hosts.filter((h) => h.pg.accepting && h.pausedUntil <= this.now).map((h) => h.id);
      this.inv.writable(ids);
    }
    if (n > 1) {
      if (this.overlapSince < 0) {
        this.overlapSince = this.now;
        this.overlapFrozen = unexcused <= 1;
      }
    } else if (this.overlapSince >= 0) {
      const ms = this.now - this.overlapSince;
      this.stats.dbOverlapMs += ms;
      if (this.overlapFrozen) this.stats.frozenOverlapMs += ms;
      this.overlapSince = -1;
    }
  }

  private onWritable(h: Host): void {
    const prev = this.lastWritable;
    if (prev !== h.id) {
      if (prev !== 0) {
        const sw = this.switchTarget;
        if (sw && sw.to === h.id && sw.from === prev && this.now - sw.at < 2 * this.T + 5000) this.stats.switchovers++;
        else this.stats.failovers++;
      }
      const fc = this.failoverClock;
      if (fc && fc.from !== h.id) {
        if (fc.clean) this.stats.maxFailoverMs = Math.max(this.stats.maxFailoverMs, Math.round(this.now - fc.start));
        this.failoverClock = null;
      }
    } else if (this.failoverClock?.from === h.id) {
      this.failoverClock = null;
    }
    this.lastWritable = h.id;
  }

  // ------------------------------------------------------------------ client

  private onClientWrite(): void {
    if (this.phase === 'form' || this.phase === 'fault') {
      this.at(this.rng.range(15, 45), { k: 'write' });
      this.write(null);
    }
  }

  /** One client commit on the first database (in id order) that accepts writes, or on `only`. */
  private write(only: Host | null): number {
    let h: Host | null = only;
    if (!h) {
      for (const x of this.hosts) {
        if (x.pg.accepting && x.pausedUntil <= this.now) {
          h = x;
          break;
        }
      }
    }
    if (!h || !h.pg.accepting) {
      this.stats.refusedWrites++;
      return 0;
    }
    const p = h.pg;
    const id = ++this.writeSeq;
    const pos = p.wal.lsn;
    p.wal.append(id, p.tli);
    if (parseSyncStandbyNames(p.syncNames) === null) {
      this.acked(h, id, pos, 'async');
    } else {
      p.pending.push({ id, pos });
      if (this.tracing) this.trace(`write ${id} @n${h.id} pos ${pos} waits for '${p.syncNames}'`);
      this.syncAcks(h);
    }
    return id;
  }

  // ------------------------------------------------------------------ operator

  private propose(leader: Host, change: ConfigChange): ProposeResult | null {
    const raft = leader.ctl?.driver.raft;
    if (!raft) return null;
    const res = raft.propose(change, this.local(leader));
    this.trace(`operator n${leader.id} propose ${fmtChange(change)}: ${res.ok ? `ok index ${res.index}` : res.code}`);
    leader.ctl!.driver.kick();
    return res;
  }

  private onOperator(): void {
    if (this.phase === 'done') return;
    this.at(OPERATOR_PERIOD_MS, { k: 'operator' });
    this.repairNodeErrors();
    const leader = this.findLeader();
    // A removal the operator gave up on (its node led meanwhile) may still commit later: a node that
    // learned its removal (CSTATE_FORMING) and that the leader no longer lists is shut down and
    // replaced, as a DBA would.
    const orphan =
      leader && leader.pausedUntil <= this.now && !this.pendingRemove && !this.pendingAdd
        ? this.members().find((h) => h.soft.state === 'CSTATE_FORMING' && !isMember(leader.config, h.id))
        : undefined;
    if (orphan) {
      this.trace(`operator: node ${orphan.id} is no longer a member; shutting it down`);
      if (orphan.up) this.crash(orphan, 'removed from the cluster');
      orphan.removed = true;
      this.beginAdd(this.nextNodeId++);
      return;
    }
    if (this.pendingRemove) {
      const pr = this.pendingRemove;
      const victim = this.byId.get(pr.id);
      if (leader && victim && !isMember(leader.config, pr.id)) {
        this.trace(`operator: node ${pr.id} removed; shutting it down`);
        this.crash(victim, 'removed from the cluster');
        victim.removed = true;
        this.pendingRemove = null;
        this.beginAdd(this.nextNodeId++);
      } else if (leader && leader.id === pr.id) {
        // biha.remove_node refuses the leader (switch over first): the operator picks again later.
        this.trace(`operator: node ${pr.id} leads now; not removing it`);
        this.pendingRemove = null;
      } else if (leader && this.now - pr.proposedAt >= PROPOSE_RETRY_MS) {
        pr.proposedAt = this.now;
        this.propose(leader, { type: 'remove_node', id: pr.id });
      }
      return;
    }
    if (this.pendingAdd) {
      this.stepAdd(leader);
      return;
    }
    const next = this.formQueue[0];
    if (next !== undefined) {
      this.formQueue.shift();
      this.beginAdd(next);
      return;
    }
    if (this.phase === 'form' && leader && leader.pg.accepting && leader.soft.writable) this.enterPhase('fault');
  }

  private beginAdd(id: NodeId): void {
    this.pendingAdd = { id, proposedAt: Number.NEGATIVE_INFINITY, stage: 'register' };
  }

  /**
   * bihactl add, as the product does it: register the node with the leader (add_node committed,
   * its slot created there), copy the leader's data (pg_basebackup through that slot), write the
   * leader's committed snapshot as the node's raft state, start it. A leader lost on the way
   * means the same add again against the next one (the registration is reused).
   */
  private stepAdd(leader: Host | null): void {
    const pa = this.pendingAdd!;
    if (pa.stage === 'started') {
      if (leader && isMember(leader.config, pa.id) && this.byId.get(pa.id)?.up) {
        this.trace(`operator: node ${pa.id} added`);
        this.pendingAdd = null;
      }
      return;
    }
    if (pa.stage === 'copy' || !leader || !leader.up || leader.pg.proc !== 'up') return;
    if (!isMember(leader.config, pa.id)) {
      if (this.now - pa.proposedAt >= PROPOSE_RETRY_MS) {
        pa.proposedAt = this.now;
        this.propose(leader, { type: 'add_node', node: asLearner(this.nodeInfo(pa.id)) });
      }
      return;
    }
    if (!leader.pg.slots.has(slotName(pa.id))) leader.pg.slots.add(slotName(pa.id));
    pa.stage = 'copy';
    const from = leader;
    this.trace(`operator: pg_basebackup of node ${pa.id} from n${from.id} (${from.pg.wal.lsn} records)`);
    this.at(this.rng.range(100, 400), {
      k: 'do',
      host: from,
      fn: () => {
        const snap = from.ctl?.driver.raft?.persistent().log.snapshot;
        if (from.pg.proc !== 'up' || !snap || !isMember(snap.config, pa.id)) {
          pa.stage = 'register';
          return;
        }
        const state: PersistentState = { hard: { term: 0, vote: 0, commit: snap.index }, log: { snapshot: snap, entries: [] } };
        const existing = this.byId.get(pa.id);
        const h = existing ?? this.makeHost(pa.id, state, from.pg.baseBackup(pa.id));
        if (existing) {
          existing.persisted = state;
          existing.pg = from.pg.baseBackup(pa.id);
        }
        pa.stage = 'started';
        this.startController(h);
      },
    });
  }

  /** A DBA following the NODE_ERROR runbook: bihactl rewind (from the leader) a little while after the error. */
  private repairNodeErrors(): void {
    for (const h of this.members()) {
      if (!h.nodeError || !h.up || this.repairing.get(h.id) === h.ctlInc || this.now - h.nodeErrorAt < this.o.repairAfterMs) continue;
      const leader = this.findLeader();
      if (!leader || leader === h || !leader.pg.accepting) continue;
      const inc = h.ctlInc;
      this.repairing.set(h.id, inc);
      const driver = h.ctl!.driver;
      // Now and then the DBA resets the error instead (biha.reset_node_error()): the node compares
      // timelines again and rewinds itself (autorewind) or is back in NODE_ERROR.
      const reset = h.nodeError.type === 'TIMELINE_DIVERGED' && this.rng.chance(0.3);
      this.trace(`operator: ${reset ? 'biha.reset_node_error()' : 'bihactl rewind'} on n${h.id} (NODE_ERROR ${h.nodeError.type})`);
      (reset ? driver.resetNodeError().then(() => null) : driver.rewindFromLeader())
        .then(
          (l) => this.trace(l ? `operator: n${h.id} rewound from n${l.id}` : `operator: n${h.id} NODE_ERROR reset`),
          (e: unknown) => this.trace(`operator: repair of n${h.id} failed: ${e instanceof Error ? e.message : String(e)}`),
        )
        .finally(() => {
          if (this.repairing.get(h.id) === inc) this.repairing.delete(h.id);
          h.nodeErrorAt = this.now;
        });
    }
  }

  // ------------------------------------------------------------------ phases

  private enterPhase(p: Phase): void {
    if (this.phase === p || this.phase === 'done') return;
    this.phase = p;
    this.trace(`PHASE ${p}`);
    if (p === 'fault') {
      this.at(this.o.faultMs, { k: 'phase', phase: 'heal' });
      if (this.o.scenario === 'wal-vs-config') this.at(200, { k: 'script', stage: 0 });
      if (this.o.scenario === 'param-change') this.at(200, { k: 'script', stage: 10 });
      this.at(this.nemRng.range(NEMESIS_MIN_MS, NEMESIS_MAX_MS), { k: 'nemesis' });
    } else if (p === 'heal') {
      this.healStart = this.now;
      this.scriptActive = false;
      this.watch = null;
      if (this.failoverClock) this.failoverClock.clean = false;
      this.net.healAll();
      this.net.quality = CALM_NETWORK;
      for (const h of this.hosts) {
        h.crashAfterPersist = false;
        if (!h.removed && !h.up) this.startController(h);
      }
    }
  }

  private onCheck(): void {
    if (this.phase === 'done') return;
    this.at(CHECK_PERIOD_MS, { k: 'check' });
    const w = this.watch;
    if (w) {
      const l = this.findLeader();
      if (l && l.id !== w.except && l.pg.accepting && l.soft.writable) {
        this.trace(`watch ok: ${w.what} after ${Math.round(this.now - w.since)} ms`);
        this.stats.scenarioElectMs = Math.round(this.now - w.since);
        this.watch = null;
        this.scriptActive = false;
      } else if (this.now - w.since > w.bound) {
        this.inv.fail(6, `${w.what}: no writable leader within ${w.bound} ms`);
        return;
      }
    }
    if (this.phase === 'form' && this.now > FORM_BOUND_MS) {
      this.inv.fail(6, `the cluster did not form within ${FORM_BOUND_MS} ms: ${this.why(this.findLeader())}`);
      return;
    }
    if (this.phase === 'heal') this.checkHeal();
  }

  private checkHeal(): void {
    const since = this.now - this.healStart;
    const leader = this.findLeader();
    const writable = leader !== null && leader.pg.accepting && leader.soft.writable;
    if (writable && this.electedAt < 0) {
      this.electedAt = this.now;
      this.stats.healElectMs = Math.round(since);
    }
    if (this.electedAt < 0 && since > this.o.electBoundT * this.tMax) {
      this.inv.fail(6, `no writable leader ${this.o.electBoundT} x T = ${this.o.electBoundT * this.tMax} ms after healing: ${this.why(leader)}`);
      return;
    }
    if (since > this.o.convergeBoundT * this.tMax) {
      this.inv.fail(6, `not converged ${this.o.convergeBoundT} x T = ${this.o.convergeBoundT * this.tMax} ms after healing: ${this.why(leader)}`);
      return;
    }
    if (!leader || !writable) return;
    if (this.notConverged(leader) !== null) return;
    if (!this.finalWrite) {
      const id = this.write(leader);
      if (id > 0) this.finalWrite = { id, node: leader.id, acked: this.ackedAll.length > 0 && this.ackedAll[this.ackedAll.length - 1]!.id === id };
      return;
    }
    if (!this.finalWrite.acked) return;
    for (const h of this.members()) {
      if (h !== leader && (h.pg.wal.lsn !== leader.pg.wal.lsn || h.pg.wal.lastId !== leader.pg.wal.lastId)) return;
    }
    this.finish(leader);
  }

  /** Why the cluster has not converged around `leader` (null: only WAL catch-up is left). */
  private notConverged(leader: Host): string | null {
    if (this.pendingAdd || this.pendingRemove || this.formQueue.length > 0) return 'membership change pending';
    const members = this.members();
    if (leader.config.nodes.length !== members.length) return 'membership differs from the running nodes';
    const cfg = JSON.stringify(leader.config);
    for (const h of members) {
      if (!h.up) return `node ${h.id} down`;
      if (h.nodeError) return `node ${h.id} in NODE_ERROR (${h.nodeError.type})`;
      if (!isMember(leader.config, h.id)) return `node ${h.id} not a member`;
      if (h === leader) continue;
      if (h.soft.term !== leader.soft.term || h.soft.leaderId !== leader.id || h.soft.role !== 'follower') {
        return `node ${h.id} is ${fmtSoft(h.soft)}`;
      }
      if (JSON.stringify(h.config) !== cfg) return `node ${h.id} has another config`;
    }
    return null;
  }

  private why(leader: Host | null): string {
    if (!leader) return 'no leader';
    const d = this.notConverged(leader);
    if (d) return d;
    if (!leader.pg.accepting) return `leader n${leader.id} has no writable database (db ${leader.pg.proc}${leader.pg.primary ? ' primary' : ''})`;
    if (!this.finalWrite?.acked) return `final write not acknowledged (synchronous_standby_names '${leader.pg.syncNames}')`;
    const lag = this.members().filter((h) => h.pg.wal.lsn !== leader.pg.wal.lsn || h.pg.wal.lastId !== leader.pg.wal.lastId);
    return `WAL of ${lag.map((h) => `n${h.id} ${h.pg.tli}/${h.pg.wal.lsn} (upstream n${h.pg.upstream}${h.pg.recv ? ` ${h.pg.recv.state}` : ''})`).join(', ')} differs from leader n${leader.id} ${leader.pg.tli}/${leader.pg.wal.lsn}`;
  }

  private finish(leader: Host): void {
    this.stats.convergeMs = Math.round(this.now - this.healStart);
    this.inv.finalLeader(leader.id, (p, id) => leader.pg.wal.has(p, id));
    if (this.k === 0) {
      for (const w of this.ackedAll) if (!leader.pg.wal.has(w.pos, w.id)) this.stats.lostAsyncWrites++;
    }
    if (this.overlapSince >= 0) {
      const ms = this.now - this.overlapSince;
      this.stats.dbOverlapMs += ms;
      if (this.overlapFrozen) this.stats.frozenOverlapMs += ms;
    }
    this.stats.dbOverlapMs = Math.round(this.stats.dbOverlapMs * 1000) / 1000;
    this.stats.frozenOverlapMs = Math.round(this.stats.frozenOverlapMs * 1000) / 1000;
    this.trace(`CONVERGED leader n${leader.id} term ${leader.soft.term} wal ${leader.pg.tli}/${leader.pg.wal.lsn} after ${this.stats.convergeMs} ms of healing`);
    this.phase = 'done';
    this.finished = true;
  }

  // ------------------------------------------------------------------ nemesis

  private onNemesis(): void {
    if (this.phase !== 'fault') return;
    const r = this.nemRng;
    this.at(r.range(NEMESIS_MIN_MS, NEMESIS_MAX_MS), { k: 'nemesis' });
    if (this.scriptActive || this.now < this.quietUntil) return;
    if (this.failoverClock) this.failoverClock.clean = false;
    const x = r.next();
    if (x < 0.2) this.nemCrash(false);
    else if (x < 0.25) this.nemCrash(true);
    else if (x < 0.44) this.nemPartition();
    else if (x < 0.48) this.nemCutReplication();
    else if (x < 0.53) {
      this.net.healAll();
      this.trace('net heal');
    } else if (x < 0.64) {
      this.net.quality = r.pick(QUALITIES);
      this.trace(`net quality loss ${this.net.quality.loss} dup ${this.net.quality.dup} reorder ${this.net.quality.reorder} delay ${this.net.quality.minDelayMs}-${this.net.quality.maxDelayMs}`);
    } else if (x < 0.73) this.nemSwitchover();
    else if (x < 0.81) this.nemConfig();
    else if (x < 0.86) this.nemPause();
    else if (x < 0.92) this.nemKillController();
    else if (x < 0.96) this.nemKillWatchdog();
    else this.nemRestartAll();
  }

  private nemCrash(midReady: boolean): void {
    const r = this.nemRng;
    const up = this.members().filter((h) => h.up);
    const down = this.members().length - up.length;
    if (up.length === 0 || down >= Math.ceil(this.o.nodes / 2)) return;
    const leader = this.findLeader();
    const victim = leader && r.chance(0.5) ? leader : r.pick(up);
    if (midReady) {
      victim.crashAfterPersist = true;
      this.trace(`nemesis: n${victim.id} will crash between persisting and sending`);
      return;
    }
    if (victim.pg.accepting) this.failoverClock = { from: victim.id, start: this.now, clean: true };
    this.crash(victim, 'nemesis');
    this.at(r.range(300, 6000), { k: 'start', host: victim });
  }

  /** SIGSTOP of a whole host (controller, watchdog and PostgreSQL), e.g. a VM pause; its clock keeps running. */
  private nemPause(): void {
    const r = this.nemRng;
    const up = this.members().filter((h) => h.up && h.pausedUntil <= this.now);
    if (up.length === 0) return;
    const leader = this.findLeader();
    const victim = leader && r.chance(0.5) ? leader : r.pick(up);
    const ms = r.range(100, 4000);
    victim.pausedUntil = this.now + ms;
    victim.deadlineAtPause = victim.wdDeadline;
    this.trace(`nemesis: pause n${victim.id} for ${ms.toFixed(0)} ms`);
    this.at(ms, { k: 'resume', host: victim });
  }

  /**
   * SIGCONT. A primary whose watchdog deadline passed while frozen cannot have been fenced from its
   * own host: it is unguarded until its (overdue) watchdog fences it. That window is counted apart.
   */
  private onResume(h: Host): void {
    if (h.pausedUntil > this.now) return;
    h.resumedAt = this.now;
    if (h.pg.accepting && this.overdue(h)) h.frozenPastLease = true;
    this.trace(`n${h.id} resumed${h.frozenPastLease ? ' (its lease ran out while frozen)' : ''}`);
  }

  /** The watchdog's deadline passed (a watchdog killed while the host was frozen held its deadline until then). */
  private overdue(h: Host): boolean {
    const deadline = h.wdDeadline ?? (h.wdAlive ? null : h.deadlineAtPause);
    // A fence the watchdog sent just before the freeze takes effect only after it.
    return h.wdFired || (deadline !== null && deadline < this.now);
  }

  private nemKillController(): void {
    const r = this.nemRng;
    const up = this.members().filter((h) => h.up);
    if (up.length === 0) return;
    const leader = this.findLeader();
    const victim = leader && r.chance(0.6) ? leader : r.pick(up);
    if (victim.pg.accepting) this.failoverClock = { from: victim.id, start: this.now, clean: true };
    this.killController(victim);
    this.at(r.range(300, 6000), { k: 'start', host: victim });
  }

  /** kill -9 of the watchdog: the controller notices and starts a new one after a while. */
  private nemKillWatchdog(): void {
    const r = this.nemRng;
    const up = this.members().filter((h) => h.up && h.wdAlive);
    if (up.length === 0) return;
    const leader = this.findLeader();
    const victim = leader && r.chance(0.6) ? leader : r.pick(up);
    victim.wdAlive = false;
    victim.wdDeadline = null;
    this.trace(`nemesis: n${victim.id} watchdog killed`);
    const inc = victim.ctlInc;
    this.at(r.range(100, 1000), {
      k: 'do',
      host: victim,
      fn: () => {
        if (victim.ctlInc === inc && victim.up && !victim.wdAlive) {
          victim.wdAlive = true;
          this.trace(`n${victim.id} watchdog restarted`);
        }
      },
    });
  }

  private nemRestartAll(): void {
    for (const h of this.members()) {
      if (!h.up) this.at(this.nemRng.range(0, 200), { k: 'start', host: h });
    }
  }

  private nemPartition(): void {
    const r = this.nemRng;
    const ids = r.shuffled(this.members().map((h) => h.id));
    const K = ids.length;
    const x = r.next();
    const channels: Channel[] = x < 0.6 ? ['ctl', 'wal'] : x < 0.8 ? ['ctl'] : ['wal'];
    this.net.healAll();
    const leader = this.findLeader();
    const kind = r.pick(['split', 'isolate-leader', 'one-way', 'bridge', 'ring'] as const);
    let desc: string = kind;
    switch (kind) {
      case 'split': {
        const a = 1 + r.int(K - 1);
        this.net.split([ids.slice(0, a), ids.slice(a)], channels);
        desc = `split ${ids.slice(0, a).join(',')} | ${ids.slice(a).join(',')}`;
        break;
      }
      case 'isolate-leader': {
        if (!leader) return;
        const rest = ids.filter((id) => id !== leader.id);
        this.net.split([[leader.id], rest], channels);
        if (leader.pg.accepting && channels.includes('ctl')) this.failoverClock = { from: leader.id, start: this.now, clean: true };
        desc = `isolate leader n${leader.id}`;
        break;
      }
      case 'one-way': {
        const l = leader?.id ?? (ids[0] as number);
        const rest = ids.filter((id) => id !== l);
        const y = r.next();
        if (y < 0.35) {
          this.net.oneWay([l], rest, channels);
          desc = `one-way: n${l} cannot send`;
        } else if (y < 0.7) {
          this.net.oneWay(rest, [l], channels);
          desc = `one-way: n${l} cannot receive`;
        } else {
          const pairs: string[] = [];
          for (let i = 0; i < 1 + r.int(3); i++) {
            const a = r.pick(ids);
            const b = r.pick(ids);
            if (a === b) continue;
            this.net.oneWay([a], [b], channels);
            pairs.push(`${a}>${b}`);
          }
          desc = `one-way pairs ${pairs.join(',')}`;
        }
        break;
      }
      case 'bridge': {
        const b = ids[0] as number;
        const rest = ids.slice(1);
        const half = Math.floor(rest.length / 2);
        this.net.bridge(rest.slice(0, half), rest.slice(half), channels);
        desc = `bridge n${b} between ${rest.slice(0, half).join(',')} | ${rest.slice(half).join(',')}`;
        break;
      }
      case 'ring': {
        const reach = Math.max(1, Math.ceil((majority(K) - 1) / 2));
        this.net.ring(ids, reach, channels);
        desc = `majorities ring ${ids.join('-')} reach ${reach}`;
        break;
      }
    }
    this.stats.partitions++;
    const token = ++this.netToken;
    this.trace(`nemesis: partition ${desc} on ${channels.join('+')} (${this.net.describe(ids)})`);
    this.at(r.range(300, 5000), { k: 'heal-net', token });
  }

  /**
   * Gray failure: the leader's replication connections cut both ways while the control channel
   * works, long enough for no_wal_on_follower to pass, with no other fault meanwhile. In synchronous
   * mode its writes block and it should give way (docs/raft.md "Giving way"); in asynchronous mode
   * it keeps taking writes.
   */
  private nemCutReplication(): void {
    const leader = this.findLeader();
    if (!leader || !leader.pg.accepting) return;
    this.net.healAll();
    for (const h of this.members()) if (h !== leader) this.net.cutBoth(leader.id, h.id, ['wal']);
    const ms = this.o.noWalOnFollower + this.nemRng.range(1000, 3 * this.T + 1000);
    this.quietUntil = this.now + ms;
    this.stats.partitions++;
    this.stats.replicationCuts++;
    const token = ++this.netToken;
    this.trace(`nemesis: cut replication of leader n${leader.id} for ${ms.toFixed(0)} ms (control channel works)`);
    this.at(ms, { k: 'heal-net', token });
  }

  private isolate(h: Host, why: string): void {
    this.net.healAll();
    const rest = this.members().filter((m) => m !== h).map((m) => m.id);
    this.net.split([[h.id], rest], ['ctl', 'wal']);
    this.stats.partitions++;
    const token = ++this.netToken;
    this.trace(`nemesis: isolate n${h.id} ${why}`);
    this.at(this.nemRng.range(300, 5000), { k: 'heal-net', token });
  }

  private nemSwitchover(): void {
    const leader = this.findLeader();
    const raft = leader?.ctl?.driver.raft;
    if (!leader || !raft || !leader.soft.writable) return;
    const targets = leader.config.nodes.filter((n) => n.id !== leader.id && this.byId.get(n.id)?.up).map((n) => n.id);
    if (targets.length === 0) return;
    const to = this.nemRng.pick(targets);
    const res = raft.transferLeadership(to, this.local(leader));
    this.trace(`operator: switchover n${leader.id} -> n${to}: ${res.ok ? 'started' : res.code}`);
    if (res.ok) this.switchTarget = { from: leader.id, to, at: this.now };
    leader.ctl!.driver.kick();
  }

  private nemConfig(): void {
    const r = this.nemRng;
    const leader = this.findLeader();
    if (!leader || this.pendingAdd || this.pendingRemove) return;
    if (!this.isolateOnCommit) this.isolateOnCommit = r.chance(0.3);
    const x = r.next();
    if (x < 0.3) {
      this.propose(leader, { type: 'set_meta', key: 'k', value: String(this.step) });
    } else if (x < 0.4) {
      // nquorum from a majority up to all nodes, minnodes so that nquorum + minnodes > K.
      const K = this.o.nodes;
      const nq = majority(K) + r.int(K - majority(K) + 1);
      this.propose(leader, { type: 'set_params', params: { nquorum: nq, minnodes: K - nq + 1 } });
    } else if (x < 0.5) {
      const heartbeatSendPeriod = r.pick([150, 200, 250]);
      const heartbeatMaxLost = r.pick([4, 5, 6]);
      this.tMax = Math.max(this.tMax, heartbeatSendPeriod * heartbeatMaxLost);
      this.propose(leader, { type: 'set_params', params: { heartbeatSendPeriod, heartbeatMaxLost } });
    } else if (x < 0.7) {
      const id = r.pick(leader.config.nodes).id;
      this.propose(leader, { type: 'set_node', id, patch: { priority: r.int(4) } });
    } else if (this.nextNodeId <= MAX_NODE_ID) {
      const candidates = leader.config.nodes.filter((n) => n.id !== leader.id);
      if (candidates.length === 0) return;
      const victim = r.pick(candidates).id;
      this.trace(`operator: replace node ${victim}`);
      this.pendingRemove = { id: victim, proposedAt: Number.NEGATIVE_INFINITY };
    }
  }

  // ------------------------------------------------------------------ scripted scenarios

  /**
   * wal-vs-config. Stage 0: with a writable leader L, cut replication from L to a group CA (which
   * keeps the control channel) and the control channel between L and the others WA (which keep
   * replication). Stage 1: commit a config entry through L + CA. Stage 2 (after writes reached WA
   * only): crash L and heal the network. CA is ahead in config log, WA ahead in WAL; a leader must
   * follow within electBoundT × T.
   * param-change (stage 10): a set_params change, the leader isolated the instant it applies it.
   */
  private onScript(stage: number): void {
    if (this.phase !== 'fault') return;
    const leader = this.findLeader();
    if (stage === 10) {
      if (!leader || !leader.pg.accepting || !leader.soft.writable || this.pendingAdd || this.pendingRemove) {
        this.at(200, { k: 'script', stage: 10 });
        return;
      }
      const K = this.o.nodes;
      const change: ConfigChange =
        Math.floor(this.o.seed / 2) % 2 === 0
          ? { type: 'set_params', params: { heartbeatSendPeriod: 250, heartbeatMaxLost: 6 } }
          : { type: 'set_params', params: { nquorum: K, minnodes: 1 } };
      if (change.type === 'set_params' && change.params.heartbeatSendPeriod) this.tMax = Math.max(this.tMax, 1500);
      const res = this.propose(leader, change);
      if (res?.ok) this.isolateOnCommit = true;
      else this.at(200, { k: 'script', stage: 10 });
      return;
    }
    if (stage === 0) {
      const all = this.members();
      if (!leader || !leader.pg.accepting || !leader.soft.writable || all.some((h) => !h.up)) {
        this.at(200, { k: 'script', stage: 0 });
        return;
      }
      this.scriptActive = true;
      this.net.healAll();
      this.net.quality = CALM_NETWORK;
      const followers = this.nemRng.shuffled(all.filter((h) => h !== leader).map((h) => h.id));
      const nCA = Math.max(1, Math.min(followers.length - 1, this.o.minnodes - 1));
      const ca = followers.slice(0, nCA);
      const wa = followers.slice(nCA);
      for (const id of ca) this.net.cutBoth(leader.id, id, ['wal']);
      for (const id of wa) this.net.cutBoth(leader.id, id, ['ctl']);
      this.trace(`script: leader n${leader.id}; config-ahead ${ca.join(',')} (no WAL); WAL-ahead ${wa.join(',')} (no control channel)`);
      this.at(300, { k: 'script', stage: 1 });
    } else if (stage === 1) {
      if (!leader) return this.abortScript('leader lost');
      const res = this.propose(leader, { type: 'set_meta', key: 'script', value: String(this.now) });
      if (!res?.ok) {
        this.at(200, { k: 'script', stage: 1 });
        return;
      }
      this.at(600, { k: 'script', stage: 2 });
    } else if (stage === 2) {
      if (!leader || !leader.pg.accepting) return this.abortScript('leader lost before the crash');
      this.failoverClock = { from: leader.id, start: this.now, clean: true };
      this.crash(leader, 'script');
      this.net.healAll();
      this.watch = { since: this.now, bound: this.o.electBoundT * this.tMax, what: 'WAL-ahead and config-ahead survivors elect a leader', except: leader.id };
      this.at(this.o.electBoundT * this.tMax + 500, { k: 'start', host: leader });
    }
  }

  private abortScript(why: string): void {
    this.trace(`script aborted: ${why}`);
    this.scriptActive = false;
    this.net.healAll();
  }
}

/** The WAL position type the invariants use (re-exported for tests). */
export type { WalPos };
