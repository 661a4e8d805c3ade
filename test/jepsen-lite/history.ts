// The history of a run: client operations, nemesis intervals and node-state samples, all stamped
// with wall-clock milliseconds (Date.now()) so that they line up with the node logs' timestamps.
// Written as JSON lines to history.jsonl as they happen.
import * as fs from 'node:fs';

export type Outcome = 'ok' | 'fail' | 'info';

export interface OpRecord {
  readonly type: 'op';
  readonly id: number;
  /** Client name: "mh1" (multi-host, read-write) or "n2" (pinned to node 2). */
  readonly client: string;
  readonly value: string;
  readonly invoke: number;
  readonly complete: number;
  readonly outcome: Outcome;
  /** Node the statement ran on (null when it never reached one). */
  readonly node: number | null;
  /** Raft term the node reported in the same statement (biha.status_v), null if unknown. */
  readonly term: number | null;
  /** Error message or SQLSTATE for fail/info. */
  readonly error?: string;
  /** Notices/warnings PostgreSQL sent with the statement. */
  readonly notice?: string;
}

export interface NemesisRecord {
  readonly type: 'nemesis';
  readonly name: string;
  /** Human-readable description of what was done (targets, rules). */
  readonly what: string;
  readonly start: number;
  end: number;
  /** Nodes affected. */
  readonly nodes: number[];
}

export interface SampleRecord {
  readonly type: 'sample';
  readonly at: number;
  readonly node: number;
  /** null: no answer from the controller. */
  readonly state: string | null;
  readonly term: number | null;
  readonly leader: number | null;
  readonly pgRole: string | null;
}

export interface HardStateRecord {
  readonly type: 'hard';
  readonly at: number;
  readonly node: number;
  readonly term: number;
  readonly vote: number;
  /**
   * 'log': a "hard state persisted" line of the node's controller log (one per persisted change:
   * the complete record); 'sample': pg_biha/biha.state read by the run every 0.5 s (can miss a
   * change). Absent in histories written before the log line existed: a sample.
   */
  readonly src?: 'log' | 'sample';
}

export interface MarkRecord {
  readonly type: 'mark';
  readonly at: number;
  readonly what: string;
}

export type HistoryRecord = OpRecord | NemesisRecord | SampleRecord | HardStateRecord | MarkRecord;

export class History {
  readonly ops: OpRecord[] = [];
  readonly nemeses: NemesisRecord[] = [];
  readonly samples: SampleRecord[] = [];
  readonly hard: HardStateRecord[] = [];
  readonly marks: MarkRecord[] = [];
  private nextId = 1;
  private readonly fd: number | null;

  constructor(file: string | null) {
    this.fd = file ? fs.openSync(file, 'a') : null;
  }

  private write(r: HistoryRecord): void {
    if (this.fd !== null) fs.writeSync(this.fd, JSON.stringify(r) + '\n');
  }

  op(r: Omit<OpRecord, 'type' | 'id'>): OpRecord {
    const rec: OpRecord = { type: 'op', id: this.nextId++, ...r };
    this.ops.push(rec);
    this.write(rec);
    return rec;
  }

  nemesisStart(name: string, what: string, nodes: number[], start = Date.now()): NemesisRecord {
    const rec: NemesisRecord = { type: 'nemesis', name, what, start, end: 0, nodes };
    this.nemeses.push(rec);
    return rec;
  }

  nemesisEnd(rec: NemesisRecord): void {
    rec.end = Date.now();
    this.write(rec);
  }

  sample(r: Omit<SampleRecord, 'type'>): void {
    const rec: SampleRecord = { type: 'sample', ...r };
    this.samples.push(rec);
    this.write(rec);
  }

  private readonly loggedVotes = new Set<string>();

  /** A sampled hard state: recorded when it differs from the node's previous sample. */
  hardState(r: Omit<HardStateRecord, 'type' | 'src'>): void {
    const prev = [...this.hard].reverse().find((h) => h.node === r.node && h.src === 'sample');
    if (prev && prev.term === r.term && prev.vote === r.vote) return;
    const rec: HardStateRecord = { type: 'hard', ...r, src: 'sample' };
    this.hard.push(rec);
    this.write(rec);
  }

  /** A hard state from a controller log line (each line once, however often it is read). */
  loggedVote(r: Omit<HardStateRecord, 'type' | 'src'>): void {
    const key = `${r.node}:${r.at}:${r.term}:${r.vote}`;
    if (this.loggedVotes.has(key)) return;
    this.loggedVotes.add(key);
    const rec: HardStateRecord = { type: 'hard', ...r, src: 'log' };
    this.hard.push(rec);
    this.write(rec);
  }

  mark(what: string): void {
    const rec: MarkRecord = { type: 'mark', at: Date.now(), what };
    this.marks.push(rec);
    this.write(rec);
  }

  close(): void {
    for (const n of this.nemeses) if (n.end === 0) this.nemesisEnd(n);
    if (this.fd !== null) fs.closeSync(this.fd);
  }
}
