// The Set workload: every client inserts unique values, one statement per transaction, and records
// each attempt with its outcome:
//   ok    the commit was acknowledged without any warning,
//   fail  definitely not applied (no connection before the statement was sent, the driver
//         refused to send it on a broken connection, or PostgreSQL refused it as read-only,
//         SQLSTATE 25006, or could not plan it, class 42),
//   info  unknown (time-outs, connections broken mid-statement, any other error, and a commit that
//         came back with PostgreSQL's "might not have been replicated" warning: it committed
//         locally after the synchronous wait was cancelled, so it is NOT an acknowledged write).
// The same statement reads the raft term the node is in from biha.status_v (status.json, written
// by the controller whenever its role or term changes), so every acknowledged write carries the
// (node, term) it was made in.
import pg from 'pg';
import { connectMultiHost } from '../../src/client/multihost.js';
import type { MultiHostTarget } from '../../src/client/multihost.js';
import type { History, Outcome } from './history.js';
import { DB, PASSWORD, USER } from './nodes.js';
import { sleep } from './proc.js';

export const TABLE = 'jepsen_set';

export const CREATE_TABLE = `create table if not exists ${TABLE} (v text primary key, node int, term bigint, at timestamptz default clock_timestamp())`;

const INSERT = `insert into ${TABLE}(v, node, term) values ($1, $2, (select term from biha.status_v where id = $2)) returning term`;

/** Signs of a commit whose synchronous wait was cancelled (PostgreSQL's syncrep.c warnings). */
export function isSyncCancelNotice(text: string): boolean {
  return /might not have been replicated|canceling (the )?wait for synchronous replication/i.test(text);
}

/** Classifies an error thrown by the INSERT itself (after the statement was sent). */
export function classifyStatementError(e: unknown): { outcome: Outcome; error: string } {
  const err = e as { code?: string; message?: string };
  const msg = `${err.code ? `${err.code} ` : ''}${err.message ?? String(e)}`;
  // read_only_sql_transaction: the statement was refused before doing anything; class 42
  // (e.g. 42P01: the table is not replayed yet on a fresh follower): it never ran.
  if (err.code === '25006' || (err.code !== undefined && err.code.startsWith('42'))) return { outcome: 'fail', error: msg };
  // node-postgres refuses to send on a connection that already broke or was closed.
  if (err.code === undefined && /is not queryable/.test(err.message ?? '')) return { outcome: 'fail', error: msg };
  return { outcome: 'info', error: msg };
}

export interface ClientSpec {
  readonly name: string;
  /** Multi-host target (read-write) or one host. */
  readonly target: { kind: 'multi'; t: MultiHostTarget } | { kind: 'pinned'; node: number; host: string; port: number };
  readonly periodMs: number;
}

export interface WorkloadOptions {
  readonly clients: readonly ClientSpec[];
  /** node id of a host:port (for multi-host connections). */
  readonly nodeOf: (host: string, port: number) => number;
  readonly statementTimeoutMs: number;
  readonly queryTimeoutMs: number;
  /** Hard cap on operations per client (a bound on every loop). */
  readonly maxOpsPerClient: number;
}

type Conn = { client: pg.Client; node: number };

function destroy(c: pg.Client): void {
  // end() can wait forever on a partitioned socket; drop the socket instead.
  const stream = (c as unknown as { connection?: { stream?: { destroy?: () => void } } }).connection?.stream;
  try {
    stream?.destroy?.();
  } catch {
    // already closed
  }
  void c.end().catch(() => undefined);
}

export class Workload {
  private stopped = false;
  private loops: Array<Promise<void>> = [];
  readonly counts = { ok: 0, fail: 0, info: 0 };

  constructor(
    private readonly o: WorkloadOptions,
    private readonly h: History,
  ) {}

  start(): void {
    for (const c of this.o.clients) this.loops.push(this.loop(c));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.loops);
  }

  private async connect(spec: ClientSpec): Promise<Conn> {
    const notices: string[] = [];
    let client: pg.Client;
    let node: number;
    if (spec.target.kind === 'multi') {
      const r = await connectMultiHost(spec.target.t);
      client = r.client;
      node = this.o.nodeOf(r.host, r.port);
    } else {
      client = new pg.Client({ host: spec.target.host, port: spec.target.port, user: USER, password: PASSWORD, database: DB, connectionTimeoutMillis: 2000 });
      client.on('error', () => undefined);
      try {
        await client.connect();
      } catch (e) {
        destroy(client);
        throw e;
      }
      node = spec.target.node;
    }
    client.on('notice', (n: { message?: string; severity?: string; detail?: string }) => notices.push(`${n.severity ?? ''} ${n.message ?? ''} ${n.detail ?? ''}`.trim()));
    (client as unknown as { jepsenNotices: string[] }).jepsenNotices = notices;
    try {
      await client.query({ text: `set statement_timeout = ${Math.round(this.o.statementTimeoutMs)}`, query_timeout: 3000 } as pg.QueryConfig);
    } catch (e) {
      destroy(client);
      throw e;
    }
    return { client, node };
  }

  private async loop(spec: ClientSpec): Promise<void> {
    let conn: Conn | null = null;
    for (let seq = 1; seq <= this.o.maxOpsPerClient && !this.stopped; seq++) {
      const value = `${spec.name}-${seq}`;
      const invoke = Date.now();
      if (!conn) {
        try {
          conn = await this.connect(spec);
        } catch (e) {
          // Nothing was sent: the write was definitely not applied.
          this.record({ client: spec.name, value, invoke, complete: Date.now(), outcome: 'fail', node: null, term: null, error: `connect: ${e instanceof Error ? e.message : String(e)}` });
          await sleep(Math.max(spec.periodMs, 200));
          continue;
        }
      }
      const c: Conn = conn;
      const notices = (c.client as unknown as { jepsenNotices: string[] }).jepsenNotices;
      notices.length = 0;
      try {
        const r = await c.client.query<{ term: string | null }>({ text: INSERT, values: [value, c.node], query_timeout: this.o.queryTimeoutMs } as pg.QueryConfig);
        const termText = r.rows[0]?.term;
        const term = termText === null || termText === undefined ? null : Number(termText);
        const notice = notices.join(' | ');
        const cancelled = notices.some(isSyncCancelNotice);
        this.record({
          client: spec.name, value, invoke, complete: Date.now(), outcome: cancelled ? 'info' : 'ok', node: c.node, term,
          ...(cancelled ? { error: 'commit acknowledged with a cancelled synchronous wait' } : {}),
          ...(notice ? { notice } : {}),
        });
      } catch (e) {
        const complete = Date.now();
        const { outcome, error } = classifyStatementError(e);
        const notice = notices.join(' | ');
        this.record({ client: spec.name, value, invoke, complete, outcome, node: c.node, term: null, error, ...(notice ? { notice } : {}) });
        // A read-only pinned node stays connected (it may become the leader); anything else reconnects.
        if (!(outcome === 'fail' && spec.target.kind === 'pinned')) {
          destroy(c.client);
          conn = null;
        }
      }
      await sleep(spec.periodMs);
    }
    if (conn) destroy(conn.client);
  }

  private record(r: Parameters<History['op']>[0]): void {
    this.h.op(r);
    this.counts[r.outcome]++;
  }
}

/** Reads every value of the set on node i (the final read). */
export async function readSet(host: string, port: number): Promise<Set<string>> {
  const c = new pg.Client({ host, port, user: USER, password: PASSWORD, database: DB, connectionTimeoutMillis: 5000 });
  c.on('error', () => undefined);
  await c.connect();
  try {
    const r = await c.query<{ v: string }>({ text: `select v from ${TABLE}`, query_timeout: 60_000 } as pg.QueryConfig);
    return new Set(r.rows.map((x) => x.v));
  } finally {
    destroy(c);
  }
}

/** Runs one statement on a host (setup: the table). */
export async function exec(host: string, port: number, sql: string): Promise<void> {
  const c = new pg.Client({ host, port, user: USER, password: PASSWORD, database: DB, connectionTimeoutMillis: 5000 });
  c.on('error', () => undefined);
  await c.connect();
  try {
    await c.query({ text: sql, query_timeout: 30_000 } as pg.QueryConfig);
  } finally {
    destroy(c);
  }
}

/** Asks each node's PostgreSQL whether it is a primary (for the timeline), one connection per node. */
export class RoleProbe {
  private conns = new Map<number, pg.Client>();

  constructor(private readonly targets: ReadonlyMap<number, { host: string; port: number }>) {}

  async roleOf(node: number): Promise<'PRIMARY' | 'STANDBY' | null> {
    const t = this.targets.get(node);
    if (!t) return null;
    let c = this.conns.get(node);
    try {
      if (!c) {
        c = new pg.Client({ host: t.host, port: t.port, user: USER, password: PASSWORD, database: DB, connectionTimeoutMillis: 800 });
        c.on('error', () => undefined);
        this.conns.set(node, c);
        await c.connect();
      }
      const r = await c.query<{ r: boolean }>({ text: 'select pg_is_in_recovery() as r', query_timeout: 800 } as pg.QueryConfig);
      return r.rows[0]?.r ? 'STANDBY' : 'PRIMARY';
    } catch {
      if (c) destroy(c);
      this.conns.delete(node);
      return null;
    }
  }

  close(): void {
    for (const c of this.conns.values()) destroy(c);
    this.conns.clear();
  }
}
