// Three raft nodes over real BCP transports on loopback: a leader is elected; when the leader's
// transport closes, the two others elect a new leader in a higher term.
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_PARAMS, RaftNode, type ClusterParams, type Message, type NodeInfo, type PersistentState, type SoftState } from '../../src/raft/index.js';
import type { Transport } from '../../src/controller/bcp/transport.js';
import { Fleet, waitFor } from './helpers.js';

const params: ClusterParams = { ...DEFAULT_PARAMS, heartbeatSendPeriod: 50, heartbeatMaxLost: 4, nquorum: 2, minnodes: 2 };

function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The smallest driver: tick every 10 ms, persist in memory, send through the transport, step what arrives. */
class Driver {
  readonly node: RaftNode;
  persisted: PersistentState;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    readonly id: number,
    readonly transport: Transport,
    state: PersistentState,
  ) {
    this.persisted = state;
    this.node = new RaftNode({ id, state, rand: seeded(id * 7919), now: performance.now() });
    transport.onMessage((from, kind, body) => {
      if (kind !== 'raft') return;
      const msg = body as Message;
      if (msg.from !== from) return;
      this.node.step(msg, performance.now());
      this.drain();
    });
  }

  start(): void {
    this.timer = setInterval(() => {
      this.node.tick(performance.now());
      this.drain();
    }, 10);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  soft(): SoftState {
    return this.node.soft();
  }

  private drain(): void {
    while (this.node.hasReady()) {
      const rd = this.node.ready();
      if (rd.hardState) this.persisted = { ...this.persisted, hard: rd.hardState };
      if (rd.log) this.persisted = { ...this.persisted, log: rd.log };
      for (const m of rd.messages) this.transport.send(m.to, 'raft', m);
    }
  }
}

const fleet = new Fleet();
const drivers: Driver[] = [];

afterEach(async () => {
  for (const d of drivers.splice(0)) d.stop();
  await fleet.closeAll();
});

/** The single leader every listed node agrees on, or null. */
function agreedLeader(ds: Driver[]): SoftState | null {
  const leaders = ds.filter((d) => d.soft().role === 'leader');
  if (leaders.length !== 1) return null;
  const leader = leaders[0];
  if (!leader) return null;
  const s = leader.soft();
  return ds.every((d) => d.soft().leaderId === leader.id && d.soft().term === s.term) ? s : null;
}

describe('raft over BCP on loopback', () => {
  it('elects a leader, and a new one in a higher term after the leader goes away', async () => {
    const started = await Promise.all([1, 2, 3].map((id) => fleet.start(id)));
    const nodes: NodeInfo[] = started.map((s) => ({
      id: s.addr.id,
      host: '127.0.0.1',
      port: 0,
      bihaPort: s.port,
      mode: 'regular',
      canBeLeader: true,
      canVote: true,
      priority: 0,
    }));
    const state: PersistentState = {
      hard: { term: 1, vote: 0, commit: 1 },
      log: { snapshot: { index: 1, term: 1, config: { nodes, params }, meta: {} }, entries: [] },
    };
    for (const s of started) {
      s.t.setPeers(nodes.map((n) => ({ id: n.id, host: n.host, port: n.bihaPort })));
      drivers.push(new Driver(s.addr.id, s.t, state));
    }
    for (const d of drivers) d.start();

    await waitFor(() => agreedLeader(drivers) !== null, 'a leader all three agree on', 20_000);
    const first = agreedLeader(drivers);
    expect(first).not.toBeNull();
    const oldLeaderId = first?.leaderId ?? 0;
    const oldTerm = first?.term ?? 0;
    expect(oldTerm).toBeGreaterThan(1);
    const oldLeader = drivers.find((d) => d.id === oldLeaderId);
    expect(oldLeader).toBeDefined();
    await oldLeader?.transport.close();

    const rest = drivers.filter((d) => d.id !== oldLeaderId);
    await waitFor(() => {
      const s = agreedLeader(rest);
      return s !== null && s.term > oldTerm;
    }, 'the two survivors to elect a new leader', 20_000);
    const second = agreedLeader(rest);
    expect(second?.leaderId).not.toBe(oldLeaderId);
    expect(second?.term).toBeGreaterThan(oldTerm);
    // Their persisted hard state carries the new term.
    for (const d of rest) expect(d.persisted.hard.term).toBe(second?.term);
  });
});
