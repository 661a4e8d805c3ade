// Every command the controller serves, in one typed table: the same handlers answer the local
// socket (bihactl), the SQL bridge (the biha schema) and peers (a command forwarded to the leader).
//
// One forwarding rule: a command marked `leader: 'forward'` that reaches a node which is not the
// leader from a local client (bihactl, SQL) is sent to the leader once; arriving from a peer on a
// node that is not the leader (the leadership moved meanwhile), it is refused. A command marked
// `leader: 'require'` is refused on a follower with the leader's address in the message.
import type { ConfigChange, NodeId, SoftState } from '../raft/index.js';
import { BihaError } from './errors.js';
import type { StatusFile } from './bridge/sqlbridge.js';
import { CONFIG_KEYS, configOf, parseConfigPatch } from './configpatch.js';

/** What command handlers act through (the controller implements it). */
export interface CommandHost {
  readonly selfId: NodeId;
  soft(): SoftState;
  status(): StatusFile;
  magicString(): string;
  setLeader(id: NodeId): Promise<boolean>;
  /** Propose a config change on the leader and wait until it is committed. */
  proposeAndWait(fn: string, change: ConfigChange, timeoutMs?: number): Promise<void>;
  forwardToLeader(fn: string, args: Record<string, unknown>, timeoutMs: number): Promise<unknown>;
  leadToLeaveServiceMode(): Promise<void>;
  removeNode(id: NodeId): Promise<void>;
  setNquorumAndMinnodes(nquorum: number, minnodes: number, allowSyncLoss: boolean): Promise<void>;
  setSyncStandbys(k: number, allowSyncLoss: boolean): Promise<void>;
  resetNodeError(): Promise<void>;
  rewind(): Promise<string>;
  rotateSecret(): Promise<string>;
  failback(args: Record<string, unknown> | null): Promise<void>;
  backupLock(args: Record<string, unknown>): unknown;
  /** Restart this node's PostgreSQL (on the leader only with `force`); resolves once it runs again. */
  restartPostgres(force: boolean): Promise<string>;
  /** Start a fresh copy of this follower's data from the leader in the background (bihactl reinit). */
  reinitialize(force: boolean): Promise<string>;
  /** The promotions of the leader's timeline history, oldest first (ops/history.ts). */
  history(): Promise<unknown>;
  /** This leader's synchronous_standby_names as PostgreSQL has it now. */
  syncStandbyNames(): Promise<string>;
}

type Args = Record<string, unknown>;

interface Command {
  /** 'forward': sent to the leader from a follower; 'require': refused on a follower; absent: runs here. */
  readonly leader?: 'forward' | 'require';
  /** How long a forwarded call may take (default 35 s). */
  readonly forwardTimeoutMs?: number;
  readonly run: (h: CommandHost, args: Args) => Promise<unknown>;
}

function num(args: Args, key: string): number {
  const v = args[key];
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new BihaError('bad_args', `argument "${key}" must be an integer`);
  return v;
}

function bool(args: Args, key: string): boolean {
  const v = args[key];
  if (typeof v !== 'boolean') throw new BihaError('bad_args', `argument "${key}" must be a boolean`);
  return v;
}

/** An optional boolean (absent = false). */
function flag(args: Args, key: string): boolean {
  return args[key] === undefined ? false : bool(args, key);
}

const setParam = (fn: string, key: 'heartbeatMaxLost' | 'heartbeatSendPeriod' | 'noWalOnFollower'): Command => ({
  leader: 'require',
  run: async (h, a) => {
    await h.proposeAndWait(`biha.${fn}`, { type: 'set_params', params: { [key]: num(a, 'value') } });
    return true;
  },
});

const setNode = (fn: string, key: 'canBeLeader' | 'canVote' | 'priority', read: (a: Args) => boolean | number): Command => ({
  leader: 'require',
  run: async (h, a) => {
    await h.proposeAndWait(`biha.${fn}`, { type: 'set_node', id: num(a, 'id'), patch: { [key]: read(a) } });
    return true;
  },
});

export const COMMANDS: Readonly<Record<string, Command>> = {
  status: { run: (h) => Promise.resolve(h.status()) },
  get_magic_string: { run: (h) => Promise.resolve(h.magicString()) },
  rotate_secret: { leader: 'forward', forwardTimeoutMs: 90_000, run: (h) => h.rotateSecret() },
  set_leader: { leader: 'forward', run: (h, a) => h.setLeader(num(a, 'id')) },
  remove_node: {
    leader: 'forward',
    run: async (h, a) => {
      await h.removeNode(num(a, 'id'));
      return true;
    },
  },
  set_heartbeat_max_lost: setParam('set_heartbeat_max_lost', 'heartbeatMaxLost'),
  set_heartbeat_send_period: setParam('set_heartbeat_send_period', 'heartbeatSendPeriod'),
  set_no_wal_on_follower: setParam('set_no_wal_on_follower', 'noWalOnFollower'),
  set_sync_standbys: {
    leader: 'require',
    run: async (h, a) => {
      await h.setSyncStandbys(num(a, 'value'), flag(a, 'allow_sync_loss'));
      return true;
    },
  },
  set_nquorum_and_minnodes: {
    leader: 'require',
    run: async (h, a) => {
      await h.setNquorumAndMinnodes(num(a, 'nquorum'), num(a, 'minnodes'), flag(a, 'allow_sync_loss'));
      return true;
    },
  },
  service_mode: {
    // Turning it off may need this node to campaign first (there may be no leader to ask).
    run: async (h, a) => {
      const on = bool(a, 'value');
      if (!on) await h.leadToLeaveServiceMode();
      await h.proposeAndWait('biha.service_mode', { type: 'set_params', params: { serviceMode: on } });
      return true;
    },
  },
  set_can_be_leader: setNode('set_can_be_leader', 'canBeLeader', (a) => bool(a, 'value')),
  set_can_vote: setNode('set_can_vote', 'canVote', (a) => bool(a, 'value')),
  set_priority: setNode('set_priority', 'priority', (a) => num(a, 'value')),
  reset_node_error: {
    run: async (h) => {
      await h.resetNodeError();
      return true;
    },
  },
  rewind: { run: (h) => h.rewind() },
  set_failback: {
    leader: 'forward',
    run: async (h, a) => {
      await h.failback(a);
      return true;
    },
  },
  reset_failback: {
    leader: 'forward',
    run: async (h) => {
      await h.failback(null);
      return true;
    },
  },
  backup_lock: { leader: 'forward', run: (h, a) => Promise.resolve(h.backupLock(a)) },
  restart: { run: (h, a) => h.restartPostgres(flag(a, 'force')) },
  reinitialize: { run: (h, a) => h.reinitialize(flag(a, 'force')) },
  history: { leader: 'forward', forwardTimeoutMs: 10_000, run: (h) => h.history() },
  sync_standby_names: { leader: 'forward', forwardTimeoutMs: 5000, run: (h) => h.syncStandbyNames() },
  /** The cluster settings under their SQL names (GET /config). */
  config: { run: (h) => Promise.resolve(configOf(h.status().config)) },
  /**
   * Any subset of the settings (PATCH /config), each through the command of its SQL function, in
   * the order of CONFIG_KEYS; every value is checked before the first is applied. Answers the new
   * settings.
   */
  set_config: {
    leader: 'forward',
    forwardTimeoutMs: 60_000,
    run: async (h, a) => {
      const patch = parseConfigPatch(a, configOf(h.status().config));
      for (const step of patch) await COMMANDS[step.fn]!.run(h, step.args);
      return configOf(h.status().config);
    },
  },
};

/** The settings PATCH /config takes (for messages and docs). */
export const CONFIG_PARAMETERS: readonly string[] = CONFIG_KEYS;

/**
 * Runs command `fn`. `from` is the peer that forwarded it (0: a local client: bihactl or SQL).
 * Validation of the command's own arguments happens before it is forwarded, so a bad call fails
 * on the node where it was typed.
 */
export async function runCommand(h: CommandHost, fn: string, args: Args, from: NodeId): Promise<unknown> {
  const c = COMMANDS[fn];
  if (!c) throw new BihaError('unknown_command', `unknown command "${fn}"`);
  if (c.leader === 'forward' && h.soft().role !== 'leader') {
    if (from !== 0) throw new BihaError('not_leader', 'the leader moved while the request was forwarded; try again');
    return await h.forwardToLeader(fn, args, c.forwardTimeoutMs ?? 35_000);
  }
  return await c.run(h, args);
}
