// The product's raft driver and NC against a PostgreSQL whose behaviour each test sets: a vote leaves
// only after the fence took effect (votes fence WAL), and a promotion is prepared in the order that
// keeps both promises (synchronous standbys and the watchdog before pg_promote).
import { describe, expect, it } from 'vitest';
import { BihaError } from '../../src/controller/errors.js';
import type { WalPos } from '../../src/raft/index.js';
import { followerState, rig, voteRequest, votesGranted } from './harness.js';

describe('votes fence WAL', () => {
  it('a standby that still receives WAL is detached before its vote leaves, even when NC thinks it follows nobody', async () => {
    const r = await rig(2, followerState(3));
    r.pg.receiving = true; // the walreceiver runs although NC never set an upstream (a restarted controller)
    r.driver.step(voteRequest(3, 2, 4, { tli: 2, lsn: 200 }));
    await r.clock.advance(50);
    expect(r.pg.calls).toContain('detach');
    expect(votesGranted(r.sent, 4)).toHaveLength(1);
    // The vote was sent after the detach, and after a probe that saw no walreceiver.
    expect(r.pg.calls.lastIndexOf('probe')).toBeGreaterThan(r.pg.calls.indexOf('detach'));
  });

  it('the vote waits until the walreceiver has stopped (it stops asynchronously after the detach)', async () => {
    const r = await rig(2, followerState(3));
    r.pg.receiving = true;
    r.pg.receiverLingers = 5; // still there for five more probes after primary_conninfo = ''
    r.driver.step(voteRequest(3, 2, 4, { tli: 2, lsn: 200 }));
    await r.clock.advance(20);
    expect(votesGranted(r.sent, 4)).toHaveLength(0);
    await r.clock.advance(100);
    expect(r.pg.receiverLingers).toBe(0);
    expect(votesGranted(r.sent, 4)).toHaveLength(1);
  });

  it('no vote leaves when the walreceiver does not stop', async () => {
    const r = await rig(2, followerState(3));
    r.pg.receiving = true;
    r.pg.detach = async () => {
      r.pg.calls.push('detach (ignored)');
    };
    r.driver.step(voteRequest(3, 2, 4, { tli: 2, lsn: 200 }));
    await r.clock.advance(6000);
    expect(votesGranted(r.sent, 4)).toHaveLength(0);
  });

  it('a primary whose fence fails sends no vote', async () => {
    const r = await rig(2, followerState(3));
    r.pg.role = 'PRIMARY';
    r.pg.fenceFails = true;
    r.driver.step(voteRequest(3, 2, 4, { tli: 2, lsn: 200 }));
    await r.clock.advance(100);
    expect(r.pg.calls).toContain('fence immediate');
    expect(votesGranted(r.sent, 4)).toHaveLength(0);
    // The vote itself was persisted (so no other candidate gets it in this term): only not sent.
    expect(r.persisted.some((s) => s.hard.term === 4 && s.hard.vote === 3)).toBe(true);
  });

  it('a vote is withheld when the WAL, once nothing arrives any more, ends past the candidate\'s', async () => {
    const r = await rig(2, followerState(3));
    r.pg.wal = { tli: 2, lsn: 150 }; // polled: 150
    await r.driver.poll();
    r.pg.receiving = true;
    r.pg.wal = { tli: 2, lsn: 180 }; // more WAL arrived since the poll
    r.driver.step(voteRequest(3, 2, 4, { tli: 2, lsn: 160 })); // raft judged 160 >= 150: granted
    await r.clock.advance(50);
    expect(votesGranted(r.sent, 4)).toHaveLength(0);
  });
});

describe('leadership transfer', () => {
  it("a candidate's vote requests carry the WAL its fence read, not the position polled before", async () => {
    const r = await rig(2, followerState(3));
    r.pg.wal = { tli: 2, lsn: 150 };
    await r.driver.poll();
    r.pg.receiving = true;
    r.pg.wal = { tli: 2, lsn: 180 }; // the rest of the old leader's WAL arrived since the poll
    r.driver.step({ type: 'timeout_now', from: 1, to: 2, term: 3 });
    await r.clock.advance(50);
    const votes = r.sent.filter((m) => m.type === 'vote' && m.term === 4);
    expect(votes.map((m) => m.to).sort()).toEqual([1, 3]);
    for (const v of votes) expect(v.type === 'vote' && v.wal).toEqual({ tli: 2, lsn: 180 });
    expect(r.pg.calls.indexOf('detach')).toBeLessThan(r.pg.calls.lastIndexOf('probe'));
  });

  it('the target of a transfer reads its WAL position again on every message that marks the transfer', async () => {
    const r = await rig(2, followerState(3));
    const app = (transfer: boolean): Parameters<typeof r.driver.step>[0] => ({
      type: 'app', from: 1, to: 2, term: 3, prevIndex: 1, prevTerm: 3, entries: [], commit: 1, seq: 1, peers: [], wal: { tli: 2, lsn: 300 },
      ...(transfer ? { transfer: true } : {}),
    });
    r.driver.step(app(false));
    await r.clock.advance(1);
    const before = r.pg.calls.filter((c) => c === 'probe').length;
    r.driver.step(app(true));
    await r.clock.advance(1);
    expect(r.pg.calls.filter((c) => c === 'probe').length).toBe(before + 1);
  });
});

describe('timers', () => {
  it('keeps one pending timer per periodic loop however long it runs (no growing list of cancels)', async () => {
    const r = await rig(2, followerState(3));
    r.driver.start(10, 50);
    await r.clock.advance(100);
    const held = (): number => (r.driver as unknown as { cancels: unknown[] }).cancels.length;
    const early = held();
    await r.clock.advance(5000);
    expect(held()).toBe(early);
    expect(early).toBe(2); // the tick and the PostgreSQL poll
  });
});

describe('switchover on the leader', () => {
  /**
   * Node 1 of three, elected with the votes of nodes 2 and 3, which answer every message at once and
   * report `peerWal`. Returns the rig and a function that runs the clock with the peers answering.
   */
  async function electedLeader(peerWal: Map<number, WalPos>) {
    const r = await rig(1, followerState(3));
    r.pg.wal = { tli: 2, lsn: 500 };
    let seen = 0;
    const run = async (ms: number): Promise<void> => {
      for (let t = 0; t < ms; t += 5) {
        await r.clock.advance(5);
        const fresh = r.sent.slice(seen);
        seen = r.sent.length;
        for (const m of fresh) {
          if (m.type === 'prevote' || m.type === 'vote') {
            r.driver.step({ type: m.type === 'vote' ? 'vote_resp' : 'prevote_resp', from: m.to, to: 1, term: m.term, reject: false });
          } else if (m.type === 'app') {
            r.driver.step({
              type: 'app_resp', from: m.to, to: 1, term: m.term, reject: false,
              matchIndex: m.prevIndex + m.entries.length, seq: m.seq, wal: peerWal.get(m.to) ?? { tli: 2, lsn: 0 }, state: 'FOLLOWER',
            });
          }
        }
      }
    };
    r.driver.start(10, 50);
    await run(3000);
    return { r, run };
  }

  it('hands over once PostgreSQL stopped cleanly, without waiting for its restart as a standby', async () => {
    const peerWal = new Map<number, WalPos>([[2, { tli: 3, lsn: 501 }], [3, { tli: 3, lsn: 501 }]]);
    const { r, run } = await electedLeader(peerWal);
    expect(r.driver.soft().writable).toBe(true);
    // The clean stop ends the WAL at 700 (its shutdown checkpoint); the restart takes long.
    let restart!: () => void;
    r.pg.fence = async (mode, stopped) => {
      r.pg.calls.push(`fence ${mode}`);
      r.pg.role = 'STOPPED';
      stopped?.({ tli: 3, lsn: 700 });
      await new Promise<void>((res) => (restart = res));
      r.pg.role = 'STANDBY';
    };
    expect(r.driver.raft?.transferLeadership(2, r.clock.now()).ok).toBe(true);
    await run(100);
    expect(r.pg.calls).toContain('fence fast');
    // The target has not reported the WAL up to the end yet: no TimeoutNow.
    expect(r.sent.filter((m) => m.type === 'timeout_now')).toHaveLength(0);
    // The messages to the target ask it for fresh WAL reports.
    expect(r.sent.some((m) => m.type === 'app' && m.to === 2 && m.transfer === true)).toBe(true);
    peerWal.set(2, { tli: 3, lsn: 700 });
    await run(50);
    expect(r.sent.filter((m) => m.type === 'timeout_now' && m.to === 2)).toHaveLength(1);
    restart();
    await run(10);
  });

  it('without a known WAL end (an immediate stop) hands over only after the restarted standby reports it', async () => {
    const peerWal = new Map<number, WalPos>([[2, { tli: 3, lsn: 900 }], [3, { tli: 3, lsn: 501 }]]);
    const { r, run } = await electedLeader(peerWal);
    let restart!: () => void;
    r.pg.fence = async (mode, stopped) => {
      r.pg.calls.push(`fence ${mode}`);
      r.pg.role = 'STOPPED';
      stopped?.(null);
      await new Promise<void>((res) => (restart = res));
      r.pg.role = 'STANDBY';
    };
    expect(r.driver.raft?.transferLeadership(2, r.clock.now()).ok).toBe(true);
    await run(200);
    expect(r.sent.filter((m) => m.type === 'timeout_now')).toHaveLength(0);
    restart();
    await run(200);
    expect(r.sent.filter((m) => m.type === 'timeout_now' && m.to === 2)).toHaveLength(1);
  });
});

describe('promotion', () => {
  /** A single-voter cluster (minnodes 1): this node wins at once and promotes. */
  async function leaderRig(opts: { watchdogConfirms?: boolean; watchdogUp?: boolean; persistMs?: number } = {}) {
    const state = followerState(3, { nquorum: 1, minnodes: 1, syncStandbys: 1 });
    const r = await rig(1, { ...state, log: { ...state.log, snapshot: { ...state.log.snapshot, config: { ...state.log.snapshot.config, nodes: [state.log.snapshot.config.nodes[0]!, { ...state.log.snapshot.config.nodes[1]!, canVote: false }, { ...state.log.snapshot.config.nodes[2]!, canVote: false }] } } } }, { persistMs: opts.persistMs ?? 0 });
    r.wd.confirms = opts.watchdogConfirms ?? true;
    r.wd.up = opts.watchdogUp ?? true;
    r.driver.start(10, 50);
    await r.clock.advance(2000);
    return r;
  }

  it('sets synchronous_standby_names and slots, and arms the watchdog, before pg_promote', async () => {
    const r = await leaderRig();
    const c = r.pg.calls;
    const promote = c.indexOf('promote');
    expect(promote).toBeGreaterThan(0);
    const sync = c.findIndex((x) => x.startsWith("sync 'ANY 1"));
    expect(sync).toBeGreaterThanOrEqual(0);
    expect(sync).toBeLessThan(promote);
    expect(c.findIndex((x) => x.startsWith('slots biha_node_2,biha_node_3'))).toBeLessThan(promote);
    expect(c.findIndex((x) => x.startsWith('prepare '))).toBeLessThan(promote);
    expect(r.wd.calls.findIndex((x) => x.startsWith('arm '))).toBeGreaterThanOrEqual(0);
  });

  it('a new primary makes the slots of nodes it does not hear hold WAL, after pg_promote only', async () => {
    const r = await leaderRig();
    const c = r.pg.calls;
    const promote = c.indexOf('promote');
    // Before pg_promote, on a standby, slots are only made to exist.
    expect(c.slice(0, promote).filter((x) => x.includes(' hold '))).toEqual([]);
    // Nodes 2 and 3 never answered: their slots hold WAL for their return.
    expect(c.slice(promote)).toContain('slots biha_node_2,biha_node_3 hold biha_node_2,biha_node_3');
  });

  it('a node that wins its own election in one step promotes only after its vote is persisted and its WAL fenced', async () => {
    const r = await leaderRig({ persistMs: 120 });
    const c = r.pg.calls;
    const voted = c.indexOf('persisted term 4 vote 1');
    expect(voted).toBeGreaterThanOrEqual(0);
    expect(voted).toBeLessThan(c.indexOf('promote'));
    // The candidacy's fence ran on the standby, not on the new primary.
    expect(c.filter((x) => x.startsWith('fence'))).toEqual([]);
    expect(c.filter((x) => x === 'promote')).toHaveLength(1);
  });

  it('promotes to the timeline it reserved through the config log', async () => {
    const r = await leaderRig();
    const prepare = r.pg.calls.find((x) => x.startsWith('prepare '));
    expect(prepare).toBe('prepare 3'); // PostgreSQL on 2; the first entry of the term reserved 3
    expect(r.driver.raft?.highestReservedTli()).toBe(3);
    expect(r.pg.tli).toBe(3);
  });

  it('does not promote when the watchdog does not confirm the deadline', async () => {
    const r = await leaderRig({ watchdogConfirms: false });
    expect(r.pg.calls).not.toContain('promote');
    expect(r.pg.role).toBe('STANDBY');
  });

  it('does not lead at all while no watchdog runs, and a leader whose watchdog dies steps down', async () => {
    const none = await leaderRig({ watchdogUp: false });
    expect(none.driver.soft().role).not.toBe('leader');
    expect(none.pg.calls).not.toContain('promote');

    const r = await leaderRig();
    expect(r.driver.soft().role).toBe('leader');
    r.wd.up = false;
    await r.clock.advance(100);
    expect(r.driver.soft().role).not.toBe('leader');
    // Not leading any more: NC fences the primary.
    expect(r.pg.calls.filter((x) => x.startsWith('fence'))).toHaveLength(1);
    expect(r.pg.role).toBe('STANDBY');
  });
});

describe('automatic rewind', () => {
  /** Node 2 (WAL to 150 on timeline 2) hears leader 1, whose timeline 3 forked from 2 at 100: diverged. */
  async function divergedFollower(rewind: () => Promise<void>) {
    const r = await rig(2, followerState(3), { autorewind: true, peers: () => ({ tli: 3, history: [{ parentTli: 2, switchLsn: 100 }] }) });
    r.pg.wal = { tli: 2, lsn: 150 };
    let attempts = 0;
    r.pg.rewind = async (_source, stopped) => {
      attempts++;
      stopped();
      await rewind();
    };
    r.driver.start(10, 50);
    const app = { type: 'app' as const, from: 1, to: 2, term: 3, prevIndex: 1, prevTerm: 3, entries: [], commit: 1, seq: 1, peers: [], wal: { tli: 3, lsn: 300 } };
    for (let i = 0; i < 40; i++) {
      r.driver.step({ ...app, seq: i + 1 });
      await r.clock.advance(100);
    }
    return { r, attempts: () => attempts };
  }

  it('a rewind whose source cannot be reached is tried again later, without NODE_ERROR (nothing was changed)', async () => {
    const { r, attempts } = await divergedFollower(async () => {
      throw new BihaError('rewind_source_unreachable', 'pg_rewind --dry-run could not connect to node 1');
    });
    expect(attempts()).toBeGreaterThan(1);
    expect(r.nodeError).toBeNull();
  });

  it('a rewind that fails otherwise puts the node in NODE_ERROR (REWIND_FAILED)', async () => {
    const { r, attempts } = await divergedFollower(async () => {
      throw new Error('pg_rewind failed: could not open file');
    });
    expect(attempts()).toBe(1);
    expect(r.nodeError?.type).toBe('REWIND_FAILED');
  });
});

