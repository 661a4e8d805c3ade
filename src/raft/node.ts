// RaftNode: the pure consensus state machine of one controller. Inputs are ticks (with the
// caller's monotonic time), messages and a few local facts (WAL position, NODE_ERROR, fencing);
// outputs are Ready batches the driver executes in the order documented on `Ready`.
//
// Terms, votes, PreVote, CheckQuorum and the config log follow Raft (with etcd's structure);
// the election restriction adds the WAL position, elections are timed by heartbeats and ranked by
// WAL, and the leader's writability is a lease counted from heartbeat send times (docs/raft.md).
import {
  changeNamesUnknownNode,
  commitQuorum,
  electionQuorum,
  findNode,
  isLeaderCapable,
  isMember,
  applyChange,
  validateChange,
  voterIds,
  votesNow,
  decodeTimelineReservation,
  reservationOf,
  timelineChange,
  TIMELINE_META_KEY,
} from './config.js';
import { RaftError } from './errors.js';
import { decideGiveWay } from './giveway.js';
import type { GiveWayFollower } from './giveway.js';
import { compareWal, electionRank, electionTimeoutMs, leaseMs, rankBetter, DEFAULT_MAX_DRIFT } from './timing.js';
import type {
  AppendMsg,
  AppendRespMsg,
  BihaState,
  ClusterConfig,
  Entry,
  FenceWal,
  HardState,
  Message,
  NodeId,
  NodeInfo,
  PeerView,
  PersistentLog,
  PersistentState,
  ProposeResult,
  RaftOptions,
  Ready,
  Role,
  Snapshot,
  SoftState,
  TimeoutNowMsg,
  VoteMsg,
  VoteRespMsg,
  WalPos,
  ConfigChange,
} from './types.js';

/** Minimum spacing of the extra `app` messages sent to a transfer target (fast WAL reports). */
export const TRANSFER_APP_INTERVAL_MS = 20;
/**
 * The least time a leadership transfer may take before it is given up (ms). The target must receive
 * the WAL written up to the fence, which can take longer than a short T (200 ms x 5) on a loaded host.
 */
export const MIN_TRANSFER_TIMEOUT_MS = 5000;

const NO_WAL: WalPos = Object.freeze({ tli: 0, lsn: 0 });

/** What a leader tracks per peer. */
interface Progress {
  /** Highest config-log index known to be stored on the peer. */
  match: number;
  /** Next index to send. */
  next: number;
  /** Local time the peer was last heard (null: not since this node became leader). */
  heardAt: number | null;
  /** Send time of the newest heartbeat whose acknowledgement counts for the lease. */
  ackSendTime: number;
  /** Added to the configuration while this node led; cleared once it is heard. */
  joining?: boolean;
  /** Lease end that acknowledgement allowed: send time + the lease in force when it was sent. */
  ackLeaseEnd: number;
  wal: WalPos;
  state: BihaState;
  /** The term the peer last answered with (0: not heard since this node became leader). */
  term: number;
  /** How long the peer has heard this leader without receiving WAL (its last report; 0: WAL flows). */
  noWalMs: number;
  /** The data nodes whose PostgreSQL port the peer could open (its last report while WAL stalled). */
  pgReach: readonly NodeId[];
}

interface Transfer {
  readonly target: NodeId;
  readonly startedAt: number;
  lastAppAt: number;
  timeoutNowSent: boolean;
  /**
   * Started because no follower could receive this leader's WAL (giving way, docs/raft.md): the
   * target cannot catch up with the leader's WAL, so TimeoutNow waits only for the fence and for the
   * target to hold at least the WAL of every follower. The longest time without WAL reported.
   */
  readonly noWalMs?: number;
}

function sameSoft(a: SoftState, b: SoftState): boolean {
  return (
    a.role === b.role &&
    a.term === b.term &&
    a.leaderId === b.leaderId &&
    a.writable === b.writable &&
    a.state === b.state &&
    a.transferTarget === b.transferTarget &&
    a.givingWay === b.givingWay
  );
}

function lastOfLog(log: PersistentLog): { index: number; term: number } {
  const last = log.entries[log.entries.length - 1];
  return last ? { index: last.index, term: last.term } : { index: log.snapshot.index, term: log.snapshot.term };
}

/** Raft's "at least as up to date": higher last term, or the same last term and at least as long. */
function logAtLeast(a: { index: number; term: number }, b: { index: number; term: number }): boolean {
  return a.term > b.term || (a.term === b.term && a.index >= b.index);
}

function checkLog(log: PersistentLog): void {
  let expect = log.snapshot.index + 1;
  let term = log.snapshot.term;
  for (const e of log.entries) {
    if (e.index !== expect) throw new RaftError('invalid_state', `config log is not contiguous: entry ${e.index} where ${expect} was expected`);
    if (e.term < term) throw new RaftError('invalid_state', `config log terms go backwards at entry ${e.index}`);
    term = e.term;
    expect++;
  }
}

export class RaftNode {
  readonly id: NodeId;
  private readonly rand: () => number;
  private readonly maxDrift: number;

  // Persistent state.
  private term: number;
  private vote: NodeId;
  private commit: number;
  private snap: Snapshot;
  private entries: Entry[];

  // Volatile state.
  private role: Role = 'follower';
  private leaderId: NodeId = 0;
  private started = false;
  private nodeError = false;
  /** In NODE_ERROR: the end of the WAL this node shares with the cluster's history (its fork point). */
  private keptWal: WalPos = NO_WAL;
  /** Why this node may not lead now (setMayLead), or null. */
  private leadBlock: string | null = null;
  private localFenced = false;
  private wal: WalPos = NO_WAL;
  /** Follower: time without WAL from `noWal.leader` and the PostgreSQL ports it could open (setNoWal). */
  private noWal: { leader: NodeId; ms: number; reach: readonly NodeId[] } = { leader: 0, ms: 0, reach: [] };
  /** Leader: no giving way before this time (anti-flap, docs/raft.md "Giving way"). */
  private giveWayNotBefore = Number.NEGATIVE_INFINITY;
  /**
   * A leader that gave way does not campaign before this time: it holds the most WAL (its blocked
   * commits), so it would win any election it starts, and its followers still cannot replicate from it.
   */
  private campaignHoldUntil = Number.NEGATIVE_INFINITY;
  private now: number;

  // Follower timing.
  private readonly startedAt: number;
  private lastLeaderContact: number;
  private electionAt: number | null = null;
  private lastPrevoteGrantAt = Number.NEGATIVE_INFINITY;
  /** Term of the leader this node last followed or was (0 = unknown, e.g. after a restart). */
  private followedTerm = 0;
  /** A leader of the current term has been known (FOLLOWER_VOTING is only for elections in progress). */
  private leaderSeenThisTerm = false;

  // (Pre)candidate.
  private campaignDeadline = 0;
  private votes = new Map<NodeId, boolean>();

  // Leader.
  private progress = new Map<NodeId, Progress>();
  private seq = 0;
  /** Per heartbeat seq: send time, commit index sent, lease in force at sending. */
  private seqSent = new Map<number, { at: number; commit: number; lease: number }>();
  private lastHbAt = Number.NEGATIVE_INFINITY;
  private lastBroadcast = '';
  private leaderSince = 0;
  private noopIndex = 0;
  private transfer: Transfer | null = null;
  private writable = false;

  // The leader's last peer view (followers) or the view frozen when leadership ended.
  private view: readonly PeerView[] = [];
  private viewFrom: NodeId = 0;
  private viewAt = 0;
  /** Referees (and referee_with_wal): WAL a newly elected leader must have (see noteSeenWal). */
  private seenWal: WalPos = NO_WAL;

  private qcCache: { snap: Snapshot; lastIndex: number; lastTerm: number; configs: ClusterConfig[]; latest: ClusterConfig } | null = null;

  // Pending Ready.
  private msgs: Message[] = [];
  private lastHard: HardState;
  private logDirty = false;
  private fence: FenceWal | null = null;
  private committedOut: Entry[] = [];
  private configDirty = false;
  private lastSoft: SoftState;

  /** Until when service mode does not stop this node's campaigns (campaignDespiteServiceMode). */
  private serviceOverrideUntil = Number.NEGATIVE_INFINITY;

  constructor(opts: RaftOptions) {
    if (!Number.isInteger(opts.id) || opts.id <= 0) throw new RaftError('invalid_state', `node id must be a positive integer (got ${opts.id})`);
    this.id = opts.id;
    this.rand = opts.rand;
    this.maxDrift = opts.maxDrift ?? DEFAULT_MAX_DRIFT;
    this.now = opts.now;
    const { hard, log } = opts.state;
    checkLog(log);
    this.snap = log.snapshot;
    this.entries = [...log.entries];
    // Raft's term is never behind the newest entry a node holds. A node prepared by `bihactl add`
    // holds the leader's config log but persisted term 0: it starts in that entry's term (with no
    // vote in it), so it can only campaign in a newer term than any leader whose entries it has.
    this.term = Math.max(hard.term, this.lastTerm());
    this.vote = this.term === hard.term ? hard.vote : 0;
    this.commit = log.snapshot.index;
    this.lastHard = { term: hard.term, vote: hard.vote, commit: hard.commit };
    if (hard.commit > this.lastIndex()) {
      throw new RaftError('invalid_state', `persisted commit index ${hard.commit} is beyond the last config-log entry ${this.lastIndex()}`);
    }
    if (hard.commit > this.commit) this.commitTo(hard.commit);
    // A restarted voter may have acknowledged a heartbeat just before it stopped: it must not vote
    // or campaign for T from now, or the old leader's lease would not protect it. A node still in
    // term 0 (prepared by `bihactl add`) has acknowledged no leader (an acknowledgement follows
    // persisting the leader's term), so no lease relies on it and it may vote at once; it still
    // waits T from its start before it campaigns (tickFollower).
    this.startedAt = opts.now;
    this.lastLeaderContact = hard.term === 0 ? Number.NEGATIVE_INFINITY : opts.now;
    this.lastSoft = this.soft();
  }

  // ---------------------------------------------------------------- small accessors

  private cfg(): ClusterConfig {
    return this.snap.config;
  }

  private T(): number {
    return electionTimeoutMs(this.cfg().params);
  }

  private hb(): number {
    return this.cfg().params.heartbeatSendPeriod;
  }

  private lastIndex(): number {
    const last = this.entries[this.entries.length - 1];
    return last ? last.index : this.snap.index;
  }

  private lastTerm(): number {
    const last = this.entries[this.entries.length - 1];
    return last ? last.term : this.snap.term;
  }

  /** Term of the entry at `index`; undefined when compacted away (index < snapshot) or beyond the log. */
  private termAt(index: number): number | undefined {
    if (index === this.snap.index) return this.snap.term;
    if (index < this.snap.index) return undefined;
    return this.entries[index - this.snap.index - 1]?.term;
  }

  private self(): NodeInfo | undefined {
    return findNode(this.cfg(), this.id);
  }

  /**
   * The configurations every quorum decision must satisfy: the committed one and, while a config
   * change is uncommitted, the latest one in the log (joint rule). Nodes the pending change adds do
   * not count yet: they have not received any configuration. A later leader always holds the last
   * committed change in its log (its voters refuse less up-to-date logs), so nodes that still run
   * the previous parameters cannot elect a leader without meeting the new quorums.
   */
  private quorumConfigs(): ClusterConfig[] {
    return this.configCache().configs;
  }

  /** The configuration after every entry of the log, committed or not, added nodes included. */
  private latestConfig(): ClusterConfig {
    return this.configCache().latest;
  }

  private configCache(): { configs: ClusterConfig[]; latest: ClusterConfig } {
    // Same snapshot and same last entry (index, term) mean the same log (log matching).
    const c = this.qcCache;
    if (c && c.snap === this.snap && c.lastIndex === this.lastIndex() && c.lastTerm === this.lastTerm()) return c;
    const committed = this.cfg();
    let latest: ClusterConfig = committed;
    for (const e of this.entries) {
      const ch = e.change;
      if (ch === null || ch.type === 'set_meta' || validateChange(latest, ch) !== null) continue;
      latest = applyChange(latest, ch);
    }
    const known = latest.nodes.filter((n) => isMember(committed, n.id));
    const configs = latest === committed ? [committed] : [committed, { nodes: known, params: latest.params }];
    this.qcCache = { snap: this.snap, lastIndex: this.lastIndex(), lastTerm: this.lastTerm(), configs, latest };
    return this.qcCache;
  }

  /** Voters of any quorum configuration. */
  private allVoters(): NodeId[] {
    const ids = new Set<NodeId>();
    for (const c of this.quorumConfigs()) for (const v of voterIds(c)) ids.add(v);
    return [...ids].sort((a, b) => a - b);
  }

  private canVoteHere(): boolean {
    return this.quorumConfigs().some((c) => {
      const me = findNode(c, this.id);
      return me !== undefined && votesNow(me);
    });
  }

  /** True when the granted votes reach the election quorum of every quorum configuration. */
  private electionWon(): boolean {
    return this.quorumConfigs().every((c) => {
      let n = 0;
      for (const v of voterIds(c)) if (this.votes.get(v) === true) n++;
      return n >= electionQuorum(c);
    });
  }

  /** True when the rejections already make the election quorum of some configuration unreachable. */
  private electionLost(): boolean {
    return this.quorumConfigs().some((c) => {
      const voters = voterIds(c);
      let rejected = 0;
      for (const v of voters) if (this.votes.get(v) === false) rejected++;
      return rejected > voters.length - electionQuorum(c);
    });
  }

  /**
   * Whether this node may start a campaign (transfer = after TimeoutNow: service mode does not stop
   * it; nor does it within a window opened by campaignDespiteServiceMode).
   */
  private mayCampaign(transfer: boolean): boolean {
    const me = this.self();
    if (!me || !isLeaderCapable(me) || this.nodeError || this.leadBlock !== null) return false;
    if (voterIds(this.cfg()).length === 0) return false;
    if (!transfer && this.now < this.campaignHoldUntil) return false;
    return transfer || !this.cfg().params.serviceMode || this.now < this.serviceOverrideUntil;
  }

  /**
   * How long a voter waits after hearing a leader before it votes or campaigns: the longest T of
   * the quorum configurations, so that a pending change of the heartbeat settings never shortens it.
   */
  private electionT(): number {
    return Math.max(...this.quorumConfigs().map((c) => electionTimeoutMs(c.params)));
  }

  /** The leader's lease: the shortest of the quorum configurations. */
  private leaseNow(): number {
    return Math.min(...this.quorumConfigs().map((c) => leaseMs(c.params, this.maxDrift)));
  }

  /** Until when a peer's acknowledgement keeps counting for the lease. */
  private ackValidUntil(p: Progress): number {
    return Math.min(p.ackLeaseEnd, p.ackSendTime + this.leaseNow());
  }

  private heardLeaderRecently(now: number): boolean {
    return this.role === 'leader' || now - this.lastLeaderContact < this.electionT();
  }

  private jitter(): number {
    return (this.rand() * this.hb()) / 4;
  }

  private rank(): number {
    const me = this.self();
    return electionRank({ id: this.id, wal: this.wal, priority: me?.priority ?? 0 }, this.cfg(), this.view, this.viewFrom);
  }

  /** Delay before retrying a failed (pre)campaign. */
  private retryDelay(): number {
    return this.hb() * (this.rank() + 1) + this.jitter();
  }

  // ---------------------------------------------------------------- public inputs

  tick(now: number): void {
    this.now = now;
    this.started = true;
    switch (this.role) {
      case 'leader':
        this.tickLeader(now);
        break;
      case 'precandidate':
      case 'candidate':
        this.tickCandidate(now);
        break;
      case 'follower':
        this.tickFollower(now);
        break;
    }
    this.updateWritable(now);
  }

  step(msg: Message, now: number): void {
    this.now = now;
    if (msg.to !== this.id || msg.from === this.id) return;
    // A vote response may carry a more up-to-date config log: adopt it whatever the terms say.
    if ((msg.type === 'prevote_resp' || msg.type === 'vote_resp') && msg.catchUp && (this.role === 'precandidate' || this.role === 'candidate')) {
      this.adoptCatchUp(msg.catchUp, now);
    }
    if (msg.term > this.term) {
      switch (msg.type) {
        case 'prevote':
          break; // never changes our term
        case 'prevote_resp':
          // Granted: the term is our future term. Rejected: the voter is in a newer term; follow it
          // there, or our next prevotes would keep asking for a term the others already passed.
          if (msg.reject) {
            this.becomeFollower(msg.term, 0, now);
            this.updateWritable(now);
            return;
          }
          break;
        case 'vote':
          if (!msg.transfer && this.heardLeaderRecently(now)) {
            this.respondVote(msg, true, 'leader_alive');
            return;
          }
          this.becomeFollower(msg.term, 0, now);
          break;
        case 'app':
        case 'timeout_now':
          this.becomeFollower(msg.term, msg.from, now);
          break;
        case 'vote_resp':
        case 'app_resp':
          this.becomeFollower(msg.term, 0, now);
          break;
      }
    } else if (msg.term < this.term) {
      if (msg.type === 'app') {
        // Tell a stale leader about the newer term so it steps down.
        this.send<AppendRespMsg>({
          type: 'app_resp', from: this.id, to: msg.from, term: this.term, reject: true,
          matchIndex: this.commit, seq: msg.seq, wal: this.wal, state: this.computeState(now),
        });
      } else if (msg.type === 'prevote' || msg.type === 'vote') {
        this.respondVote(msg, true, 'stale_term');
      }
      return;
    }
    switch (msg.type) {
      case 'app':
        this.handleApp(msg, now);
        break;
      case 'app_resp':
        if (this.role === 'leader') this.handleAppResp(msg, now);
        break;
      case 'prevote':
      case 'vote':
        this.handleVoteRequest(msg, now);
        break;
      case 'prevote_resp':
      case 'vote_resp':
        this.handleVoteResp(msg, now);
        break;
      case 'timeout_now':
        this.handleTimeoutNow(msg, now);
        break;
    }
    this.updateWritable(now);
  }

  /** This node's WAL position as last set. */
  walPosition(): WalPos {
    return this.wal;
  }

  setWal(wal: WalPos): void {
    this.wal = { tli: wal.tli, lsn: wal.lsn };
  }

  /**
   * Follower: this node has heard `leader` for `ms` without receiving WAL from it while the
   * leader's PostgreSQL is a primary with WAL this node lacks (0: WAL flows), and could open the
   * PostgreSQL ports of the data nodes `reachable`. Reported in append responses to that leader.
   */
  setNoWal(leader: NodeId, ms: number, reachable: readonly NodeId[]): void {
    this.noWal = { leader, ms: Math.max(0, Math.round(ms)), reach: [...reachable] };
  }

  /**
   * NODE_ERROR on or off. `kept` is where this node's WAL leaves the cluster's history (the fork
   * point on the timeline both share): WAL up to there may hold acknowledged writes, so votes still
   * require it; what lies past it was never the cluster's and does not count.
   */
  setNodeError(on: boolean, kept?: WalPos): void {
    this.keptWal = on ? (kept ?? NO_WAL) : NO_WAL;
    if (this.nodeError === on) return;
    this.nodeError = on;
    if (on && this.role === 'leader') this.stepDown(this.now);
    else if (on && this.role !== 'follower') this.becomeFollower(this.term, 0, this.now);
  }

  /**
   * Whether this node may lead, as the controller sees it: false while nothing would fence its
   * PostgreSQL once it loses the lease (its watchdog process is dead), so that its writes could
   * outlive its leadership. Until it is allowed again the node does not campaign, not even after
   * TimeoutNow (a transfer to it times out), and a leader steps down at once. It still votes.
   */
  setMayLead(allowed: boolean, reason?: string): void {
    this.leadBlock = allowed ? null : reason ?? 'blocked by the controller';
    if (allowed) return;
    if (this.role === 'leader') this.stepDown(this.now);
    else if (this.role !== 'follower') this.becomeFollower(this.term, 0, this.now);
  }

  /** The reason given to setMayLead(false), or null while this node may lead. */
  leadBlockedReason(): string | null {
    return this.leadBlock;
  }

  setLocalFenced(fenced: boolean): void {
    this.localFenced = fenced;
    // A transfer's TimeoutNow waits for the fence (and for the target's WAL, which may be there already).
    if (fenced && this.role === 'leader') this.maybeSendTimeoutNow();
  }

  propose(change: ConfigChange, now: number): ProposeResult {
    this.now = now;
    if (this.role !== 'leader') {
      const hint = this.leaderId !== 0 ? ` (the leader is node ${this.leaderId})` : ' (no leader is known)';
      return { ok: false, code: 'not_leader', message: `node ${this.id} is not the leader${hint}; send the change to the leader` };
    }
    if (this.transfer) {
      return { ok: false, code: 'transfer_in_progress', message: `a leadership transfer to node ${this.transfer.target} is in progress; retry when it ends` };
    }
    if (this.commit < this.noopIndex) {
      return { ok: false, code: 'change_in_progress', message: 'the new leader has not committed its first entry yet; retry shortly' };
    }
    if (this.lastIndex() > this.commit) {
      return { ok: false, code: 'change_in_progress', message: `config change ${this.lastIndex()} is not committed yet; retry when it is` };
    }
    if (changeNamesUnknownNode(this.cfg(), change)) {
      const id = (change as { id: NodeId }).id;
      return { ok: false, code: 'unknown_node', message: `node ${id} is not a member of the cluster` };
    }
    const reason = validateChange(this.cfg(), change);
    if (reason !== null) return { ok: false, code: 'invalid', message: reason };
    const entry: Entry = { index: this.lastIndex() + 1, term: this.term, change };
    this.entries.push(entry);
    this.logDirty = true;
    this.maybeCommitLeader(now);
    this.broadcastIfChanged(now);
    this.updateWritable(now);
    return { ok: true, index: entry.index, term: entry.term };
  }

  transferLeadership(target: NodeId, now: number): ProposeResult {
    this.now = now;
    const refused = this.transferRefusal(target, now);
    if (refused) return refused;
    this.transfer = { target, startedAt: now, lastAppAt: now, timeoutNowSent: false };
    this.localFenced = false;
    this.sendApp(target, now);
    this.updateWritable(now);
    return { ok: true, index: 0, term: this.term };
  }

  /**
   * Why a leadership transfer to `target` would be refused now (null: it would start). Changes
   * nothing: a caller can answer before it starts the transfer.
   */
  transferRefusal(target: NodeId, now: number): (ProposeResult & { ok: false }) | null {
    if (this.role !== 'leader') {
      return { ok: false, code: 'not_leader', message: `node ${this.id} is not the leader; ask the leader to transfer leadership` };
    }
    if (this.transfer) {
      return { ok: false, code: 'transfer_in_progress', message: `a leadership transfer to node ${this.transfer.target} is already in progress` };
    }
    if (target === this.id) return { ok: false, code: 'invalid', message: `node ${target} is already the leader` };
    const node = findNode(this.cfg(), target);
    if (!node) return { ok: false, code: 'unknown_node', message: `node ${target} is not a member of the cluster` };
    if (!isLeaderCapable(node)) {
      return { ok: false, code: 'invalid', message: `node ${target} cannot become leader (${node.mode !== 'regular' ? `it is a ${node.mode} node` : 'can_be_leader is false'})` };
    }
    const losing = this.pendingLeadLoss(target);
    if (losing !== null) return { ok: false, code: 'invalid', message: losing };
    const p = this.progress.get(target);
    if (!p || p.heardAt === null || now - p.heardAt >= this.T()) {
      return { ok: false, code: 'invalid', message: `node ${target} is not reachable from the leader; check that it is running` };
    }
    if (p.state === 'NODE_ERROR' || p.state === 'NODE_ERROR_VOTING') {
      return { ok: false, code: 'invalid', message: `node ${target} is in NODE_ERROR and cannot become leader` };
    }
    return null;
  }

  /**
   * Why an uncommitted config change takes leadership away from `id` (it removes the node or clears
   * its can_be_leader), or null. A transfer to it would elect a leader that the change then removes
   * (another election follows at once) or that leads against the configuration.
   */
  private pendingLeadLoss(id: NodeId): string | null {
    let config = this.cfg();
    for (const e of this.entries) {
      const c = e.change;
      if (c === null || c.type === 'set_meta' || validateChange(config, c) !== null) continue;
      config = applyChange(config, c);
      const node = findNode(config, id);
      const pending = `config change ${e.index} is not committed yet`;
      if (!node) return `node ${id} is being removed from the cluster (${pending}): choose another node`;
      if (!isLeaderCapable(node)) return `node ${id} is losing can_be_leader (${pending}): choose another node`;
    }
    return null;
  }

  campaign(now: number): void {
    this.now = now;
    this.started = true;
    if (this.role === 'leader' || !this.mayCampaign(false)) return;
    this.startPreCampaign(now);
    this.updateWritable(now);
  }

  /**
   * Service mode stops elections, so a cluster that lost its leader while in service mode has no
   * leader left to turn it off. This lets this node campaign despite service mode for two election
   * timeouts: an ordinary election (pre-vote, the voters' leader stickiness and WAL checks all
   * apply), started only when no leader has been heard for an election timeout. Returns why not,
   * or null when the campaign started.
   */
  campaignDespiteServiceMode(now: number): string | null {
    this.now = now;
    this.started = true;
    if (this.role === 'leader') return 'this node is the leader';
    if (this.heardLeaderRecently(now)) return `node ${this.leaderId || 'unknown'} leads: ask it`;
    const me = this.self();
    if (!me || !isLeaderCapable(me)) return 'this node can never be the leader';
    if (this.nodeError) return 'this node is in NODE_ERROR';
    if (this.leadBlock !== null) return `this node may not lead: ${this.leadBlock}`;
    this.serviceOverrideUntil = now + 2 * this.electionT();
    if (!this.mayCampaign(false)) return 'this node may not campaign';
    if (this.role === 'follower') this.startPreCampaign(now);
    this.updateWritable(now);
    return null;
  }

  /**
   * The timeline this leader may promote PostgreSQL to: the newest reservation of its own term and
   * whether it is committed yet. Null when this node is not the leader or reserved nothing in this
   * term. See TIMELINE_META_KEY.
   */
  timelineReservation(): { tli: number; committed: boolean } | null {
    if (this.role !== 'leader') return null;
    for (let i = this.entries.length - 1; i >= 0; i--) {
      const r = reservationOf(this.entries[i]!.change);
      if (r) return r.term === this.term ? { tli: r.tli, committed: this.entries[i]!.index <= this.commit } : null;
    }
    const r = decodeTimelineReservation(this.snap.meta[TIMELINE_META_KEY]);
    return r && r.term === this.term ? { tli: r.tli, committed: true } : null;
  }

  /** The highest timeline number any entry of the log (committed or not) reserved; 0 when none. */
  highestReservedTli(): number {
    let tli = decodeTimelineReservation(this.snap.meta[TIMELINE_META_KEY])?.tli ?? 0;
    for (const e of this.entries) tli = Math.max(tli, reservationOf(e.change)?.tli ?? 0);
    return tli;
  }

  /**
   * Reserve a further timeline for this leader (a second promotion in the same term, or PostgreSQL
   * already past the reserved number): one above every reservation in the log and above `pgTli`.
   */
  reserveTimeline(pgTli: number, now: number): ProposeResult {
    const tli = Math.max(this.highestReservedTli(), pgTli) + 1;
    return this.propose(timelineChange({ tli, term: this.term }), now);
  }

  // ---------------------------------------------------------------- outputs

  hasReady(): boolean {
    return (
      this.msgs.length > 0 ||
      this.hardChanged() ||
      this.logDirty ||
      this.fence !== null ||
      this.committedOut.length > 0 ||
      this.configDirty ||
      !sameSoft(this.soft(), this.lastSoft)
    );
  }

  ready(): Ready {
    const out: {
      hardState?: HardState;
      log?: PersistentLog;
      fenceWal?: FenceWal;
      messages: Message[];
      committed: Entry[];
      config?: ClusterConfig;
      soft?: SoftState;
    } = { messages: this.msgs, committed: this.committedOut };
    if (this.hardChanged()) {
      this.lastHard = this.hardState();
      out.hardState = this.lastHard;
    }
    if (this.logDirty) out.log = this.persistentLog();
    if (this.fence) out.fenceWal = this.fence;
    if (this.configDirty) out.config = this.cfg();
    const soft = this.soft();
    if (!sameSoft(soft, this.lastSoft)) {
      out.soft = soft;
      this.lastSoft = soft;
    }
    this.msgs = [];
    this.committedOut = [];
    this.logDirty = false;
    this.fence = null;
    this.configDirty = false;
    return out;
  }

  soft(): SoftState {
    const s: SoftState = {
      role: this.role,
      term: this.term,
      leaderId: this.leaderId,
      writable: this.role === 'leader' && this.writable,
      state: this.computeState(this.now),
      transferTarget: this.transfer?.target ?? 0,
    };
    return this.transfer?.noWalMs !== undefined ? { ...s, givingWay: true } : s;
  }

  config(): ClusterConfig {
    return this.cfg();
  }

  meta(): Readonly<Record<string, string>> {
    return this.snap.meta;
  }

  peers(): readonly PeerView[] {
    const now = this.now;
    if (this.role === 'leader') return this.leaderView(now);
    const T = this.T();
    const base: PeerView = { id: this.id, wal: this.wal, state: this.computeState(now), lastKnownState: this.computeState(now), sinceLastHbMs: 0, online: true, term: this.term };
    const stalled = this.noWal.ms > 0 && this.noWal.leader === this.leaderId && this.leaderId !== 0;
    const selfView: PeerView = stalled ? { ...base, noWalMs: this.noWal.ms } : base;
    if (this.view.length === 0) {
      return this.cfg().nodes.map((n) =>
        n.id === this.id ? selfView : { id: n.id, wal: NO_WAL, state: 'UNKNOWN', lastKnownState: 'UNKNOWN', sinceLastHbMs: -1, online: false, term: 0 },
      );
    }
    const elapsed = Math.max(0, now - this.viewAt);
    return this.view.map((p) => {
      if (p.id === this.id) return selfView;
      const since = p.sinceLastHbMs >= 0 ? p.sinceLastHbMs + elapsed : -1;
      const online = p.online && since >= 0 && since < T;
      const known = p.state === 'UNKNOWN' ? p.lastKnownState : p.state;
      // A leader of an older version sends no term: 0 (unknown).
      const view: PeerView = { id: p.id, wal: p.wal, state: online ? p.state : 'UNKNOWN', lastKnownState: known, sinceLastHbMs: since, online, term: typeof p.term === 'number' ? p.term : 0 };
      return online && typeof p.noWalMs === 'number' && p.noWalMs > 0 ? { ...view, noWalMs: p.noWalMs } : view;
    });
  }

  persistent(): PersistentState {
    return { hard: this.hardState(), log: this.persistentLog() };
  }

  private hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.commit };
  }

  private hardChanged(): boolean {
    return this.lastHard.term !== this.term || this.lastHard.vote !== this.vote || this.lastHard.commit !== this.commit;
  }

  private persistentLog(): PersistentLog {
    return { snapshot: this.snap, entries: [...this.entries] };
  }

  private send<M extends Message>(msg: M): void {
    this.msgs.push(msg);
  }

  // ---------------------------------------------------------------- BihaState

  private computeState(now: number): BihaState {
    if (!this.started) return 'STARTUP';
    if (!this.self()) return 'CSTATE_FORMING';
    const noLeader = this.leaderId === 0;
    const electing = noLeader && !this.leaderSeenThisTerm;
    if (this.nodeError) return this.vote !== 0 && electing && this.role === 'follower' ? 'NODE_ERROR_VOTING' : 'NODE_ERROR';
    switch (this.role) {
      case 'leader':
        return this.writable ? 'LEADER_RW' : 'LEADER_RO';
      case 'precandidate':
      case 'candidate':
        return 'CANDIDATE';
      case 'follower':
        if (!noLeader) return 'FOLLOWER';
        if (this.vote !== 0 && electing) return 'FOLLOWER_VOTING';
        if (now - this.lastPrevoteGrantAt < this.T()) return 'FOLLOWER_OFFERED';
        return 'FOLLOWER';
    }
  }

  // ---------------------------------------------------------------- role transitions

  private becomeFollower(term: number, leader: NodeId, now: number): void {
    if (term < this.term) throw new RaftError('invalid_transition', `node ${this.id} cannot follow term ${term} from term ${this.term}`);
    if (term > this.term) {
      this.term = term;
      this.vote = 0;
      this.leaderSeenThisTerm = false;
    }
    if (leader !== 0) this.leaderSeenThisTerm = true;
    if (this.role === 'leader') {
      this.view = this.leaderView(now);
      this.viewFrom = this.id;
      this.viewAt = now;
      // It heard a leader (itself) until now: wait T before voting or campaigning without transfer.
      this.lastLeaderContact = now;
    }
    this.role = 'follower';
    this.leaderId = leader;
    this.transfer = null;
    this.progress.clear();
    this.seqSent.clear();
    this.writable = false;
    this.votes.clear();
    this.electionAt = null;
  }

  /** A leader gives up (CheckQuorum, NODE_ERROR, removal). */
  private stepDown(now: number): void {
    this.becomeFollower(this.term, 0, now);
  }

  private startPreCampaign(now: number): void {
    if (this.role === 'leader') throw new RaftError('invalid_transition', 'a leader cannot start a pre-campaign');
    this.role = 'precandidate';
    this.leaderId = 0;
    this.electionAt = null;
    this.votes = new Map();
    this.campaignDeadline = now + this.retryDelay();
    if (this.canVoteHere()) this.votes.set(this.id, true);
    this.sendVoteRequests('prevote', this.term + 1, false);
    if (this.electionWon()) this.becomeCandidate(now, false);
  }

  private becomeCandidate(now: number, transfer: boolean): void {
    if (this.role === 'leader') throw new RaftError('invalid_transition', 'a leader cannot become candidate');
    this.term += 1;
    this.leaderSeenThisTerm = false;
    this.vote = this.canVoteHere() ? this.id : 0;
    this.role = 'candidate';
    this.leaderId = 0;
    this.electionAt = null;
    this.votes = new Map();
    this.campaignDeadline = now + 2 * this.hb();
    // A candidate must not keep acknowledging WAL of a leader of an older term.
    this.fence = { term: this.term };
    if (this.vote === this.id) this.votes.set(this.id, true);
    this.sendVoteRequests('vote', this.term, transfer);
    if (this.electionWon()) this.becomeLeader(now);
  }

  private becomeLeader(now: number): void {
    if (this.role !== 'candidate') throw new RaftError('invalid_transition', `node ${this.id} cannot become leader from ${this.role}`);
    this.role = 'leader';
    this.leaderId = this.id;
    this.serviceOverrideUntil = Number.NEGATIVE_INFINITY;
    this.leaderSeenThisTerm = true;
    this.followedTerm = this.term;
    this.transfer = null;
    this.localFenced = false;
    this.leaderSince = now;
    // A new leader does not give way for want of WAL before its followers had no_wal_on_follower
    // to receive WAL from it (anti-flap).
    this.giveWayNotBefore = now + this.cfg().params.noWalOnFollower;
    this.lastHbAt = Number.NEGATIVE_INFINITY;
    this.seqSent.clear();
    this.progress.clear();
    this.votes.clear();
    for (const n of this.cfg().nodes) {
      if (n.id === this.id) continue;
      // Until it answers, a peer's term is the one the previous leader last reported for it.
      const seen = this.view.find((v) => v.id === n.id);
      this.progress.set(n.id, { ...this.newProgress(this.lastIndex() + 1), term: typeof seen?.term === 'number' ? seen.term : 0 });
    }
    // The first entry of this term: once it commits, every earlier entry is committed too (Raft
    // §5.4.2). It reserves the timeline this leader will promote PostgreSQL to, so the reservation
    // costs no extra round trip.
    const tli = Math.max(this.highestReservedTli(), this.wal.tli) + 1;
    const noop: Entry = { index: this.lastIndex() + 1, term: this.term, change: timelineChange({ tli, term: this.term }) };
    this.entries.push(noop);
    this.noopIndex = noop.index;
    this.logDirty = true;
    this.maybeCommitLeader(now);
    this.broadcastIfChanged(now);
  }

  private newProgress(next: number): Progress {
    return {
      match: 0, next, heardAt: null, ackSendTime: Number.NEGATIVE_INFINITY, ackLeaseEnd: Number.NEGATIVE_INFINITY,
      wal: NO_WAL, state: 'UNKNOWN', term: 0, noWalMs: 0, pgReach: [],
    };
  }

  private sendVoteRequests(type: 'prevote' | 'vote', term: number, transfer: boolean): void {
    const me = this.self();
    for (const v of this.allVoters()) {
      if (v === this.id) continue;
      this.send<VoteMsg>({
        type, from: this.id, to: v, term, lastIndex: this.lastIndex(), lastTerm: this.lastTerm(),
        wal: this.wal, priority: me?.priority ?? 0, transfer,
      });
    }
  }


  // ---------------------------------------------------------------- ticks

  private tickFollower(now: number): void {
    if (this.leaderId !== 0 && now - this.lastLeaderContact >= this.electionT()) this.leaderId = 0;
    if (!this.mayCampaign(false)) {
      this.electionAt = null;
      return;
    }
    const voters = voterIds(this.cfg());
    if (voters.length === 1 && voters[0] === this.id) {
      // Sole voter: nobody else can elect a leader, so there is nothing to wait for.
      this.startPreCampaign(now);
      return;
    }
    if (this.electionAt === null) {
      const base = Math.max(this.lastLeaderContact, this.startedAt) + this.electionT();
      if (now < base) return;
      this.electionAt = base + this.rank() * this.hb() + this.jitter();
    }
    if (now >= this.electionAt) this.startPreCampaign(now);
  }

  private tickCandidate(now: number): void {
    if (now < this.campaignDeadline) return;
    if (this.role === 'precandidate' && this.mayCampaign(false)) {
      this.startPreCampaign(now);
      return;
    }
    // A real candidacy that did not win within 2 heartbeats (or a pre-campaign that may no longer
    // run): back to follower, retry later.
    this.becomeFollower(this.term, 0, now);
    this.electionAt = now + this.retryDelay();
  }

  private tickLeader(now: number): void {
    const T = this.electionT();
    // CheckQuorum: step down when the voters we have not heard from within T could elect a leader
    // on their own (under any quorum configuration).
    const couldElect = this.quorumConfigs().some((c) => {
      let unheard = 0;
      for (const v of voterIds(c)) {
        if (v === this.id) continue;
        const p = this.progress.get(v);
        // A member added during this term that has never answered yet (its data is still being
        // copied) cannot have learned the configuration from anyone but us: it does not count.
        // The lease, not CheckQuorum, is what keeps writes safe meanwhile.
        if (p?.joining && p.heardAt === null) continue;
        const heard = p?.heardAt ?? this.leaderSince;
        if (now - heard >= T) unheard++;
      }
      return unheard > 0 && unheard >= electionQuorum(c);
    });
    if (couldElect) {
      this.stepDown(now);
      return;
    }
    if (this.transfer) {
      const tr = this.transfer;
      if (now - tr.startedAt >= Math.max(this.T(), MIN_TRANSFER_TIMEOUT_MS)) {
        if (tr.timeoutNowSent) {
          // The target may be campaigning (or its vote requests may still arrive): voters grant
          // transfer votes without leader stickiness, so no acknowledgement can protect a resumed
          // lease. Fall back to a normal election; this node, fenced and with the most WAL,
          // usually wins it again.
          this.stepDown(now);
          return;
        }
        // timeout_now never left: nobody campaigns for this transfer, resume leading.
        this.transfer = null;
        this.localFenced = false;
      } else {
        if (now - tr.lastAppAt >= TRANSFER_APP_INTERVAL_MS) this.sendApp(tr.target, now);
        this.maybeSendTimeoutNow();
      }
    }
    if (now - this.lastHbAt >= this.hb()) this.broadcastApp(now);
    this.maybeGiveWay(now);
    this.maybeGiveVote(now);
    for (const [seq, sent] of this.seqSent) {
      if (sent.at + sent.lease >= now) break;
      this.seqSent.delete(seq);
    }
  }

  /**
   * Giving way (synchronous mode): when no commit can be acknowledged because too few followers
   * receive this leader's WAL, and one has received none for no_wal_on_follower while it heard the
   * heartbeats, start a leadership transfer to the follower decideGiveWay picks. The transfer then
   * runs as any other: PostgreSQL fenced first (localFenced), TimeoutNow, a normal election. Not in
   * service mode, not while a transfer or a config change runs, not before giveWayNotBefore.
   */
  private maybeGiveWay(now: number): void {
    const params = this.cfg().params;
    if (this.transfer || !this.writable || params.serviceMode || now < this.giveWayNotBefore) return;
    if (params.syncStandbys <= 0 || params.noWalOnFollower <= 0) return;
    if (this.commit < this.noopIndex || this.lastIndex() > this.commit) return;
    const T = this.T();
    const followers: GiveWayFollower[] = [];
    for (const n of this.cfg().nodes) {
      if (n.id === this.id) continue;
      const p = this.progress.get(n.id);
      if (!p) continue;
      const inError = p.state === 'NODE_ERROR' || p.state === 'NODE_ERROR_VOTING';
      const live = p.heardAt !== null && now - p.heardAt < T && !inError;
      followers.push({ node: n, live, inError, wal: p.wal, noWalMs: p.noWalMs, pgReach: p.pgReach, mayLead: live && this.transferRefusal(n.id, now) === null, votes: votesNow(n) });
    }
    const d = decideGiveWay(params, electionQuorum(this.cfg()), followers);
    if (!d.give) return;
    // Whatever comes of it, not again before another no_wal_on_follower.
    this.giveWayNotBefore = now + params.noWalOnFollower;
    this.transfer = { target: d.target, startedAt: now, lastAppAt: now, timeoutNowSent: false, noWalMs: d.noWalMs };
    this.localFenced = false;
    this.sendApp(d.target, now);
    this.updateWritable(now);
  }

  /**
   * The leadership transfer in progress when it gives way for want of WAL (maybeGiveWay): its target
   * and the longest time a follower reported without WAL. Null otherwise.
   */
  givingWay(): { target: NodeId; noWalMs: number } | null {
    const tr = this.transfer;
    return this.role === 'leader' && tr && tr.noWalMs !== undefined ? { target: tr.target, noWalMs: tr.noWalMs } : null;
  }

  /**
   * Give a learner its vote once it is ready to use it: heard within T, holding every committed
   * entry, following (not in NODE_ERROR) and, when it has data, reporting WAL on this leader's
   * timeline (its PostgreSQL runs a copy of it). One change at a time, like every other; a pending
   * change or transfer waits.
   */
  private maybeGiveVote(now: number): void {
    if (this.transfer || this.commit < this.noopIndex || this.lastIndex() > this.commit) return;
    const T = this.T();
    for (const n of this.cfg().nodes) {
      if (n.learner !== true || !n.canVote) continue;
      const p = this.progress.get(n.id);
      if (!p || p.heardAt === null || now - p.heardAt >= T || p.match < this.commit || p.state !== 'FOLLOWER') continue;
      if (n.mode !== 'referee' && p.wal.tli !== this.wal.tli) continue;
      this.propose({ type: 'give_vote', id: n.id }, now);
      return;
    }
  }

  private updateWritable(now: number): void {
    if (this.role !== 'leader' || this.transfer) {
      this.writable = false;
      return;
    }
    this.writable = this.quorumConfigs().every((c) => {
      let live = 1; // the leader itself
      for (const v of voterIds(c)) {
        const p = v === this.id ? undefined : this.progress.get(v);
        if (p && now < this.ackValidUntil(p)) live++;
      }
      return live >= c.params.minnodes;
    });
  }

  /**
   * When the leader's lease ends if no further acknowledgement arrives (same clock as `now`), or
   * null when this node is not a writable leader. With minnodes <= 1 the lease never depends on
   * acknowledgements: it is then renewed for one lease length from `now` at every call, so that a
   * watchdog still fences PostgreSQL once nobody renews it.
   */
  leaseExpiresAt(now: number): number | null {
    if (this.role !== 'leader' || !this.writable) return null;
    const lease = this.leaseNow();
    let until = Number.POSITIVE_INFINITY;
    for (const c of this.quorumConfigs()) {
      const need = c.params.minnodes - 1;
      if (need <= 0) {
        until = Math.min(until, now + lease);
        continue;
      }
      const ends: number[] = [];
      for (const v of voterIds(c)) {
        const p = v === this.id ? undefined : this.progress.get(v);
        if (p) ends.push(this.ackValidUntil(p));
      }
      ends.sort((a, b) => b - a);
      const kth = ends[need - 1];
      until = Math.min(until, kth === undefined ? now : kth);
    }
    return Number.isFinite(until) ? until : null;
  }

  // ---------------------------------------------------------------- leader: replication

  private leaderView(now: number): PeerView[] {
    const T = this.T();
    return this.cfg().nodes.map((n): PeerView => {
      if (n.id === this.id) {
        const st = this.computeState(now);
        return { id: n.id, wal: this.wal, state: st, lastKnownState: st, sinceLastHbMs: 0, online: true, term: this.term };
      }
      const p = this.progress.get(n.id);
      if (!p || p.heardAt === null) {
        return { id: n.id, wal: p?.wal ?? NO_WAL, state: 'UNKNOWN', lastKnownState: p?.state ?? 'UNKNOWN', sinceLastHbMs: -1, online: false, term: p?.term ?? 0 };
      }
      const since = now - p.heardAt;
      const online = since < T;
      const view: PeerView = { id: n.id, wal: p.wal, state: online ? p.state : 'UNKNOWN', lastKnownState: p.state, sinceLastHbMs: since, online, term: p.term };
      return online && p.noWalMs > 0 ? { ...view, noWalMs: p.noWalMs } : view;
    });
  }

  /** Broadcast unless an identical broadcast (same time, log and commit) already went out. */
  private broadcastIfChanged(now: number): void {
    if (this.role !== 'leader') return;
    if (this.lastBroadcast === `${now}:${this.lastIndex()}:${this.commit}`) return;
    this.broadcastApp(now);
  }

  private broadcastApp(now: number): void {
    this.lastHbAt = now;
    this.lastBroadcast = `${now}:${this.lastIndex()}:${this.commit}`;
    const seq = this.nextSeq(now);
    const peers = this.leaderView(now);
    for (const id of this.progress.keys()) this.send(this.buildApp(id, seq, peers));
  }

  private sendApp(to: NodeId, now: number): void {
    if (this.transfer?.target === to) this.transfer.lastAppAt = now;
    this.send(this.buildApp(to, this.nextSeq(now), this.leaderView(now)));
  }

  private nextSeq(now: number): number {
    this.seq += 1;
    this.seqSent.set(this.seq, { at: now, commit: this.commit, lease: this.leaseNow() });
    return this.seq;
  }

  private buildApp(to: NodeId, seq: number, peers: readonly PeerView[]): AppendMsg {
    const p = this.progress.get(to);
    const next = Math.min(p?.next ?? this.lastIndex() + 1, this.lastIndex() + 1);
    let prevIndex = next - 1;
    let snapshot: Snapshot | undefined;
    if (prevIndex < this.snap.index) {
      snapshot = this.snap;
      prevIndex = this.snap.index;
    }
    const entries = this.entries.filter((e) => e.index > prevIndex);
    const msg: AppendMsg = {
      type: 'app', from: this.id, to, term: this.term,
      prevIndex, prevTerm: this.termAt(prevIndex) ?? 0,
      entries, commit: this.commit, seq, peers, wal: this.wal,
      ...(this.transfer?.target === to && !this.transfer.timeoutNowSent ? { transfer: true } : {}),
    };
    // Optimistic replication: assume the peer will store what we sent. If it does not (lost
    // message, diverging log), its reject carries a hint and we go back from there.
    if (p) p.next = prevIndex + entries.length + 1;
    return snapshot ? { ...msg, snapshot } : msg;
  }

  private handleAppResp(msg: AppendRespMsg, now: number): void {
    const p = this.progress.get(msg.from);
    if (!p) return;
    p.heardAt = now;
    p.wal = msg.wal;
    p.state = msg.state;
    p.term = msg.term;
    p.noWalMs = typeof msg.noWalMs === 'number' && msg.noWalMs > 0 ? msg.noWalMs : 0;
    p.pgReach = p.noWalMs > 0 && Array.isArray(msg.pgReach) ? msg.pgReach.filter((x) => Number.isInteger(x)) : [];
    // An acknowledgement counts for the lease only when the peer matched the log up to the commit
    // index sent with it: it then runs (at least) the configuration the lease was computed from,
    // so it waits at least that T before voting.
    const sent = this.seqSent.get(msg.seq);
    if (sent && !msg.reject && msg.matchIndex >= sent.commit && sent.at > p.ackSendTime) {
      p.ackSendTime = sent.at;
      p.ackLeaseEnd = sent.at + sent.lease;
    }
    if (msg.reject) {
      const next = Math.max(1, p.match + 1, Math.min(msg.matchIndex + 1, this.lastIndex() + 1));
      if (next < p.next) {
        p.next = next;
        this.sendApp(msg.from, now);
      }
    } else {
      if (msg.matchIndex > p.match) p.match = Math.min(msg.matchIndex, this.lastIndex());
      if (p.next < p.match + 1) p.next = p.match + 1;
      this.maybeCommitLeader(now);
    }
    if (this.role === 'leader' && this.transfer?.target === msg.from) this.maybeSendTimeoutNow();
  }

  private maybeSendTimeoutNow(): void {
    const tr = this.transfer;
    if (!tr || tr.timeoutNowSent || !this.localFenced) return;
    const p = this.progress.get(tr.target);
    if (!p || p.heardAt === null) return;
    // Giving way: the target cannot receive this leader's WAL, but it must hold at least the WAL of
    // every follower (one of them may have acknowledged a commit). Otherwise it must have all of ours.
    if (tr.noWalMs !== undefined) {
      for (const [id, q] of this.progress) {
        if (id === tr.target || q.state === 'NODE_ERROR' || q.state === 'NODE_ERROR_VOTING' || findNode(this.cfg(), id)?.mode !== 'regular') continue;
        if (compareWal(p.wal, q.wal) < 0) return;
      }
    } else if (compareWal(p.wal, this.wal) < 0) return;
    tr.timeoutNowSent = true;
    if (tr.noWalMs !== undefined) this.campaignHoldUntil = this.now + Math.max(this.cfg().params.noWalOnFollower, this.electionT());
    this.send<TimeoutNowMsg>({ type: 'timeout_now', from: this.id, to: tr.target, term: this.term });
  }

  private maybeCommitLeader(now: number): void {
    const configs = this.quorumConfigs();
    for (let idx = this.lastIndex(); idx > this.commit; idx--) {
      // Only entries of the current term commit by counting (Raft §5.4.2).
      if (this.termAt(idx) !== this.term) break;
      const stored = configs.every((c) => {
        let n = 0;
        for (const v of voterIds(c)) {
          if (v === this.id || (this.progress.get(v)?.match ?? 0) >= idx) n++;
        }
        return n >= commitQuorum(c);
      });
      if (stored) {
        this.commitTo(idx);
        this.afterApply(now);
        break;
      }
    }
  }

  // ---------------------------------------------------------------- follower: replication

  private handleApp(msg: AppendMsg, now: number): void {
    if (this.role === 'leader') {
      // Two leaders of one term can only exist when nquorum allows split brain; the better
      // placed one keeps leading so that the pair converges.
      const theirs = { id: msg.from, wal: msg.wal, priority: findNode(this.cfg(), msg.from)?.priority ?? 0 };
      const mine = { id: this.id, wal: this.wal, priority: this.self()?.priority ?? 0 };
      if (!rankBetter(theirs, mine)) return;
      this.becomeFollower(msg.term, msg.from, now);
    } else if (this.role !== 'follower') {
      this.becomeFollower(msg.term, msg.from, now);
    }
    this.leaderId = msg.from;
    this.leaderSeenThisTerm = true;
    this.lastLeaderContact = now;
    this.electionAt = null;
    this.followedTerm = msg.term;
    this.view = msg.peers;
    this.viewFrom = msg.from;
    this.viewAt = now;
    this.noteSeenWal(msg);

    const stalled = this.noWal.leader === msg.from && this.noWal.ms > 0;
    const reply = (reject: boolean, matchIndex: number): void => {
      const out: AppendRespMsg = {
        type: 'app_resp', from: this.id, to: msg.from, term: this.term, reject, matchIndex,
        seq: msg.seq, wal: this.wal, state: this.computeState(now),
      };
      this.send<AppendRespMsg>(stalled ? { ...out, noWalMs: this.noWal.ms, pgReach: this.noWal.reach } : out);
    };

    if (msg.snapshot && msg.snapshot.index > this.commit) this.installSnapshot(msg.snapshot, now);

    const prevIndex = msg.prevIndex;
    if (prevIndex > this.lastIndex()) {
      reply(true, this.lastIndex());
      return;
    }
    if (prevIndex > this.snap.index && this.termAt(prevIndex) !== msg.prevTerm) {
      reply(true, this.commit);
      return;
    }
    for (const e of msg.entries) {
      if (e.index <= this.snap.index) continue;
      const have = this.termAt(e.index);
      if (have === e.term) continue;
      if (have !== undefined) {
        if (e.index <= this.commit) throw new RaftError('invalid_state', `leader ${msg.from} conflicts with committed entry ${e.index}`);
        this.entries = this.entries.filter((x) => x.index < e.index);
      }
      if (e.index !== this.lastIndex() + 1) break; // not contiguous: wait for a resend
      this.entries.push(e);
      this.logDirty = true;
    }
    const lastNew = Math.min(prevIndex + msg.entries.length, this.lastIndex());
    const newCommit = Math.min(msg.commit, lastNew);
    if (newCommit > this.commit) {
      this.commitTo(newCommit);
      this.afterApply(now);
    }
    reply(false, lastNew);
  }

  private installSnapshot(s: Snapshot, now: number): void {
    const before = JSON.stringify(this.cfg());
    this.entries = this.termAt(s.index) === s.term ? this.entries.filter((e) => e.index > s.index) : [];
    this.snap = s;
    this.commit = s.index;
    this.logDirty = true;
    if (JSON.stringify(s.config) !== before) this.configDirty = true;
    this.afterApply(now);
  }

  /** Fold the entries up to `index` into the snapshot: apply them in order, keep the log small. */
  private commitTo(index: number): void {
    const applied = this.entries.filter((e) => e.index <= index);
    let config = this.snap.config;
    let meta = this.snap.meta;
    for (const e of applied) {
      const c = e.change;
      if (c === null) continue;
      if (c.type === 'set_meta') {
        meta = { ...meta, [c.key]: c.value };
        continue;
      }
      // Every node applies the same entries to the same config, so a change that does not apply
      // is skipped identically everywhere; it was validated against this config when proposed.
      if (validateChange(config, c) !== null) continue;
      config = applyChange(config, c);
      this.configDirty = true;
    }
    const last = applied[applied.length - 1];
    this.snap = { index, term: last ? last.term : this.snap.term, config, meta };
    this.entries = this.entries.filter((e) => e.index > index);
    this.commit = index;
    this.logDirty = true;
    this.committedOut.push(...applied);
  }

  /** Effects of a newly committed configuration. */
  private afterApply(now: number): void {
    const cfg = this.cfg();
    if (this.role !== 'leader') {
      if (!this.self() && this.role !== 'follower') this.becomeFollower(this.term, 0, now);
      return;
    }
    // Let followers learn the new commit index at once (removed nodes included: that is how they
    // learn they were removed), then start replicating to added nodes (from the snapshot).
    this.broadcastApp(now);
    for (const id of [...this.progress.keys()]) {
      if (!findNode(cfg, id)) this.progress.delete(id);
    }
    for (const n of cfg.nodes) {
      if (n.id !== this.id && !this.progress.has(n.id)) {
        this.progress.set(n.id, { ...this.newProgress(1), joining: true });
        this.sendApp(n.id, now);
      }
    }
    if (this.transfer && !findNode(cfg, this.transfer.target)) {
      this.transfer = null;
      this.localFenced = false;
    }
    if (!this.self()) this.stepDown(now);
  }

  // ---------------------------------------------------------------- elections: voter side

  private respondVote(msg: VoteMsg, reject: boolean, reason: string | undefined): void {
    const type = msg.type === 'prevote' ? 'prevote_resp' : 'vote_resp';
    // A granted prevote answers in the term asked for; everything else in our own term.
    const term = !reject && msg.type === 'prevote' ? msg.term : this.term;
    const out: VoteRespMsg = { type, from: this.id, to: msg.from, term, reject };
    let full: VoteRespMsg = reason === undefined ? out : { ...out, reason };
    if (reject && !logAtLeast({ index: msg.lastIndex, term: msg.lastTerm }, { index: this.lastIndex(), term: this.lastTerm() })) {
      full = { ...full, catchUp: this.persistentLog() };
    }
    this.send(full);
  }

  /**
   * Votes are granted on config log and WAL whether or not this node knows it is a voter, as in
   * etcd: a member added or promoted by a change it has not received yet must still vote, or a
   * cluster whose election quorum needs it never elects again (scenario `join-voter`). Safety
   * lies with the candidate, which counts only the voters of its own configurations. A removed
   * node answers too; only a candidate that still lists it (its removal is not committed there)
   * asks it and counts it.
   */
  private handleVoteRequest(msg: VoteMsg, now: number): void {
    const reject = (reason: string): void => this.respondVote(msg, true, reason);
    if (msg.type === 'prevote' && msg.term <= this.term) return reject('stale_term');
    const theirs = { index: msg.lastIndex, term: msg.lastTerm };
    const mine = { index: this.lastIndex(), term: this.lastTerm() };
    if (!this.candidateEligible(msg.from, !logAtLeast(mine, theirs))) return reject('candidate_not_eligible');
    if (!msg.transfer && this.heardLeaderRecently(now)) return reject('leader_alive');
    if (!logAtLeast(theirs, mine)) return reject('config_log_behind');
    if (compareWal(msg.wal, this.voteWalFloor()) < 0) return reject('wal_behind');
    if (msg.type === 'vote' && this.vote !== 0 && this.vote !== msg.from) return reject('already_voted');
    // A term whose leader this node already follows needs no vote: a late request of that leader's
    // own candidacy would otherwise be granted on a WAL position polled before following it.
    if (msg.type === 'vote' && this.vote === 0 && this.leaderId !== 0) return reject('leader_known');

    if (msg.type === 'prevote') {
      this.lastPrevoteGrantAt = now;
      this.respondVote(msg, false, undefined);
      return;
    }
    if (this.role !== 'follower') this.becomeFollower(this.term, 0, now);
    this.vote = msg.from;
    // Votes fence WAL: stop acknowledging the old leader's WAL before this vote leaves.
    if (msg.term > this.followedTerm) this.fence = { term: msg.term, candidateWal: msg.wal };
    // Give the candidate time to win before campaigning ourselves.
    if (this.mayCampaign(false)) this.electionAt = now + 2 * this.hb() + this.rank() * this.hb() + this.jitter();
    this.respondVote(msg, false, undefined);
  }

  /**
   * Whether a candidate may lead as far as this node can tell. Its record in the committed
   * configuration decides (the mode never changes, can_be_leader only by a committed change), else
   * its record in the latest configuration of the log (its add_node is not committed yet). A
   * candidate found in neither is refused, unless its config log is ahead of ours: it then holds
   * changes we have not seen, one of which may have added it (scenario `join-candidate`; a node
   * without any configuration knows nobody), and it checked its own eligibility against them.
   */
  private candidateEligible(id: NodeId, candidateLogAhead: boolean): boolean {
    const node = findNode(this.cfg(), id) ?? findNode(this.latestConfig(), id);
    if (node) return isLeaderCapable(node);
    return candidateLogAhead;
  }

  /**
   * The WAL a candidate needs for this node's vote. A regular node: its own, unless it is in
   * NODE_ERROR: its WAL left the cluster's history (it diverged, or its rewind failed), what it
   * holds past the fork was never acknowledged by the cluster (it confirms no synchronous commit),
   * so it must not keep the healthy nodes from electing a leader. A referee of either kind: the
   * mark of noteSeenWal.
   *
   * A node whose configuration does not list it (added by a change it has not received, or
   * removed) does not know its mode. It takes the higher of its own WAL and its mark: it cannot
   * tell whether its WAL carries acknowledged commits (a removed data node may have been a
   * synchronous standby until the removal), so it assumes it may. A referee without PostgreSQL
   * has no WAL, so that is its mark alone. The cost: a new referee_with_wal that has not heard the
   * leader yet may refuse a data candidate lagging behind its copy, which the mark rule avoids.
   */
  private voteWalFloor(): WalPos {
    // A node in NODE_ERROR left the cluster's history (its WAL diverged, or its rewind failed):
    // what it holds past the fork was never acknowledged by the cluster (it confirms no synchronous
    // commit), so only its WAL up to the fork point counts.
    const own = this.nodeError ? this.keptWal : this.wal;
    const mode = this.self()?.mode;
    if (mode === 'regular') return own;
    if (mode !== undefined) return this.seenWal;
    return compareWal(own, this.seenWal) >= 0 ? own : this.seenWal;
  }

  /**
   * A referee has no WAL of its own, and a referee_with_wal's WAL never decides anything (it cannot
   * lead and is no synchronous standby), so they vote on the WAL they have seen in the leader's
   * heartbeats: the highest position any online regular follower not in NODE_ERROR reported, and,
   * in asynchronous mode while the leader has no such follower, the leader's own position (it
   * then acknowledges commits that exist on it alone). docs/architecture.md, "Referees".
   */
  private noteSeenWal(msg: AppendMsg): void {
    const cfg = this.cfg();
    if (this.self()?.mode === 'regular') return;
    let follower = false;
    for (const p of msg.peers) {
      if (p.id === msg.from || !p.online || p.state.startsWith('NODE_ERROR') || findNode(cfg, p.id)?.mode !== 'regular') continue;
      follower = true;
      if (compareWal(p.wal, this.seenWal) > 0) this.seenWal = p.wal;
    }
    if (!follower && cfg.params.syncStandbys === 0 && compareWal(msg.wal, this.seenWal) > 0) this.seenWal = msg.wal;
  }

  // ---------------------------------------------------------------- elections: candidate side

  private handleVoteResp(msg: VoteRespMsg, now: number): void {
    if (!this.allVoters().includes(msg.from)) return;
    if (msg.type === 'prevote_resp') {
      if (this.role !== 'precandidate' || msg.term !== this.term + 1) return;
      this.votes.set(msg.from, !msg.reject);
      if (this.electionWon()) this.becomeCandidate(now, false);
      return;
    }
    if (this.role !== 'candidate' || msg.term !== this.term) return;
    this.votes.set(msg.from, !msg.reject);
    if (this.electionWon()) {
      this.becomeLeader(now);
      return;
    }
    if (this.electionLost()) {
      this.becomeFollower(this.term, 0, now);
      this.electionAt = now + this.retryDelay();
    }
  }

  /**
   * A voter whose config log is ahead of ours sent it. A log that is more up to date contains every
   * committed entry of a less up-to-date one, so replacing ours loses nothing and lets a candidate
   * that is ahead in WAL satisfy voters that are ahead in config log.
   */
  private adoptCatchUp(log: PersistentLog, now: number): void {
    const theirs = lastOfLog(log);
    const mine = { index: this.lastIndex(), term: this.lastTerm() };
    if (!logAtLeast(theirs, mine) || (theirs.index === mine.index && theirs.term === mine.term)) return;
    try {
      checkLog(log);
    } catch {
      return;
    }
    const oldCommit = this.commit;
    const before = JSON.stringify(this.cfg());
    this.snap = log.snapshot;
    this.entries = [...log.entries];
    this.commit = log.snapshot.index;
    this.logDirty = true;
    if (oldCommit > this.commit) {
      this.commitTo(Math.min(oldCommit, this.lastIndex()));
      // Entries up to oldCommit were applied before; do not hand them to the driver twice.
      this.committedOut = this.committedOut.filter((e) => e.index > oldCommit);
    }
    if (JSON.stringify(this.cfg()) !== before) this.configDirty = true;
    this.afterApply(now);
  }

  private handleTimeoutNow(msg: TimeoutNowMsg, now: number): void {
    if (this.role !== 'follower' || (this.leaderId !== 0 && this.leaderId !== msg.from)) return;
    if (!this.mayCampaign(true)) return;
    this.becomeCandidate(now, true);
  }
}

