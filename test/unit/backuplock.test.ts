// The backup lock and the pure parts of bihactl conninfo/drain.
import { describe, expect, it } from 'vitest';
import { BackupLock, backupLockCommand, streamingFollowers } from '../../src/controller/ops/backuplock.js';
import type { StatusFile } from '../../src/controller/bridge/sqlbridge.js';
import { buildConnInfo } from '../../src/bihactl/conninfo.js';
import { pickSuccessors } from '../../src/bihactl/drain.js';
import { buildStatusView } from '../../src/bihactl/statusview.js';
import type { NodeInfo } from '../../src/raft/index.js';

const node = (id: number, patch: Partial<NodeInfo> = {}): NodeInfo => ({
  id, host: '10.0.0.' + id, port: 5432, bihaPort: 5433, mode: 'regular', canBeLeader: true, canVote: true, priority: 0, ...patch,
});

function status(self: number, leader: number, followers: Array<{ id: number; state?: string; lag?: number }>, states: Record<number, string> = {}): StatusFile {
  const ids = [leader, ...followers.map((f) => f.id)].sort((a, b) => a - b);
  return {
    version: 1,
    generatedAtMs: 0,
    nodeId: self,
    config: { id: self, term: 3, nquorum: 2, minnodes: 2, heartbeat_send_period: 1000, heartbeat_max_lost: 10, no_wal_on_follower: 20000, sync_standbys: 0, service_mode: false, mode: 'regular', can_be_leader: true, can_vote: true, learner: false, priority: 0 },
    status: ids.map((id) => ({ id, leader_id: leader, term: 3, online: true, state: states[id] ?? (id === leader ? 'LEADER_RW' : 'FOLLOWER'), last_known_state: null, since_last_hb_ms: 10 })),
    nodes: [],
    error: { type: 'NO_ERROR', details: null, begin_lsn: null, end_lsn: null, current_tli: null, next_tli: null, replay_lsn: null },
    monitoring: {
      pg_state: 'promoted',
      followers: followers.map((f) => ({ id: f.id, application_name: `biha_node_${f.id}`, state: f.state ?? 'streaming', sync_state: 'async', lag_bytes: f.lag ?? 0, lag_ms: null })),
    },
  } as StatusFile;
}

describe('BackupLock', () => {
  it('one holder at a time; renewal with the same token; release frees it; expiry frees it', () => {
    const l = new BackupLock();
    expect(l.acquire(2, 'tok-aaaaaaaa', 30_000, 1000)).toEqual({ ok: true });
    const other = l.acquire(3, 'tok-bbbbbbbb', 30_000, 2000);
    expect(other.ok).toBe(false);
    expect(l.acquire(2, 'tok-aaaaaaaa', 30_000, 20_000)).toEqual({ ok: true });
    expect(l.current(45_000)?.nodeId).toBe(2); // renewed at 20 s: lives until 50 s
    expect(l.current(45_000)?.acquiredAt).toBe(1000);
    expect(l.release('tok-bbbbbbbb', 46_000)).toBe(false);
    expect(l.release('tok-aaaaaaaa', 46_000)).toBe(true);
    expect(l.current(46_000)).toBeNull();
    expect(l.acquire(3, 'tok-bbbbbbbb', 10_000, 50_000)).toEqual({ ok: true });
    expect(l.current(60_000)).toBeNull();
    expect(l.acquire(2, 'tok-aaaaaaaa', 10_000, 60_000)).toEqual({ ok: true });
  });

  it('the command names the holder to a second requester and lists streaming followers to the holder', () => {
    const l = new BackupLock();
    const s = (): StatusFile => status(1, 1, [{ id: 2, lag: 500 }, { id: 3, lag: 10 }, { id: 4, state: 'catchup' }]);
    const a = backupLockCommand(l, { op: 'acquire', node: 2, token: 'tok-aaaaaaaa', ttl_ms: 30_000 }, 1, s, 0);
    expect(a).toEqual({ ok: true, leader: 1, token: 'tok-aaaaaaaa', ttl_ms: 30_000, streaming: [3, 2] });
    const b = backupLockCommand(l, { op: 'acquire', node: 3, token: 'tok-bbbbbbbb', ttl_ms: 30_000 }, 1, s, 5000);
    expect(b).toEqual({ ok: false, leader: 1, holder: { node: 2, held_ms: 5000, expires_in_ms: 25_000 } });
    expect(backupLockCommand(l, { op: 'release', token: 'tok-aaaaaaaa' }, 1, s, 6000)).toEqual({ ok: true, leader: 1, holder: null });
    expect(() => backupLockCommand(l, { op: 'acquire', node: 2, token: 'x', ttl_ms: 30_000 }, 1, s, 0)).toThrow(/token/);
    expect(() => backupLockCommand(l, { op: 'steal' }, 1, s, 0)).toThrow(/op/);
  });

  it('followers in NODE_ERROR or offline are not backup sources', () => {
    const s = status(1, 1, [{ id: 2 }, { id: 3 }], { 3: 'NODE_ERROR' });
    expect(streamingFollowers(s)).toEqual([2]);
  });
});

describe('conninfo and drain helpers', () => {
  it('conninfo lists the data nodes only, read-write and prefer-standby', () => {
    const ci = buildConnInfo([node(2), node(1), node(3, { mode: 'referee', port: 0 }), node(4, { host: '::1' })], { dbname: 'app', user: 'alice' });
    expect(ci.read_write).toBe('postgresql://alice@10.0.0.1:5432,10.0.0.2:5432,[::1]:5432/app?connect_timeout=2&target_session_attrs=read-write');
    expect(ci.read_only).toBe('postgresql://alice@10.0.0.1:5432,10.0.0.2:5432,[::1]:5432/app?connect_timeout=2&target_session_attrs=prefer-standby');
    expect(buildConnInfo([node(1)], {}).read_write).toBe('postgresql://10.0.0.1:5432/postgres?connect_timeout=2&target_session_attrs=read-write');
  });

  it('drain picks the least lagging streaming follower that may lead and says why the others may not', () => {
    const nodes = [node(1), node(2), node(3, { priority: 5 }), node(4, { canBeLeader: false }), node(5, { mode: 'referee', port: 0 })];
    const s = status(1, 1, [{ id: 2, lag: 100 }, { id: 3, lag: 100 }, { id: 4 }]);
    s.status.push({ id: 5, leader_id: 1, term: 3, online: true, state: 'FOLLOWER', last_known_state: null, since_last_hb_ms: 5 });
    const v = buildStatusView(s, 'cid', nodes);
    const r = pickSuccessors(v, nodes);
    expect(r.ids).toEqual([3, 2]);
    expect(r.excluded).toEqual(['node 4 has can_be_leader off', 'node 5 is a referee']);
    expect(v.members.find((m) => m.id === 5)!.role).toBe('referee');
    expect(v.leader_id).toBe(1);
  });
});
