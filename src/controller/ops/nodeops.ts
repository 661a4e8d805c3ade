// Actions on this node's PostgreSQL asked for through the command table (the remote management API
// uses them): restart it, re-copy it from the leader (bihactl reinit, in the background), read the
// leader's timeline history and synchronous_standby_names.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import type { Logger } from 'pino';
import type { SoftState } from '../../raft/index.js';
import { BihaError } from '../errors.js';
import type { StatusFile } from '../bridge/sqlbridge.js';
import { tliFromWalFile } from '../pg/lsn.js';
import { evaluate } from './http.js';
import { PROMOTIONS_META_KEY, buildHistory, decodePromotions, isPlaceholderHistory } from './history.js';
import type { HistoryItem } from './history.js';

export interface NodeOpsDeps {
  readonly pgdata: string;
  readonly nodeId: number;
  readonly hasData: boolean;
  /** bin/bihactl.js of this installation. */
  readonly bihactl: string;
  readonly log: Logger;
  soft(): SoftState;
  status(): StatusFile;
  query<T>(sql: string): Promise<T[]>;
  /** Runs `fn` with PostgreSQL to itself (no reconcile action meanwhile). */
  exclusive<T>(fn: () => Promise<T>): Promise<T>;
  /** pg_ctl stop -m fast, then start in the same role. */
  restartPg(): Promise<void>;
  /** Schedules a reconcile cycle. */
  kick(): void;
  /** The committed configuration's meta. */
  meta(): Readonly<Record<string, string>>;
}

/** Where a background reinit writes its output: beside the data directory, as reinit's other files. */
export function reinitLogPath(pgdata: string): string {
  return `${pgdata}.biha-reinit.log`;
}

export class NodeOps {
  private restarting = false;
  private reinitStarted = false;

  constructor(private readonly d: NodeOpsDeps) {}

  private requireData(what: string): void {
    if (!this.d.hasData) throw new BihaError('no_data', `node ${this.d.nodeId} is a referee: it has no PostgreSQL to ${what}`);
  }

  async restartPostgres(force: boolean): Promise<string> {
    this.requireData('restart');
    const leader = this.d.soft().role === 'leader';
    if (leader && !force)
      throw new BihaError('is_leader', `node ${this.d.nodeId} is the leader: restarting its PostgreSQL interrupts every write until it runs again`, {
        hint: 'switch over first (POST /switchover), or ask again with {"force": true} to accept the outage',
      });
    if (this.restarting) throw new BihaError('restart_running', `a restart of node ${this.d.nodeId}'s PostgreSQL is already running`);
    this.restarting = true;
    try {
      this.d.log.info({ force, leader }, `restarting PostgreSQL of node ${this.d.nodeId} as asked`);
      await this.d.exclusive(() => this.d.restartPg());
    } finally {
      this.restarting = false;
      this.d.kick();
    }
    return `PostgreSQL of node ${this.d.nodeId} restarted`;
  }

  /**
   * Starts `bihactl reinit` and then `bihactl start` for this node in a detached process: reinit
   * stops this controller first, so the HTTP port is down until the copy has ended and the node
   * started again. Refused on the leader, and (without `force`) on a follower that streams.
   */
  reinitialize(force: boolean): Promise<string> {
    this.requireData('copy');
    if (this.d.soft().role === 'leader')
      throw new BihaError('is_leader', `node ${this.d.nodeId} is the leader: reinitialize copies a follower's data from the leader`, {
        hint: 'switch over first (POST /switchover), then reinitialize this node',
      });
    if (this.d.soft().leaderId === 0) throw new BihaError('no_leader', 'no leader is known right now to copy the data from; try again once there is one');
    if (!force && evaluate('replica', this.d.status()).ok)
      throw new BihaError('streaming', `node ${this.d.nodeId} streams from the leader: there is nothing to repair`, {
        hint: 'give {"force": true} to copy its data again anyway',
      });
    if (this.reinitStarted) throw new BihaError('reinit_running', `a reinitialize of node ${this.d.nodeId} has already started; see ${reinitLogPath(this.d.pgdata)}`);
    const logFile = reinitLogPath(this.d.pgdata);
    const out = fs.openSync(logFile, 'a', 0o600);
    try {
      // Arguments go positionally to the shell script: nothing of them is parsed by the shell.
      const script = '"$0" "$1" reinit --pgdata="$2" && exec "$0" "$1" start --pgdata="$2"';
      const child = spawn('/bin/sh', ['-c', script, process.execPath, this.d.bihactl, this.d.pgdata], {
        detached: true,
        stdio: ['ignore', out, out],
        env: { ...process.env },
      });
      child.unref();
      this.reinitStarted = true;
      // Normally this controller is stopped by the reinit before it ends; if the reinit fails
      // first (no leader reachable, ...), a new one may be asked for.
      child.once('exit', (code) => {
        this.reinitStarted = false;
        this.d.log.warn({ code, log: logFile }, `the reinitialize of node ${this.d.nodeId} ended with code ${code ?? 'none'} while this controller still ran; see ${logFile}`);
      });
      this.d.log.warn({ pid: child.pid, log: logFile, force }, `reinitialize of node ${this.d.nodeId} started: bihactl reinit stops this controller, copies the data from the leader and starts the node again`);
    } finally {
      fs.closeSync(out);
    }
    return Promise.resolve(
      `reinitialize of node ${this.d.nodeId} started: the node stops, copies the leader's data and starts again; its HTTP port answers again once it runs (output in ${logFile})`,
    );
  }

  /** GET /history on the leader: its current timeline's history file with biha's promotion records. */
  async history(): Promise<HistoryItem[]> {
    this.requireData('read the history of');
    const files = await this.d.query<{ name: string; text: string }>(
      "select name, pg_read_file('pg_wal/' || name) as text from pg_ls_dir('pg_wal') as name where name ~ '^[0-9A-F]{8}\\.history$'",
    );
    const real = new Map(files.filter((f) => !isPlaceholderHistory(f.text)).map((f) => [parseInt(f.name.slice(0, 8), 16), f.text]));
    const [cur] = await this.d.query<{ walfile: string | null }>(
      'select case when pg_is_in_recovery() then null else pg_walfile_name(pg_current_wal_lsn()) end as walfile',
    );
    const current = cur?.walfile ? tliFromWalFile(cur.walfile) : Math.max(1, ...real.keys());
    const records = decodePromotions(this.d.meta()[PROMOTIONS_META_KEY]);
    return buildHistory(current, real.get(current) ?? null, records);
  }

  async syncStandbyNames(): Promise<string> {
    this.requireData('read synchronous_standby_names of');
    const [r] = await this.d.query<{ v: string }>("select current_setting('synchronous_standby_names') as v");
    return r?.v ?? '';
  }
}
