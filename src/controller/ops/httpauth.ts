// HTTP credentials of the remote management API: one user name and a scrypt hash of its password in
// PGDATA/pg_biha/http_credentials (0600, written with writeSecretFile). The unsafe methods (POST,
// PATCH) need HTTP basic auth with them; a node without the file refuses those methods altogether.
//
// The file is read again whenever its size, mtime or inode changed (checked on every request that
// needs it), so `bihactl set-http-credentials` takes effect without a restart. The password itself
// is never stored, logged or kept in memory beyond the check of one request.
import { randomBytes, scrypt, timingSafeEqual, createHash } from 'node:crypto';
import type { BinaryLike, ScryptOptions } from 'node:crypto';
import * as fs from 'node:fs';
import { BihaError } from '../errors.js';
import { httpCredentialsPath } from '../state/nodefiles.js';
import { writeSecretFile } from '../security/secfiles.js';

export const HTTP_REALM = 'biha';

/** scrypt cost: N = 2^14, r = 8, p = 1 (about 16 MB and a few tens of milliseconds). */
const SCRYPT = { N: 16384, r: 8, p: 1, keylen: 32 } as const;
const SALT_BYTES = 16;
const MAX_USER = 128;
const MAX_PASSWORD = 1024;

/** What the file holds (JSON). */
export interface HttpCredentials {
  readonly version: 1;
  readonly user: string;
  readonly scheme: 'scrypt';
  readonly N: number;
  readonly r: number;
  readonly p: number;
  /** base64 */
  readonly salt: string;
  /** base64 */
  readonly hash: string;
}

export function credentialsPath(pgdata: string): string {
  return httpCredentialsPath(pgdata);
}

function scryptAsync(password: BinaryLike, salt: BinaryLike, keylen: number, o: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => scrypt(password, salt, keylen, { ...o, maxmem: 64 * 1024 * 1024 }, (e, key) => (e ? reject(e) : resolve(key))));
}

/** A one-line problem with a user name, or null. */
export function userProblem(user: string): string | null {
  if (user === '') return 'the HTTP user name is empty';
  if (user.length > MAX_USER) return `the HTTP user name is longer than ${MAX_USER} characters`;
  if (user.includes(':')) return 'the HTTP user name cannot contain ":" (HTTP basic auth separates the user from the password with it)';
  if (/[\u0000-\u001f\u007f]/.test(user)) return 'the HTTP user name cannot contain control characters';
  return null;
}

/** A one-line problem with a password, or null. */
export function passwordProblem(password: string): string | null {
  if (password.length < 8) return 'the HTTP password must have at least 8 characters';
  if (password.length > MAX_PASSWORD) return `the HTTP password is longer than ${MAX_PASSWORD} characters`;
  return null;
}

/** The record for `user` and `password`, with a new random salt. */
export async function hashCredentials(user: string, password: string): Promise<HttpCredentials> {
  const bad = userProblem(user) ?? passwordProblem(password);
  if (bad) throw new BihaError('bad_args', bad);
  const salt = randomBytes(SALT_BYTES);
  const hash = await scryptAsync(password, salt, SCRYPT.keylen, { N: SCRYPT.N, r: SCRYPT.r, p: SCRYPT.p });
  return { version: 1, user, scheme: 'scrypt', N: SCRYPT.N, r: SCRYPT.r, p: SCRYPT.p, salt: salt.toString('base64'), hash: hash.toString('base64') };
}

/** Equal byte strings, in a time that does not depend on where they differ (nor on their lengths). */
function sameSecret(a: string | Buffer, b: string | Buffer): boolean {
  const da = createHash('sha256').update(a).digest();
  const db = createHash('sha256').update(b).digest();
  return timingSafeEqual(da, db);
}

/** True when `user` and `password` match the record. */
export async function verifyCredentials(c: HttpCredentials, user: string, password: string): Promise<boolean> {
  const userOk = sameSecret(user, c.user);
  const want = Buffer.from(c.hash, 'base64');
  // The hash is computed even for a wrong user: the answer takes as long either way.
  const got = await scryptAsync(password.slice(0, MAX_PASSWORD), Buffer.from(c.salt, 'base64'), want.length, { N: c.N, r: c.r, p: c.p });
  return timingSafeEqual(got, want) && userOk;
}

/** The credentials of an `Authorization: Basic ...` header, or null when it is absent or not Basic. */
export function parseBasicAuth(header: string | undefined): { user: string; password: string } | null {
  if (header === undefined) return null;
  const m = /^\s*Basic\s+([A-Za-z0-9+/=_-]+)\s*$/i.exec(header);
  if (!m?.[1]) return null;
  const text = Buffer.from(m[1], 'base64').toString('utf8');
  const colon = text.indexOf(':');
  if (colon < 0) return null;
  return { user: text.slice(0, colon), password: text.slice(colon + 1) };
}

/** Parses the file's text; a one-line error names the file when it is not a valid record. */
export function parseCredentials(text: string, file: string): HttpCredentials {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new BihaError('bad_credentials', `${file} is not valid JSON`, { hint: 'set the credentials again with bihactl set-http-credentials' });
  }
  const o = v as Partial<HttpCredentials> | null;
  const ok =
    o !== null && typeof o === 'object' && o.version === 1 && o.scheme === 'scrypt' && typeof o.user === 'string' &&
    typeof o.salt === 'string' && typeof o.hash === 'string' && [o.N, o.r, o.p].every((n) => typeof n === 'number' && Number.isInteger(n) && n > 0);
  if (!ok) throw new BihaError('bad_credentials', `${file} does not hold biha HTTP credentials`, { hint: 'set the credentials again with bihactl set-http-credentials' });
  return o as HttpCredentials;
}

export async function writeCredentials(pgdata: string, c: HttpCredentials): Promise<void> {
  await writeSecretFile(credentialsPath(pgdata), `${JSON.stringify(c)}\n`);
}

/** Removes the file; true when there was one. */
export function removeCredentials(pgdata: string): boolean {
  try {
    fs.unlinkSync(credentialsPath(pgdata));
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}

/** How a request's credentials fared. */
export type AuthOutcome = 'ok' | 'unauthorized' | 'off';

/** The node's credentials as the HTTP server checks them: the file, read again when it changes. */
export class HttpAuth {
  private stamp = '';
  private creds: HttpCredentials | null = null;

  constructor(private readonly file: string) {}

  /** The current record (null: none configured). An unreadable or invalid file counts as none, and throws. */
  current(): HttpCredentials | null {
    let st: fs.Stats;
    try {
      st = fs.statSync(this.file);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      this.stamp = '';
      this.creds = null;
      return null;
    }
    const stamp = `${st.ino}:${st.size}:${st.mtimeMs}`;
    if (stamp !== this.stamp) {
      this.creds = null;
      this.stamp = '';
      this.creds = parseCredentials(fs.readFileSync(this.file, 'utf8'), this.file);
      this.stamp = stamp;
    }
    return this.creds;
  }

  /** Checks the Authorization header of an unsafe request. */
  async check(header: string | undefined): Promise<AuthOutcome> {
    const c = this.current();
    if (c === null) return 'off';
    const given = parseBasicAuth(header);
    if (given === null) return 'unauthorized';
    return (await verifyCredentials(c, given.user, given.password)) ? 'ok' : 'unauthorized';
  }
}
