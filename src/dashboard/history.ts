// The recent history list, newest first, merged by sequence number.
import type { DashEvent } from '../controller/ops/dashboard/wire.js';
import { el } from './dom.js';
import { fmtClock } from './format.js';

const KEEP = 100;

export class History {
  private events: DashEvent[] = [];

  /** Replaces the history with the server's (a full state). */
  reset(events: readonly DashEvent[]): void {
    this.events = [...events].sort((a, b) => a.seq - b.seq).slice(-KEEP);
  }

  add(events: readonly DashEvent[]): void {
    const last = this.events.at(-1)?.seq ?? 0;
    // A server restarted numbers from 1 again: keep what it sends.
    const fresh = events.filter((e) => e.seq > last);
    const restarted = events.length > 0 && fresh.length === 0 && (events[0]?.seq ?? 0) <= 1;
    this.events = [...this.events, ...(restarted ? events : fresh)].slice(-KEEP);
  }

  render(root: HTMLElement): void {
    if (this.events.length === 0) {
      root.replaceChildren(el('li', 'empty', 'Nothing happened since this node started.'));
      return;
    }
    root.replaceChildren(
      ...[...this.events].reverse().map((e) => {
        const li = el('li', `event event-${e.kind}`);
        li.dataset['kind'] = e.kind;
        const time = el('time', undefined, fmtClock(e.at_ms));
        time.dateTime = new Date(e.at_ms).toISOString();
        li.append(time, el('span', 'kind', e.kind.replace(/_/g, ' ')), el('span', 'text', e.text));
        return li;
      }),
    );
  }
}
