// The banner that says when the node the page talks to may not show the cluster as it is: it
// knows no leader, it does not hear from a majority of the voters, or the page stopped hearing
// from it. The reasons are in data-reasons (space separated) for scripts.
import type { DashView } from '../controller/ops/dashboard/wire.js';
import { el } from './dom.js';
import { fmtClock } from './format.js';
import type { FeedStatus } from './stream.js';

export type BannerReason = 'no-leader' | 'minority' | 'stream' | 'unreachable';

export interface BannerLine {
  reason: BannerReason;
  text: string;
}

/** What the banner says, given the last view and the feed's status (pure). */
export function bannerLines(v: DashView | null, feed: FeedStatus, lastHeardMs: number | null): BannerLine[] {
  const out: BannerLine[] = [];
  const node = v ? `node ${v.node_id}` : 'this node';
  if (feed === 'down') {
    const when = lastHeardMs === null ? 'never answered' : `last answered at ${fmtClock(lastHeardMs)}`;
    out.push({ reason: 'unreachable', text: `The page cannot reach ${node} (${when}): what it shows is stale. Retrying every second.` });
  } else if (feed === 'polling') {
    out.push({ reason: 'stream', text: `The live stream from ${node} stopped; the page polls it every second instead.` });
  }
  if (v && !v.health.in_majority) {
    out.push({
      reason: 'minority',
      text: `${node} hears from ${v.health.voters_online} voting node(s) (itself included) and needs ${v.health.nquorum} (nquorum): it is cut off from the majority and may show an old picture. Open the dashboard of another node.`,
    });
  }
  if (v && !v.health.leader_known) {
    out.push({ reason: 'no-leader', text: `${node} knows no leader: an election is in progress, or this node is cut off from the cluster.` });
  }
  return out;
}

export function renderBanner(root: HTMLElement, lines: readonly BannerLine[]): void {
  root.hidden = lines.length === 0;
  root.dataset['reasons'] = lines.map((l) => l.reason).join(' ');
  root.replaceChildren(...lines.map((l) => el('p', undefined, l.text)));
}
