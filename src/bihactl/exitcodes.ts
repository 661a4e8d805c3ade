// The exit code of bihactl for every error code, in one table (docs/commands.md#exit-codes).
//
// An error's `code` is the BihaError code a command raised (locally, or answered by a node over the
// local socket or the HTTP API), or one of the codes bihactl itself raises for its own checks
// (usage, not_confirmed, unauthorized, ...). A code missing from the table exits with EXIT.FAILURE.
import { BihaError, EXIT } from '../controller/errors.js';
import type { ExitCode } from '../controller/errors.js';

export const EXIT_CODES = {
  // 2: the command line is wrong; fix it and run the command again.
  usage: EXIT.BAD_ARGS,
  bad_args: EXIT.BAD_ARGS,
  bad_json: EXIT.BAD_ARGS,
  bad_layout: EXIT.BAD_ARGS,
  bad_magic: EXIT.BAD_ARGS,
  bad_tls: EXIT.BAD_ARGS,
  bad_port: EXIT.BAD_ARGS,
  bad_node_id: EXIT.BAD_ARGS,
  bad_conninfo: EXIT.BAD_ARGS,
  bad_setting: EXIT.BAD_ARGS,
  bad_url: EXIT.BAD_ARGS,
  body_too_large: EXIT.BAD_ARGS,
  bad_cluster_file: EXIT.BAD_ARGS,
  conflicting_setting: EXIT.BAD_ARGS,
  duplicate_addr: EXIT.BAD_ARGS,
  duplicate_id: EXIT.BAD_ARGS,
  no_password: EXIT.BAD_ARGS,
  no_postgresql_conf: EXIT.BAD_ARGS,
  not_a_cluster: EXIT.BAD_ARGS,
  not_a_node: EXIT.BAD_ARGS,
  not_confirmed: EXIT.BAD_ARGS,
  not_eligible: EXIT.BAD_ARGS,
  password_mismatch: EXIT.BAD_ARGS,
  pgdata_not_dir: EXIT.BAD_ARGS,
  pgdata_not_empty: EXIT.BAD_ARGS,
  pgdata_parent_missing: EXIT.BAD_ARGS,
  port_in_use: EXIT.BAD_ARGS,
  target_not_empty: EXIT.BAD_ARGS,
  unknown_node: EXIT.BAD_ARGS,
  weak_password: EXIT.BAD_ARGS,

  // 3: the cluster or the node is not in a state that allows the command; see the message.
  already_node: EXIT.BAD_STATE,
  already_running: EXIT.BAD_STATE,
  backup_locked: EXIT.BAD_STATE,
  change_in_progress: EXIT.BAD_STATE,
  conflict: EXIT.BAD_STATE,
  insecure_mode: EXIT.BAD_STATE,
  invalid: EXIT.BAD_STATE,
  is_leader: EXIT.BAD_STATE,
  leader_mismatch: EXIT.BAD_STATE,
  no_leader: EXIT.BAD_STATE,
  no_leader_yet: EXIT.BAD_STATE,
  no_streaming_follower: EXIT.BAD_STATE,
  no_successor: EXIT.BAD_STATE,
  node_error: EXIT.BAD_STATE,
  not_leader: EXIT.BAD_STATE,
  not_scheduled: EXIT.BAD_STATE,
  pg_running: EXIT.BAD_STATE,
  reinit_interrupted: EXIT.BAD_STATE,
  reinit_running: EXIT.BAD_STATE,
  restart_running: EXIT.BAD_STATE,
  rewind_in_progress: EXIT.BAD_STATE,
  rewind_running: EXIT.BAD_STATE,
  root_owner: EXIT.BAD_STATE,
  rotation_pending: EXIT.BAD_STATE,
  running: EXIT.BAD_STATE,
  scheduled: EXIT.BAD_STATE,
  slot_busy: EXIT.BAD_STATE,
  streaming: EXIT.BAD_STATE,
  sync_loss: EXIT.BAD_STATE,
  tls_mismatch: EXIT.BAD_STATE,
  transfer_in_progress: EXIT.BAD_STATE,
  unavailable: EXIT.BAD_STATE,

  // 4: no node answered, or the control channel refused this node's cluster secret.
  unreachable: EXIT.UNREACHABLE,
  not_running: EXIT.UNREACHABLE,
  auth: EXIT.UNREACHABLE,
  bad_password: EXIT.UNREACHABLE,
  rewind_source_unreachable: EXIT.UNREACHABLE,

  // 5: the command did not finish in time; it may still complete.
  timeout: EXIT.TIMEOUT,
  promote_timeout: EXIT.TIMEOUT,
  pg_stop_timeout: EXIT.TIMEOUT,

  // 6: the node refused the remote request: wrong or missing HTTP credentials (HTTP 401), or
  // remote management is off on it (HTTP 403).
  unauthorized: EXIT.DENIED,
  remote_management_off: EXIT.DENIED,

  // 1: the command ran and failed; the message says why.
  add_failed: EXIT.FAILURE,
  backup_failed: EXIT.FAILURE,
  backup_stopped: EXIT.FAILURE,
  bad_credentials: EXIT.FAILURE,
  bad_lsn: EXIT.FAILURE,
  bad_meta: EXIT.FAILURE,
  bad_request: EXIT.FAILURE,
  bad_response: EXIT.FAILURE,
  bad_slot_name: EXIT.FAILURE,
  bad_state_version: EXIT.FAILURE,
  bad_upstream: EXIT.FAILURE,
  bad_wal_file: EXIT.FAILURE,
  busy: EXIT.FAILURE,
  cancelled: EXIT.FAILURE,
  cannot_keep: EXIT.FAILURE,
  conf_depth: EXIT.FAILURE,
  conf_unreadable: EXIT.FAILURE,
  controldata_unreadable: EXIT.FAILURE,
  error: EXIT.FAILURE,
  failed: EXIT.FAILURE,
  foreign_standby: EXIT.FAILURE,
  http_error: EXIT.FAILURE,
  init_failed: EXIT.FAILURE,
  install_broken: EXIT.FAILURE,
  join_refused: EXIT.FAILURE,
  leader_sql: EXIT.FAILURE,
  lost: EXIT.FAILURE,
  method_not_allowed: EXIT.FAILURE,
  no_config: EXIT.FAILURE,
  no_data: EXIT.FAILURE,
  no_peers: EXIT.FAILURE,
  no_secret: EXIT.FAILURE,
  not_found: EXIT.FAILURE,
  openssl: EXIT.FAILURE,
  pg_closed: EXIT.FAILURE,
  pg_held: EXIT.FAILURE,
  pg_not_found: EXIT.FAILURE,
  pg_start_failed: EXIT.FAILURE,
  pg_status: EXIT.FAILURE,
  pg_unsupported: EXIT.FAILURE,
  pg_version_missing: EXIT.FAILURE,
  pg_version_mismatch: EXIT.FAILURE,
  pg_version_unreadable: EXIT.FAILURE,
  pg_zombie: EXIT.FAILURE,
  port_check: EXIT.FAILURE,
  protocol: EXIT.FAILURE,
  reinit_failed: EXIT.FAILURE,
  rewind_marker: EXIT.FAILURE,
  rotation_failed: EXIT.FAILURE,
  secret_lost: EXIT.FAILURE,
  slot_failed: EXIT.FAILURE,
  start_failed: EXIT.FAILURE,
  switchover_failed: EXIT.FAILURE,
  template_missing: EXIT.FAILURE,
  template_var: EXIT.FAILURE,
  templates_missing: EXIT.FAILURE,
  unknown_command: EXIT.FAILURE,
  unknown_owner: EXIT.FAILURE,
  unknown_request: EXIT.FAILURE,
  unreadable_install: EXIT.FAILURE,
  zombie: EXIT.FAILURE,
} as const satisfies Record<string, ExitCode>;

export type ErrorCode = keyof typeof EXIT_CODES;

export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(EXIT_CODES, code);
}

/** The code bihactl reports for a thrown value: a BihaError's own, 'failed' for anything else. */
export function errorCodeOf(e: unknown): string {
  return e instanceof BihaError ? e.code : 'failed';
}

export function exitCodeOf(e: unknown): ExitCode {
  const code = errorCodeOf(e);
  return isErrorCode(code) ? EXIT_CODES[code] : EXIT.FAILURE;
}
