// A libpq-style multi-host connection for node-postgres (which has none): hosts are tried in
// order and, with target_session_attrs=read-write, the first one that accepts writes is kept.
// Used by the demo, the benchmarks and the jepsen-lite clients, like an application would.
import { parse as parseConnectionString } from 'pg-connection-string';
import type { ConnectionOptions } from 'pg-connection-string';
import pg from 'pg';

export interface MultiHostTarget {
  readonly hosts: ReadonlyArray<{ host: string; port: number }>;
  readonly user: string;
  readonly password?: string;
  readonly database: string;
  readonly targetSessionAttrs: 'any' | 'read-write' | 'read-only';
  readonly connectTimeoutMs: number;
}

/**
 * Splits a URI host list "h1:p1,[v6]:p2,h3" into hosts and ports (5432 when a host has none).
 * pg-connection-string parses one host only: the list is taken apart here.
 */
export function splitHostList(list: string): Array<{ host: string; port: number }> {
  const out: Array<{ host: string; port: number }> = [];
  let i = 0;
  while (i <= list.length) {
    let host: string;
    let j: number;
    if (list[i] === '[') {
      const close = list.indexOf(']', i);
      if (close < 0) throw new Error(`unclosed [ in the host list "${list}"`);
      host = decodeURIComponent(list.slice(i + 1, close));
      j = close + 1;
    } else {
      j = i;
      while (j < list.length && list[j] !== ':' && list[j] !== ',') j++;
      host = decodeURIComponent(list.slice(i, j));
    }
    let port = 5432;
    if (list[j] === ':') {
      let k = j + 1;
      while (k < list.length && list[k] !== ',') k++;
      const text = list.slice(j + 1, k);
      port = Number(text);
      if (!/^\d+$/.test(text) || port < 1 || port > 65535) throw new Error(`bad port "${text}" in the host list "${list}"`);
      j = k;
    }
    if (host === '') throw new Error(`empty host in the host list "${list}"`);
    out.push({ host, port });
    if (j >= list.length) break;
    if (list[j] !== ',') throw new Error(`unexpected "${list[j]}" in the host list "${list}"`);
    i = j + 1;
  }
  return out;
}

/**
 * Parses postgresql://user[:password]@h1:p1,[v6]:p2/db?target_session_attrs=...&connect_timeout=S.
 * User, password, database and parameters are read by pg-connection-string (from the URI with its
 * host list replaced by one host), the host list by splitHostList.
 */
export function parseMultiHostUri(uri: string): MultiHostTarget {
  const m = /^(postgres(?:ql)?:\/\/)([^/?]*)(.*)$/.exec(uri);
  if (!m) throw new Error(`not a postgresql:// connection URI: ${uri}`);
  const authority = m[2]!;
  const at = authority.lastIndexOf('@');
  const userinfo = at >= 0 ? authority.slice(0, at + 1) : '';
  const hostList = authority.slice(at + 1);
  if (hostList === '') throw new Error(`no host in the connection URI: ${uri}`);
  const hosts = splitHostList(hostList);
  let parsed: ConnectionOptions;
  try {
    parsed = parseConnectionString(`${m[1]}${userinfo}localhost${m[3]}`);
  } catch (e) {
    throw new Error(`not a postgresql:// connection URI: ${uri} (${e instanceof Error ? e.message : String(e)})`);
  }
  const param = (k: string): string | undefined => {
    const v = parsed[k];
    return typeof v === 'string' ? v : undefined;
  };
  const tsa = param('target_session_attrs') ?? 'any';
  if (tsa !== 'any' && tsa !== 'read-write' && tsa !== 'read-only') throw new Error(`unsupported target_session_attrs=${tsa}`);
  const password = parsed.password ? parsed.password : process.env['PGPASSWORD'];
  return {
    hosts,
    user: parsed.user || process.env['PGUSER'] || 'postgres',
    ...(password !== undefined ? { password } : {}),
    database: parsed.database || 'postgres',
    targetSessionAttrs: tsa,
    connectTimeoutMs: Number(param('connect_timeout') ?? '2') * 1000,
  };
}

/** Connects to the first host matching target_session_attrs; throws with every host's reason. */
export async function connectMultiHost(t: MultiHostTarget): Promise<{ client: pg.Client; host: string; port: number }> {
  const reasons: string[] = [];
  for (const h of t.hosts) {
    const client = new pg.Client({
      host: h.host,
      port: h.port,
      user: t.user,
      database: t.database,
      connectionTimeoutMillis: t.connectTimeoutMs,
      ...(t.password !== undefined ? { password: t.password } : {}),
    });
    client.on('error', () => undefined);
    try {
      await client.connect();
      if (t.targetSessionAttrs !== 'any') {
        const r = await client.query<{ ro: boolean }>(
          "select pg_is_in_recovery() or current_setting('transaction_read_only')::bool as ro",
        );
        const ro = r.rows[0]?.ro === true;
        if (ro !== (t.targetSessionAttrs === 'read-only')) {
          reasons.push(`${h.host}:${h.port}: ${ro ? 'read-only' : 'read-write'}`);
          await client.end().catch(() => undefined);
          continue;
        }
      }
      return { client, host: h.host, port: h.port };
    } catch (e) {
      reasons.push(`${h.host}:${h.port}: ${e instanceof Error ? e.message : String(e)}`);
      await client.end().catch(() => undefined);
    }
  }
  throw new Error(`no suitable host: ${reasons.join('; ')}`);
}

export interface GapResult {
  readonly ok: number;
  readonly failed: number;
  /** Longest time between two acknowledged inserts (ms). */
  readonly maxGapMs: number;
  /** When the longest gap started and ended (ms since the run started). */
  readonly gapFromMs: number;
  readonly gapToMs: number;
}

/**
 * Runs `write` every `periodMs` through the multi-host target for `seconds` (or until `stop()`),
 * with a connection made on the first write and again after any error (a 2 s query timeout is the
 * writer's to set). `write` gets the connection, its port and the attempt number (1, 2, 3...);
 * its resolving is an acknowledged write. Returns how many attempts failed.
 */
export async function pacedWrites(
  t: MultiHostTarget,
  o: { periodMs: number; seconds: number; stop?: () => boolean },
  write: (c: { client: pg.Client; port: number; fresh: boolean }, n: number) => Promise<void>,
): Promise<{ failed: number }> {
  const deadline = performance.now() + o.seconds * 1000;
  let conn: { client: pg.Client; port: number } | null = null;
  let failed = 0;
  for (let n = 1; performance.now() < deadline && !o.stop?.(); n++) {
    const started = performance.now();
    try {
      const fresh = conn === null;
      conn ??= await connectMultiHost(t);
      await write({ ...conn, fresh }, n);
    } catch {
      failed++;
      if (conn) await conn.client.end().catch(() => undefined);
      conn = null;
    }
    const wait = o.periodMs - (performance.now() - started);
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  if (conn) await conn.client.end().catch(() => undefined);
  return { failed };
}

/**
 * Inserts a row every `periodMs` through the multi-host target for `seconds` (or until `stop()`),
 * reconnecting on failure, and reports the longest write gap.
 */
export async function measureWriteGap(
  t: MultiHostTarget,
  o: { periodMs: number; seconds: number; table: string; stop?: () => boolean; onAck?: (atMs: number, port: number) => void },
): Promise<GapResult> {
  const t0 = performance.now();
  let ok = 0;
  let lastAck = t0;
  let maxGap = 0;
  let gapFrom = 0;
  let gapTo = 0;
  const { failed } = await pacedWrites(t, o, async (c) => {
    if (c.fresh) await c.client.query(`create table if not exists ${o.table} (id bigserial primary key, at timestamptz default clock_timestamp(), port int)`);
    await c.client.query({ text: `insert into ${o.table}(port) values ($1)`, values: [c.port], query_timeout: 2000 } as pg.QueryConfig);
    ok++;
    const now = performance.now();
    if (now - lastAck > maxGap) {
      maxGap = now - lastAck;
      gapFrom = lastAck - t0;
      gapTo = now - t0;
    }
    lastAck = now;
    o.onAck?.(now - t0, c.port);
  });
  return { ok, failed, maxGapMs: Math.round(maxGap), gapFromMs: Math.round(gapFrom), gapToMs: Math.round(gapTo) };
}
