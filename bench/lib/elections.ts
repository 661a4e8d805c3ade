// Elections seen by polling each node's own state: every new Raft term, every change of the
// leader a node names, and every change of its state, with the time it was first seen.

export interface NodeState {
  state: string;
  term: number;
  leader: number | null;
}

export interface Seen {
  /** Wall clock ms of the poll that saw it. */
  t: number;
  node: number;
  what: string;
}

export interface TermSeen {
  term: number;
  t: number;
  node: number;
}

export class ElectionWatch {
  private readonly last = new Map<number, NodeState>();
  private readonly terms = new Map<number, TermSeen>();
  private baseTerm = -1;
  readonly leaderChanges: Seen[] = [];
  readonly stateChanges: Seen[] = [];

  /**
   * One poll's answer of `node`; returns what changed since its previous answer (nothing on the
   * first one). The highest term of the first poll round is the baseline: terms above it are new.
   */
  observe(t: number, node: number, s: NodeState): Seen[] {
    const prev = this.last.get(node);
    this.last.set(node, s);
    if (!prev) {
      this.baseTerm = Math.max(this.baseTerm, s.term);
      return [];
    }
    const out: Seen[] = [];
    if (s.term > prev.term) {
      out.push({ t, node, what: `term ${prev.term} -> ${s.term}` });
      if (s.term > this.baseTerm && !this.terms.has(s.term)) this.terms.set(s.term, { term: s.term, t, node });
    }
    if (s.leader !== prev.leader) {
      const e = { t, node, what: `leader ${prev.leader ?? 'none'} -> ${s.leader ?? 'none'}` };
      out.push(e);
      this.leaderChanges.push(e);
    }
    if (s.state !== prev.state) {
      const e = { t, node, what: `state ${prev.state} -> ${s.state}` };
      out.push(e);
      this.stateChanges.push(e);
    }
    return out;
  }

  /** The last term each node answered with. */
  lastTerms(): Map<number, number> {
    return new Map([...this.last].map(([i, s]) => [i, s.term]));
  }

  /** Terms above the baseline, each with the first poll that saw it, in order. */
  newTerms(): TermSeen[] {
    return [...this.terms.values()].sort((a, b) => a.term - b.term);
  }
}
