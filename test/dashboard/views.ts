// Hand-made dashboard views of a three-node cluster (nodes 1, 2, 3) seen from node 2, for the
// history and page tests.
import type { DashNode, DashView } from '../../src/controller/ops/dashboard/wire.js';

export function node(id: number, o: Partial<DashNode> = {}): DashNode {
  return {
    id,
    host: '127.0.0.1',
    port: 5432 + id,
    state: 'FOLLOWER',
    last_known_state: 'FOLLOWER',
    mode: 'regular',
    role: 'replica',
    online: true,
    self: id === 2,
    leader: false,
    term: 3,
    timeline: 2,
    lsn: '0/3000000',
    lag_bytes: 0,
    lag_ms: 0,
    since_last_hb_ms: 100,
    replication_state: null,
    sync_state: null,
    error: null,
    ...o,
  };
}

export interface ViewOptions {
  at?: number;
  term?: number;
  leader?: number | null;
  nodes?: Partial<Record<1 | 2 | 3, Partial<DashNode>>>;
  decision?: string;
  serviceMode?: boolean;
}

/** Node 2's view: `leader` (default 1) is LEADER_RW, the others FOLLOWER, all online. */
export function view(o: ViewOptions = {}): DashView {
  const leader = o.leader === undefined ? 1 : o.leader;
  const term = o.term ?? 3;
  const nodes = ([1, 2, 3] as const).map((id) =>
    node(id, {
      term,
      ...(id === leader ? { state: 'LEADER_RW', last_known_state: 'LEADER_RW', role: 'primary', leader: true } : {}),
      ...o.nodes?.[id],
    }),
  );
  const online = nodes.filter((n) => n.online).length;
  return {
    node_id: 2,
    generated_at_ms: o.at ?? 1_000_000,
    term,
    leader_id: leader,
    service_mode: o.serviceMode ?? false,
    sync_standbys: 0,
    heartbeat_send_period: 200,
    heartbeat_max_lost: 5,
    decision: o.decision ?? 'nothing to do',
    health: { leader_known: leader !== null, voters_online: online, nquorum: 2, in_majority: online >= 2 },
    nodes,
  };
}
