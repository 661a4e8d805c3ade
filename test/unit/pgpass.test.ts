// The replication password lookup: libpq's matching of the password file (host, port, database,
// user, each exact or *), the file's mode, PGPASSFILE and BIHA_REPLICATION_PASSWORD.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { lookupPassword, passwordFilePath, passwordFromFile } from '../../src/bihactl/pgpass.js';

let dir = '';
const saved = { PGPASSFILE: process.env['PGPASSFILE'], BIHA_REPLICATION_PASSWORD: process.env['BIHA_REPLICATION_PASSWORD'], PGPASSWORD: process.env['PGPASSWORD'] };
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'biha-pgpass-'));
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});
afterEach(() => {
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

let n = 0;
function passfile(lines: string[], mode = 0o600): string {
  const f = path.join(dir, `pgpass-${n++}`);
  fs.writeFileSync(f, lines.join('\n') + '\n');
  fs.chmodSync(f, mode);
  return f;
}

const q = (over: Partial<{ host: string; port: number; user: string; database: string }> = {}) => ({
  host: '10.0.0.1',
  port: 5432,
  user: 'biha_replication_user',
  database: 'replication',
  ...over,
});

describe('passwordFromFile', () => {
  it('matches the database field: the first line for this database wins', async () => {
    const file = passfile([
      '# comment line',
      '10.0.0.1:5432:biha_db:biha_replication_user:for-biha-db',
      '10.0.0.1:5432:replication:biha_replication_user:for-replication',
      '10.0.0.1:5432:*:biha_replication_user:for-any',
    ]);
    const warn = (m: string): never => {
      throw new Error(m);
    };
    expect(await passwordFromFile(q(), { file, warn })).toBe('for-replication');
    expect(await passwordFromFile(q({ database: 'biha_db' }), { file, warn })).toBe('for-biha-db');
    expect(await passwordFromFile(q({ database: 'postgres' }), { file, warn })).toBe('for-any');
  });

  it('takes * in any field, and requires every other field to match', async () => {
    const file = passfile([
      '10.0.0.1:5433:replication:biha_replication_user:other-port',
      '10.0.0.9:*:replication:biha_replication_user:other-host',
      '*:5432:replication:someone_else:other-user',
      '*:*:replication:biha_replication_user:wildcards',
    ]);
    expect(await passwordFromFile(q(), { file })).toBe('wildcards');
    expect(await passwordFromFile(q({ port: 5433 }), { file })).toBe('other-port');
    expect(await passwordFromFile(q({ host: '10.0.0.9', port: 7000 }), { file })).toBe('other-host');
    expect(await passwordFromFile(q({ user: 'someone_else' }), { file })).toBe('other-user');
    expect(await passwordFromFile(q({ user: 'someone_else', port: 1 }), { file })).toBeNull();
    expect(await passwordFromFile(q({ database: 'biha_db' }), { file })).toBeNull();
  });

  it('reads escaped colons and backslashes', async () => {
    const file = passfile(['10.0.0.1:5432:replication:biha_replication_user:a\\:b\\\\c']);
    expect(await passwordFromFile(q(), { file })).toBe('a:b\\c');
  });

  it('lets a localhost line serve 127.0.0.1 and ::1, after the lines naming them', async () => {
    const file = passfile(['localhost:5432:*:biha_replication_user:local', '::1:5432:*:biha_replication_user:v6']);
    expect(await passwordFromFile(q({ host: '127.0.0.1' }), { file })).toBe('local');
    expect(await passwordFromFile(q({ host: '/var/run/postgresql' }), { file })).toBe('local');
    expect(await passwordFromFile(q({ host: '10.0.0.1' }), { file })).toBeNull();
  });

  it('ignores a file its group or others may read, with the warning libpq gives', async () => {
    for (const mode of [0o640, 0o604, 0o660]) {
      const file = passfile(['*:*:*:*:secret'], mode);
      const warnings: string[] = [];
      expect(await passwordFromFile(q(), { file, warn: (m) => warnings.push(m) })).toBeNull();
      expect(warnings).toEqual([`password file "${file}" has group or world access; permissions should be u=rw (0600) or less`]);
    }
    const ok = passfile(['*:*:*:*:secret'], 0o400);
    expect(await passwordFromFile(q(), { file: ok })).toBe('secret');
  });

  it('ignores something that is not a plain file, and a missing file without a word', async () => {
    const warnings: string[] = [];
    expect(await passwordFromFile(q(), { file: dir, warn: (m) => warnings.push(m) })).toBeNull();
    expect(warnings).toEqual([`password file "${dir}" is not a plain file`]);
    expect(await passwordFromFile(q(), { file: path.join(dir, 'missing'), warn: (m) => warnings.push(m) })).toBeNull();
    expect(warnings).toHaveLength(1);
  });
});

describe('lookupPassword', () => {
  it('BIHA_REPLICATION_PASSWORD first, then PGPASSFILE; PGPASSWORD does not switch the file off', async () => {
    const file = passfile(['*:*:replication:biha_replication_user:from-file']);
    process.env['PGPASSFILE'] = file;
    process.env['PGPASSWORD'] = 'someone elses';
    delete process.env['BIHA_REPLICATION_PASSWORD'];
    expect(passwordFilePath()).toBe(file);
    expect(await lookupPassword(q())).toBe('from-file');
    expect(await lookupPassword(q({ database: 'biha_db' }))).toBeNull();
    process.env['BIHA_REPLICATION_PASSWORD'] = 'from-env';
    expect(await lookupPassword(q({ database: 'biha_db' }))).toBe('from-env');
  });

  it('without PGPASSFILE the file is ~/.pgpass', () => {
    expect(passwordFilePath({ HOME: '/home/x' })).toBe('/home/x/.pgpass');
    expect(passwordFilePath({ HOME: '/home/x', PGPASSFILE: '/etc/pw' })).toBe('/etc/pw');
  });
});
