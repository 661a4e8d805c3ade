// The controller: one process beside each PostgreSQL instance. It wires the pure raft core to the
// world. This file is the ONE raft driver: for every Ready it persists the hard state and log
// (fsynced) first, then carries out the votes-fence-WAL detach, then sends the messages, then
// applies the committed configuration, then lets the node controller (NC) reconcile PostgreSQL.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import type { Logger } from 'pino';
import {
  RaftNode,
  validateChange,
  splitBrainWarning,
  BIHA_STATES,
} from '../raft/index.js';
import type { ClusterConfig, ConfigChange, Entry, Message, NodeId, NodeInfo, SoftState, WalPos } from '../raft/index.js';
import { BackupLock, backupLockCommand } from './ops/backuplock.js';
import { Transport } from './bcp/transport.js';
import type { PeerAddr } from './bcp/transport.js';
import { BihaError } from './errors.js';
import { LocalServer, localSocketPath } from './bridge/localsock.js';
import type { LocalRequest } from './bridge/localsock.js';
import { createLoggers } from './logger.js';
import type { Loggers } from './logger.js';
import { encodeMagic } from './security/magic.js';
import { NodeCtl } from './driver/nc.js';
import type { Observed } from './driver/nc.js';
import type { NodeConf, NodeErrorInfo, NodeState } from './state/nodefiles.js';
import { bihaDir, logDir, readNodeConf, readNodeState, writeNodeConf, writeNodeState } from './state/nodefiles.js';
import { LocalPg, localStatus } from './pg/conn.js';
import type { LocalPgStatus } from './pg/conn.js';
import { readBihaGucs } from './pg/conf.js';
import { formatLsn } from './pg/lsn.js';
import { postmasterPid, resolvePgEnv } from './pg/tools.js';
import type { PgEnv } from './pg/tools.js';
import { PostgresActions, isDataNode } from './pg/actions.js';
import type { TimelineInfo } from './pg/actions.js';
import { SqlBridge } from './bridge/sqlbridge.js';
import { WatchdogClient } from './pg/watchdog.js';
import { startHttpServer } from './ops/http.js';
import type { HttpServerHandle } from './ops/http.js';
import { HeartbeatRtt, Metrics } from './ops/metrics.js';
import { osUserById } from './osuser.js';
import { fileURLToPath } from 'node:url';
import { CallbackEvents, CallbackRunner, callbackSettings } from './ops/callbacks.js';
import { FAILBACK_META_KEY, FailbackScheduler, decodeFailback, failbackChange } from './ops/failback.js';
import type { BridgeReply, BridgeRequest, StatusFile } from './bridge/sqlbridge.js';
import { assertNodeFilesPrivate } from './security/secfiles.js';
import { caFingerprint, checkClusterTls, loadTlsDir, tlsJoinExtras } from './security/tlsfiles.js';
import type { TlsMaterial } from './security/tlsfiles.js';
import { reconcileSecrets, rotateSecret, secretId } from './security/rotation.js';

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

function num(args: Record<string, unknown>, key: string): number {
  const v = args[key];
  if (typeof v !== 'number' || !Number.isInteger(v))
    throw new BihaError('bad_args', `argument "${key}" must be an integer`);
  return v;
}
function bool(args: Record<string, unknown>, key: string): boolean {
  const v = args[key];
  if (typeof v !== 'boolean') throw new BihaError('bad_args', `argument "${key}" must be a boolean`);
  return v;
}

export class Controller {
  private readonly pgdata: string;
  private conf!: NodeConf;
  private state!: NodeState;
  private gucs: Record<string, string> = {};
  private env!: PgEnv;
  private pg!: LocalPg;
  private loggers!: Loggers;
  private log!: Logger;
  private ncLog!: Logger;
  private transport!: Transport;
  private raft: RaftNode | null = null;
  private nc!: NodeCtl;
  private actions!: PostgresActions;
  private bridge: SqlBridge | null = null;
  private local!: LocalServer;
  private observed: Observed = { role: 'STOPPED', upstream: 0 };
  private pgStatus: LocalPgStatus | null = null;
  private lastSoft: SoftState | null = null;
  private stoppingFlag = false;
  private timers: NodeJS.Timeout[] = [];
  private pumping = false;
  private pumpAgain = false;
  private pending = new Map<number, { term: number; resolve: () => void; reject: (e: Error) => void }>();
  private lastStatusWrite = 0;
  private exitResolve!: (code: number) => void;
  readonly exited: Promise<number>;
  private startedAt = Date.now();
  private watchdog: WatchdogClient | null = null;
  private metrics!: Metrics;
  private rtt!: HeartbeatRtt;
  private http: HttpServerHandle | null = null;
  private lastTickAt = performance.now();
  private walProgressAt = performance.now();
  private lastReceiveLsn = -1;
  private tlsMat: TlsMaterial | null = null;
  private syncedMeta: Readonly<Record<string, string>> | null = null;
  private confWrite: Promise<void> = Promise.resolve();
  private cbRunner: CallbackRunner | null = null;
  private callbacks: CallbackEvents | null = null;
  private failback: FailbackScheduler | null = null;
  private readonly backupLock = new BackupLock();

  constructor(private readonly opts: ControllerOptions) {
    this.pgdata = path.resolve(opts.pgdata);
    this.exited = new Promise<number>((r) => (this.exitResolve = r));
  }

  private now(): number {
    return performance.now();
  }

  private get selfId(): NodeId {
    return this.conf.nodeId;
  }

  private config(): ClusterConfig {
    return this.raft ? this.raft.config() : this.state.raft.log.snapshot.config;
  }

  private hasData(): boolean {
    return this.conf.mode !== 'referee';
  }

  async start(): Promise<void> {
    this.conf = await readNodeConf(this.pgdata);
    this.state = await readNodeState(this.pgdata);
    assertNodeFilesPrivate(this.pgdata);
    this.tlsMat = this.conf.tls ? await loadTlsDir(this.pgdata) : null;
    checkClusterTls(this.state.raft.log.snapshot.meta, this.tlsMat);
    if (this.hasData()) this.gucs = await readBihaGucs(this.pgdata).catch(() => ({}));
    fs.mkdirSync(logDir(this.pgdata), { recursive: true });
    this.loggers = createLoggers({ file: this.opts.logFile, nodeId: this.conf.nodeId, gucs: this.gucs });
    this.log = this.loggers.get('BIHA');
    this.ncLog = this.loggers.get('NC');
    this.writePid();
    this.metrics = new Metrics({
      node_id: String(this.conf.nodeId),
      node_name: process.env['BIHA_NODE_NAME'] ?? '',
      region: process.env['BIHA_REGION'] ?? '',
    });
    this.rtt = new HeartbeatRtt(this.metrics);
    this.cbRunner = new CallbackRunner({
      log: this.loggers.get('BIHA'),
      settings: async () => callbackSettings(await readBihaGucs(this.pgdata).catch(() => this.gucs)),
      onOutcome: (event, outcome) => this.metrics.callbackRun(event, outcome),
    });
    this.callbacks = new CallbackEvents(this.cbRunner, this.conf.nodeId, this.pgdata);
    this.failback = new FailbackScheduler({
      selfId: this.conf.nodeId,
      log: this.loggers.get('BIHA'),
      setting: () => decodeFailback(this.raft?.meta()[FAILBACK_META_KEY]),
      isLeader: () => this.soft().role === 'leader',
      serviceMode: () => this.config().params.serviceMode,
      config: () => this.config(),
      status: () => this.statusSnapshot(),
      transfer: (id) => this.setLeader(id),
    });
    this.env = await resolvePgEnv(this.pgdata);
    this.pg = new LocalPg({ socketDir: '/tmp', port: this.conf.port, user: this.env.user, database: 'postgres' });
    this.actions = new PostgresActions({
      pgdata: this.pgdata,
      conf: this.conf,
      env: this.env,
      pg: this.pg,
      log: this.ncLog,
      config: () => this.config(),
      peerTimeline: (id) => this.peerTimeline(id),
      autorewind: async () => {
        this.gucs = await readBihaGucs(this.pgdata).catch(() => this.gucs);
        return /^(on|true|yes|1)$/i.test(this.gucs['biha.autorewind'] ?? 'false');
      },
      enterNodeError: (e) => this.enterNodeError(e),
      setObserved: (o) => {
        this.observed = o;
      },
      status: () => this.statusNow(),
      nodesInError: () =>
        new Set((this.raft?.peers() ?? []).filter((p) => p.state === 'NODE_ERROR' || p.state === 'NODE_ERROR_VOTING').map((p) => p.id)),
      restoreIdentity: async () => {
        this.loggers.reopen();
        await writeNodeConf(this.pgdata, this.conf);
        await writeNodeState(this.pgdata, this.state);
      },
    });
    this.nc = new NodeCtl({
      selfId: this.conf.nodeId,
      log: this.ncLog,
      actions: this.actions,
      observe: () => this.observed,
      soft: () => this.soft(),
      config: () => this.config(),
      nodeError: () => this.state.nodeError !== null,
      stopping: () => this.stoppingFlag,
      hasData: () => this.hasData(),
      afterCycle: (o) => {
        if (this.raft) {
          this.raft.setLocalFenced(o.role !== 'PRIMARY');
          this.schedulePump();
        }
      },
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
    try {
      this.http = await startHttpServer({
        host: process.env['BIHA_LISTEN_HOST'] ?? '0.0.0.0',
        port: this.conf.httpPort,
        logger: this.loggers.get('HTTP'),
        metrics: this.metrics,
        source: {
          nodeId: this.conf.nodeId,
          status: () => this.statusSnapshot(),
          loopAgeMs: () => (this.raft ? performance.now() - this.lastTickAt : null),
        },
      });
    } catch (e) {
      this.log.error({ err: e instanceof Error ? e.message : String(e), port: this.conf.httpPort }, 'the health/metrics HTTP server could not start; continuing without it');
    }

    // PostgreSQL first: the node must know its WAL position before it may vote.
    let wal: WalPos = { tli: 0, lsn: 0 };
    if (this.hasData()) {
      await this.nc.exclusive(() => this.actions.startStandby());
      wal = await this.waitForWal();
      this.bridge = new SqlBridge({
        pgdata: this.pgdata,
        logger: this.loggers.get('BIHA'),
        handler: (req) => this.onBridge(req),
        pollMs: 250,
      });
      await this.bridge.start();
      this.watchdog = new WatchdogClient(
        this.pgdata,
        path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'bihactl.js'),
        this.loggers.get('WD'),
      );
      this.watchdog.start();
    }
    this.raft = new RaftNode({ id: this.conf.nodeId, state: this.state.raft, rand: Math.random, now: this.now() });
    this.raft.setWal(wal);
    if (this.state.nodeError) this.raft.setNodeError(true);
    this.raft.setLocalFenced(this.observed.role !== 'PRIMARY');
    this.lastSoft = this.raft.soft();
    this.syncSecrets();

    const hb = this.config().params.heartbeatSendPeriod;
    // Fine enough for the lease margin (>= 50 ms) and cheap when idle.
    const tickMs = Math.max(5, Math.min(50, Math.floor(hb / 20)));
    this.timers.push(
      setInterval(() => {
        if (!this.raft) return;
        this.lastTickAt = performance.now();
        this.raft.tick(this.now());
        this.guardLease();
        this.schedulePump();
      }, tickMs),
    );
    // WAL positions matter at heartbeat granularity; poll faster only with short heartbeats.
    if (this.hasData()) this.timers.push(setInterval(() => void this.pollPostgres(), Math.max(50, Math.min(250, Math.floor(hb / 4)))));
    this.timers.push(setInterval(() => void this.writeStatus(false), 250));
    this.schedulePump();
    this.nc.kick();
    this.log.info(
      { id: this.conf.nodeId, bihaPort: this.conf.bihaPort, pgPort: this.conf.port, mode: this.conf.mode },
      'controller started',
    );
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

  private async waitForWal(): Promise<WalPos> {
    const deadline = Date.now() + 600_000;
    let last = '';
    while (Date.now() < deadline) {
      try {
        const s = await this.statusNow();
        this.pgStatus = s;
        this.actions.noteStatus(s);
        return this.walOf(s);
      } catch (e) {
        const msg = e instanceof Error ? e.message : String(e);
        if (msg !== last) this.ncLog.warn({ err: msg }, 'waiting for PostgreSQL to accept connections');
        last = msg;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    throw new BihaError('pg_unavailable', 'PostgreSQL did not accept connections within 10 minutes');
  }

  private knownTli = 0;
  private tliCheckedAt = 0;

  /**
   * Local status with the timeline a standby really is on. PostgreSQL 15 shows it only while a
   * walreceiver runs (received_tli); otherwise the last checkpoint's timeline can be older. The
   * newest timeline history file in pg_wal and every received_tli seen so far fill the gap.
   */
  private async statusNow(): Promise<LocalPgStatus> {
    const s = await localStatus(this.pg);
    if (s.inRecovery) {
      if (s.walReceiver?.receivedTli) this.knownTli = Math.max(this.knownTli, s.walReceiver.receivedTli);
      if (Date.now() - this.tliCheckedAt > 1000) {
        this.tliCheckedAt = Date.now();
        const r = await this.pg.query<{ t: number | null }>(
          "select max(('x' || substr(f, 1, 8))::bit(32)::int) as t from pg_ls_dir('pg_wal') f where f ~ '^[0-9A-F]{8}\\.history$'",
        );
        this.knownTli = Math.max(this.knownTli, r[0]?.t ?? 0);
      }
    } else {
      this.knownTli = s.tli;
    }
    return { ...s, tli: Math.max(s.tli, this.knownTli) };
  }

  private walOf(s: LocalPgStatus): WalPos {
    const lsn = s.inRecovery ? Math.max(s.receiveLsn ?? 0, s.replayLsn ?? 0) : (s.currentLsn ?? 0);
    return { tli: s.tli, lsn };
  }

  private polling = false;
  private async pollPostgres(): Promise<void> {
    if (this.polling || this.stoppingFlag) return;
    this.polling = true;
    try {
      const busy = this.nc.busy();
      let s: LocalPgStatus | null = null;
      try {
        s = await this.statusNow();
      } catch {
        s = null;
      }
      this.pgStatus = s;
      this.actions.noteStatus(s);
      if (s && this.raft) this.raft.setWal(this.walOf(s));
      if (busy || this.nc.busy()) return;
      if (s) this.checkWalFlow(s);
      // Peer states move without raft events (a follower enters NODE_ERROR): keep duties in line.
      if (this.observed.role === 'PRIMARY' && this.actions.primaryDutiesPending()) this.nc.kick();
      let role = this.observed.role;
      if (s) role = s.inRecovery ? 'STANDBY' : 'PRIMARY';
      else if ((await postmasterPid(this.pgdata)) === null) role = 'STOPPED';
      if (role !== this.observed.role) {
        if (role === 'STOPPED') this.ncLog.warn('PostgreSQL is not running; starting it again');
        this.observed = { role, upstream: role === 'STANDBY' ? this.observed.upstream : 0 };
        this.raft?.setLocalFenced(role !== 'PRIMARY');
        this.nc.kick();
      }
      this.schedulePump();
    } finally {
      this.polling = false;
    }
  }

  /**
   * Keep the watchdog's deadline at the end of the lease while this node is a writable leader, so
   * PostgreSQL is fenced even if this process dies or is paused. Disarm only once PostgreSQL is no
   * longer a primary.
   */
  private guardLease(): void {
    const wd = this.watchdog;
    const raft = this.raft;
    if (!wd || !raft) return;
    const now = this.now();
    const soft = raft.soft();
    if (soft.role === 'leader' && soft.writable) {
      const until = raft.leaseExpiresAt(now);
      if (until !== null) wd.arm(until, now);
    } else if (this.observed.role !== 'PRIMARY') {
      wd.disarm();
    }
  }

  /**
   * no_wal_on_follower: a follower that hears the leader but gets no WAL for that long
   * re-establishes replication (a retarget from scratch) and says so.
   */
  private checkWalFlow(s: LocalPgStatus): void {
    const raft = this.raft;
    if (!raft || !s.inRecovery || this.observed.role !== 'STANDBY' || this.observed.upstream === 0) {
      this.walProgressAt = this.now();
      return;
    }
    const soft = raft.soft();
    const limit = this.config().params.noWalOnFollower;
    const leaderWal = raft.peers().find((p) => p.id === soft.leaderId)?.wal;
    const recv = s.receiveLsn ?? 0;
    const caughtUp = leaderWal !== undefined && (leaderWal.tli < s.tli || (leaderWal.tli === s.tli && leaderWal.lsn <= recv));
    if (recv > this.lastReceiveLsn || caughtUp || soft.leaderId !== this.observed.upstream) {
      this.lastReceiveLsn = Math.max(this.lastReceiveLsn, recv);
      this.walProgressAt = this.now();
      return;
    }
    if (limit > 0 && this.now() - this.walProgressAt > limit && !this.nc.busy()) {
      this.ncLog.warn(
        { leader: soft.leaderId, receiveLsn: formatLsn(recv), walReceiver: s.walReceiver?.status ?? null, ms: Math.round(this.now() - this.walProgressAt) },
        `no WAL from leader node ${soft.leaderId} for more than no_wal_on_follower (${limit} ms) while heartbeats arrive: re-establishing replication`,
      );
      this.walProgressAt = this.now();
      this.observed = { role: 'STANDBY', upstream: 0 };
      this.nc.kick();
    }
  }

  // ---- the raft driver ----

  private soft(): SoftState {
    if (this.raft) return this.raft.soft();
    return { role: 'follower', term: this.state.raft.hard.term, leaderId: 0, writable: false, state: 'STARTUP', transferTarget: 0 };
  }

  private schedulePump(): void {
    if (!this.raft || !this.raft.hasReady()) return;
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    this.pumping = true;
    void this.pump().finally(() => {
      this.pumping = false;
      if (this.pumpAgain) {
        this.pumpAgain = false;
        this.schedulePump();
      }
    });
  }

  private async pump(): Promise<void> {
    const raft = this.raft;
    if (!raft) return;
    while (raft.hasReady()) {
      const rd = raft.ready();
      if (rd.hardState || rd.log) {
        const persistent = raft.persistent();
        this.state = { ...this.state, raft: persistent };
        try {
          await writeNodeState(this.pgdata, this.state);
        } catch (e) {
          this.log.fatal({ err: e instanceof Error ? e.message : String(e) }, 'cannot persist raft state; stopping');
          await this.shutdown(false, 1);
          return;
        }
      }
      // Only a node that streams from someone or is a primary has anything to fence; a node whose
      // PostgreSQL is stopped or detached (for example in the middle of a rewind) must not hold its
      // vote back until that long action ends.
      if (rd.fenceWal && this.hasData() && (this.observed.role === 'PRIMARY' || this.observed.upstream !== 0)) {
        const term = rd.fenceWal.term;
        await this.nc
          .exclusive(async () => {
            if (this.observed.role === 'STANDBY' && this.observed.upstream !== 0) {
              this.ncLog.info({ term }, 'vote in a newer term: stop streaming from the old leader first');
              await this.actions.detach();
            } else if (this.observed.role === 'PRIMARY') {
              this.ncLog.info({ term }, 'vote in a newer term: fence this primary first');
              await this.actions.fenceToStandby('immediate');
            }
          })
          .catch((e: unknown) => this.ncLog.error({ err: String(e) }, 'votes-fence-WAL detach failed'));
      }
      for (const m of rd.messages) {
        if (m.type === 'app') {
          this.metrics.heartbeatSent();
          this.rtt.sent(m.to, m.seq);
        }
        this.transport.send(m.to, 'raft', m);
      }
      if (rd.committed.length > 0) this.onCommitted(rd.committed);
      if (rd.config) this.updatePeers(rd.config);
      if (rd.log) this.syncSecrets();
      if (rd.soft) this.onSoft(rd.soft);
    }
  }

  private onSoft(s: SoftState): void {
    const prev = this.lastSoft;
    this.lastSoft = s;
    if (!prev || prev.role !== s.role || prev.term !== s.term || prev.leaderId !== s.leaderId || prev.state !== s.state)
      this.log.info({ role: s.role, term: s.term, leader: s.leaderId, state: s.state }, `state ${s.state}, term ${s.term}, leader ${s.leaderId || 'unknown'}`);
    if (s.role === 'candidate' && (prev?.role !== 'candidate' || prev.term !== s.term)) this.metrics.electionStarted();
    if (s.role === 'leader' && prev?.role !== 'leader') this.metrics.electionWon();
    this.callbacks?.onSoft(prev, s);
    this.failback?.sync();
    if (prev && prev.role === 'leader' && s.role !== 'leader') {
      for (const [, p] of this.pending) p.reject(new BihaError('not_leader', 'this node lost the leadership before the change was committed'));
      this.pending.clear();
    }
    this.nc.kick();
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
    }
    this.failback?.sync();
    this.nc.kick();
    void this.writeStatus(true);
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
    else if (msg.type === 'timeout_now') this.callbacks?.noteTimeoutNow(msg.term);
    this.raft.step(msg, this.now());
    this.schedulePump();
  }

  private async peerTimeline(id: NodeId): Promise<TimelineInfo> {
    const r = (await this.transport.request(id, 'tl_history', {}, 3000)) as TimelineInfo;
    return r;
  }

  private async onPeerRequest(from: number, kind: string, body: unknown): Promise<unknown> {
    switch (kind) {
      case 'tl_history':
        if (!this.hasData()) throw new BihaError('no_data', 'this node has no PostgreSQL data');
        return await this.actions.timeline();
      case 'join': {
        const r = await this.join(JoinSchema.parse(body).node);
        return (r as { ok?: boolean }).ok && this.tlsMat ? { ...(r as object), ...tlsJoinExtras(this.tlsMat) } : r;
      }
      case 'secret_state':
        return { ids: this.conf.secrets.map((x) => secretId(this.conf.clusterId, x)) };
      case 'admin': {
        const a = AdminSchema.parse(body);
        return await this.command(a.fn, a.args, from);
      }
      case 'node_state':
        return { id: this.conf.nodeId, soft: this.soft(), pgRole: this.observed.role };
      default:
        throw new BihaError('unknown_request', `unknown request "${kind}"`);
    }
  }

  // ---- commands (local socket, SQL bridge, forwarded from peers) ----

  private async onLocal(req: LocalRequest): Promise<unknown> {
    if (req.cmd === 'shutdown') {
      const stopPg = req.args['stopPostgres'] !== false;
      setImmediate(() => void this.shutdown(stopPg, 0));
      return { stopping: true };
    }
    return await this.command(req.cmd, req.args, 0);
  }

  private async onBridge(req: BridgeRequest): Promise<BridgeReply> {
    try {
      const result = await this.command(req.fn, req.args, 0);
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

  /** Propose a config change on the leader and wait until it is committed. */
  private async proposeAndWait(fn: string, change: ConfigChange, timeoutMs = 10_000): Promise<void> {
    const raft = this.requireLeader(fn);
    const why = validateChange(raft.config(), change);
    if (why) throw new BihaError('invalid', referenceNames(why));
    const r = raft.propose(change, this.now());
    if (!r.ok) throw new BihaError(r.code, referenceNames(r.message));
    this.schedulePump();
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
  private async leadToLeaveServiceMode(): Promise<void> {
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
    this.schedulePump();
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

  private async forwardToLeader(fn: string, args: Record<string, unknown>, timeoutMs = 35_000): Promise<unknown> {
    const l = this.leaderInfo();
    if (!l || l.id === this.conf.nodeId) throw new BihaError('no_leader', `no leader is known right now; ${fn} needs one`);
    return await this.transport.request(l.id, 'admin', { fn, args }, timeoutMs);
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
    this.conf = { ...this.conf, secrets: next };
    this.log.info({ held: next.length }, next.length > 1 ? 'cluster secret rotated; the previous one is still accepted' : 'cluster secret: only the current one is accepted');
    // One write at a time, each of the latest identity.
    this.confWrite = this.confWrite
      .then(() => writeNodeConf(this.pgdata, this.conf))
      .catch((err: unknown) => this.log.error({ err: String(err) }, 'cannot save the new secret'));
  }

  async command(fn: string, args: Record<string, unknown>, from: number): Promise<unknown> {
    switch (fn) {
      case 'status':
        return this.statusSnapshot();
      case 'get_magic_string':
        return this.magicString();
      case 'rotate_secret':
        if (this.soft().role !== 'leader') {
          if (from !== 0) throw new BihaError('not_leader', 'the leader moved while the request was forwarded; try again');
          return await this.forwardToLeader(fn, args, 90_000);
        }
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
      case 'set_leader': {
        const id = num(args, 'id');
        if (this.soft().role !== 'leader') {
          if (from !== 0) throw new BihaError('not_leader', 'the leader moved while the request was forwarded; try again');
          return await this.forwardToLeader(fn, args);
        }
        return await this.setLeader(id);
      }
      case 'remove_node': {
        const id = num(args, 'id');
        if (id === this.conf.nodeId && this.soft().role === 'leader')
          throw new BihaError('is_leader', `node ${id} is the leader: switch over first with select biha.set_leader(<id>)`);
        if (this.soft().role !== 'leader' && from === 0) return await this.forwardToLeader(fn, args);
        if (!this.config().nodes.some((n) => n.id === id)) throw new BihaError('unknown_node', `node ${id} is not in the cluster`);
        await this.proposeAndWait('biha.remove_node', { type: 'remove_node', id });
        return true;
      }
      case 'set_heartbeat_max_lost':
        await this.proposeAndWait('biha.set_heartbeat_max_lost', { type: 'set_params', params: { heartbeatMaxLost: num(args, 'value') } });
        return true;
      case 'set_heartbeat_send_period':
        await this.proposeAndWait('biha.set_heartbeat_send_period', { type: 'set_params', params: { heartbeatSendPeriod: num(args, 'value') } });
        return true;
      case 'set_no_wal_on_follower':
        await this.proposeAndWait('biha.set_no_wal_on_follower', { type: 'set_params', params: { noWalOnFollower: num(args, 'value') } });
        return true;
      case 'set_sync_standbys':
        await this.proposeAndWait('biha.set_sync_standbys', { type: 'set_params', params: { syncStandbys: num(args, 'value') } });
        return true;
      case 'service_mode': {
        const on = bool(args, 'value');
        if (!on) await this.leadToLeaveServiceMode();
        await this.proposeAndWait('biha.service_mode', { type: 'set_params', params: { serviceMode: on } });
        return true;
      }
      case 'set_nquorum_and_minnodes': {
        const change: ConfigChange = { type: 'set_params', params: { nquorum: num(args, 'nquorum'), minnodes: num(args, 'minnodes') } };
        await this.proposeAndWait('biha.set_nquorum_and_minnodes', change);
        const warn = splitBrainWarning(this.config());
        if (warn) this.log.warn(warn);
        return true;
      }
      case 'set_can_be_leader':
        await this.proposeAndWait('biha.set_can_be_leader', { type: 'set_node', id: num(args, 'id'), patch: { canBeLeader: bool(args, 'value') } });
        return true;
      case 'set_can_vote':
        await this.proposeAndWait('biha.set_can_vote', { type: 'set_node', id: num(args, 'id'), patch: { canVote: bool(args, 'value') } });
        return true;
      case 'set_priority':
        await this.proposeAndWait('biha.set_priority', { type: 'set_node', id: num(args, 'id'), patch: { priority: num(args, 'value') } });
        return true;
      case 'reset_node_error':
        await this.resetNodeError();
        return true;
      case 'rewind':
        return await this.rewindNow();
      case 'set_failback':
      case 'reset_failback': {
        const change = failbackChange(this.config(), fn === 'set_failback' ? args : null);
        if (this.soft().role !== 'leader' && from === 0) return await this.forwardToLeader(fn, args);
        await this.proposeAndWait(`biha.${fn}`, change);
        return true;
      }
      case 'backup_lock':
        if (this.soft().role !== 'leader') {
          if (from !== 0) throw new BihaError('not_leader', 'the leader moved while the request was forwarded; try again');
          return await this.forwardToLeader(fn, args);
        }
        return backupLockCommand(this.backupLock, args, this.conf.nodeId, () => this.statusSnapshot(), Date.now());
      default:
        throw new BihaError('unknown_command', `unknown command "${fn}"`);
    }
  }

  private magicString(): string {
    const cfg = this.config();
    const leaderId = this.soft().leaderId;
    const nodes = [...cfg.nodes].sort((a, b) => (a.id === leaderId ? -1 : b.id === leaderId ? 1 : a.id - b.id));
    const peers = nodes.filter(isDataNode).map((n) => ({ id: n.id, host: n.host, port: n.port, bihaPort: n.bihaPort }));
    const tlsCa = this.tlsMat ? { tlsCa: caFingerprint(this.tlsMat.ca), tlsOwnCerts: this.tlsMat.caKey === undefined } : {};
    return encodeMagic({ clusterId: this.conf.clusterId, secret: this.conf.secrets[0]!, peers, tls: this.conf.tls, ...tlsCa });
  }

  private async setLeader(id: NodeId): Promise<boolean> {
    const raft = this.requireLeader('biha.set_leader');
    if (id === this.conf.nodeId) return true;
    const node = raft.config().nodes.find((n) => n.id === id);
    if (!node) throw new BihaError('unknown_node', `node ${id} is not in the cluster`);
    if (node.mode !== 'regular')
      throw new BihaError('not_eligible', `node ${id} is a ${node.mode} node and can never be the leader`, {
        hint: "choose a regular node: select id from biha.status_v where mode = 'regular'",
      });
    const r = raft.transferLeadership(id, this.now());
    if (!r.ok) throw new BihaError(r.code, r.message);
    this.schedulePump();
    this.nc.kick();
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      await new Promise((res) => setTimeout(res, 5));
      const s = this.soft();
      if (s.leaderId === id) {
        // Ask the new leader directly rather than waiting for its next heartbeat.
        const r = (await this.transport.request(id, 'node_state', {}, 1000).catch(() => null)) as { soft?: SoftState; pgRole?: string } | null;
        if (r?.soft?.state === 'LEADER_RW' && r.pgRole === 'PRIMARY') return true;
      } else if (s.role === 'leader' && s.transferTarget === 0) {
        throw new BihaError('switchover_failed', `switchover to node ${id} timed out: node ${id} did not catch up or win; node ${this.conf.nodeId} stays the leader`);
      } else if (s.role !== 'leader' && s.leaderId !== 0 && s.leaderId !== id) {
        throw new BihaError('switchover_failed', `switchover to node ${id} failed: node ${s.leaderId} won the election instead`);
      }
    }
    throw new BihaError('timeout', `switchover to node ${id} did not complete within 30 s`);
  }

  private async join(node: NodeInfo): Promise<unknown> {
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
    await this.proposeAndWait('add node', { type: 'add_node', node });
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

  private async enterNodeError(e: Omit<NodeErrorInfo, 'since'>): Promise<void> {
    const info: NodeErrorInfo = { ...e, since: new Date().toISOString() };
    this.state = { ...this.state, nodeError: info };
    await writeNodeState(this.pgdata, this.state);
    this.raft?.setNodeError(true);
    this.ncLog.error({ type: info.type }, `NODE_ERROR: ${info.details}`);
    this.callbacks?.nodeError(this.soft(), info.type);
    this.schedulePump();
    this.nc.kick();
  }

  /**
   * `bihactl rewind`: pg_rewind this node from the current leader, keeping its identity and the WAL
   * files the rewind replaces; on success the NODE_ERROR is cleared and the node follows again.
   */
  private async rewindNow(): Promise<string> {
    if (!this.hasData()) throw new BihaError('no_data', 'a referee has no data to rewind');
    const soft = this.soft();
    const leader = this.leaderInfo();
    if (!leader || leader.id === this.conf.nodeId || soft.role === 'leader')
      throw new BihaError('no_leader', 'rewind needs another node to be the leader; none is known right now');
    await this.nc.exclusive(async () => {
      await this.actions.rewindFrom(leader);
    });
    this.state = { ...this.state, nodeError: null };
    await writeNodeState(this.pgdata, this.state);
    this.raft?.setNodeError(false);
    this.schedulePump();
    this.nc.kick();
    return `rewound from node ${leader.id}; the WAL from before the rewind is kept in ${this.pgdata}.biha-rewind-save`;
  }

  private async resetNodeError(): Promise<void> {
    if (!this.state.nodeError) return;
    this.state = { ...this.state, nodeError: null };
    await writeNodeState(this.pgdata, this.state);
    this.raft?.setNodeError(false);
    if (this.hasData()) await this.pg.query('select pg_wal_replay_resume()').catch(() => undefined);
    this.ncLog.info('NODE_ERROR reset');
    this.observed = { role: this.observed.role, upstream: 0 };
    this.schedulePump();
    this.nc.kick();
  }

  // ---- status ----

  statusSnapshot(): StatusFile {
    const cfg = this.config();
    const soft = this.soft();
    const me = cfg.nodes.find((n) => n.id === this.conf.nodeId);
    const peers = this.raft ? this.raft.peers() : [];
    const transportInfo = this.transport.peerInfo();
    const nowWall = Date.now();
    const s = this.pgStatus;
    const status = cfg.nodes.map((n) => {
      if (n.id === this.conf.nodeId) {
        return { id: n.id, leader_id: soft.leaderId || null, term: soft.term, online: true, state: this.localState(soft), last_known_state: this.localState(soft), since_last_hb_ms: 0, mode: n.mode };
      }
      const p = peers.find((x) => x.id === n.id);
      return {
        id: n.id,
        leader_id: soft.leaderId || null,
        term: soft.term,
        online: p?.online ?? false,
        state: p?.state ?? 'UNKNOWN',
        last_known_state: p?.lastKnownState ?? null,
        since_last_hb_ms: p && p.sinceLastHbMs >= 0 ? p.sinceLastHbMs : null,
        mode: n.mode,
      };
    });
    const nodes = cfg.nodes
      .filter((n) => n.id !== this.conf.nodeId)
      .map((n) => {
        const t = transportInfo.find((x) => x.id === n.id);
        return { id: n.id, host: n.host, port: n.port, state: t?.state ?? 'INIT', since_conn_start_ms: t?.sinceConnStartMs ?? null, conn_count: t?.connCount ?? 0 };
      });
    const err = this.state.nodeError;
    const curLsn = s ? (s.inRecovery ? Math.max(s.receiveLsn ?? 0, s.replayLsn ?? 0) : (s.currentLsn ?? 0)) : null;
    return {
      version: 1,
      generatedAtMs: nowWall,
      nodeId: this.conf.nodeId,
      config: {
        id: this.conf.nodeId,
        term: soft.term,
        nquorum: cfg.params.nquorum,
        minnodes: cfg.params.minnodes,
        heartbeat_send_period: cfg.params.heartbeatSendPeriod,
        heartbeat_max_lost: cfg.params.heartbeatMaxLost,
        no_wal_on_follower: cfg.params.noWalOnFollower,
        sync_standbys: cfg.params.syncStandbys,
        service_mode: cfg.params.serviceMode,
        mode: me?.mode ?? this.conf.mode,
        can_be_leader: me?.canBeLeader ?? false,
        can_vote: me?.canVote ?? false,
        priority: me?.priority ?? 0,
      },
      status,
      nodes,
      error: err
        ? { type: err.type, details: err.details, begin_lsn: err.beginLsn, end_lsn: err.endLsn, current_tli: err.currentTli, next_tli: err.nextTli, replay_lsn: err.replayLsn }
        : { type: 'NO_ERROR', details: null, begin_lsn: null, end_lsn: null, current_tli: null, next_tli: null, replay_lsn: null },
      monitoring: {
        pg_state: !this.hasData() ? 'none' : !s ? 'startup' : s.inRecovery ? (s.replayPauseState && s.replayPauseState !== 'not paused' ? 'recovery_paused' : 'recovery') : 'promoted',
        followers: (s?.replication ?? []).map((r) => {
          const m = /^biha_node_(\d+)$/.exec(r.applicationName);
          return {
            id: m ? Number(m[1]) : 0,
            application_name: r.applicationName,
            state: r.state,
            sync_state: r.syncState,
            lag_bytes: curLsn !== null && r.replayLsn !== null ? Math.max(0, curLsn - r.replayLsn) : null,
            lag_ms: r.replayLagMs,
          };
        }),
      },
      extra: { ...this.followerLag(soft, peers, s, curLsn), pg_role: this.hasData() ? this.observed.role : 'NONE', upstream: this.observed.upstream, tli: s?.tli ?? null, lsn: curLsn === null ? null : formatLsn(curLsn), decision: this.nc.lastDecision(), uptime_s: Math.round((nowWall - this.startedAt) / 1000), failback: decodeFailback(this.raft?.meta()[FAILBACK_META_KEY]) },
    } satisfies StatusFile;
  }

  /** This follower's lag behind the leader's last reported WAL position (one heartbeat old at most). */
  private followerLag(soft: SoftState, peers: readonly { id: number; wal: WalPos }[], s: LocalPgStatus | null, curLsn: number | null): { leader_lsn: string | null; lag_bytes: number | null } {
    const lw = soft.role !== 'leader' ? peers.find((p) => p.id === soft.leaderId)?.wal : undefined;
    return {
      leader_lsn: lw?.lsn ? formatLsn(lw.lsn) : null,
      lag_bytes: lw?.lsn && s?.inRecovery ? Math.max(0, lw.lsn - (s.replayLsn ?? curLsn ?? 0)) : null,
    };
  }

  private localState(soft: SoftState): string {
    if (!BIHA_STATES.includes(soft.state)) return 'UNKNOWN';
    return soft.state;
  }

  private writingStatus = false;
  private async writeStatus(force: boolean): Promise<void> {
    if (!this.bridge || this.writingStatus) return;
    const period = Math.min(1000, this.config().params.heartbeatSendPeriod);
    if (!force && Date.now() - this.lastStatusWrite < period) return;
    this.writingStatus = true;
    try {
      await this.bridge.writeStatus(this.statusSnapshot());
      this.lastStatusWrite = Date.now();
    } catch (e) {
      this.log.warn({ err: e instanceof Error ? e.message : String(e) }, 'could not write the status file');
    } finally {
      this.writingStatus = false;
    }
  }

  // ---- shutdown ----

  async shutdown(stopPostgres: boolean, code: number): Promise<void> {
    if (this.stoppingFlag) return;
    this.stoppingFlag = true;
    this.log.info({ stopPostgres }, 'controller stopping');
    for (const t of this.timers) clearInterval(t);
    this.failback?.close();
    this.cbRunner?.close();
    this.nc?.close();
    try {
      if (stopPostgres && this.hasData()) await this.nc.exclusive(() => this.actions.stop());
    } catch (e) {
      this.log.error({ err: e instanceof Error ? e.message : String(e) }, 'could not stop PostgreSQL');
    }
    // Disarm only when PostgreSQL is no longer writable; otherwise the watchdog keeps guarding the lease.
    if (this.watchdog) {
      if (stopPostgres || this.observed.role !== 'PRIMARY') this.watchdog.stop();
      else this.watchdog.detach();
    }
    await this.http?.close().catch(() => undefined);
    await this.bridge?.stop().catch(() => undefined);
    await this.local?.close().catch(() => undefined);
    await this.transport?.close().catch(() => undefined);
    await this.pg?.close().catch(() => undefined);
    try {
      fs.rmSync(path.join(bihaDir(this.pgdata), 'controller.pid'), { force: true });
    } catch {
      // the directory may be gone
    }
    this.loggers?.root.flush();
    this.exitResolve(code);
  }
}

/** Run a controller in this process until it is told to stop. Returns the exit code. */
export async function runController(opts: ControllerOptions): Promise<number> {
  dropPrivileges(opts.pgdata);
  // Passwords given to bihactl itself never reach PostgreSQL, its tools or callbacks (the
  // controller uses pg_biha/pgpass).
  delete process.env['BIHA_REPLICATION_PASSWORD'];
  delete process.env['PGPASSWORD'];
  const c = new Controller(opts);
  const onSignal = (): void => void c.shutdown(true, 0);
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
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
