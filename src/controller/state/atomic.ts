// The one way biha replaces a file: the new content goes to a temporary file with a unique name in
// the same directory (created exclusively, with its final mode set by fchmod, so it never exists
// with a wider mode and the umask cannot narrow it), is fsynced, gets its owner if asked, and is
// renamed over the file; then the directory is fsynced, so the rename itself survives a power loss.
// A reader sees the old file or the new one, never a mix.
//
// Every writer has a temporary file of its own (`.<name>.<pid>.<uuid>.tmp`): two writes of the same
// file at once cannot truncate or rename each other's temporary file; the last rename wins, and
// both leave a complete file. A temporary file left by a crash is never read (its name starts with
// a dot and ends in .tmp, which no reader of biha's files or of the SQL bridge looks at).
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';

export interface AtomicWriteOptions {
  /** Mode of the new file (default 0600), whatever the umask and the mode of the file it replaces. */
  readonly mode?: number;
  /** Owner given to the new file before it becomes visible (the data directory's owner when running as root). */
  readonly owner?: { readonly uid: number; readonly gid: number } | null;
  /**
   * fsync the file before the rename and its directory after it (default true). Only files that
   * describe the running process and are rewritten after every start (status.json, SQL replies)
   * skip it.
   */
  readonly durable?: boolean;
}

const TEMP_RE = /^\..+\.\d+\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.tmp$/;

/** A fresh temporary name beside `file`. */
export function atomicTempName(file: string): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${randomUUID()}.tmp`);
}

/** Whether a directory entry is a temporary file of atomicWriteFile (finished or left by a crash). */
export function isAtomicTemp(name: string): boolean {
  return TEMP_RE.test(path.basename(name));
}

export async function atomicWriteFile(file: string, data: string | Uint8Array, opts: AtomicWriteOptions = {}): Promise<void> {
  const mode = opts.mode ?? 0o600;
  const durable = opts.durable ?? true;
  const tmp = atomicTempName(file);
  try {
    const fh = await fsp.open(tmp, 'wx', mode);
    try {
      await fh.chmod(mode);
      await fh.writeFile(data);
      if (durable) await fh.sync();
    } finally {
      await fh.close();
    }
    if (opts.owner) await fsp.chown(tmp, opts.owner.uid, opts.owner.gid);
    await fsp.rename(tmp, file);
  } catch (e) {
    await fsp.rm(tmp, { force: true }).catch(() => undefined);
    throw e;
  }
  if (durable) await fsyncDir(path.dirname(file));
}

export function atomicWriteFileSync(file: string, data: string | Uint8Array, opts: AtomicWriteOptions = {}): void {
  const mode = opts.mode ?? 0o600;
  const durable = opts.durable ?? true;
  const tmp = atomicTempName(file);
  try {
    const fd = fs.openSync(tmp, 'wx', mode);
    try {
      fs.fchmodSync(fd, mode);
      fs.writeFileSync(fd, data);
      if (durable) fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    if (opts.owner) fs.chownSync(tmp, opts.owner.uid, opts.owner.gid);
    fs.renameSync(tmp, file);
  } catch (e) {
    try {
      fs.rmSync(tmp, { force: true });
    } catch {
      // the write's own error is the one to report
    }
    throw e;
  }
  if (durable) fsyncDirSync(path.dirname(file));
}

/** fsync a directory: its entries (a rename, a new or removed file) survive a power loss. */
export async function fsyncDir(dir: string): Promise<void> {
  const dh = await fsp.open(dir, 'r');
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}

export function fsyncDirSync(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Removes `file` (if it exists) and fsyncs its directory, so the removal is durable. */
export async function removeDurably(file: string): Promise<void> {
  await fsp.rm(file, { force: true });
  await fsyncDir(path.dirname(file));
}

/**
 * Copies `src` over `dst` atomically and durably, with the mode of `src` (the owner of `src` too
 * when running as root). Returns false when `src` does not exist.
 */
export async function copyFileAtomic(src: string, dst: string): Promise<boolean> {
  let data: Buffer;
  let st: fs.Stats;
  try {
    [data, st] = await Promise.all([fsp.readFile(src), fsp.stat(src)]);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
  const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  await atomicWriteFile(dst, data, { mode: st.mode & 0o7777, owner: asRoot ? { uid: st.uid, gid: st.gid } : null });
  return true;
}
