// Public API of the deterministic cluster simulator (see docs/simulator.md).
export { Simulation } from './cluster.js';
export type { RunResult, RunStats } from './cluster.js';
export { InvariantChecker, INVARIANTS, walBefore } from './invariants.js';
export type { AckedWrite, InvariantId, LeaderWal, Violation } from './invariants.js';
export { Network, CALM_NETWORK, MAX_NODE_ID } from './network.js';
export type { Channel, NetQuality } from './network.js';
export {
  simOptions, defaultMode, defaultScenario, majority, syncStandbysFor, MIN_NODES, MAX_NODES, SCENARIOS, SYNC_MODES,
} from './options.js';
export type { Scenario, SimOptions, SyncMode } from './options.js';
export { Prng, mixSeed } from './prng.js';
export { runSeed, runBatch, summaryLine, addRun, emptySummary } from './run.js';
export type { BatchSummary, RunOptions } from './run.js';
export { TraceHash } from './trace.js';
export type { TraceSink } from './trace.js';
export { WalLog, FIRST_TLI } from './wal.js';
