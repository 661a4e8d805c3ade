// The dashboard page: wires the feed to the node cards, the banner, the history and the charts.
import type { DashState, DashUpdate, DashView } from '../controller/ops/dashboard/wire.js';
import { Actions } from './actions.js';
import { bannerLines, renderBanner } from './banner.js';
import { Charts } from './charts.js';
import { byId } from './dom.js';
import { History } from './history.js';
import { renderNodes } from './nodes.js';
import { Feed } from './stream.js';
import type { FeedStatus } from './stream.js';

const nodesRoot = byId('nodes');
const bannerRoot = byId('banner');
const eventsRoot = byId('events');
const summary = byId('summary');
const feedBadge = byId('feed');

const history = new History();
const charts = new Charts(byId('charts'));
const actions = new Actions();
let view: DashView | null = null;
let feed: Feed | null = null;

function showSummary(v: DashView): void {
  const leader = v.leader_id === null ? 'no leader known' : `leader node ${v.leader_id}`;
  const parts = [`seen from node ${v.node_id}`, `term ${v.term}`, leader];
  if (v.sync_standbys > 0) parts.push(`${v.sync_standbys} synchronous standby(s)`);
  if (v.service_mode) parts.push('service mode on');
  summary.textContent = parts.join(' · ');
  document.title = `biha · ${leader} · node ${v.node_id}`;
}

function showFeed(status: FeedStatus): void {
  feedBadge.textContent = status;
  feedBadge.dataset['feed'] = status;
}

function redraw(): void {
  const status = feed?.status() ?? 'connecting';
  const since = feed?.sinceHeard() ?? null;
  renderBanner(bannerRoot, bannerLines(view, status, since === null ? null : Date.now() - since));
  if (!view) return;
  showSummary(view);
  renderNodes(nodesRoot, view, (id) => void actions.switchover(id));
  actions.show(view);
}

function onState(s: DashState): void {
  view = s.view;
  history.reset(s.events);
  history.render(eventsRoot);
  charts.reset(s.samples);
  redraw();
}

function onUpdate(u: DashUpdate): void {
  view = u.view;
  if (u.events.length > 0) {
    history.add(u.events);
    history.render(eventsRoot);
  }
  charts.add(u.sample);
  redraw();
}

feed = new Feed({
  state: onState,
  update: onUpdate,
  status: (s) => {
    showFeed(s);
    redraw();
  },
});
showFeed('connecting');
feed.start();
