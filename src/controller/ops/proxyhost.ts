// Where the proxies' sockets live. The controller's own event loop runs raft ticks, probes, the SQL
// bridge and status writes; piped client traffic waiting behind that work costs a round trip per
// query (measured: a third of the direct throughput under load). So the proxies run in a worker
// thread of their own (ThreadProxies, the worker is proxyworker.ts), which gets only routes and
// orders from the controller and sends back counts and log lines. InlineProxies is the same set of
// proxies in the calling thread: what the worker runs, and what unit tests use.
import { Worker } from 'node:worker_threads';
import type { NodeId } from '../../raft/index.js';
import { TcpProxy } from './proxy.js';
import type { DropReason } from './proxy.js';
import { ReaderRotation } from './proxyroute.js';
import type { Backend } from './proxyroute.js';

export type Endpoint = 'rw' | 'ro';

/** Where new connections go now. */
export interface ProxyRoutes {
  /** The confirmed writable leader; null: hold new connections. */
  readonly leader: Backend | null;
  /** Followers for the read-only port (round robin; the leader when empty). */
  readonly readers: readonly Backend[];
  readonly holdMs: number;
}

export interface ProxyHostEvents {
  accepted(endpoint: Endpoint): void;
  open(endpoint: Endpoint, n: number): void;
  dropped(endpoint: Endpoint, why: DropReason): void;
  log(level: 'info' | 'warn' | 'error', msg: string): void;
}

export interface ProxyHost {
  /** Listens for `endpoint` on `port`; resolves to null, or why it could not. */
  open(endpoint: Endpoint, port: number): Promise<string | null>;
  routes(r: ProxyRoutes): void;
  /** Closes the read-write sessions to every node but `id` (a new leader). */
  closeExcept(id: NodeId): void;
  close(): Promise<void>;
}

export const MAX_PROXY_CONNS = 1000;
const CONNECT_MS = 5000;

export class InlineProxies implements ProxyHost {
  private readonly proxies = new Map<Endpoint, TcpProxy>();
  private r: ProxyRoutes = { leader: null, readers: [], holdMs: 10_000 };
  private readonly rotation = new ReaderRotation();

  constructor(
    private readonly host: string,
    private readonly events: ProxyHostEvents,
  ) {}

  async open(endpoint: Endpoint, port: number): Promise<string | null> {
    const p = new TcpProxy({
      name: endpoint === 'rw' ? 'read-write' : 'read-only',
      host: this.host,
      port,
      holdMs: () => this.r.holdMs,
      maxConns: MAX_PROXY_CONNS,
      connectMs: CONNECT_MS,
      pick: endpoint === 'rw' ? () => this.r.leader : () => (this.r.leader ? this.rotation.pick({ leader: this.r.leader, term: 0, readers: this.r.readers }) : null),
      onError: (msg) => this.events.log('error', msg),
      events: {
        accepted: () => this.events.accepted(endpoint),
        open: (n) => this.events.open(endpoint, n),
        dropped: (why) => this.events.dropped(endpoint, why),
      },
    });
    try {
      await p.start();
      this.proxies.set(endpoint, p);
      return null;
    } catch (e) {
      return e instanceof Error ? e.message : String(e);
    }
  }

  routes(r: ProxyRoutes): void {
    this.r = r;
    if (r.leader) for (const p of this.proxies.values()) p.wake();
  }

  closeExcept(id: NodeId): void {
    const n = this.proxies.get('rw')?.closeWhere((b) => b.id !== id) ?? 0;
    if (n > 0) this.events.log('info', `proxy: closed ${n} connection(s) to the previous leader`);
  }

  async close(): Promise<void> {
    await Promise.all([...this.proxies.values()].map((p) => p.close()));
    this.proxies.clear();
  }
}

/** What the controller sends the worker. */
export type ToWorker =
  | { readonly t: 'open'; readonly endpoint: Endpoint; readonly port: number }
  | { readonly t: 'routes'; readonly routes: ProxyRoutes }
  | { readonly t: 'closeExcept'; readonly id: NodeId }
  | { readonly t: 'stop' };

/** What the worker sends back. */
export type FromWorker =
  | { readonly t: 'opened'; readonly endpoint: Endpoint; readonly error: string | null }
  | { readonly t: 'accepted'; readonly endpoint: Endpoint }
  | { readonly t: 'open'; readonly endpoint: Endpoint; readonly n: number }
  | { readonly t: 'dropped'; readonly endpoint: Endpoint; readonly why: DropReason }
  | { readonly t: 'log'; readonly level: 'info' | 'warn' | 'error'; readonly msg: string }
  | { readonly t: 'stopped' };

export class ThreadProxies implements ProxyHost {
  private readonly worker: Worker;
  private readonly opening = new Map<Endpoint, (error: string | null) => void>();
  private stopped: (() => void) | null = null;
  private exited = false;

  constructor(host: string, private readonly events: ProxyHostEvents) {
    this.worker = new Worker(new URL('./proxyworker.js', import.meta.url), { workerData: { host } });
    this.worker.on('message', (m: FromWorker) => this.onMessage(m));
    this.worker.on('error', (e) => events.log('error', `proxy worker failed: ${e.message}; the proxy ports are closed`));
    this.worker.on('exit', () => {
      this.exited = true;
      for (const done of this.opening.values()) done('the proxy worker exited');
      this.opening.clear();
      this.stopped?.();
    });
  }

  private onMessage(m: FromWorker): void {
    switch (m.t) {
      case 'opened':
        this.opening.get(m.endpoint)?.(m.error);
        this.opening.delete(m.endpoint);
        return;
      case 'accepted':
        this.events.accepted(m.endpoint);
        return;
      case 'open':
        this.events.open(m.endpoint, m.n);
        return;
      case 'dropped':
        this.events.dropped(m.endpoint, m.why);
        return;
      case 'log':
        this.events.log(m.level, m.msg);
        return;
      case 'stopped':
        this.stopped?.();
        return;
    }
  }

  private post(m: ToWorker): void {
    if (!this.exited) this.worker.postMessage(m);
  }

  open(endpoint: Endpoint, port: number): Promise<string | null> {
    if (this.exited) return Promise.resolve('the proxy worker exited');
    return new Promise((resolve) => {
      this.opening.set(endpoint, resolve);
      this.post({ t: 'open', endpoint, port });
    });
  }

  routes(r: ProxyRoutes): void {
    this.post({ t: 'routes', routes: r });
  }

  closeExcept(id: NodeId): void {
    this.post({ t: 'closeExcept', id });
  }

  async close(): Promise<void> {
    if (this.exited) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 2000);
      this.stopped = () => {
        clearTimeout(timer);
        resolve();
      };
      this.post({ t: 'stop' });
    });
    await this.worker.terminate().catch(() => undefined);
  }
}
