// buildStatus: what a node says about itself for the metrics (own lag, WAL positions, server
// version, synchronous standby), from the inputs the controller has at that instant.
import { describe, expect, it } from 'vitest';
import { buildStatus } from '../../src/controller/status.js';
import type { StatusInputs } from '../../src/controller/status.js';
import type { LocalPgStatus } from '../../src/controller/pg/conn.js';
import type { ClusterConfig, NodeInfo, PeerView, SoftState } from '../../src/raft/index.js';

const node = (id: number, over: Partial<NodeInfo> = {}): NodeInfo => ({
  id, host: '127.0.0.1', port: 5432 + 2 * id, bihaPort: 5433 + 2 * id, mode: 'regular', canBeLeader: true, canVote: true, priority: 0, ...over,
});

function config(syncStandbys: number, nodes: NodeInfo[] = [node(1), node(2), node(3)]): ClusterConfig {
  return { nodes, params: { nquorum: 2, minnodes: 2, heartbeatSendPeriod: 1000, heartbeatMaxLost: 10, noWalOnFollower: 20000, syncStandbys, serviceMode: false } };
}

const standby: LocalPgStatus = {
  inRecovery: true, tli: 2, receiveLsn: 0x3000100, replayLsn: 0x3000000, currentLsn: null, walReceiver: null,
  replayPauseState: 'not paused', replication: [], slots: [], serverVersion: 150004,
};
const primary: LocalPgStatus = { ...standby, inRecovery: false, receiveLsn: null, replayLsn: null, currentLsn: 0x3000200, replayPauseState: null };

function leaderPeer(lsn: number): PeerView {
  return { id: 1, wal: { tli: 2, lsn }, state: 'LEADER_RW', lastKnownState: 'LEADER_RW', sinceLastHbMs: 100, online: true, term: 4 };
}

function inputs(o: { selfId: number; soft: SoftState; pg: LocalPgStatus; cfg?: ClusterConfig; peers?: PeerView[]; ownLagMs?: number | null }): StatusInputs {
  return {
    selfId: o.selfId, mode: 'regular', hasData: true, config: o.cfg ?? config(0), soft: o.soft, peers: o.peers ?? [], transport: [], pg: o.pg,
    observed: { role: o.pg.inRecovery ? 'STANDBY' : 'PRIMARY', upstream: o.pg.inRecovery ? 1 : 0, stalled: false, diverged: null, checkedTli: 0 },
    nodeError: null, decision: '', startedAt: 0, now: 1000, failback: null, switchover: null, ownLagMs: o.ownLagMs ?? null,
  };
}

const follower: SoftState = { role: 'follower', term: 4, leaderId: 1, writable: false, state: 'FOLLOWER', transferTarget: 0 };
const leader: SoftState = { role: 'leader', term: 4, leaderId: 1, writable: true, state: 'LEADER_RW', transferTarget: 0 };

describe('buildStatus: a node about itself', () => {
  it('gives a follower its lag behind the leader in bytes and in time, its received and replayed WAL and the server version', () => {
    const st = buildStatus(inputs({ selfId: 2, soft: follower, pg: standby, peers: [leaderPeer(0x3000400)], ownLagMs: 750 }));
    expect(st.extra).toMatchObject({ lag_bytes: 0x400, lag_ms: 750, server_version: 150004, wal: { current: null, received: 0x3000100, replayed: 0x3000000 } });
  });

  it('says a follower that replayed what the leader reported lags by 0 ms, whatever the clock says', () => {
    const st = buildStatus(inputs({ selfId: 2, soft: follower, pg: standby, peers: [leaderPeer(0x3000000)], ownLagMs: 5000 }));
    expect(st.extra).toMatchObject({ lag_bytes: 0, lag_ms: 0 });
  });

  it('gives a primary its insert position and no follower lag', () => {
    const st = buildStatus(inputs({ selfId: 1, soft: leader, pg: primary }));
    expect(st.extra).toMatchObject({ lag_bytes: null, lag_ms: null, wal: { current: 0x3000200, received: null, replayed: null }, sync_standby: false });
  });

  it('marks the followers the leader names in synchronous_standby_names', () => {
    const cfg = config(1, [node(1), node(2), node(3), node(4, { mode: 'referee_with_wal', canBeLeader: false }), node(5, { learner: true })]);
    const sync = (selfId: number): boolean | undefined => buildStatus(inputs({ selfId, soft: follower, pg: standby, cfg })).extra?.sync_standby;
    expect([2, 3, 4, 5].map(sync)).toEqual([true, true, false, false]);
    expect(buildStatus(inputs({ selfId: 2, soft: follower, pg: standby, cfg: config(0) })).extra?.sync_standby).toBe(false);
    expect(buildStatus(inputs({ selfId: 2, soft: { ...follower, leaderId: 0 }, pg: standby, cfg })).extra?.sync_standby).toBe(false);
  });
});

describe('buildStatus: a follower without WAL from the leader', () => {
  it('shows how long each member has had no WAL (giving way, docs/raft.md), and nothing while WAL flows', () => {
    const stalled = (id: number, ms: number | undefined): PeerView => ({
      id, wal: { tli: 2, lsn: 0x3000000 }, state: 'FOLLOWER', lastKnownState: 'FOLLOWER', sinceLastHbMs: 100, online: true, term: 4, ...(ms !== undefined ? { noWalMs: ms } : {}),
    });
    const st = buildStatus(inputs({ selfId: 2, soft: follower, pg: standby, peers: [leaderPeer(0x3000400), stalled(2, 4200), stalled(3, undefined)] }));
    const row = (id: number): (typeof st.status)[number] | undefined => st.status.find((r) => r.id === id);
    expect(row(2)?.no_wal_ms).toBe(4200);
    expect(row(3)?.no_wal_ms).toBeUndefined();
    expect(row(1)?.no_wal_ms).toBeUndefined();
  });
});
