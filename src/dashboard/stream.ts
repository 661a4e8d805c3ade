// The page's feed: the server-sent event stream of /dashboard/events, and /dashboard/state polled
// once a second while the stream is down or silent. The server sends an update at least once a
// second, so a stream that says nothing for a few seconds is treated as stopped.
import type { DashState, DashUpdate } from '../controller/ops/dashboard/wire.js';

/** live: the stream delivers; polling: the stream is down but polling answers; down: nothing answers. */
export type FeedStatus = 'connecting' | 'live' | 'polling' | 'down';

export interface FeedHandlers {
  state(s: DashState): void;
  update(u: DashUpdate): void;
  status(s: FeedStatus, lastHeardMs: number | null): void;
}

const SILENCE_MS = 3500;
const POLL_MS = 1000;
/** A poll the node does not answer within this time counts as failed (a frozen host never answers). */
const POLL_TIMEOUT_MS = 3000;
/** After the server refused the stream (too many clients), try it again this much later. */
const STREAM_RETRY_MS = 30_000;

export class Feed {
  private es: EventSource | null = null;
  private lastHeard: number | null = null;
  private pollTimer: number | null = null;
  private polling = false;
  private current: FeedStatus = 'connecting';
  private startedAt = Date.now();

  constructor(private readonly h: FeedHandlers, private readonly base = '/dashboard') {}

  start(): void {
    this.startedAt = Date.now();
    this.openStream();
    window.setInterval(() => this.watch(), 500);
  }

  private setStatus(s: FeedStatus): void {
    if (s === this.current) return;
    this.current = s;
    this.h.status(s, this.lastHeard);
  }

  private heard(): void {
    this.lastHeard = Date.now();
  }

  private openStream(): void {
    const es = new EventSource(`${this.base}/events`);
    this.es = es;
    es.addEventListener('state', (e) => {
      this.heard();
      this.stopPolling();
      this.setStatus('live');
      this.h.state(JSON.parse((e as MessageEvent<string>).data) as DashState);
    });
    es.addEventListener('update', (e) => {
      this.heard();
      this.stopPolling();
      this.setStatus('live');
      this.h.update(JSON.parse((e as MessageEvent<string>).data) as DashUpdate);
    });
    es.addEventListener('error', () => {
      // EventSource reconnects by itself unless the server refused the stream (CLOSED).
      if (es.readyState === EventSource.CLOSED) {
        this.es = null;
        this.startPolling();
        window.setTimeout(() => this.openStream(), STREAM_RETRY_MS);
      }
    });
  }

  /** Called twice a second: a silent stream switches the page to polling. */
  private watch(): void {
    if (this.polling) return;
    if (Date.now() - (this.lastHeard ?? this.startedAt) > SILENCE_MS) this.startPolling();
  }

  private startPolling(): void {
    if (this.polling) return;
    this.polling = true;
    void this.poll();
  }

  private stopPolling(): void {
    this.polling = false;
    if (this.pollTimer !== null) window.clearTimeout(this.pollTimer);
    this.pollTimer = null;
  }

  private async poll(): Promise<void> {
    if (!this.polling) return;
    try {
      const r = await fetch(`${this.base}/state`, { cache: 'no-store', signal: AbortSignal.timeout(POLL_TIMEOUT_MS) });
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      const s = (await r.json()) as DashState;
      if (!this.polling) return;
      this.heard();
      this.h.state(s);
      this.setStatus('polling');
    } catch {
      if (this.polling) this.setStatus('down');
    }
    if (this.polling) this.pollTimer = window.setTimeout(() => void this.poll(), POLL_MS);
  }

  /** Milliseconds since the page last heard from the node (null: never). */
  sinceHeard(): number | null {
    return this.lastHeard === null ? null : Date.now() - this.lastHeard;
  }

  status(): FeedStatus {
    return this.current;
  }
}
