// The safety and liveness properties every run is checked against. The checker is fed events as
// they happen (a hard state persisted, a vote sent, a node became leader, a synchronous write
// acknowledged, a rewind dropped records, the databases accepting writes at this instant) and
// records a violation the moment one is broken. It holds no reference to the simulation, so tests can feed it
// hand-made bad histories.
import type { HardState, NodeId, WalPos } from '../raft/types.js';

export const INVARIANTS = {
  0: 'the raft core and the driver never throw',
  1: 'at most one leader per term',
  2: 'no node votes twice in a term',
  3: 'no elected leader has less WAL than a node that voted for it had when its vote left',
  4: 'no acknowledged synchronous write is missing from a later leader',
  5: 'never two databases accepting writes at one instant',
  6: 'a connected majority elects a leader in bounded time and the cluster converges',
  7: 'a standby streams (or keeps after pg_rewind) only WAL that continues its own',
} as const;
export type InvariantId = keyof typeof INVARIANTS;

export interface Violation {
  readonly invariant: InvariantId;
  readonly step: number;
  /** Simulated time (ms). */
  readonly time: number;
  readonly description: string;
}

/** A synchronous write the client saw acknowledged. */
export interface AckedWrite {
  readonly id: number;
  /** Position (0-based record index) in the WAL of the primary that acknowledged it. */
  readonly pos: number;
  /** Term of the leadership under which that primary accepted it. */
  readonly term: number;
  readonly by: NodeId;
}

/** A node currently acting as leader, as the write check sees it. */
export interface LeaderWal {
  readonly id: NodeId;
  readonly term: number;
  has(pos: number, writeId: number): boolean;
}

/** Timeline first, then LSN: the order in which WAL positions are compared for elections. */
export function walBefore(a: WalPos, b: WalPos): boolean {
  return a.tli < b.tli || (a.tli === b.tli && a.lsn < b.lsn);
}

function fmtWal(w: WalPos): string {
  return `${w.tli}/${w.lsn}`;
}

interface CastVote {
  readonly voter: NodeId;
  readonly candidate: NodeId;
  readonly wal: WalPos;
}

function voteKey(term: number, voter: NodeId): string {
  return `${term}:${voter}`;
}

export class InvariantChecker {
  readonly violations: Violation[] = [];
  private step = 0;
  private time = 0;
  private readonly leaderOfTerm = new Map<number, NodeId>();
  private readonly walAtElection = new Map<number, WalPos>();
  private readonly votes = new Map<NodeId, Map<number, NodeId>>();
  private readonly lastTerm = new Map<NodeId, number>();
  private readonly votesInTerm = new Map<number, CastVote[]>();
  private readonly votesSent = new Set<string>();
  private readonly acked: AckedWrite[] = [];
  private readonly ackedIds = new Set<number>();

  /** Position of the simulation, stamped on violations. */
  at(step: number, time: number): void {
    this.step = step;
    this.time = time;
  }

  get ok(): boolean {
    return this.violations.length === 0;
  }

  get ackedSyncWrites(): readonly AckedWrite[] {
    return this.acked;
  }

  fail(invariant: InvariantId, description: string): void {
    this.violations.push({ invariant, step: this.step, time: this.time, description });
  }

  /**
   * Invariant 2: `node` persisted `hard`. Votes are tracked from what was persisted, so a restart
   * cannot hide a second vote.
   */
  persisted(node: NodeId, hard: HardState): void {
    const prevTerm = this.lastTerm.get(node) ?? 0;
    if (hard.term < prevTerm) {
      this.fail(2, `node ${node} persisted term ${hard.term} after term ${prevTerm}`);
    }
    this.lastTerm.set(node, Math.max(prevTerm, hard.term));
    if (hard.vote === 0) return;
    let mine = this.votes.get(node);
    if (!mine) {
      mine = new Map();
      this.votes.set(node, mine);
    }
    const before = mine.get(hard.term);
    if (before === hard.vote) return;
    if (before !== undefined) {
      this.fail(2, `node ${node} voted for ${before} and then for ${hard.vote} in term ${hard.term}`);
      return;
    }
    mine.set(hard.term, hard.vote);
  }

  /**
   * Invariant 3 (and 2): `voter` sent a vote for `candidate` in `term` when its WAL really ended at
   * `wal` (not the position its raft core last heard of). `judged` is false for votes the election
   * restriction does not judge on the voter's own WAL (a referee, a node in NODE_ERROR).
   */
  voteSent(voter: NodeId, term: number, candidate: NodeId, wal: WalPos, judged: boolean): void {
    // Persisting a later term covers a vote of an earlier one: the node can no longer vote in it.
    const persisted = this.votes.get(voter)?.get(term);
    if (persisted !== candidate && (this.lastTerm.get(voter) ?? 0) <= term) {
      this.fail(2, `node ${voter} sent a vote for ${candidate} in term ${term} but persisted ${persisted === undefined ? 'no vote' : `a vote for ${persisted}`}`);
      return;
    }
    const key = voteKey(term, voter);
    if (this.votesSent.has(key) || !judged) return;
    this.votesSent.add(key);
    const vote: CastVote = { voter, candidate, wal };
    let list = this.votesInTerm.get(term);
    if (!list) {
      list = [];
      this.votesInTerm.set(term, list);
    }
    list.push(vote);
    // A vote sent after the candidate already won still has to be covered by its WAL.
    if (this.leaderOfTerm.get(term) === candidate) this.checkVote(term, vote, this.walAtElection.get(term) as WalPos);
  }

  /**
   * Invariants 1, 3 and 4: `node` became leader of `term` with `wal` (before it promoted).
   * `has` tells whether its WAL holds a write at a position.
   */
  becameLeader(node: NodeId, term: number, wal: WalPos, has: (pos: number, writeId: number) => boolean): void {
    const other = this.leaderOfTerm.get(term);
    if (other !== undefined && other !== node) {
      this.fail(1, `nodes ${other} and ${node} were both leader in term ${term}`);
      return;
    }
    if (other === undefined) {
      this.leaderOfTerm.set(term, node);
      this.walAtElection.set(term, wal);
    }
    for (const v of this.votesInTerm.get(term) ?? []) {
      if (v.candidate === node) this.checkVote(term, v, wal);
    }
    for (const w of this.acked) {
      if (w.term < term && !has(w.pos, w.id)) {
        this.fail(4, `leader ${node} of term ${term} lacks write ${w.id} (position ${w.pos}) acknowledged by node ${w.by} in term ${w.term}`);
        return;
      }
    }
  }

  private checkVote(term: number, v: CastVote, leaderWal: WalPos): void {
    if (walBefore(leaderWal, v.wal)) {
      this.fail(
        3,
        `leader ${v.candidate} of term ${term} had WAL ${fmtWal(leaderWal)} but voter ${v.voter} had ${fmtWal(v.wal)} when it voted`,
      );
    }
  }

  /**
   * Invariant 4: a synchronous write was acknowledged to the client. Every leader of a later term
   * already in office must hold it (later leaders are checked when elected).
   */
  ackedSync(w: AckedWrite, leaders: readonly LeaderWal[]): void {
    this.acked.push(w);
    this.ackedIds.add(w.id);
    for (const l of leaders) {
      if (l.term > w.term && !l.has(w.pos, w.id)) {
        this.fail(4, `write ${w.id} acknowledged by node ${w.by} in term ${w.term} is missing from leader ${l.id} of term ${l.term}`);
        return;
      }
    }
  }

  /** Invariant 4: a rewind on `node` dropped `lost` record ids; none may be an acknowledged synchronous write. */
  rewound(node: NodeId, lost: readonly number[]): void {
    for (const id of lost) {
      if (this.ackedIds.has(id)) {
        this.fail(4, `rewind of node ${node} dropped acknowledged synchronous write ${id}`);
        return;
      }
    }
  }

  /** Invariant 4 at the end: the final leader holds every acknowledged synchronous write. */
  finalLeader(node: NodeId, has: (pos: number, writeId: number) => boolean): void {
    for (const w of this.acked) {
      if (!has(w.pos, w.id)) {
        this.fail(4, `final leader ${node} lacks acknowledged synchronous write ${w.id} (position ${w.pos})`);
        return;
      }
    }
  }

  /** Invariant 5: the nodes whose database accepts writes right now. */
  writable(nodes: readonly NodeId[]): void {
    if (nodes.length > 1) this.fail(5, `the databases of nodes ${nodes.join(' and ')} accept writes at the same time`);
  }
}
