// The cluster configuration as data: defaults, the two initial states, validation and application
// of config-log changes, and the quorum arithmetic every other part relies on.
import { RaftError } from './errors.js';
import { NODE_MODES } from './types.js';
import type { ClusterConfig, ClusterParams, ConfigChange, NodeId, NodeInfo, PersistentState } from './types.js';

/** Reference defaults (biha.nquorum, biha.minnodes, biha.heartbeat_send_period, ...). */
export const DEFAULT_PARAMS: ClusterParams = Object.freeze({
  nquorum: 1,
  minnodes: 1,
  heartbeatSendPeriod: 1000,
  heartbeatMaxLost: 10,
  noWalOnFollower: 20000,
  syncStandbys: 0,
  serviceMode: false,
});

/** Inclusive ranges of the numeric parameters; `null` = no upper bound. */
export const PARAM_RANGES: Readonly<Record<Exclude<keyof ClusterParams, 'serviceMode'>, readonly [number, number | null]>> = {
  nquorum: [1, null],
  minnodes: [1, null],
  heartbeatSendPeriod: [10, 60000],
  heartbeatMaxLost: [2, 1000],
  noWalOnFollower: [0, null],
  syncStandbys: [0, null],
};

/** The state `bihactl init` writes for the first node: a committed one-node configuration. */
export function bootstrapState(first: NodeInfo, params: ClusterParams): PersistentState {
  return {
    hard: { term: 1, vote: first.id, commit: 1 },
    log: {
      snapshot: { index: 1, term: 1, config: { nodes: [first], params }, meta: {} },
      entries: [],
    },
  };
}

/** A node prepared by `bihactl add`: it knows nothing until the leader sends it a snapshot. */
export function joiningState(): PersistentState {
  return {
    hard: { term: 0, vote: 0, commit: 0 },
    log: {
      snapshot: { index: 0, term: 0, config: { nodes: [], params: DEFAULT_PARAMS }, meta: {} },
      entries: [],
    },
  };
}

export function findNode(config: ClusterConfig, id: NodeId): NodeInfo | undefined {
  return config.nodes.find((n) => n.id === id);
}

export function isMember(config: ClusterConfig, id: NodeId): boolean {
  return findNode(config, id) !== undefined;
}

/** Whether the node takes part in elections now: it has a vote and is no learner waiting for it. */
export function votesNow(n: NodeInfo): boolean {
  return n.canVote && n.learner !== true;
}

/** Members that take part in elections (referees included, learners not). */
export function voterIds(config: ClusterConfig): NodeId[] {
  return config.nodes.filter(votesNow).map((n) => n.id);
}

/**
 * How a node enters the configuration (`bihactl add`): one that is to vote comes in as a learner
 * and gets its vote from the leader once it follows with its data. A voter that is still copying
 * its data would otherwise count in every election and commit quorum while it cannot answer: with
 * nquorum equal to the member count, a leader lost during the copy leaves no quorum at all.
 */
export function asLearner(n: NodeInfo): NodeInfo {
  return n.canVote ? { ...n, learner: true } : n;
}

function withoutLearner(n: NodeInfo): NodeInfo {
  if (n.learner === undefined) return n;
  const copy: { -readonly [K in keyof NodeInfo]: NodeInfo[K] } = { ...n };
  delete copy.learner;
  return copy;
}

/** A node that may ever become leader: a regular node (no referee of either kind) allowed to lead. */
export function isLeaderCapable(node: NodeInfo): boolean {
  return node.canBeLeader && node.mode === 'regular';
}

/** Votes needed to win an election: nquorum, but never more than there are voters. */
export function electionQuorum(config: ClusterConfig): number {
  return Math.min(config.params.nquorum, voterIds(config).length);
}

/**
 * Voters that must store a config entry before it commits. With E = electionQuorum and V voters,
 * C = V - E + 1 makes C + E > V, so every commit quorum shares a voter with every election quorum:
 * a new leader always has every committed entry in its config log.
 */
export function commitQuorum(config: ClusterConfig): number {
  return Math.max(1, voterIds(config).length - electionQuorum(config) + 1);
}

function checkInt(name: string, v: unknown, min: number, max: number | null): string | null {
  if (typeof v !== 'number' || !Number.isInteger(v)) return `${name} must be an integer`;
  if (v < min) return `${name} must be at least ${min} (got ${v})`;
  if (max !== null && v > max) return `${name} must be at most ${max} (got ${v})`;
  return null;
}

function checkParams(params: Record<string, unknown>, partial: boolean): string | null {
  for (const key of Object.keys(params)) {
    if (!(key in DEFAULT_PARAMS)) return `unknown parameter "${key}"`;
  }
  for (const [key, [min, max]] of Object.entries(PARAM_RANGES)) {
    if (partial && params[key] === undefined) continue;
    const err = checkInt(key, params[key], min, max);
    if (err) return err;
  }
  if (!(partial && params.serviceMode === undefined) && typeof params.serviceMode !== 'boolean') {
    return 'serviceMode must be true or false';
  }
  return null;
}

const NODE_PATCH_KEYS = ['canBeLeader', 'canVote', 'priority', 'host', 'port', 'bihaPort'] as const;

function checkNodeFields(n: Record<string, unknown>, partial: boolean): string | null {
  const has = (k: string): boolean => !partial || n[k] !== undefined;
  if (has('host') && (typeof n.host !== 'string' || n.host.length === 0)) return 'host must be a non-empty string';
  if (has('port')) {
    const err = checkInt('port', n.port, 0, 65535);
    if (err) return err;
  }
  if (has('bihaPort')) {
    const err = checkInt('bihaPort', n.bihaPort, 1, 65535);
    if (err) return err;
  }
  if (has('canBeLeader') && typeof n.canBeLeader !== 'boolean') return 'canBeLeader must be true or false';
  if (has('canVote') && typeof n.canVote !== 'boolean') return 'canVote must be true or false';
  if (has('priority') && (typeof n.priority !== 'number' || !Number.isFinite(n.priority))) return 'priority must be a number';
  return null;
}

/** Why `change` cannot be applied to `config`, or null when it can. */
export function validateChange(config: ClusterConfig, change: ConfigChange): string | null {
  switch (change.type) {
    case 'add_node': {
      const n = change.node;
      if (typeof n.id !== 'number' || !Number.isInteger(n.id) || n.id <= 0) return `node id must be a positive integer (got ${String(n.id)})`;
      if (isMember(config, n.id)) return `node ${n.id} is already a member of the cluster`;
      if (!(NODE_MODES as readonly string[]).includes(n.mode)) return `unknown node mode "${String(n.mode)}"`;
      if (n.mode !== 'regular' && n.canBeLeader === true) return `a ${n.mode} node can never be the leader (can_be_leader must be false)`;
      return checkNodeFields(n as unknown as Record<string, unknown>, false);
    }
    case 'remove_node': {
      if (!isMember(config, change.id)) return `node ${change.id} is not a member of the cluster`;
      const after = config.nodes.filter((n) => n.id !== change.id);
      if (!after.some(votesNow)) return `removing node ${change.id} would leave the cluster without a voting node`;
      return null;
    }
    case 'set_params':
      return checkParams(change.params as Record<string, unknown>, true);
    case 'set_node': {
      const node = findNode(config, change.id);
      if (!node) return `node ${change.id} is not a member of the cluster`;
      for (const key of Object.keys(change.patch)) {
        if (!(NODE_PATCH_KEYS as readonly string[]).includes(key)) return `node field "${key}" cannot be changed`;
      }
      const err = checkNodeFields(change.patch as Record<string, unknown>, true);
      if (err) return err;
      if (change.patch.canBeLeader === true && node.mode !== 'regular') return `node ${change.id} is a ${node.mode} node and can never be the leader`;
      if (change.patch.canVote === false && !config.nodes.some((n) => n.id !== change.id && votesNow(n))) {
        return `node ${change.id} is the last voting node and must keep its vote`;
      }
      return null;
    }
    case 'give_vote': {
      const node = findNode(config, change.id);
      if (!node) return `node ${change.id} is not a member of the cluster`;
      if (node.learner !== true) return `node ${change.id} is no learner waiting for its vote`;
      if (!node.canVote) return `node ${change.id} was given can_vote = false`;
      return null;
    }
    case 'set_meta':
      if (typeof change.key !== 'string' || change.key.length === 0) return 'meta key must be a non-empty string';
      if (typeof change.value !== 'string') return 'meta value must be a string';
      return null;
    default:
      return `unknown change type "${(change as { type: unknown }).type as string}"`;
  }
}

/** True when the change names a node the config does not have (ProposeErrorCode 'unknown_node'). */
export function changeNamesUnknownNode(config: ClusterConfig, change: ConfigChange): boolean {
  return (change.type === 'remove_node' || change.type === 'set_node' || change.type === 'give_vote') && !isMember(config, change.id);
}

/**
 * The configuration after `change`. Pure; throws RaftError('invalid_change') when validateChange
 * refuses it. `set_meta` leaves the configuration unchanged (meta lives beside it in the snapshot).
 */
export function applyChange(config: ClusterConfig, change: ConfigChange): ClusterConfig {
  const reason = validateChange(config, change);
  if (reason !== null) throw new RaftError('invalid_change', `invalid config change (${change.type}): ${reason}`);
  switch (change.type) {
    case 'add_node':
      return { nodes: [...config.nodes, { ...change.node }].sort((a, b) => a.id - b.id), params: config.params };
    case 'remove_node':
      return { nodes: config.nodes.filter((n) => n.id !== change.id), params: config.params };
    case 'set_params':
      return { nodes: config.nodes, params: { ...config.params, ...change.params } };
    case 'set_node':
      return { nodes: config.nodes.map((n) => (n.id === change.id ? { ...n, ...change.patch } : n)), params: config.params };
    case 'give_vote':
      return { nodes: config.nodes.map((n) => (n.id === change.id ? withoutLearner(n) : n)), params: config.params };
    case 'set_meta':
      return config;
  }
}

/**
 * A warning when the parameters allow two leaders at once, or null. Two disjoint groups can each
 * elect a leader when 2 * nquorum <= voters; an old leader can stay writable (it needs minnodes
 * live nodes, itself included) while nquorum others elect a new one when nquorum + minnodes <= voters.
 */
export function splitBrainWarning(config: ClusterConfig): string | null {
  const voters = voterIds(config).length;
  const { nquorum, minnodes } = config.params;
  const problems: string[] = [];
  if (nquorum * 2 <= voters) {
    problems.push(`nquorum ${nquorum} lets two separate groups of the ${voters} voting nodes elect a leader each`);
  }
  if (nquorum + minnodes <= voters) {
    problems.push(`nquorum ${nquorum} + minnodes ${minnodes} <= ${voters} voting nodes lets an old leader stay writable while the others elect a new one`);
  }
  if (problems.length === 0) return null;
  return `split brain possible: ${problems.join('; ')}; raise nquorum above half the voting nodes and minnodes to at least voting nodes - nquorum + 1`;
}

/**
 * Timeline numbers are reserved through the config log (meta key `timeline`): a leader promotes
 * PostgreSQL only to a number it reserved in its own term, and every reservation is above every
 * earlier one in the log. PostgreSQL alone picks "newest history file + 1", which two nodes that
 * never saw each other's history pick alike for different WAL (docs/architecture.md, "Timelines").
 */
export const TIMELINE_META_KEY = 'timeline';

export interface TimelineReservation {
  readonly tli: number;
  /** The term of the leader that reserved it: only that leader promotes to it. */
  readonly term: number;
}

export function encodeTimelineReservation(r: TimelineReservation): string {
  return `${r.tli}@${r.term}`;
}

/** The reservation stored under TIMELINE_META_KEY (null when absent or unreadable). */
export function decodeTimelineReservation(value: string | undefined): TimelineReservation | null {
  const m = value === undefined ? null : /^(\d+)@(\d+)$/.exec(value);
  return m ? { tli: Number(m[1]), term: Number(m[2]) } : null;
}

export function timelineChange(r: TimelineReservation): ConfigChange {
  return { type: 'set_meta', key: TIMELINE_META_KEY, value: encodeTimelineReservation(r) };
}

/** The reservation a config-log entry makes, if it is one. */
export function reservationOf(change: ConfigChange | null): TimelineReservation | null {
  return change?.type === 'set_meta' && change.key === TIMELINE_META_KEY ? decodeTimelineReservation(change.value) : null;
}

/**
 * The zero-loss rule of synchronous mode in numbers. An acknowledged commit is on the leader and
 * on `effective` synchronous standbys (ANY k over the other regular nodes, so k counts only as
 * far as there are such nodes); of those copies, the ones on regular nodes without a vote may
 * not help, so at worst `votingCopies` voters hold it. A voter only elects a candidate with at
 * least its WAL, so every election keeps the commit when every election quorum contains one of
 * them: votingCopies + quorum > voters, i.e. sync_standbys + 1 + nquorum > voting nodes when
 * every regular node votes. `deficit` = voters - votingCopies - quorum + 1: the rule holds when
 * it is 0 or less. Null in asynchronous mode (sync_standbys 0), which promises nothing.
 */
export interface ZeroLoss {
  /** sync_standbys as configured. */
  readonly syncStandbys: number;
  /** The k that synchronous_standby_names gets: at most the other regular nodes. */
  readonly effective: number;
  /** The leader and its synchronous standbys: effective + 1. */
  readonly copies: number;
  /** Copies on voting nodes in the worst case. */
  readonly votingCopies: number;
  /** Votes that win an election (electionQuorum). */
  readonly quorum: number;
  /** Voting members, referees included. */
  readonly voters: number;
  readonly deficit: number;
}

export function zeroLoss(intended: ClusterConfig): ZeroLoss | null {
  const k = intended.params.syncStandbys;
  if (k <= 0) return null;
  // Judged with every learner voting, as it will: while it learns, it is neither a voter nor a
  // synchronous standby, which is the configuration before it was added.
  const config: ClusterConfig = { nodes: intended.nodes.map(withoutLearner), params: intended.params };
  const regular = config.nodes.filter((n) => n.mode === 'regular');
  const effective = Math.min(k, Math.max(0, regular.length - 1));
  const copies = effective + 1;
  const votingCopies = copies - Math.min(copies, regular.filter((n) => !n.canVote).length);
  const quorum = electionQuorum(config);
  const voters = voterIds(config).length;
  return { syncStandbys: k, effective, copies, votingCopies, quorum, voters, deficit: voters - votingCopies - quorum + 1 };
}

function zeroLossSum(z: ZeroLoss): string {
  return z.votingCopies === z.copies
    ? `${z.effective} + 1 + ${z.quorum} = ${z.copies + z.quorum}`
    : `${z.votingCopies} + ${z.quorum} = ${z.votingCopies + z.quorum}`;
}

/**
 * Why `change` would break the zero-loss rule of synchronous mode (see ZeroLoss), as one line that
 * states the rule with the numbers and what to change first; null when it keeps it. Refused: a
 * change after which synchronous mode (sync_standbys > 0) does not keep acknowledged commits
 * through every failover, when the rule held before or the cluster was asynchronous, or when it
 * was already broken and the change widens the gap. A change that keeps a broken rule as it is or
 * narrows the gap is not refused, and neither is asynchronous mode. A change validateChange
 * refuses is left to it (null). The entry points (bihactl add, biha.set_sync_standbys,
 * biha.set_nquorum_and_minnodes) add how to accept the risk instead.
 */
export function zeroLossViolation(config: ClusterConfig, change: ConfigChange): string | null {
  if (validateChange(config, change) !== null) return null;
  const after = applyChange(config, change);
  const a = zeroLoss(after);
  if (a === null || a.deficit <= 0) return null;
  const b = zeroLoss(config);
  if (b !== null && a.deficit <= b.deficit) return null;

  const params = change.type === 'set_params' ? change.params : {};
  const setsK = params.syncStandbys !== undefined;
  const setsQ = params.nquorum !== undefined;
  const what =
    change.type === 'add_node' ? `adding node ${change.node.id}`
    : change.type === 'remove_node' ? `removing node ${change.id}`
    : change.type === 'set_node' ? `that change to node ${change.id}`
    : [setsK ? `sync_standbys ${a.syncStandbys}` : '', setsQ ? `nquorum ${after.params.nquorum}` : ''].filter((x) => x !== '').join(' with ') || 'that change';

  const notes = ['referees included'];
  const others = Math.max(0, after.nodes.filter((n) => n.mode === 'regular').length - 1);
  const otherNodes = others === 0 ? 'no other regular node' : `${others} other regular node${others === 1 ? '' : 's'}`;
  if (a.effective < a.syncStandbys) notes.push(`sync_standbys ${a.syncStandbys} counts as ${a.effective}: the leader has ${otherNodes}`);
  if (a.votingCopies < a.copies) notes.push(`${a.copies - a.votingCopies} of the ${a.copies} copies of a commit may be on regular nodes that do not vote`);
  if (after.params.nquorum > a.quorum) notes.push(`nquorum ${after.params.nquorum} counts as ${a.quorum}`);
  const before = b !== null && b.deficit > 0 ? `; it was already broken before (${zeroLossSum(b)}, ${b.voters} voting nodes) and this makes it worse` : '';

  // The least sync_standbys (up to the other regular nodes) and the least nquorum that keep it.
  let fixK: number | null = null;
  for (let k = a.effective + 1; k <= others && fixK === null; k++) {
    const z = zeroLoss({ nodes: after.nodes, params: { ...after.params, syncStandbys: k } });
    if (z !== null && z.deficit <= 0) fixK = k;
  }
  const fixQ = a.votingCopies >= 1 ? a.voters - a.votingCopies + 1 : null;
  const present = (xs: Array<string | null>): string[] => xs.filter((x): x is string => x !== null);
  let fix: string;
  if (fixK === null && fixQ === null) fix = 'give the regular nodes their vote first (biha.set_can_vote)';
  // A change that sets one of the two gets a value for that one first.
  else if (setsK && !setsQ) fix = present([fixK !== null ? `choose sync_standbys ${fixK} or more` : null, fixQ !== null ? `raise nquorum to ${fixQ} first` : null]).join(', or ');
  else if (setsQ && !setsK) fix = present([fixQ !== null ? `choose nquorum ${fixQ} or more` : null, fixK !== null ? `raise sync_standbys to ${fixK} first` : null]).join(', or ');
  else fix = `raise ${present([fixK !== null ? `sync_standbys to ${fixK}` : null, fixQ !== null ? `nquorum to ${fixQ}` : null]).join(' or ')} first`;
  if (fixK === null && a.effective === a.syncStandbys) {
    fix += others <= a.effective ? ` (sync_standbys cannot help: the leader has ${otherNodes})` : ` (even sync_standbys ${others} would not be enough)`;
  }

  return (
    `${what} breaks the zero-loss rule of synchronous mode (sync_standbys + 1 + nquorum > voting nodes): ` +
    `${zeroLossSum(a)} is not more than the ${a.voters} voting nodes (${notes.join('; ')}), so a failover could lose acknowledged commits${before}; ${fix}`
  );
}
