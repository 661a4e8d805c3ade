// Where the proxies send a new connection, from the raft view of one node: the LEADER_RW node for
// the read-write port, streaming followers within the lag (round robin) for the read-only port.
import { describe, expect, it } from 'vitest';
import { DEFAULT_PARAMS } from '../../src/raft/index.js';
import type { BihaState, ClusterConfig, NodeInfo, PeerView, SoftState } from '../../src/raft/index.js';
import { ReaderRotation, computeRoutes } from '../../src/controller/ops/proxyroute.js';

const node = (id: number, mode: NodeInfo['mode'] = 'regular'): NodeInfo => ({
  id, host: `10.0.0.${id}`, port: mode === 'referee' ? 0 : 5432, bihaPort: 5433, mode, canBeLeader: mode === 'regular', canVote: true, priority: 0,
});
const config: ClusterConfig = { nodes: [node(1), node(2), node(3), node(4, 'referee')], params: DEFAULT_PARAMS };
const MB = 1024 * 1024;

function peer(id: number, state: BihaState, lsn: number, o: Partial<PeerView> = {}): PeerView {
  return { id, wal: { tli: 2, lsn }, state, lastKnownState: state, sinceLastHbMs: 10, online: true, term: 5, ...o };
}
function soft(o: Partial<SoftState>): SoftState {
  return { role: 'follower', term: 5, leaderId: 1, writable: false, state: 'FOLLOWER', transferTarget: 0, ...o };
}
const peers = [peer(1, 'LEADER_RW', 100 * MB), peer(2, 'FOLLOWER', 100 * MB - 1000), peer(3, 'FOLLOWER', 60 * MB), peer(4, 'FOLLOWER', 0)];

describe('computeRoutes', () => {
  it('on a follower: the leader its heartbeats name LEADER_RW, and the followers within the lag', () => {
    const r = computeRoutes({ selfId: 2, config, soft: soft({}), peers }, 16 * MB);
    expect(r.leader).toEqual({ id: 1, host: '10.0.0.1', port: 5432 });
    expect(r.term).toBe(5);
    // Node 3 is 40 MB behind; node 4 is a referee (no PostgreSQL to read from).
    expect(r.readers.map((b) => b.id)).toEqual([2]);
    expect(computeRoutes({ selfId: 2, config, soft: soft({}), peers }, 64 * MB).readers.map((b) => b.id)).toEqual([2, 3]);
  });

  it('on the leader: itself while LEADER_RW and not handing over', () => {
    const me = soft({ role: 'leader', leaderId: 1, writable: true, state: 'LEADER_RW' });
    expect(computeRoutes({ selfId: 1, config, soft: me, peers }, 16 * MB).leader?.id).toBe(1);
    expect(computeRoutes({ selfId: 1, config, soft: { ...me, transferTarget: 2 }, peers }, 16 * MB).leader).toBeNull();
    expect(computeRoutes({ selfId: 1, config, soft: { ...me, writable: false, state: 'LEADER_RO' }, peers }, 16 * MB).leader).toBeNull();
  });

  it('no leader while the leader is not LEADER_RW, offline, or unknown; then no readers either', () => {
    const ro = [peer(1, 'LEADER_RO', 100 * MB), ...peers.slice(1)];
    expect(computeRoutes({ selfId: 2, config, soft: soft({}), peers: ro }, 16 * MB)).toEqual({ leader: null, term: 0, readers: [] });
    const gone = [peer(1, 'UNKNOWN', 100 * MB, { online: false }), ...peers.slice(1)];
    expect(computeRoutes({ selfId: 2, config, soft: soft({}), peers: gone }, 16 * MB).leader).toBeNull();
    expect(computeRoutes({ selfId: 2, config, soft: soft({ leaderId: 0, state: 'FOLLOWER_VOTING' }), peers }, 16 * MB).leader).toBeNull();
  });

  it('a follower still on an older timeline, offline, or not FOLLOWER reads from nowhere', () => {
    const p = [peer(1, 'LEADER_RW', 100 * MB), peer(2, 'FOLLOWER', 100 * MB, { wal: { tli: 1, lsn: 100 * MB } }), peer(3, 'NODE_ERROR', 100 * MB)];
    expect(computeRoutes({ selfId: 1, config, soft: soft({ role: 'leader', state: 'LEADER_RW', writable: true }), peers: p }, 16 * MB).readers).toEqual([]);
  });
});

describe('ReaderRotation', () => {
  it('goes round the readers, and to the leader when there is none', () => {
    const routes = computeRoutes({ selfId: 2, config, soft: soft({}), peers }, 64 * MB);
    const rot = new ReaderRotation();
    expect([1, 2, 3, 4].map(() => rot.pick(routes)?.id)).toEqual([2, 3, 2, 3]);
    expect(rot.pick({ ...routes, readers: [] })?.id).toBe(1);
    expect(rot.pick({ leader: null, term: 0, readers: [] })).toBeNull();
  });
});
