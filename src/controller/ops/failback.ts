// Failback window: a preferred leader and a cron expression saying when leadership may return to
// it. The setting is cluster-wide, in the config log as the meta value `failback` (JSON {id, cron};
// empty = off). Only the leader runs the schedule. At each tick, when the preferred node is not the
// leader, is a healthy streaming follower and has (nearly) caught up, the leader hands leadership
// over to it the way biha.set_leader does. Service mode suppresses the ticks.
import cron from 'node-cron';
import type { ScheduledTask } from 'node-cron';
import type { Logger } from 'pino';
import type { ClusterConfig, ConfigChange, NodeId } from '../../raft/index.js';
import { BihaError } from '../errors.js';
import type { StatusFile } from '../bridge/sqlbridge.js';

/** The config-log meta key of the setting. */
export const FAILBACK_META_KEY = 'failback';
/** A preferred node further behind than this (replay lag on the leader) is not handed leadership. */
export const FAILBACK_MAX_LAG_BYTES = 1 << 20;

export interface FailbackSetting {
  readonly id: NodeId;
  readonly cron: string;
}

/** The meta value as stored ('' = off). */
export function encodeFailback(s: FailbackSetting | null): string {
  return s ? JSON.stringify({ id: s.id, cron: s.cron }) : '';
}

/** The setting from its meta value; null when off or unreadable. */
export function decodeFailback(v: string | undefined): FailbackSetting | null {
  if (!v) return null;
  try {
    const o = JSON.parse(v) as { id?: unknown; cron?: unknown };
    if (typeof o.id === 'number' && Number.isInteger(o.id) && o.id > 0 && typeof o.cron === 'string' && o.cron !== '') return { id: o.id, cron: o.cron };
  } catch {
    // not JSON
  }
  return null;
}

/** Why `cron` cannot be used as a failback window (null = it can). */
export function cronProblem(expr: string): string | null {
  const e = expr.trim();
  if (e === '' || !cron.validate(e))
    return `"${expr}" is not a valid cron expression: give 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds first, e.g. '*/5 * * * *'`;
  return null;
}

/** Why node `id` cannot be the preferred leader in `cfg` (null = it can). */
export function nodeProblem(cfg: ClusterConfig, id: NodeId): string | null {
  const n = cfg.nodes.find((x) => x.id === id);
  if (!n) return `node ${id} is not in the cluster: give the id of a member (see biha.status_v)`;
  if (n.mode !== 'regular') return `node ${id} is a ${n.mode} and can never lead: give the id of a regular node`;
  if (!n.canBeLeader) return `node ${id} has can_be_leader = false: allow it first with select biha.set_can_be_leader(${id}, true)`;
  return null;
}

/**
 * Why the leader should not hand leadership to `id` now (null = it may), from the leader's status:
 * the node must be online in state FOLLOWER, stream from this node, and be at most
 * FAILBACK_MAX_LAG_BYTES behind in replay.
 */
export function notReady(status: StatusFile, id: NodeId, maxLagBytes = FAILBACK_MAX_LAG_BYTES): string | null {
  const st = status.status.find((x) => x.id === id);
  if (!st) return `node ${id} is not in the cluster`;
  if (!st.online || st.state !== 'FOLLOWER') return `node ${id} is ${st.online ? st.state : 'offline'}`;
  const f = status.monitoring.followers.find((x) => x.id === id);
  if (!f || f.state !== 'streaming') return `node ${id} does not stream from the leader`;
  if (f.lag_bytes === null || f.lag_bytes > maxLagBytes) return `node ${id} is ${f.lag_bytes ?? '?'} bytes behind`;
  return null;
}

/**
 * The config change of biha.set_failback(id, cron) (`args` = {id, cron}) or biha.reset_failback()
 * (`args` = null), checked against `cfg`; throws a BihaError that says what to give instead.
 */
export function failbackChange(cfg: ClusterConfig, args: Record<string, unknown> | null): ConfigChange {
  if (args === null) return { type: 'set_meta', key: FAILBACK_META_KEY, value: encodeFailback(null) };
  const id = args['id'];
  const expr = args['cron'];
  if (typeof id !== 'number' || !Number.isInteger(id) || id < 1)
    throw new BihaError('bad_args', `node id must be a positive integer, not ${String(id)}`);
  if (typeof expr !== 'string') throw new BihaError('bad_args', 'the cron expression must be a string');
  const bad = nodeProblem(cfg, id) ?? cronProblem(expr);
  if (bad) throw new BihaError('bad_args', bad);
  return { type: 'set_meta', key: FAILBACK_META_KEY, value: encodeFailback({ id, cron: expr.trim() }) };
}

export interface FailbackDeps {
  readonly selfId: NodeId;
  readonly log: Logger;
  /** The committed setting. */
  readonly setting: () => FailbackSetting | null;
  readonly isLeader: () => boolean;
  readonly serviceMode: () => boolean;
  readonly config: () => ClusterConfig;
  readonly status: () => StatusFile;
  /** Hands leadership to `id` (biha.set_leader's path); resolves when done, rejects on failure. */
  readonly transfer: (id: NodeId) => Promise<unknown>;
}

export class FailbackScheduler {
  private task: ScheduledTask | null = null;
  private running: FailbackSetting | null = null;
  private busy = false;
  private lastSkip = '';

  constructor(private readonly d: FailbackDeps) {}

  /** Start, restart or stop the schedule to match leadership and the setting (cheap; call often). */
  sync(): void {
    const want = this.d.isLeader() ? this.d.setting() : null;
    if (want && this.running && want.id === this.running.id && want.cron === this.running.cron) return;
    this.stopTask();
    if (!want || cronProblem(want.cron) !== null) return;
    this.running = want;
    this.lastSkip = '';
    this.task = cron.schedule(want.cron, () => void this.tick(), { name: `biha-failback-${this.d.selfId}` });
    this.d.log.info({ id: want.id, cron: want.cron }, `failback window active: leadership may return to node ${want.id} at '${want.cron}'`);
  }

  /** The schedule this node runs now (null: none). */
  active(): FailbackSetting | null {
    return this.running;
  }

  close(): void {
    this.stopTask();
  }

  private stopTask(): void {
    if (this.task) {
      this.task.stop();
      this.d.log.info({ id: this.running?.id }, 'failback window stopped on this node');
    }
    this.task = null;
    this.running = null;
  }

  /** One cron tick. Exposed for tests. */
  async tick(): Promise<void> {
    const s = this.running;
    if (!s || this.busy) return;
    if (!this.d.isLeader()) {
      this.sync();
      return;
    }
    const skip = (why: string): void => {
      if (why !== this.lastSkip) this.d.log.info({ id: s.id }, `failback to node ${s.id} not now: ${why}`);
      this.lastSkip = why;
    };
    if (s.id === this.d.selfId) return skip('this node is the leader already');
    if (this.d.serviceMode()) return skip('service mode is on');
    const bad = nodeProblem(this.d.config(), s.id) ?? notReady(this.d.status(), s.id);
    if (bad) return skip(bad);
    this.busy = true;
    this.lastSkip = '';
    this.d.log.info({ id: s.id, cron: s.cron }, `failback window: handing leadership over to node ${s.id}`);
    try {
      await this.d.transfer(s.id);
      this.d.log.info({ id: s.id }, `failback to node ${s.id} done`);
    } catch (e) {
      this.d.log.warn({ id: s.id, err: e instanceof Error ? e.message : String(e) }, `failback to node ${s.id} failed; retrying at the next tick`);
    } finally {
      this.busy = false;
      this.sync();
    }
  }
}
