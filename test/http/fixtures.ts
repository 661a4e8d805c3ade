// Hand-made StatusFile documents for the HTTP layer tests: a three-node cluster (nodes 1, 2, 3)
// seen from one node, in the situations the health checks must tell apart.
import { pino } from 'pino';
import type { HttpExtra, HttpStatus, HttpStatusSource } from '../../src/controller/ops/http.js';

export const silentLogger = pino({ level: 'silent' });

type Row = HttpStatus['status'][number];

function rows(nodeId: number, selfState: string, leaderId: number | null, term: number): Row[] {
  return [1, 2, 3].map((id) => ({
    id,
    leader_id: leaderId,
    term,
    online: true,
    state: id === nodeId ? selfState : id === leaderId ? 'LEADER_RW' : 'FOLLOWER',
    last_known_state: id === nodeId ? selfState : id === leaderId ? 'LEADER_RW' : 'FOLLOWER',
    since_last_hb_ms: id === nodeId ? 0 : 120 * id,
  }));
}

export interface FixtureOptions {
  nodeId?: number;
  state?: string;
  leaderId?: number | null;
  term?: number;
  pgState?: string;
  errorType?: string;
  extra?: HttpExtra | null;
  followers?: HttpStatus['monitoring']['followers'];
}

export function makeStatus(o: FixtureOptions = {}): HttpStatus {
  const nodeId = o.nodeId ?? 1;
  const term = o.term ?? 7;
  const leaderId = o.leaderId === undefined ? 1 : o.leaderId;
  const state = o.state ?? 'LEADER_RW';
  const st: HttpStatus = {
    version: 1,
    generatedAtMs: Date.UTC(2024, 0, 2, 3, 4, 5),
    nodeId,
    config: {
      id: nodeId,
      term,
      nquorum: 2,
      minnodes: 2,
      heartbeat_send_period: 1000,
      heartbeat_max_lost: 10,
      no_wal_on_follower: 20000,
      sync_standbys: 0,
      service_mode: false,
      mode: 'regular',
      can_be_leader: true,
      can_vote: true,
      learner: false,
      priority: 0,
    },
    status: rows(nodeId, state, leaderId, term),
    nodes: [1, 2, 3]
      .filter((id) => id !== nodeId)
      .map((id) => ({ id, host: `10.0.0.${id}`, port: 5432, state: 'ACTIVE', since_conn_start_ms: 5000, conn_count: 1 })),
    error: {
      type: o.errorType ?? 'NO_ERROR',
      details: o.errorType ? 'the node diverged from the leader' : null,
      begin_lsn: null,
      end_lsn: null,
      current_tli: null,
      next_tli: null,
      replay_lsn: null,
    },
    monitoring: {
      pg_state: o.pgState ?? 'promoted',
      followers: o.followers ?? [],
    },
  };
  if (o.extra !== null) st.extra = o.extra ?? { pg_role: 'PRIMARY', upstream: 0, tli: 3, lsn: '0/3000060', decision: '', uptime_s: 10 };
  return st;
}

/** Node 1, the writable leader, with two streaming followers. */
export function leaderRW(): HttpStatus {
  return makeStatus({
    followers: [
      { id: 2, application_name: 'biha_node_2', state: 'streaming', sync_state: 'async', lag_bytes: 0, lag_ms: 3 },
      { id: 3, application_name: 'biha_node_3', state: 'streaming', sync_state: 'async', lag_bytes: 4096, lag_ms: 250 },
    ],
  });
}

/** Node 1, leader without the lease (just elected, or a transfer in progress). */
export function leaderRO(): HttpStatus {
  return makeStatus({ state: 'LEADER_RO' });
}

/** Node 1 won the election (LEADER_RW) but PostgreSQL is still a standby, not promoted yet. */
export function leaderNotPromoted(): HttpStatus {
  return makeStatus({ pgState: 'recovery', extra: { pg_role: 'STANDBY', upstream: 0, tli: 3, lsn: '0/3000060' } });
}

/** Node 2, a follower streaming from node 1, 1000 bytes behind. */
export function streamingFollower(extra: HttpExtra = {}): HttpStatus {
  return makeStatus({
    nodeId: 2,
    state: 'FOLLOWER',
    pgState: 'recovery',
    extra: { pg_role: 'STANDBY', upstream: 1, tli: 3, lsn: '0/3000000', lag_bytes: 1000, lag_ms: 40, ...extra },
  });
}

/** Node 2, a follower whose PostgreSQL is in recovery but streams from nobody. */
export function detachedFollower(): HttpStatus {
  return makeStatus({ nodeId: 2, state: 'FOLLOWER', pgState: 'recovery', extra: { pg_role: 'STANDBY', upstream: 0, tli: 3, lsn: '0/3000000' } });
}

/** Node 3 in NODE_ERROR: PostgreSQL runs, replay paused. */
export function nodeError(): HttpStatus {
  return makeStatus({
    nodeId: 3,
    state: 'NODE_ERROR',
    pgState: 'recovery_paused',
    errorType: 'TIMELINE_DIVERGED',
    extra: { pg_role: 'STANDBY', upstream: 0, tli: 2, lsn: '0/2000000' },
  });
}

/** Node 2, follower whose PostgreSQL is down. */
export function pgStopped(): HttpStatus {
  return makeStatus({ nodeId: 2, state: 'FOLLOWER', pgState: 'startup', extra: { pg_role: 'STOPPED', upstream: 0, tli: null, lsn: null } });
}

/** Node 2 during an election. */
export function candidate(): HttpStatus {
  return makeStatus({ nodeId: 2, state: 'CANDIDATE', leaderId: null, pgState: 'recovery', extra: { pg_role: 'STANDBY', upstream: 0, tli: 3, lsn: '0/3000000' } });
}

/** A source the tests can switch between documents. */
export class FakeSource implements HttpStatusSource {
  loopAge: number | null | (() => number) = null;
  broken: Error | null = null;
  constructor(public current: HttpStatus) {}
  get nodeId(): number {
    return this.current.nodeId;
  }
  status(): HttpStatus {
    if (this.broken) throw this.broken;
    return this.current;
  }
  loopAgeMs(): number | null {
    return typeof this.loopAge === 'function' ? this.loopAge() : this.loopAge;
  }
}
