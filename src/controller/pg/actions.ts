// The node controller's hands: every change NC makes to the local PostgreSQL (the driver's PgPort),
// built on the one adapter module for PostgreSQL tools (tools.ts) and SQL (conn.ts). What to do and
// when is decided in src/controller/driver; this file only knows how.
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import type { Logger } from 'pino';
import type { ClusterConfig, NodeId, NodeInfo, WalPos } from '../../raft/index.js';
import { BihaError } from '../errors.js';
import { setAutoConfOffline } from './conf.js';
import { formatLsn, parseLsn } from './lsn.js';
import type { LocalPg, LocalPgStatus } from './conn.js';
import { alterSystem, dropSlot, localStatus, promote, quoteLiteral, replicationConninfo, setPrimary, withConn } from './conn.js';
import type { PgEnv } from './tools.js';
import { controldata, ensureCleanShutdown, parseTimelineHistory, pgCtlReload, pgCtlStart, pgCtlStop, postmasterPid, rewind, walEnd, writeStandbySignal } from './tools.js';
import { logDir, passfilePath } from '../state/nodefiles.js';
import type { NodeConf } from '../state/nodefiles.js';
import type { NodeStore } from '../state/store.js';
import { readHold, removeHold, restoreAfterRewind, saveBeforeRewind, writeHold } from './rewindsave.js';
import { slotName } from '../driver/duties.js';
import { placeholdersFor } from '../driver/timeline.js';
import type { PgPort, PgProbe, TimelineFork, TimelineInfo, WalPosition } from '../driver/types.js';

/** A timeline's history as it travels over the control channel ('tl_history'): LSNs as text. */
export interface TimelineWire {
  readonly tli: number;
  readonly history: ReadonlyArray<{ parentTli: number; switchLsn: string }>;
}

export function timelineToWire(t: TimelineInfo): TimelineWire {
  return { tli: t.tli, history: t.history.map((h) => ({ parentTli: h.parentTli, switchLsn: formatLsn(h.switchLsn) })) };
}

export function timelineFromWire(t: TimelineWire): TimelineInfo {
  return { tli: t.tli, history: t.history.map((h) => ({ parentTli: h.parentTli, switchLsn: parseLsn(h.switchLsn) })) };
}

/** Marks the history files biha writes to keep a timeline number taken (they name no WAL). */
export const PLACEHOLDER_MARK = 'biha: timeline number reserved for another promotion; no WAL';

export interface PgActionsDeps {
  readonly pgdata: string;
  readonly conf: NodeConf;
  readonly env: PgEnv;
  readonly pg: LocalPg;
  readonly log: Logger;
  config(): ClusterConfig;
  /** The node's state store: during a rewind it keeps biha.conf / biha.state in the save directory. */
  readonly store: NodeStore;
  /** Called after pg_rewind, once pg_biha/ is this node's again: reopen the log file. */
  restoreIdentity(): Promise<void>;
}

/**
 * PostgreSQL runs but refuses connections (57P03): it has not reached a consistent state yet
 * ("not yet accepting connections"), or has not even found its starting checkpoint ("starting up").
 */
export function notConsistentYet(e: unknown): boolean {
  return /not yet accepting connections|is starting up/.test(e instanceof Error ? e.message : String(e));
}

const tliHex = (tli: number): string => tli.toString(16).toUpperCase().padStart(8, '0');

/** libpq's words for a server it could not reach (pg_rewind's error output). */
const SOURCE_UNREACHABLE = /could not connect to server|connection to server .* failed|Connection refused|timeout expired|No route to host|could not translate host name/i;

function oneLineOf(text: string): string {
  return text.replace(/\s+/g, ' ').trim().slice(0, 300);
}

export class PostgresActions implements PgPort {
  /** The data directory was just made from another node's (pg_rewind): pg_control says where its WAL must reach. */
  private copied = false;
  private lastStatus: LocalPgStatus | null = null;
  /** The timeline of the WAL a walreceiver last delivered (received_tli shows only while it runs). */
  private receivedTli = 0;
  private segSize = 0;
  /** The hold file's reason: PostgreSQL stays stopped while it is set (rewindsave.ts). */
  private held: string | null;

  constructor(private readonly d: PgActionsDeps) {
    this.held = readHold(d.pgdata);
  }

  private get pgLog(): string {
    return path.join(logDir(this.d.pgdata), 'postgresql.log');
  }

  /**
   * The data directory was just made from another node's (pg_rewind): until it accepts
   * connections, pg_control's minimum recovery point says where its WAL ends.
   */
  noteCopied(): void {
    this.copied = true;
  }

  /** The last status the poll read (for the status snapshot and metrics). */
  status(): LocalPgStatus | null {
    return this.lastStatus;
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

  // ---------------------------------------------------------------- observation

  async probe(): Promise<PgProbe> {
    let s: LocalPgStatus;
    try {
      s = await this.statusNow();
    } catch (e) {
      this.lastStatus = null;
      if ((await postmasterPid(this.d.pgdata)) === null) return { role: 'STOPPED', receiving: false, wal: null };
      // Running but not answering (starting, or not consistent yet): a standby whose position is unknown.
      if (notConsistentYet(e)) return { role: 'STANDBY', receiving: false, wal: null };
      throw e;
    }
    this.lastStatus = s;
    const lsn = s.inRecovery ? Math.max(s.receiveLsn ?? 0, s.replayLsn ?? 0) : (s.currentLsn ?? 0);
    const receiving = s.inRecovery && s.walReceiver !== null && s.walReceiver.status !== 'stopped';
    return { role: s.inRecovery ? 'STANDBY' : 'PRIMARY', receiving, wal: { tli: s.tli, lsn } };
  }

  /**
   * Local status with the timeline the WAL really ends on. PostgreSQL 15 shows it on a standby only
   * while a walreceiver runs (received_tli); otherwise the checkpoint's can be older. The newest
   * segment file of the segment holding the end of WAL names it (a history file alone does not:
   * it may be a placeholder, or the source's after a failed rewind).
   */
  private async statusNow(): Promise<LocalPgStatus> {
    const s = await localStatus(this.d.pg);
    if (!s.inRecovery) {
      this.receivedTli = s.tli;
      return s;
    }
    if (s.walReceiver?.receivedTli) this.receivedTli = Math.max(this.receivedTli, s.walReceiver.receivedTli);
    const end = Math.max(s.receiveLsn ?? 0, s.replayLsn ?? 0);
    const segTli = end > 0 ? await this.segmentTli(end) : 0;
    return { ...s, tli: Math.max(s.tli, this.receivedTli, segTli) };
  }

  private async segmentTli(end: number): Promise<number> {
    if (this.segSize === 0) {
      const r = await this.d.pg.query<{ v: string }>("select setting as v from pg_settings where name = 'wal_segment_size'");
      this.segSize = Number(r[0]?.v ?? 16 * 1024 * 1024) || 16 * 1024 * 1024;
    }
    const segno = Math.floor((end - 1) / this.segSize);
    const perId = Math.floor(0x100000000 / this.segSize);
    const name = `${tliHex(Math.floor(segno / perId))}${tliHex(segno % perId)}`;
    const rows = await this.d.pg.query<{ t: number | null }>(
      "select max(('x' || substr(f, 1, 8))::bit(32)::int) as t from pg_ls_dir('pg_wal') f where f ~ '^[0-9A-F]{24}$' and substr(f, 9) = $1",
      [name],
    );
    return rows[0]?.t ?? 0;
  }

  async position(): Promise<WalPosition> {
    try {
      const s = await this.statusNow();
      this.lastStatus = s;
      this.copied = false;
      const end = Math.max(s.receiveLsn ?? 0, s.replayLsn ?? 0, s.currentLsn ?? 0);
      return { tli: s.tli, history: await this.historyOf(s.tli), end, replay: s.replayLsn };
    } catch (e) {
      // Only a fresh copy (rewind): a crashed primary restarted as a standby also refuses
      // connections until it replayed its own WAL, but pg_control does not say where that WAL ends.
      if (!this.copied || !notConsistentYet(e) || (await postmasterPid(this.d.pgdata)) === null) throw e;
      const { tli, end } = await this.copiedWalPosition();
      if (end === 0 || tli === 0) throw e;
      return { tli, history: await this.historyFromFile(tli), end, replay: null };
    }
  }

  /** This node's current timeline and its history (served to followers as 'tl_history'). */
  async timeline(): Promise<TimelineInfo> {
    const s = this.lastStatus ?? (await this.statusNow());
    return { tli: s.tli, history: await this.historyOf(s.tli) };
  }

  private async historyOf(tli: number): Promise<TimelineFork[]> {
    if (tli <= 1) return [];
    const rows = await this.d.pg.query<{ t: string | null }>('select pg_read_file($1, 0, 1048576, true) as t', [`pg_wal/${tliHex(tli)}.history`]);
    return parseTimelineHistory(rows[0]?.t ?? '');
  }

  private async historyFromFile(tli: number): Promise<TimelineFork[]> {
    if (tli <= 1) return [];
    const text = await fs.readFile(path.join(this.d.pgdata, 'pg_wal', `${tliHex(tli)}.history`), 'utf8').catch(() => '');
    return parseTimelineHistory(text);
  }

  /**
   * Where a fresh copy's WAL must reach: pg_control's minimum recovery point once recovery has
   * begun, before that the start of the backup_label that pg_rewind leaves.
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

  // ---------------------------------------------------------------- changes

  async startStandby(): Promise<void> {
    if (this.held !== null) throw new BihaError('pg_held', `PostgreSQL stays stopped: ${this.held}`, { hint: 'follow docs/runbooks/node-error.md' });
    if ((await postmasterPid(this.d.pgdata)) !== null) return; // running already (started by someone else)
    await fs.mkdir(logDir(this.d.pgdata), { recursive: true });
    await writeStandbySignal(this.d.env, this.d.pgdata);
    // Detached first: the upstream is chosen by NC, after the timeline comparison.
    await setAutoConfOffline(this.d.pgdata, { primary_conninfo: '', primary_slot_name: '' });
    await pgCtlStart(this.d.env, this.d.pgdata, { logFile: this.pgLog, timeoutMs: 600_000 });
  }

  async stop(): Promise<void> {
    await pgCtlStop(this.d.env, this.d.pgdata, 'fast', { timeoutMs: 120_000 });
  }

  /**
   * Stop (fast) and start PostgreSQL again in the role it has: a standby keeps its standby.signal
   * and its upstream in postgresql.auto.conf, a primary stays the primary.
   */
  async restart(): Promise<void> {
    await pgCtlStop(this.d.env, this.d.pgdata, 'fast', { timeoutMs: 120_000 });
    await pgCtlStart(this.d.env, this.d.pgdata, { logFile: this.pgLog, timeoutMs: 600_000 });
  }

  async fence(mode: 'immediate' | 'fast', stopped?: (end: WalPos | null) => void): Promise<void> {
    await pgCtlStop(this.d.env, this.d.pgdata, mode, { timeoutMs: 60_000 });
    if (stopped) stopped(mode === 'fast' ? await this.stoppedWalEnd() : null);
    await writeStandbySignal(this.d.env, this.d.pgdata);
    await setAutoConfOffline(this.d.pgdata, { primary_conninfo: '', primary_slot_name: '' });
    await pgCtlStart(this.d.env, this.d.pgdata, { logFile: this.pgLog, timeoutMs: 600_000 });
  }

  /**
   * Where the WAL of this cleanly stopped node ends (its shutdown checkpoint), or null when it
   * cannot be read (the caller then waits for the restarted standby to report it).
   */
  private async stoppedWalEnd(): Promise<WalPos | null> {
    try {
      return await walEnd(this.d.env, this.d.pgdata);
    } catch (e) {
      this.d.log.warn({ err: e instanceof Error ? e.message : String(e) }, 'cannot read where the WAL ends after the stop');
      return null;
    }
  }

  async detach(): Promise<void> {
    await setPrimary(this.d.pg, '', '');
  }

  async follow(upstream: NodeInfo): Promise<void> {
    if (upstream.mode === 'referee') throw new BihaError('bad_upstream', `node ${upstream.id} is a referee; it has no WAL to stream`);
    // A standby needs no placeholder (a promotion writes them again), and one would shadow the
    // real history file of that timeline, which the walreceiver must fetch.
    await this.removePlaceholders(0);
    try {
      await setPrimary(this.d.pg, this.conninfoFor(upstream), slotName(this.d.conf.nodeId));
    } catch (e) {
      if (!notConsistentYet(e) || (await postmasterPid(this.d.pgdata)) === null) throw e;
      // Not consistent yet (a fresh copy whose source went away): no ALTER SYSTEM, but
      // primary_conninfo is reloadable from postgresql.auto.conf.
      this.d.log.info({ upstream: upstream.id }, 'PostgreSQL does not accept connections yet (not consistent): new upstream through postgresql.auto.conf and a reload');
      await setAutoConfOffline(this.d.pgdata, { primary_conninfo: this.conninfoFor(upstream), primary_slot_name: slotName(this.d.conf.nodeId) });
      await pgCtlReload(this.d.env, this.d.pgdata);
    }
  }

  /**
   * pg_rewind from `source`, keeping this node's identity: pg_biha/, the biha conf files and
   * postgresql.auto.conf are saved before and put back after (pg_rewind copies the source's). While
   * pg_rewind runs, the state store keeps biha.conf / biha.state in the save directory, where a
   * durable marker makes a restarted controller take them back (rewindsave.ts): a crash at any
   * point leaves a node that restarts as itself with every vote it persisted. A dry run must
   * succeed first. If pg_rewind itself fails, the data directory may be half rewound: it is left
   * stopped, with the hold file, until a rewind succeeds. On success PostgreSQL starts as a
   * detached standby: NC compares timelines again and follows (through pg_control while it is not
   * consistent).
   */
  async rewind(source: NodeInfo, stopped: () => void): Promise<void> {
    const pgdata = this.d.pgdata;
    await pgCtlStop(this.d.env, pgdata, 'fast', { timeoutMs: 60_000 });
    stopped();
    const src =
      `host=${source.host} port=${source.port} user=${this.d.conf.replicationUser} dbname=biha_db ` +
      `passfile=${passfilePath(pgdata)} connect_timeout=5`;
    const saveDir = await saveBeforeRewind(pgdata);
    // pg_rewind --dry-run refuses a target that was not shut down cleanly (a rewind that did not
    // complete leaves one "in archive recovery"); pg_rewind itself would run this recovery too.
    if (await ensureCleanShutdown(this.d.env, pgdata)) this.d.log.info({}, 'the data directory was not shut down cleanly: crash recovery in single-user mode done');
    this.d.log.info({ source: `${source.host}:${source.port}` }, 'pg_rewind --dry-run');
    try {
      await rewind(this.d.env, { pgdata, source: src, dryRun: true });
    } catch (e) {
      // Nothing has changed yet: a source that cannot be reached is a reason to try again, not a failed rewind.
      const msg = e instanceof Error ? e.message : String(e);
      if (SOURCE_UNREACHABLE.test(msg)) {
        throw new BihaError('rewind_source_unreachable', `pg_rewind --dry-run could not connect to node ${source.id} (${source.host}:${source.port}); the data directory is unchanged: ${oneLineOf(msg)}`);
      }
      throw e;
    }
    await this.d.store.beginRewind({ sourceId: source.id, source: `${source.host}:${source.port}`, startedAt: new Date().toISOString(), pid: process.pid });
    this.d.log.info({ saved: saveDir }, "pg_rewind (this node's identity and state are kept in the saved directory meanwhile)");
    let failed: unknown = null;
    try {
      await rewind(this.d.env, { pgdata, source: src, dryRun: false });
    } catch (e) {
      failed = e;
    }
    try {
      // Success or not, pg_rewind may have copied the source's identity files: put ours back.
      await restoreAfterRewind(pgdata);
      if (failed !== null) {
        const reason =
          `pg_rewind from node ${source.id} failed (${failed instanceof Error ? failed.message : String(failed)}); ` +
          'the data directory may be half rewound, so PostgreSQL stays stopped: run bihactl rewind (docs/runbooks/node-error.md)';
        await writeHold(pgdata, reason);
        this.held = reason;
      }
      // The current conf and state (votes and terms of the rewind's time) into PGDATA, then the marker goes.
      await this.d.store.endRewind();
    } finally {
      await this.d.restoreIdentity();
    }
    if (failed !== null) throw failed;
    await removeHold(pgdata);
    this.held = null;
    await writeStandbySignal(this.d.env, pgdata);
    await setAutoConfOffline(pgdata, { primary_conninfo: '', primary_slot_name: '' });
    this.receivedTli = 0;
    // Only until the postmaster runs: it accepts connections once it has replayed up to the
    // rewind's minimum recovery point, which needs WAL from an upstream NC sets next.
    await pgCtlStart(this.d.env, pgdata, { logFile: this.pgLog, timeoutMs: 120_000, wait: 'started' });
    this.noteCopied();
    this.d.log.info({ saved: saveDir }, 'rewound; the WAL files from before the rewind are kept in the saved directory');
  }

  hold(): string | null {
    return this.held;
  }

  async clearHold(): Promise<void> {
    if (this.held === null) return;
    await removeHold(this.d.pgdata);
    this.held = null;
  }

  /**
   * Slots for the other data nodes. On a primary they reserve WAL from their creation (a follower
   * that is down keeps its WAL); on a standby they do not (they wait for a promotion and must not
   * hold WAL back meanwhile), and after the promotion such a slot, still unused, is created again
   * reserving WAL.
   */
  async ensureSlots(want: readonly string[], hold: readonly string[]): Promise<void> {
    const existing = await this.d.pg.query<{ slot_name: string; active: boolean; reserved: boolean; standby: boolean }>(
      "select slot_name, active, restart_lsn is not null as reserved, pg_is_in_recovery() as standby from pg_replication_slots where slot_type = 'physical' and slot_name like 'biha\\_node\\_%'",
    );
    const standby = existing[0]?.standby ?? (await this.d.pg.query<{ r: boolean }>('select pg_is_in_recovery() as r'))[0]?.r ?? true;
    const have = new Map(existing.map((e) => [e.slot_name, e]));
    for (const s of want) {
      const e = have.get(s);
      if (!e) {
        // On a standby the slot holds no WAL: nobody streams from it before it is promoted.
        await this.d.pg.query('select pg_create_physical_replication_slot($1, $2)', [s, !standby]).catch((err: unknown) => {
          if (!/already exists/.test(err instanceof Error ? err.message : String(err))) throw err;
        });
      } else if (!standby && !e.reserved && !e.active && hold.includes(s)) {
        await this.holdWal(s);
      }
    }
    for (const e of existing) if (!want.includes(e.slot_name) && !e.active) await dropSlot(this.d.pg, e.slot_name);
  }

  /**
   * Re-create slot `name` so that it holds WAL, in one statement (the slot is missing for the
   * shortest possible time). A follower that took the slot meanwhile keeps it: its replies make the
   * slot hold WAL.
   */
  private async holdWal(name: string): Promise<void> {
    try {
      await this.d.pg.query('select pg_create_physical_replication_slot($1::name, true) from (select pg_drop_replication_slot($1::name)) d', [name]);
      this.d.log.info({ slot: name }, `slot ${name} holds WAL for its node from now on`);
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err);
      if (/does not exist/.test(msg)) await this.d.pg.query('select pg_create_physical_replication_slot($1, true)', [name]);
      else if (!/is active for PID/.test(msg)) throw err;
    }
  }

  async setSyncStandbyNames(value: string): Promise<void> {
    const cur = await this.d.pg.query<{ v: string }>('select current_setting($1) as v', ['synchronous_standby_names']);
    if ((cur[0]?.v ?? '') !== value) await alterSystem(this.d.pg, { synchronous_standby_names: value === '' ? null : value });
  }

  async prepareTimeline(tli: number): Promise<void> {
    await this.removePlaceholders(tli);
    const rows = await this.d.pg.query<{ f: string }>("select f from pg_ls_dir('pg_wal') f where f ~ '^[0-9A-F]{8}\\.history$'");
    const have = new Set(rows.map((r) => parseInt(r.f.slice(0, 8), 16)));
    const cur = await this.timeline();
    for (const t of placeholdersFor(tli, have)) {
      // A valid history file: this node's ancestry below t (PostgreSQL requires increasing
      // timelines below the file's own), never read as a real timeline.
      const lines = cur.history.filter((h) => h.parentTli < t);
      if (lines.length === 0) lines.push({ parentTli: 1, switchLsn: 0 });
      const text = lines.map((h) => `${h.parentTli}\t${formatLsn(h.switchLsn)}\t${PLACEHOLDER_MARK}\n`).join('');
      await this.writeWalFile(`${tliHex(t)}.history`, text);
    }
    if (have.size === 0 || placeholdersFor(tli, have).length > 0) this.d.log.info({ tli }, `history files below timeline ${tli} are in place`);
  }

  private async writeWalFile(name: string, text: string): Promise<void> {
    const file = path.join(this.d.pgdata, 'pg_wal', name);
    const tmp = `${file}.biha-tmp`;
    await fs.writeFile(tmp, text, { mode: 0o600 });
    const fh = await fs.open(tmp, 'r');
    await fh.sync().finally(() => fh.close());
    await fs.rename(tmp, file);
  }

  /** Removes the placeholder history files of timelines >= `from`. */
  private async removePlaceholders(from: number): Promise<void> {
    const dir = path.join(this.d.pgdata, 'pg_wal');
    const files = await fs.readdir(dir).catch(() => [] as string[]);
    for (const f of files) {
      const m = /^([0-9A-F]{8})\.history$/.exec(f);
      if (!m || parseInt(m[1]!, 16) < from) continue;
      const text = await fs.readFile(path.join(dir, f), 'utf8').catch(() => '');
      if (text.includes(PLACEHOLDER_MARK)) await fs.rm(path.join(dir, f), { force: true });
    }
  }

  async promote(): Promise<number> {
    await promote(this.d.pg, 60_000);
    const s = await this.statusNow();
    this.lastStatus = s;
    // After a fast promotion the control file still names the old timeline until the next
    // checkpoint, and pg_rewind from this node would wrongly find nothing to rewind. Checkpoint
    // now, on a connection of its own so status polling is not held up.
    void withConn(this.d.pg.opts, async (c) => {
      await c.query('CHECKPOINT');
    }).catch((e: unknown) => this.d.log.warn({ err: e instanceof Error ? e.message : String(e) }, 'checkpoint after promotion failed'));
    return s.tli;
  }

  /**
   * Ensure the replication slot for a node being added or re-copied exists here and reserves WAL
   * (leader side of `bihactl add` and `bihactl reinit`): a slot that holds no WAL (invalidated by
   * max_slot_wal_keep_size, wal_status 'lost') and is not in use is created again.
   */
  async slotFor(id: NodeId): Promise<void> {
    const name = slotName(id);
    const rows = await this.d.pg.query<{ reserved: boolean; active: boolean }>(
      'select restart_lsn is not null as reserved, active from pg_replication_slots where slot_name = $1',
      [name],
    );
    const e = rows[0];
    if (e && (e.reserved || e.active)) return;
    if (e) await dropSlot(this.d.pg, name);
    await this.d.pg.query(`select pg_create_physical_replication_slot(${quoteLiteral(name)}, true)`);
  }
}
