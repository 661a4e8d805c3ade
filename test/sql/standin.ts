// A stand-in for the controller behind a SqlBridge: fixed answers per request, every call recorded.
// It tests the bridge and the SQL, not the controller.
import type { BridgeReply, BridgeRequest, StatusFile } from '../../src/controller/bridge/sqlbridge.js';

export interface Call {
  fn: string;
  args: Record<string, unknown>;
  user: string;
}

/** Node ids the stand-in treats specially. */
export const HANG_ID = 77; // set_leader(77) never gets a reply (until release())
export const UNKNOWN_ID = 9; // not a member
export const THROW_ID = 13; // the handler throws

export class StandIn {
  readonly calls: Call[] = [];
  private readonly hung: Array<() => void> = [];

  readonly handler = async (req: BridgeRequest): Promise<BridgeReply> => {
    this.calls.push({ fn: req.fn, args: req.args, user: req.user });
    const id = req.args.id;
    if (id === UNKNOWN_ID) return { ok: false, error: `node ${UNKNOWN_ID} is not a member of the cluster` };
    if (id === THROW_ID) throw new Error('the stand-in controller failed on purpose');
    switch (req.fn) {
      case 'set_leader':
        if (id === HANG_ID) {
          await new Promise<void>((resolve) => this.hung.push(resolve));
          return { ok: false, error: 'released at the end of the test' };
        }
        return { ok: true };
      case 'remove_node':
        return id === 1 ? { ok: false, error: 'node 1 is the leader; call biha.set_leader() first' } : { ok: true, result: true };
      case 'get_magic_string':
        return { ok: true, result: 'biha-magic:stand-in' };
      case 'set_heartbeat_send_period':
        return req.args.value === 5 ? { ok: false, error: 'heartbeat_send_period 5 ms is below the minimum of 10 ms' } : { ok: true };
      case 'set_sync_standbys':
        // 3 stands for a value that breaks the zero-loss rule of synchronous mode.
        return req.args.value === 3 && req.args.allow_sync_loss !== true
          ? { ok: false, error: 'sync_standbys 3 breaks the zero-loss rule of synchronous mode (stand-in); or accept that risk with select biha.set_sync_standbys(3, allow_sync_loss => true)' }
          : { ok: true };
      case 'set_nquorum_and_minnodes':
        return req.args.nquorum === 5 ? { ok: false, error: 'nquorum 5 is more than the 3 voting nodes' } : { ok: true };
      case 'service_mode':
        // false: "nothing changed" (the stand-in is never in service mode)
        return { ok: true, result: req.args.value === true };
      case 'reset_node_error':
        return { ok: true };
      default:
        return { ok: true };
    }
  };

  /** Lets every hung request finish. */
  release(): void {
    for (const r of this.hung.splice(0)) r();
  }

  take(): Call[] {
    return this.calls.splice(0);
  }
}

export type FixtureKind = 'healthy' | 'node_error';

/**
 * The status file of a three-node cluster (1 leader, 2 and 3 followers) as node `nodeId` would
 * write it at `now`; times since heartbeats and connections grow from `t0` like a live
 * controller's would.
 */
export function fixture(kind: FixtureKind, nodeId: number, now: number, t0: number): StatusFile {
  const grow = now - t0;
  const nodeError = kind === 'node_error';
  return {
    version: 1,
    generatedAtMs: now,
    nodeId,
    config: {
      id: nodeId,
      term: 4,
      nquorum: 2,
      minnodes: 2,
      heartbeat_send_period: 1000,
      heartbeat_max_lost: 10,
      no_wal_on_follower: 20000,
      sync_standbys: 1,
      service_mode: false,
      mode: 'regular',
      can_be_leader: true,
      can_vote: true,
      learner: false,
      priority: 0,
    },
    status: [
      { id: 1, leader_id: 1, term: 4, online: true, state: 'LEADER_RW', last_known_state: null, since_last_hb_ms: 250 + grow },
      { id: 2, leader_id: 1, term: 4, online: true, state: nodeError ? 'NODE_ERROR' : 'FOLLOWER', last_known_state: null, since_last_hb_ms: null },
      { id: 3, leader_id: 1, term: 3, online: false, state: 'UNKNOWN', last_known_state: 'FOLLOWER', since_last_hb_ms: 15000 + grow },
    ],
    nodes: [
      { id: 1, host: 'n1.example', port: 5433, state: 'ACTIVE', since_conn_start_ms: 60000 + grow, conn_count: 1 },
      { id: 3, host: 'n3.example', port: 5433, state: 'CONNECTING', since_conn_start_ms: null, conn_count: 4 },
    ],
    error: nodeError
      ? {
          type: 'WAL_DIVERGED',
          details: 'this node has WAL past the point where the leader switched to timeline 5',
          begin_lsn: '0/3000060',
          end_lsn: '0/30000D8',
          current_tli: 4,
          next_tli: 5,
          replay_lsn: '0/3000148',
        }
      : { type: 'NO_ERROR', details: null, begin_lsn: null, end_lsn: null, current_tli: null, next_tli: null, replay_lsn: null },
    monitoring: {
      pg_state: nodeError ? 'recovery_paused' : 'promoted',
      followers: nodeError
        ? []
        : [
            { id: 3, application_name: 'biha_node_3', state: 'catchup', sync_state: 'async', lag_bytes: 16777216, lag_ms: 2400.4 },
            { id: 2, application_name: 'biha_node_2', state: 'streaming', sync_state: 'quorum', lag_bytes: 0, lag_ms: null },
          ],
    },
  };
}
