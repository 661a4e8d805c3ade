// GET /dashboard on every controller's HTTP port: the page, its assets, the cluster state as JSON
// (/dashboard/state, the page's polling fallback) and a server-sent event stream
// (/dashboard/events). The dashboard samples the controller's status four times a second while a
// page holds an event stream, once a second while pages only poll /dashboard/state; a minute
// after the last request with no stream open it stops sampling (an idle controller does no
// dashboard work), and the next request samples at once and starts again. From the samples it
// derives the history (history.ts: the changes seen while sampling) and keeps a few minutes of
// chart samples; it sends the page an update when what it shows changed, and at least once a second.
import type * as http from 'node:http';
import type { Logger } from 'pino';
import type { StatusFile } from '../../bridge/sqlbridge.js';
import { DEFAULT_ASSETS_DIR, loadAssets } from './assets.js';
import type { Asset } from './assets.js';
import { EventLog } from './history.js';
import { Ring } from './ring.js';
import { SseHub, sseFrame } from './sse.js';
import { dashView, viewKey } from './view.js';
import type { DashEvent, DashSample, DashState, DashUpdate, DashView } from './wire.js';

export interface DashboardOptions {
  /** The controller's status now; throws while it is not available. */
  status: () => StatusFile;
  logger: Logger;
  assetsDir?: string;
  /** How often the status is sampled (ms). */
  sampleMs?: number;
  /** The longest time between two updates sent to the page (ms). */
  updateMs?: number;
  maxClients?: number;
  heartbeatMs?: number;
  historySize?: number;
  /** Chart samples kept (one per update, about one a second). */
  samplesSize?: number;
  /** Sampling stops this long after the last dashboard request while no event stream is open (ms). Default 60000. */
  idleAfterMs?: number;
}

export const DASHBOARD_PATHS: readonly string[] = ['/dashboard', '/dashboard/state', '/dashboard/events'];

/** No inline script or style, nothing from another origin, no framing. */
export const DASHBOARD_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const SECURITY_HEADERS: Readonly<http.OutgoingHttpHeaders> = {
  'Content-Security-Policy': DASHBOARD_CSP,
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
  'Cross-Origin-Opener-Policy': 'same-origin',
};

const ASSET_PREFIX = '/dashboard/assets/';
const RETRY_MS = 1000;
/** How often the status is sampled while no event stream is open (ms). */
const IDLE_SAMPLE_MS = 1000;
/** Default of DashboardOptions.idleAfterMs. */
const IDLE_AFTER_MS = 60_000;

function sampleOf(v: DashView): DashSample {
  return { t_ms: v.generated_at_ms, nodes: v.nodes.map((n) => ({ id: n.id, lag_bytes: n.lag_bytes, lag_ms: n.lag_ms, state: n.state })) };
}

export class Dashboard {
  private readonly log: Logger;
  private readonly events: EventLog;
  private readonly samples: Ring<DashSample>;
  private readonly hub: SseHub;
  private timer: NodeJS.Timeout | null = null;
  private assets: ReadonlyMap<string, Asset> | null = null;
  private view: DashView | null = null;
  private key = '';
  private lastSentAt = 0;
  private pending: DashEvent[] = [];
  private statusError: string | null = null;
  private lastSampleAt = 0;
  /** Date.now() of the last dashboard request. */
  private askedAt = 0;
  private closed = false;

  constructor(private readonly o: DashboardOptions) {
    this.log = o.logger;
    this.events = new EventLog(o.historySize ?? 100);
    this.samples = new Ring<DashSample>(o.samplesSize ?? 300);
    this.hub = new SseHub({ maxClients: o.maxClients ?? 16, heartbeatMs: o.heartbeatMs ?? 15_000 });
  }

  /** Takes a first sample; sampling goes on while the dashboard is asked for (see the header). */
  start(): void {
    this.sample();
  }

  /** Stops sampling and ends every event stream. */
  close(): void {
    this.closed = true;
    this.stopSampling();
    this.hub.close();
  }

  /** Whether the status is being sampled now (someone asked for the dashboard recently). */
  sampling(): boolean {
    return this.timer !== null;
  }

  /** A dashboard request: sample at once if sampling had stopped, and keep sampling for a while. */
  private asked(): void {
    if (this.closed) return;
    this.askedAt = Date.now();
    if (this.timer) return;
    this.lastSampleAt = 0;
    this.sample();
    this.timer = setInterval(() => this.tick(), this.o.sampleMs ?? 250);
    this.timer.unref();
  }

  private tick(): void {
    if (this.hub.size === 0 && Date.now() - this.askedAt > (this.o.idleAfterMs ?? IDLE_AFTER_MS)) this.stopSampling();
    else this.sample();
  }

  private stopSampling(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  handles(path: string): boolean {
    return path === '/dashboard' || path.startsWith('/dashboard/');
  }

  handle(req: http.IncomingMessage, res: http.ServerResponse, path: string): void {
    this.asked();
    if (req.method === 'OPTIONS') {
      res.writeHead(204, { Allow: 'GET, HEAD, OPTIONS', 'Content-Length': 0 });
      res.end();
      return;
    }
    if (path === '/dashboard' || path === '/dashboard/index.html') return this.serveAsset(req, res, 'index.html');
    if (path.startsWith(ASSET_PREFIX)) return this.serveAsset(req, res, path.slice(ASSET_PREFIX.length));
    if (path === '/dashboard/state') return this.serveState(req, res);
    if (path === '/dashboard/events') return this.serveEvents(req, res);
    this.json(req, res, 404, { error: 'not_found', paths: DASHBOARD_PATHS });
  }

  /** The page's whole state now (null while the controller's status was never available). */
  state(): DashState | null {
    if (!this.view) return null;
    return { view: this.view, events: this.events.list(), samples: this.samples.list() };
  }

  /**
   * One sampling step: read the status, derive events, send an update when due. With no event
   * stream open, once a second is enough for the history and the charts.
   */
  sample(): void {
    const now = Date.now();
    if (this.hub.size === 0 && now - this.lastSampleAt < IDLE_SAMPLE_MS) return;
    this.lastSampleAt = now;
    let st: StatusFile;
    try {
      st = this.o.status();
    } catch (e) {
      const err = e instanceof Error ? e.message : String(e);
      if (err !== this.statusError) this.log.debug({ err }, 'dashboard: the controller status is not available');
      this.statusError = err;
      return;
    }
    this.statusError = null;
    const view = dashView(st);
    this.pending.push(...this.events.observe(view));
    const key = viewKey(view);
    const changed = key !== this.key;
    this.view = view;
    this.key = key;
    if (!changed && this.pending.length === 0 && view.generated_at_ms - this.lastSentAt < (this.o.updateMs ?? 1000)) return;
    const sample = sampleOf(view);
    this.samples.push(sample);
    this.lastSentAt = view.generated_at_ms;
    const update: DashUpdate = { view, events: this.pending, sample };
    this.pending = [];
    if (this.hub.size > 0) this.hub.broadcast(sseFrame({ event: 'update', data: JSON.stringify(update) }));
  }

  private loadedAssets(): ReadonlyMap<string, Asset> {
    this.assets ??= loadAssets(this.o.assetsDir ?? DEFAULT_ASSETS_DIR);
    return this.assets;
  }

  private serveAsset(req: http.IncomingMessage, res: http.ServerResponse, name: string): void {
    let assets: ReadonlyMap<string, Asset>;
    try {
      assets = this.loadedAssets();
    } catch (e) {
      this.json(req, res, 503, { error: 'dashboard_not_built', reason: e instanceof Error ? e.message : String(e) });
      return;
    }
    const a = assets.get(name);
    if (!a) {
      this.json(req, res, 404, { error: 'not_found', path: `${ASSET_PREFIX}${name.slice(0, 120)}` });
      return;
    }
    const headers: http.OutgoingHttpHeaders = {
      ...SECURITY_HEADERS,
      'Content-Type': a.type,
      ETag: a.etag,
      'Cache-Control': a.immutable ? 'public, max-age=31536000, immutable' : 'no-cache',
    };
    if (req.headers['if-none-match'] === a.etag) {
      res.writeHead(304, headers);
      res.end();
      return;
    }
    headers['Content-Length'] = a.body.length;
    res.writeHead(200, headers);
    res.end(req.method === 'HEAD' ? undefined : a.body);
  }

  private serveState(req: http.IncomingMessage, res: http.ServerResponse): void {
    const state = this.state();
    if (!state) {
      this.json(req, res, 503, { error: 'status_unavailable', reason: this.statusError ?? 'the controller is starting' });
      return;
    }
    this.json(req, res, 200, state);
  }

  private serveEvents(req: http.IncomingMessage, res: http.ServerResponse): void {
    const state = this.state();
    if (!state) {
      this.json(req, res, 503, { error: 'status_unavailable', reason: this.statusError ?? 'the controller is starting' }, { 'Retry-After': '1' });
      return;
    }
    if (req.method === 'HEAD') {
      res.writeHead(200, { ...SECURITY_HEADERS, 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-store' });
      res.end();
      return;
    }
    const first = sseFrame({ event: 'state', data: JSON.stringify(state) });
    if (!this.hub.accept(req, res, SECURITY_HEADERS, first, RETRY_MS)) {
      this.json(req, res, 503, { error: 'too_many_clients', reason: 'too many dashboard streams are open on this node; the page polls /dashboard/state instead' }, { 'Retry-After': '10' });
    }
  }

  private json(req: http.IncomingMessage, res: http.ServerResponse, code: number, body: unknown, extra: http.OutgoingHttpHeaders = {}): void {
    const text = `${JSON.stringify(body)}\n`;
    res.writeHead(code, { ...SECURITY_HEADERS, ...extra, 'Content-Type': 'application/json', 'Cache-Control': 'no-store', 'Content-Length': Buffer.byteLength(text) });
    res.end(req.method === 'HEAD' ? undefined : text);
  }
}
