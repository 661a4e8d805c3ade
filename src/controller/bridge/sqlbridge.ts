// The controller's half of the SQL interface in biha_db (the other half is sql/biha--*.sql; docs/sql.md
// describes it for users). Everything goes through files under PGDATA, because stock PostgreSQL can
// read and write those on a hot standby as well as on the primary:
//
//   PGDATA/pg_biha/status.json     written here (temp file + rename) at least once per heartbeat
//                                  period and on every change; read by biha.status(), biha.nodes(),
//                                  biha.config(), biha.error_details(), biha.monitoring().
//   PGDATA/pg_biha/cmd/<uuid>.req  written by the SQL changers with COPY ... TO: one line, the hex of
//                                  the UTF-8 JSON request {id, fn, args, user, ts, timeout_ms}, and a
//                                  final newline (COPY writes the file in place, so the newline is
//                                  what marks it complete).
//   PGDATA/pg_biha/cmd/<uuid>.reply  written here (temp file + rename): {id, ok, error?, result?}.
//                                  SQL polls for it; replies older than 60 s are deleted here.
//
// Requests are picked up by fs.watch on the directory with a poll as a fallback. Each .req is
// deleted before its handler runs, so a request is handled at most once. A request whose own
// timeout has passed when it is picked up (the SQL caller has given up) gets an error reply and is
// never handed to the handler. Requests are validated here with zod; a bad one gets ok:false with
// the reason and never reaches the handler.
//
// Arguments of each function (`args` of the request; same checks and messages as the SQL side):
//   set_leader {id}                         remove_node {id}
//   get_magic_string {}                     reset_node_error {}
//   set_heartbeat_max_lost {value >= 1}     set_heartbeat_send_period {value >= 1, ms}
//   set_no_wal_on_follower {value >= 1, ms} set_nquorum_and_minnodes {nquorum >= 1, minnodes >= 1, allow_sync_loss?}
//   set_sync_standbys {value >= 0, allow_sync_loss?}                   service_mode {value: boolean}
//   set_can_be_leader {id, value: boolean}  set_can_vote {id, value: boolean}
//   set_priority {id, value >= 0}
// where id is a node id (a positive integer). allow_sync_loss (a boolean) comes only from the
// overloads biha.set_sync_standbys(integer, boolean) and
// biha.set_nquorum_and_minnodes(integer, integer, boolean): true accepts a change that breaks the
// zero-loss rule of synchronous mode. Results: the changers return the reply's boolean
// `result` (true when there is none), get_magic_string needs a string `result`, reset_node_error
// ignores it. An `error` is shown to the SQL caller as "ERROR:  biha: <error>".
//
// status.json and the replies are not fsynced: they describe the running controller only and are
// rewritten after every start, so after a crash they are at worst stale, never half written.
// stop() removes status.json, so that SQL says the controller is not running rather than showing
// a state that goes stale. A data directory copied with pg_basebackup carries its source's
// pg_biha/ files: the controller of the copy should writeStatus() as soon as it starts.

import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import type { Client } from 'pg';
import { z } from 'zod';
import { BihaError } from '../errors.js';
import { atomicWriteFile } from '../state/atomic.js';
import { PARAM_RANGES } from '../../raft/index.js';
import type { SwitchoverRecord } from '../ops/switchover.js';

// ------------------------------------------------------------------------------------------------
// The status file

export interface StatusFile {
  version: 1;
  /** Date.now() when written. */
  generatedAtMs: number;
  nodeId: number;
  config: {
    id: number;
    term: number;
    nquorum: number;
    minnodes: number;
    heartbeat_send_period: number;
    heartbeat_max_lost: number;
    no_wal_on_follower: number;
    sync_standbys: number;
    service_mode: boolean;
    mode: string;
    can_be_leader: boolean;
    can_vote: boolean;
    /** Added with a vote it does not have yet: the leader gives it once this node follows with its data. */
    learner: boolean;
    priority: number;
  };
  status: Array<{
    id: number;
    leader_id: number | null;
    /** The node's own last known term (null: never heard from it). */
    term: number | null;
    online: boolean;
    state: string;
    last_known_state: string | null;
    since_last_hb_ms: number | null;
    /** regular, referee or referee_with_wal. */
    mode?: string;
    /** The node hears the leader but has received no WAL from it for this long (ms); absent while WAL flows. */
    no_wal_ms?: number;
  }>;
  nodes: Array<{ id: number; host: string; port: number; state: string; since_conn_start_ms: number | null; conn_count: number }>;
  error: {
    /** 'NO_ERROR' when healthy. */
    type: string;
    details: string | null;
    begin_lsn: string | null;
    end_lsn: string | null;
    current_tli: number | null;
    next_tli: number | null;
    replay_lsn: string | null;
  };
  monitoring: {
    /** startup | recovery | recovery_paused | promoting | promoted; none on a referee (no PostgreSQL) */
    pg_state: string;
    followers: Array<{
      id: number;
      application_name: string;
      state: string;
      sync_state: string;
      lag_bytes: number | null;
      lag_ms: number | null;
    }>;
  };
  extra?: StatusExtra;
}

/** What Controller.statusSnapshot() adds beside the reference's fields (all optional for readers). */
export interface StatusExtra {
  /** PostgreSQL role as the controller observed it: STOPPED | STANDBY | PRIMARY, or NONE on a referee. */
  pg_role?: string;
  /** The node this standby streams from (0: detached). */
  upstream?: number;
  tli?: number | null;
  /** This node's WAL position (receive/replay on a standby, insert on a primary), as 0/59029D50. */
  lsn?: string | null;
  decision?: string;
  uptime_s?: number;
  /** This node's own replication lag in bytes (follower); see ownLag() in ops/nodeview.ts. */
  lag_bytes?: number | null;
  /** This node's own replay lag in milliseconds (follower). */
  lag_ms?: number | null;
  /** A standby's last received and replayed WAL positions, as 0/59029D50. */
  receive_lsn?: string | null;
  replay_lsn?: string | null;
  /** PostgreSQL's server_version_num (150004). */
  server_version?: number | null;
  /** The leader's WAL position from its latest heartbeat, as 0/59029D50. */
  leader_lsn?: string | null;
  /** The failback window committed in the config log (null: none). */
  failback?: { id: number; cron: string } | null;
  /** biha's replication slots on this node: the WAL each holds back and its wal_status. */
  slots?: Array<{ slot_name: string; id: number; active: boolean; wal_status: string; retained_bytes: number | null }>;
  /** The last switchover this node ran as the leader (null: none since the controller started). */
  switchover?: SwitchoverRecord | null;
  /** WAL positions in bytes: current (pg_current_wal_lsn()) on a primary, received and replayed on a standby; null: no PostgreSQL status yet. */
  wal?: { current: number | null; received: number | null; replayed: number | null } | null;
  /** This follower is one of the leader's synchronous standbys (synchronous_standby_names). */
  sync_standby?: boolean;
  /** The WAL position each other member last reported (as the leader relays it): timeline and LSN as 0/59029D50. */
  peer_wal?: Array<{ id: number; tli: number; lsn: string }>;
}


// ------------------------------------------------------------------------------------------------
// Requests and replies

export const BRIDGE_FNS = [
  'set_leader',
  'remove_node',
  'get_magic_string',
  'set_heartbeat_max_lost',
  'set_heartbeat_send_period',
  'set_no_wal_on_follower',
  'set_nquorum_and_minnodes',
  'reset_node_error',
  'set_sync_standbys',
  'service_mode',
  'set_can_be_leader',
  'set_can_vote',
  'set_priority',
  'set_failback',
  'reset_failback',
] as const;
export type BridgeFn = (typeof BRIDGE_FNS)[number];

export interface BridgeRequest {
  id: string;
  fn: BridgeFn;
  args: Record<string, unknown>;
  /** session_user of the SQL caller. */
  user: string;
  /** Epoch milliseconds when the SQL caller wrote the request. */
  ts: number;
  /** How long the SQL caller waits for the reply, from ts (absent in requests not written by SQL). */
  timeoutMs?: number;
  /** pg_backend_pid() of the SQL caller (absent in requests of an older biha schema). */
  pid?: number;
}

/** `after` runs once the reply has been written (the caller can read it by then). */
export type BridgeReply = { ok: true; result?: unknown; after?: () => void } | { ok: false; error: string };

// Messages shared with sql/biha--1.0.sql (biha._check_id, biha._check_int, biha._check_bool).
function sqlText(v: unknown): string {
  if (v === null || v === undefined) return 'NULL';
  return typeof v === 'string' ? v : JSON.stringify(v);
}

/** A value checked by `ok`, with the message the SQL side gives for the same value. */
function checked<T>(ok: (v: unknown) => v is T, message: (v: string) => string): z.ZodType<T, z.ZodTypeDef, unknown> {
  return z
    .unknown()
    .superRefine((v, ctx) => {
      if (!ok(v)) ctx.addIssue({ code: z.ZodIssueCode.custom, message: message(sqlText(v)) });
    })
    .transform((v) => v as T);
}

/** The largest SQL integer (also the upper bound of a parameter PARAM_RANGES leaves open). */
const INT4_MAX = 2147483647;
const isInt = (min: number) => (v: unknown): v is number => Number.isInteger(v) && (v as number) >= min && (v as number) <= INT4_MAX;
const isBool = (v: unknown): v is boolean => typeof v === 'boolean';

const nodeId = checked(isInt(1), (v) => `node id must be a positive integer, not ${v}`);
const intAtLeast = (name: string, min: 0 | 1): z.ZodType<number, z.ZodTypeDef, unknown> =>
  checked(isInt(min), (v) => `${name} must be ${min === 0 ? 'a non-negative' : 'a positive'} integer, not ${v}`);
/** A cluster parameter with both bounds (PARAM_RANGES), in the words of biha._check_range. */
const intRange = (name: string, [min, max]: readonly [number, number | null]): z.ZodType<number, z.ZodTypeDef, unknown> =>
  checked(
    (v): v is number => Number.isInteger(v) && (v as number) >= min && (v as number) <= (max ?? INT4_MAX),
    (v) => `${name} must be an integer from ${min} to ${max ?? INT4_MAX}, not ${v}`,
  );
const bool = (name: string): z.ZodType<boolean, z.ZodTypeDef, unknown> => checked(isBool, (v) => `${name} must be true or false, not ${v}`);

/** The argument schema of every bridge function (a new function fails to compile until listed). */
export const BRIDGE_ARGS = {
  set_leader: z.object({ id: nodeId }).strict(),
  remove_node: z.object({ id: nodeId }).strict(),
  get_magic_string: z.object({}).strict(),
  set_heartbeat_max_lost: z.object({ value: intRange('heartbeat_max_lost', PARAM_RANGES.heartbeatMaxLost) }).strict(),
  set_heartbeat_send_period: z.object({ value: intRange('heartbeat_send_period', PARAM_RANGES.heartbeatSendPeriod) }).strict(),
  set_no_wal_on_follower: z.object({ value: intAtLeast('no_wal_on_follower', 0) }).strict(),
  set_nquorum_and_minnodes: z.object({ nquorum: intAtLeast('nquorum', 1), minnodes: intAtLeast('minnodes', 1), allow_sync_loss: bool('allow_sync_loss').optional() }).strict(),
  reset_node_error: z.object({}).strict(),
  set_sync_standbys: z.object({ value: intAtLeast('sync_standbys', 0), allow_sync_loss: bool('allow_sync_loss').optional() }).strict(),
  service_mode: z.object({ value: bool('service_mode') }).strict(),
  set_can_be_leader: z.object({ id: nodeId, value: bool('can_be_leader') }).strict(),
  set_can_vote: z.object({ id: nodeId, value: bool('can_vote') }).strict(),
  set_priority: z.object({ id: nodeId, value: intAtLeast('priority', 0) }).strict(),
  set_failback: z.object({ id: nodeId, cron: checked((v): v is string => typeof v === 'string' && v.trim() !== '', (v) => `cron must be a cron expression such as '*/5 * * * *', not ${v}`) }).strict(),
  reset_failback: z.object({}).strict(),
} satisfies Record<BridgeFn, z.ZodTypeAny>;

/** The validated arguments of each function, for handlers: `req.args as BridgeArgs['set_leader']`. */
export type BridgeArgs = { [F in BridgeFn]: z.infer<(typeof BRIDGE_ARGS)[F]> };

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const Envelope = z.object({
  id: z.string().regex(UUID_RE, 'id must be a lower-case uuid'),
  fn: z.string(),
  args: z.record(z.unknown()),
  user: z.string(),
  ts: z.number().int().nonnegative(),
  timeout_ms: z.number().int().positive().optional(),
  pid: z.number().int().positive().optional(),
});

function issues(e: z.ZodError): string {
  return e.issues.map((i) => (i.code === z.ZodIssueCode.custom ? i.message : `${i.path.join('.') || 'request'}: ${i.message}`)).join('; ');
}

/**
 * Parses the text of a .req file. `incomplete` means the writer may still be writing it (no final
 * newline yet); anything else that is wrong is a malformed request, with the id when it is known.
 */
export function parseRequestFile(
  text: string,
  fileId: string,
): { kind: 'incomplete' } | { kind: 'ok'; req: BridgeRequest } | { kind: 'bad'; id: string; error: string } {
  if (!text.endsWith('\n')) return { kind: 'incomplete' };
  const hex = text.trim();
  if (hex.length === 0 || hex.length % 2 !== 0 || !/^[0-9a-fA-F]+$/.test(hex)) {
    return { kind: 'bad', id: fileId, error: 'malformed request: not a hex-encoded line' };
  }
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(hex, 'hex').toString('utf8'));
  } catch {
    return { kind: 'bad', id: fileId, error: 'malformed request: not JSON' };
  }
  const env = Envelope.safeParse(json);
  if (!env.success) return { kind: 'bad', id: fileId, error: `malformed request: ${issues(env.error)}` };
  const e = env.data;
  if (e.id !== fileId) return { kind: 'bad', id: fileId, error: `malformed request: id ${e.id} does not match the file name` };
  if (!(BRIDGE_FNS as readonly string[]).includes(e.fn)) {
    return { kind: 'bad', id: e.id, error: `unknown function ${JSON.stringify(e.fn)}` };
  }
  const fn = e.fn as BridgeFn;
  const args = BRIDGE_ARGS[fn].safeParse(e.args);
  if (!args.success) return { kind: 'bad', id: e.id, error: issues(args.error) };
  const req: BridgeRequest = { id: e.id, fn, args: args.data as Record<string, unknown>, user: e.user, ts: e.ts };
  if (e.timeout_ms !== undefined) req.timeoutMs = e.timeout_ms;
  if (e.pid !== undefined) req.pid = e.pid;
  return { kind: 'ok', req };
}

/** The text of a .req file as the SQL side writes it (for tests and tools). */
export function encodeRequestFile(req: {
  id: string;
  fn: string;
  args: Record<string, unknown>;
  user: string;
  ts: number;
  timeout_ms?: number;
}): string {
  return Buffer.from(JSON.stringify(req), 'utf8').toString('hex') + '\n';
}

// ------------------------------------------------------------------------------------------------
// The bridge

export const STATUS_FILE = 'pg_biha/status.json';
export const CMD_DIR = 'pg_biha/cmd';
/** Replies nobody read are deleted after this long. */
export const REPLY_TTL_MS = 60_000;
/** A .req that has not been completed after this long is answered as malformed and deleted. */
const INCOMPLETE_TTL_MS = 5_000;
const GC_EVERY_MS = 1_000;
/** How long stop() waits for handlers still running. */
const STOP_WAIT_MS = 2_000;

export interface SqlBridgeOptions {
  pgdata: string;
  logger: Logger;
  handler: (req: BridgeRequest) => Promise<BridgeReply>;
  /** Poll period of the request directory when fs.watch is unavailable (default 50 ms). */
  pollMs?: number;
  /** Poll period while fs.watch works: only a safety net for a lost event (default 2000 ms). */
  watchedPollMs?: number;
}

export class SqlBridge {
  private readonly pgdata: string;
  private readonly log: Logger;
  private readonly handler: (req: BridgeRequest) => Promise<BridgeReply>;
  private readonly pollMs: number;
  private readonly watchedPollMs: number;
  private readonly bihaDir: string;
  private readonly cmdDir: string;
  private watcher: fs.FSWatcher | null = null;
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  /** Set by stop() until the next start(): late writeStatus() calls must not bring the file back. */
  private stopped = false;
  private scanning: Promise<void> | null = null;
  private rescan = false;
  private lastGc = 0;
  private readonly inFlight = new Map<string, Promise<void>>();
  private statusChain: Promise<void> = Promise.resolve();
  private owner: { uid: number; gid: number } | null | undefined;

  constructor(o: SqlBridgeOptions) {
    this.pgdata = o.pgdata;
    this.log = o.logger;
    this.handler = o.handler;
    this.pollMs = o.pollMs ?? 50;
    this.watchedPollMs = Math.max(this.pollMs, o.watchedPollMs ?? 2000);
    this.bihaDir = path.join(o.pgdata, 'pg_biha');
    this.cmdDir = path.join(o.pgdata, CMD_DIR);
  }

  /** Creates pg_biha/cmd (mode 0700) and starts picking up requests. */
  /** fs.watch failed: poll at the fast period from now on. */
  private repoll(): void {
    if (!this.timer) return;
    clearInterval(this.timer);
    this.timer = setInterval(() => this.kick(), this.pollMs);
    this.timer.unref();
  }

  async start(): Promise<void> {
    if (this.running) return;
    this.stopped = false;
    await this.ensureDir(this.bihaDir);
    await this.ensureDir(this.cmdDir);
    this.running = true;
    try {
      this.watcher = fs.watch(this.cmdDir, { persistent: false }, () => this.kick());
      this.watcher.on('error', (err) => {
        this.log.warn({ err }, 'sql bridge: watching %s failed; polling only', this.cmdDir);
        this.watcher?.close();
        this.watcher = null;
        this.repoll();
      });
    } catch (err) {
      this.log.warn({ err }, 'sql bridge: cannot watch %s; polling only', this.cmdDir);
    }
    this.timer = setInterval(() => this.kick(), this.watcher ? this.watchedPollMs : this.pollMs);
    this.timer.unref();
    this.kick();
    this.log.info({ dir: this.cmdDir }, 'sql bridge started');
  }

  /**
   * Stops picking up requests, waits (boundedly) for handlers still running to write their replies,
   * and removes status.json: SQL then reports that the controller of this node is not running.
   */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.stopped = true;
    this.watcher?.close();
    this.watcher = null;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (this.scanning) await this.scanning;
    if (this.inFlight.size > 0) {
      let t: NodeJS.Timeout | undefined;
      const limit = new Promise<void>((resolve) => {
        t = setTimeout(resolve, STOP_WAIT_MS);
      });
      await Promise.race([Promise.allSettled([...this.inFlight.values()]), limit]);
      clearTimeout(t);
    }
    await this.statusChain;
    await this.unlinkQuiet(path.join(this.pgdata, STATUS_FILE));
    this.log.info('sql bridge stopped');
  }

  /**
   * Replaces pg_biha/status.json atomically; concurrent calls are applied in call order. Works
   * before start(); ignored after stop().
   */
  writeStatus(s: StatusFile): Promise<void> {
    const text = JSON.stringify(s);
    const next = this.statusChain.then(async () => {
      if (this.stopped) return;
      await this.ensureDir(this.bihaDir);
      await this.atomicWrite(path.join(this.pgdata, STATUS_FILE), text);
    });
    this.statusChain = next.catch(() => undefined);
    return next;
  }

  // --- internals ---------------------------------------------------------------------------------

  private kick(): void {
    if (!this.running) return;
    if (this.scanning) {
      this.rescan = true;
      return;
    }
    this.scanning = this.scanLoop().finally(() => {
      this.scanning = null;
    });
  }

  private async scanLoop(): Promise<void> {
    do {
      this.rescan = false;
      try {
        await this.scan();
      } catch (err) {
        this.log.warn({ err }, 'sql bridge: scanning %s failed', this.cmdDir);
      }
    } while (this.rescan && this.running);
  }

  private async scan(): Promise<void> {
    const names = await fsp.readdir(this.cmdDir);
    for (const name of names) {
      if (!this.running) return;
      if (!name.endsWith('.req')) continue;
      const id = name.slice(0, -'.req'.length);
      if (this.inFlight.has(id)) continue;
      await this.pickUp(id, path.join(this.cmdDir, name));
    }
    const now = Date.now();
    if (now - this.lastGc >= GC_EVERY_MS) {
      this.lastGc = now;
      await this.gc(names, now);
    }
  }

  private async pickUp(fileId: string, file: string): Promise<void> {
    let text: string;
    let mtimeMs: number;
    try {
      const st = await fsp.stat(file);
      mtimeMs = st.mtimeMs;
      text = await fsp.readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    const parsed = parseRequestFile(text, fileId);
    if (parsed.kind === 'incomplete') {
      if (Date.now() - mtimeMs < INCOMPLETE_TTL_MS) return;
      await this.unlinkQuiet(file);
      this.log.warn({ file }, 'sql bridge: dropped a request file that was never completed');
      if (UUID_RE.test(fileId)) await this.reply(fileId, { ok: false, error: 'malformed request: incomplete file' });
      return;
    }
    await this.unlinkQuiet(file);
    if (parsed.kind === 'bad') {
      this.log.warn({ file, error: parsed.error }, 'sql bridge: rejected a request');
      if (UUID_RE.test(parsed.id)) await this.reply(parsed.id, { ok: false, error: parsed.error });
      return;
    }
    const req = parsed.req;
    if (req.timeoutMs !== undefined && Date.now() > req.ts + req.timeoutMs) {
      this.log.warn({ id: req.id, fn: req.fn, user: req.user }, 'sql bridge: request expired before it was picked up');
      await this.reply(req.id, { ok: false, error: `the ${req.fn} request expired before the biha controller picked it up` });
      return;
    }
    const job = this.run(req).finally(() => this.inFlight.delete(req.id));
    this.inFlight.set(req.id, job);
  }

  private async run(req: BridgeRequest): Promise<void> {
    this.log.info({ id: req.id, fn: req.fn, args: req.args, user: req.user }, 'sql bridge: %s requested by %s', req.fn, req.user);
    let reply: BridgeReply;
    try {
      reply = await this.handler(req);
    } catch (err) {
      reply = { ok: false, error: err instanceof Error ? err.message : String(err) };
    }
    if (!reply.ok) {
      reply = { ok: false, error: reply.error.replace(/^biha:\s*/, '') || `${req.fn} failed` };
      this.log.info({ id: req.id, fn: req.fn, error: reply.error }, 'sql bridge: %s refused', req.fn);
    }
    try {
      await this.reply(req.id, reply);
    } catch (err) {
      this.log.warn({ err, id: req.id }, 'sql bridge: cannot write the reply');
      return;
    }
    // Only once the caller can read the answer (a switchover on the leader's own session).
    if (reply.ok) reply.after?.();
  }

  private async reply(id: string, r: BridgeReply): Promise<void> {
    const body = r.ok
      ? { id, ok: true, ...(r.result === undefined ? {} : { result: r.result }) }
      : { id, ok: false, error: r.error };
    await this.atomicWrite(path.join(this.cmdDir, `${id}.reply`), JSON.stringify(body));
  }

  private async gc(names: string[], now: number): Promise<void> {
    for (const name of names) {
      if (!name.endsWith('.reply') && !name.endsWith('.tmp')) continue;
      const file = path.join(this.cmdDir, name);
      try {
        const st = await fsp.stat(file);
        if (now - st.mtimeMs > REPLY_TTL_MS) await this.unlinkQuiet(file);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
  }

  private async atomicWrite(file: string, text: string): Promise<void> {
    // The temporary name starts with a dot and ends in .tmp, so that neither SQL (which reads
    // <uuid>.reply) nor the scanner (which reads *.req) ever sees a half-written file. Not fsynced:
    // these files describe the running controller only (see the header).
    await atomicWriteFile(file, text, { mode: 0o600, owner: await this.pgdataOwner(), durable: false });
  }

  private async ensureDir(dir: string): Promise<void> {
    await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
    await this.chownLikePgdata(dir);
  }

  /**
   * PostgreSQL must be able to read and write what the bridge creates. The controller normally runs
   * as the server's OS user; when it runs as root, files take the owner of the data directory.
   */
  private async chownLikePgdata(p: string): Promise<void> {
    const owner = await this.pgdataOwner();
    if (owner) await fsp.chown(p, owner.uid, owner.gid);
  }

  private async pgdataOwner(): Promise<{ uid: number; gid: number } | null> {
    if (typeof process.getuid !== 'function' || process.getuid() !== 0) return null;
    if (this.owner === undefined) {
      const st = await fsp.stat(this.pgdata);
      this.owner = st.uid === 0 ? null : { uid: st.uid, gid: st.gid };
    }
    return this.owner;
  }

  private async unlinkQuiet(file: string): Promise<void> {
    try {
      await fsp.unlink(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
}

// ------------------------------------------------------------------------------------------------
// Installing and upgrading the schema

export class SqlInstallError extends BihaError {
  constructor(message: string, opts?: { cause?: unknown; hint?: string }) {
    super('sql_install', message, opts);
    this.name = 'SqlInstallError';
  }
}

/** The sql/ directory of the project, from src/controller/bridge (tests) and from dist/controller/bridge. */
export function sqlDir(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const candidates = [path.resolve(here, '../../../sql')];
  for (const c of candidates) {
    if (fs.existsSync(path.join(c, 'biha--1.0.sql'))) return c;
  }
  throw new SqlInstallError(`cannot find the biha SQL scripts (looked in ${candidates.join(', ')})`);
}

type Version = string;

export function compareVersions(a: Version, b: Version): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

const SCRIPT_RE = /^biha--(\d+(?:\.\d+)*)(?:--(\d+(?:\.\d+)*))?\.sql$/;

export interface SqlScripts {
  /** Versions with a fresh-install script biha--<v>.sql. */
  installs: Version[];
  /** Upgrade scripts biha--<from>--<to>.sql. */
  upgrades: Array<{ from: Version; to: Version }>;
}

export function listSqlScripts(fileNames: readonly string[]): SqlScripts {
  const out: SqlScripts = { installs: [], upgrades: [] };
  for (const n of fileNames) {
    const m = SCRIPT_RE.exec(n);
    if (!m || m[1] === undefined) continue;
    if (m[2] === undefined) out.installs.push(m[1]);
    else out.upgrades.push({ from: m[1], to: m[2] });
  }
  return out;
}

export function latestVersion(s: SqlScripts): Version | null {
  const all = [...s.installs, ...s.upgrades.map((u) => u.to)];
  return all.length === 0 ? null : all.reduce((a, b) => (compareVersions(a, b) >= 0 ? a : b));
}

function shortestChain(s: SqlScripts, from: Version, to: Version): string[] | null {
  const prev = new Map<Version, Version>();
  const seen = new Set<Version>([from]);
  const queue: Version[] = [from];
  while (queue.length > 0) {
    const v = queue.shift() as Version;
    if (v === to) {
      const files: string[] = [];
      for (let cur = to; cur !== from; ) {
        const p = prev.get(cur) as Version;
        files.unshift(`biha--${p}--${cur}.sql`);
        cur = p;
      }
      return files;
    }
    const next = s.upgrades.filter((u) => u.from === v).map((u) => u.to).sort(compareVersions).reverse();
    for (const n of next) {
      if (seen.has(n)) continue;
      seen.add(n);
      prev.set(n, v);
      queue.push(n);
    }
  }
  return null;
}

/**
 * The scripts that take the schema from `installed` (null: not installed) to `target`, in order:
 * a fresh install runs biha--<v>.sql, preferring the shortest chain (a direct install when there is
 * one); an upgrade runs the shortest chain of biha--<a>--<b>.sql.
 */
export function planSqlInstall(s: SqlScripts, installed: Version | null, target: Version): string[] {
  if (installed !== null) {
    if (installed === target) return [];
    const chain = shortestChain(s, installed, target);
    if (chain === null) {
      throw new SqlInstallError(`no upgrade path from biha schema ${installed} to ${target}`, {
        hint: compareVersions(installed, target) > 0 ? 'the installed schema is newer; downgrades are not supported' : undefined,
      });
    }
    return chain;
  }
  let best: string[] | null = null;
  for (const v of [...s.installs].sort(compareVersions).reverse()) {
    const chain = shortestChain(s, v, target);
    if (chain !== null && (best === null || chain.length + 1 < best.length)) best = [`biha--${v}.sql`, ...chain];
  }
  if (best === null) throw new SqlInstallError(`no script installs biha schema ${target}`);
  return best;
}

const INSTALL_LOCK_KEY = 0x62696861; // 'biha'

/**
 * Installs or upgrades the biha schema in the database `client` is connected to (biha_db, as a
 * superuser, on the leader), in one transaction. Returns the installed version; a no-op when it
 * is already `targetVersion` (default: the newest version the scripts reach).
 */
export async function installSql(client: Client, targetVersion?: string, opts?: { dir?: string }): Promise<string> {
  const dir = opts?.dir ?? sqlDir();
  const scripts = listSqlScripts(await fsp.readdir(dir));
  const target = targetVersion ?? latestVersion(scripts);
  if (target === null) throw new SqlInstallError(`no biha SQL scripts in ${dir}`);

  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_catalog.pg_advisory_xact_lock($1)', [INSTALL_LOCK_KEY]);
    const who = await client.query<{ su: boolean; rec: boolean; db: string }>(
      'SELECT r.rolsuper AS su, pg_catalog.pg_is_in_recovery() AS rec, pg_catalog.current_database() AS db FROM pg_catalog.pg_roles r WHERE r.rolname = current_user',
    );
    const me = who.rows[0];
    if (!me?.su) throw new SqlInstallError('the biha schema must be installed by a superuser');
    if (me.rec) throw new SqlInstallError('the biha schema must be installed on the leader (this server is in recovery)');
    const cur = await client.query<{ present: boolean }>(
      "SELECT pg_catalog.to_regclass('biha.schema_version') IS NOT NULL AS present",
    );
    let installed: string | null = null;
    if (cur.rows[0]?.present) {
      const r = await client.query<{ version: string }>('SELECT version FROM biha.schema_version');
      installed = r.rows[0]?.version ?? null;
    }
    const plan = planSqlInstall(scripts, installed, target);
    for (const file of plan) {
      const text = await fsp.readFile(path.join(dir, file), 'utf8');
      try {
        await client.query(text);
      } catch (err) {
        throw new SqlInstallError(`${file}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      }
    }
    const after = await client.query<{ version: string }>('SELECT version FROM biha.schema_version');
    const got = after.rows[0]?.version;
    if (got !== target) {
      throw new SqlInstallError(`after running ${plan.join(', ') || 'nothing'} the biha schema is at version ${got ?? 'none'}, not ${target}`);
    }
    await client.query('COMMIT');
    return target;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}
