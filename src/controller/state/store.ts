// The node's state store: the one owner of pg_biha/biha.conf (identity, secrets) and
// pg_biha/biha.state (raft hard state and config log, NODE_ERROR) while the controller runs.
//
// - Every change goes through it. The in-memory value changes at once (readers see it at the next
//   line); the files follow through one queue: one write at a time, each writing the latest value
//   of the files changed since the last write, so writes never overlap and a burst of changes costs
//   one or two writes.
// - The promise of a change resolves only once a write that contains it is durable (atomicWriteFile:
//   fsynced file, rename, fsynced directory), and rejects if that write failed. The raft driver
//   awaits it before it sends anything: a vote never leaves before it is on disk.
// - During a pg_rewind (beginRewind .. endRewind) the files live in the rewind save directory
//   (`${PGDATA}.biha-rewind-save/pg_biha`, outside PGDATA, where pg_rewind never writes), and a
//   durable marker there says so. pg_rewind may overwrite PGDATA/pg_biha at any moment meanwhile;
//   the save directory is the authoritative copy until endRewind has written PGDATA/pg_biha again
//   and removed the marker. At every instant, the copy that a restart reads (the save directory
//   while the marker exists, PGDATA/pg_biha otherwise) holds every change whose promise resolved.
//   docs/architecture.md, "The state store".
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { BihaError } from '../errors.js';
import { atomicWriteFile, fsyncDir, removeDurably } from './atomic.js';
import type { NodeConf, NodeErrorInfo, NodeState } from './nodefiles.js';
import { BIHA_DIR, CONF_VERSION, STATE_VERSION, bihaDir, readNodeConf, readNodeState, rewindMarkerPath, rewindSaveDir } from './nodefiles.js';
import { writeStateFile } from './statefile.js';
import type { PersistentState } from '../../raft/index.js';

/** How the store writes one file into a pg_biha directory; replaced in tests. */
export interface StoreIo {
  writeConf(dir: string, c: NodeConf): Promise<void>;
  writeState(dir: string, s: NodeState): Promise<void>;
}

export const FILE_IO: StoreIo = {
  writeConf: (dir, c) => writeStateFile(path.join(dir, 'biha.conf'), 'biha.conf', CONF_VERSION, c, 0o600),
  writeState: (dir, s) => writeStateFile(path.join(dir, 'biha.state'), 'biha.state', STATE_VERSION, s, 0o600),
};

/** What the rewind marker records (for the log and the NODE_ERROR of an interrupted rewind). */
export interface RewindMarker {
  readonly sourceId: number;
  readonly source: string;
  readonly startedAt: string;
  readonly pid: number;
}

interface Waiter {
  readonly seq: number;
  readonly resolve: () => void;
  readonly reject: (e: unknown) => void;
}

interface Job {
  readonly run: () => Promise<void>;
  readonly resolve: () => void;
  readonly reject: (e: unknown) => void;
}

type Which = 'conf' | 'state';

export class NodeStore {
  private c: NodeConf;
  private s: NodeState;
  /** Where the files go: PGDATA/pg_biha, or the save directory's pg_biha during a rewind. */
  private home: string;
  private seq = 0;
  private readonly dirty = new Set<Which>();
  private waiters: Waiter[] = [];
  private readonly jobs: Job[] = [];
  private running: Promise<void> | null = null;

  private constructor(
    readonly pgdata: string,
    conf: NodeConf,
    state: NodeState,
    private readonly io: StoreIo,
  ) {
    this.c = conf;
    this.s = state;
    this.home = bihaDir(pgdata);
  }

  /** Reads PGDATA/pg_biha. An interrupted rewind must have been recovered first (rewindsave.ts). */
  static async open(pgdata: string, io: StoreIo = FILE_IO): Promise<NodeStore> {
    const dir = path.resolve(pgdata);
    if (await fsp.stat(rewindMarkerPath(dir)).then(() => true, () => false)) {
      throw new BihaError('rewind_marker', `${rewindMarkerPath(dir)} exists: an interrupted rewind must be recovered before the node's state is opened`, {
        hint: 'start the node with bihactl start, which recovers it',
      });
    }
    return new NodeStore(dir, await readNodeConf(dir), await readNodeState(dir), io);
  }

  /** A store over given values (tests, tools); writes go to PGDATA/pg_biha through `io`. */
  static of(pgdata: string, conf: NodeConf, state: NodeState, io: StoreIo = FILE_IO): NodeStore {
    return new NodeStore(path.resolve(pgdata), conf, state, io);
  }

  get conf(): NodeConf {
    return this.c;
  }

  get state(): NodeState {
    return this.s;
  }

  /** The directory the files are written to now (PGDATA/pg_biha, or the save directory's during a rewind). */
  get dir(): string {
    return this.home;
  }

  get rewinding(): boolean {
    return this.home !== bihaDir(this.pgdata);
  }

  /** Changes conf and/or state at once; resolves when the change is durable. */
  update(fn: (cur: { conf: NodeConf; state: NodeState }) => { conf?: NodeConf; state?: NodeState }): Promise<void> {
    const next = fn({ conf: this.c, state: this.s });
    if (next.conf !== undefined && next.conf !== this.c) {
      this.c = next.conf;
      this.dirty.add('conf');
    }
    if (next.state !== undefined && next.state !== this.s) {
      this.s = next.state;
      this.dirty.add('state');
    }
    return this.awaitDurable();
  }

  updateConf(fn: (c: NodeConf) => NodeConf): Promise<void> {
    return this.update(({ conf }) => ({ conf: fn(conf) }));
  }

  updateState(fn: (s: NodeState) => NodeState): Promise<void> {
    return this.update(({ state }) => ({ state: fn(state) }));
  }

  /** Raft hard state and config log (the raft driver, before it sends). */
  setRaft(raft: PersistentState): Promise<void> {
    return this.updateState((s) => ({ ...s, raft }));
  }

  setNodeError(nodeError: NodeErrorInfo | null): Promise<void> {
    return this.updateState((s) => ({ ...s, nodeError }));
  }

  /** Resolves when every change made so far is durable (or its write failed). */
  flush(): Promise<void> {
    return this.awaitDurable().catch(() => undefined);
  }

  /**
   * Before pg_rewind: the save directory (already holding a copy of pg_biha/) gets the current
   * conf and state, then the durable marker; from then on the files are written there only.
   */
  beginRewind(marker: RewindMarker): Promise<void> {
    return this.enqueue(async () => {
      const saveDir = rewindSaveDir(this.pgdata);
      const dir = path.join(saveDir, BIHA_DIR);
      await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
      await this.writeAll(dir);
      await atomicWriteFile(rewindMarkerPath(this.pgdata), JSON.stringify(marker) + '\n', { mode: 0o600 });
      // The save directory's own entry in its parent must survive a power loss too.
      await fsyncDir(path.dirname(saveDir));
      this.home = dir;
    });
  }

  /**
   * After pg_rewind, once PGDATA/pg_biha holds this node's files again: the current conf and state
   * are written there, then the marker is removed; from then on the files are written there again.
   */
  endRewind(): Promise<void> {
    return this.enqueue(async () => {
      const dir = bihaDir(this.pgdata);
      await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
      await this.writeAll(dir);
      await removeDurably(rewindMarkerPath(this.pgdata));
      this.home = dir;
    });
  }

  // ---- the queue ----

  private awaitDurable(): Promise<void> {
    if (this.dirty.size === 0 && this.waiters.length === 0 && this.running === null) return Promise.resolve();
    const seq = ++this.seq;
    const p = new Promise<void>((resolve, reject) => this.waiters.push({ seq, resolve, reject }));
    this.kick();
    return p;
  }

  private enqueue(run: () => Promise<void>): Promise<void> {
    const p = new Promise<void>((resolve, reject) => this.jobs.push({ run, resolve, reject }));
    this.kick();
    return p;
  }

  private kick(): void {
    if (this.running) return;
    this.running = this.drain().finally(() => {
      this.running = null;
      // Something may have arrived after the loop's last look.
      if (this.jobs.length > 0 || (this.dirty.size > 0 && this.waiters.length > 0)) this.kick();
    });
  }

  private async drain(): Promise<void> {
    // After a failed write, the loop does not retry at once: the next change (or job) does.
    let failed = false;
    for (;;) {
      if (!failed && (this.dirty.size > 0 || this.waiters.length > 0)) {
        failed = !(await this.writeDirty());
        continue;
      }
      const job = this.jobs.shift();
      if (!job) return;
      try {
        await job.run();
        job.resolve();
      } catch (e) {
        job.reject(e);
      }
    }
  }

  /** One write of the files changed so far, with their latest values. */
  private async writeDirty(): Promise<boolean> {
    const upTo = this.seq;
    const which = new Set(this.dirty);
    this.dirty.clear();
    const conf = this.c;
    const state = this.s;
    try {
      if (which.has('state')) await this.io.writeState(this.home, state);
      if (which.has('conf')) await this.io.writeConf(this.home, conf);
    } catch (e) {
      for (const w of which) this.dirty.add(w);
      this.settle(upTo, e);
      return false;
    }
    this.settle(upTo, null);
    return true;
  }

  /** Writes both files (a job: the queue runs nothing else meanwhile) and settles what it covers. */
  private async writeAll(dir: string): Promise<void> {
    const upTo = this.seq;
    const conf = this.c;
    const state = this.s;
    this.dirty.clear();
    try {
      await this.io.writeState(dir, state);
      await this.io.writeConf(dir, conf);
    } catch (e) {
      this.dirty.add('state');
      this.dirty.add('conf');
      this.settle(upTo, e);
      throw e;
    }
    this.settle(upTo, null);
  }

  private settle(upTo: number, err: unknown): void {
    const done = this.waiters.filter((w) => w.seq <= upTo);
    this.waiters = this.waiters.filter((w) => w.seq > upTo);
    for (const w of done) {
      if (err === null) w.resolve();
      else w.reject(err);
    }
  }
}
