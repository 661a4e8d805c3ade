// The remote management API: Patroni-style action routes on the node's HTTP port (the health
// checks, /cluster and /metrics stay in http.ts). Every action goes through the command table
// (commands.ts), so HTTP, SQL, the local socket and peers share one set of handlers and one
// forwarding rule: a switchover or a settings change typed on any node is carried out by the leader.
//
//   POST  /switchover    {"leader"?, "candidate", "scheduled_at"?}   biha.set_leader
//   DELETE /switchover                                               cancel a scheduled switchover
//   POST  /failover      {"candidate"}                                a switchover when there is a leader
//   POST  /restart       {"force"?}                                   restart this node's PostgreSQL
//   POST  /reinitialize  {"force"?}                                   bihactl reinit of this follower
//   GET   /config, PATCH /config                                     the settings, by SQL names
//   GET   /history                                                   promotions of the leader's timeline
//   GET   /sync, /async                                              synchronous / asynchronous standby checks
//
// Unsafe methods (POST, PATCH, DELETE) need HTTP basic auth with the node's credentials (httpauth.ts); without
// credentials configured they are refused (403). Errors are {"error": one line, "code": BihaError code}.
import type { IncomingMessage } from 'node:http';
import type { Logger } from 'pino';
import { BihaError } from '../errors.js';
import type { StatusFile } from '../bridge/sqlbridge.js';
import { HTTP_REALM } from './httpauth.js';
import type { HttpAuth } from './httpauth.js';
import { HttpError, parseJsonObject, readBody } from './httpbody.js';
import type { HttpApi, HttpReply } from './httpbody.js';
import { evaluate } from './http.js';
import { nodeView } from './nodeview.js';

/** What the API acts through (the controller provides it). */
export interface ApiHost {
  readonly nodeId: number;
  /** runCommand from a local client. */
  run(fn: string, args: Record<string, unknown>): Promise<unknown>;
  status(): StatusFile;
}

export interface ApiOptions {
  host: ApiHost;
  auth: HttpAuth;
  log: Logger;
  /** The command that sets credentials, for the 403 message. */
  credentialsHint: string;
}

type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE';
type Handler = (body: Record<string, unknown>) => Promise<HttpReply>;

/** A scheduled switchover waits at most this long. */
const MAX_SCHEDULE_MS = 7 * 24 * 3600 * 1000;

/** The HTTP status of a refusal, by error code (503: the cluster could not do it now). */
const STATUS_OF_CODE: ReadonlyMap<string, number> = new Map([
  ...['bad_args', 'invalid', 'unknown_node', 'not_eligible', 'bad_json', 'unknown_command'].map((c) => [c, 400] as const),
  ...['is_leader', 'no_data', 'streaming', 'reinit_running', 'restart_running', 'scheduled', 'sync_loss', 'backup_locked'].map((c) => [c, 409] as const),
  ['leader_mismatch', 412],
]);

export function statusOfCode(code: string): number {
  return STATUS_OF_CODE.get(code) ?? 503;
}

function codeOf(e: unknown): string {
  const x = e as { code?: unknown; remoteCode?: unknown } | null;
  if (x?.code === 'remote' && typeof x.remoteCode === 'string') return x.remoteCode;
  return typeof x?.code === 'string' ? x.code : 'error';
}

function oneLineMessage(e: unknown): string {
  const msg = e instanceof BihaError && e.hint ? `${e.message} (${e.hint})` : e instanceof Error ? e.message : String(e);
  return msg.replace(/\s*\n\s*/g, ' ').trim();
}

export function errorReply(status: number, message: string, code: string, headers?: Record<string, string>): HttpReply {
  return { status, body: { error: message, code }, ...(headers ? { headers } : {}) };
}

function intArg(body: Record<string, unknown>, key: string, required: boolean): number | null {
  const v = body[key];
  if (v === undefined || v === null) {
    if (required) throw new BihaError('bad_args', `"${key}" is required: the id of a node, such as {"${key}": 2}`);
    return null;
  }
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new BihaError('bad_args', `"${key}" must be a node id (a positive integer), not ${JSON.stringify(v)}`);
  return v;
}

function forceArg(body: Record<string, unknown>): boolean {
  const v = body['force'];
  if (v === undefined) return false;
  if (typeof v !== 'boolean') throw new BihaError('bad_args', `"force" must be true or false, not ${JSON.stringify(v)}`);
  return v;
}

function leaderOf(st: StatusFile): number | null {
  const self = st.status.find((r) => r.id === st.nodeId);
  return self?.leader_id ? self.leader_id : null;
}

/** The node ids a synchronous_standby_names value lists (biha names standbys biha_node_<id>). */
export function syncIds(names: string): Set<number> {
  return new Set([...names.matchAll(/biha_node_(\d+)/g)].map((m) => Number(m[1])));
}

export function createApi(o: ApiOptions): HttpApi {
  const h = o.host;
  let scheduled: { timer: NodeJS.Timeout; candidate: number; at: string } | null = null;

  const switchover = async (candidate: number): Promise<HttpReply> => {
    const done = await h.run('set_leader', { id: candidate });
    if (done === true) return { status: 200, body: { message: `switched over to node ${candidate}`, leader: candidate } };
    return errorReply(503, `the switchover to node ${candidate} did not complete (node ${candidate} did not catch up or win in time); the leader logged why, and biha.last_switchover() on it shows the outcome`, 'switchover_failed');
  };

  const schedule = (candidate: number, when: Date): HttpReply => {
    if (scheduled) return errorReply(409, `a switchover to node ${scheduled.candidate} is already scheduled at ${scheduled.at}`, 'scheduled');
    const at = when.toISOString();
    const timer = setTimeout(() => {
      scheduled = null;
      switchover(candidate).then(
        (r) => o.log.info({ candidate, status: r.status }, `scheduled switchover to node ${candidate}: ${r.status === 200 ? 'done' : 'did not complete'}`),
        (e: unknown) => o.log.warn({ candidate, err: oneLineMessage(e) }, `scheduled switchover to node ${candidate} failed`),
      );
    }, when.getTime() - Date.now());
    timer.unref();
    scheduled = { timer, candidate, at };
    o.log.info({ candidate, at }, `switchover to node ${candidate} scheduled at ${at}`);
    return { status: 202, body: { message: `switchover to node ${candidate} scheduled at ${at}`, candidate, scheduled_at: at } };
  };

  const postSwitchover: Handler = async (body) => {
    const candidate = intArg(body, 'candidate', true)!;
    const leader = intArg(body, 'leader', false);
    const raw = body['scheduled_at'];
    let when: Date | null = null;
    if (raw !== undefined && raw !== null) {
      when = typeof raw === 'string' ? new Date(raw) : new Date(NaN);
      if (Number.isNaN(when.getTime())) throw new BihaError('bad_args', `"scheduled_at" must be an ISO-8601 time such as "2030-01-31T22:00:00Z", not ${JSON.stringify(raw)}`);
      if (when.getTime() - Date.now() > MAX_SCHEDULE_MS) throw new BihaError('bad_args', '"scheduled_at" is more than 7 days ahead');
    }
    if (leader !== null) {
      const current = leaderOf(h.status());
      if (current !== leader)
        return errorReply(412, `node ${leader} is not the leader (${current === null ? 'no leader is known right now' : `the leader is node ${current}`})`, 'leader_mismatch');
    }
    if (when !== null && when.getTime() > Date.now() + 1000) return schedule(candidate, when);
    return await switchover(candidate);
  };

  const deleteSwitchover: Handler = () => {
    if (!scheduled) return Promise.resolve(errorReply(404, 'no switchover is scheduled on this node', 'not_scheduled'));
    clearTimeout(scheduled.timer);
    const { candidate, at } = scheduled;
    scheduled = null;
    o.log.info({ candidate, at }, `scheduled switchover to node ${candidate} at ${at} cancelled`);
    return Promise.resolve({ status: 200, body: { message: `the switchover to node ${candidate} scheduled at ${at} is cancelled` } });
  };

  const postFailover: Handler = async (body) => {
    const candidate = intArg(body, 'candidate', true)!;
    if (leaderOf(h.status()) === null)
      return errorReply(503, 'the cluster has no leader right now: an election is in progress, and biha elects a leader by itself; try again once GET /cluster shows one', 'no_leader');
    return await switchover(candidate);
  };

  const postRestart: Handler = async (body) => ({ status: 200, body: { message: String(await h.run('restart', { force: forceArg(body) })) } });

  const postReinitialize: Handler = async (body) => ({ status: 202, body: { message: String(await h.run('reinitialize', { force: forceArg(body) })) } });

  const getConfig: Handler = async () => ({ status: 200, body: await h.run('config', {}) });
  const patchConfig: Handler = async (body) => ({ status: 200, body: await h.run('set_config', body) });
  const getHistory: Handler = async () => ({ status: 200, body: await h.run('history', {}) });

  const standbyCheck = (check: 'sync' | 'async'): Handler => async () => {
    const st = h.status();
    const v = nodeView(st);
    const streaming = evaluate('replica', st);
    let reason = streaming.reason;
    if (reason === null) {
      const names = String(await h.run('sync_standby_names', {}));
      const sync = syncIds(names).has(st.nodeId);
      if (check === 'sync' && !sync) reason = `not a synchronous standby: the leader's synchronous_standby_names is '${names}'`;
      if (check === 'async' && sync) reason = `a synchronous standby: the leader's synchronous_standby_names is '${names}'`;
    }
    const body = { ...v, check, ok: reason === null, ...(reason === null ? {} : { reason }) };
    return { status: reason === null ? 200 : 503, body };
  };

  const routes = new Map<string, Partial<Record<Method, Handler>>>([
    ['/switchover', { POST: postSwitchover, DELETE: deleteSwitchover }],
    ['/failover', { POST: postFailover }],
    ['/restart', { POST: postRestart }],
    ['/reinitialize', { POST: postReinitialize }],
    ['/config', { GET: getConfig, PATCH: patchConfig }],
    ['/history', { GET: getHistory }],
    ['/sync', { GET: standbyCheck('sync') }],
    ['/async', { GET: standbyCheck('async') }],
  ]);

  const allow = (r: Partial<Record<Method, Handler>>): string => {
    const m: string[] = Object.keys(r);
    if (m.includes('GET')) m.push('HEAD');
    return [...m, 'OPTIONS'].join(', ');
  };

  const authorize = async (req: IncomingMessage): Promise<HttpReply | null> => {
    let outcome;
    try {
      outcome = await o.auth.check(req.headers.authorization);
    } catch (e) {
      return errorReply(500, `cannot read the HTTP credentials: ${oneLineMessage(e)}`, codeOf(e));
    }
    if (outcome === 'ok') return null;
    if (outcome === 'off') return errorReply(403, `remote management is off: set credentials with ${o.credentialsHint}`, 'remote_management_off');
    return errorReply(401, 'valid HTTP basic auth credentials are required', 'unauthorized', { 'WWW-Authenticate': `Basic realm="${HTTP_REALM}"` });
  };

  const handle = async (req: IncomingMessage, path: string): Promise<HttpReply> => {
    const r = routes.get(path)!;
    const method = (req.method ?? 'GET').toUpperCase();
    if (method === 'OPTIONS') {
      req.resume();
      return { status: 200, body: null, headers: { Allow: allow(r) } };
    }
    const key = method === 'HEAD' ? 'GET' : method;
    const fn = Object.hasOwn(r, key) ? r[key as Method] : undefined;
    if (!fn) {
      req.resume();
      return errorReply(405, `${path} does not take ${method}; it takes ${allow(r)}`, 'method_not_allowed', { Allow: allow(r) });
    }
    try {
      let body: Record<string, unknown> = {};
      if (method !== 'GET' && method !== 'HEAD') {
        const denied = await authorize(req);
        if (denied) {
          req.resume();
          return denied;
        }
        body = parseJsonObject(await readBody(req));
      } else {
        req.resume();
      }
      return await fn(body);
    } catch (e) {
      if (e instanceof HttpError) return errorReply(e.status, e.message, e.code);
      const code = codeOf(e);
      const status = e instanceof Error && (e instanceof BihaError || code !== 'error') ? statusOfCode(code) : 500;
      if (status >= 500) o.log.warn({ path, method, err: oneLineMessage(e) }, `HTTP ${method} ${path} failed`);
      return errorReply(status, oneLineMessage(e), code);
    }
  };

  return {
    paths: [...routes.keys()],
    handle,
    close() {
      if (scheduled) clearTimeout(scheduled.timer);
      scheduled = null;
    },
  };
}
