// The controller: one process beside each PostgreSQL instance. This file wires the parts together
// and runs their lifecycle (start, pid file, privileges, shutdown): the raft driver and NC
// (driver/, the same code the simulator checks) with real effects — the state files, the control
// channel, the PostgreSQL adapter, the lease watchdog — plus the command table (commands.ts), the
// status snapshot (status.ts), the SQL bridge, the local socket, HTTP, metrics, callbacks and the
// failback schedule.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import type { Logger } from 'pino';
import { asLearner, validateChange, splitBrainWarning, zeroLossViolation } from '../raft/index.js';
import type { ClusterConfig, ConfigChange, Entry, Message, NodeId, NodeInfo, RaftNode, SoftState, WalPos } from '../raft/index.js';
import { BackupLock, backupLockCommand } from './ops/backuplock.js';
import { Transport } from './bcp/transport.js';
import type { PeerAddr } from './bcp/transport.js';
import { BihaError } from './errors.js';
import { LocalServer, localSocketPath } from './bridge/localsock.js';
import type { LocalRequest } from './bridge/localsock.js';
import { createLoggers } from './logger.js';
import type { Loggers } from './logger.js';
import { encodeMagic } from './security/magic.js';
import { Driver, driverPeriods } from './driver/driver.js';
import { isDataNode } from './driver/duties.js';
import type { NodeErrorReport, WatchdogPort } from './driver/types.js';
import type { NodeConf, NodeErrorInfo, NodeState } from './state/nodefiles.js';
import { bihaDir, logDir } from './state/nodefiles.js';
import type { NodeStore } from './state/store.js';
import { openNodeStore } from './pg/rewindsave.js';
import { LocalPg, withConn } from './pg/conn.js';
import { readBihaGucs } from './pg/conf.js';
import { formatLsn, parseLsn } from './pg/lsn.js';
import { resolvePgEnv } from './pg/tools.js';
import type { PgEnv } from './pg/tools.js';
import { PostgresActions, timelineFromWire, timelineToWire } from './pg/actions.js';
import type { TimelineWire } from './pg/actions.js';
import { SqlBridge } from './bridge/sqlbridge.js';
import { WatchdogClient, monoMs } from './pg/watchdog.js';
import type { ClientEndpoints } from './ops/endpoints.js';
import { startHttpServer } from './ops/http.js';
import type { HttpServerHandle } from './ops/http.js';
import { createApi } from './ops/api.js';
import { HttpAuth, credentialsPath } from './ops/httpauth.js';
import { NodeOps } from './ops/nodeops.js';
import { PROMOTIONS_META_KEY, PromotionNotes, promotionChange } from './ops/history.js';
import { HeartbeatRtt, Metrics } from './ops/metrics.js';
import { LagClock } from './ops/lagclock.js';
import { packageVersionOrUnknown } from './version.js';
import { osUserById } from './osuser.js';
import { CallbackEvents, CallbackRunner, callbackSettings } from './ops/callbacks.js';
import { FAILBACK_META_KEY, FailbackScheduler, decodeFailback, failbackChange } from './ops/failback.js';
import type { BridgeReply, BridgeRequest, StatusFile } from './bridge/sqlbridge.js';
import { assertNodeFilesPrivate } from './security/secfiles.js';
import { caFingerprint, checkClusterTls, loadTlsDir, tlsDir, tlsJoinExtras } from './security/tlsfiles.js';
import type { TlsMaterial } from './security/tlsfiles.js';
import { reconcileSecrets, rotateSecret, secretId } from './security/rotation.js';
import { runCommand } from './commands.js';
import type { CommandHost } from './commands.js';
import { buildStatus } from './status.js';
import { switchoverFinished, switchoverStarted, waitStatementDone } from './ops/switchover.js';
import type { SwitchoverRecord } from './ops/switchover.js';
import { reachablePg } from './pg/reach.js';

/** How long a command waits for a change already in flight (or a new leader's first entry) to commit. */
const CHANGE_BUSY_WAIT_MS = 3000;
/** How long a switchover asked for on the leader's own SQL session waits for that statement to finish. */
const SWITCHOVER_STATEMENT_WAIT_MS = 3000;

const MESSAGE_TYPES = new Set(['app', 'app_resp', 'prevote', 'vote', 'prevote_resp', 'vote_resp', 'timeout_now']);
const RaftEnvelope = z
  .object({ type: z.string(), from: z.number().int(), to: z.number().int(), term: z.number().int().nonnegative() })
  .passthrough();

const JoinSchema = z.object({
  node: z.object({
    id: z.number().int().positive().max(1_000_000),
    host: z.string().min(1).max(255),
    port: z.number().int().min(0).max(65535),
    bihaPort: z.number().int().min(1).max(65535),
    mode: z.enum(['regular', 'referee', 'referee_with_wal']),
    canBeLeader: z.boolean(),
    canVote: z.boolean(),
    priority: z.number().int(),
  }),
  /** bihactl add --allow-sync-loss */
  allowSyncLoss: z.boolean().optional(),
});

const AdminSchema = z.object({ fn: z.string(), args: z.record(z.unknown()) });

/** Parameter names as the reference (and SQL) spell them, for messages users see. */
const REFERENCE_NAMES: Record<string, string> = {
  heartbeatMaxLost: 'heartbeat_max_lost',
  heartbeatSendPeriod: 'heartbeat_send_period',
  noWalOnFollower: 'no_wal_on_follower',
  syncStandbys: 'sync_standbys',
  serviceMode: 'service_mode',
  canBeLeader: 'can_be_leader',
  canVote: 'can_vote',
};
function referenceNames(msg: string): string {
  return msg.replace(/\b(heartbeatMaxLost|heartbeatSendPeriod|noWalOnFollower|syncStandbys|serviceMode|canBeLeader|canVote)\b/g, (m) => REFERENCE_NAMES[m] ?? m);
}

export interface ControllerOptions {
  readonly pgdata: string;
  /** Log to this file instead of stderr. */
  readonly logFile?: string;
}

/** A NODE_ERROR as biha.state keeps it (LSNs as text) from the driver's report, and back. */
function errorInfo(e: NodeErrorReport): NodeErrorInfo {
  const lsn = (n: number | null): string | null => (n === null ? null : formatLsn(n));
  return {
    type: e.type,
    details: e.details,
    beginLsn: lsn(e.beginLsn),
    endLsn: lsn(e.endLsn),
    currentTli: e.currentTli,
    nextTli: e.nextTli,
    replayLsn: lsn(e.replayLsn),
    since: new Date().toISOString(),
    kept: e.kept ? { tli: e.kept.tli, lsn: formatLsn(e.kept.lsn) } : null,
  };
}
function errorReport(e: NodeErrorInfo): NodeErrorReport {
  const lsn = (s: string | null): number | null => {
    try {
      return s === null ? null : parseLsn(s);
    } catch {
      return null;
    }
  };
  const kept: WalPos | null = e.kept ? { tli: e.kept.tli, lsn: lsn(e.kept.lsn) ?? 0 } : null;
  return {
    type: e.type === 'REWIND_FAILED' ? 'REWIND_FAILED' : 'TIMELINE_DIVERGED',
    details: e.details,
    beginLsn: lsn(e.beginLsn),
    endLsn: lsn(e.endLsn),
    currentTli: e.currentTli,
    nextTli: e.nextTli,
    replayLsn: lsn(e.replayLsn),
    kept,
  };
}

export class Controller implements CommandHost {
  private readonly pgdata: string;
  /** This node's biha.conf and biha.state: every change goes through the store (one queue, durable writes). */
  private store!: NodeStore;
  private gucs: Record<string, string> = {};
  /** The biha.* settings as read at start: what a restart-only setting is compared with on SIGHUP. */
  private startGucs: Readonly<Record<string, string>> = {};
  /** Size and mtime of the TLS files as loaded at start ('' without TLS). */
  private tlsStamp = '';
  private env!: PgEnv;
  private pg!: LocalPg;
  private loggers!: Loggers;
  private log!: Logger;
  private ncLog!: Logger;
  private transport!: Transport;
  private driver!: Driver;
  private actions!: PostgresActions;
  private bridge: SqlBridge | null = null;
  private local!: LocalServer;
  private stoppingFlag = false;
  private timers: NodeJS.Timeout[] = [];
  private pending = new Map<number, { term: number; resolve: () => void; reject: (e: Error) => void }>();
  private lastStatusWrite = 0;
  private exitResolve!: (code: number) => void;
  readonly exited: Promise<number>;
  private startedAt = Date.now();
  private watchdog: WatchdogClient | null = null;
  private metrics!: Metrics;
  /** This follower's replay lag in time, from the leader positions its heartbeats carry. */
  private readonly lagClock = new LagClock();
  private rtt!: HeartbeatRtt;
  private http: HttpServerHandle | null = null;
  private lastTickAt = performance.now();
  private tlsMat: TlsMaterial | null = null;
  private syncedMeta: Readonly<Record<string, string>> | null = null;
  private cbRunner: CallbackRunner | null = null;
  private callbacks: CallbackEvents | null = null;
  private failbackSched: FailbackScheduler | null = null;
  private readonly backupLockState = new BackupLock();
  private nodeOps!: NodeOps;
  private readonly promotionNotes = new PromotionNotes();
  /** --proxy-port, --proxy-ro-port, --vip (ops/endpoints.ts); null when none is set. */
  private endpoints: ClientEndpoints | null = null;

  constructor(private readonly opts: ControllerOptions) {
    this.pgdata = path.resolve(opts.pgdata);
    this.exited = new Promise<number>((r) => (this.exitResolve = r));
  }

  /** The driver's clock: the host's monotonic clock, shared with the watchdog process. */
  private now(): number {
    return monoMs();
  }

  private get conf(): NodeConf {
    return this.store.conf;
  }

  private get state(): NodeState {
    return this.store.state;
  }

  get selfId(): NodeId {
    return this.conf.nodeId;
  }

  private get raft(): RaftNode | null {
    return this.driver?.raft ?? null;
  }

  private config(): ClusterConfig {
    return this.driver ? this.driver.config() : this.state.raft.log.snapshot.config;
  }

  private hasData(): boolean {
    return this.conf.mode !== 'referee';
  }

  soft(): SoftState {
    if (this.driver) return this.driver.soft();
    return { role: 'follower', term: this.state.raft.hard.term, leaderId: 0, writable: false, state: 'STARTUP', transferTarget: 0 };
  }

  async start(): Promise<void> {
    // An interrupted rewind is recovered first: until then PGDATA/pg_biha may be another node's.
    const opened = await openNodeStore(this.pgdata, (msg) => process.stderr.write(`bihactl controller: ${msg}\n`));
    this.store = opened.store;
    assertNodeFilesPrivate(this.pgdata);
    this.tlsMat = this.conf.tls ? await loadTlsDir(this.pgdata) : null;
    this.tlsStamp = this.conf.tls ? tlsFilesStamp(this.pgdata) : '';
    checkClusterTls(this.state.raft.log.snapshot.meta, this.tlsMat);
    if (this.hasData()) this.gucs = await readBihaGucs(this.pgdata, this.conf.configDir ?? null).catch(() => ({}));
    this.startGucs = { ...this.gucs };
    fs.mkdirSync(logDir(this.pgdata), { recursive: true });
    this.loggers = createLoggers({ file: this.opts.logFile, nodeId: this.conf.nodeId, gucs: this.gucs });
    this.log = this.loggers.get('BIHA');
    this.ncLog = this.loggers.get('NC');
    const hard0 = this.state.raft.hard;
    this.log.info({ term: hard0.term, vote: hard0.vote }, `hard state persisted: term ${hard0.term}, vote ${hard0.vote} (as loaded at start)`);
    let logged = { term: hard0.term, vote: hard0.vote };
    this.writePid();
    if (opened.recovered) {
      const r = opened.recovered;
      for (const n of r.notes) this.log.warn(n);
      this.log.warn({ source: r.marker.source ?? null, restored: r.restored, keptIn: r.keptIn }, `interrupted rewind detected and recovered: ${r.reason}`);
    }
    this.metrics = new Metrics({
      node_id: String(this.conf.nodeId),
      node_name: process.env['BIHA_NODE_NAME'] ?? '',
      region: process.env['BIHA_REGION'] ?? '',
    }, { cluster: this.conf.clusterId, version: packageVersionOrUnknown() });
    this.rtt = new HeartbeatRtt(this.metrics);
    this.cbRunner = new CallbackRunner({
      log: this.loggers.get('BIHA'),
      settings: async () => callbackSettings(await readBihaGucs(this.pgdata, this.conf.configDir ?? null).catch(() => this.gucs)),
      onOutcome: (event, outcome) => this.metrics.callbackRun(event, outcome),
    });
    this.callbacks = new CallbackEvents(this.cbRunner, this.conf.nodeId, this.pgdata);
    this.failbackSched = new FailbackScheduler({
      selfId: this.conf.nodeId,
      log: this.loggers.get('BIHA'),
      setting: () => decodeFailback(this.raft?.meta()[FAILBACK_META_KEY]),
      isLeader: () => this.soft().role === 'leader',
      serviceMode: () => this.config().params.serviceMode,
      config: () => this.config(),
      status: () => this.status(),
      // An incomplete switchover answers false: failback logs it as failed and retries.
      transfer: async (id) => {
        if (!(await this.setLeader(id))) throw new BihaError('switchover_failed', this.lastSwitchover?.detail ?? `switchover to node ${id} did not complete`);
      },
    });
    this.env = await resolvePgEnv(this.pgdata, { configDir: this.conf.configDir ?? null });
    this.pg = new LocalPg({ pgdata: this.pgdata, port: this.conf.port, user: this.env.user, database: 'postgres' });
    this.actions = new PostgresActions({
      pgdata: this.pgdata,
      conf: this.conf,
      env: this.env,
      pg: this.pg,
      log: this.ncLog,
      config: () => this.config(),
      store: this.store,
      restoreIdentity: () => {
        this.loggers.reopen();
        return Promise.resolve();
      },
    });

    this.nodeOps = new NodeOps({
      pgdata: this.pgdata,
      nodeId: this.conf.nodeId,
      hasData: this.hasData(),
      bihactl: BIHACTL_JS,
      log: this.loggers.get('BIHA'),
      soft: () => this.soft(),
      status: () => this.status(),
      query: (sql) => this.pg.query(sql),
      exclusive: (fn) => this.driver.nc.exclusive(fn),
      restartPg: () => this.actions.restart(),
      kick: () => this.driver?.kick(),
      meta: () => this.raft?.meta() ?? this.state.raft.log.snapshot.meta,
    });

    this.transport = new Transport({
      selfId: this.conf.nodeId,
      clusterId: this.conf.clusterId,
      secrets: () => [...this.conf.secrets],
      listenHost: process.env['BIHA_LISTEN_HOST'] ?? '0.0.0.0',
      listenPort: this.conf.bihaPort,
      logger: this.loggers.get('BCP'),
      // The CA goes in the chain too: a node being added pins it by its fingerprint.
      ...(this.tlsMat ? { tls: { key: this.tlsMat.key, cert: `${this.tlsMat.cert.trim()}\n${this.tlsMat.ca.trim()}\n`, ca: this.tlsMat.ca } } : {}),
    });
    this.transport.onMessage((from, kind, body) => this.onPeerMessage(from, kind, body));
    this.transport.onRequest((from, kind, body) => this.onPeerRequest(from, kind, body));
    await this.transport.start();
    this.updatePeers(this.config());

    this.local = new LocalServer(localSocketPath(this.conf.bihaPort), (req) => this.onLocal(req));
    await this.local.start();
    const httpHost = this.conf.httpHost ?? process.env['BIHA_LISTEN_HOST'] ?? '0.0.0.0';
    try {
      this.http = await startHttpServer({
        host: httpHost,
        port: this.conf.httpPort,
        logger: this.loggers.get('HTTP'),
        metrics: this.metrics,
        source: {
          nodeId: this.conf.nodeId,
          status: () => this.status(),
          loopAgeMs: () => (this.raft ? performance.now() - this.lastTickAt : null),
        },
        api: createApi({
          host: { nodeId: this.conf.nodeId, run: (fn, args) => runCommand(this, fn, args, 0), status: () => this.status() },
          auth: new HttpAuth(credentialsPath(this.pgdata)),
          log: this.loggers.get('HTTP'),
          credentialsHint: `bihactl set-http-credentials --pgdata=${this.pgdata} --http-user=NAME`,
        }),
        ...(this.conf.httpTls ? { tls: httpTlsOf(this.tlsMat) } : {}),
      });
    } catch (e) {
      this.log.error({ err: e instanceof Error ? e.message : String(e), host: httpHost, port: this.conf.httpPort }, `the HTTP server could not start on ${httpHost}:${this.conf.httpPort}; continuing without it`);
    }

    if (this.hasData()) {
      this.watchdog = new WatchdogClient(
        this.pgdata,
        BIHACTL_JS,
        this.loggers.get('WD'),
        // A node whose PostgreSQL nobody would fence must not lead: the driver reads alive() on every tick.
        { onHealth: () => this.driver?.tick() },
      );
      this.watchdog.start();
    }
    this.driver = new Driver({
      id: this.conf.nodeId,
      hasData: this.hasData(),
      state: this.state.raft,
      rand: Math.random,
      io: {
        persist: async (raft) => {
          await this.store.setRaft(raft);
          // One line per persisted term/vote change, written (synchronously) before any vote is sent:
          // the complete record of this node's votes (test/jepsen-lite checks it for double votes).
          const h = raft.hard;
          if (h.term !== logged.term || h.vote !== logged.vote) {
            logged = { term: h.term, vote: h.vote };
            this.log.info({ term: h.term, vote: h.vote }, `hard state persisted: term ${h.term}, vote ${h.vote}`);
          }
        },
        send: (m) => this.transport.send(m.to, 'raft', m),
      },
      pg: this.hasData() ? this.actions : null,
      peers: { timeline: async (id) => timelineFromWire((await this.transport.request(id, 'tl_history', {}, 3000)) as TimelineWire) },
      pgReachable: (nodes) => reachablePg(nodes),
      watchdog: this.watchdogPort(),
      sched: {
        now: monoMs,
        after: (ms, fn) => {
          const t = setTimeout(fn, ms);
          return () => clearTimeout(t);
        },
      },
      log: this.log,
      ncLog: this.ncLog,
      nodeError: () => (this.state.nodeError ? errorReport(this.state.nodeError) : null),
      saveNodeError: (e) => this.store.setNodeError(e ? errorInfo(e) : null),
      autorewind: async () => {
        this.gucs = await readBihaGucs(this.pgdata, this.conf.configDir ?? null).catch(() => this.gucs);
        return /^(on|true|yes|1)$/i.test(this.gucs['biha.autorewind'] ?? 'false');
      },
      stopping: () => this.stoppingFlag,
      hooks: {
        soft: (prev, s) => this.onSoft(prev, s),
        committed: (entries) => this.onCommitted(entries),
        config: (cfg) => this.updatePeers(cfg),
        logChanged: () => this.syncSecrets(),
        sent: (m) => {
          if (m.type === 'app') {
            this.metrics.heartbeatSent();
            this.rtt.sent(m.to, m.seq);
          }
        },
        fatal: () => void this.shutdown(false, 1),
        nodeError: (e) => {
          if (e) this.callbacks?.nodeError(this.soft(), e.type);
        },
      },
    });
    // PostgreSQL first: the node must know its WAL position before it may vote.
    await this.driver.boot(600_000);
    if (this.hasData()) {
      this.bridge = new SqlBridge({
        pgdata: this.pgdata,
        logger: this.loggers.get('BIHA'),
        handler: (req) => this.onBridge(req),
        pollMs: 250,
      });
      await this.bridge.start();
    }
    this.syncSecrets();
    const { tickMs, pollMs } = driverPeriods(this.config().params.heartbeatSendPeriod);
    this.driver.start(tickMs, pollMs);
    this.timers.push(setInterval(() => (this.lastTickAt = performance.now()), tickMs));
    this.timers.push(setInterval(() => void this.writeStatus(false), 250));
    await this.startEndpoints();
    this.log.info(
      { id: this.conf.nodeId, bihaPort: this.conf.bihaPort, pgPort: this.conf.port, mode: this.conf.mode },
      'controller started',
    );
  }

  /** The proxies and the virtual IP of bihactl init/add --proxy-port, --proxy-ro-port, --vip. */
  private async startEndpoints(): Promise<void> {
    const conf = this.conf.proxy;
    if (!conf || (conf.port === undefined && conf.roPort === undefined && !conf.vip)) return;
    // Loaded only on nodes that have them: the proxies (and their worker thread) and the VIP code.
    const [{ ClientEndpoints }, { computeRoutes }] = await Promise.all([import('./ops/endpoints.js'), import('./ops/proxyroute.js')]);
    this.endpoints = new ClientEndpoints({
      conf,
      selfId: this.conf.nodeId,
      listenHost: process.env['BIHA_LISTEN_HOST'] ?? '0.0.0.0',
      log: this.loggers.get('BIHA'),
      metrics: this.metrics,
      electionTimeoutMs: () => this.config().params.heartbeatSendPeriod * this.config().params.heartbeatMaxLost,
      routes: (maxLag) => computeRoutes({ selfId: this.conf.nodeId, config: this.config(), soft: this.soft(), peers: this.raft?.peers() ?? [] }, maxLag),
      selfPrimary: () => this.driver.observed().role === 'PRIMARY',
      peerPrimary: async (id) => {
        const r = (await this.transport.request(id, 'node_state', {}, 1000)) as { soft?: SoftState; pgRole?: string } | null;
        return r?.soft?.state === 'LEADER_RW' && r.pgRole === 'PRIMARY';
      },
    });
    await this.endpoints.start();
  }

  /** The lease watchdog as the driver sees it (deadlines on the host's monotonic clock, as the driver's). */
  private watchdogPort(): WatchdogPort | null {
    const wd = this.watchdog;
    if (!wd) return null;
    return {
      arm: (until) => wd.arm(until, monoMs()),
      renew: (until) => wd.renew(until, monoMs()),
      disarm: () => void wd.disarm(),
      alive: () => wd.alive(),
    };
  }

  private writePid(): void {
    const file = path.join(bihaDir(this.pgdata), 'controller.pid');
    try {
      const old = Number(fs.readFileSync(file, 'utf8').trim());
      if (old && old !== process.pid) {
        // A killed controller can linger as a zombie until it is reaped: that one does not count.
        let stat = '';
        try {
          stat = fs.readFileSync(`/proc/${old}/stat`, 'utf8');
        } catch {
          stat = '';
        }
        const alive = stat !== '' && !/^\d+ \(.*\) [ZX]/.test(stat);
        const cmdline = alive ? fs.readFileSync(`/proc/${old}/cmdline`, 'utf8').replace(/\0/g, ' ') : '';
        if (alive && cmdline.includes('controller'))
          throw new BihaError('already_running', `a controller (PID ${old}) already runs for ${this.pgdata}`, {
            hint: 'stop it with bihactl stop first',
          });
      }
    } catch (e) {
      if (e instanceof BihaError) throw e;
    }
    fs.writeFileSync(file, `${process.pid}\n`, { mode: 0o600 });
  }

  // ---- raft events ----

  private onSoft(prev: SoftState | null, s: SoftState): void {
    if (!prev || prev.role !== s.role || prev.term !== s.term || prev.leaderId !== s.leaderId || prev.state !== s.state)
      this.log.info({ role: s.role, term: s.term, leader: s.leaderId, state: s.state }, `state ${s.state}, term ${s.term}, leader ${s.leaderId || 'unknown'}`);
    if (s.role === 'candidate' && (prev?.role !== 'candidate' || prev.term !== s.term)) this.metrics.electionStarted();
    if (s.role === 'leader' && prev?.role !== 'leader') this.metrics.electionWon();
    this.callbacks?.onSoft(prev, s);
    this.failbackSched?.sync();
    // At once: a node that stops being LEADER_RW gives up the virtual IP now.
    this.endpoints?.sync();
    if (prev && prev.role === 'leader' && s.role !== 'leader') {
      for (const [, p] of this.pending) p.reject(new BihaError('not_leader', 'this node lost the leadership before the change was committed'));
      this.pending.clear();
    }
    void this.writeStatus(true);
  }

  private onCommitted(entries: readonly Entry[]): void {
    for (const e of entries) {
      if (e.change) this.log.info({ index: e.index, term: e.term, change: e.change.type }, 'config change committed');
      const p = this.pending.get(e.index);
      if (p) {
        this.pending.delete(e.index);
        if (p.term === e.term) p.resolve();
        else p.reject(new BihaError('lost', 'the change was replaced by a newer leader; try again'));
      }
      if (e.change?.type === 'set_meta') this.syncSecrets();
      this.recordPromotion(e);
    }
    this.failbackSched?.sync();
    void this.writeStatus(true);
  }

  /** A committed timeline reservation of this leader's term: record the promotion (ops/history.ts). */
  private recordPromotion(e: Entry): void {
    const rec = this.promotionNotes.recordFor(e, this.soft(), this.conf.nodeId, new Date());
    if (!rec) return;
    setImmediate(() => {
      const change = promotionChange(this.raft?.meta()[PROMOTIONS_META_KEY], rec);
      this.proposeAndWait('promotion record', change).catch((err: unknown) =>
        this.log.warn({ tli: rec.tli, err: err instanceof Error ? err.message : String(err) }, `could not record the promotion to timeline ${rec.tli}; GET /history shows it without its reason`),
      );
    });
  }

  private updatePeers(cfg: ClusterConfig): void {
    const peers: PeerAddr[] = cfg.nodes.filter((n) => n.id !== this.conf.nodeId).map((n) => ({ id: n.id, host: n.host, port: n.bihaPort }));
    if (cfg.nodes.length === 0) for (const s of this.conf.seeds) if (s.id !== this.conf.nodeId) peers.push({ id: s.id, host: s.host, port: s.bihaPort });
    this.transport.setPeers(peers);
  }

  private onPeerMessage(from: number, kind: string, body: unknown): void {
    if (kind !== 'raft' || !this.raft) return;
    const r = RaftEnvelope.safeParse(body);
    if (!r.success || !MESSAGE_TYPES.has(r.data.type) || r.data.from !== from || r.data.to !== this.conf.nodeId) {
      this.loggers.get('BCP').warn({ from }, 'dropped a malformed raft message');
      return;
    }
    const msg = body as Message;
    if (msg.type === 'app') this.metrics.heartbeatReceived();
    else if (msg.type === 'app_resp') this.rtt.acked(from, msg.seq);
    else if (msg.type === 'timeout_now') {
      this.callbacks?.noteTimeoutNow(msg.term);
      this.promotionNotes.noteTimeoutNow(msg.term);
    }
    this.driver.step(msg);
    // Only the leader this node follows (a deposed one may still send for a while) sets the lag clock.
    if (msg.type === 'app' && this.soft().leaderId === from) this.lagClock.note(from, msg.wal.lsn, performance.now());
  }

  private async onPeerRequest(from: number, kind: string, body: unknown): Promise<unknown> {
    switch (kind) {
      case 'tl_history':
        if (!this.hasData()) throw new BihaError('no_data', 'this node has no PostgreSQL data');
        return timelineToWire(await this.actions.timeline());
      case 'join': {
        const j = JoinSchema.parse(body);
        const r = await this.join(j.node, j.allowSyncLoss === true);
        return (r as { ok?: boolean }).ok && this.tlsMat ? { ...(r as object), ...tlsJoinExtras(this.tlsMat) } : r;
      }
      case 'secret_state':
        return { ids: this.conf.secrets.map((x) => secretId(this.conf.clusterId, x)) };
      case 'admin': {
        const a = AdminSchema.parse(body);
        return await runCommand(this, a.fn, a.args, from);
      }
      case 'node_state':
        return { id: this.conf.nodeId, soft: this.soft(), pgRole: this.driver.observed().role };
      default:
        throw new BihaError('unknown_request', `unknown request "${kind}"`);
    }
  }

  // ---- commands (local socket, SQL bridge, forwarded from peers: commands.ts) ----

  private async onLocal(req: LocalRequest): Promise<unknown> {
    if (req.cmd === 'shutdown') {
      const stopPg = req.args['stopPostgres'] !== false;
      setImmediate(() => void this.shutdown(stopPg, 0));
      return { stopping: true };
    }
    return await runCommand(this, req.cmd, req.args, 0);
  }

  private async onBridge(req: BridgeRequest): Promise<BridgeReply> {
    try {
      if (req.fn === 'set_leader' && this.soft().role === 'leader') return this.setLeaderOnOwnSession(req);
      const result = await runCommand(this, req.fn, req.args, 0);
      return { ok: true, result };
    } catch (e) {
      return { ok: false, error: e instanceof BihaError && e.hint ? `${e.message} (${e.hint})` : e instanceof Error ? e.message : String(e) };
    }
  }

  private leaderInfo(): NodeInfo | undefined {
    const id = this.soft().leaderId;
    return this.config().nodes.find((n) => n.id === id);
  }

  private requireLeader(fn: string): RaftNode {
    const raft = this.raft;
    if (!raft || raft.soft().role !== 'leader') {
      const l = this.leaderInfo();
      throw new BihaError(
        'not_leader',
        `${fn} must be called on the leader; this node (${this.conf.nodeId}) is not the leader` +
          (l ? ` — the leader is node ${l.id} (${l.host}:${l.port})` : ' and no leader is known'),
      );
    }
    return raft;
  }

  async proposeAndWait(fn: string, change: ConfigChange, timeoutMs = 10_000): Promise<void> {
    let raft = this.requireLeader(fn);
    const why = validateChange(raft.config(), change);
    if (why) throw new BihaError('invalid', referenceNames(why));
    // A leader elected a moment ago commits its first entry within a heartbeat round, and a change
    // in flight commits as fast: wait that long rather than send the DBA off to retry.
    const busyUntil = performance.now() + CHANGE_BUSY_WAIT_MS;
    let r = raft.propose(change, this.now());
    while (!r.ok && r.code === 'change_in_progress' && performance.now() < busyUntil) {
      await new Promise((res) => setTimeout(res, 50));
      raft = this.requireLeader(fn);
      r = raft.propose(change, this.now());
    }
    if (!r.ok) throw new BihaError(r.code, referenceNames(r.message));
    this.driver.kick();
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(r.index);
        reject(new BihaError('timeout', `the change was not committed within ${timeoutMs} ms (are enough nodes online?)`));
      }, timeoutMs);
      this.pending.set(r.index, {
        term: r.term,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
    });
  }

  /**
   * Turning service mode off needs a leader, and service mode stops elections: when the cluster has
   * none, this node campaigns once despite service mode (an ordinary election) so that it can commit
   * the change. Returns at once when a leader is known (the change then goes to it as usual).
   */
  async leadToLeaveServiceMode(): Promise<void> {
    const raft = this.raft;
    if (!raft || !this.config().params.serviceMode || raft.soft().role === 'leader') return;
    const why = raft.campaignDespiteServiceMode(this.now());
    if (why !== null) {
      if (raft.soft().leaderId !== 0) return; // requireLeader names the leader
      throw new BihaError('no_leader', `node ${this.conf.nodeId} cannot campaign to leave service mode: ${why}`, {
        hint: 'run it on another node that can lead',
      });
    }
    this.log.warn({ id: this.conf.nodeId }, 'service mode: no leader; campaigning once so that service mode can be turned off');
    this.driver.kick();
    const deadline = Date.now() + 4 * this.config().params.heartbeatSendPeriod * this.config().params.heartbeatMaxLost + 5000;
    while (Date.now() < deadline) {
      const soft = raft.soft();
      if (soft.role === 'leader') return;
      if (soft.leaderId !== 0 && soft.leaderId !== this.conf.nodeId) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new BihaError('no_leader', `node ${this.conf.nodeId} was not elected, so service mode stays on`, {
      hint: 'its WAL may be behind another node, or too few voters are online: run it on the node with the most WAL',
    });
  }

  async forwardToLeader(fn: string, args: Record<string, unknown>, timeoutMs: number): Promise<unknown> {
    const l = this.leaderInfo();
    if (!l || l.id === this.conf.nodeId) throw new BihaError('no_leader', `no leader is known right now; ${fn} needs one`);
    return await this.transport.request(l.id, 'admin', { fn, args }, timeoutMs);
  }

  async removeNode(id: NodeId): Promise<void> {
    if (id === this.conf.nodeId) throw new BihaError('is_leader', `node ${id} is the leader: switch over first with select biha.set_leader(<id>)`);
    if (!this.config().nodes.some((n) => n.id === id)) throw new BihaError('unknown_node', `node ${id} is not in the cluster`);
    await this.proposeAndWait('biha.remove_node', { type: 'remove_node', id });
  }

  /**
   * The zero-loss rule of synchronous mode (zeroLossViolation in src/raft/config.ts), checked by
   * the leader against its configuration right before it proposes `change`: refused unless the
   * caller accepted the risk, and logged when it did.
   */
  private checkZeroLoss(fn: string, change: ConfigChange, accepted: boolean, howToAccept: string): void {
    const why = zeroLossViolation(this.requireLeader(fn).config(), change);
    if (why === null) return;
    if (!accepted) throw new BihaError('sync_loss', `${why}; or accept that risk with ${howToAccept}`);
    this.log.warn({ fn }, `accepted with allow_sync_loss: ${why}`);
  }

  async setSyncStandbys(k: number, allowSyncLoss: boolean): Promise<void> {
    const change: ConfigChange = { type: 'set_params', params: { syncStandbys: k } };
    this.checkZeroLoss('biha.set_sync_standbys', change, allowSyncLoss, `select biha.set_sync_standbys(${k}, allow_sync_loss => true)`);
    await this.proposeAndWait('biha.set_sync_standbys', change);
  }

  async setNquorumAndMinnodes(nquorum: number, minnodes: number, allowSyncLoss: boolean): Promise<void> {
    const change: ConfigChange = { type: 'set_params', params: { nquorum, minnodes } };
    this.checkZeroLoss('biha.set_nquorum_and_minnodes', change, allowSyncLoss, `select biha.set_nquorum_and_minnodes(${nquorum}, ${minnodes}, allow_sync_loss => true)`);
    await this.proposeAndWait('biha.set_nquorum_and_minnodes', change);
    const warn = splitBrainWarning(this.config());
    if (warn) this.log.warn(warn);
  }

  async failback(args: Record<string, unknown> | null): Promise<void> {
    const change = failbackChange(this.config(), args);
    await this.proposeAndWait(args ? 'biha.set_failback' : 'biha.reset_failback', change);
  }

  restartPostgres(force: boolean): Promise<string> {
    return this.nodeOps.restartPostgres(force);
  }

  reinitialize(force: boolean): Promise<string> {
    return this.nodeOps.reinitialize(force);
  }

  history(): Promise<unknown> {
    return this.nodeOps.history();
  }

  syncStandbyNames(): Promise<string> {
    return this.nodeOps.syncStandbyNames();
  }

  backupLock(args: Record<string, unknown>): unknown {
    return backupLockCommand(this.backupLockState, args, this.conf.nodeId, () => this.status(), Date.now());
  }

  async rotateSecret(): Promise<string> {
    await rotateSecret({
      clusterId: this.conf.clusterId,
      secrets: () => this.conf.secrets,
      meta: () => this.raft?.meta() ?? {},
      members: () => this.config().nodes.map((n) => n.id).filter((id) => id !== this.conf.nodeId),
      proposeMeta: (key, value) => this.proposeAndWait('rotate-secret', { type: 'set_meta', key, value }),
      askSecrets: async (id) => ((await this.transport.request(id, 'secret_state', {}, 2000)) as { ids: string[] }).ids,
      log: (msg) => this.log.info(msg),
    });
    return this.magicString();
  }

  /**
   * The secrets this node holds follow the committed meta (a rotation). They are used at once and
   * saved in the background; after a crash in between, the persisted log brings them back at start.
   */
  private syncSecrets(): void {
    const meta = this.raft ? this.raft.meta() : this.state.raft.log.snapshot.meta;
    if (meta === this.syncedMeta) return;
    this.syncedMeta = meta;
    let next: string[] | null;
    try {
      next = reconcileSecrets(this.conf.clusterId, meta, this.conf.secrets);
    } catch (e) {
      this.log.error({ err: e instanceof Error ? e.message : String(e) }, 'cannot take the rotated cluster secret');
      return;
    }
    if (!next) return;
    this.log.info({ held: next.length }, next.length > 1 ? 'cluster secret rotated; the previous one is still accepted' : 'cluster secret: only the current one is accepted');
    // Used at once (the store's value changes now), saved in the background by the store's queue.
    this.store
      .updateConf((c) => ({ ...c, secrets: next }))
      .catch((err: unknown) => this.log.error({ err: String(err) }, 'cannot save the new secret'));
  }

  async resetNodeError(): Promise<void> {
    if (!this.state.nodeError) return;
    await this.driver.resetNodeError();
    if (this.hasData()) await this.pg.query('select pg_wal_replay_resume()').catch(() => undefined);
  }

  /**
   * `bihactl rewind`: pg_rewind this node from the current leader, keeping its identity and the WAL
   * files the rewind replaces; on success the NODE_ERROR is cleared and the node follows again.
   */
  async rewind(): Promise<string> {
    if (!this.hasData()) throw new BihaError('no_data', 'a referee has no data to rewind');
    let leader: NodeInfo;
    try {
      leader = await this.driver.rewindFromLeader();
    } catch (e) {
      if (e instanceof Error && /needs another node to be the leader/.test(e.message)) throw new BihaError('no_leader', e.message);
      throw e;
    }
    return `rewound from node ${leader.id}; the WAL from before the rewind is kept in ${this.pgdata}.biha-rewind-save`;
  }

  magicString(): string {
    const cfg = this.config();
    const leaderId = this.soft().leaderId;
    const nodes = [...cfg.nodes].sort((a, b) => (a.id === leaderId ? -1 : b.id === leaderId ? 1 : a.id - b.id));
    const peers = nodes.filter(isDataNode).map((n) => ({ id: n.id, host: n.host, port: n.port, bihaPort: n.bihaPort }));
    const tlsCa = this.tlsMat ? { tlsCa: caFingerprint(this.tlsMat.ca), tlsOwnCerts: this.tlsMat.caKey === undefined } : {};
    return encodeMagic({ clusterId: this.conf.clusterId, secret: this.conf.secrets[0]!, peers, tls: this.conf.tls, ...tlsCa });
  }

  /**
   * Switchover to node `id`, waiting for its outcome: true once node `id` is a writable primary,
   * false when the transfer did not complete (this node leads on, or another node won); the
   * outcome is logged and kept for biha.last_switchover(). Refusals (not the leader, unknown or
   * ineligible node, target unreachable) raise before anything starts.
   */
  async setLeader(id: NodeId): Promise<boolean> {
    const raft = this.checkSetLeader(id);
    if (raft === null) return true;
    return await this.runSwitchover(raft, id);
  }

  /** Refuses a switchover that cannot start now; null when `id` is this node (nothing to do). */
  private checkSetLeader(id: NodeId): RaftNode | null {
    const raft = this.requireLeader('biha.set_leader');
    if (id === this.conf.nodeId) return null;
    const node = raft.config().nodes.find((n) => n.id === id);
    if (!node) throw new BihaError('unknown_node', `node ${id} is not in the cluster`);
    if (node.mode !== 'regular')
      throw new BihaError('not_eligible', `node ${id} is a ${node.mode} node and can never be the leader`, {
        hint: "choose a regular node: select id from biha.status_v where mode = 'regular'",
      });
    const refused = raft.transferRefusal(id, this.now());
    if (refused) throw new BihaError(refused.code, refused.message);
    return raft;
  }

  private async runSwitchover(raft: RaftNode, id: NodeId): Promise<boolean> {
    await this.checkpointBeforeSwitchover();
    const r = raft.transferLeadership(id, this.now());
    if (!r.ok) throw new BihaError(r.code, r.message);
    this.lastSwitchover = switchoverStarted(id, Date.now());
    this.log.info({ target: id }, `switchover to node ${id} started`);
    this.driver.kick();
    const finish = (ok: boolean, detail: string): boolean => this.switchoverOutcome(id, ok, detail);
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      await new Promise((res) => setTimeout(res, 5));
      const s = this.soft();
      if (s.leaderId === id) {
        // Ask the new leader directly rather than waiting for its next heartbeat.
        const r = (await this.transport.request(id, 'node_state', {}, 1000).catch(() => null)) as { soft?: SoftState; pgRole?: string } | null;
        if (r?.soft?.state === 'LEADER_RW' && r.pgRole === 'PRIMARY') return finish(true, `switchover to node ${id} completed: node ${id} is the writable leader`);
      } else if (s.role === 'leader' && s.transferTarget === 0) {
        return finish(false, `switchover to node ${id} failed: node ${id} did not catch up or win in time; node ${this.conf.nodeId} stays the leader`);
      } else if (s.role !== 'leader' && s.leaderId !== 0 && s.leaderId !== id) {
        return finish(false, `switchover to node ${id} failed: node ${s.leaderId} won the election instead`);
      }
    }
    return finish(false, `switchover to node ${id} did not complete within 30 s`);
  }

  /**
   * biha.set_leader(id) typed on this leader's own session. The fence restarts this PostgreSQL,
   * which would end the session before the answer reaches it; so the answer is given first: the
   * switchover is checked and accepted (true), and starts once the calling statement has finished
   * (at most SWITCHOVER_STATEMENT_WAIT_MS later). Its outcome is logged and kept for
   * biha.last_switchover(), like every switchover's.
   */
  private setLeaderOnOwnSession(req: BridgeRequest): BridgeReply {
    const id = req.args['id'] as number;
    const raft = this.checkSetLeader(id);
    if (raft === null) return { ok: true, result: true };
    this.log.info({ target: id, user: req.user }, `switchover to node ${id} accepted; it starts when the calling statement has finished`);
    this.lastSwitchover = switchoverStarted(id, Date.now());
    const start = async (): Promise<void> => {
      if (req.pid !== undefined) await waitStatementDone((q, p) => this.pg.query(q, p), req.pid, Date.now(), SWITCHOVER_STATEMENT_WAIT_MS);
      try {
        await this.runSwitchover(this.checkSetLeader(id) ?? raft, id);
      } catch (e) {
        this.switchoverOutcome(id, false, `switchover to node ${id} failed to start: ${e instanceof Error ? e.message : String(e)}`);
      }
    };
    return { ok: true, result: true, after: () => void start() };
  }

  /**
   * The switchover stops this primary cleanly, and its shutdown checkpoint writes every dirty
   * buffer while no write is possible. A checkpoint first, while it still takes writes (on a
   * connection of its own, so the status poll goes on), leaves that one little to do.
   */
  private async checkpointBeforeSwitchover(): Promise<void> {
    const t = Date.now();
    try {
      await withConn(this.pg.opts, async (c) => {
        await c.query('CHECKPOINT');
      });
      this.log.info({ ms: Date.now() - t }, 'checkpoint before the switchover done');
    } catch (e) {
      this.log.warn({ err: e instanceof Error ? e.message : String(e) }, 'checkpoint before the switchover failed; switching over anyway');
    }
  }

  /** Records, logs and publishes how the switchover to `id` ended; returns `ok`. */
  private switchoverOutcome(id: NodeId, ok: boolean, detail: string): boolean {
    if (this.lastSwitchover?.target === id) this.lastSwitchover = switchoverFinished(this.lastSwitchover, ok, detail, Date.now());
    if (ok) this.log.info({ target: id }, detail);
    else this.log.warn({ target: id }, detail);
    void this.writeStatus(true);
    return ok;
  }

  private async join(node: NodeInfo, allowSyncLoss: boolean): Promise<unknown> {
    const raft = this.raft;
    if (!raft || raft.soft().role !== 'leader') {
      const l = this.leaderInfo();
      if (l && l.id !== this.conf.nodeId) return { redirect: { id: l.id, host: l.host, port: l.port, bihaPort: l.bihaPort } };
      throw new BihaError('no_leader', 'the cluster has no leader right now; try again in a few seconds');
    }
    const cfg = raft.config();
    const same = cfg.nodes.find((n) => n.id === node.id);
    const me0 = cfg.nodes.find((n) => n.id === this.conf.nodeId)!;
    if (same && same.host === node.host && same.port === node.port && same.bihaPort === node.bihaPort && same.mode === node.mode) {
      // A retried `bihactl add` of the same node: reuse the registration.
      if (isDataNode(node) && this.hasData()) await this.slotWithRetry(node.id);
      return { ok: true, leader: { id: me0.id, host: me0.host, port: me0.port, bihaPort: me0.bihaPort }, slot: `biha_node_${node.id}`, snapshot: raft.persistent().log.snapshot };
    }
    if (same)
      throw new BihaError(
        'duplicate_id',
        `node id ${node.id} is already in the cluster (${same.host}:${same.port}): choose another --biha-node-id, or remove it first with select biha.remove_node(${node.id})`,
      );
    const clash = cfg.nodes.find((n) => n.host === node.host && (n.bihaPort === node.bihaPort || (node.port !== 0 && n.port === node.port)));
    if (clash) throw new BihaError('duplicate_addr', `node ${clash.id} already uses ${node.host} with port ${clash.port}/${clash.bihaPort}`);
    this.checkZeroLoss('add node', { type: 'add_node', node }, allowSyncLoss, 'bihactl add --allow-sync-loss');
    // It votes once it follows with its data (asLearner): the leader gives it the vote then.
    await this.proposeAndWait('add node', { type: 'add_node', node: asLearner(node) });
    if (isDataNode(node) && this.hasData()) await this.slotWithRetry(node.id);
    const me = cfg.nodes.find((n) => n.id === this.conf.nodeId)!;
    // The committed configuration (which now holds the new node) seeds the new node's log, so it
    // knows it is a member and can vote even before it hears a leader.
    return { ok: true, leader: { id: me.id, host: me.host, port: me.port, bihaPort: me.bihaPort }, slot: `biha_node_${node.id}`, snapshot: raft.persistent().log.snapshot };
  }

  /** The new node's slot, created while PostgreSQL may be restarting (promotion, fence). */
  private async slotWithRetry(id: NodeId): Promise<void> {
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        await this.actions.slotFor(id);
        return;
      } catch (e) {
        if (Date.now() > deadline)
          throw new BihaError('slot_failed', `node ${id} was added to the cluster, but its replication slot could not be created: ${e instanceof Error ? e.message : String(e)}`, {
            hint: `run the same bihactl add again, or remove the node with select biha.remove_node(${id})`,
          });
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  // ---- status ----

  status(): StatusFile {
    const pgStatus = this.hasData() ? this.actions.status() : null;
    const soft = this.soft();
    return buildStatus({
      selfId: this.conf.nodeId,
      mode: this.conf.mode,
      hasData: this.hasData(),
      config: this.config(),
      soft,
      peers: this.raft ? this.raft.peers() : [],
      transport: this.transport.peerInfo(),
      pg: pgStatus,
      observed: this.driver ? this.driver.observed() : { role: 'STOPPED', upstream: 0, stalled: false, diverged: null, checkedTli: 0 },
      nodeError: this.state.nodeError,
      decision: this.driver ? this.driver.nc.lastDecision() : '',
      startedAt: this.startedAt,
      now: Date.now(),
      failback: decodeFailback(this.raft?.meta()[FAILBACK_META_KEY]),
      switchover: this.lastSwitchover,
      ownLagMs: pgStatus?.inRecovery ? this.lagClock.lagMs(soft.leaderId, pgStatus.replayLsn, performance.now()) : null,
    });
  }

  /** The last switchover this node ran as the leader (biha.last_switchover()). */
  private lastSwitchover: SwitchoverRecord | null = null;

  private writingStatus = false;
  private async writeStatus(force: boolean): Promise<void> {
    if (!this.bridge || this.writingStatus) return;
    const period = Math.min(1000, this.config().params.heartbeatSendPeriod);
    if (!force && Date.now() - this.lastStatusWrite < period) return;
    this.writingStatus = true;
    try {
      await this.bridge.writeStatus(this.status());
      this.lastStatusWrite = Date.now();
    } catch (e) {
      this.log.warn({ err: e instanceof Error ? e.message : String(e) }, 'could not write the status file');
    } finally {
      this.writingStatus = false;
    }
  }

  // ---- reload (SIGHUP) ----

  /**
   * Re-read the biha.* settings of postgresql.biha.conf / postgresql.auto.conf and reopen the log
   * file (logrotate). Log levels apply at once; biha.autorewind and the callback settings are
   * read whenever they are used, so the next use sees the new values. Identity and cluster
   * settings are not changed live: a changed one is logged as needing a restart.
   */
  async reload(): Promise<void> {
    if (this.stoppingFlag || !this.loggers) return;
    this.loggers.reopen();
    const before = this.gucs;
    let gucs = before;
    let readErr: string | null = null;
    if (this.hasData()) {
      try {
        gucs = await readBihaGucs(this.pgdata, this.conf.configDir ?? null);
      } catch (e) {
        readErr = e instanceof Error ? e.message : String(e);
      }
    }
    this.gucs = gucs;
    const levels = this.loggers.setLevels(gucs);
    const live = ['biha.autorewind', ...new Set([...Object.keys(before), ...Object.keys(gucs)].filter((k) => k.startsWith('biha.callback')))];
    const liveChanged = live.filter((k) => (before[k] ?? '') !== (gucs[k] ?? ''));
    const notApplied = readErr === null ? FIXED_GUCS.filter((k) => (this.startGucs[k] ?? '') !== (gucs[k] ?? '')) : [];
    const tlsChanged = this.conf.tls && tlsFilesStamp(this.pgdata) !== this.tlsStamp;
    const parts = [
      'log file reopened',
      levels.length > 0 ? `log levels ${levels.map((l) => `${l.component} ${l.from}->${l.to}`).join(', ')}` : 'log levels unchanged',
      ...(liveChanged.length > 0 ? [`${liveChanged.map((k) => `${k} = ${gucs[k] ?? '(unset)'}`).join(', ')}`] : []),
    ];
    // The root logger: this line is written whatever the component levels are.
    const log = this.loggers.root.child({ component: 'BIHA' });
    if (readErr !== null) log.warn({ err: readErr }, 'SIGHUP: could not read the biha settings; kept the previous ones');
    log.info({ levels, changed: liveChanged }, `reloaded on SIGHUP: ${parts.join('; ')}`);
    if (tlsChanged) log.warn(`SIGHUP: the TLS files in ${tlsDir(this.pgdata)} changed; they are loaded at start: restart the controller (bihactl stop, bihactl start) to use them`);
    if (notApplied.length > 0) {
      log.warn(
        { settings: notApplied },
        `SIGHUP: ${notApplied.join(', ')} changed in the conf file, which neither a reload nor a restart applies: ` +
          "the node's identity is in pg_biha/biha.conf and cluster settings change with the biha.set_* SQL functions",
      );
    }
  }

  // ---- shutdown ----

  async shutdown(stopPostgres: boolean, code: number): Promise<void> {
    if (this.stoppingFlag) return;
    this.stoppingFlag = true;
    this.log.info({ stopPostgres }, 'controller stopping');
    // The virtual IP goes first, before PostgreSQL stops or another node can be elected.
    await this.endpoints?.close().catch(() => undefined);
    for (const t of this.timers) clearInterval(t);
    this.failbackSched?.close();
    this.cbRunner?.close();
    this.driver?.stop();
    try {
      if (stopPostgres && this.hasData() && this.driver) await this.driver.nc.exclusive(() => this.actions.stop());
    } catch (e) {
      this.log.error({ err: e instanceof Error ? e.message : String(e) }, 'could not stop PostgreSQL');
    }
    // Disarm only when PostgreSQL is no longer writable; otherwise the watchdog keeps guarding the lease.
    if (this.watchdog) {
      const primary = this.driver?.probe()?.role === 'PRIMARY' || this.driver?.observed().role === 'PRIMARY';
      if (stopPostgres || !primary) this.watchdog.stop();
      else this.watchdog.detach();
    }
    await this.http?.close().catch(() => undefined);
    await this.bridge?.stop().catch(() => undefined);
    await this.local?.close().catch(() => undefined);
    await this.transport?.close().catch(() => undefined);
    await this.pg?.close().catch(() => undefined);
    // A change still in the store's queue (a rotated secret) reaches the disk before the exit.
    await this.store?.flush().catch(() => undefined);
    try {
      fs.rmSync(path.join(bihaDir(this.pgdata), 'controller.pid'), { force: true });
    } catch {
      // the directory may be gone
    }
    this.loggers?.root.flush();
    this.exitResolve(code);
  }
}

/**
 * biha.* settings shown in the conf file but not taken from it: identity (pg_biha/biha.conf) and
 * cluster settings (the raft configuration).
 */
const FIXED_GUCS = [
  'biha.id', 'biha.host', 'biha.port', 'biha.heartbeat_max_lost', 'biha.heartbeat_send_period',
  'biha.minnodes', 'biha.no_wal_on_follower', 'biha.nquorum',
] as const;

/** bin/bihactl.js of this installation (the watchdog and a background reinit run it). */
const BIHACTL_JS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'bihactl.js');

/** The HTTPS key and chain of --http-tls: the control channel's node certificate and the cluster CA. */
function httpTlsOf(m: TlsMaterial | null): { key: string; cert: string } {
  if (!m) throw new BihaError('bad_tls', 'biha.conf asks for HTTPS (--http-tls), but the node has no TLS material in pg_biha/tls', { hint: 'the HTTP port stays closed: give the cluster TLS (bihactl init --use-ssl) or set up the node again without --http-tls' });
  return { key: m.key, cert: `${m.cert.trim()}\n${m.ca.trim()}\n` };
}

/** Names, sizes and mtimes of the files in pg_biha/tls: a change means new TLS material. */
function tlsFilesStamp(pgdata: string): string {
  try {
    const dir = tlsDir(pgdata);
    return fs
      .readdirSync(dir)
      .sort()
      .map((n) => {
        const st = fs.statSync(path.join(dir, n));
        return `${n}:${st.size}:${st.mtimeMs}`;
      })
      .join(',');
  } catch {
    return '';
  }
}

/** Run a controller in this process until it is told to stop. Returns the exit code. */
export async function runController(opts: ControllerOptions): Promise<number> {
  dropPrivileges(opts.pgdata);
  // Passwords given to bihactl itself never reach PostgreSQL, its tools or callbacks (the
  // controller uses pg_biha/pgpass).
  delete process.env['BIHA_REPLICATION_PASSWORD'];
  delete process.env['BIHA_HTTP_PASSWORD'];
  delete process.env['PGPASSWORD'];
  const c = new Controller(opts);
  const onSignal = (): void => void c.shutdown(true, 0);
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  // SIGHUP (systemctl reload, logrotate) reloads instead of ending the process.
  process.on('SIGHUP', () => void c.reload().catch(() => undefined));
  try {
    await c.start();
  } catch (e) {
    await c.shutdown(false, 1).catch(() => undefined);
    throw e;
  }
  return await c.exited;
}

/** Started as root, the controller becomes the owner of the data directory (PostgreSQL refuses root). */
function dropPrivileges(pgdata: string): void {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return;
  const st = fs.statSync(pgdata);
  if (st.uid === 0)
    throw new BihaError('root_owner', `${pgdata} is owned by root`, { hint: 'chown it to the postgres OS user' });
  const { name: user, home } = osUserById(st.uid);
  process.setgroups?.([st.gid]);
  process.setgid!(st.gid);
  process.setuid!(st.uid);
  process.env['HOME'] = home;
  process.env['USER'] = user;
  process.env['LOGNAME'] = user;
}
