// Giving way (docs/raft.md): a follower's driver measures how long it hears the leader without
// receiving WAL it lacks, probes the other nodes' PostgreSQL ports while that lasts, and the raft
// core reports both in its append responses.
import { describe, expect, it } from 'vitest';
import type { AppendMsg, AppendRespMsg, NodeInfo, PeerView, WalPos } from '../../src/raft/index.js';
import { followerState, rig } from './harness.js';
import type { Rig } from './harness.js';

const LIMIT = 1000;

function peer(id: number, wal: WalPos, state: PeerView['state']): PeerView {
  return { id, wal, state, lastKnownState: state, sinceLastHbMs: 0, online: true, term: 3 };
}

/** A heartbeat of leader 1 (term 3) to node 2, the leader a writable primary at `leaderWal`. */
function heartbeat(seq: number, leaderWal: WalPos, followerWal: WalPos): AppendMsg {
  return {
    type: 'app', from: 1, to: 2, term: 3, prevIndex: 1, prevTerm: 3, entries: [], commit: 1, seq, wal: leaderWal,
    peers: [peer(1, leaderWal, 'LEADER_RW'), peer(2, followerWal, 'FOLLOWER'), peer(3, followerWal, 'FOLLOWER')],
  };
}

function lastResponse(r: Rig): AppendRespMsg {
  const resps = r.sent.filter((m): m is AppendRespMsg => m.type === 'app_resp');
  const last = resps[resps.length - 1];
  if (!last) throw new Error('no append response sent');
  return last;
}

/** Heartbeats and polls every 100 ms for `ms`. */
async function beat(r: Rig, seq: { n: number }, leaderWal: WalPos, ms: number): Promise<void> {
  for (let t = 0; t < ms; t += 100) {
    r.driver.step(heartbeat(++seq.n, leaderWal, r.pg.wal));
    await r.driver.poll();
    await r.clock.advance(100);
  }
}

describe('a follower without WAL from the leader', () => {
  it('reports how long it has had none and which PostgreSQL ports it can open, and 0 once WAL flows', async () => {
    const probed: number[][] = [];
    const r = await rig(2, followerState(3, { noWalOnFollower: LIMIT, syncStandbys: 1 }), {
      pgReachable: async (nodes: readonly NodeInfo[]) => {
        probed.push(nodes.map((n) => n.id));
        return nodes.filter((n) => n.id === 3).map((n) => n.id);
      },
    });
    const seq = { n: 0 };
    const leaderWal = { tli: 2, lsn: 500 };
    await beat(r, seq, leaderWal, 300);
    // Only past half the limit are the ports probed: node 1 (the leader) and node 3, not itself.
    expect(probed).toEqual([]);
    await beat(r, seq, leaderWal, LIMIT + 300);
    expect(probed[0]).toEqual([1, 3]);
    const stalled = lastResponse(r);
    expect(stalled.noWalMs).toBeGreaterThanOrEqual(LIMIT);
    expect(stalled.pgReach).toEqual([3]);
    // WAL arrives: the report is gone at the next heartbeat after the poll.
    r.pg.wal = { tli: 2, lsn: 150 };
    await beat(r, seq, leaderWal, 200);
    expect(lastResponse(r).noWalMs).toBeUndefined();
    expect(lastResponse(r).pgReach).toBeUndefined();
  });

  it('reports nothing while it holds all of the leader\'s WAL (an idle primary)', async () => {
    const r = await rig(2, followerState(3, { noWalOnFollower: LIMIT, syncStandbys: 1 }), { pgReachable: async () => [1, 3] });
    const seq = { n: 0 };
    await beat(r, seq, { tli: 2, lsn: 100 }, 3 * LIMIT);
    expect(lastResponse(r).noWalMs).toBeUndefined();
  });
});
