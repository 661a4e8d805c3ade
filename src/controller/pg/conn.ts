// SQL to the local PostgreSQL server over its unix socket (node-postgres).
//
// Measured behaviour honoured here (POSTGRES-NOTES.md C, E):
//  - promote with pg_promote(false) and poll pg_is_in_recovery() ourselves (≈ 20 ms instead of ≈ 104 ms);
//  - detach / repoint a standby with ALTER SYSTEM primary_conninfo + reload (no restart);
//  - always set application_name in primary_conninfo, or the standby shows up as "walreceiver".

import pg from 'pg';
import type { Client as PgClient, ClientConfig } from 'pg';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BihaError } from '../errors.js';
import { parseLsnOrNull, tliFromWalFile } from './lsn.js';
import { readPostmasterPidFile } from './tools.js';

export interface LocalConnOpts {
  /**
   * The data directory of the server: its socket directory is read from postmaster.pid at each
   * connect (the first of unix_socket_directories, whatever the DBA configured).
   */
  pgdata?: string;
  /** A fixed socket directory instead (tests, or a server without a data directory here). */
  socketDir?: string;
  port: number;
  user: string;
  /** Default 'postgres'. */
  database?: string;
  /** Default 'biha_controller'. */
  applicationName?: string;
}

const STATEMENT_TIMEOUT_MS = 5000;
const CONNECT_TIMEOUT_MS = 2000;

/** Where PostgreSQL builds of this machine put sockets by default (Debian's, then upstream's). */
export function defaultSocketDir(): string {
  return fs.existsSync('/var/run/postgresql') ? '/var/run/postgresql' : '/tmp';
}

/**
 * The unix socket directory to reach the server of pgdata: the one its postmaster.pid names, or
 * without a running server (or one that has no unix socket) the fixed one, else the build default.
 */
export async function localSocketDir(o: Pick<LocalConnOpts, 'pgdata' | 'socketDir'>): Promise<string> {
  if (o.socketDir !== undefined) return o.socketDir;
  if (o.pgdata !== undefined) {
    const pf = await readPostmasterPidFile(o.pgdata);
    // A relative directory is relative to the data directory (the postmaster's working directory).
    if (pf?.socketDir) return path.resolve(o.pgdata, pf.socketDir);
  }
  return defaultSocketDir();
}

async function clientConfig(o: LocalConnOpts): Promise<ClientConfig> {
  return {
    host: await localSocketDir(o),
    port: o.port,
    user: o.user,
    database: o.database ?? 'postgres',
    application_name: o.applicationName ?? 'biha_controller',
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    statement_timeout: STATEMENT_TIMEOUT_MS,
    // Client-side guard in case the socket hangs without an error.
    query_timeout: STATEMENT_TIMEOUT_MS + 2000,
  };
}

/** An error from the server about the statement (it has a SQLSTATE); the connection is still fine. */
function isServerError(e: unknown): boolean {
  const x = e as { code?: unknown; severity?: unknown };
  return typeof x.code === 'string' && /^[0-9A-Z]{5}$/.test(x.code) && typeof x.severity === 'string' && x.severity !== 'FATAL' && x.severity !== 'PANIC';
}

export class LocalPgError extends BihaError {
  /** SQLSTATE when the server reported the error. */
  readonly sqlState: string | null;
  constructor(message: string, opts: { cause: unknown; sqlState: string | null; hint?: string }) {
    super(opts.sqlState ? 'sql_error' : 'pg_unreachable', message, opts);
    this.name = 'LocalPgError';
    this.sqlState = opts.sqlState;
  }
}

/** One lazily (re)connected client to the local server. */
export class LocalPg {
  private client: PgClient | null = null;
  private connecting: Promise<PgClient> | null = null;
  private closed = false;

  constructor(readonly opts: LocalConnOpts) {}

  private async connect(): Promise<PgClient> {
    if (this.client) return this.client;
    if (this.connecting) return this.connecting;
    this.connecting = (async () => {
      const c = new pg.Client(await clientConfig(this.opts));
      c.on('error', () => {
        // The server went away (shutdown, crash, terminate). Reconnect on the next query.
        if (this.client === c) this.client = null;
        c.end().catch(() => undefined);
      });
      try {
        await c.connect();
      } catch (e) {
        c.end().catch(() => undefined);
        throw e;
      }
      if (this.closed) {
        await c.end().catch(() => undefined);
        throw new BihaError('pg_closed', 'the local PostgreSQL connection was closed');
      }
      this.client = c;
      return c;
    })();
    try {
      return await this.connecting;
    } finally {
      this.connecting = null;
    }
  }

  /** The end of the queue of queries: one at a time on the one connection, in call order. */
  private tail: Promise<unknown> = Promise.resolve();

  /** Runs after every query issued before it (the poller and actions share the connection). */
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]> {
    const run = this.tail.then(() => this.queryNow<T>(sql, params));
    this.tail = run.catch(() => undefined);
    return run;
  }

  private async queryNow<T>(sql: string, params?: unknown[]): Promise<T[]> {
    if (this.closed) throw new BihaError('pg_closed', 'the local PostgreSQL connection was closed');
    let c: PgClient;
    try {
      c = await this.connect();
    } catch (e) {
      throw new LocalPgError(
        `cannot connect to PostgreSQL on ${await localSocketDir(this.opts).catch(() => '?')} port ${this.opts.port}: ${(e as Error).message}`,
        { cause: e, sqlState: null, hint: 'is PostgreSQL running?' },
      );
    }
    try {
      const r = await c.query(sql, params);
      return r.rows as T[];
    } catch (e) {
      if (isServerError(e)) {
        throw new LocalPgError((e as Error).message, { cause: e, sqlState: (e as { code: string }).code });
      }
      if (this.client === c) this.client = null;
      c.end().catch(() => undefined);
      throw new LocalPgError(`lost the connection to PostgreSQL on port ${this.opts.port}: ${(e as Error).message}`, {
        cause: e,
        sqlState: (e as { code?: unknown }).code === '57P01' ? '57P01' : null,
      });
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    const c = this.client;
    this.client = null;
    if (c) await c.end().catch(() => undefined);
  }
}

/** Open a connection, run fn, always close. */
export async function withConn<T>(o: LocalConnOpts, fn: (c: PgClient) => Promise<T>): Promise<T> {
  const c = new pg.Client(await clientConfig(o));
  c.on('error', () => undefined);
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end().catch(() => undefined);
  }
}

// ---------------------------------------------------------------------------------------------
// Status

export interface WalReceiverStatus {
  status: string;
  senderHost: string | null;
  senderPort: number | null;
  receivedTli: number | null;
}

export interface ReplicationRow {
  applicationName: string;
  state: string;
  syncState: string;
  sentLsn: number | null;
  flushLsn: number | null;
  replayLsn: number | null;
  replayLagMs: number | null;
}

export interface LocalPgStatus {
  inRecovery: boolean;
  tli: number;
  receiveLsn: number | null;
  replayLsn: number | null;
  currentLsn: number | null;
  walReceiver: WalReceiverStatus | null;
  replayPauseState: string | null;
  /** server_version_num (absent where a status was made up, as in tests). */
  serverVersion?: number;
  replication: ReplicationRow[];
  /** biha's replication slots here (absent where a status was made up, as in tests). */
  slots?: SlotRow[];
}

/** One biha_node_<id> slot of pg_replication_slots. */
export interface SlotRow {
  slotName: string;
  active: boolean;
  /** reserved | extended | unreserved | lost (PostgreSQL 13+), '' when unknown. */
  walStatus: string;
  /** WAL this node keeps for the slot: from its restart_lsn to this node's WAL position; null when it holds none. */
  retainedBytes: number | null;
}

const STATUS_SQL = `
SELECT r.in_recovery,
       current_setting('server_version_num')::int AS server_version,
       CASE WHEN r.in_recovery THEN NULL ELSE pg_current_wal_lsn()::text END AS current_lsn,
       CASE WHEN r.in_recovery THEN NULL ELSE pg_walfile_name(pg_current_wal_lsn()) END AS walfile,
       pg_last_wal_receive_lsn()::text AS receive_lsn,
       pg_last_wal_replay_lsn()::text AS replay_lsn,
       CASE WHEN r.in_recovery THEN pg_get_wal_replay_pause_state() END AS pause_state,
       (SELECT timeline_id FROM pg_control_checkpoint()) AS ckpt_tli,
       (SELECT min_recovery_end_timeline FROM pg_control_recovery()) AS minrec_tli,
       (SELECT row_to_json(w) FROM (SELECT status, sender_host, sender_port, received_tli
                                      FROM pg_stat_wal_receiver) w) AS wal_receiver,
       (SELECT coalesce(json_agg(x ORDER BY x.application_name), '[]'::json)
          FROM (SELECT application_name, state, sync_state,
                       sent_lsn::text AS sent_lsn, flush_lsn::text AS flush_lsn, replay_lsn::text AS replay_lsn,
                       (extract(epoch FROM replay_lag) * 1000)::float8 AS replay_lag_ms
                  FROM pg_stat_replication) x) AS replication,
       (SELECT coalesce(json_agg(y ORDER BY y.slot_name), '[]'::json)
          FROM (SELECT slot_name, active, coalesce(wal_status, '') AS wal_status,
                       pg_wal_lsn_diff(CASE WHEN r.in_recovery THEN greatest(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())
                                            ELSE pg_current_wal_lsn() END, restart_lsn)::float8 AS retained_bytes
                  FROM pg_replication_slots
                 WHERE slot_type = 'physical' AND slot_name LIKE 'biha\\_node\\_%') y) AS slots
  FROM (SELECT pg_is_in_recovery() AS in_recovery) r`;

interface StatusRow {
  in_recovery: boolean;
  server_version: number;
  current_lsn: string | null;
  walfile: string | null;
  receive_lsn: string | null;
  replay_lsn: string | null;
  pause_state: string | null;
  ckpt_tli: number | null;
  minrec_tli: number | null;
  wal_receiver: { status: string; sender_host: string | null; sender_port: number | null; received_tli: number | null } | null;
  replication: Array<{
    application_name: string | null;
    state: string | null;
    sync_state: string | null;
    sent_lsn: string | null;
    flush_lsn: string | null;
    replay_lsn: string | null;
    replay_lag_ms: number | null;
  }>;
  slots: Array<{ slot_name: string; active: boolean; wal_status: string; retained_bytes: number | null }>;
}

/** One round trip: recovery state, timeline, LSNs, walreceiver and walsenders. */
export async function localStatus(pg: LocalPg): Promise<LocalPgStatus> {
  const rows = await pg.query<StatusRow>(STATUS_SQL);
  const r = rows[0];
  if (!r) throw new BihaError('pg_status', 'PostgreSQL returned no status row');
  const wr = r.wal_receiver
    ? {
        status: r.wal_receiver.status,
        senderHost: r.wal_receiver.sender_host,
        senderPort: r.wal_receiver.sender_port,
        receivedTli: r.wal_receiver.received_tli,
      }
    : null;
  let tli: number;
  if (!r.in_recovery && r.walfile) tli = tliFromWalFile(r.walfile);
  else if (wr?.receivedTli) tli = wr.receivedTli;
  else tli = Math.max(r.ckpt_tli ?? 0, r.minrec_tli ?? 0);
  return {
    inRecovery: r.in_recovery,
    tli,
    receiveLsn: parseLsnOrNull(r.receive_lsn),
    replayLsn: parseLsnOrNull(r.replay_lsn),
    currentLsn: parseLsnOrNull(r.current_lsn),
    walReceiver: wr,
    replayPauseState: r.pause_state,
    serverVersion: r.server_version,
    replication: r.replication.map((x) => ({
      applicationName: x.application_name ?? '',
      state: x.state ?? '',
      syncState: x.sync_state ?? '',
      sentLsn: parseLsnOrNull(x.sent_lsn),
      flushLsn: parseLsnOrNull(x.flush_lsn),
      replayLsn: parseLsnOrNull(x.replay_lsn),
      replayLagMs: x.replay_lag_ms,
    })),
    slots: r.slots.map((x) => ({
      slotName: x.slot_name,
      active: x.active,
      walStatus: x.wal_status,
      retainedBytes: x.retained_bytes === null ? null : Math.max(0, x.retained_bytes),
    })),
  };
}

// ---------------------------------------------------------------------------------------------
// Changes

/** A SQL string literal, safe whatever standard_conforming_strings says. */
export function quoteLiteral(s: string): string {
  return pg.escapeLiteral(s);
}

const GUC_NAME_RE = /^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$/;
const SLOT_RE = /^[a-z0-9_]{1,63}$/;

function checkGucName(name: string): void {
  if (!GUC_NAME_RE.test(name)) throw new BihaError('bad_setting', `"${name}" is not a valid configuration parameter name`);
}

export function checkSlotName(name: string): void {
  if (!SLOT_RE.test(name)) {
    throw new BihaError('bad_slot_name', `"${name}" is not a valid replication slot name`, {
      hint: 'use 1-63 lower-case letters, digits and underscores',
    });
  }
}

/** ALTER SYSTEM SET / RESET (null) each setting, then pg_reload_conf(). */
export async function alterSystem(pg: LocalPg, settings: Record<string, string | null>): Promise<void> {
  for (const [name, value] of Object.entries(settings)) {
    checkGucName(name);
    // PostgreSQL 15 refuses ALTER SYSTEM for a custom name (biha.x) it has no placeholder for yet;
    // setting it in this session first creates the placeholder.
    if (name.includes('.')) await pg.query('SELECT set_config($1, $2, false)', [name, value ?? '']);
    // ALTER SYSTEM takes no bind parameters and cannot run in a transaction block.
    await pg.query(value === null ? `ALTER SYSTEM RESET ${name}` : `ALTER SYSTEM SET ${name} = ${quoteLiteral(value)}`);
  }
  await pg.query('SELECT pg_reload_conf()');
}

/** Point this standby at an upstream (or detach it with conninfo '' and slot ''). */
export async function setPrimary(pg: LocalPg, conninfo: string, slot: string): Promise<void> {
  if (slot !== '') checkSlotName(slot);
  await alterSystem(pg, { primary_conninfo: conninfo, primary_slot_name: slot });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** pg_promote(false), then poll pg_is_in_recovery() every 2 ms. No-op on a primary. */
export async function promote(pg: LocalPg, timeoutMs: number): Promise<void> {
  const first = await pg.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r');
  if (first[0]?.r === false) return;
  await pg.query('SELECT pg_promote(false)');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const rows = await pg.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r');
    if (rows[0]?.r === false) return;
    if (Date.now() >= deadline) {
      throw new BihaError('promote_timeout', `PostgreSQL was still in recovery ${timeoutMs} ms after pg_promote()`, {
        hint: 'see the server log',
      });
    }
    await sleep(2);
  }
}

/**
 * CHECKPOINT and wait for it. Run it on a newly promoted primary before any node rewinds from
 * it: until the post-promotion checkpoint, its control file still names the old timeline and
 * pg_rewind reports "source and target cluster are on the same timeline; no rewind required".
 */
export async function checkpoint(pg: LocalPg): Promise<void> {
  await pg.query('CHECKPOINT');
}

/** Create a physical slot reserving WAL now, if it does not exist. */
export async function ensureSlot(pg: LocalPg, name: string): Promise<void> {
  checkSlotName(name);
  const rows = await pg.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [name]);
  if (rows.length > 0) return;
  try {
    await pg.query('SELECT pg_create_physical_replication_slot($1, true)', [name]);
  } catch (e) {
    if (e instanceof LocalPgError && e.sqlState === '42710') return; // created concurrently
    throw e;
  }
}

/** Drop a slot if it exists; an active slot's walsender is terminated first. */
export async function dropSlot(pg: LocalPg, name: string): Promise<void> {
  checkSlotName(name);
  for (let attempt = 0; attempt < 100; attempt++) {
    const rows = await pg.query<{ active_pid: number | null }>(
      'SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1',
      [name],
    );
    const row = rows[0];
    if (!row) return;
    if (row.active_pid !== null) {
      await pg.query('SELECT pg_terminate_backend($1)', [row.active_pid]);
      await sleep(10);
      continue;
    }
    try {
      await pg.query('SELECT pg_drop_replication_slot($1)', [name]);
      return;
    } catch (e) {
      // 42704: already gone; 55006: became active again in between.
      if (e instanceof LocalPgError && e.sqlState === '42704') return;
      if (!(e instanceof LocalPgError && e.sqlState === '55006')) throw e;
      await sleep(10);
    }
  }
  throw new BihaError('slot_busy', `replication slot "${name}" stays in use and cannot be dropped`, {
    hint: 'stop the standby that streams from it',
  });
}

// ---------------------------------------------------------------------------------------------
// Connection strings and password files

/** A libpq conninfo value, always single-quoted with \ and ' escaped. */
export function conninfoValue(v: string): string {
  return `'${v.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** Parse a keyword=value conninfo string (the inverse of what replicationConninfo writes). */
export function parseConninfo(s: string): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  const n = s.length;
  const ws = (): void => {
    while (i < n && /\s/.test(s.charAt(i))) i++;
  };
  for (ws(); i < n; ws()) {
    const eq = s.indexOf('=', i);
    if (eq < 0) throw new BihaError('bad_conninfo', `missing "=" after "${s.slice(i)}" in connection string`);
    const key = s.slice(i, eq).trim();
    i = eq + 1;
    ws();
    let val = '';
    if (s.charAt(i) === "'") {
      i++;
      for (;;) {
        if (i >= n) throw new BihaError('bad_conninfo', 'unterminated quoted value in connection string');
        const ch = s.charAt(i);
        if (ch === '\\' && i + 1 < n) {
          val += s.charAt(i + 1);
          i += 2;
        } else if (ch === "'") {
          i++;
          break;
        } else {
          val += ch;
          i++;
        }
      }
    } else {
      while (i < n && !/\s/.test(s.charAt(i))) {
        if (s.charAt(i) === '\\' && i + 1 < n) i++;
        val += s.charAt(i);
        i++;
      }
    }
    out[key] = val;
  }
  return out;
}

export function replicationConninfo(o: {
  host: string;
  port: number;
  user: string;
  passfile: string;
  applicationName: string;
  connectTimeoutS?: number;
}): string {
  return [
    `host=${conninfoValue(o.host)}`,
    `port=${o.port}`,
    `user=${conninfoValue(o.user)}`,
    `passfile=${conninfoValue(o.passfile)}`,
    `application_name=${conninfoValue(o.applicationName)}`,
    `connect_timeout=${o.connectTimeoutS ?? 2}`,
  ].join(' ');
}

function pgpassField(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/:/g, '\\:');
}

/** One ~/.pgpass line. Use database 'replication' for streaming connections, '*' for any. */
export function pgpassLine(o: { host: string; port: number | '*'; database: string; user: string; password: string }): string {
  return [o.host, String(o.port), o.database, o.user, o.password].map(pgpassField).join(':');
}

