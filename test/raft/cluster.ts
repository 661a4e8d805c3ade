// A minimal in-memory cluster for unit tests: zero-latency delivery, Ready persisted before its
// messages are queued (the documented driver order), optional link cuts, restarts from the disk.
import { RaftNode, DEFAULT_PARAMS } from '../../src/raft/index.js';
import type { ClusterParams, Message, NodeInfo, PersistentState, Ready, WalPos } from '../../src/raft/index.js';
import { seededRand } from './scenario.js';

export function nodeInfo(id: number, over: Partial<NodeInfo> = {}): NodeInfo {
  return { id, host: `node${id}`, port: 5432, bihaPort: 5433, mode: 'regular', canBeLeader: true, canVote: true, priority: 0, ...over };
}

export class TestCluster {
  time: number;
  readonly nodes = new Map<number, RaftNode | null>();
  readonly disk = new Map<number, PersistentState>();
  readonly wal = new Map<number, WalPos>();
  readonly readies = new Map<number, Ready[]>();
  queue: Message[] = [];
  /** Messages in flight with a delivery time (only with `net`). */
  inFlight: Array<{ at: number; msg: Message }> = [];
  cuts = new Set<string>();
  /** Optional unreliable network: each message is lost with probability `loss`, else delayed 0..maxDelay ms. */
  net: { rand: () => number; loss: number; maxDelay: number } | null = null;

  constructor(infos: NodeInfo[], params: Partial<ClusterParams> = {}) {
    const p: ClusterParams = { ...DEFAULT_PARAMS, heartbeatSendPeriod: 200, heartbeatMaxLost: 5, nquorum: 2, minnodes: 2, ...params };
    const state: PersistentState = {
      hard: { term: 1, vote: 0, commit: 1 },
      log: { snapshot: { index: 1, term: 1, config: { nodes: infos, params: p }, meta: {} }, entries: [] },
    };
    this.time = 0;
    for (const n of infos) {
      this.disk.set(n.id, state);
      this.wal.set(n.id, { tli: 1, lsn: 0 });
      this.readies.set(n.id, []);
      this.start(n.id);
    }
    this.time = p.heartbeatSendPeriod * p.heartbeatMaxLost; // past the restart quiet time
  }

  node(id: number): RaftNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`node ${id} is not running`);
    return n;
  }

  start(id: number): void {
    const n = new RaftNode({ id, state: this.disk.get(id)!, rand: seededRand(id), now: this.time });
    n.setWal(this.wal.get(id)!);
    this.nodes.set(id, n);
  }

  crash(id: number): void {
    this.nodes.set(id, null);
    this.queue = this.queue.filter((m) => m.to !== id);
  }

  setWal(id: number, w: WalPos): void {
    this.wal.set(id, w);
    this.nodes.get(id)?.setWal(w);
  }

  isolate(id: number): void {
    for (const other of this.nodes.keys()) {
      if (other !== id) {
        this.cuts.add(`${id}->${other}`);
        this.cuts.add(`${other}->${id}`);
      }
    }
  }

  /** Persist and queue every pending Ready (driver order), then deliver until quiet. */
  settle(): void {
    for (let round = 0; round < 200; round++) {
      let any = false;
      for (const [id, n] of this.nodes) {
        if (!n?.hasReady()) continue;
        any = true;
        const rd = n.ready();
        if (rd.hardState || rd.log) {
          const old = this.disk.get(id)!;
          this.disk.set(id, { hard: rd.hardState ?? old.hard, log: rd.log ?? old.log });
        }
        this.readies.get(id)!.push(rd);
        this.queue.push(...rd.messages);
      }
      if (this.net) {
        const net = this.net;
        for (const m of this.queue) {
          if (net.rand() < net.loss) continue;
          this.inFlight.push({ at: this.time + Math.floor(net.rand() * net.maxDelay), msg: m });
        }
        this.queue = [];
      }
      const due = this.inFlight.filter((f) => f.at <= this.time).map((f) => f.msg);
      this.inFlight = this.inFlight.filter((f) => f.at > this.time);
      if (!any && this.queue.length === 0 && due.length === 0) return;
      const batch = [...this.queue, ...due];
      this.queue = [];
      for (const m of batch) {
        if (this.cuts.has(`${m.from}->${m.to}`)) continue;
        this.nodes.get(m.to)?.step(m, this.time);
      }
    }
    throw new Error('cluster did not settle');
  }

  /** Advance time in steps, ticking every running node and settling after each step. */
  run(ms: number, step = 10): void {
    const end = this.time + ms;
    while (this.time < end) {
      this.time = Math.min(end, this.time + step);
      for (const n of this.nodes.values()) n?.tick(this.time);
      this.settle();
    }
  }

  leaders(): number[] {
    return [...this.nodes].filter(([, n]) => n?.soft().role === 'leader').map(([id]) => id);
  }
}
