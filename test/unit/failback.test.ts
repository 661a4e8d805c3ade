// The failback window's checks and its scheduler, with a stand-in leader.
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { BihaError } from '../../src/controller/errors.js';
import {
  FailbackScheduler,
  cronProblem,
  decodeFailback,
  encodeFailback,
  failbackChange,
  nodeProblem,
  notReady,
} from '../../src/controller/ops/failback.js';
import type { FailbackSetting } from '../../src/controller/ops/failback.js';
import type { StatusFile } from '../../src/controller/bridge/sqlbridge.js';
import type { ClusterConfig, NodeInfo } from '../../src/raft/index.js';

const node = (id: number, over: Partial<NodeInfo> = {}): NodeInfo => ({
  id, host: '127.0.0.1', port: 5000 + id, bihaPort: 6000 + id, mode: 'regular', canBeLeader: true, canVote: true, priority: 0, ...over,
});
const cfg: ClusterConfig = {
  nodes: [node(1), node(2), node(3, { mode: 'referee', canBeLeader: false }), node(4, { canBeLeader: false })],
  params: { nquorum: 2, minnodes: 2, heartbeatSendPeriod: 200, heartbeatMaxLost: 5, noWalOnFollower: 20000, syncStandbys: 0, serviceMode: false },
};

function status(over: { state?: string; online?: boolean; stream?: string | null; lag?: number | null } = {}): StatusFile {
  return {
    status: [
      { id: 1, leader_id: 2, term: 3, online: over.online ?? true, state: over.state ?? 'FOLLOWER', last_known_state: 'FOLLOWER', since_last_hb_ms: 10 },
      { id: 2, leader_id: 2, term: 3, online: true, state: 'LEADER_RW', last_known_state: 'LEADER_RW', since_last_hb_ms: 0 },
    ],
    monitoring: {
      pg_state: 'promoted',
      followers: over.stream === null ? [] : [{ id: 1, application_name: 'biha_node_1', state: over.stream ?? 'streaming', sync_state: 'async', lag_bytes: over.lag === undefined ? 0 : over.lag, lag_ms: 0 }],
    },
  } as unknown as StatusFile;
}

describe('failback checks', () => {
  it('validates cron expressions with one clear line', () => {
    expect(cronProblem('*/5 * * * *')).toBeNull();
    expect(cronProblem('* * * * * *')).toBeNull();
    expect(cronProblem('0 2 * * 1-5')).toBeNull();
    for (const bad of ['', 'every five minutes', '61 * * * *', '* * * *']) {
      const m = cronProblem(bad);
      expect(m).toMatch(/is not a valid cron expression: give 5 fields/);
      expect(m).not.toContain('\n');
    }
  });

  it('accepts only a member that can lead', () => {
    expect(nodeProblem(cfg, 1)).toBeNull();
    expect(nodeProblem(cfg, 9)).toMatch(/node 9 is not in the cluster/);
    expect(nodeProblem(cfg, 3)).toMatch(/node 3 is a referee and can never lead/);
    expect(nodeProblem(cfg, 4)).toMatch(/can_be_leader = false: allow it first with select biha.set_can_be_leader\(4, true\)/);
  });

  it('encodes the setting as config-log meta and back', () => {
    const c = failbackChange(cfg, { id: 1, cron: ' */5 * * * * ' });
    expect(c).toEqual({ type: 'set_meta', key: 'failback', value: '{"id":1,"cron":"*/5 * * * *"}' });
    expect(decodeFailback(c.type === 'set_meta' ? c.value : '')).toEqual({ id: 1, cron: '*/5 * * * *' });
    expect(failbackChange(cfg, null)).toEqual({ type: 'set_meta', key: 'failback', value: '' });
    expect(decodeFailback('')).toBeNull();
    expect(decodeFailback('garbage')).toBeNull();
    expect(encodeFailback(null)).toBe('');
    expect(() => failbackChange(cfg, { id: 1, cron: 'nope' })).toThrow(BihaError);
    expect(() => failbackChange(cfg, { id: 7, cron: '* * * * *' })).toThrow(/node 7 is not in the cluster/);
    expect(() => failbackChange(cfg, { id: 0, cron: '* * * * *' })).toThrow(/positive integer/);
  });

  it('hands leadership only to an online, streaming, caught-up follower', () => {
    expect(notReady(status(), 1)).toBeNull();
    expect(notReady(status({ lag: 4096 }), 1)).toBeNull();
    expect(notReady(status({ lag: 64 << 20 }), 1)).toMatch(/bytes behind/);
    expect(notReady(status({ lag: null }), 1)).toMatch(/bytes behind/);
    expect(notReady(status({ online: false }), 1)).toMatch(/offline/);
    expect(notReady(status({ state: 'NODE_ERROR' }), 1)).toMatch(/NODE_ERROR/);
    expect(notReady(status({ stream: 'catchup' }), 1)).toMatch(/does not stream/);
    expect(notReady(status({ stream: null }), 1)).toMatch(/does not stream/);
    expect(notReady(status(), 5)).toMatch(/not in the cluster/);
  });
});

describe('FailbackScheduler', () => {
  function rig(): { s: FailbackScheduler; st: { leader: boolean; setting: FailbackSetting | null; service: boolean; ready: boolean; transfers: number[] } } {
    const st = { leader: true, setting: null as FailbackSetting | null, service: false, ready: true, transfers: [] as number[] };
    const s = new FailbackScheduler({
      selfId: 2,
      log: pino({ level: 'silent' }),
      setting: () => st.setting,
      isLeader: () => st.leader,
      serviceMode: () => st.service,
      config: () => cfg,
      status: () => status(st.ready ? {} : { stream: null }),
      transfer: async (id) => {
        st.transfers.push(id);
        st.leader = false;
      },
    });
    return { s, st };
  }

  it('runs only on the leader with a setting, and follows changes', () => {
    const { s, st } = rig();
    s.sync();
    expect(s.active()).toBeNull();
    st.setting = { id: 1, cron: '0 0 1 1 *' };
    s.sync();
    expect(s.active()).toEqual(st.setting);
    st.setting = { id: 1, cron: '0 0 2 1 *' };
    s.sync();
    expect(s.active()).toEqual({ id: 1, cron: '0 0 2 1 *' });
    st.leader = false;
    s.sync();
    expect(s.active()).toBeNull();
    st.leader = true;
    s.sync();
    expect(s.active()).not.toBeNull();
    st.setting = null;
    s.sync();
    expect(s.active()).toBeNull();
    s.close();
  });

  it('a tick transfers when the node is ready, skips in service mode or when it is not', async () => {
    const { s, st } = rig();
    st.setting = { id: 1, cron: '0 0 1 1 *' };
    s.sync();
    st.service = true;
    await s.tick();
    expect(st.transfers).toEqual([]);
    st.service = false;
    st.ready = false;
    await s.tick();
    expect(st.transfers).toEqual([]);
    st.ready = true;
    await s.tick();
    expect(st.transfers).toEqual([1]);
    // Leadership went away with the transfer: the schedule stopped.
    expect(s.active()).toBeNull();
    await s.tick();
    expect(st.transfers).toEqual([1]);
    s.close();
  });

  it('the preferred node being the leader is nothing to do', async () => {
    const { s, st } = rig();
    st.setting = { id: 2, cron: '0 0 1 1 *' };
    s.sync();
    await s.tick();
    expect(st.transfers).toEqual([]);
    s.close();
  });
});
