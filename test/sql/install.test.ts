// Installing and upgrading the biha schema: the plan (pure) and installSql on a real server.
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqlInstallError, installSql, listSqlScripts, planSqlInstall, sqlDir } from '../../src/controller/bridge/sqlbridge.js';
import { createBihaRolesAndDb, startPair, waitForReplay } from './cluster.js';
import type { Pair } from './cluster.js';

describe('planSqlInstall', () => {
  const s = listSqlScripts([
    'biha--1.0.sql',
    'biha--1.0--1.1.sql',
    'biha--1.1--1.2.sql',
    'biha--1.0--1.2.sql',
    'biha--1.2--2.0.sql',
    'biha--2.0.sql',
    'README',
    'biha--x.sql',
  ]);

  it('lists install and upgrade scripts, ignoring other files', () => {
    expect(s.installs).toEqual(['1.0', '2.0']);
    expect(s.upgrades).toHaveLength(4);
  });

  it('installs a version directly when it has its own script', () => {
    expect(planSqlInstall(s, null, '2.0')).toEqual(['biha--2.0.sql']);
    expect(planSqlInstall(s, null, '1.0')).toEqual(['biha--1.0.sql']);
  });

  it('installs an older base and upgrades when there is no direct script', () => {
    expect(planSqlInstall(s, null, '1.2')).toEqual(['biha--1.0.sql', 'biha--1.0--1.2.sql']);
    expect(planSqlInstall(s, null, '1.1')).toEqual(['biha--1.0.sql', 'biha--1.0--1.1.sql']);
  });

  it('upgrades along the shortest chain', () => {
    expect(planSqlInstall(s, '1.0', '2.0')).toEqual(['biha--1.0--1.2.sql', 'biha--1.2--2.0.sql']);
    expect(planSqlInstall(s, '1.1', '2.0')).toEqual(['biha--1.1--1.2.sql', 'biha--1.2--2.0.sql']);
    expect(planSqlInstall(s, '2.0', '2.0')).toEqual([]);
  });

  it('refuses downgrades and unknown versions', () => {
    expect(() => planSqlInstall(s, '2.0', '1.0')).toThrow(SqlInstallError);
    expect(() => planSqlInstall(s, '2.0', '1.0')).toThrow(/no upgrade path from biha schema 2.0 to 1.0/);
    expect(() => planSqlInstall(s, null, '3.0')).toThrow(/no script installs biha schema 3.0/);
  });

  it('finds the shipped scripts', async () => {
    const files = await fs.readdir(sqlDir());
    expect(files).toContain('biha--1.0.sql');
  });
});

describe('installSql on a real server', () => {
  let pair: Pair;
  let dir: string;

  async function withClient<T>(db: string, f: (c: pg.Client) => Promise<T>, user = 'postgres'): Promise<T> {
    const c = pair.primary.client(db, user);
    await c.connect();
    try {
      return await f(c);
    } finally {
      await c.end();
    }
  }
  const version = (db: string): Promise<string | undefined> =>
    withClient(db, async (c) => (await c.query<{ version: string }>('SELECT version FROM biha.schema_version')).rows[0]?.version);
  const hasHello = (db: string): Promise<boolean> =>
    withClient(db, async (c) => (await c.query<{ ok: boolean }>("SELECT to_regprocedure('biha.hello()') IS NOT NULL AS ok")).rows[0]?.ok ?? false);

  beforeAll(async () => {
    pair = await startPair();
    dir = path.join(pair.base, 'sql');
    await fs.mkdir(dir);
    await fs.copyFile(path.join(sqlDir(), 'biha--1.0.sql'), path.join(dir, 'biha--1.0.sql'));
    await fs.writeFile(
      path.join(dir, 'biha--1.0--1.1.sql'),
      `CREATE FUNCTION biha.hello() RETURNS text LANGUAGE sql AS $$ SELECT 'hello' $$;
       UPDATE biha.schema_version SET version = '1.1', installed_at = now();\n`,
    );
    await fs.writeFile(path.join(dir, 'biha--1.1--1.2.sql'), `UPDATE biha.schema_version SET version = '1.2';\nTHIS IS NOT SQL;\n`);
  });

  afterAll(async () => {
    await pair?.stop();
  });

  it('refuses to install before the biha roles exist, leaving nothing behind', async () => {
    const err = await withClient('postgres', (c) => installSql(c, '1.0', { dir })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SqlInstallError);
    expect((err as Error).message).toMatch(/role biha_cluster_management_role does not exist/);
    const left = await pair.primary.query<{ n: string }>("SELECT count(*) AS n FROM pg_namespace WHERE nspname = 'biha'");
    expect(left[0]?.n).toBe('0');
  });

  it('installs, is idempotent, upgrades, and rolls a failed chain back as a whole', async () => {
    await createBihaRolesAndDb(pair.primary);
    expect(await withClient('biha_db', (c) => installSql(c, '1.0', { dir }))).toBe('1.0');
    expect(await withClient('biha_db', (c) => installSql(c, '1.0', { dir }))).toBe('1.0');
    expect(await version('biha_db')).toBe('1.0');

    // Default target: the newest version (1.2), whose script is broken: nothing of 1.1 stays.
    const err = await withClient('biha_db', (c) => installSql(c, undefined, { dir })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SqlInstallError);
    expect((err as Error).message).toMatch(/^biha--1\.1--1\.2\.sql: syntax error/);
    expect(await version('biha_db')).toBe('1.0');
    expect(await hasHello('biha_db')).toBe(false);

    expect(await withClient('biha_db', (c) => installSql(c, '1.1', { dir }))).toBe('1.1');
    expect(await version('biha_db')).toBe('1.1');
    expect(await hasHello('biha_db')).toBe(true);
  });

  it('installs a version that has no install script of its own through the upgrade chain', async () => {
    await pair.primary.query('CREATE DATABASE biha_chain');
    expect(await withClient('biha_chain', (c) => installSql(c, '1.1', { dir }))).toBe('1.1');
    expect(await hasHello('biha_chain')).toBe(true);
  });

  it('installs the shipped scripts with the defaults', async () => {
    await pair.primary.query('CREATE DATABASE biha_shipped');
    expect(await withClient('biha_shipped', (c) => installSql(c))).toBe('1.0');
  });

  it('refuses a non-superuser and a server in recovery', async () => {
    await pair.primary.query('CREATE DATABASE biha_nosu');
    const e1 = await withClient('biha_nosu', (c) => installSql(c, '1.0', { dir }), 'biha_replication_user').catch((e: unknown) => e);
    expect((e1 as Error).message).toMatch(/must be installed by a superuser/);

    await waitForReplay(pair.primary, pair.standby);
    const c = pair.standby.client('biha_nosu');
    await c.connect();
    try {
      const e2 = await installSql(c, '1.0', { dir }).catch((e: unknown) => e);
      expect((e2 as Error).message).toMatch(/must be installed on the leader/);
    } finally {
      await c.end();
    }
  });
});
