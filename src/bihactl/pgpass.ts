// The replication password for bihactl add and backup: BIHA_REPLICATION_PASSWORD, else the password
// file (PGPASSFILE, else ~/.pgpass), its lines parsed and matched with the pgpass package as libpq
// does: host, port, database and user each equal or `*`, `\:` and `\\` escaped, the first match wins.
// As libpq does, a file that is not a plain file, or that its group or others may access, is
// ignored with a warning. Unlike libpq, PGPASSWORD (often another user's password) does not switch
// the file off, and a `localhost` line also serves 127.0.0.1 and ::1 when no line names them.
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import pgpassHelper from 'pgpass/lib/helper.js';
import type { PgpassConnInfo } from 'pgpass/lib/helper.js';

export interface PasswordQuery {
  host: string;
  port: number;
  user: string;
  /** The database the connection asks for; 'replication' for pg_basebackup and streaming. */
  database: string;
}

/** PGPASSFILE, else ~/.pgpass (HOME first, as libpq). */
export function passwordFilePath(env: NodeJS.ProcessEnv = process.env): string {
  if (env['PGPASSFILE'] === undefined && (env['HOME'] ?? '') === '') return path.join(os.homedir(), '.pgpass');
  return pgpassHelper.getFileName(env);
}

/** Whether libpq would read the file; a warning (libpq's words) when it exists but would not. */
function usablePasswordFile(file: string, warn: (msg: string) => void): boolean {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    return false;
  }
  if (!st.isFile()) {
    warn(`password file "${file}" is not a plain file`);
    return false;
  }
  if ((st.mode & 0o077) !== 0) {
    warn(`password file "${file}" has group or world access; permissions should be u=rw (0600) or less`);
    return false;
  }
  return true;
}

/**
 * The password of the first line that matches, parsed and matched by pgpass's helpers. Its own
 * reader (getPassword) is not used: it keeps matching the lines already read after a match, so
 * the last matching line of a short file would win instead of the first.
 */
function firstMatch(text: string, q: PgpassConnInfo): string | null {
  for (const line of text.split(/\r?\n/)) {
    if (line.trimStart().startsWith('#')) continue;
    const entry = pgpassHelper.parseLine(line);
    if (entry && pgpassHelper.isValidEntry(entry) && pgpassHelper.match(q, entry)) return entry.password;
  }
  return null;
}

/** The password for a connection from the password file, or null. */
export async function passwordFromFile(q: PasswordQuery, o: { file?: string; warn?: (msg: string) => void } = {}): Promise<string | null> {
  const file = o.file ?? passwordFilePath();
  const warn = o.warn ?? ((msg: string) => process.stderr.write(`WARNING: ${msg}\n`));
  if (!usablePasswordFile(file, warn)) return null;
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (e) {
    warn(`could not read password file "${file}": ${(e as Error).message}`);
    return null;
  }
  // libpq looks a socket directory up as localhost.
  const host = q.host === '' || q.host.startsWith('/') ? 'localhost' : q.host;
  const found = firstMatch(text, { host, port: q.port, database: q.database, user: q.user });
  if (found !== null || (host !== '127.0.0.1' && host !== '::1')) return found;
  return firstMatch(text, { host: 'localhost', port: q.port, database: q.database, user: q.user });
}

/** BIHA_REPLICATION_PASSWORD, else the password file's line for the connection, else null. */
export async function lookupPassword(q: PasswordQuery): Promise<string | null> {
  const env = process.env['BIHA_REPLICATION_PASSWORD'];
  if (env) return env;
  return await passwordFromFile(q);
}
