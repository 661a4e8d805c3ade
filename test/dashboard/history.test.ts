// The dashboard's history: events derived from successive views, and the bounded log.
import { describe, expect, it } from 'vitest';
import { EventLog, deriveEvents } from '../../src/controller/ops/dashboard/history.js';
import type { Tracked } from '../../src/controller/ops/dashboard/history.js';
import { Ring } from '../../src/controller/ops/dashboard/ring.js';
import type { DashView } from '../../src/controller/ops/dashboard/wire.js';
import { view } from './views.js';

/** The events of a sequence of views, as kind and text. */
function run(...views: DashView[]): Array<{ kind: string; node: number | null; term: number; text: string; at_ms: number }> {
  let t: Tracked | null = null;
  const out = [];
  for (const v of views) {
    const r = deriveEvents(t, v);
    t = r.tracked;
    out.push(...r.events);
  }
  return out;
}

describe('history derived from successive views', () => {
  it('the first view and an unchanged cluster give no event', () => {
    expect(run(view())).toEqual([]);
    expect(run(view(), view({ at: 1_001_000 }), view({ at: 1_002_000, nodes: { 3: { lag_bytes: 5000, since_last_hb_ms: 900 } } }))).toEqual([]);
  });

  it('a leader that goes away, then another elected: node offline, leader lost, failover', () => {
    const evs = run(
      view({ at: 1000 }),
      view({ at: 2000, nodes: { 1: { online: false, state: 'UNKNOWN', last_known_state: 'LEADER_RW' } } }),
      view({ at: 3000, term: 4, leader: null, nodes: { 1: { online: false, state: 'UNKNOWN', last_known_state: 'LEADER_RW', leader: false } } }),
      view({ at: 4000, term: 4, leader: 3, nodes: { 1: { online: false, state: 'UNKNOWN', last_known_state: 'LEADER_RW', leader: false } } }),
    );
    expect(evs.map((e) => e.kind)).toEqual(['node_offline', 'leader_lost', 'failover']);
    expect(evs[0]).toMatchObject({ node: 1, at_ms: 2000, text: 'node 1 unreachable (last known LEADER_RW)' });
    expect(evs[1]).toMatchObject({ node: 1, at_ms: 3000, term: 4 });
    expect(evs[2]).toMatchObject({ node: 3, at_ms: 4000, term: 4, text: 'failover: node 1 → node 3 (term 4); node 1 is unreachable' });
  });

  it('a new leader while the old one is still reachable is a switchover, also across a view without a leader', () => {
    const direct = run(view({ term: 3 }), view({ term: 4, leader: 3 }));
    expect(direct.map((e) => e.kind)).toEqual(['switchover']);
    expect(direct[0]).toMatchObject({ node: 3, term: 4, text: 'switchover: node 1 → node 3 (term 4)' });
    const gap = run(view({ term: 3 }), view({ term: 4, leader: null }), view({ term: 4, leader: 3 }));
    expect(gap.map((e) => e.kind)).toEqual(['leader_lost', 'switchover']);
  });

  it('a leader seen first, or the same leader in a new term, is an election', () => {
    expect(run(view({ leader: null }), view({ leader: 1 })).map((e) => e.text)).toEqual(['node 1 elected leader in term 3']);
    expect(run(view({ term: 3 }), view({ term: 5 })).map((e) => e.text)).toEqual(['node 1 re-elected leader in term 5']);
  });

  it('timeline changes, node errors, rewinds, members coming back and service mode', () => {
    const evs = run(
      view({ at: 1 }),
      view({ at: 2, nodes: { 3: { timeline: 3 } }, serviceMode: true }),
      view({ at: 3, nodes: { 3: { timeline: 3 }, 2: { state: 'NODE_ERROR', error: { type: 'TIMELINE_DIVERGED', details: 'diverged at 0/3000000' } } }, serviceMode: true }),
      view({ at: 4, nodes: { 3: { timeline: 3 } }, decision: 'transition from "STANDBY" to "STANDBY": pg_rewind from the leader: follow node 1', serviceMode: true }),
      view({ at: 5, nodes: { 3: { timeline: 3, online: false, state: 'UNKNOWN' } }, decision: 'transition from "STANDBY" to "STANDBY": pg_rewind from the leader: follow node 1' }),
      view({ at: 6, nodes: { 3: { timeline: 3 } } }),
    );
    expect(evs.map((e) => [e.at_ms, e.kind, e.node])).toEqual([
      [2, 'timeline', 3],
      [2, 'service_mode', null],
      [3, 'node_error', 2],
      [4, 'node_error_cleared', 2],
      [4, 'rewind', 2],
      [5, 'node_offline', 3],
      [5, 'service_mode', null],
      [6, 'node_online', 3],
    ]);
    expect(evs[0]!.text).toBe('node 3: timeline 2 → 3');
    expect(evs[2]!.text).toBe('node 2 in NODE_ERROR (TIMELINE_DIVERGED: diverged at 0/3000000)');
    expect(evs[4]!.text).toBe('node 2: transition from "STANDBY" to "STANDBY": pg_rewind from the leader: follow node 1');
  });

  it('on a follower, the other followers aging out with a silent leader are no event; the leader is', () => {
    const silent = { since_last_hb_ms: 900 };
    const evs = run(
      view({ at: 1 }),
      // Node 2 has not heard from leader 1 for 900 ms (timeout 1000): node 3's relayed state aged out.
      view({ at: 2, nodes: { 1: silent, 3: { online: false, state: 'UNKNOWN' } } }),
      view({ at: 3, nodes: { 1: { online: false, state: 'UNKNOWN', since_last_hb_ms: 1100 }, 3: { online: false, state: 'UNKNOWN' } } }),
      view({ at: 4, leader: null, nodes: { 1: { online: false, state: 'UNKNOWN' }, 3: { online: false, state: 'UNKNOWN' } } }),
      // Node 3 elected: it was never unreachable.
      view({ at: 5, term: 4, leader: 3, nodes: { 1: { online: false, state: 'UNKNOWN', leader: false } } }),
    );
    expect(evs.map((e) => [e.at_ms, e.kind, e.node])).toEqual([
      [3, 'node_offline', 1],
      [4, 'leader_lost', 1],
      [5, 'failover', 3],
    ]);
  });

  it('on the leader\'s page every node going away is an event', () => {
    const lead = (o: Parameters<typeof view>[0]): DashView => ({ ...view({ leader: 2, ...o }), node_id: 2 });
    const evs = run(lead({ at: 1 }), lead({ at: 2, nodes: { 3: { online: false, state: 'UNKNOWN' } } }), lead({ at: 3 }));
    expect(evs.map((e) => [e.at_ms, e.kind, e.node])).toEqual([
      [2, 'node_offline', 3],
      [3, 'node_online', 3],
    ]);
  });

  it('an unknown timeline is no timeline change', () => {
    expect(run(view({ nodes: { 3: { timeline: null } } }), view({ nodes: { 3: { timeline: 4 } } }))).toEqual([]);
  });
});

describe('the event log', () => {
  it('numbers events in order and keeps only the newest', () => {
    const log = new EventLog(3);
    log.observe(view({ term: 1 }));
    for (let t = 2; t <= 6; t++) expect(log.observe(view({ term: t, at: t }))).toHaveLength(1);
    const kept = log.list();
    expect(kept.map((e) => e.seq)).toEqual([3, 4, 5]);
    expect(kept.map((e) => e.term)).toEqual([4, 5, 6]);
  });

  it('a ring refuses a size that is not a positive integer and hands out copies', () => {
    expect(() => new Ring(0)).toThrow(/positive integer/);
    const r = new Ring<number>(2);
    r.push(1);
    r.list().push(9);
    expect(r.list()).toEqual([1]);
  });
});
