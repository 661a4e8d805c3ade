// The node controller's hands: every change it makes to the local PostgreSQL, built on the one
// adapter module for PostgreSQL tools (pg/tools.ts) and SQL (pg/conn.ts).
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import type { Logger } from 'pino';
import type { ClusterConfig, NodeId, NodeInfo } from '../../raft/index.js';
import { setAutoConfOffline } from './conf.js';
import { BihaError } from '../errors.js';
import type { PgActions, Observed } from '../driver/nc.js';
import { formatLsn, parseLsn } from './lsn.js';
import type { LocalPg, LocalPgStatus } from './conn.js';
import { alterSystem, dropSlot, ensureSlot, localStatus, promote, replicationConninfo, setPrimary, withConn } from './conn.js';
import type { PgEnv } from './tools.js';
import { controldata, pgCtlReload, pgCtlStart, pgCtlStop, postmasterPid, rewind, writeStandbySignal } from './tools.js';
import { bihaDir, logDir, passfilePath, slotName } from '../state/nodefiles.js';
import type { NodeConf, NodeErrorInfo } from '../state/nodefiles.js';

/** A leader's timeline history, as served over the control channel ('tl_history'). */
export interface TimelineInfo {
  readonly tli: number;
  /** One entry per ancestor timeline: the LSN where the next timeline forked off it. */
  readonly history: ReadonlyArray<{ parentTli: number; switchLsn: string }>;
}

export interface PgActionsDeps {
  readonly pgdata: string;
  readonly conf: NodeConf;
  readonly env: PgEnv;
  readonly pg: LocalPg;
  readonly log: Logger;
  config(): ClusterConfig;
  /** Fetch a peer's timeline history over the control channel. */
  peerTimeline(id: NodeId): Promise<TimelineInfo>;
  /** biha.autorewind, read when needed so a change in postgresql.biha.conf applies without a restart. */
  autorewind(): Promise<boolean>;
  /** Record a NODE_ERROR (persisted, survives restarts). */
  enterNodeError(e: Omit<NodeErrorInfo, 'since'>): Promise<void>;
  setObserved(o: Observed): void;
  /** Local PostgreSQL status with the timeline as the controller knows it. */
  status(): Promise<LocalPgStatus>;
  /**
   * Called after pg_rewind replaced pg_biha/ with the source's: write this node's current state
   * files again (raft state may have changed during the rewind) and reopen the log file.
   */
  restoreIdentity(): Promise<void>;
  /** Members currently in NODE_ERROR (they stream nothing, so they cannot confirm commits). */
  nodesInError(): ReadonlySet<NodeId>;
}

export function isDataNode(n: NodeInfo): boolean {
  return n.mode !== 'referee';
}

/**
 * synchronous_standby_names for a leader: ANY k over the other regular nodes, or '' when asynchronous.
 * A referee_with_wal streams WAL but is no synchronous standby: it can never lead, so its
 * confirmation would not keep a commit through a failover.
 * Nodes in NODE_ERROR are left out while at least k others remain (they confirm nothing).
 */
export function syncStandbyNames(config: ClusterConfig, selfId: NodeId, inError: ReadonlySet<NodeId> = new Set()): string {
  const k = config.params.syncStandbys;
  if (k <= 0) return '';
  const all = config.nodes.filter((n) => n.id !== selfId && n.mode === 'regular');
  const healthy = all.filter((n) => !inError.has(n.id));
  const names = (healthy.length >= k ? healthy : all).map((n) => slotName(n.id));
  if (names.length === 0) return '';
  return `ANY ${Math.min(k, names.length)} (${names.join(', ')})`;
}

/**
 * Is a node on timeline `tli` with WAL up to `endLsn` able to follow a leader with this history?
 * It can when it is on the leader's timeline, or on an ancestor and not past the fork point.
 */
export function divergence(
  tli: number,
  endLsn: number,
  leader: TimelineInfo,
): null | { switchLsn: number; nextTli: number } {
  if (tli === leader.tli) return null;
  if (tli > leader.tli) return { switchLsn: 0, nextTli: leader.tli };
  const idx = leader.history.findIndex((h) => h.parentTli === tli);
  if (idx < 0) return { switchLsn: 0, nextTli: leader.tli };
  const h = leader.history[idx]!;
  const sw = parseLsn(h.switchLsn);
  const next = leader.history[idx + 1]?.parentTli ?? leader.tli;
  return endLsn > sw ? { switchLsn: sw, nextTli: next } : null;
}

/**
 * PostgreSQL runs but refuses connections (57P03): it has not reached a consistent state yet
 * ("not yet accepting connections"), or has not even found its starting checkpoint ("starting up").
 */
export function notConsistentYet(e: unknown): boolean {
  return /not yet accepting connections|is starting up/.test(e instanceof Error ? e.message : String(e));
}

/** Makes `dir` hold what `saved` holds: its files copied over, files only `dir` has removed. */
async function restoreDir(saved: string, dir: string): Promise<void> {
  await fs.cp(saved, dir, { recursive: true, force: true });
  const keep = new Set((await fs.readdir(saved, { recursive: true })).map(String));
  for (const rel of (await fs.readdir(dir, { recursive: true })).map(String)) {
    if (keep.has(rel)) continue;
    const st = await fs.lstat(path.join(dir, rel)).catch(() => null);
    // What only the source had (its pending SQL requests among them) must not act here.
    if (st && !st.isDirectory()) await fs.rm(path.join(dir, rel), { force: true });
  }
}

export class PostgresActions implements PgActions {
  private dutiesKey = '';
  /** Set by a rewind until PostgreSQL accepts connections: its position is pg_control's minimum recovery point. */
  private rewoundNotConsistent = false;
  private lastStatus: LocalPgStatus | null = null;

  constructor(private readonly d: PgActionsDeps) {}

  private get pgLog(): string {
    return path.join(logDir(this.d.pgdata), 'postgresql.log');
  }

  /**
   * The data directory was just made from another node's (pg_rewind, a base backup): until it
   * accepts connections, pg_control's minimum recovery point says where its WAL ends.
   */
  noteCopied(): void {
    this.rewoundNotConsistent = true;
  }

  noteStatus(s: LocalPgStatus | null): void {
    this.lastStatus = s;
  }

  conninfoFor(upstream: NodeInfo): string {
    return replicationConninfo({
      host: upstream.host,
      port: upstream.port,
      user: this.d.conf.replicationUser,
      passfile: passfilePath(this.d.pgdata),
      applicationName: slotName(this.d.conf.nodeId),
    });
  }

  async startStandby(): Promise<void> {
    if ((await postmasterPid(this.d.pgdata)) !== null) {
      // Running already (started by someone else); just look at it again.
      const s = await localStatus(this.d.pg);
      this.d.setObserved({ role: s.inRecovery ? 'STANDBY' : 'PRIMARY', upstream: 0 });
      return;
    }
    await fs.mkdir(logDir(this.d.pgdata), { recursive: true });
    await writeStandbySignal(this.d.env, this.d.pgdata);
    // Detached first: the upstream is chosen by a retarget, after the divergence check.
    await setAutoConfOffline(this.d.pgdata, { primary_conninfo: '', primary_slot_name: '' });
    await pgCtlStart(this.d.env, this.d.pgdata, { logFile: this.pgLog, timeoutMs: 600_000 });
    this.d.setObserved({ role: 'STANDBY', upstream: 0 });
  }

  async promote(): Promise<void> {
    await promote(this.d.pg, 60_000);
    this.dutiesKey = '';
    this.d.setObserved({ role: 'PRIMARY', upstream: 0 });
    await this.ensurePrimaryDuties();
    // After a fast promotion the control file still names the old timeline until the next
    // checkpoint, and pg_rewind from this node would wrongly find nothing to rewind. Checkpoint
    // now, on a connection of its own so status polling is not held up.
    void withConn(this.d.pg.opts, async (c) => {
      await c.query('CHECKPOINT');
    }).catch((e: unknown) => this.d.log.warn({ err: e instanceof Error ? e.message : String(e) }, 'checkpoint after promotion failed'));
  }

  async fenceToStandby(mode: 'immediate' | 'fast'): Promise<void> {
    await pgCtlStop(this.d.env, this.d.pgdata, mode, { timeoutMs: 60_000 });
    this.d.setObserved({ role: 'STOPPED', upstream: 0 });
    await writeStandbySignal(this.d.env, this.d.pgdata);
    await setAutoConfOffline(this.d.pgdata, { primary_conninfo: '', primary_slot_name: '' });
    await pgCtlStart(this.d.env, this.d.pgdata, { logFile: this.pgLog, timeoutMs: 600_000 });
    this.d.setObserved({ role: 'STANDBY', upstream: 0 });
  }

  /** Stop streaming from anyone at once (votes fence WAL). */
  async detach(): Promise<void> {
    await setPrimary(this.d.pg, '', '');
    this.d.setObserved({ role: 'STANDBY', upstream: 0 });
  }

  async retarget(upstream: NodeId): Promise<void> {
    const node = this.d.config().nodes.find((n) => n.id === upstream);
    if (!node || !isDataNode(node))
      throw new BihaError('bad_upstream', `node ${upstream} is not a data node of the cluster; cannot stream from it`);
    let s: LocalPgStatus;
    try {
      s = await this.d.status();
    } catch (e) {
      // Only a fresh copy (rewind): a crashed primary restarted as a standby also refuses
      // connections until it replayed its own WAL, but pg_control does not say where that WAL ends.
      if (!this.rewoundNotConsistent || !notConsistentYet(e) || (await postmasterPid(this.d.pgdata)) === null) throw e;
      if (await this.retargetNotConsistent(node)) return;
      throw e;
    }
    this.rewoundNotConsistent = false;
    this.lastStatus = s;
    const end = Math.max(s.receiveLsn ?? 0, s.replayLsn ?? 0);
    const leader = await this.d.peerTimeline(upstream);
    const div = divergence(s.tli, end, leader);
    if (div) {
      await this.handleDivergence(node, s, end, div, leader);
      return;
    }
    await setPrimary(this.d.pg, this.conninfoFor(node), slotName(this.d.conf.nodeId));
    this.d.setObserved({ role: 'STANDBY', upstream });
  }

  /**
   * A standby that has not reached a consistent state yet (after pg_rewind or a base backup, when
   * the node it was copying from went away) refuses connections, so neither its status nor ALTER
   * SYSTEM is available. Its position comes from pg_control (the minimum recovery point it must
   * reach), and the new upstream goes into postgresql.auto.conf with a reload (primary_conninfo
   * is reloadable): it then fetches the missing WAL from the new leader.
   */
  private async retargetNotConsistent(node: NodeInfo): Promise<boolean> {
    const { tli, end } = await this.copiedWalPosition();
    // Neither pg_control nor a backup label says where this node's WAL ends.
    if (end === 0 || tli === 0) return false;
    const leader = await this.d.peerTimeline(node.id);
    const div = divergence(tli, end, leader);
    if (div) {
      await this.handleDivergence(node, { tli, replayLsn: null }, end, div, leader);
      return true;
    }
    this.d.log.info(
      { upstream: node.id, tli, minRecovery: formatLsn(end) },
      'PostgreSQL does not accept connections yet (not consistent): new upstream through postgresql.auto.conf and a reload',
    );
    await setAutoConfOffline(this.d.pgdata, { primary_conninfo: this.conninfoFor(node), primary_slot_name: slotName(this.d.conf.nodeId) });
    await pgCtlReload(this.d.env, this.d.pgdata);
    this.d.setObserved({ role: 'STANDBY', upstream: node.id });
    return true;
  }

  /**
   * Where a fresh copy's WAL must reach: pg_control's minimum recovery point once recovery has
   * begun, before that the start of the backup_label that pg_rewind and pg_basebackup leave.
   */
  private async copiedWalPosition(): Promise<{ tli: number; end: number }> {
    const lsn = (text: string | undefined): number => {
      try {
        return parseLsn(text ?? '0/0');
      } catch {
        return 0;
      }
    };
    const cd = await controldata(this.d.env, this.d.pgdata);
    const min = { tli: Number(cd["Min recovery ending loc's timeline"]) || 0, end: lsn(cd['Minimum recovery ending location']) };
    if (min.end > 0 && min.tli > 0) return min;
    const label = await fs.readFile(path.join(this.d.pgdata, 'backup_label'), 'utf8').catch(() => '');
    return {
      tli: Number(/^START TIMELINE: (\d+)$/m.exec(label)?.[1] ?? 0),
      end: lsn(/^START WAL LOCATION: ([0-9A-F]+\/[0-9A-F]+)/m.exec(label)?.[1]),
    };
  }

  private async handleDivergence(
    node: NodeInfo,
    s: Pick<LocalPgStatus, 'tli' | 'replayLsn'>,
    end: number,
    div: { switchLsn: number; nextTli: number },
    leader: TimelineInfo,
  ): Promise<void> {
    const details =
      `this node's WAL (timeline ${s.tli}, up to ${formatLsn(end)}) went past the point where ` +
      `timeline ${div.nextTli} of leader node ${node.id} forked off (${formatLsn(div.switchLsn)})`;
    this.d.log.warn({ tli: s.tli, end: formatLsn(end), leaderTli: leader.tli }, `timelines diverged: ${details}`);
    const inService = this.d.config().params.serviceMode;
    if (!inService && (await this.d.autorewind())) {
      try {
        await this.rewindFrom(node);
        return;
      } catch (e) {
        await this.d.enterNodeError({
          type: 'REWIND_FAILED',
          details: `${details}; automatic pg_rewind failed: ${e instanceof Error ? e.message : String(e)}`,
          beginLsn: formatLsn(div.switchLsn),
          endLsn: formatLsn(end),
          currentTli: s.tli,
          nextTli: div.nextTli,
          replayLsn: s.replayLsn === null ? null : formatLsn(s.replayLsn),
        });
        await fs.writeFile(path.join(this.d.pgdata, 'rewind.signal'), '', { mode: 0o600 }).catch(() => undefined);
        return;
      }
    }
    await this.d.enterNodeError({
      type: 'TIMELINE_DIVERGED',
      details: inService
        ? `${details}; service mode is on, so no automatic pg_rewind: run bihactl rewind or follow docs/runbooks/node-error.md`
        : `${details}; set biha.autorewind = true or follow docs/runbooks/node-error.md`,
      beginLsn: formatLsn(div.switchLsn),
      endLsn: formatLsn(end),
      currentTli: s.tli,
      nextTli: div.nextTli,
      replayLsn: s.replayLsn === null ? null : formatLsn(s.replayLsn),
    });
  }

  /**
   * pg_rewind from `node`, keeping this node's identity: pg_biha/, the biha conf files and
   * postgresql.auto.conf are saved before and put back after (pg_rewind copies the source's).
   * A dry run must succeed first. On failure the data directory is left stopped, never half
   * rewound and silently following.
   */
  async rewindFrom(node: NodeInfo): Promise<void> {
    const pgdata = this.d.pgdata;
    await pgCtlStop(this.d.env, pgdata, 'fast', { timeoutMs: 60_000 });
    this.d.setObserved({ role: 'STOPPED', upstream: 0 });
    const source =
      `host=${node.host} port=${node.port} user=${this.d.conf.replicationUser} dbname=biha_db ` +
      `passfile=${passfilePath(pgdata)} connect_timeout=5`;
    const keep = ['postgresql.biha.conf', 'pg_hba.biha.conf', 'postgresql.auto.conf', 'postgresql.conf', 'pg_hba.conf'];
    const saveDir = `${pgdata}.biha-rewind-save`;
    await fs.rm(saveDir, { recursive: true, force: true });
    await fs.mkdir(saveDir, { recursive: true, mode: 0o700 });
    await fs.cp(bihaDir(pgdata), path.join(saveDir, 'pg_biha'), { recursive: true });
    for (const f of keep) await fs.copyFile(path.join(pgdata, f), path.join(saveDir, f)).catch(() => undefined);
    // Save the WAL files the rewind may overwrite (runbook step 1).
    await fs.cp(path.join(pgdata, 'pg_wal'), path.join(saveDir, 'pg_wal'), {
      recursive: true,
      filter: (src) => !src.endsWith('archive_status'),
    });
    this.d.log.info({ source: `${node.host}:${node.port}` }, 'pg_rewind --dry-run');
    await rewind(this.d.env, { pgdata, source, dryRun: true });
    this.d.log.info('pg_rewind');
    try {
      await rewind(this.d.env, { pgdata, source, dryRun: false });
    } finally {
      // Success or not, pg_rewind may have copied the source's identity files: put ours back. Not
      // by removing pg_biha/ first: the controller keeps writing there (logs, status), and a
      // removal racing with that left a node without its identity.
      await restoreDir(path.join(saveDir, 'pg_biha'), bihaDir(pgdata));
      for (const f of keep) await fs.copyFile(path.join(saveDir, f), path.join(pgdata, f)).catch(() => undefined);
      // The saved copy is older than what the controller wrote meanwhile (votes, terms): rewrite it.
      await this.d.restoreIdentity();
    }
    await fs.rm(path.join(pgdata, 'rewind.signal'), { force: true });
    await writeStandbySignal(this.d.env, pgdata);
    await setAutoConfOffline(pgdata, { primary_conninfo: this.conninfoFor(node), primary_slot_name: slotName(this.d.conf.nodeId) });
    // Only until the postmaster runs: it accepts connections once it has replayed up to the
    // rewind's minimum recovery point, which needs the source — which may go away meanwhile. The
    // controller goes on (another leader can be followed: retargetNotConsistent).
    await pgCtlStart(this.d.env, pgdata, { logFile: this.pgLog, timeoutMs: 120_000, wait: 'started' });
    this.noteCopied();
    this.d.setObserved({ role: 'STANDBY', upstream: node.id });
    this.d.log.info({ saved: saveDir }, 'rewound; the WAL files from before the rewind are kept in the saved directory');
  }

  private dutiesWanted(): string {
    const cfg = this.d.config();
    const slots = cfg.nodes
      .filter((n) => n.id !== this.d.conf.nodeId && isDataNode(n))
      .map((n) => slotName(n.id))
      .sort();
    return JSON.stringify({ slots, sync: syncStandbyNames(cfg, this.d.conf.nodeId, this.d.nodesInError()) });
  }

  primaryDutiesPending(): boolean {
    return this.dutiesKey !== this.dutiesWanted();
  }

  async ensurePrimaryDuties(): Promise<void> {
    const want = this.dutiesWanted();
    const { slots, sync } = JSON.parse(want) as { slots: string[]; sync: string };
    for (const s of slots) await ensureSlot(this.d.pg, s);
    const existing = await this.d.pg.query<{ slot_name: string; active: boolean }>(
      "select slot_name, active from pg_replication_slots where slot_type = 'physical' and slot_name like 'biha\\_node\\_%'",
    );
    for (const e of existing) if (!slots.includes(e.slot_name) && !e.active) await dropSlot(this.d.pg, e.slot_name);
    const cur = await this.d.pg.query<{ v: string }>('select current_setting($1) as v', ['synchronous_standby_names']);
    if ((cur[0]?.v ?? '') !== sync) await alterSystem(this.d.pg, { synchronous_standby_names: sync === '' ? null : sync });
    this.dutiesKey = want;
  }

  async stop(): Promise<void> {
    await pgCtlStop(this.d.env, this.d.pgdata, 'fast', { timeoutMs: 120_000 });
    this.d.setObserved({ role: 'STOPPED', upstream: 0 });
  }

  /** Ensure the replication slot for a newly added node exists here (leader side of `bihactl add`). */
  async slotFor(id: NodeId): Promise<void> {
    await ensureSlot(this.d.pg, slotName(id));
  }

  /** This node's timeline and its history (served to followers checking divergence). */
  async timeline(): Promise<TimelineInfo> {
    const s = this.lastStatus ?? (await this.d.status());
    if (s.tli <= 1) return { tli: s.tli, history: [] };
    const name = `pg_wal/${s.tli.toString(16).toUpperCase().padStart(8, '0')}.history`;
    const rows = await this.d.pg.query<{ t: string | null }>('select pg_read_file($1, 0, 1048576, true) as t', [name]);
    const history: Array<{ parentTli: number; switchLsn: string }> = [];
    for (const line of (rows[0]?.t ?? '').split('\n')) {
      const m = /^\s*(\d+)\s+([0-9A-Fa-f]+\/[0-9A-Fa-f]+)/.exec(line);
      if (m) history.push({ parentTli: Number(m[1]), switchLsn: m[2]! });
    }
    return { tli: s.tli, history };
  }
}
