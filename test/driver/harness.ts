// A driver under test: the product's Driver and NC with a PostgreSQL port whose every call is
// recorded and whose answers the test sets, a manual clock, and the raft messages it sends.
import { Driver } from '../../src/controller/driver/driver.js';
import type { NodeErrorReport, PgPort, PgProbe, TimelineInfo, WalPosition, WatchdogPort } from '../../src/controller/driver/types.js';
import { DEFAULT_PARAMS } from '../../src/raft/index.js';
import type { ClusterParams, Message, NodeId, NodeInfo, PersistentState, WalPos } from '../../src/raft/index.js';

export const quiet = { info: (): void => undefined, warn: (): void => undefined, error: (): void => undefined };

export function node(id: number): NodeInfo {
  return { id, host: `h${id}`, port: 5432, bihaPort: 5433, mode: 'regular', canBeLeader: true, canVote: true, priority: 0 };
}

/** A committed 3-node configuration, this node a follower in `term` that voted for nobody. */
export function followerState(term: number, params: Partial<ClusterParams> = {}): PersistentState {
  const config = { nodes: [node(1), node(2), node(3)], params: { ...DEFAULT_PARAMS, nquorum: 2, minnodes: 2, heartbeatSendPeriod: 100, heartbeatMaxLost: 5, ...params } };
  return { hard: { term, vote: 0, commit: 1 }, log: { snapshot: { index: 1, term, config, meta: {} }, entries: [] } };
}

/** Manual time: timers fire when the test advances it. */
export class ManualClock {
  t = 1000;
  private timers: Array<{ at: number; fn: () => void; live: boolean }> = [];

  now = (): number => this.t;

  after = (ms: number, fn: () => void): (() => void) => {
    const x = { at: this.t + ms, fn, live: true };
    this.timers.push(x);
    return () => {
      x.live = false;
    };
  };

  /** Advance by `ms`, firing due timers in order, and let promises settle between them. */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      await settle();
      const due = this.timers.filter((x) => x.live && x.at <= end).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      this.t = Math.max(this.t, due.at);
      due.live = false;
      due.fn();
    }
    this.t = end;
    this.timers = this.timers.filter((x) => x.live);
    await settle();
  }
}

export async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
}

/** A PostgreSQL whose behaviour the test sets; every call is recorded in `calls`. */
export class FakePg implements PgPort {
  calls: string[] = [];
  role: PgProbe['role'] = 'STANDBY';
  /** A walreceiver runs; after detach() it stays for `receiverLingers` more probes. */
  receiving = false;
  receiverLingers = 0;
  wal: WalPos = { tli: 2, lsn: 100 };
  fenceFails = false;
  tli = 2;
  held: string | null = null;

  async probe(): Promise<PgProbe> {
    this.calls.push('probe');
    if (!this.receiving && this.receiverLingers > 0) this.receiverLingers--;
    return { role: this.role, receiving: this.receiving || this.receiverLingers > 0, wal: this.role === 'STOPPED' ? null : this.wal };
  }
  async startStandby(): Promise<void> {
    this.calls.push('startStandby');
    this.role = 'STANDBY';
  }
  async stop(): Promise<void> {
    this.calls.push('stop');
    this.role = 'STOPPED';
  }
  async fence(mode: 'immediate' | 'fast', stopped?: (end: WalPos | null) => void): Promise<void> {
    this.calls.push(`fence ${mode}`);
    if (this.fenceFails) throw new Error('pg_ctl stop failed');
    stopped?.(mode === 'fast' ? this.wal : null);
    this.role = 'STANDBY';
  }
  async detach(): Promise<void> {
    this.calls.push('detach');
    this.receiving = false;
  }
  async position(): Promise<WalPosition> {
    this.calls.push('position');
    return { tli: this.wal.tli, history: [], end: this.wal.lsn, replay: this.wal.lsn };
  }
  async follow(up: NodeInfo): Promise<void> {
    this.calls.push(`follow ${up.id}`);
    this.receiving = true;
  }
  async rewind(source: NodeInfo, stopped: () => void): Promise<void> {
    this.calls.push(`rewind ${source.id}`);
    stopped();
  }
  async ensureSlots(want: readonly string[], hold: readonly string[]): Promise<void> {
    this.calls.push(hold.length > 0 ? `slots ${want.join(',')} hold ${hold.join(',')}` : `slots ${want.join(',')}`);
  }
  async setSyncStandbyNames(value: string): Promise<void> {
    this.calls.push(`sync '${value}'`);
  }
  async prepareTimeline(tli: number): Promise<void> {
    this.calls.push(`prepare ${tli}`);
  }
  async promote(): Promise<number> {
    this.calls.push('promote');
    this.role = 'PRIMARY';
    this.tli++;
    this.wal = { tli: this.tli, lsn: this.wal.lsn + 1 };
    return this.tli;
  }
  hold(): string | null {
    return this.held;
  }
  async clearHold(): Promise<void> {
    this.held = null;
  }
}

export class FakeWatchdog implements WatchdogPort {
  calls: string[] = [];
  up = true;
  confirms = true;
  async arm(until: number): Promise<boolean> {
    this.calls.push(`arm ${until}`);
    return this.up && this.confirms;
  }
  renew(until: number): void {
    this.calls.push(`renew ${until}`);
  }
  disarm(): void {
    this.calls.push('disarm');
  }
  alive(): boolean {
    return this.up;
  }
}

export interface Rig {
  driver: Driver;
  pg: FakePg;
  wd: FakeWatchdog;
  clock: ManualClock;
  sent: Message[];
  persisted: PersistentState[];
  nodeError: NodeErrorReport | null;
}

export async function rig(
  id: number,
  state: PersistentState,
  opts: { peers?: (id: number) => TimelineInfo; persistMs?: number; pgReachable?: (nodes: readonly NodeInfo[]) => Promise<NodeId[]>; autorewind?: boolean } = {},
): Promise<Rig> {
  const pg = new FakePg();
  const wd = new FakeWatchdog();
  const clock = new ManualClock();
  const r: Rig = { driver: null as unknown as Driver, pg, wd, clock, sent: [], persisted: [], nodeError: null };
  r.driver = new Driver({
    id,
    hasData: true,
    state,
    rand: () => 0.5,
    io: {
      persist: async (s) => {
        // A slow disk: the poll (every 50 ms) wakes NC while a Ready is still being persisted.
        if (opts.persistMs) await new Promise<void>((res) => clock.after(opts.persistMs!, res));
        r.persisted.push(s);
        pg.calls.push(`persisted term ${s.hard.term} vote ${s.hard.vote}`);
      },
      send: (m) => r.sent.push(m),
    },
    pg,
    peers: { timeline: async (p) => opts.peers?.(p) ?? { tli: 2, history: [{ parentTli: 1, switchLsn: 10 }] } },
    watchdog: wd,
    sched: { now: clock.now, after: clock.after },
    log: quiet,
    ncLog: quiet,
    nodeError: () => r.nodeError,
    saveNodeError: async (e) => {
      r.nodeError = e;
    },
    autorewind: async () => opts.autorewind ?? false,
    stopping: () => false,
    ...(opts.pgReachable ? { pgReachable: opts.pgReachable } : {}),
  });
  await r.driver.boot(10_000);
  return r;
}

/** A vote request from `from` in `term` claiming `wal` (a transfer, so no leader stickiness applies). */
export function voteRequest(from: number, to: number, term: number, wal: WalPos): Message {
  return { type: 'vote', from, to, term, lastIndex: 1, lastTerm: term - 1, wal, priority: 0, transfer: true };
}

export function votesGranted(sent: readonly Message[], term: number): Message[] {
  return sent.filter((m) => m.type === 'vote_resp' && !m.reject && m.term === term);
}
