// A TCP endpoint that hands each client connection to a PostgreSQL chosen when it arrives (the
// writable leader, or a follower for the read-only port). It works at the TCP level — bytes piped
// both ways, nothing parsed — so every driver in every language goes through it unchanged.
//
//  - While `pick()` has no backend, a new connection is held (not read, not refused) for at most
//    holdMs, then closed; `wake()` sends the held ones on as soon as there is one.
//  - `closeWhere(pred)` ends the sessions whose backend the owner no longer wants (a new leader).
//  - Bounded: at most maxConns connections at once (held ones included), each piped with
//    backpressure (`pipe`), so no buffer grows without bound; a backend that does not accept the
//    connection within connectMs, or any error on either side, closes both sides.
import * as net from 'node:net';
import type { Backend } from './proxyroute.js';

export interface ProxyEvents {
  /** A client connection was accepted (held or piped). */
  accepted?(): void;
  /** The number of open client connections changed. */
  open?(n: number): void;
  /** A connection was closed without reaching a backend: 'hold_timeout', 'backend_error', 'limit', 'stopping'. */
  dropped?(why: DropReason): void;
}

export type DropReason = 'hold_timeout' | 'backend_error' | 'limit' | 'stopping';

export interface TcpProxyOptions {
  /** For log lines: 'read-write' or 'read-only'. */
  readonly name: string;
  readonly host: string;
  readonly port: number;
  /** How long a new connection may wait for a backend (read on each connection). */
  holdMs(): number;
  readonly maxConns: number;
  /** How long a backend may take to accept the TCP connection. */
  readonly connectMs: number;
  /** An error of the listening socket after it started. */
  onError?(message: string): void;
  /** The backend for a new connection now; null: hold it. */
  pick(): Backend | null;
  readonly events?: ProxyEvents;
}

interface Session {
  readonly client: net.Socket;
  backend: Backend | null;
  server: net.Socket | null;
  holdTimer: NodeJS.Timeout | null;
}

/** How long a client that is being closed may take to read what it was sent before it is cut. */
const CLOSE_GRACE_MS = 1000;

export class TcpProxy {
  private server: net.Server | null = null;
  private readonly sessions = new Set<Session>();
  private readonly held: Session[] = [];
  private stopping = false;

  constructor(private readonly o: TcpProxyOptions) {}

  get port(): number {
    const a = this.server?.address();
    return a && typeof a === 'object' ? a.port : this.o.port;
  }

  /** Open client connections (held ones included). */
  get size(): number {
    return this.sessions.size;
  }

  async start(): Promise<void> {
    const srv = net.createServer({ pauseOnConnect: true, noDelay: true }, (c) => this.accept(c));
    srv.maxConnections = this.o.maxConns + 16; // the limit is enforced in accept(), with a clean close
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen({ host: this.o.host, port: this.o.port, exclusive: true }, () => {
        srv.off('error', reject);
        resolve();
      });
    });
    srv.on('error', (e) => this.o.onError?.(`${this.o.name} proxy: ${e.message}`));
    this.server = srv;
  }

  /** Sends the held connections on if pick() now has a backend. */
  wake(): void {
    while (this.held.length > 0) {
      const b = this.o.pick();
      if (!b) return;
      const s = this.held.shift()!;
      this.clearHold(s);
      this.connect(s, b);
    }
  }

  /** Ends every session piped (or being connected) to a backend for which `pred` is true. */
  closeWhere(pred: (b: Backend) => boolean): number {
    let n = 0;
    for (const s of this.sessions) {
      if (s.backend && pred(s.backend)) {
        this.end(s);
        n++;
      }
    }
    return n;
  }

  async close(): Promise<void> {
    this.stopping = true;
    const srv = this.server;
    this.server = null;
    for (const s of [...this.sessions]) this.end(s, 'stopping');
    if (srv) await new Promise<void>((r) => srv.close(() => r()));
  }

  private accept(client: net.Socket): void {
    this.o.events?.accepted?.();
    if (this.stopping || this.sessions.size >= this.o.maxConns) {
      this.o.events?.dropped?.(this.stopping ? 'stopping' : 'limit');
      closeClient(client);
      return;
    }
    const s: Session = { client, backend: null, server: null, holdTimer: null };
    this.sessions.add(s);
    this.o.events?.open?.(this.sessions.size);
    client.on('error', () => this.end(s));
    client.on('close', () => this.end(s));
    const b = this.held.length === 0 ? this.o.pick() : null;
    if (b) {
      this.connect(s, b);
      return;
    }
    // The client's bytes stay in the kernel meanwhile (pauseOnConnect): nothing is buffered here.
    s.holdTimer = setTimeout(() => {
      s.holdTimer = null;
      this.o.events?.dropped?.('hold_timeout');
      this.end(s);
    }, this.o.holdMs());
    this.held.push(s);
    this.wake();
  }

  private connect(s: Session, b: Backend): void {
    if (!this.sessions.has(s)) return;
    s.backend = b;
    const server = net.connect({ host: b.host, port: b.port, noDelay: true });
    s.server = server;
    server.setTimeout(this.o.connectMs, () => {
      this.o.events?.dropped?.('backend_error');
      this.end(s);
    });
    let connected = false;
    server.once('connect', () => {
      connected = true;
      server.setTimeout(0);
      s.client.pipe(server);
      server.pipe(s.client);
      s.client.resume();
    });
    server.on('error', () => {
      if (!connected) this.o.events?.dropped?.('backend_error');
      this.end(s);
    });
    server.on('close', () => this.end(s));
  }

  private clearHold(s: Session): void {
    if (s.holdTimer) clearTimeout(s.holdTimer);
    s.holdTimer = null;
  }

  /** Closes both sides of a session (once). */
  private end(s: Session, why?: DropReason): void {
    if (!this.sessions.delete(s)) return;
    if (why && s.server === null) this.o.events?.dropped?.(why);
    this.clearHold(s);
    const at = this.held.indexOf(s);
    if (at >= 0) this.held.splice(at, 1);
    s.server?.destroy();
    closeClient(s.client);
    this.o.events?.open?.(this.sessions.size);
  }
}

/**
 * Closes a client connection with a FIN rather than a reset: what it sent and nobody read is
 * drained first (unread data at close makes the kernel send a reset), and it is cut after a grace.
 */
function closeClient(c: net.Socket): void {
  if (c.destroyed) return;
  c.unpipe();
  c.on('data', () => undefined);
  c.on('error', () => undefined);
  c.resume();
  c.end();
  setTimeout(() => c.destroy(), CLOSE_GRACE_MS).unref();
}
