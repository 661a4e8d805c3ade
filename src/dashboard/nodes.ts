// One card per member: its state, role, mode, term, timeline, lag, heartbeat age, replication
// state and node error. Each card carries data-node-id, data-state and, on the leader,
// data-leader="true", so that scripts read the page without depending on its layout.
import type { DashNode, DashView } from '../controller/ops/dashboard/wire.js';
import { el } from './dom.js';
import { fmtBytes, fmtMs } from './format.js';

export type SwitchoverHandler = (candidate: number) => void;

function field(dl: HTMLElement, name: string, value: string, key: string): void {
  const dt = el('dt', undefined, name);
  const dd = el('dd', undefined, value);
  dd.dataset['field'] = key;
  dl.append(dt, dd);
}

function stateClass(state: string): string {
  if (state.startsWith('LEADER')) return 'leader';
  if (state.startsWith('FOLLOWER')) return 'follower';
  if (state.startsWith('NODE_ERROR')) return 'error';
  if (state === 'CANDIDATE') return 'candidate';
  return 'unknown';
}

/** Whether a switchover to this node makes sense from what the page knows. */
export function canLead(n: DashNode, v: DashView): boolean {
  return !n.leader && n.online && n.mode === 'regular' && n.state === 'FOLLOWER' && v.leader_id !== null;
}

function card(n: DashNode, v: DashView, onSwitchover: SwitchoverHandler): HTMLElement {
  const art = el('article', `node state-${stateClass(n.state)}`);
  art.dataset['nodeId'] = String(n.id);
  art.dataset['state'] = n.state;
  if (n.leader) art.dataset['leader'] = 'true';
  if (n.self) art.dataset['self'] = 'true';
  const head = el('header');
  head.append(el('h2', undefined, `node ${n.id}`), el('span', 'badge', n.state));
  if (n.leader) head.append(el('span', 'badge leader-badge', 'leader'));
  if (n.self) head.append(el('span', 'badge self-badge', 'this node'));
  art.append(head);
  if (n.host !== null) art.append(el('p', 'addr', `${n.host}:${n.port ?? ''}`));
  const dl = el('dl');
  field(dl, 'role', n.role, 'role');
  field(dl, 'mode', n.mode, 'mode');
  field(dl, 'term', n.term === null ? '—' : String(n.term), 'term');
  field(dl, 'leader', v.leader_id === null ? 'none known' : `node ${v.leader_id}`, 'leader');
  field(dl, 'timeline', n.timeline === null ? '—' : String(n.timeline), 'timeline');
  field(dl, 'lag', `${fmtBytes(n.lag_bytes)} / ${fmtMs(n.lag_ms)}`, 'lag');
  field(dl, 'last heartbeat', n.self ? '—' : n.since_last_hb_ms === null ? 'never' : `${fmtMs(n.since_last_hb_ms)} ago`, 'heartbeat');
  field(dl, 'replication', n.sync_state === null ? '—' : `${n.replication_state ?? ''} ${n.sync_state}`.trim(), 'sync');
  if (!n.online) field(dl, 'last known state', n.last_known_state ?? '—', 'last-known');
  art.append(dl);
  if (n.error) {
    const p = el('p', 'node-error', n.error.details ? `${n.error.type}: ${n.error.details}` : n.error.type);
    p.dataset['field'] = 'error';
    art.append(p);
  }
  if (canLead(n, v)) {
    const b = el('button', 'action', `Switch over to node ${n.id}`);
    b.type = 'button';
    b.dataset['action'] = 'switchover';
    b.addEventListener('click', () => onSwitchover(n.id));
    art.append(b);
  }
  return art;
}

/** Replaces the cards (a few nodes: rebuilding them is cheap and keeps the code plain). */
export function renderNodes(root: HTMLElement, v: DashView, onSwitchover: SwitchoverHandler): void {
  root.replaceChildren(...v.nodes.map((n) => card(n, v, onSwitchover)));
}
