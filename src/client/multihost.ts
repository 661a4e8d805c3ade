// A libpq-style multi-host connection for node-postgres (which has none): hosts are tried in
// order and, with target_session_attrs=read-write, the first one that accepts writes is kept.
// Used by the demo, the benchmarks and the jepsen-lite clients, like an application would.
import pg from 'pg';

export interface MultiHostTarget {
  readonly hosts: ReadonlyArray<{ host: string; port: number }>;
  readonly user: string;
  readonly password?: string;
  readonly database: string;
  readonly targetSessionAttrs: 'any' | 'read-write' | 'read-only';
  readonly connectTimeoutMs: number;
}

/** Parses postgresql://user[:password]@h1:p1,h2:p2/db?target_session_attrs=...&connect_timeout=S */
export function parseMultiHostUri(uri: string): MultiHostTarget {
  const m = /^postgres(?:ql)?:\/\/(?:([^:@/]+)(?::([^@/]*))?@)?([^/?]+)(?:\/([^?]*))?(?:\?(.*))?$/.exec(uri);
  if (!m) throw new Error(`not a postgresql:// connection URI: ${uri}`);
  const hosts = m[3]!.split(',').map((hp) => {
    const i = hp.lastIndexOf(':');
    return i > 0 ? { host: hp.slice(0, i), port: Number(hp.slice(i + 1)) } : { host: hp, port: 5432 };
  });
  const q = new URLSearchParams(m[5] ?? '');
  const tsa = q.get('target_session_attrs') ?? 'any';
  if (tsa !== 'any' && tsa !== 'read-write' && tsa !== 'read-only') throw new Error(`unsupported target_session_attrs=${tsa}`);
  const password = m[2] !== undefined ? decodeURIComponent(m[2]) : process.env['PGPASSWORD'];
  return {
    hosts,
    user: decodeURIComponent(m[1] ?? process.env['PGUSER'] ?? 'postgres'),
    ...(password !== undefined ? { password } : {}),
    database: decodeURIComponent(m[4] || 'postgres'),
    targetSessionAttrs: tsa,
    connectTimeoutMs: Number(q.get('connect_timeout') ?? '2') * 1000,
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
 * Inserts a row every `periodMs` through the multi-host target for `seconds` (or until `stop()`
 * resolves true after a gap ended), reconnecting on failure, and reports the longest write gap.
 */
export async function measureWriteGap(
  t: MultiHostTarget,
  o: { periodMs: number; seconds: number; table: string; onAck?: (atMs: number, port: number) => void },
): Promise<GapResult> {
  const t0 = performance.now();
  const deadline = t0 + o.seconds * 1000;
  let conn: { client: pg.Client; port: number } | null = null;
  let ok = 0;
  let failed = 0;
  let lastAck = t0;
  let maxGap = 0;
  let gapFrom = 0;
  let gapTo = 0;
  while (performance.now() < deadline) {
    const started = performance.now();
    try {
      if (!conn) {
        const c = await connectMultiHost(t);
        conn = c;
        await c.client.query(`create table if not exists ${o.table} (id bigserial primary key, at timestamptz default clock_timestamp(), port int)`);
      }
      await conn.client.query({ text: `insert into ${o.table}(port) values ($1)`, values: [conn.port], query_timeout: 2000 } as pg.QueryConfig);
      ok++;
      const now = performance.now();
      if (now - lastAck > maxGap) {
        maxGap = now - lastAck;
        gapFrom = lastAck - t0;
        gapTo = now - t0;
      }
      lastAck = now;
      o.onAck?.(now - t0, conn.port);
    } catch {
      failed++;
      if (conn) await conn.client.end().catch(() => undefined);
      conn = null;
    }
    const wait = o.periodMs - (performance.now() - started);
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  if (conn) await conn.client.end().catch(() => undefined);
  return { ok, failed, maxGapMs: Math.round(maxGap), gapFromMs: Math.round(gapFrom), gapToMs: Math.round(gapTo) };
}
