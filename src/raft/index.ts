// Public API of the pure raft core (see docs/raft.md).
export * from './types.js';
export {
  DEFAULT_PARAMS,
  PARAM_RANGES,
  bootstrapState,
  joiningState,
  applyChange,
  validateChange,
  splitBrainWarning,
  zeroLoss,
  zeroLossViolation,
  electionQuorum,
  commitQuorum,
  voterIds,
  votesNow,
  asLearner,
  isLeaderCapable,
  findNode,
  isMember,
  TIMELINE_META_KEY,
  encodeTimelineReservation,
  decodeTimelineReservation,
  timelineChange,
  reservationOf,
} from './config.js';
export type { TimelineReservation } from './config.js';
export type { ZeroLoss } from './config.js';
export {
  DEFAULT_MAX_DRIFT,
  compareWal,
  electionTimeoutMs,
  leaseMs,
  leaseMarginMs,
  electionRank,
  rankBetter,
} from './timing.js';
export type { RankEntry } from './timing.js';
export { RaftError } from './errors.js';
export { decideGiveWay } from './giveway.js';
export type { GiveWayDecision, GiveWayFollower } from './giveway.js';
export type { RaftErrorCode } from './errors.js';
export { RaftNode, TRANSFER_APP_INTERVAL_MS } from './node.js';
