// The node's own files under PGDATA/pg_biha: identity (biha.conf) and raft + error state (biha.state).
// Both are versioned, atomic, fsynced and checksummed (statefile.ts); a corrupt one stops the node.
// While the controller runs, only its state store (store.ts) writes them.
//
// While a rewind is in progress (its marker exists in the save directory beside PGDATA), the
// node's own copies are in the save directory: pg_rewind may have put another node's files into
// PGDATA/pg_biha. The readers here follow the marker, so bihactl reads the right identity even
// then; the controller puts PGDATA/pg_biha back when it starts (pg/rewindsave.ts).
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { NodeMode, PersistentState } from '../../raft/index.js';
import { readStateFile, writeStateFile } from './statefile.js';

export const BIHA_DIR = 'pg_biha';
export const CONF_VERSION = 1;
export const STATE_VERSION = 1;

/** pg_biha/biha.conf: who this node is and how it reaches the cluster. Written by init/add. */
export interface NodeConf {
  readonly clusterId: string;
  readonly nodeId: number;
  readonly host: string;
  /** PostgreSQL port (0 for a referee). */
  readonly port: number;
  readonly bihaPort: number;
  readonly httpPort: number;
  /**
   * Address the HTTP server listens on (bihactl init/add --http-host; default the node's --host).
   * Absent in files written before the option existed: BIHA_LISTEN_HOST or 0.0.0.0, as then.
   */
  readonly httpHost?: string;
  /** Serve the HTTP port over TLS with the control channel's certificate (--http-tls); absent = false. */
  readonly httpTls?: boolean;
  readonly mode: NodeMode;
  /** Accepted cluster secrets; [0] is current. */
  readonly secrets: readonly string[];
  /** Members to contact first (from the magic string), until the committed config lists them. */
  readonly seeds: ReadonlyArray<{ id: number; host: string; port: number; bihaPort: number }>;
  readonly replicationUser: string;
  readonly tls: boolean;
}

export interface NodeErrorInfo {
  readonly type: string;
  readonly details: string;
  readonly beginLsn: string | null;
  readonly endLsn: string | null;
  readonly currentTli: number | null;
  readonly nextTli: number | null;
  readonly replayLsn: string | null;
  readonly since: string;
  /** Where the node's WAL leaves the cluster's history (votes still require WAL up to there); absent in older files. */
  readonly kept?: { readonly tli: number; readonly lsn: string } | null;
}

/** pg_biha/biha.state: raft hard state and config log, and a NODE_ERROR that survives restarts. */
export interface NodeState {
  readonly raft: PersistentState;
  readonly nodeError: NodeErrorInfo | null;
}

export function bihaDir(pgdata: string): string {
  return path.join(pgdata, BIHA_DIR);
}
export function confPath(pgdata: string): string {
  return path.join(pgdata, BIHA_DIR, 'biha.conf');
}
export function statePath(pgdata: string): string {
  return path.join(pgdata, BIHA_DIR, 'biha.state');
}
export function passfilePath(pgdata: string): string {
  return path.join(pgdata, BIHA_DIR, 'pgpass');
}
/** The remote management API's user and password hash (ops/httpauth.ts). */
export function httpCredentialsPath(pgdata: string): string {
  return path.join(pgdata, BIHA_DIR, 'http_credentials');
}
export function logDir(pgdata: string): string {
  return path.join(pgdata, BIHA_DIR, 'log');
}

/** Where a rewind keeps this node's files, outside PGDATA so that pg_rewind never touches it. */
export function rewindSaveDir(pgdata: string): string {
  return `${path.resolve(pgdata)}.biha-rewind-save`;
}
/** Exists (durably) exactly while the save directory holds the authoritative pg_biha/ of a rewind. */
export function rewindMarkerPath(pgdata: string): string {
  return path.join(rewindSaveDir(pgdata), 'rewind-in-progress');
}
/** The directory that holds this node's own pg_biha files now: the save directory's during a rewind. */
export function identityDir(pgdata: string): string {
  return fs.existsSync(rewindMarkerPath(pgdata)) ? path.join(rewindSaveDir(pgdata), BIHA_DIR) : bihaDir(pgdata);
}

export async function readNodeConf(pgdata: string): Promise<NodeConf> {
  return (await readStateFile<NodeConf>(path.join(identityDir(pgdata), 'biha.conf'), 'biha.conf', CONF_VERSION)).data;
}
/** For bihactl init / add, which create the node before any controller runs. */
export async function writeNodeConf(pgdata: string, c: NodeConf): Promise<void> {
  await writeStateFile(confPath(pgdata), 'biha.conf', CONF_VERSION, c, 0o600);
}
export async function readNodeState(pgdata: string): Promise<NodeState> {
  return (await readStateFile<NodeState>(path.join(identityDir(pgdata), 'biha.state'), 'biha.state', STATE_VERSION)).data;
}
/** For bihactl init / add, which create the node before any controller runs. */
export async function writeNodeState(pgdata: string, s: NodeState): Promise<void> {
  await writeStateFile(statePath(pgdata), 'biha.state', STATE_VERSION, s, 0o600);
}

export function slotName(id: number): string {
  return `biha_node_${id}`;
}
