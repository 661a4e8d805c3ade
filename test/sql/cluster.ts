// A throw-away PostgreSQL 15 primary and hot standby for the SQL-interface tests and bench/sql.ts.
// Unix sockets only (listen_addresses = ''), in a private directory under /tmp; every server runs as
// the OS user postgres and is stopped through its own data directory's postmaster.pid.
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { execa } from 'execa';
import pg from 'pg';
import { claimPorts } from '../helpers/ports.js';

export const PG_BIN = process.env.BIHA_PG_BIN ?? '/usr/lib/postgresql/15/bin';

const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/** Runs a PostgreSQL tool as the OS user postgres. */
export async function asPostgres(cmd: string, args: string[], opts: { input?: string; inputFile?: string } = {}): Promise<string> {
  const [file, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args];
  const r = await execa(file, argv, { ...opts, env: { LC_ALL: 'C', PGTZ: 'UTC' }, extendEnv: true, all: true });
  return r.all ?? '';
}

async function chownPostgres(p: string): Promise<void> {
  if (!asRoot) return;
  await execa('chown', ['postgres:postgres', p]);
}

export class PgNode {
  constructor(
    readonly name: string,
    readonly dir: string,
    readonly port: number,
    readonly sockDir: string,
  ) {}

  client(database = 'postgres', user = 'postgres'): pg.Client {
    return new pg.Client({ host: this.sockDir, port: this.port, database, user });
  }

  async query<T extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params: unknown[] = [], database = 'postgres'): Promise<T[]> {
    const c = this.client(database);
    await c.connect();
    try {
      return (await c.query<T>(sql, params)).rows;
    } finally {
      await c.end();
    }
  }

  async start(): Promise<void> {
    await asPostgres(`${PG_BIN}/pg_ctl`, ['-D', this.dir, '-l', path.join(this.dir, 'server.log'), '-w', '-t', '60', 'start']);
  }

  async stop(): Promise<void> {
    try {
      await fs.access(path.join(this.dir, 'postmaster.pid'));
    } catch {
      return;
    }
    await asPostgres(`${PG_BIN}/pg_ctl`, ['-D', this.dir, '-m', 'fast', '-w', '-t', '60', 'stop']);
  }

  /**
   * Runs a SQL script through psql the way pg_regress does (-X -a -q, input on stdin, stdout and
   * stderr in one stream) and returns the output.
   */
  async psqlScript(scriptFile: string, database = 'biha_db'): Promise<string> {
    const args = [
      '-c',
      'exec "$0" "$@" 2>&1',
      `${PG_BIN}/psql`,
      '-X', '-a', '-q',
      '-v', 'SHOW_CONTEXT=never',
      '-h', this.sockDir, '-p', String(this.port), '-U', 'postgres', '-d', database,
    ];
    try {
      return await asPostgres('sh', args, { inputFile: scriptFile });
    } catch (err) {
      // psql exits non-zero only for connection or script-reading failures.
      throw new Error(`psql on ${this.name} failed: ${(err as { all?: string }).all ?? String(err)}`, { cause: err });
    }
  }
}

export interface Pair {
  base: string;
  primary: PgNode;
  standby: PgNode;
  stop(): Promise<void>;
}

const EXTRA_CONF = (sockDir: string, port: number): string => `
# test cluster (test/sql/cluster.ts)
listen_addresses = ''
unix_socket_directories = '${sockDir}'
port = ${port}
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 16MB
max_wal_senders = 4
hot_standby = on
logging_collector = off
`;

export interface Scratch {
  base: string;
  nodes: PgNode[];
  /** Stops every server started here (standbys first) and removes the directory. */
  stop(): Promise<void>;
}

/** A private directory for servers, owned by postgres. */
export async function scratch(): Promise<Scratch> {
  const base = await fs.mkdtemp(path.join(os.tmpdir(), 'biha-sql-'));
  await chownPostgres(base);
  const nodes: PgNode[] = [];
  return {
    base,
    nodes,
    async stop(): Promise<void> {
      for (const n of [...nodes].reverse()) await n.stop().catch(() => undefined);
      await fs.rm(base, { recursive: true, force: true });
    },
  };
}

/** initdb + start a primary in the scratch directory. */
export async function startPrimary(s: Scratch, port: number, name = 'primary'): Promise<PgNode> {
  const n = new PgNode(name, path.join(s.base, name), port, s.base);
  await asPostgres(`${PG_BIN}/initdb`, ['-D', n.dir, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8', '--locale=C']);
  await fs.appendFile(path.join(n.dir, 'postgresql.conf'), EXTRA_CONF(s.base, port));
  s.nodes.push(n);
  await n.start();
  return n;
}

/** pg_basebackup from `primary` + start as a hot standby. */
export async function startStandby(s: Scratch, primary: PgNode, port: number, name = 'standby'): Promise<PgNode> {
  const n = new PgNode(name, path.join(s.base, name), port, s.base);
  await asPostgres(`${PG_BIN}/pg_basebackup`, [
    '-h', primary.sockDir, '-p', String(primary.port), '-U', 'postgres', '-D', n.dir, '-R', '-X', 'stream', '-c', 'fast', '--no-sync',
  ]);
  await fs.appendFile(path.join(n.dir, 'postgresql.conf'), `port = ${port}\n`);
  s.nodes.push(n);
  await n.start();
  return n;
}

/** A port pair claimed for this process (ports.ts), from 17100 on. */
export function pickPort(): number {
  return claimPorts(17100, 2);
}

/** A primary and one basebackup standby, both started; the caller must stop() them. */
export async function startPair(portBase = pickPort()): Promise<Pair> {
  const s = await scratch();
  try {
    const primary = await startPrimary(s, portBase);
    const standby = await startStandby(s, primary, portBase + 1);
    return { base: s.base, primary, standby, stop: () => s.stop() };
  } catch (err) {
    await s.stop();
    throw err;
  }
}

/** Waits (bounded) until the standby has replayed everything the primary has written so far. */
export async function waitForReplay(primary: PgNode, standby: PgNode, timeoutMs = 30_000): Promise<void> {
  const rows = await primary.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
  const lsn = rows[0]?.lsn;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await standby.query<{ done: boolean }>('SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS done', [lsn]);
    if (r[0]?.done) return;
    if (Date.now() > deadline) throw new Error(`standby did not replay up to ${lsn} within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Creates the roles bihactl init creates, and biha_db, on the primary. */
export async function createBihaRolesAndDb(primary: PgNode): Promise<void> {
  await primary.query(`
    CREATE ROLE biha_replication_user LOGIN REPLICATION;
    CREATE ROLE biha_cluster_management_role;
    CREATE ROLE biha_replication_role;
  `);
  await primary.query('CREATE DATABASE biha_db OWNER biha_replication_user');
}
