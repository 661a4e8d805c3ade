// Table tests of the pure helpers: quorum arithmetic, WAL order, lease, validation, ranking.
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_PARAMS,
  RaftError,
  applyChange,
  bootstrapState,
  commitQuorum,
  compareWal,
  electionQuorum,
  electionRank,
  electionTimeoutMs,
  joiningState,
  leaseMs,
  splitBrainWarning,
  validateChange,
} from '../../src/raft/index.js';
import type { BihaState, ClusterConfig, ClusterParams, ConfigChange, NodeInfo, PeerView, WalPos } from '../../src/raft/index.js';

function node(id: number, over: Partial<NodeInfo> = {}): NodeInfo {
  return { id, host: `h${id}`, port: 5432, bihaPort: 5433, mode: 'regular', canBeLeader: true, canVote: true, priority: 0, ...over };
}

function cfg(voters: number, params: Partial<ClusterParams> = {}, nonVoters = 0): ClusterConfig {
  const nodes: NodeInfo[] = [];
  for (let i = 1; i <= voters; i++) nodes.push(node(i));
  for (let i = 1; i <= nonVoters; i++) nodes.push(node(voters + i, { canVote: false }));
  return { nodes, params: { ...DEFAULT_PARAMS, ...params } };
}

const wal = (tli: number, lsn: number): WalPos => ({ tli, lsn });

describe('electionQuorum / commitQuorum', () => {
  it.each([
    // voters, nquorum, non-voters, election quorum, commit quorum
    [1, 1, 0, 1, 1],
    [1, 2, 0, 1, 1],
    [2, 1, 0, 1, 2],
    [2, 2, 0, 2, 1],
    [3, 1, 0, 1, 3],
    [3, 2, 0, 2, 2],
    [3, 3, 0, 3, 1],
    [5, 2, 0, 2, 4],
    [5, 3, 0, 3, 3],
    [3, 2, 2, 2, 2],
    [4, 9, 0, 4, 1],
  ])('%i voters, nquorum %i, %i non-voters -> E=%i C=%i', (v, nq, nv, e, c) => {
    const config = cfg(v, { nquorum: nq }, nv);
    expect(electionQuorum(config)).toBe(e);
    expect(commitQuorum(config)).toBe(c);
  });

  it('every commit quorum meets every election quorum (C + E > voters)', () => {
    for (let v = 1; v <= 9; v++) {
      for (let nq = 1; nq <= 10; nq++) {
        const config = cfg(v, { nquorum: nq });
        expect(commitQuorum(config) + electionQuorum(config)).toBeGreaterThan(v);
        expect(commitQuorum(config)).toBeLessThanOrEqual(v);
      }
    }
  });
});

describe('compareWal', () => {
  it.each([
    [wal(1, 100), wal(1, 100), 0],
    [wal(1, 100), wal(1, 200), -1],
    [wal(1, 300), wal(1, 200), 1],
    [wal(2, 0), wal(1, 2 ** 40), 1],
    [wal(1, 2 ** 40), wal(2, 0), -1],
    [wal(0, 0), wal(1, 0), -1],
  ])('%o vs %o -> %i', (a, b, want) => {
    expect(Math.sign(compareWal(a, b))).toBe(want);
  });
});

describe('timing', () => {
  it.each([
    // hb, maxLost, drift, T, lease
    [1000, 10, 0.01, 10000, 9301],
    [200, 5, 0.01, 1000, 880],
    [1000, 10, 0, 10000, 9500],
    [200, 5, 0.05, 1000, 804],
    [10, 2, 0.01, 20, 0],
    [100, 10, 0.01, 1000, 930],
  ])('hb %i x %i (drift %f): T=%i lease=%i', (hb, lost, drift, t, lease) => {
    const p = { ...DEFAULT_PARAMS, heartbeatSendPeriod: hb, heartbeatMaxLost: lost };
    expect(electionTimeoutMs(p)).toBe(t);
    expect(leaseMs(p, drift)).toBe(lease);
  });

  it('the lease, stretched by the worst drift, ends before T shrunk by the worst drift', () => {
    for (const hb of [10, 50, 200, 1000, 5000, 60000]) {
      for (const lost of [2, 3, 5, 10, 100, 1000]) {
        for (const rho of [0, 0.001, 0.01, 0.05]) {
          const p = { ...DEFAULT_PARAMS, heartbeatSendPeriod: hb, heartbeatMaxLost: lost };
          const t = electionTimeoutMs(p);
          const lease = leaseMs(p, rho);
          expect(lease).toBeGreaterThanOrEqual(0);
          // real time the leader may stay writable < real time a voter must wait
          if (lease > 0) expect(lease / (1 - rho)).toBeLessThan(t / (1 + rho));
        }
      }
    }
  });
});

describe('validateChange / applyChange', () => {
  const base = cfg(3);
  const cases: Array<[string, ConfigChange, string | null]> = [
    ['add a new node', { type: 'add_node', node: node(4) }, null],
    ['add a referee', { type: 'add_node', node: node(4, { mode: 'referee', port: 0, canBeLeader: false }) }, null],
    ['add a duplicate id', { type: 'add_node', node: node(2) }, 'already a member'],
    ['add id 0', { type: 'add_node', node: node(0) }, 'positive integer'],
    ['add id -1', { type: 'add_node', node: node(-1) }, 'positive integer'],
    ['add id 1.5', { type: 'add_node', node: node(1.5) }, 'positive integer'],
    ['add a bad mode', { type: 'add_node', node: node(4, { mode: 'witness' as never }) }, 'unknown node mode'],
    ['add a bad port', { type: 'add_node', node: node(4, { port: 70000 }) }, 'port must be at most 65535'],
    ['add an empty host', { type: 'add_node', node: node(4, { host: '' }) }, 'host'],
    ['remove a member', { type: 'remove_node', id: 3 }, null],
    ['remove an unknown node', { type: 'remove_node', id: 9 }, 'not a member'],
    ['nquorum 2 minnodes 2', { type: 'set_params', params: { nquorum: 2, minnodes: 2 } }, null],
    ['nquorum above the node count', { type: 'set_params', params: { nquorum: 5 } }, null],
    ['nquorum 0', { type: 'set_params', params: { nquorum: 0 } }, 'nquorum must be at least 1'],
    ['minnodes 0', { type: 'set_params', params: { minnodes: 0 } }, 'minnodes must be at least 1'],
    ['heartbeat 9 ms', { type: 'set_params', params: { heartbeatSendPeriod: 9 } }, 'at least 10'],
    ['heartbeat 60000 ms', { type: 'set_params', params: { heartbeatSendPeriod: 60000 } }, null],
    ['heartbeat 60001 ms', { type: 'set_params', params: { heartbeatSendPeriod: 60001 } }, 'at most 60000'],
    ['max lost 1', { type: 'set_params', params: { heartbeatMaxLost: 1 } }, 'at least 2'],
    ['max lost 1001', { type: 'set_params', params: { heartbeatMaxLost: 1001 } }, 'at most 1000'],
    ['no WAL on follower -1', { type: 'set_params', params: { noWalOnFollower: -1 } }, 'at least 0'],
    ['sync standbys 1', { type: 'set_params', params: { syncStandbys: 1 } }, null],
    ['sync standbys 1.5', { type: 'set_params', params: { syncStandbys: 1.5 } }, 'integer'],
    ['service mode', { type: 'set_params', params: { serviceMode: true } }, null],
    ['service mode not boolean', { type: 'set_params', params: { serviceMode: 1 as never } }, 'true or false'],
    ['unknown parameter', { type: 'set_params', params: { bogus: 1 } as never }, 'unknown parameter'],
    ['set_node priority', { type: 'set_node', id: 2, patch: { priority: 5 } }, null],
    ['set_node unknown', { type: 'set_node', id: 9, patch: { priority: 5 } }, 'not a member'],
    ['set_node mode', { type: 'set_node', id: 2, patch: { mode: 'referee' } as never }, 'cannot be changed'],
    ['set_meta', { type: 'set_meta', key: 'secret', value: 'x' }, null],
    ['set_meta empty key', { type: 'set_meta', key: '', value: 'x' }, 'non-empty'],
  ];
  it.each(cases)('%s', (_name, change, want) => {
    const got = validateChange(base, change);
    if (want === null) {
      expect(got).toBeNull();
      expect(() => applyChange(base, change)).not.toThrow();
    } else {
      expect(got).toContain(want);
      expect(() => applyChange(base, change)).toThrow(RaftError);
    }
  });

  it('keeps at least one voter', () => {
    const one = cfg(1, {}, 1);
    expect(validateChange(one, { type: 'remove_node', id: 1 })).toContain('without a voting node');
    expect(validateChange(one, { type: 'set_node', id: 1, patch: { canVote: false } })).toContain('last voting node');
  });

  it('applies each kind of change without touching the input', () => {
    const added = applyChange(base, { type: 'add_node', node: node(0.5 + 3.5) });
    expect(added.nodes.map((n) => n.id)).toEqual([1, 2, 3, 4]);
    expect(base.nodes).toHaveLength(3);
    expect(applyChange(base, { type: 'remove_node', id: 2 }).nodes.map((n) => n.id)).toEqual([1, 3]);
    const p = applyChange(base, { type: 'set_params', params: { nquorum: 2, minnodes: 2 } }).params;
    expect(p).toEqual({ ...DEFAULT_PARAMS, nquorum: 2, minnodes: 2 });
    expect(applyChange(base, { type: 'set_node', id: 2, patch: { canBeLeader: false } }).nodes[1]?.canBeLeader).toBe(false);
    expect(applyChange(base, { type: 'set_meta', key: 'k', value: 'v' })).toBe(base);
    try {
      applyChange(base, { type: 'remove_node', id: 7 });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(RaftError);
      expect((err as RaftError).code).toBe('invalid_change');
      expect((err as RaftError).message).toContain('node 7 is not a member');
    }
  });
});

describe('splitBrainWarning', () => {
  it.each([
    // voters, nquorum, minnodes, warns
    [1, 1, 1, false],
    [2, 1, 1, true],
    [2, 2, 1, false],
    [2, 2, 2, false],
    [3, 2, 2, false],
    [3, 2, 1, true],
    [3, 1, 3, true],
    [3, 3, 1, false],
    [4, 2, 3, true],
    [4, 3, 2, false],
    [5, 3, 3, false],
    [5, 3, 2, true],
  ])('%i voters, nquorum %i, minnodes %i -> %s', (v, nq, mn, warns) => {
    const w = splitBrainWarning(cfg(v, { nquorum: nq, minnodes: mn }));
    if (warns) expect(w).toMatch(/^split brain possible: /);
    else expect(w).toBeNull();
  });
});

describe('electionRank', () => {
  const config: ClusterConfig = {
    nodes: [node(1), node(2), node(3, { priority: 5 }), node(4), node(5, { mode: 'referee', canBeLeader: false }), node(6, { canBeLeader: false })],
    params: DEFAULT_PARAMS,
  };
  const view = (id: number, w: WalPos, online = true, state: BihaState = 'FOLLOWER'): PeerView => ({
    id, wal: w, state, lastKnownState: state, sinceLastHbMs: online ? 10 : 20000, online, term: 1,
  });
  const peers = [
    view(1, wal(1, 900)), // the lost leader (view sender): ignored
    view(2, wal(1, 500)),
    view(3, wal(1, 500)),
    view(4, wal(1, 400)),
    view(5, wal(1, 999)), // referee: ignored
    view(6, wal(1, 999)), // cannot lead: ignored
  ];
  it.each([
    // self id, self wal, priority, expected rank
    [4, wal(1, 400), 0, 2], // behind 2 and 3
    [4, wal(1, 600), 0, 0], // its own fresh WAL is the most advanced
    [2, wal(1, 500), 0, 1], // same WAL as 3, but 3 has the higher priority
    [3, wal(1, 500), 5, 0],
    [4, wal(1, 500), 0, 2], // ties with 2 and 3: 3 by priority, 2 by lower id
    [4, wal(2, 0), 0, 0], // newer timeline wins
  ])('node %i with %o prio %i -> rank %i', (id, w, prio, want) => {
    expect(electionRank({ id, wal: w, priority: prio }, config, peers, 1)).toBe(want);
  });

  it('ignores peers offline or in NODE_ERROR in the last view', () => {
    const p2 = [view(2, wal(1, 500), false), view(3, wal(1, 500), true, 'NODE_ERROR')];
    expect(electionRank({ id: 4, wal: wal(1, 0), priority: 0 }, config, p2, 1)).toBe(0);
  });
});

describe('initial states', () => {
  it('bootstrapState is a committed one-node configuration in term 1', () => {
    const s = bootstrapState(node(1), DEFAULT_PARAMS);
    expect(s.hard).toEqual({ term: 1, vote: 1, commit: 1 });
    expect(s.log.snapshot).toEqual({ index: 1, term: 1, config: { nodes: [node(1)], params: DEFAULT_PARAMS }, meta: {} });
    expect(s.log.entries).toEqual([]);
  });
  it('joiningState knows nothing', () => {
    const s = joiningState();
    expect(s.hard).toEqual({ term: 0, vote: 0, commit: 0 });
    expect(s.log.snapshot.index).toBe(0);
    expect(s.log.snapshot.config.nodes).toEqual([]);
  });
});
