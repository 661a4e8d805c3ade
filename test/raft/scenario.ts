// A small interaction-script runner for the raft core, in the style of etcd's testdata files.
// A script is one command per line; the runner echoes each command (prefixed by "> ") followed by
// what it produced, and the caller compares the whole text with a golden file.
//
// Time is one global clock (ms). Messages wait in a queue until delivered; `process-ready`
// persists each node's Ready (the simulated disk) and queues its messages, so a `crash` between a
// step and process-ready loses exactly what a real crash before persisting would lose.
//
// Commands:
//   init <n> [nquorum=] [minnodes=] [hb=] [lost=] [referee=<ids>] [nolead=<ids>] [novote=<ids>]
//        [prio=<id>:<p>,...] [service=true]   n members, clock starts at T (nobody sticky)
//   joiner <id>                       a node prepared by `bihactl add` (not a member yet)
//   tick <ids|all> [+ms]              advance the clock by ms, then tick the nodes once
//   campaign <id>                     start a (pre)campaign now
//   process-ready [ids]               persist + print each Ready, queue its messages
//   deliver [filter]                  step queued messages (filter: a->b, *->b, a->*) into nodes
//   drop [filter]                     discard queued messages
//   stabilize [ids]                   process-ready and deliver until quiet
//   run <ms> [step=<ms>]              tick all nodes every step, deliver at once; prints state changes
//   propose <id> add_node <nid> [referee] | remove_node <nid> | set_params k=v.. | set_meta k v
//   transfer <id> <target>            leadership transfer
//   fenced <id> on|off                the controller reports local PostgreSQL fenced
//   set-wal <id> <tli> <X/Y>          local WAL position
//   node-error <id> on|off
//   may-lead <id> on|off [reason]     setMayLead (off: the controller's watchdog is dead)
//   crash <id> / restart <id>         lose everything not persisted / restart from the disk
//   isolate <id> | cut <a> <b> | cut <a>-><b> | heal
//   status [ids]                      print soft state, hard state and config
//   check <id> k=v ...                assert role/state/term/vote/commit/leader/writable/transfer/members/meta.K
//   mark                              forget recorded state changes
//   assert-before <id>:<STATE> <id>:<STATE>   first occurrence of the first strictly earlier
//   assert-never <id>:<STATE>         no such state change since mark
import {
  RaftNode,
  electionTimeoutMs,
  joiningState,
  DEFAULT_PARAMS,
} from '../../src/raft/index.js';
import type {
  ClusterParams,
  ConfigChange,
  Entry,
  Message,
  NodeInfo,
  PersistentLog,
  PersistentState,
  Ready,
  SoftState,
  WalPos,
} from '../../src/raft/index.js';

export class ScenarioError extends Error {
  override readonly name = 'ScenarioError';
  readonly code = 'scenario_failed';
  /** The output produced up to the failing line. */
  output = '';
}

/** Deterministic PRNG (mulberry32). */
export function seededRand(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function fmtLsn(lsn: number): string {
  return `${Math.floor(lsn / 2 ** 32).toString(16).toUpperCase()}/${(lsn % 2 ** 32).toString(16).toUpperCase()}`;
}

export function parseLsn(s: string): number {
  const m = /^([0-9a-fA-F]+)\/([0-9a-fA-F]+)$/.exec(s);
  if (!m || m[1] === undefined || m[2] === undefined) throw new ScenarioError(`bad LSN "${s}" (expected X/Y in hex)`);
  return parseInt(m[1], 16) * 2 ** 32 + parseInt(m[2], 16);
}

const fmtWal = (w: WalPos): string => `${w.tli}:${fmtLsn(w.lsn)}`;

function fmtEntry(e: Entry): string {
  const c = e.change;
  let what = 'noop';
  if (c) {
    switch (c.type) {
      case 'add_node': what = `add_node(${c.node.id})`; break;
      case 'remove_node': what = `remove_node(${c.id})`; break;
      case 'set_params': what = `set_params(${Object.entries(c.params).map(([k, v]) => `${k}=${String(v)}`).join(',')})`; break;
      case 'set_node': what = `set_node(${c.id})`; break;
      case 'give_vote': what = `give_vote(${c.id})`; break;
      case 'set_meta': what = `set_meta(${c.key})`; break;
    }
  }
  return `${e.term}/${e.index} ${what}`;
}

const fmtEntries = (es: readonly Entry[]): string => `[${es.map(fmtEntry).join(', ')}]`;
const fmtLog = (l: PersistentLog): string => `snap=${l.snapshot.term}/${l.snapshot.index} entries=${fmtEntries(l.entries)}`;

function fmtSoft(s: SoftState): string {
  return `role=${s.role} state=${s.state} term=${s.term} leader=${s.leaderId} writable=${s.writable} transfer=${s.transferTarget}`;
}

export function fmtMsg(m: Message): string {
  const head = `${m.from}->${m.to} ${m.type} term=${m.term}`;
  switch (m.type) {
    case 'app':
      return `${head} prev=${m.prevTerm}/${m.prevIndex} entries=${fmtEntries(m.entries)} commit=${m.commit} seq=${m.seq}${m.snapshot ? ` snapshot=${m.snapshot.term}/${m.snapshot.index}` : ''}`;
    case 'app_resp':
      return `${head} ${m.reject ? 'reject' : 'ok'} match=${m.matchIndex} seq=${m.seq} wal=${fmtWal(m.wal)} state=${m.state}`;
    case 'prevote':
    case 'vote':
      return `${head} last=${m.lastTerm}/${m.lastIndex} wal=${fmtWal(m.wal)}${m.transfer ? ' transfer' : ''}`;
    case 'prevote_resp':
    case 'vote_resp':
      return `${head} ${m.reject ? `reject(${m.reason ?? '?'})` : 'granted'}${m.catchUp ? ` catchUp(${fmtLog(m.catchUp)})` : ''}`;
    case 'timeout_now':
      return head;
  }
}

interface Sim {
  id: number;
  node: RaftNode | null;
  disk: PersistentState;
  wal: WalPos;
  rand: () => number;
}

interface StateEvent {
  readonly time: number;
  readonly id: number;
  readonly state: string;
}

function nodeInfo(id: number, opts: { referee: Set<number>; nolead: Set<number>; novote: Set<number>; prio: Map<number, number> }): NodeInfo {
  const referee = opts.referee.has(id);
  return {
    id, host: `node${id}`, port: referee ? 0 : 5432, bihaPort: 5433, mode: referee ? 'referee' : 'regular',
    canBeLeader: !referee && !opts.nolead.has(id), canVote: !opts.novote.has(id), priority: opts.prio.get(id) ?? 0,
  };
}

const ids = (s: string): number[] => s.split(',').filter((x) => x !== '').map(Number);

export class Scenario {
  time = 0;
  private sims = new Map<number, Sim>();
  private queue: Message[] = [];
  private cuts = new Set<string>();
  private events: StateEvent[] = [];
  private out: string[] = [];

  private fail(msg: string): never {
    throw new ScenarioError(msg);
  }

  private sim(id: number): Sim {
    const s = this.sims.get(id);
    if (!s) this.fail(`no node ${id}`);
    return s;
  }

  private live(id: number): RaftNode {
    const n = this.sim(id).node;
    if (!n) this.fail(`node ${id} is crashed`);
    return n;
  }

  private select(arg: string | undefined): number[] {
    if (arg === undefined || arg === 'all') return [...this.sims.keys()].sort((a, b) => a - b);
    return ids(arg);
  }

  private matches(m: Message, filter: string | undefined): boolean {
    if (filter === undefined) return true;
    const [a, b] = filter.split('->');
    return (a === '*' || Number(a) === m.from) && (b === '*' || Number(b) === m.to);
  }

  private makeNode(s: Sim): RaftNode {
    const node = new RaftNode({ id: s.id, state: s.disk, rand: s.rand, now: this.time });
    node.setWal(s.wal);
    return node;
  }

  /** Persist and record one Ready; returns the printable lines. */
  private handleReady(s: Sim, rd: Ready, verbose: boolean): string[] {
    const lines: string[] = [];
    const p = `${s.id}:`;
    if (rd.hardState || rd.log) {
      s.disk = { hard: rd.hardState ?? s.disk.hard, log: rd.log ?? s.disk.log };
    }
    if (rd.hardState) lines.push(`${p} hard term=${rd.hardState.term} vote=${rd.hardState.vote} commit=${rd.hardState.commit}`);
    if (rd.log && verbose) lines.push(`${p} log ${fmtLog(rd.log)}`);
    if (rd.fenceWal) lines.push(`${p} fence-wal term=${rd.fenceWal.term}`);
    for (const m of rd.messages) {
      // Quiet mode (run) still shows the messages that decide an election's course.
      const notable = m.type === 'timeout_now' || ((m.type === 'prevote_resp' || m.type === 'vote_resp') && m.catchUp !== undefined);
      if (verbose || notable) lines.push(`  ${fmtMsg(m)}`);
    }
    if (rd.committed.length > 0) lines.push(`${p} committed ${fmtEntries(rd.committed)}`);
    if (rd.config) {
      const c = rd.config;
      lines.push(`${p} config members=${c.nodes.map((n) => n.id).join(',')} nquorum=${c.params.nquorum} minnodes=${c.params.minnodes}`);
    }
    if (rd.soft) {
      lines.push(`${p} soft ${fmtSoft(rd.soft)}`);
      this.events.push({ time: this.time, id: s.id, state: rd.soft.state });
    }
    this.queue.push(...rd.messages);
    return lines;
  }

  private processReady(which: number[], verbose: boolean, prefix = ''): boolean {
    let any = false;
    for (const id of which) {
      const s = this.sim(id);
      if (!s.node?.hasReady()) continue;
      any = true;
      for (const l of this.handleReady(s, s.node.ready(), verbose)) this.out.push(prefix + l);
    }
    return any;
  }

  private deliver(filter: string | undefined, verbose: boolean): number {
    const now = this.queue.filter((m) => this.matches(m, filter));
    this.queue = this.queue.filter((m) => !this.matches(m, filter));
    let dropped = 0;
    for (const m of now) {
      const to = this.sims.get(m.to);
      if (!to?.node || this.cuts.has(`${m.from}->${m.to}`)) {
        dropped++;
        continue;
      }
      to.node.step(m, this.time);
    }
    if (dropped > 0 && verbose) this.out.push(`dropped ${dropped} message(s)`);
    return now.length;
  }

  private stabilize(which: number[], verbose: boolean, prefix = ''): void {
    for (let i = 0; i < 200; i++) {
      const readied = this.processReady(which, verbose, prefix);
      if (this.queue.length === 0 && !readied) return;
      this.deliver(undefined, verbose);
    }
    this.fail('stabilize did not settle within 200 rounds');
  }

  run(script: string): string {
    const lines = script.split('\n');
    for (let i = 0; i < lines.length; i++) {
      const line = (lines[i] ?? '').trim();
      if (line === '') {
        this.out.push('');
        continue;
      }
      if (line.startsWith('#')) {
        this.out.push(line);
        continue;
      }
      this.out.push(`> ${line}`);
      try {
        this.exec(line.split(/\s+/));
      } catch (err) {
        const e = new ScenarioError(`line ${i + 1} (${line}): ${err instanceof Error ? err.message : String(err)}`, { cause: err });
        e.output = this.out.join('\n');
        throw e;
      }
    }
    return this.out.join('\n').replace(/\n{3,}/g, '\n\n').trimEnd() + '\n';
  }

  private exec(words: string[]): void {
    const [cmd, ...args] = words;
    const kv = new Map(args.filter((a) => a.includes('=')).map((a) => a.split('=', 2) as [string, string]));
    switch (cmd) {
      case 'init': return this.init(Number(args[0]), kv);
      case 'joiner': {
        const id = Number(args[0]);
        const s: Sim = { id, node: null, disk: joiningState(), wal: { tli: 1, lsn: 0 }, rand: seededRand(id * 7919) };
        this.sims.set(id, s);
        s.node = this.makeNode(s);
        return;
      }
      case 'tick': {
        const plus = args[1]?.startsWith('+') ? Number(args[1].slice(1)) : 0;
        this.time += plus;
        for (const id of this.select(args[0])) this.sims.get(id)?.node?.tick(this.time);
        this.out.push(`time=${this.time}`);
        return;
      }
      case 'campaign': return this.live(Number(args[0])).campaign(this.time);
      case 'process-ready': {
        this.processReady(this.select(args[0]), true);
        return;
      }
      case 'deliver': {
        this.deliver(args[0], true);
        return;
      }
      case 'drop': {
        const gone = this.queue.filter((m) => this.matches(m, args[0]));
        this.queue = this.queue.filter((m) => !this.matches(m, args[0]));
        for (const m of gone) this.out.push(`dropped ${fmtMsg(m)}`);
        return;
      }
      case 'stabilize': return this.stabilize(this.select(args[0]), true);
      case 'run': return this.runFor(Number(args[0]), Number(kv.get('step') ?? 10));
      case 'propose': return this.propose(Number(args[0]), args.slice(1));
      case 'transfer': {
        const r = this.live(Number(args[0])).transferLeadership(Number(args[1]), this.time);
        this.out.push(r.ok ? `ok term=${r.term}` : `refused ${r.code}: ${r.message}`);
        return;
      }
      case 'fenced': return this.live(Number(args[0])).setLocalFenced(args[1] === 'on');
      case 'node-error': return this.live(Number(args[0])).setNodeError(args[1] === 'on');
      case 'may-lead': {
        const reason = args.slice(2).join(' ');
        return this.live(Number(args[0])).setMayLead(args[1] === 'on', reason === '' ? undefined : reason);
      }
      case 'set-wal': {
        const s = this.sim(Number(args[0]));
        s.wal = { tli: Number(args[1]), lsn: parseLsn(args[2] ?? '') };
        s.node?.setWal(s.wal);
        return;
      }
      case 'crash': {
        const s = this.sim(Number(args[0]));
        s.node = null;
        this.queue = this.queue.filter((m) => m.to !== s.id);
        return;
      }
      case 'restart': {
        const s = this.sim(Number(args[0]));
        if (s.node) this.fail(`node ${s.id} is running`);
        s.node = this.makeNode(s);
        return;
      }
      case 'isolate': {
        const id = Number(args[0]);
        for (const other of this.sims.keys()) {
          if (other === id) continue;
          this.cuts.add(`${id}->${other}`);
          this.cuts.add(`${other}->${id}`);
        }
        return;
      }
      case 'cut': {
        if (args[0]?.includes('->')) {
          this.cuts.add(args[0]);
        } else {
          this.cuts.add(`${args[0]}->${args[1]}`);
          this.cuts.add(`${args[1]}->${args[0]}`);
        }
        return;
      }
      case 'heal': {
        this.cuts.clear();
        return;
      }
      case 'status': {
        for (const id of this.select(args[0])) this.out.push(this.status(id));
        return;
      }
      case 'check': return this.check(Number(args[0]), kv);
      case 'mark': {
        this.events = [];
        return;
      }
      case 'assert-before': {
        const [a, b] = [this.firstEvent(args[0]), this.firstEvent(args[1])];
        if (a === undefined) this.fail(`${args[0]} never happened`);
        if (b === undefined) this.fail(`${args[1]} never happened`);
        if (!(a.time < b.time)) this.fail(`${args[0]} at ${a.time} is not before ${args[1]} at ${b.time}`);
        this.out.push(`ok: ${args[0]} at ${a.time} < ${args[1]} at ${b.time}`);
        return;
      }
      case 'assert-never': {
        const e = this.firstEvent(args[0]);
        if (e !== undefined) this.fail(`${args[0]} happened at ${e.time}`);
        this.out.push(`ok: no ${args[0]}`);
        return;
      }
      default:
        this.fail(`unknown command "${cmd ?? ''}"`);
    }
  }

  private firstEvent(spec: string | undefined): StateEvent | undefined {
    const [id, state] = (spec ?? '').split(':');
    return this.events.find((e) => e.id === Number(id) && e.state === state);
  }

  private init(n: number, kv: Map<string, string>): void {
    const params: ClusterParams = {
      ...DEFAULT_PARAMS,
      nquorum: Number(kv.get('nquorum') ?? Math.floor(n / 2) + 1),
      minnodes: Number(kv.get('minnodes') ?? Math.floor(n / 2) + 1),
      heartbeatSendPeriod: Number(kv.get('hb') ?? 1000),
      heartbeatMaxLost: Number(kv.get('lost') ?? 10),
      serviceMode: kv.get('service') === 'true',
    };
    const prio = new Map<number, number>();
    for (const p of (kv.get('prio') ?? '').split(',').filter((x) => x)) {
      const [id, v] = p.split(':');
      prio.set(Number(id), Number(v));
    }
    const opts = { referee: new Set(ids(kv.get('referee') ?? '')), nolead: new Set(ids(kv.get('nolead') ?? '')), novote: new Set(ids(kv.get('novote') ?? '')), prio };
    const nodes: NodeInfo[] = [];
    for (let id = 1; id <= n; id++) nodes.push(nodeInfo(id, opts));
    const disk: PersistentState = {
      hard: { term: 1, vote: 0, commit: 1 },
      log: { snapshot: { index: 1, term: 1, config: { nodes, params }, meta: {} }, entries: [] },
    };
    for (const info of nodes) {
      const s: Sim = { id: info.id, node: null, disk, wal: { tli: 1, lsn: 0 }, rand: seededRand(info.id * 7919) };
      this.sims.set(info.id, s);
      s.node = this.makeNode(s);
    }
    // Start one election timeout after creation so that no node is still in its restart quiet time.
    this.time = electionTimeoutMs(params);
    this.out.push(`time=${this.time} T=${electionTimeoutMs(params)}`);
  }

  private runFor(ms: number, step: number): void {
    const end = this.time + ms;
    while (this.time < end) {
      this.time = Math.min(end, this.time + step);
      for (const s of this.sims.values()) s.node?.tick(this.time);
      this.stabilize(this.select('all'), false, `t=${this.time} `);
    }
  }

  private propose(id: number, args: string[]): void {
    const [kind, a1, a2] = args;
    let change: ConfigChange;
    switch (kind) {
      case 'add_node':
        change = { type: 'add_node', node: nodeInfo(Number(a1), { referee: new Set(a2 === 'referee' ? [Number(a1)] : []), nolead: new Set(), novote: new Set(), prio: new Map() }) };
        break;
      case 'remove_node':
        change = { type: 'remove_node', id: Number(a1) };
        break;
      case 'set_params': {
        const params: Record<string, number | boolean> = {};
        for (const p of args.slice(1)) {
          const [k, v] = p.split('=');
          if (k !== undefined) params[k] = v === 'true' ? true : v === 'false' ? false : Number(v);
        }
        change = { type: 'set_params', params };
        break;
      }
      case 'set_meta':
        change = { type: 'set_meta', key: a1 ?? '', value: a2 ?? '' };
        break;
      default:
        this.fail(`unknown change "${kind ?? ''}"`);
    }
    const r = this.live(id).propose(change, this.time);
    this.out.push(r.ok ? `ok index=${r.index} term=${r.term}` : `refused ${r.code}: ${r.message}`);
  }

  private status(id: number): string {
    const s = this.sim(id);
    if (!s.node) return `${id}: crashed (disk term=${s.disk.hard.term} vote=${s.disk.hard.vote} commit=${s.disk.hard.commit})`;
    const p = s.node.persistent();
    const c = s.node.config();
    return `${id}: ${fmtSoft(s.node.soft())} vote=${p.hard.vote} commit=${p.hard.commit} log=(${fmtLog(p.log)}) members=${c.nodes.map((n) => n.id).join(',')}`;
  }

  private check(id: number, kv: Map<string, string>): void {
    const node = this.live(id);
    const soft = node.soft();
    const hard = node.persistent().hard;
    const actual: Record<string, string> = {
      role: soft.role, state: soft.state, term: String(soft.term), leader: String(soft.leaderId),
      writable: String(soft.writable), transfer: String(soft.transferTarget), vote: String(hard.vote),
      commit: String(hard.commit), members: node.config().nodes.map((n) => n.id).join(','),
      nquorum: String(node.config().params.nquorum), minnodes: String(node.config().params.minnodes),
    };
    for (const [k, v] of Object.entries(node.meta())) actual[`meta.${k}`] = v;
    const bad: string[] = [];
    for (const [k, want] of kv) {
      if (actual[k] !== want) bad.push(`${k}=${actual[k] ?? '(none)'} (want ${want})`);
    }
    if (bad.length > 0) this.fail(`node ${id}: ${bad.join(', ')}`);
    this.out.push(`ok`);
  }

}

export function runScenario(script: string): string {
  return new Scenario().run(script);
}
