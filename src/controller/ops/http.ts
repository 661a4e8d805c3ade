// Health, cluster and metrics endpoints of one controller over node:http (node:https with `tls`). The health checks
// follow Patroni's REST API, so that HAProxy, pgbouncer and Kubernetes recipes written for Patroni
// work unchanged (docs/operations.md):
//
//   /primary /leader /master /read-write /   200 when this node is LEADER_RW and PostgreSQL runs as
//                                           the primary
//   /replica[?lag=N]                        200 on a streaming follower (state FOLLOWER, PostgreSQL in
//                                           recovery, streaming from an upstream), within the lag
//   /read-only[?lag=N]                      200 on the leader (RW or RO) or a streaming follower
//   /health                                 200 while PostgreSQL runs and answers the controller (on a
//                                           referee, which has no PostgreSQL: while it has no node error)
//   /liveness                               200 while the controller's loop runs
//   /readiness                              200 on the writable leader or a streaming follower
//   /cluster                                the cluster as biha.status_v shows it, plus the config
//   /metrics                                Prometheus text
//   /dashboard                              the live cluster page (its assets, /dashboard/state and
//                                           the /dashboard/events stream: dashboard/dashboard.ts)
//
// The remote management API (/switchover, /config, ... : ops/api.ts) is given in as `api` and
// answers its own paths; `tls` makes the server HTTPS.
//
// Any other status is 503. GET answers with a small JSON document (role, state, term, ...); HEAD
// and OPTIONS answer with the same status code and no body. Other methods get 405, unknown paths
// 404, a malformed lag 400. Everything is computed from one StatusFile per request (the one
// Controller.statusSnapshot() returns); apart from the dashboard's history and chart samples the
// server keeps no state of its own.
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { Metrics } from './metrics.js';
import { nodeView, pgRunning } from './nodeview.js';
import type { NodeView } from './nodeview.js';
import type { StatusExtra, StatusFile } from '../bridge/sqlbridge.js';
import { DASHBOARD_PATHS, Dashboard } from './dashboard/dashboard.js';
import type { DashboardOptions } from './dashboard/dashboard.js';
import type { HttpApi } from './httpbody.js';
import { parseLag } from './lag.js';

/** What Controller.statusSnapshot() adds beside the reference's fields (see StatusExtra). */
export type HttpExtra = StatusExtra;

export type HttpStatus = StatusFile;

export interface HttpStatusSource {
  status(): HttpStatus;
  readonly nodeId: number;
  /** Milliseconds since the controller's loop (the raft tick) last ran; without it /liveness only needs status() to answer. */
  loopAgeMs?(): number | null;
}

export interface HttpServerOptions {
  host: string;
  port: number;
  logger: Logger;
  source: HttpStatusSource;
  metrics: Metrics;
  /** The dashboard's settings (default: on, with the built assets beside the code); false: off. */
  dashboard?: Partial<Omit<DashboardOptions, 'status' | 'logger'>> | false;
  /** The remote management API; without it only the health checks, /cluster, /metrics and the dashboard are served. */
  api?: HttpApi;
  /** Serve HTTPS with this key and certificate chain (PEM). */
  tls?: { key: string; cert: string };
}

export interface HttpServerHandle {
  close(): Promise<void>;
  port: number;
}

type Check = 'primary' | 'replica' | 'read-only' | 'health' | 'liveness' | 'readiness';
type Route = { kind: 'check'; check: Check } | { kind: 'cluster' } | { kind: 'metrics' };

const ROUTES: ReadonlyMap<string, Route> = new Map<string, Route>([
  ['/', { kind: 'check', check: 'primary' }],
  ['/primary', { kind: 'check', check: 'primary' }],
  ['/leader', { kind: 'check', check: 'primary' }],
  ['/master', { kind: 'check', check: 'primary' }],
  ['/read-write', { kind: 'check', check: 'primary' }],
  ['/replica', { kind: 'check', check: 'replica' }],
  ['/read-only', { kind: 'check', check: 'read-only' }],
  ['/health', { kind: 'check', check: 'health' }],
  ['/liveness', { kind: 'check', check: 'liveness' }],
  ['/readiness', { kind: 'check', check: 'readiness' }],
  ['/cluster', { kind: 'cluster' }],
  ['/metrics', { kind: 'metrics' }],
]);

/** Every path the server answers (for docs and tests). */
export const HTTP_PATHS: readonly string[] = [...ROUTES.keys(), ...DASHBOARD_PATHS];

const ALLOW = 'GET, HEAD, OPTIONS';
const MAX_ECHO = 120;
function healthy(v: NodeView): string | null {
  if (v.error !== 'NO_ERROR') return `node error ${v.error}`;
  if (!pgRunning(v)) return `PostgreSQL is not running (role ${v.role}, pg_state ${v.pg_state})`;
  return null;
}

/** null when this node is the writable primary, else why not. */
function whyNotPrimary(v: NodeView): string | null {
  if (v.state !== 'LEADER_RW') return `state is ${v.state}, not LEADER_RW`;
  const h = healthy(v);
  if (h) return h;
  if (v.role !== 'primary') return `PostgreSQL is not a primary yet (role ${v.role})`;
  return null;
}

/** null when this node is a follower streaming from an upstream, else why not. */
function whyNotReplica(v: NodeView): string | null {
  if (v.role === 'none') return 'this node is a referee and runs no PostgreSQL';
  if (v.state !== 'FOLLOWER') return `state is ${v.state}, not FOLLOWER`;
  const h = healthy(v);
  if (h) return h;
  if (v.role !== 'replica') return `PostgreSQL is not in recovery (role ${v.role})`;
  if (v.upstream === null || v.upstream === 0) return 'not streaming: no upstream (detached)';
  return null;
}

function whyOverLag(v: NodeView, maxLag: number | null): string | null {
  if (maxLag === null) return null;
  if (v.lag_bytes === null) return 'lag unknown';
  if (v.lag_bytes > maxLag) return `lag ${v.lag_bytes} bytes exceeds ${maxLag}`;
  return null;
}

export interface CheckResult {
  ok: boolean;
  reason: string | null;
}

/** The outcome of one health check (pure; exported for tests). */
export function evaluate(check: Check, st: HttpStatus, opts: { maxLag?: number | null; loopAgeMs?: number | null } = {}): CheckResult {
  const v = nodeView(st);
  const maxLag = opts.maxLag ?? null;
  const result = (reason: string | null): CheckResult => ({ ok: reason === null, reason });
  switch (check) {
    case 'primary':
      return result(whyNotPrimary(v));
    case 'replica':
      return result(whyNotReplica(v) ?? whyOverLag(v, maxLag));
    case 'read-only': {
      const leader = v.state === 'LEADER_RW' || v.state === 'LEADER_RO';
      const why = leader ? healthy(v) : whyNotReplica(v);
      return result(why ?? whyOverLag(v, maxLag));
    }
    case 'readiness': {
      // A referee serves no SQL: it is ready when it is healthy (it votes).
      if (v.role === 'none') return result(v.error !== 'NO_ERROR' ? `node error ${v.error}` : null);
      const p = whyNotPrimary(v);
      const r = whyNotReplica(v);
      return result(p === null || r === null ? null : v.state.startsWith('LEADER') ? p : r);
    }
    case 'health':
      if (v.role === 'none') return result(v.error !== 'NO_ERROR' ? `node error ${v.error}` : null);
      return result(pgRunning(v) ? null : `PostgreSQL is not running (role ${v.role}, pg_state ${v.pg_state})`);
    case 'liveness': {
      const age = opts.loopAgeMs ?? null;
      if (age === null) return result(null);
      const ttl = Math.max(1000, st.config.heartbeat_send_period * st.config.heartbeat_max_lost);
      const limit = v.state.startsWith('LEADER') ? ttl : 2 * ttl;
      return result(Number.isFinite(age) && age <= limit ? null : `controller loop last ran ${Math.round(age)} ms ago (limit ${limit} ms)`);
    }
  }
}

/** The /cluster document: members as biha.status_v shows them, the connections, config, error, monitoring. */
export function clusterDoc(st: HttpStatus): Record<string, unknown> {
  const self = st.status.find((r) => r.id === st.nodeId);
  const members = st.status.map((r) => {
    const conn = st.nodes.find((n) => n.id === r.id);
    const f = st.monitoring.followers.find((x) => x.id === r.id);
    return {
      id: r.id,
      ...(conn ? { host: conn.host, port: conn.port } : {}),
      ...(r.mode ? { mode: r.mode } : {}),
      self: r.id === st.nodeId,
      leader: r.leader_id !== null && r.id === r.leader_id,
      state: r.state,
      last_known_state: r.last_known_state,
      online: r.online,
      term: r.term,
      leader_id: r.leader_id,
      since_last_hb_ms: r.since_last_hb_ms,
      ...(f ? { replication: { state: f.state, sync_state: f.sync_state, lag_bytes: f.lag_bytes, lag_ms: f.lag_ms } } : {}),
    };
  });
  return {
    node_id: st.nodeId,
    term: st.config.term,
    leader_id: self?.leader_id ?? null,
    generated_at: new Date(st.generatedAtMs).toISOString(),
    members,
    connections: st.nodes,
    config: st.config,
    error: st.error,
    monitoring: st.monitoring,
    ...(st.extra ? { node: st.extra } : {}),
  };
}

function splitUrl(raw: string): { path: string; query: URLSearchParams } {
  let url = raw;
  // absolute-form (a request through a proxy): keep only the path and query
  const abs = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/[^/?#]*/.exec(url);
  if (abs) url = url.slice(abs[0].length);
  const hash = url.indexOf('#');
  if (hash >= 0) url = url.slice(0, hash);
  const q = url.indexOf('?');
  let path = q >= 0 ? url.slice(0, q) : url;
  const query = new URLSearchParams(q >= 0 ? url.slice(q + 1) : '');
  if (path === '') path = '/';
  if (path.length > 1 && path.endsWith('/')) path = path.replace(/\/+$/, '') || '/';
  return { path, query };
}

function echo(s: string): string {
  return s.length > MAX_ECHO ? `${s.slice(0, MAX_ECHO)}...` : s;
}

export async function startHttpServer(o: HttpServerOptions): Promise<HttpServerHandle> {
  const log = o.logger;

  const send = (req: http.IncomingMessage, res: http.ServerResponse, code: number, body: unknown, type = 'application/json', extra: Readonly<Record<string, string>> = {}): void => {
    const text = typeof body === 'string' ? body : `${JSON.stringify(body)}\n`;
    const headers: http.OutgoingHttpHeaders = { 'Content-Type': type, 'Cache-Control': 'no-store' };
    if (code === 405 || req.method === 'OPTIONS') headers['Allow'] = ALLOW;
    Object.assign(headers, extra);
    if (req.method === 'OPTIONS') {
      headers['Content-Length'] = 0;
      res.writeHead(code, headers);
      res.end();
      return;
    }
    headers['Content-Length'] = Buffer.byteLength(text);
    res.writeHead(code, headers);
    res.end(req.method === 'HEAD' ? undefined : text);
  };

  const readStatus = (): { st: HttpStatus | null; err: string | null } => {
    try {
      return { st: o.source.status(), err: null };
    } catch (e) {
      const err = e instanceof Error ? e.message : String(e);
      log.warn({ err }, 'HTTP: the controller status is not available');
      return { st: null, err };
    }
  };

  const loopAge = (): number | null => {
    try {
      return o.source.loopAgeMs ? o.source.loopAgeMs() : null;
    } catch {
      return Number.POSITIVE_INFINITY;
    }
  };

  const dashboard = o.dashboard === false ? null : new Dashboard({ ...o.dashboard, status: () => o.source.status(), logger: log });
  const apiPaths = new Set(o.api?.paths ?? []);
  const allPaths = [...HTTP_PATHS, ...apiPaths];

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const method = req.method ?? 'GET';
    const { path, query } = splitUrl(req.url ?? '/');
    if (o.api && apiPaths.has(path)) {
      const r = await o.api.handle(req, path);
      send(req, res, r.status, r.body, 'application/json', r.headers);
      return;
    }
    req.resume(); // health checks carry no body; drain whatever comes
    const route = ROUTES.get(path);
    if (method !== 'GET' && method !== 'HEAD' && method !== 'OPTIONS') {
      send(req, res, 405, { error: 'method_not_allowed', method: echo(method), allow: ALLOW });
      return;
    }
    if (dashboard?.handles(path)) {
      dashboard.handle(req, res, path);
      return;
    }
    if (!route) {
      const { st } = readStatus();
      send(req, res, 404, { error: 'not_found', path: echo(path), paths: allPaths, ...(st ? brief(nodeView(st)) : { node_id: o.source.nodeId }) });
      return;
    }
    if (route.kind === 'metrics') {
      const { st } = readStatus();
      if (st) {
        try {
          o.metrics.update(st);
        } catch (e) {
          log.warn({ err: e instanceof Error ? e.message : String(e) }, 'HTTP: could not update the metrics');
        }
      }
      const text = await o.metrics.registry.metrics();
      send(req, res, 200, text, o.metrics.registry.contentType);
      return;
    }
    const { st, err } = readStatus();
    if (!st) {
      send(req, res, 503, { node_id: o.source.nodeId, role: 'unknown', state: 'UNKNOWN', term: null, ok: false, reason: `status unavailable: ${echo(err ?? '')}` });
      return;
    }
    if (route.kind === 'cluster') {
      send(req, res, 200, clusterDoc(st));
      return;
    }
    const check = route.check;
    let maxLag: number | null = null;
    if ((check === 'replica' || check === 'read-only') && query.has('lag')) {
      const raw = query.get('lag') ?? '';
      maxLag = parseLag(raw);
      if (maxLag === null) {
        send(req, res, 400, {
          ...brief(nodeView(st)),
          check,
          ok: false,
          error: 'bad_lag',
          reason: `lag must be bytes or a size such as 16kB, 1MB, 1GB; got "${echo(raw)}"`,
        });
        return;
      }
    }
    const age = check === 'liveness' ? loopAge() : null;
    const r = evaluate(check, st, { maxLag, loopAgeMs: age });
    const v = nodeView(st);
    const body: Record<string, unknown> = { ...v, check, ok: r.ok };
    if (maxLag !== null) body['max_lag_bytes'] = maxLag;
    if (check === 'liveness' && age !== null) body['loop_age_ms'] = Number.isFinite(age) ? Math.round(age) : null;
    if (r.reason !== null) body['reason'] = r.reason;
    send(req, res, r.ok ? 200 : 503, body);
  };

  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    handle(req, res).catch((e: unknown) => {
      log.error({ err: e instanceof Error ? e.message : String(e) }, 'HTTP: request failed');
      if (!res.headersSent) {
        try {
          send(req, res, 500, { error: 'internal', node_id: o.source.nodeId });
          return;
        } catch {
          // fall through to destroy
        }
      }
      res.destroy();
    });
  };
  const server = o.tls ? https.createServer({ key: o.tls.key, cert: o.tls.cert }, onRequest) : http.createServer(onRequest);
  server.requestTimeout = 10_000;
  server.headersTimeout = 10_000;
  server.keepAliveTimeout = 5_000;
  server.maxConnections = 512;
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    log.debug({ err: err.message, code: err.code }, 'HTTP: bad request from a client');
    if (!socket.writable || err.code === 'ECONNRESET') {
      socket.destroy();
      return;
    }
    const tooLarge = err.code === 'HPE_HEADER_OVERFLOW' || err.code === 'HPE_URI_TOO_LONG';
    const body = `${JSON.stringify({ error: tooLarge ? 'request_too_large' : 'bad_request', node_id: o.source.nodeId })}\n`;
    const status = tooLarge ? '431 Request Header Fields Too Large' : '400 Bad Request';
    socket.end(`HTTP/1.1 ${status}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  });

  await new Promise<void>((resolve, reject) => {
    const onError = (e: Error): void => reject(e);
    server.once('error', onError);
    server.listen(o.port, o.host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  server.on('error', (e) => log.error({ err: e.message }, 'HTTP server error'));
  const port = (server.address() as AddressInfo).port;
  const scheme = o.tls ? 'https' : 'http';
  const where = `${scheme}://${o.host.includes(':') ? `[${o.host}]` : o.host}:${port}`;
  log.info({ host: o.host, port, tls: Boolean(o.tls), api: Boolean(o.api) }, `HTTP health checks, metrics, dashboard${o.api ? ' and management API' : ''} listening on ${where}`);
  dashboard?.start();

  let closing: Promise<void> | null = null;
  return {
    port,
    close(): Promise<void> {
      o.api?.close();
      closing ??= new Promise<void>((resolve) => {
        dashboard?.close();
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

function brief(v: NodeView): Record<string, unknown> {
  return { node_id: v.node_id, role: v.role, state: v.state, term: v.term, leader_id: v.leader_id };
}
