// The dashboard's view of one StatusFile: lag from the leader's rows or the relayed WAL positions,
// and whether the serving node hears from a majority.
import { describe, expect, it } from 'vitest';
import { dashView, viewKey } from '../../src/controller/ops/dashboard/view.js';
import { leaderRW, makeStatus, nodeError, streamingFollower } from '../http/fixtures.js';

describe('the dashboard view', () => {
  it('on a follower: its own lag, the others from the WAL positions the leader relays', () => {
    const st = streamingFollower({ leader_lsn: '0/3000400', peer_wal: [{ id: 1, tli: 3, lsn: '0/3000400' }, { id: 3, tli: 3, lsn: '0/3000100' }] });
    const v = dashView(st);
    expect(v.node_id).toBe(2);
    expect(v.nodes.map((n) => [n.id, n.leader, n.self, n.role, n.timeline, n.lag_bytes, n.lag_ms])).toEqual([
      [1, true, false, 'primary', 3, 0, 0],
      [2, false, true, 'replica', 3, 1000, 40],
      [3, false, false, 'replica', 3, 0x300, null],
    ]);
  });

  it('on the leader: the pg_stat_replication rows', () => {
    const v = dashView(leaderRW());
    expect(v.nodes.find((n) => n.id === 2)).toMatchObject({ lag_bytes: 0, lag_ms: 3, sync_state: 'async', replication_state: 'streaming', timeline: null });
    expect(v.nodes.find((n) => n.id === 1)).toMatchObject({ timeline: 3, lsn: '0/3000060', role: 'primary' });
  });

  it('shows the serving node error with its details', () => {
    const v = dashView(nodeError());
    expect(v.nodes.find((n) => n.id === 3)?.error).toEqual({ type: 'TIMELINE_DIVERGED', details: 'the node diverged from the leader' });
    expect(v.nodes.find((n) => n.id === 1)?.error).toBeNull();
  });

  it('a node that hears from fewer voters than nquorum is not in the majority', () => {
    const st = makeStatus({ nodeId: 2, state: 'FOLLOWER', leaderId: null });
    for (const r of st.status) if (r.id !== 2) r.online = false;
    const v = dashView(st);
    expect(v.health).toEqual({ leader_known: false, voters_online: 1, nquorum: 2, in_majority: false });
    expect(v.nodes.find((n) => n.id === 1)?.role).toBe('unknown');
  });

  it('the change key ignores clocks and lag but not states', () => {
    const a = leaderRW();
    const b = { ...leaderRW(), generatedAtMs: a.generatedAtMs + 5000 };
    b.monitoring.followers[1]!.lag_bytes = 99999;
    b.status[1]!.since_last_hb_ms = 4000;
    expect(viewKey(dashView(b))).toBe(viewKey(dashView(a)));
    b.status[2]!.state = 'UNKNOWN';
    expect(viewKey(dashView(b))).not.toBe(viewKey(dashView(a)));
  });
});
