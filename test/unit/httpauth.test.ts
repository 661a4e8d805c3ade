// Credentials of the remote management API: basic-auth parsing, scrypt hashing and checking, the
// credentials file (0600) and its reload on change.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  HttpAuth,
  credentialsPath,
  hashCredentials,
  parseBasicAuth,
  parseCredentials,
  passwordProblem,
  removeCredentials,
  userProblem,
  verifyCredentials,
  writeCredentials,
} from '../../src/controller/ops/httpauth.js';

const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

describe('parseBasicAuth', () => {
  it('splits user and password at the first colon', () => {
    expect(parseBasicAuth(basic('admin', 'pa:ss word'))).toEqual({ user: 'admin', password: 'pa:ss word' });
    expect(parseBasicAuth(`basic   ${Buffer.from('a:b').toString('base64')}  `)).toEqual({ user: 'a', password: 'b' });
  });
  it('returns null for a missing, non-Basic or colon-less header', () => {
    expect(parseBasicAuth(undefined)).toBeNull();
    expect(parseBasicAuth('Bearer abc')).toBeNull();
    expect(parseBasicAuth(`Basic ${Buffer.from('nocolon').toString('base64')}`)).toBeNull();
    expect(parseBasicAuth('Basic')).toBeNull();
    expect(parseBasicAuth('Basic !!!')).toBeNull();
  });
  it('keeps UTF-8 passwords', () => {
    expect(parseBasicAuth(basic('ops', 'pässwörd€'))?.password).toBe('pässwörd€');
  });
});

describe('hashing', () => {
  it('accepts the right password and refuses a wrong password or user', async () => {
    const c = await hashCredentials('admin', 'correct horse');
    expect(c.scheme).toBe('scrypt');
    expect(JSON.stringify(c)).not.toContain('correct horse');
    expect(await verifyCredentials(c, 'admin', 'correct horse')).toBe(true);
    expect(await verifyCredentials(c, 'admin', 'correct horsE')).toBe(false);
    expect(await verifyCredentials(c, 'admin2', 'correct horse')).toBe(false);
    expect(await verifyCredentials(c, '', '')).toBe(false);
  });
  it('uses a fresh salt each time', async () => {
    const a = await hashCredentials('admin', 'same password');
    const b = await hashCredentials('admin', 'same password');
    expect(a.salt).not.toBe(b.salt);
    expect(a.hash).not.toBe(b.hash);
  });
  it('refuses bad user names and short passwords with one line', async () => {
    expect(userProblem('a:b')).toMatch(/cannot contain ":"/);
    expect(userProblem('')).toMatch(/empty/);
    expect(userProblem('ok')).toBeNull();
    expect(passwordProblem('short')).toMatch(/at least 8/);
    await expect(hashCredentials('x:y', 'long enough')).rejects.toThrow(/cannot contain/);
  });
  it('names the file when it does not hold credentials', () => {
    expect(() => parseCredentials('{', '/x/http_credentials')).toThrow(/\/x\/http_credentials is not valid JSON/);
    expect(() => parseCredentials('{"version":1}', '/x/http_credentials')).toThrow(/does not hold biha HTTP credentials/);
  });
});

describe('the credentials file', () => {
  let pgdata: string;
  beforeEach(() => {
    pgdata = fs.mkdtempSync(path.join(os.tmpdir(), 'biha-httpauth-'));
    fs.mkdirSync(path.join(pgdata, 'pg_biha'), { mode: 0o700 });
  });
  afterEach(() => fs.rmSync(pgdata, { recursive: true, force: true }));

  it('is written 0600 and read again when it changes', async () => {
    const auth = new HttpAuth(credentialsPath(pgdata));
    expect(await auth.check(basic('admin', 'password-1'))).toBe('off');
    await writeCredentials(pgdata, await hashCredentials('admin', 'password-1'));
    expect(fs.statSync(credentialsPath(pgdata)).mode & 0o777).toBe(0o600);
    expect(await auth.check(basic('admin', 'password-1'))).toBe('ok');
    expect(await auth.check(basic('admin', 'password-2'))).toBe('unauthorized');
    expect(await auth.check(undefined)).toBe('unauthorized');
    await writeCredentials(pgdata, await hashCredentials('admin', 'password-2'));
    expect(await auth.check(basic('admin', 'password-2'))).toBe('ok');
    expect(await auth.check(basic('admin', 'password-1'))).toBe('unauthorized');
    expect(removeCredentials(pgdata)).toBe(true);
    expect(removeCredentials(pgdata)).toBe(false);
    expect(await auth.check(basic('admin', 'password-2'))).toBe('off');
  });
});
