// The cluster's recent history as the serving node saw it: elections, failovers, switchovers,
// timeline changes, rewinds, node errors, members going away and coming back, service mode.
// Nothing in the controller records these as events, so they are derived from successive
// dashboard views (deriveEvents, pure) and kept in a small bounded ring (EventLog).
import { Ring } from './ring.js';
import type { DashEvent, DashEventKind, DashNode, DashView } from './wire.js';

export type NewEvent = Omit<DashEvent, 'seq'>;

/** What derivation carries from one view to the next. */
export interface Tracked {
  view: DashView;
  /** The last leader the node knew, kept while there is none (to tell a failover from a first election). */
  lastLeader: number | null;
  /** Whether each node was last reported reachable (see reliable()). */
  online: ReadonlyMap<number, boolean>;
}

/** The node controller's sentence when it starts an automatic rewind (driver/nc.ts). */
const REWIND_RE = /pg_rewind from /;

function ev(view: DashView, kind: DashEventKind, node: number | null, text: string): NewEvent {
  return { at_ms: view.generated_at_ms, kind, node, term: view.term, text };
}

function leaderEvents(prev: Tracked, next: DashView): NewEvent[] {
  const before = prev.view.leader_id;
  const now = next.leader_id;
  if (now === before) {
    return now !== null && next.term > prev.view.term ? [ev(next, 'election', now, `node ${now} re-elected leader in term ${next.term}`)] : [];
  }
  if (now === null) return [ev(next, 'leader_lost', before, `no leader: node ${before ?? '?'} is no longer known as the leader (term ${next.term}); an election is due`)];
  const old = prev.lastLeader;
  if (old === null || old === now) return [ev(next, 'election', now, `node ${now} elected leader in term ${next.term}`)];
  const oldNode = next.nodes.find((n) => n.id === old);
  // A leader that handed over stays reachable; one that failed is gone when the others elect.
  if (oldNode?.online === true) return [ev(next, 'switchover', now, `switchover: node ${old} → node ${now} (term ${next.term})`)];
  return [ev(next, 'failover', now, `failover: node ${old} → node ${now} (term ${next.term}); node ${old} is unreachable`)];
}

function errorText(n: DashNode): string {
  const e = n.error;
  if (!e) return '';
  return e.details ? `${e.type}: ${e.details}` : e.type;
}

/**
 * Whether the view's `online` of node n can be believed. A follower knows the other followers
 * only from the leader's heartbeats: when the leader falls silent, they age out with it although
 * nothing happened to them. Believed: the serving node and the leader itself, every node on the
 * leader's page, and on a follower's page while it heard from its leader within half the timeout.
 */
export function reliable(v: DashView, n: DashNode): boolean {
  if (n.self) return true;
  if (v.leader_id === null) return false;
  if (v.leader_id === v.node_id || n.id === v.leader_id) return true;
  const leader = v.nodes.find((x) => x.id === v.leader_id);
  const timeout = v.heartbeat_send_period * v.heartbeat_max_lost;
  return leader !== undefined && leader.online && leader.since_last_hb_ms !== null && leader.since_last_hb_ms < timeout / 2;
}

function reachabilityEvents(after: DashNode, wasOnline: boolean | undefined, before: DashNode, view: DashView): NewEvent[] {
  if (wasOnline === undefined || wasOnline === after.online) return [];
  if (!after.online) {
    const known = [after.last_known_state, before.state].find((x) => x && x !== 'UNKNOWN');
    return [ev(view, 'node_offline', after.id, `node ${after.id} unreachable${known ? ` (last known ${known})` : ''}`)];
  }
  return [ev(view, 'node_online', after.id, `node ${after.id} reachable again (${after.state})`)];
}

function nodeEvents(before: DashNode, after: DashNode, view: DashView): NewEvent[] {
  const out: NewEvent[] = [];
  if (before.timeline !== null && after.timeline !== null && after.timeline !== before.timeline) {
    out.push(ev(view, 'timeline', after.id, `node ${after.id}: timeline ${before.timeline} → ${after.timeline}`));
  }
  if (before.error === null && after.error !== null) out.push(ev(view, 'node_error', after.id, `node ${after.id} in NODE_ERROR (${errorText(after)})`));
  if (before.error !== null && after.error === null) out.push(ev(view, 'node_error_cleared', after.id, `node ${after.id} left NODE_ERROR (now ${after.state})`));
  return out;
}

/** The events between two successive views; the first view gives none. */
export function deriveEvents(prev: Tracked | null, next: DashView): { events: NewEvent[]; tracked: Tracked } {
  const lastLeader = next.leader_id ?? prev?.lastLeader ?? null;
  const online = new Map(prev?.online ?? []);
  for (const n of next.nodes) if (!online.has(n.id) || reliable(next, n)) online.set(n.id, n.online);
  const tracked: Tracked = { view: next, lastLeader, online };
  if (prev === null) return { events: [], tracked };
  const events = leaderEvents(prev, next);
  for (const after of next.nodes) {
    const before = prev.view.nodes.find((n) => n.id === after.id);
    if (!before) continue;
    events.push(...nodeEvents(before, after, next));
    if (reliable(next, after)) events.push(...reachabilityEvents(after, prev.online.get(after.id), before, next));
  }
  if (next.decision !== prev.view.decision && REWIND_RE.test(next.decision)) {
    events.push(ev(next, 'rewind', next.node_id, `node ${next.node_id}: ${next.decision}`));
  }
  if (next.service_mode !== prev.view.service_mode) {
    events.push(ev(next, 'service_mode', null, `service mode ${next.service_mode ? 'on: no automatic failover' : 'off'}`));
  }
  return { events, tracked };
}

/** The newest `capacity` events, numbered in the order they were seen. */
export class EventLog {
  private readonly ring: Ring<DashEvent>;
  private tracked: Tracked | null = null;
  private seq = 0;

  constructor(capacity = 100) {
    this.ring = new Ring<DashEvent>(capacity);
  }

  /** Takes the next view; returns the events it added. */
  observe(view: DashView): DashEvent[] {
    const { events, tracked } = deriveEvents(this.tracked, view);
    this.tracked = tracked;
    const added = events.map((e) => ({ seq: ++this.seq, ...e }));
    for (const e of added) this.ring.push(e);
    return added;
  }

  list(): DashEvent[] {
    return this.ring.list();
  }
}
