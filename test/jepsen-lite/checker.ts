// Checkers over a finished history. Pure functions: unit-tested with hand-made histories
// (checker.test.ts) and run on every jepsen-lite run.
import type { HardStateRecord, NemesisRecord, OpRecord } from './history.js';
import type { StateEvent } from './logs.js';

export interface SetResult {
  readonly ok: number;
  readonly fail: number;
  readonly info: number;
  /** Acknowledged (ok) writes missing from the final read. */
  readonly lost: OpRecord[];
  /** Writes reported as definitely failed that are present anyway (a client classification error). */
  readonly failedButPresent: OpRecord[];
  readonly infoPresent: number;
  readonly infoAbsent: number;
  /** Values in the final read that no operation wrote. */
  readonly unexpected: string[];
}

export function checkSet(ops: readonly OpRecord[], finalRead: ReadonlySet<string>): SetResult {
  const lost: OpRecord[] = [];
  const failedButPresent: OpRecord[] = [];
  let infoPresent = 0;
  let infoAbsent = 0;
  let ok = 0;
  let fail = 0;
  let info = 0;
  const attempted = new Set<string>();
  for (const op of ops) {
    attempted.add(op.value);
    const present = finalRead.has(op.value);
    if (op.outcome === 'ok') {
      ok++;
      if (!present) lost.push(op);
    } else if (op.outcome === 'fail') {
      fail++;
      if (present) failedButPresent.push(op);
    } else {
      info++;
      if (present) infoPresent++;
      else infoAbsent++;
    }
  }
  const unexpected = [...finalRead].filter((v) => !attempted.has(v));
  return { ok, fail, info, lost, failedButPresent, infoPresent, infoAbsent, unexpected };
}

export interface SplitBrain {
  readonly kind: 'same-term' | 'stale-term' | 'overlap';
  readonly message: string;
  /** Witness operations: `later` was invoked after `earlier` was acknowledged (same-term: any two). */
  readonly earlier: OpRecord;
  readonly later: OpRecord;
}

interface Group {
  readonly node: number;
  readonly term: number | null;
  /** The op acknowledged first and the op invoked last: the node was writable in between. */
  firstAck: OpRecord;
  lastInvoke: OpRecord;
  count: number;
}

/**
 * Writable-leader probe. Acknowledged writes are grouped by (node, term). For two groups on
 * different nodes:
 *  - the same (known) term: two nodes acknowledged writes as leaders of one term;
 *  - group B acknowledged a write before group A's write was even sent, but A's term is not
 *    higher: a node kept acknowledging after a newer term had acknowledged elsewhere (stale-term);
 *  - a term unknown on either side: flagged only if the groups' writable windows overlap in real
 *    time (each acknowledged before the other's last write was sent).
 */
export function checkSplitBrain(ops: readonly OpRecord[]): SplitBrain[] {
  const groups = new Map<string, Group>();
  for (const op of ops) {
    if (op.outcome !== 'ok' || op.node === null) continue;
    const key = `${op.node}:${op.term ?? 'null'}`;
    const g = groups.get(key);
    if (!g) groups.set(key, { node: op.node, term: op.term, firstAck: op, lastInvoke: op, count: 1 });
    else {
      g.count++;
      if (op.complete < g.firstAck.complete) g.firstAck = op;
      if (op.invoke > g.lastInvoke.invoke) g.lastInvoke = op;
    }
  }
  const out: SplitBrain[] = [];
  const gs = [...groups.values()];
  for (let i = 0; i < gs.length; i++) {
    for (let j = 0; j < gs.length; j++) {
      if (i === j) continue;
      const a = gs[i]!;
      const b = gs[j]!;
      if (a.node === b.node) continue;
      const bBeforeA = b.firstAck.complete < a.lastInvoke.invoke;
      if (a.term !== null && b.term !== null) {
        if (a.term === b.term) {
          if (i < j)
            out.push({
              kind: 'same-term',
              message: `nodes ${a.node} and ${b.node} both acknowledged writes in term ${a.term}`,
              earlier: a.firstAck.complete <= b.firstAck.complete ? a.firstAck : b.firstAck,
              later: a.firstAck.complete <= b.firstAck.complete ? b.firstAck : a.firstAck,
            });
        } else if (bBeforeA && a.term < b.term) {
          out.push({
            kind: 'stale-term',
            message: `node ${a.node} acknowledged a write in term ${a.term} that was sent after node ${b.node} had acknowledged one in term ${b.term}`,
            earlier: b.firstAck,
            later: a.lastInvoke,
          });
        }
      } else if (i < j && bBeforeA && a.firstAck.complete < b.lastInvoke.invoke) {
        out.push({
          kind: 'overlap',
          message: `nodes ${a.node} (term ${a.term ?? '?'}) and ${b.node} (term ${b.term ?? '?'}) acknowledged writes in overlapping real time`,
          earlier: b.firstAck,
          later: a.lastInvoke,
        });
      }
    }
  }
  return out;
}

/**
 * Late acknowledgements (reported, not failed): a write acknowledged by a node in term t after
 * another node had already acknowledged one in a higher term, but sent before that — so a
 * linearization inside the old leader's term exists and checkSplitBrain does not flag it. It shows
 * a deposed leader still completing commits, e.g. after its whole host was frozen.
 */
export function lateAcks(ops: readonly OpRecord[]): Array<{ op: OpRecord; newer: OpRecord; afterMs: number }> {
  const acked = ops.filter((o) => o.outcome === 'ok' && o.node !== null && o.term !== null).sort((a, b) => a.complete - b.complete);
  const out: Array<{ op: OpRecord; newer: OpRecord; afterMs: number }> = [];
  // The first acknowledgement in each term, by time; for every op, the earliest one in a higher term.
  const firstByTerm = new Map<number, OpRecord>();
  for (const o of acked) if (!firstByTerm.has(o.term!)) firstByTerm.set(o.term!, o);
  for (const o of acked) {
    let newer: OpRecord | null = null;
    for (const [t, f] of firstByTerm) if (t > o.term! && f.node !== o.node && f.complete < o.complete && (!newer || f.complete < newer.complete)) newer = f;
    if (newer && o.invoke <= newer.complete) out.push({ op: o, newer, afterMs: o.complete - newer.complete });
  }
  return out;
}

export interface ConsensusResult {
  /** Terms in which more than one node was leader. */
  readonly twoLeaders: string[];
  /** Terms in which nodes named different leaders. */
  readonly disagreeingLeader: string[];
  /** A node whose term went down. */
  readonly termDecrease: string[];
  /**
   * A node that voted for two candidates in one term: from every persisted vote in its controller
   * log ("hard state persisted" lines); for a node whose log has no such line (a build that does
   * not log its votes), from the samples of pg_biha/biha.state.
   */
  readonly doubleVote: string[];
  readonly leaderTerms: number;
  /** Sampled hard states (pg_biha/biha.state, every 0.5 s, recorded when changed). */
  readonly voteSamples: number;
  /** Persisted hard states read from the controllers' logs (every change). */
  readonly voteLogLines: number;
  /**
   * Votes seen in a sample of pg_biha/biha.state but in no log line of a node that does log its
   * votes: either the log record is not complete, or the file held what this node's controller
   * never persisted (a peer's biha.state that pg_rewind copied over it, before it was put back).
   */
  readonly unloggedVotes: string[];
}

/** Consensus invariants from the controllers' "state" log lines and the sampled hard states. */
export function checkConsensus(statesByNode: ReadonlyMap<number, readonly StateEvent[]>, hard: readonly HardStateRecord[]): ConsensusResult {
  const leadersOf = new Map<number, Set<number>>();
  const namedOf = new Map<number, Set<number>>();
  const termDecrease: string[] = [];
  for (const [node, states] of statesByNode) {
    let prev: StateEvent | null = null;
    for (const s of states) {
      if (prev && s.term < prev.term)
        termDecrease.push(`node ${node}: term ${prev.term} at ${new Date(prev.at).toISOString()} then ${s.term} at ${new Date(s.at).toISOString()}`);
      prev = s;
      if (s.role === 'leader') {
        const set = leadersOf.get(s.term) ?? new Set<number>();
        set.add(node);
        leadersOf.set(s.term, set);
      }
      if (s.leader) {
        const set = namedOf.get(s.term) ?? new Set<number>();
        set.add(s.leader);
        namedOf.set(s.term, set);
      }
    }
  }
  const twoLeaders = [...leadersOf].filter(([, s]) => s.size > 1).map(([t, s]) => `term ${t}: leaders ${[...s].join(', ')}`);
  const disagreeingLeader = [...namedOf].filter(([, s]) => s.size > 1).map(([t, s]) => `term ${t}: nodes named leaders ${[...s].join(', ')}`);
  // Votes per (node, term): the log where the node logs its votes, else the samples.
  const votes = new Map<string, Map<number, HardStateRecord>>();
  const logged = new Set<string>();
  const logsVotes = new Set<number>();
  for (const h of hard) {
    if (h.src !== 'log') continue;
    logsVotes.add(h.node);
    logged.add(`${h.node}:${h.term}:${h.vote}`);
  }
  for (const h of [...hard].sort((a, b) => a.at - b.at)) {
    if ((h.src === 'log') !== logsVotes.has(h.node)) continue;
    if (!h.vote) continue;
    const k = `${h.node}:${h.term}`;
    const m = votes.get(k) ?? new Map<number, HardStateRecord>();
    if (!m.has(h.vote)) m.set(h.vote, h);
    votes.set(k, m);
  }
  const iso = (ms: number): string => new Date(ms).toISOString();
  const doubleVote = [...votes]
    .filter(([, m]) => m.size > 1)
    .map(([k, m]) => {
      const [node, term] = k.split(':');
      const how = [...m].map(([v, r]) => `${v} (${r.src ?? 'sample'} at ${iso(r.at)})`).join(' and ');
      return `node ${node} voted for ${how} in term ${term}`;
    });
  const unloggedVotes = hard
    .filter((h) => h.src !== 'log' && h.vote !== 0 && logsVotes.has(h.node) && !logged.has(`${h.node}:${h.term}:${h.vote}`))
    .map((h) => `node ${h.node}: term ${h.term} vote ${h.vote} sampled at ${iso(h.at)} is in no log line`);
  return {
    twoLeaders,
    disagreeingLeader,
    termDecrease,
    doubleVote,
    leaderTerms: leadersOf.size,
    voteSamples: hard.filter((h) => h.src !== 'log').length,
    voteLogLines: hard.filter((h) => h.src === 'log').length,
    unloggedVotes,
  };
}

export interface Window {
  readonly from: number;
  readonly to: number;
  readonly ms: number;
  /** Faults overlapping the window. */
  readonly faults: string[];
}

/** Stretches of at least `minMs` without any acknowledged write, between `start` and `end`. */
export function unavailability(ops: readonly OpRecord[], nemeses: readonly NemesisRecord[], start: number, end: number, minMs = 1000): Window[] {
  const acks = ops.filter((o) => o.outcome === 'ok').map((o) => o.complete).sort((a, b) => a - b);
  const out: Window[] = [];
  let prev = start;
  for (const t of [...acks, end]) {
    if (t - prev >= minMs) {
      const faults = nemeses.filter((n) => n.start < t && (n.end || end) > prev).map((n) => n.name);
      out.push({ from: prev, to: t, ms: t - prev, faults: [...new Set(faults)] });
    }
    prev = Math.max(prev, t);
  }
  return out;
}

/** Which faults were active (or had ended less than `afterMs` before) when each lost write was acknowledged. */
export function lostContext(lost: readonly OpRecord[], nemeses: readonly NemesisRecord[], afterMs = 2000): Map<string, number> {
  const out = new Map<string, number>();
  for (const op of lost) {
    const n = nemeses.filter((x) => x.start <= op.complete && (x.end || Infinity) + afterMs >= op.complete).map((x) => x.name);
    const key = n.length ? [...new Set(n)].join('+') : 'no fault active';
    out.set(key, (out.get(key) ?? 0) + 1);
  }
  return out;
}
