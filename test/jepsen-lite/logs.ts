// Reads the controllers' pino JSON logs (pg_biha/log/controller.log). Lines whose msg starts with
// "state " carry the raft role, term and leader of that node at that time; a few other lines mark
// starts, stops, fences, rewinds and NODE_ERROR. Lines "hard state persisted: term T, vote V" are
// written by the controller for every persisted raft hard state, before any vote is sent: the
// complete record of the votes a node cast (checkConsensus).

export interface StateEvent {
  readonly at: number;
  readonly node: number;
  readonly role: string;
  readonly term: number;
  readonly leader: number;
  readonly state: string;
}

/** One persisted raft hard state (term, vote) of a node, from its log. */
export interface VoteEvent {
  readonly at: number;
  readonly node: number;
  readonly term: number;
  readonly vote: number;
}

export interface LogEvent {
  readonly at: number;
  readonly node: number;
  readonly kind: 'started' | 'stopping' | 'fence' | 'node_error' | 'vote_fence' | 'promote' | 'pg_restart' | 'rewind';
  readonly msg: string;
}

export interface ParsedLog {
  readonly states: StateEvent[];
  readonly votes: VoteEvent[];
  readonly events: LogEvent[];
  /** Lines that were not JSON (e.g. a stack trace on stderr). */
  readonly garbage: number;
  /**
   * Lines written by another node's controller (their "node" field differs): a file copied from a
   * peer, e.g. by pg_rewind or pg_basebackup. They are left out of states and events.
   */
  readonly foreign: Map<number, number>;
}

function timeOf(v: unknown): number | null {
  if (typeof v === 'number') return v;
  if (typeof v === 'string') {
    const t = Date.parse(v);
    return Number.isNaN(t) ? null : t;
  }
  return null;
}

/** Parses one node's controller.log text. `node` is used when a line has no node field. */
export function parseControllerLog(text: string, node: number): ParsedLog {
  const states: StateEvent[] = [];
  const votes: VoteEvent[] = [];
  const events: LogEvent[] = [];
  let garbage = 0;
  const foreign = new Map<number, number>();
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    let j: Record<string, unknown>;
    try {
      j = JSON.parse(line) as Record<string, unknown>;
    } catch {
      garbage++;
      continue;
    }
    const at = timeOf(j['time']);
    if (at === null) continue;
    const msg = typeof j['msg'] === 'string' ? j['msg'] : '';
    const n = typeof j['node'] === 'number' ? j['node'] : node;
    if (n !== node) {
      foreign.set(n, (foreign.get(n) ?? 0) + 1);
      continue;
    }
    if (msg.startsWith('state ') && typeof j['term'] === 'number') {
      states.push({
        at, node: n,
        role: String(j['role'] ?? ''),
        term: j['term'],
        leader: typeof j['leader'] === 'number' ? j['leader'] : 0,
        state: String(j['state'] ?? msg.slice(6).split(',')[0]),
      });
      continue;
    }
    if (msg.startsWith(VOTE_MSG) && typeof j['term'] === 'number' && typeof j['vote'] === 'number') {
      votes.push({ at, node: n, term: j['term'], vote: j['vote'] });
      continue;
    }
    if (msg === 'controller started') events.push({ at, node: n, kind: 'started', msg });
    else if (msg === 'controller stopping') events.push({ at, node: n, kind: 'stopping', msg });
    else if (/lease expired|fenced/i.test(msg)) events.push({ at, node: n, kind: 'fence', msg });
    else if (msg.startsWith('NODE_ERROR')) events.push({ at, node: n, kind: 'node_error', msg });
    else if (msg.startsWith('vote in a newer term')) events.push({ at, node: n, kind: 'vote_fence', msg });
    else if (/^done: promote/.test(msg)) events.push({ at, node: n, kind: 'promote', msg });
    else if (/PostgreSQL is not running/.test(msg)) events.push({ at, node: n, kind: 'pg_restart', msg });
    else if (/^pg_rewind|^rewound/.test(msg)) events.push({ at, node: n, kind: 'rewind', msg });
  }
  return { states, votes, events, garbage, foreign };
}

/** The message of the controller's line for a persisted hard state (src/controller/daemon.ts). */
export const VOTE_MSG = 'hard state persisted';

/** The vote of one log line of node `node`, or null (another line, or another node's). */
export function parseVoteLine(line: string, node: number): VoteEvent | null {
  if (!line.includes(VOTE_MSG)) return null;
  const p = parseControllerLog(line, node);
  return p.votes[0] ?? null;
}
