// NC's decisions as data: every raft situation decideGoal knows, against every PostgreSQL role, picks
// the row of TABLE it should; and every row of TABLE is picked by some situation.
import { describe, expect, it } from 'vitest';
import { TABLE, decideGoal, fsmTable } from '../../src/controller/driver/nc.js';
import type { Goal, Observed, Row, Situation, TimelineStep } from '../../src/controller/driver/nc.js';
import type { PgRole } from '../../src/controller/driver/types.js';
import { DEFAULT_PARAMS } from '../../src/raft/index.js';
import type { ClusterConfig, SoftState } from '../../src/raft/index.js';
import { node } from './harness.js';

const config: ClusterConfig = { nodes: [node(1), node(2), node(3)], params: DEFAULT_PARAMS };
const soft = (s: Partial<SoftState>): SoftState => ({ role: 'follower', term: 5, leaderId: 0, writable: false, state: 'FOLLOWER', transferTarget: 0, ...s });

/** The raft situations decideGoal distinguishes, for node 1. */
const GOALS: Record<string, Goal> = {
  stopping: decideGoal(1, soft({}), false, true),
  held: decideGoal(1, soft({ role: 'leader', leaderId: 1, writable: true }), true, false, 'half rewound'),
  nodeError: decideGoal(1, soft({ leaderId: 2 }), true, false),
  leaderRW: decideGoal(1, soft({ role: 'leader', leaderId: 1, writable: true, state: 'LEADER_RW' }), false, false),
  leaderRO: decideGoal(1, soft({ role: 'leader', leaderId: 1, state: 'LEADER_RO' }), false, false),
  transfer: decideGoal(1, soft({ role: 'leader', leaderId: 1, transferTarget: 2, state: 'LEADER_RO' }), false, false),
  givingWay: decideGoal(1, soft({ role: 'leader', leaderId: 1, transferTarget: 2, state: 'LEADER_RO', givingWay: true }), false, false),
  follower: decideGoal(1, soft({ leaderId: 2 }), false, false),
  noLeader: decideGoal(1, soft({}), false, false),
};

describe('decideGoal', () => {
  it('maps each raft situation to a PostgreSQL goal', () => {
    const brief = Object.fromEntries(Object.entries(GOALS).map(([k, g]) => [k, `${g.role} ${String(g.upstream)} ${g.fence}`]));
    expect(brief).toEqual({
      stopping: 'STOPPED 0 fast',
      held: 'STOPPED 0 immediate',
      nodeError: 'STANDBY 0 immediate',
      leaderRW: 'PRIMARY 0 immediate',
      leaderRO: 'STANDBY 0 immediate',
      transfer: 'STANDBY 0 fast',
      givingWay: 'STANDBY 0 immediate',
      follower: 'STANDBY 2 immediate',
      noLeader: 'STANDBY keep immediate',
    });
  });
});

const obs = (o: Partial<Observed>): Observed => ({ role: 'STANDBY', upstream: 0, stalled: false, diverged: null, checkedTli: 0, ...o });
const diverged = (autorewind: boolean): Observed['diverged'] => ({
  from: 2, at: { switchLsn: 100, nextTli: 3 }, sharedTli: 2, tli: 2, end: 150, replay: 150, leaderTli: 3, autorewind,
});

function situation(goal: Goal, o: Observed, extra: Partial<Situation> = {}): Situation {
  const follow = typeof goal.upstream === 'number' && goal.upstream !== 0 ? node(goal.upstream) : null;
  return {
    goal,
    o,
    config,
    follow,
    divergedFromGoal: o.diverged !== null && follow !== null && o.diverged.from === follow.id,
    upstreamNewTimeline: false,
    rewindAllowed: o.diverged?.autorewind === true,
    slots: { want: [], hold: [] },
    slotsPending: false,
    syncPending: false,
    timeline: { kind: 'ready', tli: 3 } as TimelineStep,
    inError: new Set(),
    ...extra,
  };
}

function pick(s: Situation): Row {
  return TABLE[s.o.role][s.goal.role].find((r) => r.test(s))!;
}

/** [situation name, observed, extra, the row's action] — every decideGoal goal against every role. */
const CASES: Array<[keyof typeof GOALS, Partial<Observed>, Partial<Situation>, string]> = [
  ['stopping', { role: 'STOPPED' }, {}, 'nothing to do'],
  ['stopping', { role: 'STANDBY' }, {}, 'stop PostgreSQL'],
  ['stopping', { role: 'PRIMARY' }, {}, 'stop PostgreSQL'],
  ['held', { role: 'STOPPED' }, {}, 'nothing to do'],
  ['held', { role: 'STANDBY' }, {}, 'stop PostgreSQL'],
  ['held', { role: 'PRIMARY' }, {}, 'stop PostgreSQL'],
  ['nodeError', { role: 'STOPPED' }, {}, 'start PostgreSQL as a standby that follows nobody yet'],
  ['nodeError', { role: 'STANDBY', upstream: 2 }, {}, 'stop streaming (detach)'],
  ['nodeError', { role: 'STANDBY' }, {}, 'nothing to do'],
  ['nodeError', { role: 'PRIMARY' }, {}, 'fence: stop accepting writes and restart as a standby'],
  ['leaderRW', { role: 'STOPPED' }, {}, 'start PostgreSQL as a detached standby before promoting it'],
  ['leaderRW', { role: 'STANDBY' }, { timeline: { kind: 'reserve' } }, 'reserve a timeline through the config log'],
  ['leaderRW', { role: 'STANDBY' }, { timeline: { kind: 'wait', tli: 3 } }, 'wait until the timeline reservation is committed'],
  ['leaderRW', { role: 'STANDBY' }, {}, 'promote: synchronous standbys and slots first, watchdog armed, then pg_promote'],
  ['leaderRW', { role: 'PRIMARY' }, { syncPending: true }, 'keep slots and synchronous standbys in line'],
  ['leaderRW', { role: 'PRIMARY' }, {}, 'nothing to do'],
  ['leaderRO', { role: 'STOPPED' }, {}, 'start PostgreSQL as a standby that follows nobody yet'],
  ['leaderRO', { role: 'STANDBY' }, {}, 'nothing to do'],
  ['leaderRO', { role: 'PRIMARY' }, {}, 'fence: stop accepting writes and restart as a standby'],
  ['transfer', { role: 'STOPPED' }, {}, 'start PostgreSQL as a standby that follows nobody yet'],
  ['transfer', { role: 'STANDBY' }, { slotsPending: true }, 'keep slots for the other data nodes (ready for a promotion)'],
  ['transfer', { role: 'PRIMARY' }, {}, 'fence: stop accepting writes and restart as a standby'],
  ['givingWay', { role: 'STOPPED' }, {}, 'start PostgreSQL as a standby that follows nobody yet'],
  ['givingWay', { role: 'STANDBY' }, {}, 'nothing to do'],
  ['givingWay', { role: 'PRIMARY' }, {}, 'fence: stop accepting writes and restart as a standby'],
  ['follower', { role: 'STOPPED' }, {}, 'start PostgreSQL as a standby that follows nobody yet'],
  ['follower', { role: 'STANDBY', diverged: diverged(true) }, {}, 'pg_rewind from the leader'],
  ['follower', { role: 'STANDBY', diverged: diverged(false) }, {}, 'stop replication: NODE_ERROR'],
  ['follower', { role: 'STANDBY' }, {}, 'follow the leader (after comparing timelines)'],
  ['follower', { role: 'STANDBY', upstream: 3 }, {}, 'follow the leader (after comparing timelines)'],
  ['follower', { role: 'STANDBY', upstream: 2 }, { upstreamNewTimeline: true }, 'compare timelines with the leader again'],
  ['follower', { role: 'STANDBY', upstream: 2, stalled: true }, {}, 're-establish replication (detach, then follow again)'],
  ['follower', { role: 'STANDBY', upstream: 2 }, { slotsPending: true }, 'keep slots for the other data nodes (ready for a promotion)'],
  ['follower', { role: 'STANDBY', upstream: 2 }, {}, 'nothing to do'],
  ['follower', { role: 'PRIMARY' }, {}, 'fence: stop accepting writes and restart as a standby'],
  ['noLeader', { role: 'STOPPED' }, {}, 'start PostgreSQL as a standby that follows nobody yet'],
  ['noLeader', { role: 'STANDBY', upstream: 2 }, {}, 'nothing to do'],
  ['noLeader', { role: 'STANDBY' }, {}, 'nothing to do'],
  ['noLeader', { role: 'PRIMARY' }, {}, 'fence: stop accepting writes and restart as a standby'],
];

describe('TABLE', () => {
  it.each(CASES)('%s, PostgreSQL %o: %s', (goal, o, extra, action) => {
    expect(pick(situation(GOALS[goal]!, obs(o), extra)).comment).toBe(action);
  });

  it('every decideGoal goal meets every PostgreSQL role in the cases', () => {
    const roles: PgRole[] = ['STOPPED', 'STANDBY', 'PRIMARY'];
    for (const g of Object.keys(GOALS)) for (const r of roles) expect(CASES.some(([cg, o]) => cg === g && (o.role ?? 'STANDBY') === r), `${g} x ${r}`).toBe(true);
  });

  it('every row of the table is reached by some case, and each cell ends with a row that always applies', () => {
    const reached = new Set(CASES.map(([g, o, extra]) => pick(situation(GOALS[g]!, obs(o), extra))));
    for (const cells of Object.values(TABLE)) {
      for (const rows of Object.values(cells)) {
        expect(rows[rows.length - 1]!.when).toBe('always');
        for (const r of rows) expect(reached.has(r), `row "${r.comment}" (${r.when})`).toBe(true);
      }
    }
  });

  it('bihactl fsm lists every row', () => {
    const n = Object.values(TABLE).reduce((a, cells) => a + Object.values(cells).reduce((b, rows) => b + rows.length, 0), 0);
    expect(fsmTable()).toHaveLength(n);
  });
});
