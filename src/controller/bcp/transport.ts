// The control channel between controllers (component BCP): one authenticated connection per peer
// pair over TCP (optionally TLS), carrying one-way messages and requests with replies.
//
// The node with the lower id dials the higher one and redials with backoff while the peer stays in
// the set; the higher id accepts. Clients (bihactl, a node being added) dial anyone and only make
// requests. See docs/protocol.md for the frames, the handshake and the connection states.

import net from 'node:net';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { pino, type Logger } from 'pino';
import { MAX_FRAME_BYTES } from './codec.js';
import { Conn, RESERVED_KINDS, type ConnEvents, type ConnOptions, type ConnStats } from './connection.js';
import { BcpError } from './errors.js';
import { checkPinnedPeer } from '../security/tlsfiles.js';

export { BcpError, type BcpErrorCode } from './errors.js';

/** Connection state of a peer as shown in biha.nodes_v. */
export type PeerConnState = 'INIT' | 'CONNECTING' | 'ACTIVE' | 'IDLE';

export interface PeerAddr {
  id: number;
  host: string;
  port: number;
}

export interface PeerConnInfo extends PeerAddr {
  state: PeerConnState;
  /** Milliseconds since the current connection became ACTIVE (null unless ACTIVE). */
  sinceConnStartMs: number | null;
  /** Times the connection to this peer became ACTIVE since this transport started. */
  connCount: number;
  /** Why the last connection attempt failed or the last connection closed (null if none did). */
  lastError: string | null;
}

export interface TransportTls {
  key: string;
  cert: string;
  ca: string;
}

export interface TransportOptions {
  selfId: number;
  clusterId: string;
  /** Accepted cluster secrets; [0] is the current one. Every one held is proven during a rotation. */
  secrets: () => string[];
  listenHost: string;
  /** 0 = ephemeral; see address() after start(). */
  listenPort: number;
  /** Pass a child with {component: 'BCP'}. Secrets and proofs are never logged. */
  logger: Logger;
  tls?: TransportTls;
  /** Connect plus handshake deadline (default 3000). */
  connectTimeoutMs?: number;
  /** Reconnect backoff: 50 ms doubling up to this (default 1000). */
  maxBackoffMs?: number;
  /** Send a ping on a connection idle this long (default 1000). */
  pingMs?: number;
  /** Drop a connection that sent nothing for this long (default 6000). */
  deadMs?: number;
  /** Largest frame accepted or sent (default MAX_FRAME_BYTES). */
  maxFrameBytes?: number;
}

export interface TransportStats {
  /** Connection attempts made after a failed attempt or a lost connection. */
  reconnects: number;
  framesIn: number;
  framesOut: number;
  /** Handshakes refused by us or by the other side (secret, cluster id, node id, certificate). */
  authFailures: number;
}

export type MessageHandler = (from: number, kind: string, body: unknown) => void;
export type RequestHandler = (from: number, kind: string, body: unknown) => Promise<unknown>;

const INITIAL_BACKOFF_MS = 50;
const DEFAULT_CONNECT_TIMEOUT_MS = 3000;
const DEFAULT_MAX_BACKOFF_MS = 1000;
const DEFAULT_PING_MS = 1000;
const DEFAULT_DEAD_MS = 6000;
/** Connections still in the handshake beyond this are refused at once. */
const MAX_UNAUTHENTICATED = 64;
const REFUSAL_LOG_INTERVAL_MS = 60_000;

interface PeerEntry {
  addr: PeerAddr;
  state: PeerConnState;
  /** The ACTIVE connection. */
  conn: Conn | null;
  /** Our outgoing attempt in progress. */
  dialing: Conn | null;
  connCount: number;
  activeSince: number | null;
  backoffMs: number;
  retryTimer: NodeJS.Timeout | null;
  attempts: number;
  lastError: string | null;
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function errorCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : 'error';
}

function checkKind(kind: string): void {
  if (RESERVED_KINDS.has(kind)) throw new BcpError('protocol', `message kind '${kind}' is reserved by the control channel`);
}

export class Transport {
  private readonly o: TransportOptions;
  private readonly log: Logger;
  private readonly peers = new Map<number, PeerEntry>();
  private readonly conns = new Set<Conn>();
  private readonly sockets = new Set<net.Socket>();
  private readonly statsData: ConnStats & { reconnects: number } = { reconnects: 0, framesIn: 0, framesOut: 0, authFailures: 0 };
  private readonly events: ConnEvents;
  private server: net.Server | null = null;
  private closed = false;
  private unauthenticated = 0;
  private readonly refusalLog = new Map<string, number>();
  private messageHandler: MessageHandler | null = null;
  private requestHandler: RequestHandler | null = null;

  constructor(opts: TransportOptions) {
    if (!Number.isSafeInteger(opts.selfId) || opts.selfId < 1) throw new RangeError(`node id must be a positive integer, got ${opts.selfId}`);
    this.o = opts;
    this.log = opts.logger;
    this.events = {
      open: (c) => this.onOpen(c),
      closed: (c, err, wasOpen) => this.onClosed(c, err, wasOpen),
      message: (c, kind, body) => this.onConnMessage(c, kind, body),
      request: (c, r, kind, body) => this.onConnRequest(c, r, kind, body),
    };
  }

  /** Starts listening. Rejects with BcpError 'addr_in_use' if the port is taken. */
  async start(): Promise<void> {
    if (this.server) throw new Error('transport already started');
    if (this.closed) throw new BcpError('closed', 'transport is closed');
    const t = this.o.tls;
    let server: net.Server;
    try {
      server = t
        ? tls.createServer({
            key: t.key,
            cert: t.cert,
            ca: t.ca,
            requestCert: true,
            rejectUnauthorized: false,
            handshakeTimeout: this.o.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
          })
        : net.createServer();
    } catch (err) {
      throw new BcpError('listen', `cannot use the TLS key and certificates: ${errorMessage(err)}`, { cause: err });
    }
    this.server = server;
    // Every raw socket, TLS ones still in their handshake included, so close() can end them all.
    server.on('connection', (s: net.Socket) => this.track(s));
    if (t) {
      server.on('secureConnection', (s: tls.TLSSocket) => this.accept(s, true));
      server.on('tlsClientError', (err: Error, s: tls.TLSSocket) => {
        this.statsData.authFailures++;
        const fresh = this.firstInAWhile(s.remoteAddress ?? '?', err.message);
        this.log[fresh ? 'warn' : 'debug']({ peer: `${s.remoteAddress}:${s.remotePort}`, reason: err.message }, 'TLS handshake failed; closing the connection');
        s.destroy();
      });
    } else {
      server.on('connection', (s: net.Socket) => this.accept(s, false));
    }
    server.maxConnections = 1024;
    const where = `${this.o.listenHost}:${this.o.listenPort}`;
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        this.server = null;
        if (err.code === 'EADDRINUSE') {
          reject(new BcpError('addr_in_use', `cannot listen on ${where}: address already in use (is another controller running?)`, { cause: err }));
        } else {
          reject(new BcpError('listen', `cannot listen on ${where}: ${err.message}`, { cause: err }));
        }
      };
      server.once('error', onError);
      server.listen({ host: this.o.listenHost, port: this.o.listenPort }, () => {
        server.off('error', onError);
        server.on('error', (err) => this.log.error({ err: err.message }, 'BCP listener error'));
        resolve();
      });
    });
    const a = this.address();
    this.log.info({ host: a.host, port: a.port, tls: Boolean(t) }, 'BCP listening');
  }

  address(): { host: string; port: number } {
    const a = this.server?.address();
    if (!a || typeof a === 'string') throw new BcpError('closed', 'transport is not listening');
    return { host: (a as AddressInfo).address, port: (a as AddressInfo).port };
  }

  /** Replaces the peer set (from the committed configuration). Self is ignored; removed peers are disconnected. */
  setPeers(peers: PeerAddr[]): void {
    if (this.closed) return;
    const next = new Map<number, PeerAddr>();
    for (const p of peers) if (p.id !== this.o.selfId) next.set(p.id, { id: p.id, host: p.host, port: p.port });
    for (const [id, e] of this.peers) {
      if (!next.has(id)) this.removePeer(e);
    }
    for (const p of next.values()) {
      const e = this.peers.get(p.id);
      if (!e) {
        const entry: PeerEntry = {
          addr: p,
          state: 'INIT',
          conn: null,
          dialing: null,
          connCount: 0,
          activeSince: null,
          backoffMs: INITIAL_BACKOFF_MS,
          retryTimer: null,
          attempts: 0,
          lastError: null,
        };
        this.peers.set(p.id, entry);
        if (this.weDial(p.id)) this.dial(entry);
        else this.adoptAccepted(entry);
      } else if (e.addr.host !== p.host || e.addr.port !== p.port) {
        e.addr = p;
        if (this.weDial(p.id)) {
          this.log.info({ nodeId: p.id, host: p.host, port: p.port }, 'peer address changed; reconnecting');
          e.dialing?.close('peer address changed');
          e.conn?.close('peer address changed');
          e.backoffMs = INITIAL_BACKOFF_MS;
          this.dial(e);
        }
      }
    }
  }

  /** Fire-and-forget message to a peer. False if the peer is not ACTIVE. */
  send(to: number, kind: string, body: unknown): boolean {
    checkKind(kind);
    const c = this.peers.get(to)?.conn;
    return c ? c.send(kind, body) : false;
  }

  onMessage(handler: MessageHandler): void {
    this.messageHandler = handler;
  }

  onRequest(handler: RequestHandler): void {
    this.requestHandler = handler;
  }

  request(to: number, kind: string, body: unknown, timeoutMs: number): Promise<unknown> {
    checkKind(kind);
    if (this.closed) return Promise.reject(new BcpError('closed', 'transport is closed'));
    const e = this.peers.get(to);
    if (!e) return Promise.reject(new BcpError('unreachable', `node ${to} is not a peer of node ${this.o.selfId}`));
    if (!e.conn) {
      const why = e.lastError ? `: ${e.lastError}` : '';
      return Promise.reject(new BcpError('unreachable', `node ${to} is not connected (${e.state})${why}`));
    }
    return e.conn.request(kind, body, timeoutMs);
  }

  peerInfo(): PeerConnInfo[] {
    const t = performance.now();
    return [...this.peers.values()]
      .sort((a, b) => a.addr.id - b.addr.id)
      .map((e) => ({
        id: e.addr.id,
        host: e.addr.host,
        port: e.addr.port,
        state: e.state,
        sinceConnStartMs: e.state === 'ACTIVE' && e.activeSince !== null ? Math.round(t - e.activeSince) : null,
        connCount: e.connCount,
        lastError: e.lastError,
      }));
  }

  stats(): TransportStats {
    const s = this.statsData;
    return { reconnects: s.reconnects, framesIn: s.framesIn, framesOut: s.framesOut, authFailures: s.authFailures };
  }

  /** Closes the listener and every connection; pending requests reject with code 'closed'. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const e of this.peers.values()) {
      if (e.retryTimer) clearTimeout(e.retryTimer);
      e.retryTimer = null;
    }
    for (const c of [...this.conns]) c.close('transport closed');
    for (const s of this.sockets) s.destroy();
    const server = this.server;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    this.log.info('BCP closed');
  }

  private weDial(id: number): boolean {
    return id > this.o.selfId;
  }

  private connDefaults(): Pick<
    ConnOptions,
    'selfId' | 'clusterId' | 'secrets' | 'handshakeTimeoutMs' | 'maxFrameBytes' | 'pingMs' | 'deadMs' | 'logger' | 'stats' | 'events'
  > {
    return {
      selfId: this.o.selfId,
      clusterId: this.o.clusterId,
      secrets: this.o.secrets,
      handshakeTimeoutMs: this.o.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
      maxFrameBytes: this.o.maxFrameBytes ?? MAX_FRAME_BYTES,
      pingMs: this.o.pingMs ?? DEFAULT_PING_MS,
      deadMs: this.o.deadMs ?? DEFAULT_DEAD_MS,
      logger: this.log,
      stats: this.statsData,
      events: this.events,
    };
  }

  private dial(e: PeerEntry): void {
    if (this.closed || e.dialing || e.conn) return;
    if (e.retryTimer) clearTimeout(e.retryTimer);
    e.retryTimer = null;
    if (e.attempts > 0) this.statsData.reconnects++;
    e.attempts++;
    e.state = 'CONNECTING';
    const { host, port } = e.addr;
    const t = this.o.tls;
    const socket = t
      ? tls.connect({ host, port, key: t.key, cert: t.cert, ca: t.ca, checkServerIdentity: () => undefined })
      : net.connect({ host, port });
    this.track(socket);
    const conn = new Conn({
      ...this.connDefaults(),
      socket,
      role: 'dialer',
      label: `${host}:${port}`,
      client: false,
      expectId: e.addr.id,
      tls: Boolean(t),
    });
    e.dialing = conn;
    this.conns.add(conn);
  }

  private scheduleRetry(e: PeerEntry): void {
    if (this.closed || !this.weDial(e.addr.id) || this.peers.get(e.addr.id) !== e || e.retryTimer || e.dialing || e.conn) return;
    const delay = e.backoffMs;
    e.backoffMs = Math.min(delay * 2, this.o.maxBackoffMs ?? DEFAULT_MAX_BACKOFF_MS);
    e.retryTimer = setTimeout(() => {
      e.retryTimer = null;
      this.dial(e);
    }, delay);
    e.retryTimer.unref();
  }

  private track(socket: net.Socket): void {
    if (this.sockets.has(socket)) return;
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
  }

  private accept(socket: net.Socket, isTls: boolean): void {
    const label = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    if (this.closed) {
      socket.destroy();
      return;
    }
    if (this.unauthenticated >= MAX_UNAUTHENTICATED) {
      this.log.warn({ peer: label }, `more than ${MAX_UNAUTHENTICATED} connections are in the handshake; refusing one`);
      socket.destroy();
      return;
    }
    let tlsPeerVerified: boolean | undefined;
    if (isTls) {
      const ts = socket as tls.TLSSocket;
      const cert = ts.getPeerCertificate();
      const presented = Boolean(cert) && Object.keys(cert).length > 0;
      if (presented && !ts.authorized) {
        this.statsData.authFailures++;
        const reason = String(ts.authorizationError);
        const fresh = this.firstInAWhile(socket.remoteAddress ?? '?', reason);
        this.log[fresh ? 'warn' : 'debug']({ peer: label, reason }, 'client certificate is not signed by the cluster CA; closing the connection');
        socket.destroy();
        return;
      }
      tlsPeerVerified = presented;
    }
    this.track(socket);
    this.unauthenticated++;
    const conn = new Conn({
      ...this.connDefaults(),
      socket,
      role: 'acceptor',
      label,
      client: false,
      ...(tlsPeerVerified === undefined ? {} : { tlsPeerVerified }),
    });
    if (!conn.isClosed) this.conns.add(conn);
  }

  private entryOf(c: Conn): PeerEntry | undefined {
    for (const e of this.peers.values()) if (e.conn === c || e.dialing === c) return e;
    return undefined;
  }

  private attach(e: PeerEntry, c: Conn): void {
    e.conn = c;
    e.state = 'ACTIVE';
    e.connCount++;
    e.activeSince = performance.now();
    e.backoffMs = INITIAL_BACKOFF_MS;
    e.lastError = null;
    this.log.info({ nodeId: e.addr.id, peer: c.label, connCount: e.connCount }, 'BCP connection to peer is ACTIVE');
  }

  /** A lower-id node that connected before it was in our peer set becomes the peer link. */
  private adoptAccepted(e: PeerEntry): void {
    for (const c of this.conns) {
      if (c.role === 'acceptor' && c.isOpen && !c.remoteClient && c.remoteId === e.addr.id) {
        this.attach(e, c);
        return;
      }
    }
  }

  private onOpen(c: Conn): void {
    if (c.role === 'dialer') {
      const e = this.entryOf(c);
      if (!e || e.dialing !== c) {
        c.close('the peer is no longer in the configuration');
        return;
      }
      e.dialing = null;
      this.attach(e, c);
      return;
    }
    this.unauthenticated--;
    const e = this.peers.get(c.remoteId);
    if (!c.remoteClient && e && !this.weDial(c.remoteId)) {
      const old = e.conn;
      if (old) {
        e.conn = null;
        old.close('replaced by a newer connection from the same node');
      }
      this.attach(e, c);
      return;
    }
    this.log.info({ peer: c.label, nodeId: c.remoteId, client: c.remoteClient }, 'BCP connection accepted for requests only');
  }

  private onClosed(c: Conn, err: BcpError, wasOpen: boolean): void {
    this.conns.delete(c);
    if (c.role === 'acceptor' && !wasOpen) this.unauthenticated--;
    if (this.closed) return;
    const e = this.entryOf(c);
    const fields = { peer: c.label, nodeId: c.remoteId >= 0 ? c.remoteId : undefined, reason: err.message };
    if (!wasOpen) {
      // A peer that stays down or misconfigured is retried every second: say so once, not every time.
      const host = c.label.slice(0, c.label.lastIndexOf(':'));
      const fresh = e ? e.lastError !== err.message : this.firstInAWhile(host, err.message.split(c.label).join(host));
      this.log[fresh ? 'warn' : 'debug'](fields, 'BCP handshake failed; connection closed');
    } else {
      const bad = err.code === 'protocol' || err.code === 'auth';
      this.log[bad ? 'warn' : 'info'](fields, e ? 'BCP connection to peer lost' : 'BCP connection closed');
    }
    if (!e) return;
    e.lastError = err.message;
    if (e.dialing === c) {
      e.dialing = null;
      if (!e.conn) e.state = 'IDLE';
    } else {
      e.conn = null;
      e.activeSince = null;
      e.state = 'IDLE';
    }
    this.scheduleRetry(e);
  }

  /** Rate limit for refusals of inbound connections: one warning per source and reason a minute. */
  private firstInAWhile(host: string, reason: string): boolean {
    const key = `${host}|${reason}`;
    const t = performance.now();
    const last = this.refusalLog.get(key);
    if (last !== undefined && t - last < REFUSAL_LOG_INTERVAL_MS) return false;
    if (this.refusalLog.size > 1000) this.refusalLog.clear();
    this.refusalLog.set(key, t);
    return true;
  }

  private onConnMessage(c: Conn, kind: string, body: unknown): void {
    const e = this.peers.get(c.remoteId);
    if (!e || e.conn !== c) {
      this.log.debug({ peer: c.label, nodeId: c.remoteId, kind }, 'dropping a message from a connection that is not a peer link');
      return;
    }
    const h = this.messageHandler;
    if (!h) return;
    try {
      h(c.remoteId, kind, body);
    } catch (err) {
      this.log.error({ nodeId: c.remoteId, kind, err: errorMessage(err) }, 'BCP message handler failed');
    }
  }

  private onConnRequest(c: Conn, r: number, kind: string, body: unknown): void {
    const h = this.requestHandler;
    if (!h) {
      c.replyError(r, `node ${this.o.selfId} serves no requests`, 'no_handler');
      return;
    }
    let p: Promise<unknown>;
    try {
      p = Promise.resolve(h(c.remoteId, kind, body));
    } catch (err) {
      p = Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    void p.then(
      (value) => c.reply(r, kind, value),
      (err: unknown) => c.replyError(r, errorMessage(err), errorCode(err)),
    );
  }

  private removePeer(e: PeerEntry): void {
    this.peers.delete(e.addr.id);
    if (e.retryTimer) clearTimeout(e.retryTimer);
    e.retryTimer = null;
    e.dialing?.close('the peer was removed from the configuration');
    e.conn?.close('the peer was removed from the configuration');
    this.log.info({ nodeId: e.addr.id }, 'peer removed from the BCP peer set');
  }
}

export interface ClientOptions {
  host: string;
  port: number;
  clusterId: string;
  secret: string;
  /** 0 (default) for bihactl; a node being added passes its future id. */
  selfId?: number;
  /** Connect plus handshake deadline. */
  timeoutMs: number;
  /**
   * Server certificate verified against `ca`, or (a node being added, which has no CA yet) against
   * the CA whose SHA-256 fingerprint is `pin` and which the server sends in its chain. key and cert
   * present a client certificate.
   */
  tls?: { ca?: string; pin?: string; key?: string; cert?: string };
  /** Defaults to a silent logger (bihactl prints the rejection message itself). */
  logger?: Logger;
}

export interface BcpClient {
  request(kind: string, body: unknown, timeoutMs: number): Promise<unknown>;
  close(): void;
}

/**
 * Connects as a client (requests only). Rejects with a BcpError whose message says what failed,
 * e.g. "the node at 127.0.0.1:5433 rejected our cluster secret: check the magic string".
 */
export function connectClient(opts: ClientOptions): Promise<BcpClient> {
  return new Promise<BcpClient>((resolve, reject) => {
    const { host, port } = opts;
    const t = opts.tls;
    let socket: net.Socket;
    try {
      socket = t
        ? tls.connect({
            host,
            port,
            ...(t.ca === undefined ? {} : { ca: t.ca }),
            ...(t.pin === undefined ? {} : { rejectUnauthorized: false }),
            ...(t.key === undefined ? {} : { key: t.key }),
            ...(t.cert === undefined ? {} : { cert: t.cert }),
            checkServerIdentity: () => undefined,
          })
        : net.connect({ host, port });
    } catch (err) {
      reject(new BcpError('unreachable', `cannot connect to ${host}:${port}: ${errorMessage(err)}`, { cause: err }));
      return;
    }
    const stats: ConnStats = { framesIn: 0, framesOut: 0, authFailures: 0 };
    const events: ConnEvents = {
      open: (c) => {
        resolve({
          request: (kind, body, timeoutMs) => {
            try {
              checkKind(kind);
            } catch (err) {
              return Promise.reject(err instanceof Error ? err : new Error(String(err)));
            }
            return c.request(kind, body, timeoutMs);
          },
          close: () => c.close('closed by the client'),
        });
      },
      closed: (_c, err, wasOpen) => {
        if (!wasOpen) reject(err);
      },
      message: () => undefined,
      request: (c, r) => c.replyError(r, 'a client serves no requests', 'no_handler'),
    };
    new Conn({
      socket,
      role: 'dialer',
      label: `${host}:${port}`,
      selfId: opts.selfId ?? 0,
      clusterId: opts.clusterId,
      secrets: () => [opts.secret],
      client: true,
      handshakeTimeoutMs: opts.timeoutMs,
      maxFrameBytes: MAX_FRAME_BYTES,
      pingMs: DEFAULT_PING_MS,
      deadMs: DEFAULT_DEAD_MS * 2,
      logger: opts.logger ?? pino({ enabled: false }),
      stats,
      events,
      tls: Boolean(t),
      ...(t?.pin === undefined ? {} : { verifyPeer: () => checkPinnedPeer(socket as tls.TLSSocket, t.pin!) }),
    });
  });
}
