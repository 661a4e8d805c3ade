// Files that hold secrets: the node's identity and state (cluster secret), the replication password
// file, TLS keys and certificates, magic-string files.
//
// They are created 0600 (directories 0700) without ever existing with a wider mode: the content is
// written to a fresh temporary file opened 0600, fsynced and renamed over the file
// (atomicWriteFile in state/atomic.ts). A node refuses to
// start while one of them is readable by its group or by others and says which chmod fixes it: a
// controller does not silently change modes an administrator set.
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { BihaError } from '../errors.js';
import { atomicWriteFile, isAtomicTemp } from '../state/atomic.js';
import { bihaDir, confPath, httpCredentialsPath, passfilePath, statePath } from '../state/nodefiles.js';

export const SECRET_FILE_MODE = 0o600;
export const SECRET_DIR_MODE = 0o700;

/** Writes `text` to `file` atomically with mode 0600 (an older file of another mode is replaced). */
export async function writeSecretFile(file: string, text: string): Promise<void> {
  await atomicWriteFile(file, text, { mode: SECRET_FILE_MODE });
}

/** Creates `dir` if needed and makes it 0700. */
export async function secretDir(dir: string): Promise<void> {
  await fsp.mkdir(dir, { recursive: true, mode: SECRET_DIR_MODE });
  await fsp.chmod(dir, SECRET_DIR_MODE);
}

function modeText(mode: number): string {
  return '0' + (mode & 0o777).toString(8);
}

/**
 * Throws a one-line error when `file` (or directory) can be read or entered by its group or by
 * others. Missing files are not this function's business.
 */
export function assertPrivate(file: string, what: string): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  if ((st.mode & 0o077) === 0) return;
  const want = st.isDirectory() ? '700' : '600';
  throw new BihaError('insecure_mode', `${file} holds ${what} and is open to its group or to others (mode ${modeText(st.mode)})`, {
    hint: `run: chmod ${want} ${file}`,
  });
}

/** The secret-bearing files of a node, with what each holds (for messages). */
export function nodeSecretFiles(pgdata: string): Array<{ file: string; what: string }> {
  const tls = path.join(bihaDir(pgdata), 'tls');
  const out = [
    { file: confPath(pgdata), what: 'the cluster secret' },
    { file: statePath(pgdata), what: 'the cluster configuration log' },
    { file: passfilePath(pgdata), what: 'the replication password' },
    { file: httpCredentialsPath(pgdata), what: 'the HTTP password hash' },
    { file: tls, what: 'the TLS keys' },
  ];
  let names: string[] = [];
  try {
    names = fs.readdirSync(tls);
  } catch {
    names = [];
  }
  for (const n of names.sort()) {
    if (n.endsWith('.new') || isAtomicTemp(n)) continue;
    out.push({ file: path.join(tls, n), what: n.endsWith('.key') ? 'a TLS private key' : 'TLS material' });
  }
  return out;
}

/** Refuses to run a node whose secret-bearing files are open to others. */
export function assertNodeFilesPrivate(pgdata: string): void {
  for (const f of nodeSecretFiles(pgdata)) assertPrivate(f.file, f.what);
}
