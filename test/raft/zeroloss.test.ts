// Table tests of the zero-loss rule of synchronous mode: sync_standbys + 1 + nquorum > voting nodes.
import { describe, expect, it } from 'vitest';
import { DEFAULT_PARAMS, zeroLoss, zeroLossViolation } from '../../src/raft/index.js';
import type { ClusterConfig, ClusterParams, ConfigChange, NodeInfo, NodeMode } from '../../src/raft/index.js';

function node(id: number, mode: NodeMode = 'regular', over: Partial<NodeInfo> = {}): NodeInfo {
  return { id, host: `h${id}`, port: mode === 'referee' ? 0 : 5432, bihaPort: 5433, mode, canBeLeader: mode === 'regular', canVote: true, priority: 0, ...over };
}

/** `data` regular nodes, then `referees` referees, with the given parameters. */
function cfg(data: number, referees: number, params: Partial<ClusterParams>, over: Record<number, Partial<NodeInfo>> = {}): ClusterConfig {
  const nodes: NodeInfo[] = [];
  for (let i = 1; i <= data + referees; i++) nodes.push(node(i, i <= data ? 'regular' : 'referee', over[i] ?? {}));
  return { nodes, params: { ...DEFAULT_PARAMS, ...params } };
}

const addRegular = (id: number): ConfigChange => ({ type: 'add_node', node: node(id) });
const addReferee = (id: number): ConfigChange => ({ type: 'add_node', node: node(id, 'referee') });
const setK = (k: number): ConfigChange => ({ type: 'set_params', params: { syncStandbys: k } });
const setQ = (q: number, minnodes = 2): ConfigChange => ({ type: 'set_params', params: { nquorum: q, minnodes } });

describe('zeroLoss: the numbers of the rule for one configuration', () => {
  it.each([
    // data nodes, referees, K, nquorum, -> copies on voting nodes, election quorum, voters, deficit (> 0: broken)
    [3, 0, 1, 2, 2, 2, 3, 0],
    [3, 0, 2, 2, 3, 2, 3, -1],
    [3, 0, 1, 1, 2, 1, 3, 1],
    [5, 0, 1, 3, 2, 3, 5, 1],
    [5, 0, 2, 3, 3, 3, 5, 0],
    [2, 1, 1, 2, 2, 2, 3, 0],
    [2, 2, 1, 2, 2, 2, 4, 1],
    [2, 2, 1, 3, 2, 3, 4, 0],
    // K beyond the other regular nodes: ANY k (...) gets only as many as there are
    [2, 2, 3, 2, 2, 2, 4, 1],
    [1, 1, 1, 1, 1, 1, 2, 1],
    [1, 0, 1, 1, 1, 1, 1, 0],
    // nquorum above the voters counts as all of them
    [3, 0, 1, 9, 2, 3, 3, -1],
  ])('%i data + %i referees, K %i, nquorum %i -> %i copies, E %i, N %i, deficit %i', (data, refs, k, q, copies, e, n, deficit) => {
    const z = zeroLoss(cfg(data, refs, { syncStandbys: k, nquorum: q }));
    expect(z).not.toBeNull();
    expect([z!.votingCopies, z!.quorum, z!.voters, z!.deficit]).toEqual([copies, e, n, deficit]);
  });

  it('is null in asynchronous mode', () => {
    expect(zeroLoss(cfg(5, 0, { syncStandbys: 0, nquorum: 1 }))).toBeNull();
  });

  it('a referee_with_wal votes but is no synchronous standby', () => {
    const c: ClusterConfig = { ...cfg(2, 0, { syncStandbys: 2, nquorum: 2 }), nodes: [node(1), node(2), node(3, 'referee_with_wal')] };
    expect(zeroLoss(c)).toMatchObject({ effective: 1, votingCopies: 2, voters: 3, deficit: 0 });
  });

  it('a copy may sit on a regular node that does not vote: it does not count', () => {
    // 4 data nodes, node 4 without a vote, K 1, nquorum 2: the commit may be on nodes 1 and 4 only,
    // and nodes 2 and 3 elect one of them without it.
    const z = zeroLoss(cfg(4, 0, { syncStandbys: 1, nquorum: 2 }, { 4: { canVote: false } }));
    expect(z).toMatchObject({ copies: 2, votingCopies: 1, voters: 3, deficit: 1 });
  });
});

describe('zeroLossViolation: refuse a change that breaks the rule or makes a broken rule worse', () => {
  it.each<[string, ClusterConfig, ConfigChange, RegExp | null]>([
    // bihactl add
    ['3 data, K 1, nq 2 + referee', cfg(3, 0, { syncStandbys: 1, nquorum: 2 }), addReferee(4), /^adding node 4 breaks .*: 1 \+ 1 \+ 2 = 4 is not more than the 4 voting nodes .*raise sync_standbys to 2 or nquorum to 3 first$/],
    ['3 data, K 2, nq 2 + referee', cfg(3, 0, { syncStandbys: 2, nquorum: 2 }), addReferee(4), null],
    ['2 data + referee, K 1, nq 2 + referee', cfg(2, 1, { syncStandbys: 1, nquorum: 2 }), addReferee(4), /1 \+ 1 \+ 2 = 4 .*raise nquorum to 3 first \(sync_standbys cannot help: the leader has 1 other regular node\)$/],
    ['2 data, K 1, nq 2 + data', cfg(2, 0, { syncStandbys: 1, nquorum: 2 }), addRegular(3), null],
    ['3 data, K 1, nq 2 + data', cfg(3, 0, { syncStandbys: 1, nquorum: 2 }), addRegular(4), /raise sync_standbys to 2 or nquorum to 3 first$/],
    ['1 data, K 1, nq 1 + referee', cfg(1, 0, { syncStandbys: 1, nquorum: 1 }), addReferee(2), /0 \+ 1 \+ 1 = 2 .*sync_standbys 1 counts as 0: the leader has no other regular node.*raise nquorum to 2 first/],
    ['asynchronous: never', cfg(3, 0, { syncStandbys: 0, nquorum: 1 }), addReferee(4), null],
    ['a non-voter adds no voter', cfg(3, 0, { syncStandbys: 1, nquorum: 2 }), { type: 'add_node', node: node(4, 'regular', { canVote: false }) }, /copies .* do not vote|does not vote/],
    ['already broken, adding makes it worse', cfg(2, 2, { syncStandbys: 1, nquorum: 2 }), addReferee(5), /already broken before \(1 \+ 1 \+ 2 = 4, 4 voting nodes\)/],
    // biha.set_sync_standbys
    ['K 1 -> 0 on a broken cluster', cfg(2, 2, { syncStandbys: 1, nquorum: 2 }), setK(0), null],
    ['K 0 -> 1 where 1 is not enough', cfg(5, 0, { syncStandbys: 0, nquorum: 3 }), setK(1), /^sync_standbys 1 breaks .*: 1 \+ 1 \+ 3 = 5 is not more than the 5 voting nodes .*choose sync_standbys 2 or more, or raise nquorum to 4 first$/],
    ['K 0 -> 2 where 2 is enough', cfg(5, 0, { syncStandbys: 0, nquorum: 3 }), setK(2), null],
    ['K 2 -> 1 from safe to broken', cfg(5, 0, { syncStandbys: 2, nquorum: 3 }), setK(1), /^sync_standbys 1 breaks/],
    ['K 1 -> 1 as broken as it is', cfg(5, 0, { syncStandbys: 1, nquorum: 3 }), setK(1), null],
    ['K 1 -> 2 on a broken cluster, safer', cfg(6, 0, { syncStandbys: 1, nquorum: 3 }), setK(2), null],
    ['K 2 -> 1 on a broken cluster, worse', cfg(6, 0, { syncStandbys: 2, nquorum: 3 }), setK(1), /already broken before \(2 \+ 1 \+ 3 = 6, 6 voting nodes\)/],
    ['K 3 -> 2 beyond the other regular nodes: the same', cfg(2, 2, { syncStandbys: 3, nquorum: 2 }), setK(2), null],
    // biha.set_nquorum_and_minnodes
    ['nq 2 -> 1 with K 1 on 3 data', cfg(3, 0, { syncStandbys: 1, nquorum: 2 }), setQ(1), /^nquorum 1 breaks .*: 1 \+ 1 \+ 1 = 3 is not more than the 3 voting nodes .*choose nquorum 2 or more, or raise sync_standbys to 2 first$/],
    ['nq 2 -> 3 with K 1 on 3 data', cfg(3, 0, { syncStandbys: 1, nquorum: 2 }), setQ(3), null],
    ['minnodes only on a broken cluster', cfg(2, 2, { syncStandbys: 1, nquorum: 2 }), setQ(2, 3), null],
    ['nq 3 -> 2 on 2 data + 2 referees', cfg(2, 2, { syncStandbys: 1, nquorum: 3 }), setQ(2), /choose nquorum 3 or more \(sync_standbys cannot help: the leader has 1 other regular node\)$/],
    ['nq 2 -> 1 with K 0', cfg(3, 0, { syncStandbys: 0, nquorum: 2 }), setQ(1), null],
    // other changes that move the numbers
    ['a vote given to a referee', cfg(3, 1, { syncStandbys: 1, nquorum: 2 }, { 4: { canVote: false } }), { type: 'set_node', id: 4, patch: { canVote: true } }, /^that change to node 4 breaks/],
    ['removing a voter', cfg(2, 2, { syncStandbys: 1, nquorum: 2 }), { type: 'remove_node', id: 4 }, null],
    ['heartbeats', cfg(2, 2, { syncStandbys: 1, nquorum: 2 }), { type: 'set_params', params: { heartbeatMaxLost: 7 } }, null],
    // an invalid change is validateChange's to refuse
    ['invalid', cfg(3, 0, { syncStandbys: 1, nquorum: 2 }), addReferee(1), null],
  ])('%s', (_name, config, change, want) => {
    const got = zeroLossViolation(config, change);
    if (want === null) expect(got).toBeNull();
    else {
      expect(got).toMatch(want);
      expect(got).not.toContain('\n');
    }
  });

  it('a refused change is refused for every starting point where it breaks the rule, and a change that keeps or narrows the gap never is', () => {
    for (let data = 1; data <= 5; data++) {
      for (let refs = 0; refs <= 2; refs++) {
        for (let k = 0; k <= 4; k++) {
          for (let q = 1; q <= data + refs; q++) {
            const before = cfg(data, refs, { syncStandbys: k, nquorum: q });
            const b = zeroLoss(before);
            for (const change of [addReferee(99), setK(Math.max(0, k - 1)), setK(k + 1), setQ(Math.max(1, q - 1)), setQ(q + 1)]) {
              const got = zeroLossViolation(before, change);
              const after = zeroLoss(
                change.type === 'add_node'
                  ? { ...before, nodes: [...before.nodes, change.node] }
                  : { ...before, params: { ...before.params, ...(change as { params: Partial<ClusterParams> }).params } },
              );
              const refuse = after !== null && after.deficit > 0 && (b === null || after.deficit > b.deficit);
              expect(got !== null, `${data} data + ${refs} referees, K ${k}, nquorum ${q}: ${JSON.stringify(change)}`).toBe(refuse);
            }
          }
        }
      }
    }
  });
});
