// A rewind's save directory and the way back from a rewind that was interrupted.
//
// pg_rewind copies the source node's files over this node's, pg_biha/ included (node id, raft vote
// and term, secrets, TLS keys) and the conf files. Around it (PostgresActions.rewindFrom):
//
//  1. saveBeforeRewind: `${PGDATA}.biha-rewind-save/` (outside PGDATA: pg_rewind never touches it)
//     gets pg_biha/, the conf files and pg_wal/, all fsynced.
//  2. NodeStore.beginRewind: the current biha.conf / biha.state go there, then the durable marker
//     `rewind-in-progress`; from then on the store writes its files there only.
//  3. pg_rewind.
//  4. restoreAfterRewind puts pg_biha/ and the conf files back; a failed pg_rewind leaves the hold
//     file (below); NodeStore.endRewind writes biha.conf / biha.state into PGDATA/pg_biha from
//     memory, then removes the marker.
//
// A crash anywhere in 2–4 leaves the marker, and the save directory then holds every change the
// store acknowledged. recoverInterruptedRewind (run by the controller before it reads its state)
// waits for a pg_rewind that still runs on this data directory, puts pg_biha/ and the conf files
// back from the save directory, writes the hold file, and moves the save directory aside (which
// removes the marker): the node starts as itself, with its votes.
//
// The hold file `PGDATA/rewind.signal` says that the data directory may be half rewound (pg_rewind
// did not complete, or its end is unknown): the controller does not start PostgreSQL while it
// exists, and the node is in NODE_ERROR REWIND_FAILED. A successful rewind (bihactl rewind) or
// reset-node-error removes it. docs/runbooks/node-error.md.
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { BihaError } from '../errors.js';
import { atomicWriteFile, copyFileAtomic, fsyncDir, isAtomicTemp, removeDurably } from '../state/atomic.js';
import type { NodeErrorInfo } from '../state/nodefiles.js';
import { BIHA_DIR, bihaDir, rewindMarkerPath, rewindSaveDir } from '../state/nodefiles.js';
import { NodeStore } from '../state/store.js';
import type { RewindMarker } from '../state/store.js';
import { postmasterPid } from './tools.js';

/** The conf files pg_rewind would replace with the source's, kept and put back around a rewind. */
export const REWIND_KEPT_FILES = ['postgresql.biha.conf', 'pg_hba.biha.conf', 'postgresql.auto.conf', 'postgresql.conf', 'pg_hba.conf'] as const;

export function holdPath(pgdata: string): string {
  return path.join(path.resolve(pgdata), 'rewind.signal');
}

/** Why PostgreSQL must stay stopped (the hold file's text), or null when it may run. */
export function readHold(pgdata: string): string | null {
  let text: string;
  try {
    text = fs.readFileSync(holdPath(pgdata), 'utf8').trim();
  } catch {
    return null;
  }
  return text || 'a pg_rewind did not complete; the data directory may be half rewound';
}

export async function writeHold(pgdata: string, reason: string): Promise<void> {
  await atomicWriteFile(holdPath(pgdata), `${reason}\n`, { mode: 0o600 });
}

export async function removeHold(pgdata: string): Promise<void> {
  await removeDurably(holdPath(pgdata));
}

/** fsync every file and directory under `dir` (a copy made with fs.cp is not durable by itself). */
export async function syncTree(dir: string): Promise<void> {
  const entries = await fsp.readdir(dir, { withFileTypes: true });
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      await syncTree(p);
    } else if (e.isFile()) {
      const fh = await fsp.open(p, 'r');
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
    }
  }
  await fsyncDir(dir);
}

/**
 * Step 1: a fresh save directory with this node's pg_biha/, conf files and pg_wal/, durable.
 * Returns its path.
 */
/** Refuses to start a rewind while the last one was interrupted and not recovered. */
export function assertNoInterruptedRewind(pgdata: string): void {
  const dir = path.resolve(pgdata);
  if (fs.existsSync(rewindMarkerPath(dir))) {
    throw new BihaError('rewind_marker', `${rewindMarkerPath(dir)} exists: the last rewind was interrupted and not recovered`, {
      hint: 'restart the controller (bihactl stop, bihactl start), which recovers it',
    });
  }
}

export async function saveBeforeRewind(pgdata: string): Promise<string> {
  const dir = path.resolve(pgdata);
  const saveDir = rewindSaveDir(dir);
  assertNoInterruptedRewind(dir);
  await fsp.rm(saveDir, { recursive: true, force: true });
  await fsp.mkdir(saveDir, { recursive: true, mode: 0o700 });
  await fsp.cp(bihaDir(dir), path.join(saveDir, BIHA_DIR), { recursive: true, filter: (src) => !isAtomicTemp(src) });
  for (const f of REWIND_KEPT_FILES) await fsp.copyFile(path.join(dir, f), path.join(saveDir, f)).catch(() => undefined);
  // The WAL files the rewind may overwrite (runbook step 1).
  await fsp.cp(path.join(dir, 'pg_wal'), path.join(saveDir, 'pg_wal'), {
    recursive: true,
    filter: (src) => !src.endsWith('archive_status'),
  });
  await syncTree(saveDir);
  await fsyncDir(path.dirname(saveDir));
  return saveDir;
}

/** Makes `dir` hold what `saved` holds: its files copied over, files only `dir` has removed. */
async function restoreDir(saved: string, dir: string): Promise<void> {
  await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
  await fsp.cp(saved, dir, { recursive: true, force: true, filter: (src) => !isAtomicTemp(src) });
  const keep = new Set((await fsp.readdir(saved, { recursive: true })).map(String));
  for (const rel of (await fsp.readdir(dir, { recursive: true })).map(String)) {
    // A file being written right now (the SQL bridge's status) is not the source's.
    if (keep.has(rel) || isAtomicTemp(rel)) continue;
    const st = await fsp.lstat(path.join(dir, rel)).catch(() => null);
    // What only the source had (its pending SQL requests among them) must not act here.
    if (st && !st.isDirectory()) await fsp.rm(path.join(dir, rel), { force: true });
  }
  await syncTree(dir);
}

/**
 * Step 4: pg_biha/ and the conf files back from the save directory. Not by removing pg_biha/
 * first: the controller keeps writing there (logs, status), and a removal racing with that could
 * leave a node without its identity. biha.conf / biha.state are written again from memory by
 * NodeStore.endRewind afterwards.
 */
export async function restoreAfterRewind(pgdata: string): Promise<string[]> {
  const dir = path.resolve(pgdata);
  const saveDir = rewindSaveDir(dir);
  await restoreDir(path.join(saveDir, BIHA_DIR), bihaDir(dir));
  const restored = [`${BIHA_DIR}/`];
  for (const f of REWIND_KEPT_FILES) if (await copyFileAtomic(path.join(saveDir, f), path.join(dir, f))) restored.push(f);
  return restored;
}

/** PIDs of pg_rewind processes (or wrappers) whose target is this data directory. */
export function rewindProcesses(pgdata: string): number[] {
  const arg = `--target-pgdata=${path.resolve(pgdata)}`;
  const out: number[] = [];
  let entries: string[] = [];
  try {
    entries = fs.readdirSync('/proc');
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    try {
      const argv = fs.readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0');
      if (argv.includes(arg) && argv.some((a) => path.basename(a) === 'pg_rewind')) out.push(Number(e));
    } catch {
      // gone, or not ours to read
    }
  }
  return out;
}

export interface RewindRecovery {
  readonly marker: Partial<RewindMarker>;
  /** What was put back into PGDATA. */
  readonly restored: readonly string[];
  /** Where the save directory of the interrupted rewind (its pg_wal among it) is kept. */
  readonly keptIn: string;
  /** The reason written to the hold file. */
  readonly reason: string;
  /**
   * What was said while recovering. Said again by the controller's logger: the log file itself is
   * one of the files put back, so lines written to it before are gone.
   */
  readonly notes: readonly string[];
}

/**
 * Run before the node's state is read: if a rewind was interrupted (its marker exists), put this
 * node's pg_biha/ and conf files back from the save directory, hold PostgreSQL stopped, and move
 * the save directory aside. Returns what it did, or null when there was nothing to recover.
 */
export async function recoverInterruptedRewind(
  pgdata: string,
  note: (msg: string) => void,
  opts: { waitMs?: number } = {},
): Promise<RewindRecovery | null> {
  const dir = path.resolve(pgdata);
  const markerFile = rewindMarkerPath(dir);
  const notes: string[] = [];
  const say = (msg: string): void => {
    notes.push(msg);
    note(msg);
  };
  let text: string;
  try {
    text = await fsp.readFile(markerFile, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  let marker: Partial<RewindMarker> = {};
  try {
    marker = JSON.parse(text) as Partial<RewindMarker>;
  } catch {
    marker = {};
  }
  const from = marker.sourceId ? `node ${marker.sourceId}${marker.source ? ` (${marker.source})` : ''}` : 'another node';
  say(`interrupted rewind detected: ${markerFile} exists (pg_rewind from ${from}, started ${marker.startedAt ?? 'at an unknown time'})`);

  // A pg_rewind that outlived its controller would copy over what is restored now.
  const deadline = Date.now() + (opts.waitMs ?? 600_000);
  let pids = rewindProcesses(dir);
  if (pids.length > 0) say(`pg_rewind (PID ${pids.join(', ')}) from the interrupted rewind still runs on ${dir}; waiting for it to end`);
  while (pids.length > 0) {
    if (Date.now() > deadline) {
      throw new BihaError('rewind_running', `pg_rewind (PID ${pids.join(', ')}) still runs on ${dir}`, {
        hint: 'wait for it to end (or stop it), then start the node again',
      });
    }
    await new Promise((r) => setTimeout(r, 200));
    pids = rewindProcesses(dir);
  }
  const pm = await postmasterPid(dir);
  if (pm !== null) {
    throw new BihaError('pg_running', `PostgreSQL (PID ${pm}) runs in ${dir}, whose last rewind was interrupted and may have left it half rewound`, {
      hint: `stop it (pg_ctl stop -D ${dir} -m fast), then start the node again`,
    });
  }

  const restored = await restoreAfterRewind(dir);
  const reason =
    `the controller stopped while pg_rewind from ${from} ran; the data directory may be half rewound, ` +
    'so PostgreSQL stays stopped: run bihactl rewind (docs/runbooks/node-error.md)';
  await writeHold(dir, reason);
  // Moving the save directory aside removes the marker in one step and keeps the WAL from before
  // the rewind (the next rewind starts a save directory of its own).
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  let keptIn = `${dir}.biha-rewind-interrupted-${stamp}`;
  for (let i = 1; fs.existsSync(keptIn); i++) keptIn = `${dir}.biha-rewind-interrupted-${stamp}-${i}`;
  await fsp.rename(rewindSaveDir(dir), keptIn);
  await fsyncDir(path.dirname(dir));
  say(
    `interrupted rewind: restored this node's ${restored.join(', ')} from the save directory (now ${keptIn}); ` +
      'PostgreSQL stays stopped until bihactl rewind',
  );
  return { marker, restored, keptIn, reason, notes };
}

/**
 * Opens the node's state store, after recovering an interrupted rewind if there was one. While the
 * hold file exists, the node is in NODE_ERROR REWIND_FAILED (set here if it is not yet).
 */
export async function openNodeStore(
  pgdata: string,
  note: (msg: string) => void,
): Promise<{ store: NodeStore; recovered: RewindRecovery | null; hold: string | null }> {
  const recovered = await recoverInterruptedRewind(pgdata, note);
  const store = await NodeStore.open(pgdata);
  const hold = store.conf.mode === 'referee' ? null : readHold(pgdata);
  if (hold !== null && store.state.nodeError?.type !== 'REWIND_FAILED') {
    const info: NodeErrorInfo = {
      type: 'REWIND_FAILED',
      details: hold,
      beginLsn: null,
      endLsn: null,
      currentTli: null,
      nextTli: null,
      replayLsn: null,
      since: new Date().toISOString(),
    };
    await store.setNodeError(info);
  }
  return { store, recovered, hold };
}
