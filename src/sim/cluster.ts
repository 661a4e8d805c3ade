// One simulated cluster run: K controllers (the pure raft core driven exactly as the product's
// driver does), K PostgreSQL models (WAL as record ids per timeline, streaming with lag, sync
// acknowledgements, promotion, fencing, rewind), a faulty network, a nemesis, an operator
// (switchovers, config changes, node replacement) and a client writing all the time. Time is
// simulated; each node's clock runs at its own rate (within ±1 %). Invariants are checked on
// every step; the first violation stops the run.
import {
  RaftNode,
  DEFAULT_PARAMS,
  bootstrapState,
  electionQuorum,
  electionTimeoutMs,
  isMember,
  joiningState,
  voterIds,
} from '../raft/index.js';
import type {
  ClusterConfig,
  ClusterParams,
  ConfigChange,
  Message,
  NodeId,
  NodeInfo,
  PersistentState,
  ProposeResult,
  Ready,
  SoftState,
} from '../raft/index.js';
import { fmtChange, fmtMsg, fmtReady, fmtSoft } from './format.js';
import { EventQueue } from './heap.js';
import { InvariantChecker } from './invariants.js';
import type { LeaderWal, Violation } from './invariants.js';
import { CALM_NETWORK, MAX_NODE_ID, Network } from './network.js';
import type { Channel, NetQuality } from './network.js';
import { majority, syncStandbysFor } from './options.js';
import type { SimOptions } from './options.js';
import { Prng } from './prng.js';
import { TraceHash } from './trace.js';
import type { TraceSink } from './trace.js';
import { WalLog } from './wal.js';

type DbMode = 'standby' | 'primary' | 'fenced' | 'down';
type Phase = 'form' | 'fault' | 'heal' | 'done';

interface Transition {
  readonly to: 'primary' | 'fenced' | 'standby';
  readonly token: number;
  readonly term: number;
}

/** A PostgreSQL replication connection from `down` (walreceiver) to `up` (walsender). */
interface Conn {
  readonly id: number;
  readonly down: SimNode;
  readonly up: SimNode;
  readonly downInc: number;
  readonly upInc: number;
  state: 'connecting' | 'streaming' | 'waiting' | 'rewinding';
  /** Records the sender has sent. */
  sent: number;
  /** Records the receiver acknowledged as flushed. */
  flushed: number;
  closed: boolean;
  /** Arrival time of the last chunk / ack scheduled (a TCP stream delivers in order). */
  downFifo: number;
  upFifo: number;
}

interface PendingWrite {
  readonly id: number;
  readonly pos: number;
}

interface AckedAny {
  readonly id: number;
  readonly pos: number;
}

class SimNode {
  /** The controller runs. */
  up = false;
  removed = false;
  /** Controller incarnation: bumped on every controller stop and start. */
  inc = 0;
  /** PostgreSQL incarnation: bumped when PostgreSQL stops or starts, so stale timers and connections are ignored. */
  pgInc = 0;
  /** Watchdog deadline on this node's clock: PostgreSQL is fenced then unless the controller renews it. */
  watchdogLocal = 0;
  watchdogToken = 0;
  raft: RaftNode | null = null;
  soft: SoftState;
  config: ClusterConfig;
  crashAfterPersist = false;
  /** The whole node (controller and PostgreSQL) is stopped (SIGSTOP, VM pause) until this time. */
  pausedUntil = 0;
  // PostgreSQL model.
  mode: DbMode = 'down';
  rw = false;
  promotedTerm = 0;
  transition: Transition | null = null;
  /** Upstream the walreceiver follows (0 = none). */
  target: NodeId = 0;
  recv: Conn | null = null;
  senders: Conn[] = [];
  pending: PendingWrite[] = [];
  lastCheckpoint = 0;

  constructor(
    readonly id: NodeId,
    readonly info: NodeInfo,
    readonly rate: number,
    readonly offset: number,
    readonly rand: () => number,
    public persisted: PersistentState,
    public wal: WalLog,
  ) {
    this.soft = downSoft(persisted.hard.term);
    this.config = persisted.log.snapshot.config;
  }
}

/** PostgreSQL of `n` runs in incarnation `inc`. */
function pgRuns(n: SimNode, inc: number): boolean {
  return n.mode !== 'down' && n.pgInc === inc;
}

function downSoft(term: number): SoftState {
  return { role: 'follower', term, leaderId: 0, writable: false, state: 'UNKNOWN', transferTarget: 0 };
}

type SimEvent =
  | { readonly k: 'tick'; readonly node: SimNode; readonly inc: number }
  | { readonly k: 'msg'; readonly msg: Message }
  | { readonly k: 'chunk'; readonly conn: Conn; readonly from: number; readonly prevId: number; readonly ids: number[]; readonly tlis: number[] }
  | { readonly k: 'ack'; readonly conn: Conn; readonly len: number; readonly lastId: number }
  | { readonly k: 'connect'; readonly conn: Conn }
  | { readonly k: 'rewound'; readonly conn: Conn }
  | { readonly k: 'db'; readonly node: SimNode; readonly inc: number; readonly token: number }
  | { readonly k: 'start'; readonly node: SimNode }
  | { readonly k: 'resume'; readonly node: SimNode; readonly inc: number }
  | { readonly k: 'watchdog'; readonly node: SimNode; readonly inc: number; readonly token: number }
  | { readonly k: 'write' }
  | { readonly k: 'nemesis' }
  | { readonly k: 'heal-net'; readonly token: number }
  | { readonly k: 'operator' }
  | { readonly k: 'phase'; readonly phase: Phase }
  | { readonly k: 'script'; readonly stage: number }
  | { readonly k: 'check' };

export interface RunStats {
  /** Leaders elected (one per term that had a leader). */
  elections: number;
  /** Changes of the writable primary to another node that were not a requested switchover. */
  failovers: number;
  switchovers: number;
  /** Longest time from the loss of the writable leader (crash or isolation, no other fault meanwhile) to the next writable leader. */
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
  crashes: number;
  partitions: number;
  messages: number;
  dropped: number;
  /** Simulated ms during which two databases accepted writes (fencing and promotion delays included). */
  dbOverlapMs: number;
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

const QUALITIES: readonly NetQuality[] = [
  CALM_NETWORK,
  { loss: 0.01, dup: 0.01, reorder: 0.05, minDelayMs: 0.5, maxDelayMs: 5, reorderMs: 30 },
  { loss: 0.05, dup: 0.03, reorder: 0.2, minDelayMs: 1, maxDelayMs: 20, reorderMs: 100 },
  { loss: 0.2, dup: 0.05, reorder: 0.3, minDelayMs: 2, maxDelayMs: 40, reorderMs: 250 },
  { loss: 0, dup: 0.1, reorder: 0.5, minDelayMs: 5, maxDelayMs: 80, reorderMs: 300 },
];

export class Simulation {
  private readonly o: SimOptions;
  private readonly rng: Prng;
  private readonly nemRng: Prng;
  private readonly net: Network;
  private readonly queue = new EventQueue<SimEvent>();
  private readonly inv = new InvariantChecker();
  private readonly nodes: SimNode[] = [];
  private readonly byId = new Map<NodeId, SimNode>();
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
  private nextToken = 1;
  private writeSeq = 0;
  private sysSeq = 0;
  private maxTli = 1;

  // Operator.
  private pendingAdd: { id: NodeId; proposedAt: number } | null = null;
  private pendingRemove: { id: NodeId; proposedAt: number } | null = null;
  private formQueue: NodeId[] = [];
  private switchTarget: { from: NodeId; to: NodeId; at: number } | null = null;

  // Nemesis.
  private netToken = 0;
  /** Isolate the leader the moment it applies the next committed config change. */
  private isolateOnCommit = false;
  private scriptActive = false;
  private watch: { since: number; bound: number; what: string; except: NodeId } | null = null;

  // Writes.
  private readonly ackedAll: AckedAny[] = [];
  private finalWrite: { id: NodeId; node: NodeId; acked: boolean } | null = null;

  // Heal.
  private healStart = -1;
  private electedAt = -1;

  // Stats.
  private lastWritable: NodeId = 0;
  private failoverClock: { from: NodeId; start: number; clean: boolean } | null = null;
  private overlapSince = -1;
  private readonly stats: RunStats = {
    elections: 0, failovers: 0, switchovers: 0, maxFailoverMs: 0, ackedWrites: 0, lostAsyncWrites: 0,
    refusedWrites: 0, indeterminateWrites: 0, rewinds: 0, rewoundRecords: 0, crashes: 0, partitions: 0,
    messages: 0, dropped: 0, dbOverlapMs: 0, healElectMs: -1, convergeMs: -1, scenarioElectMs: -1, steps: 0, simMs: 0,
  };

  constructor(opts: SimOptions, trace?: { sink?: TraceSink; hash?: boolean }) {
    this.o = opts;
    const root = new Prng(opts.seed);
    this.rng = root.fork(1);
    this.nemRng = root.fork(2);
    this.net = new Network(root.fork(3));
    const nodeRng = root.fork(4);
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
      syncStandbys: this.k,
    };
    this.T = electionTimeoutMs(this.params);
    this.tMax = this.T;
    this.nextNodeId = opts.nodes + 1;
    this.nodeRng = nodeRng;
  }

  // ------------------------------------------------------------------ run loop

  run(): RunResult {
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
        const err = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
        this.inv.fail(0, `exception while handling ${ev.k}: ${err}`);
      }
      this.checkWritable();
      if (!this.inv.ok) break;
    }
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

  /** The node an event is processed on (null: no single node). */
  private target(ev: SimEvent): SimNode | null {
    switch (ev.k) {
      case 'tick':
      case 'db':
        return ev.node;
      case 'msg':
        return this.byId.get(ev.msg.to) ?? null;
      case 'chunk':
      case 'connect':
      case 'rewound':
        return ev.conn.down;
      case 'ack':
        return ev.conn.up;
      default:
        return null;
    }
  }

  private handle(ev: SimEvent): void {
    const t = this.target(ev);
    if (t && t.pausedUntil > this.now) {
      // A paused process handles nothing; its input waits (in order) until it resumes.
      this.queue.push(t.pausedUntil, ev);
      return;
    }
    switch (ev.k) {
      case 'tick':
        return this.onTick(ev.node, ev.inc);
      case 'msg':
        return this.onMsg(ev.msg);
      case 'chunk':
        return this.onChunk(ev.conn, ev.from, ev.prevId, ev.ids, ev.tlis);
      case 'ack':
        return this.onAck(ev.conn, ev.len, ev.lastId);
      case 'connect':
        return this.onConnect(ev.conn);
      case 'rewound':
        return this.onRewound(ev.conn);
      case 'db':
        return this.onDbDone(ev.node, ev.inc, ev.token);
      case 'start':
        return this.start(ev.node);
      case 'resume':
        return this.onResume(ev.node, ev.inc);
      case 'watchdog':
        return this.onWatchdog(ev.node, ev.inc, ev.token);
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

  private local(n: SimNode): number {
    return n.offset + n.rate * this.now;
  }

  // ------------------------------------------------------------------ nodes

  private nodeInfo(id: NodeId): NodeInfo {
    return {
      id, host: `node${id}`, port: 5432, bihaPort: 5433, mode: 'regular',
      canBeLeader: true, canVote: true, priority: 0,
    };
  }

  private makeNode(id: NodeId, state: PersistentState, wal: WalLog): SimNode {
    const r = this.nodeRng.fork(id);
    const rate = 0.99 + 0.02 * r.next();
    const offset = Math.floor(r.next() * 1e6);
    const n = new SimNode(id, this.nodeInfo(id), rate, offset, () => r.next(), state, wal);
    this.nodes.push(n);
    this.byId.set(id, n);
    return n;
  }

  private bootstrap(): void {
    const first = this.makeNode(1, bootstrapState(this.nodeInfo(1), this.params), new WalLog());
    this.inv.persisted(1, first.persisted.hard, first.wal.pos());
    this.start(first);
    for (let id = 2; id <= this.o.nodes; id++) this.formQueue.push(id);
    this.at(OPERATOR_PERIOD_MS, { k: 'operator' });
    this.at(this.rng.range(10, 40), { k: 'write' });
    this.at(CHECK_PERIOD_MS, { k: 'check' });
  }

  /**
   * Starts (or restarts) a node's controller from its persisted state. If PostgreSQL is down it
   * starts too, as a standby that follows nobody yet (its WAL survived on disk); if it kept
   * running while the controller was dead, the new controller reconciles it.
   */
  private start(n: SimNode): void {
    if (n.up || n.removed) return;
    n.up = true;
    n.inc++;
    const raft = new RaftNode({ id: n.id, state: n.persisted, rand: n.rand, now: this.local(n) });
    n.raft = raft;
    raft.setWal(n.wal.pos());
    raft.setLocalFenced(!n.rw);
    n.soft = raft.soft();
    n.config = raft.config();
    const pgStarts = n.mode === 'down';
    if (pgStarts) {
      n.pgInc++;
      n.mode = 'standby';
      n.rw = false;
      n.target = 0;
      this.at(this.rng.range(0, this.o.tickMs) / n.rate, { k: 'tick', node: n, inc: n.pgInc });
    }
    this.trace(`n${n.id} start${pgStarts ? '' : ' controller'} term ${n.persisted.hard.term} vote ${n.persisted.hard.vote} wal ${n.wal.tli}/${n.wal.lsn} rate ${n.rate.toFixed(4)}`);
    this.reconcile(n);
    this.drain(n);
  }

  /** kill -9 of the controller alone: PostgreSQL keeps running until the watchdog fences it. */
  private killController(n: SimNode): void {
    if (!n.up) return;
    this.trace(`n${n.id} CONTROLLER KILLED (db ${n.mode}${n.rw ? ' rw' : ''})`);
    this.stats.crashes++;
    n.up = false;
    n.raft = null;
    n.inc++;
    n.crashAfterPersist = false;
    n.soft = downSoft(n.persisted.hard.term);
    this.armWatchdog(n);
  }

  /** With the controller dead, a primary is fenced at the last lease deadline the controller set. */
  private armWatchdog(n: SimNode): void {
    if (n.up || !n.rw || n.mode === 'down') return;
    const at = Math.max(this.now, (n.watchdogLocal - n.offset) / n.rate);
    const token = ++this.nextToken;
    n.watchdogToken = token;
    this.queue.push(at, { k: 'watchdog', node: n, inc: n.pgInc, token });
  }

  private onWatchdog(n: SimNode, inc: number, token: number): void {
    if (n.up || n.pgInc !== inc || n.watchdogToken !== token || !n.rw || n.transition) return;
    this.trace(`n${n.id} watchdog fences the database`);
    const t = this.nextToken++;
    n.transition = { to: 'fenced', token: t, term: n.soft.term };
    this.at(this.o.fenceDelayMs, { k: 'db', node: n, inc: n.pgInc, token: t });
  }

  /** The whole node stops (controller and PostgreSQL); only persisted state and the WAL survive. */
  private crash(n: SimNode, why: string): void {
    if (!n.up && n.mode === 'down') return;
    this.trace(`n${n.id} CRASH (${why})`);
    this.stats.crashes++;
    n.up = false;
    n.raft = null;
    n.inc++;
    n.pgInc++;
    this.dropPending(n);
    n.rw = false;
    n.mode = 'down';
    n.transition = null;
    n.crashAfterPersist = false;
    n.pausedUntil = 0;
    this.closeRecv(n);
    for (const c of n.senders.slice()) this.closeConn(c, 'upstream down');
    n.target = 0;
    n.soft = downSoft(n.persisted.hard.term);
  }

  private members(): SimNode[] {
    return this.nodes.filter((n) => !n.removed);
  }

  private findLeader(): SimNode | null {
    let best: SimNode | null = null;
    for (const n of this.nodes) {
      if (!n.up || n.removed || n.soft.role !== 'leader') continue;
      if (!best || n.soft.term > best.soft.term) best = n;
    }
    return best;
  }

  // ------------------------------------------------------------------ the driver (Ready execution)

  /** One tick of the node: the controller's timer (when it runs) and PostgreSQL's replication work. */
  private onTick(n: SimNode, inc: number): void {
    if (!pgRuns(n, inc)) return;
    if (n.raft) {
      n.raft.setLocalFenced(!n.rw);
      n.raft.tick(this.local(n));
      this.drain(n);
      if (!pgRuns(n, inc)) return;
    }
    this.walTick(n);
    this.at(this.o.tickMs / n.rate, { k: 'tick', node: n, inc });
  }

  private onMsg(m: Message): void {
    const to = this.byId.get(m.to);
    if (!to || !to.up || !to.raft) {
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
    to.raft.step(m, this.local(to));
    this.drain(to);
  }

  private drain(n: SimNode): void {
    const raft = n.raft;
    let guard = 0;
    while (raft && n.raft === raft && raft.hasReady()) {
      if (++guard > 50) throw new Error(`node ${n.id}: Ready did not settle`);
      this.execReady(n, raft.ready());
    }
    if (raft && n.raft === raft) {
      // Pet the watchdog with the lease deadline (none: fence at once if the controller dies).
      const local = this.local(n);
      n.watchdogLocal = n.soft.role === 'leader' ? (raft.leaseExpiresAt(local) ?? local) : local;
    }
  }

  /** The driver's contract: persist, fence WAL, send, apply committed config, reconcile. */
  private execReady(n: SimNode, rd: Ready): void {
    if (this.tracing) this.trace(`n${n.id} ready ${fmtReady(rd)}`);
    // 1. persist
    if (rd.hardState || rd.log) {
      n.persisted = { hard: rd.hardState ?? n.persisted.hard, log: rd.log ?? n.persisted.log };
      if (rd.hardState) this.inv.persisted(n.id, rd.hardState, n.wal.pos());
      if (n.crashAfterPersist) {
        this.crash(n, 'after persisting, before sending');
        this.at(this.nemRng.range(300, 3000), { k: 'start', node: n });
        return;
      }
    }
    // 2. fence WAL
    let extraDelay = 0;
    if (rd.fenceWal) extraDelay = this.fenceWal(n);
    // 3. send
    for (const m of rd.messages) this.send(m, extraDelay);
    // 4. apply committed config
    if (rd.config) {
      n.config = rd.config;
      if (this.isolateOnCommit && n.soft.role === 'leader' && this.phase === 'fault' && !this.scriptActive) {
        this.isolateOnCommit = false;
        this.isolate(n, 'right after it applied a config change');
      }
    }
    // 5. reconcile
    if (rd.soft) this.onSoft(n, rd.soft);
  }

  private send(m: Message, extraDelay: number): void {
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
    for (const d of delays) this.at(extraDelay + d, { k: 'msg', msg: m });
  }

  /**
   * Votes fence WAL: stop the walreceiver at once, and if this database still accepts writes (a
   * leader that grants a vote) stop that too. Returns how long the messages must wait for it.
   */
  private fenceWal(n: SimNode): number {
    this.closeRecv(n);
    n.target = 0;
    if (n.rw || n.transition?.to === 'primary') {
      const wasRw = n.rw;
      n.rw = false;
      n.transition = null;
      n.mode = 'fenced';
      this.dropPending(n);
      n.raft?.setLocalFenced(true);
      this.trace(`n${n.id} db fenced before voting`);
      return wasRw ? this.o.fenceDelayMs : 0;
    }
    return 0;
  }

  private onSoft(n: SimNode, s: SoftState): void {
    const prev = n.soft;
    n.soft = s;
    if (s.role === 'leader' && (prev.role !== 'leader' || prev.term !== s.term)) {
      this.stats.elections++;
      this.trace(`n${n.id} ELECTED term ${s.term} wal ${n.wal.tli}/${n.wal.lsn}`);
      this.inv.becameLeader(n.id, s.term, n.wal.pos(), (p, id) => n.wal.has(p, id));
    } else if (prev.role !== s.role && this.tracing) {
      this.trace(`n${n.id} role ${prev.role} -> ${fmtSoft(s)}`);
    }
    this.reconcile(n);
  }

  /** Brings the database model in line with the raft soft state. */
  private reconcile(n: SimNode): void {
    if (!n.up) return;
    const s = n.soft;
    if (s.role === 'leader') {
      n.target = 0;
      this.closeRecv(n);
      if (s.writable) this.wantPrimary(n);
      else this.wantReadOnly(n, 'fenced');
    } else {
      if (s.leaderId !== 0 && s.leaderId !== n.id && s.leaderId !== n.target) {
        n.target = s.leaderId;
        this.closeRecv(n);
      }
      this.wantReadOnly(n, 'standby');
    }
    n.raft?.setLocalFenced(!n.rw);
  }

  private wantPrimary(n: SimNode): void {
    if (n.transition || n.mode === 'primary') return;
    this.closeRecv(n);
    const token = this.nextToken++;
    n.transition = { to: 'primary', token, term: n.soft.term };
    this.trace(`n${n.id} db promote`);
    this.at(this.o.promoteDelayMs, { k: 'db', node: n, inc: n.pgInc, token });
  }

  private wantReadOnly(n: SimNode, mode: 'fenced' | 'standby'): void {
    if (n.transition) return;
    if (n.mode === 'primary') {
      const token = this.nextToken++;
      n.transition = { to: mode, token, term: n.soft.term };
      this.trace(`n${n.id} db fence -> ${mode}`);
      this.at(this.o.fenceDelayMs, { k: 'db', node: n, inc: n.pgInc, token });
    } else if (n.mode !== mode) {
      n.mode = mode;
      if (mode === 'fenced') this.closeRecv(n);
    }
  }

  private onDbDone(n: SimNode, inc: number, token: number): void {
    if (n.mode === 'down' || n.pgInc !== inc || n.transition?.token !== token) return;
    const tr = n.transition;
    n.transition = null;
    if (tr.to === 'primary') {
      const tli = ++this.maxTli;
      n.wal.append(this.sysId(), tli);
      n.mode = 'primary';
      n.rw = true;
      n.promotedTerm = tr.term;
      n.lastCheckpoint = this.now;
      n.raft?.setWal(n.wal.pos());
      this.trace(`n${n.id} db PRIMARY tli ${tli} at ${n.wal.lsn} (term ${tr.term})`);
      this.onWritable(n);
      this.armWatchdog(n);
    } else {
      n.rw = false;
      n.mode = tr.to;
      this.dropPending(n);
      this.trace(`n${n.id} db ${tr.to}`);
    }
    this.reconcile(n);
    this.drain(n);
  }

  private sysId(): number {
    return -++this.sysSeq;
  }

  private dropPending(n: SimNode): void {
    if (n.pending.length === 0) return;
    this.stats.indeterminateWrites += n.pending.length;
    if (this.tracing) this.trace(`n${n.id} ${n.pending.length} sync waits cancelled`);
    if (this.finalWrite && n.pending.some((w) => w.id === this.finalWrite?.id)) this.finalWrite = null;
    n.pending = [];
  }

  private checkWritable(): void {
    let writable: NodeId[] | null = null;
    let rwCount = 0;
    for (const n of this.nodes) {
      // A paused database accepts nothing until it resumes.
      if (!n.rw || n.pausedUntil > this.now) continue;
      rwCount++;
      // With its controller dead, a primary counts as a writable leader until the watchdog fences it.
      const leads = n.up ? n.soft.role === 'leader' && n.soft.writable : n.transition === null;
      if (leads) (writable ??= []).push(n.id);
    }
    if (writable && writable.length > 1) this.inv.writable(writable);
    if (rwCount > 1) {
      if (this.overlapSince < 0) this.overlapSince = this.now;
    } else if (this.overlapSince >= 0) {
      this.stats.dbOverlapMs += this.now - this.overlapSince;
      this.overlapSince = -1;
    }
  }

  private onWritable(n: SimNode): void {
    const prev = this.lastWritable;
    if (prev !== n.id) {
      if (prev !== 0) {
        const sw = this.switchTarget;
        if (sw && sw.to === n.id && sw.from === prev && this.now - sw.at < 2 * this.T) this.stats.switchovers++;
        else this.stats.failovers++;
      }
      const fc = this.failoverClock;
      if (fc && fc.from !== n.id) {
        if (fc.clean) this.stats.maxFailoverMs = Math.max(this.stats.maxFailoverMs, Math.round(this.now - fc.start));
        this.failoverClock = null;
      }
    } else if (this.failoverClock?.from === n.id) {
      this.failoverClock = null;
    }
    this.lastWritable = n.id;
  }

  // ------------------------------------------------------------------ PostgreSQL replication

  private walTick(n: SimNode): void {
    for (const c of n.senders.slice()) if (c.state === 'streaming') this.push(c);
    if (n.rw && this.now - n.lastCheckpoint >= 1000) {
      // PostgreSQL writes WAL of its own (checkpoints, running-xacts) without any client commit.
      n.lastCheckpoint = this.now;
      n.wal.append(this.sysId(), n.wal.tli);
      n.raft?.setWal(n.wal.pos());
    }
    if (n.mode !== 'standby' || n.transition) {
      this.closeRecv(n);
      return;
    }
    if (n.target === 0) return;
    if (n.recv) {
      if (n.recv.state === 'waiting') this.tryStream(n.recv);
      return;
    }
    const up = this.byId.get(n.target);
    if (!up || up.removed || up.mode === 'down') return;
    if (!this.net.linked('wal', n.id, up.id)) return;
    const c: Conn = {
      id: this.nextConnId++, down: n, up, downInc: n.pgInc, upInc: up.pgInc, state: 'connecting',
      sent: 0, flushed: 0, closed: false, downFifo: 0, upFifo: 0,
    };
    n.recv = c;
    up.senders.push(c);
    this.at(this.rng.range(1, 5), { k: 'connect', conn: c });
  }

  private valid(c: Conn): boolean {
    return (
      !c.closed && c.down.mode !== 'down' && c.down.pgInc === c.downInc && c.up.mode !== 'down' && c.up.pgInc === c.upInc && c.down.recv === c
    );
  }

  private closeConn(c: Conn, why: string): void {
    if (c.closed) return;
    c.closed = true;
    if (c.down.recv === c) c.down.recv = null;
    const i = c.up.senders.indexOf(c);
    if (i >= 0) c.up.senders.splice(i, 1);
    if (this.tracing) this.trace(`wal n${c.up.id}>n${c.down.id} closed (${why})`);
  }

  private closeRecv(n: SimNode): void {
    if (n.recv) this.closeConn(n.recv, 'receiver stopped');
  }

  private onConnect(c: Conn): void {
    if (!this.valid(c)) return;
    if (!this.net.linked('wal', c.down.id, c.up.id) || c.up.mode === 'down') {
      this.closeConn(c, 'connect failed');
      return;
    }
    this.tryStream(c);
  }

  /** Compares histories: stream when the receiver's WAL is a prefix of the sender's, else wait or rewind. */
  private tryStream(c: Conn): void {
    const d = c.down.wal;
    const u = c.up.wal;
    if (d.isPrefixOf(u)) {
      c.state = 'streaming';
      c.sent = d.lsn;
      if (this.tracing) this.trace(`wal n${c.up.id}>n${c.down.id} streaming from ${d.lsn}`);
    } else if (u.isPrefixOf(d)) {
      c.state = 'waiting';
    } else {
      c.state = 'rewinding';
      if (this.tracing) this.trace(`wal n${c.down.id} diverged from n${c.up.id} at ${d.commonPrefix(u)} (has ${d.lsn}): rewind`);
      this.at(this.rng.range(50, 300), { k: 'rewound', conn: c });
    }
  }

  private onRewound(c: Conn): void {
    if (!this.valid(c) || c.state !== 'rewinding') return;
    const n = c.down;
    const cp = n.wal.commonPrefix(c.up.wal);
    const lost = n.wal.truncate(cp);
    this.stats.rewinds++;
    this.stats.rewoundRecords += lost.length;
    const lostWrites = lost.filter((id) => id > 0);
    this.trace(`n${n.id} REWOUND to ${cp} from n${c.up.id}: dropped ${lost.length} records (writes ${lostWrites.join(',') || 'none'})`);
    this.inv.rewound(n.id, lostWrites);
    for (const s of n.senders.slice()) this.closeConn(s, 'upstream rewound');
    n.raft?.setWal(n.wal.pos());
    this.tryStream(c);
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
    for (let i = 0; i < ids.length; i++) d.append(ids[i] as number, tlis[i] as number);
    c.down.raft?.setWal(d.pos());
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
      this.syncAcks(c.up);
    }
  }

  /** Acknowledges pending synchronous writes flushed on k standbys (synchronous_standby_names = ANY k). */
  private syncAcks(up: SimNode): void {
    if (!up.rw || up.pending.length === 0 || this.k === 0) return;
    const flushed: number[] = [];
    for (const c of up.senders) {
      if (c.state === 'streaming' && !c.closed && isMember(up.config, c.down.id)) flushed.push(c.flushed);
    }
    if (flushed.length < this.k) return;
    flushed.sort((a, b) => b - a);
    const kth = flushed[this.k - 1] as number;
    let i = 0;
    while (i < up.pending.length && (up.pending[i] as PendingWrite).pos < kth) i++;
    if (i === 0) return;
    const done = up.pending.splice(0, i);
    const leaders = this.leaderWals();
    const syncSafe = this.syncSafe(up.config);
    for (const w of done) {
      this.stats.ackedWrites++;
      this.ackedAll.push({ id: w.id, pos: w.pos });
      if (this.finalWrite?.id === w.id) this.finalWrite.acked = true;
      if (this.tracing) this.trace(`ACK write ${w.id} @n${up.id} pos ${w.pos} (sync, term ${up.promotedTerm})`);
      if (syncSafe) this.inv.ackedSync({ id: w.id, pos: w.pos, term: up.promotedTerm, by: up.id }, leaders);
    }
  }

  /** k + 1 + nquorum > N: an acknowledged synchronous write survives any failover. */
  private syncSafe(config: ClusterConfig): boolean {
    return this.k + 1 + electionQuorum(config) > voterIds(config).length;
  }

  private leaderWals(): LeaderWal[] {
    const out: LeaderWal[] = [];
    for (const n of this.nodes) {
      if (n.up && n.soft.role === 'leader') out.push({ id: n.id, term: n.soft.term, has: (p, id) => n.wal.has(p, id) });
    }
    return out;
  }

  // ------------------------------------------------------------------ client

  private onClientWrite(): void {
    if (this.phase === 'form' || this.phase === 'fault') {
      this.at(this.rng.range(15, 45), { k: 'write' });
      this.write(null);
    }
  }

  /** One client commit on the first database (in id order) that accepts writes, or on `only`. */
  private write(only: SimNode | null): number {
    let p: SimNode | null = only;
    if (!p) {
      for (const n of this.nodes) {
        if (n.rw && n.pausedUntil <= this.now) {
          p = n;
          break;
        }
      }
    }
    if (!p || !p.rw) {
      this.stats.refusedWrites++;
      return 0;
    }
    const id = ++this.writeSeq;
    const pos = p.wal.lsn;
    p.wal.append(id, p.wal.tli);
    p.raft?.setWal(p.wal.pos());
    if (this.k === 0) {
      this.stats.ackedWrites++;
      this.ackedAll.push({ id, pos });
      if (this.tracing) this.trace(`ACK write ${id} @n${p.id} pos ${pos} (async)`);
    } else {
      p.pending.push({ id, pos });
      if (this.tracing) this.trace(`write ${id} @n${p.id} pos ${pos} waits for ${this.k} standbys`);
      this.syncAcks(p);
    }
    return id;
  }

  // ------------------------------------------------------------------ operator

  private propose(leader: SimNode, change: ConfigChange): ProposeResult | null {
    const raft = leader.raft;
    if (!raft) return null;
    const res = raft.propose(change, this.local(leader));
    this.trace(`operator n${leader.id} propose ${fmtChange(change)}: ${res.ok ? `ok index ${res.index}` : res.code}`);
    this.drain(leader);
    return res;
  }

  private onOperator(): void {
    if (this.phase === 'done') return;
    this.at(OPERATOR_PERIOD_MS, { k: 'operator' });
    const leader = this.findLeader();
    if (this.pendingRemove) {
      const pr = this.pendingRemove;
      const victim = this.byId.get(pr.id);
      if (leader && victim && !isMember(leader.config, pr.id)) {
        this.trace(`operator: node ${pr.id} removed; shutting it down`);
        this.crash(victim, 'removed from the cluster');
        victim.removed = true;
        this.pendingRemove = null;
        this.beginAdd(this.nextNodeId++);
      } else if (leader && this.now - pr.proposedAt >= PROPOSE_RETRY_MS) {
        pr.proposedAt = this.now;
        this.propose(leader, { type: 'remove_node', id: pr.id });
      }
      return;
    }
    if (this.pendingAdd) {
      const pa = this.pendingAdd;
      const n = this.byId.get(pa.id);
      if (!n) {
        // The basebackup needs a primary to copy from.
        this.beginAdd(pa.id);
        return;
      }
      if (leader && isMember(leader.config, pa.id)) {
        this.trace(`operator: node ${pa.id} added`);
        this.pendingAdd = null;
      } else if (leader && n.up && this.now - pa.proposedAt >= PROPOSE_RETRY_MS) {
        pa.proposedAt = this.now;
        this.propose(leader, { type: 'add_node', node: n.info });
      }
      return;
    }
    const next = this.formQueue[0];
    if (next !== undefined) {
      this.formQueue.shift();
      this.beginAdd(next);
      return;
    }
    if (this.phase === 'form' && leader && leader.rw && leader.soft.writable) this.enterPhase('fault');
  }

  /** bihactl add: basebackup from the current primary, start the node, then add it to the config. */
  private beginAdd(id: NodeId): void {
    this.pendingAdd = { id, proposedAt: Number.NEGATIVE_INFINITY };
    const leader = this.findLeader();
    if (!leader || this.byId.has(id)) return;
    const n = this.makeNode(id, joiningState(), leader.wal.clone());
    this.trace(`operator: basebackup of node ${id} from n${leader.id} (${leader.wal.lsn} records)`);
    this.at(this.rng.range(100, 400), { k: 'start', node: n });
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
      for (const n of this.nodes) {
        n.crashAfterPersist = false;
        if (!n.removed && !n.up) this.start(n);
      }
    }
  }

  private onCheck(): void {
    if (this.phase === 'done') return;
    this.at(CHECK_PERIOD_MS, { k: 'check' });
    const w = this.watch;
    if (w) {
      const l = this.findLeader();
      if (l && l.id !== w.except && l.rw && l.soft.writable) {
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
      this.inv.fail(6, `the cluster did not form within ${FORM_BOUND_MS} ms`);
      return;
    }
    if (this.phase === 'heal') this.checkHeal();
  }

  private checkHeal(): void {
    const since = this.now - this.healStart;
    const leader = this.findLeader();
    const writable = leader !== null && leader.rw && leader.soft.writable;
    if (writable && this.electedAt < 0) {
      this.electedAt = this.now;
      this.stats.healElectMs = Math.round(since);
    }
    if (this.electedAt < 0 && since > this.o.electBoundT * this.tMax) {
      this.inv.fail(6, `no writable leader ${this.o.electBoundT} x T = ${this.o.electBoundT * this.tMax} ms after healing`);
      return;
    }
    if (since > this.o.convergeBoundT * this.tMax) {
      this.inv.fail(6, `not converged ${this.o.convergeBoundT} x T = ${this.o.convergeBoundT * this.tMax} ms after healing: ${this.why(leader)}`);
      return;
    }
    if (!leader || !writable) return;
    const reason = this.divergence(leader);
    if (reason !== null) return;
    if (!this.finalWrite) {
      const id = this.write(leader);
      if (id > 0) this.finalWrite = { id, node: leader.id, acked: this.k === 0 };
      return;
    }
    if (!this.finalWrite.acked) return;
    for (const n of this.members()) {
      if (n !== leader && (n.wal.lsn !== leader.wal.lsn || n.wal.lastId !== leader.wal.lastId)) return;
    }
    this.finish(leader);
  }

  /** Why the cluster has not converged around `leader` (null: only WAL catch-up is left). */
  private divergence(leader: SimNode): string | null {
    if (this.pendingAdd || this.pendingRemove || this.formQueue.length > 0) return 'membership change pending';
    const members = this.members();
    if (leader.config.nodes.length !== members.length) return 'membership differs from the running nodes';
    const cfg = JSON.stringify(leader.config);
    for (const n of members) {
      if (!n.up) return `node ${n.id} down`;
      if (!isMember(leader.config, n.id)) return `node ${n.id} not a member`;
      if (n === leader) continue;
      if (n.soft.term !== leader.soft.term || n.soft.leaderId !== leader.id || n.soft.role !== 'follower') {
        return `node ${n.id} is ${fmtSoft(n.soft)}`;
      }
      if (JSON.stringify(n.config) !== cfg) return `node ${n.id} has another config`;
    }
    return null;
  }

  private why(leader: SimNode | null): string {
    if (!leader) return 'no leader';
    const d = this.divergence(leader);
    if (d) return d;
    if (!this.finalWrite?.acked) return 'final write not acknowledged';
    const lag = this.members().filter((n) => n.wal.lsn !== leader.wal.lsn || n.wal.lastId !== leader.wal.lastId);
    return `WAL of ${lag.map((n) => `n${n.id} ${n.wal.tli}/${n.wal.lsn}`).join(', ')} differs from leader n${leader.id} ${leader.wal.tli}/${leader.wal.lsn}`;
  }

  private finish(leader: SimNode): void {
    this.stats.convergeMs = Math.round(this.now - this.healStart);
    this.inv.finalLeader(leader.id, (p, id) => leader.wal.has(p, id));
    if (this.k === 0) {
      for (const w of this.ackedAll) if (!leader.wal.has(w.pos, w.id)) this.stats.lostAsyncWrites++;
    }
    if (this.overlapSince >= 0) this.stats.dbOverlapMs += this.now - this.overlapSince;
    this.stats.dbOverlapMs = Math.round(this.stats.dbOverlapMs * 1000) / 1000;
    this.trace(`CONVERGED leader n${leader.id} term ${leader.soft.term} wal ${leader.wal.tli}/${leader.wal.lsn} after ${this.stats.convergeMs} ms of healing`);
    this.phase = 'done';
    this.finished = true;
  }

  // ------------------------------------------------------------------ nemesis

  private onNemesis(): void {
    if (this.phase !== 'fault') return;
    const r = this.nemRng;
    this.at(r.range(NEMESIS_MIN_MS, NEMESIS_MAX_MS), { k: 'nemesis' });
    if (this.scriptActive) return;
    if (this.failoverClock) this.failoverClock.clean = false;
    const x = r.next();
    if (x < 0.22) this.nemCrash(false);
    else if (x < 0.27) this.nemCrash(true);
    else if (x < 0.52) this.nemPartition();
    else if (x < 0.58) {
      this.net.healAll();
      this.trace('net heal');
    } else if (x < 0.7) {
      this.net.quality = r.pick(QUALITIES);
      this.trace(`net quality loss ${this.net.quality.loss} dup ${this.net.quality.dup} reorder ${this.net.quality.reorder} delay ${this.net.quality.minDelayMs}-${this.net.quality.maxDelayMs}`);
    } else if (x < 0.8) this.nemSwitchover();
    else if (x < 0.88) this.nemConfig();
    else if (x < 0.93) this.nemPause();
    else if (x < 0.97) this.nemKillController();
    else this.nemRestartAll();
  }

  private nemCrash(midReady: boolean): void {
    const r = this.nemRng;
    const up = this.members().filter((n) => n.up);
    const down = this.members().length - up.length;
    if (up.length === 0 || down >= Math.ceil(this.o.nodes / 2)) return;
    const leader = this.findLeader();
    const victim = leader && r.chance(0.5) ? leader : r.pick(up);
    if (midReady) {
      victim.crashAfterPersist = true;
      this.trace(`nemesis: n${victim.id} will crash between persisting and sending`);
      return;
    }
    if (victim.rw) this.failoverClock = { from: victim.id, start: this.now, clean: true };
    this.crash(victim, 'nemesis');
    this.at(r.range(300, 6000), { k: 'start', node: victim });
  }

  /** SIGSTOP of a whole node (controller and PostgreSQL), e.g. a VM pause; its clock keeps running. */
  private nemPause(): void {
    const r = this.nemRng;
    const up = this.members().filter((n) => n.up && n.pausedUntil <= this.now);
    if (up.length === 0) return;
    const leader = this.findLeader();
    const victim = leader && r.chance(0.5) ? leader : r.pick(up);
    const ms = r.range(100, 4000);
    victim.pausedUntil = this.now + ms;
    this.trace(`nemesis: pause n${victim.id} for ${ms.toFixed(0)} ms`);
    this.at(ms, { k: 'resume', node: victim, inc: victim.inc });
  }

  private onResume(n: SimNode, inc: number): void {
    if (!n.up || n.inc !== inc || !n.raft || n.pausedUntil > this.now) return;
    this.trace(`n${n.id} resumed`);
    // The controller's overdue timer fires first.
    n.raft.tick(this.local(n));
    this.drain(n);
  }

  private nemKillController(): void {
    const r = this.nemRng;
    const up = this.members().filter((n) => n.up);
    if (up.length === 0) return;
    const leader = this.findLeader();
    const victim = leader && r.chance(0.7) ? leader : r.pick(up);
    if (victim.rw) this.failoverClock = { from: victim.id, start: this.now, clean: true };
    this.killController(victim);
    this.at(r.range(300, 6000), { k: 'start', node: victim });
  }

  private nemRestartAll(): void {
    for (const n of this.members()) {
      if (!n.up) this.at(this.nemRng.range(0, 200), { k: 'start', node: n });
    }
  }

  private nemPartition(): void {
    const r = this.nemRng;
    const ids = r.shuffled(this.members().map((n) => n.id));
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
        if (leader.rw && channels.includes('ctl')) this.failoverClock = { from: leader.id, start: this.now, clean: true };
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

  private isolate(n: SimNode, why: string): void {
    this.net.healAll();
    const rest = this.members().filter((m) => m !== n).map((m) => m.id);
    this.net.split([[n.id], rest], ['ctl', 'wal']);
    this.stats.partitions++;
    const token = ++this.netToken;
    this.trace(`nemesis: isolate n${n.id} ${why}`);
    this.at(this.nemRng.range(300, 5000), { k: 'heal-net', token });
  }

  private nemSwitchover(): void {
    const leader = this.findLeader();
    if (!leader?.raft || !leader.soft.writable) return;
    const targets = leader.config.nodes.filter((n) => n.id !== leader.id && this.byId.get(n.id)?.up).map((n) => n.id);
    if (targets.length === 0) return;
    const to = this.nemRng.pick(targets);
    const res = leader.raft.transferLeadership(to, this.local(leader));
    this.trace(`operator: switchover n${leader.id} -> n${to}: ${res.ok ? 'started' : res.code}`);
    if (res.ok) this.switchTarget = { from: leader.id, to, at: this.now };
    this.drain(leader);
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

  // ------------------------------------------------------------------ scripted WAL-vs-config failover

  /**
   * Stage 0: with a writable leader L, cut replication from L to a group CA (which keeps the
   * control channel) and the control channel between L and the others WA (which keep replication).
   * Stage 1: commit a config entry through L + CA. Stage 2 (after writes reached WA only): crash L
   * and heal the network. CA is ahead in config log, WA ahead in WAL; a leader must follow within
   * electBoundT × T.
   */
  private onScript(stage: number): void {
    if (this.phase !== 'fault') return;
    const leader = this.findLeader();
    if (stage === 10) {
      // param-change: a set_params change, the leader isolated the instant it applies it.
      if (!leader || !leader.rw || !leader.soft.writable || this.pendingAdd || this.pendingRemove) {
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
      if (!leader || !leader.rw || !leader.soft.writable || all.some((n) => !n.up)) {
        this.at(200, { k: 'script', stage: 0 });
        return;
      }
      this.scriptActive = true;
      this.net.healAll();
      this.net.quality = CALM_NETWORK;
      const followers = this.nemRng.shuffled(all.filter((n) => n !== leader).map((n) => n.id));
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
      if (!leader || !leader.rw) return this.abortScript('leader lost before the crash');
      this.failoverClock = { from: leader.id, start: this.now, clean: true };
      this.crash(leader, 'script');
      this.net.healAll();
      this.watch = { since: this.now, bound: this.o.electBoundT * this.tMax, what: 'WAL-ahead and config-ahead survivors elect a leader', except: leader.id };
      this.at(this.o.electBoundT * this.tMax + 500, { k: 'start', node: leader });
    }
  }

  private abortScript(why: string): void {
    this.trace(`script aborted: ${why}`);
    this.scriptActive = false;
    this.net.healAll();
  }
}
