// One authenticated BCP connection: the handshake state machine, framing, request/reply matching
// and keepalive over a connected socket. Used by Transport (peers and accepted clients) and by
// connectClient. The socket may be plain TCP or TLS; the handshake runs inside either way.

import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { FrameDecoder, FrameEncodeError, PROTOCOL_VERSION, encodeFrame, isDecodeError, type Frame } from './codec.js';
import { BcpError } from './errors.js';
import {
  HANDSHAKE_KINDS,
  makeProofs,
  newNonce,
  parseAuth,
  parseAuthFail,
  parseHello,
  verifyProofs,
  type AuthFailBody,
  type Direction,
  type HelloBody,
  type Transcript,
} from './handshake.js';

/** Kinds the channel uses itself; callers cannot send them. */
export const RESERVED_KINDS: ReadonlySet<string> = new Set([
  HANDSHAKE_KINDS.hello,
  HANDSHAKE_KINDS.auth,
  HANDSHAKE_KINDS.authFail,
  'ping',
  'error',
]);
/** Kind of a reply whose handler failed; the body is { error, code }. */
const ERROR_KIND = 'error';
const PING_KIND = 'ping';
/** A peer that lets this much pile up in our send buffer is not reading: drop the connection. */
const MAX_WRITE_BUFFER = 16 * 1024 * 1024;
/** How long a socket may take to flush a final auth_fail before it is destroyed. */
const LINGER_MS = 1000;
const MAX_REQUEST_ID = 0xffff_ffff;

export interface ConnStats {
  framesIn: number;
  framesOut: number;
  authFailures: number;
}

export interface ConnEvents {
  /** The handshake completed in both directions. */
  open(conn: Conn): void;
  /** The connection is gone; `err` says why (for a failed handshake: exactly what failed). The owner logs it. */
  closed(conn: Conn, err: BcpError, wasOpen: boolean): void;
  message(conn: Conn, kind: string, body: unknown): void;
  request(conn: Conn, requestId: number, kind: string, body: unknown): void;
}

export interface ConnOptions {
  socket: Socket;
  role: Direction;
  /** host:port of the other end, for messages. */
  label: string;
  selfId: number;
  clusterId: string;
  secrets: () => string[];
  /** Dialer only: we are a client (requests only). */
  client: boolean;
  /** Dialer only: the node id expected at the other end. */
  expectId?: number;
  /** Acceptor under TLS: whether the dialer presented a certificate signed by the cluster CA. */
  tlsPeerVerified?: boolean;
  handshakeTimeoutMs: number;
  maxFrameBytes: number;
  pingMs: number;
  deadMs: number;
  logger: Logger;
  stats: ConnStats;
  events: ConnEvents;
  /** Dialer under TLS: the socket becomes usable on 'secureConnect' rather than 'connect'. */
  tls?: boolean;
  /** Dialer: checked once the socket is connected, before the hello; a string refuses the peer. */
  verifyPeer?: () => string | null;
}

type ConnState = 'connecting' | 'handshake' | 'open' | 'closed';

interface Pending {
  kind: string;
  resolve: (v: unknown) => void;
  reject: (e: BcpError) => void;
  timer: NodeJS.Timeout;
}

const UNREACHABLE_ERRNO: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host name lookup failed',
  ETIMEDOUT: 'connection timed out',
  EADDRNOTAVAIL: 'address not available',
  ECONNRESET: 'connection reset',
  EPIPE: 'connection broken',
};

function errnoText(err: unknown): string {
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && UNREACHABLE_ERRNO[code]) return UNREACHABLE_ERRNO[code];
  return err instanceof Error ? err.message : String(err);
}

function isConnectErrno(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && code !== 'ECONNRESET' && code !== 'EPIPE' && code in UNREACHABLE_ERRNO;
}

function now(): number {
  return performance.now();
}

export class Conn {
  readonly role: Direction;
  readonly label: string;
  /** Authenticated id of the other end (-1 until its hello arrived). 0 = a client without a node id. */
  remoteId = -1;
  /** The other end is a client (requests only). */
  remoteClient = false;
  private state: ConnState = 'connecting';
  private readonly o: ConnOptions;
  private readonly socket: Socket;
  private readonly decoder: FrameDecoder;
  private readonly nonce = newNonce();
  private hello: HelloBody | null = null;
  private handshakeTimer: NodeJS.Timeout | null;
  private keepaliveTimer: NodeJS.Timeout | null = null;
  private lastRecv = now();
  private lastSent = now();
  private nextRequestId = 1;
  private readonly pending = new Map<number, Pending>();

  constructor(o: ConnOptions) {
    this.o = o;
    this.role = o.role;
    this.label = o.label;
    this.socket = o.socket;
    this.decoder = new FrameDecoder(o.maxFrameBytes);
    this.socket.setNoDelay(true);
    this.socket.on('error', (err) => this.onSocketError(err));
    this.socket.on('close', () => this.onSocketClose());
    this.handshakeTimer = setTimeout(() => this.onHandshakeTimeout(), o.handshakeTimeoutMs);
    if (o.role === 'acceptor') this.start();
    else this.socket.once(o.tls ? 'secureConnect' : 'connect', () => this.start());
  }

  get isOpen(): boolean {
    return this.state === 'open';
  }

  get isClosed(): boolean {
    return this.state === 'closed';
  }

  /** Display name of the other end: "node 3 at 127.0.0.1:5433" once known. */
  get who(): string {
    if (this.remoteId > 0) return `node ${this.remoteId} at ${this.label}`;
    if (this.remoteId === 0) return `client at ${this.label}`;
    return `the node at ${this.label}`;
  }

  private start(): void {
    if (this.state !== 'connecting') return;
    const refused = this.o.verifyPeer?.() ?? null;
    if (refused !== null) {
      this.o.stats.authFailures++;
      this.socket.destroy();
      this.finish(new BcpError('auth', `${this.who} is refused: ${refused}`));
      return;
    }
    this.state = 'handshake';
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    this.write(HANDSHAKE_KINDS.hello, 0, false, {
      clusterId: this.o.clusterId,
      id: this.o.selfId,
      nonce: this.nonce,
      client: this.o.role === 'dialer' && this.o.client,
    });
  }

  /** Sends a one-way message. False if the connection is not open or the body cannot be encoded. */
  send(kind: string, body: unknown): boolean {
    if (this.state !== 'open') return false;
    try {
      this.write(kind, 0, false, body);
      return true;
    } catch (err) {
      this.o.logger.error({ peer: this.who, kind, err: (err as Error).message }, 'cannot send BCP message');
      return false;
    }
  }

  request(kind: string, body: unknown, timeoutMs: number): Promise<unknown> {
    if (this.state !== 'open') {
      return Promise.reject(new BcpError('closed', `cannot send '${kind}' to ${this.who}: the connection is not open`));
    }
    const id = this.allocRequestId();
    return new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new BcpError('timeout', `request '${kind}' to ${this.who} got no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      // Registered before writing: a write that closes the connection (peer not reading) rejects it.
      this.pending.set(id, { kind, resolve, reject, timer });
      try {
        this.write(kind, id, false, body);
      } catch (err) {
        clearTimeout(timer);
        this.pending.delete(id);
        reject(new BcpError('protocol', `cannot send '${kind}' to ${this.who}: ${(err as Error).message}`, { cause: err }));
      }
    });
  }

  reply(requestId: number, kind: string, value: unknown): void {
    if (this.state !== 'open') return;
    try {
      this.write(kind, requestId, true, value);
    } catch (err) {
      const code = err instanceof FrameEncodeError ? err.code : 'encode';
      this.replyError(requestId, `the reply to '${kind}' cannot be sent: ${(err as Error).message}`, code);
    }
  }

  replyError(requestId: number, message: string, code: string): void {
    if (this.state !== 'open') return;
    try {
      this.write(ERROR_KIND, requestId, true, { error: message.slice(0, 4000), code: code.slice(0, 64) });
    } catch (err) {
      this.o.logger.error({ peer: this.who, err: (err as Error).message }, 'cannot send BCP error reply');
    }
  }

  /** Closes the connection from our side (transport closing, peer removed, replaced). */
  close(reason: string): void {
    if (this.state === 'closed') return;
    this.socket.destroy();
    this.finish(new BcpError('closed', `connection to ${this.who} closed: ${reason}`));
  }

  private allocRequestId(): number {
    for (;;) {
      const id = this.nextRequestId;
      this.nextRequestId = id >= MAX_REQUEST_ID ? 1 : id + 1;
      if (!this.pending.has(id)) return id;
    }
  }

  private write(kind: string, r: number, re: boolean, body: unknown): void {
    const frame: Frame = { v: PROTOCOL_VERSION, c: this.o.clusterId, f: this.o.selfId, r, k: kind, re, b: body };
    const buf = encodeFrame(frame, this.o.maxFrameBytes);
    this.socket.write(buf);
    this.o.stats.framesOut++;
    this.lastSent = now();
    if (this.socket.writableLength > MAX_WRITE_BUFFER) {
      this.fail(new BcpError('closed', `${this.who} is not reading: more than ${MAX_WRITE_BUFFER} bytes wait to be sent`));
    }
  }

  private onData(chunk: Buffer): void {
    this.lastRecv = now();
    for (const item of this.decoder.push(chunk)) {
      if (this.state === 'closed') return;
      if (isDecodeError(item)) {
        const hint = this.state === 'handshake' ? ': is this a biha control port?' : '';
        const what = item.error === 'version' ? `speaks another protocol version (${item.detail})` : `sent an invalid frame (${item.error}: ${item.detail})`;
        this.fail(new BcpError('protocol', `${this.who} ${what}${hint}`));
        return;
      }
      this.o.stats.framesIn++;
      if (this.state === 'handshake') this.onHandshakeFrame(item);
      else this.onOpenFrame(item);
    }
  }

  private onHandshakeFrame(frame: Frame): void {
    if (frame.k === HANDSHAKE_KINDS.authFail) {
      this.fail(this.refusedBy(parseAuthFail(frame.b)));
      return;
    }
    if (this.hello === null) {
      this.onHello(frame);
      return;
    }
    if (frame.k !== HANDSHAKE_KINDS.auth) {
      this.failAndTell('protocol', 'protocol', `${this.who} sent '${frame.k}' before completing the handshake`);
      return;
    }
    const auth = parseAuth(frame.b);
    if (typeof auth === 'string') {
      this.failAndTell('protocol', 'protocol', `${this.who} sent an invalid auth frame: ${auth}`);
      return;
    }
    const prover: Direction = this.role === 'dialer' ? 'acceptor' : 'dialer';
    let secrets: string[];
    try {
      secrets = this.o.secrets();
    } catch (err) {
      this.fail(new BcpError('auth', `cannot read the cluster secret: ${(err as Error).message}`, { cause: err }));
      return;
    }
    if (!verifyProofs(secrets, auth.proofs, this.transcript(), prover)) {
      this.failAndTell(
        'auth',
        'secret',
        `${this.who} did not prove the cluster secret: it was set up with another magic string`,
        'your proof does not match our cluster secret',
      );
      return;
    }
    if (this.role === 'acceptor' && !this.sendProofs()) return;
    this.becomeOpen();
  }

  private onHello(frame: Frame): void {
    if (frame.k !== HANDSHAKE_KINDS.hello) {
      this.failAndTell('protocol', 'protocol', `${this.who} sent '${frame.k}' instead of hello`);
      return;
    }
    const h = parseHello(frame.b);
    if (typeof h === 'string') {
      this.failAndTell('protocol', 'protocol', `${this.who} sent an invalid hello: ${h}`);
      return;
    }
    if (h.clusterId !== this.o.clusterId || frame.c !== this.o.clusterId) {
      this.failAndTell(
        'auth',
        'cluster',
        `${this.who} belongs to cluster '${h.clusterId}', not '${this.o.clusterId}': check the magic string`,
        `this node belongs to cluster '${this.o.clusterId}'`,
      );
      return;
    }
    if (frame.f !== h.id) {
      this.failAndTell('protocol', 'protocol', `${this.who} sent a hello from id ${frame.f} claiming id ${h.id}`);
      return;
    }
    if (this.role === 'acceptor') {
      if (!h.client && h.id === 0) {
        this.failAndTell('auth', 'id', `${this.who} claims node id 0, which is reserved for clients`, 'node id 0 is reserved for clients');
        return;
      }
      if (!h.client && h.id === this.o.selfId) {
        this.failAndTell('auth', 'id', `${this.who} claims our own node id ${h.id}: two nodes share an id`, `node id ${h.id} is our own`);
        return;
      }
      if (!h.client && this.o.tlsPeerVerified === false) {
        this.failAndTell(
          'auth',
          'tls',
          `${this.who} connected as node ${h.id} without a certificate signed by the cluster CA`,
          'a node must present a certificate signed by the cluster CA',
        );
        return;
      }
    } else {
      if (h.client) {
        this.failAndTell('protocol', 'protocol', `${this.who} answered as a client`);
        return;
      }
      if (this.o.expectId !== undefined && h.id !== this.o.expectId) {
        this.failAndTell(
          'auth',
          'id',
          `${this.who} is node ${h.id}, not node ${this.o.expectId}: check the addresses in the cluster configuration`,
          `we dialed node ${this.o.expectId}`,
        );
        return;
      }
    }
    this.hello = h;
    this.remoteId = h.id;
    this.remoteClient = h.client;
    if (this.role === 'dialer') this.sendProofs();
  }

  private sendProofs(): boolean {
    let secrets: string[];
    try {
      secrets = this.o.secrets();
    } catch (err) {
      this.fail(new BcpError('auth', `cannot read the cluster secret: ${(err as Error).message}`, { cause: err }));
      return false;
    }
    if (secrets.length === 0) {
      this.fail(new BcpError('auth', 'no cluster secret is configured'));
      return false;
    }
    this.write(HANDSHAKE_KINDS.auth, 0, false, { proofs: makeProofs(secrets, this.transcript(), this.role) });
    return true;
  }

  private transcript(): Transcript {
    const h = this.hello;
    if (h === null) throw new Error('transcript before hello');
    const dialer = this.role === 'dialer';
    return {
      clusterId: this.o.clusterId,
      dialerId: dialer ? this.o.selfId : h.id,
      acceptorId: dialer ? h.id : this.o.selfId,
      dialerNonce: dialer ? this.nonce : h.nonce,
      acceptorNonce: dialer ? h.nonce : this.nonce,
      client: dialer ? this.o.client : h.client,
    };
  }

  private becomeOpen(): void {
    this.state = 'open';
    if (this.handshakeTimer) clearTimeout(this.handshakeTimer);
    this.handshakeTimer = null;
    this.lastRecv = now();
    const period = Math.max(10, Math.min(this.o.pingMs, this.o.deadMs / 2));
    this.keepaliveTimer = setInterval(() => this.onKeepalive(), period);
    this.keepaliveTimer.unref();
    this.o.events.open(this);
  }

  private onKeepalive(): void {
    if (this.state !== 'open') return;
    const t = now();
    if (t - this.lastRecv >= this.o.deadMs) {
      this.fail(new BcpError('closed', `${this.who} sent nothing for ${Math.round(t - this.lastRecv)} ms`));
      return;
    }
    if (t - this.lastSent >= this.o.pingMs) this.write(PING_KIND, 0, false, null);
  }

  private onOpenFrame(frame: Frame): void {
    if (frame.c !== this.o.clusterId || frame.f !== this.remoteId) {
      this.fail(new BcpError('protocol', `${this.who} sent a frame as node ${frame.f} of cluster '${frame.c}'`));
      return;
    }
    if (frame.re) {
      const p = this.pending.get(frame.r);
      if (!p) return; // late reply after a timeout
      this.pending.delete(frame.r);
      clearTimeout(p.timer);
      if (frame.k === ERROR_KIND) p.reject(remoteError(frame.b, p.kind, this.who));
      else p.resolve(frame.b);
      return;
    }
    if (frame.k === PING_KIND) return;
    if (RESERVED_KINDS.has(frame.k)) {
      this.fail(new BcpError('protocol', `${this.who} sent a '${frame.k}' frame after the handshake`));
      return;
    }
    if (frame.r > 0) this.o.events.request(this, frame.r, frame.k, frame.b);
    else this.o.events.message(this, frame.k, frame.b);
  }

  private refusedBy(f: AuthFailBody): BcpError {
    const at = `the node at ${this.label}`;
    switch (f.reason) {
      case 'secret':
        return new BcpError('auth', `${at} rejected our cluster secret: check the magic string`);
      case 'cluster':
        return new BcpError('auth', `${at} refused our cluster id '${this.o.clusterId}' (${f.detail}): check the magic string`);
      case 'id':
        return new BcpError('auth', `${at} refused our node id ${this.o.selfId}: ${f.detail}`);
      case 'tls':
        return new BcpError('auth', `${at} refused the connection: ${f.detail}`);
      case 'protocol':
        return new BcpError('protocol', `${at} refused the handshake: ${f.detail}`);
    }
  }

  /** Tells the other end why (one auth_fail frame), then fails. */
  private failAndTell(code: 'auth' | 'protocol', reason: AuthFailBody['reason'], message: string, detail?: string): void {
    if (this.state === 'closed') return;
    try {
      this.write(HANDSHAKE_KINDS.authFail, 0, false, { reason, detail: detail ?? message });
    } catch {
      // Nothing more to do: the connection is being dropped anyway.
    }
    this.fail(new BcpError(code, message), true);
  }

  private fail(err: BcpError, linger = false): void {
    if (this.state === 'closed') return;
    if (err.code === 'auth') this.o.stats.authFailures++;
    if (linger) {
      this.socket.end();
      setTimeout(() => this.socket.destroy(), LINGER_MS).unref();
    } else {
      this.socket.destroy();
    }
    this.finish(err);
  }

  private onSocketError(err: Error): void {
    if (this.state === 'closed') return;
    if (this.state === 'connecting') {
      if (isConnectErrno(err) || !this.o.tls) {
        this.finish(new BcpError('unreachable', `cannot connect to ${this.label}: ${errnoText(err)}`, { cause: err }));
      } else {
        this.o.stats.authFailures++;
        this.finish(new BcpError('auth', `TLS handshake with ${this.label} failed: ${err.message}`, { cause: err }));
      }
      this.socket.destroy();
      return;
    }
    if (this.state === 'handshake') {
      this.finish(new BcpError('closed', `${this.who} closed the connection during the handshake (${errnoText(err)})`, { cause: err }));
    } else {
      this.finish(new BcpError('closed', `connection to ${this.who} lost: ${errnoText(err)}`, { cause: err }));
    }
    this.socket.destroy();
  }

  private onSocketClose(): void {
    if (this.state === 'closed') return;
    if (this.state === 'connecting') this.finish(new BcpError('unreachable', `cannot connect to ${this.label}: connection closed`));
    else if (this.state === 'handshake') this.finish(new BcpError('closed', `${this.who} closed the connection during the handshake`));
    else this.finish(new BcpError('closed', `connection to ${this.who} closed by the other side`));
  }

  private onHandshakeTimeout(): void {
    this.handshakeTimer = null;
    if (this.state === 'open' || this.state === 'closed') return;
    const ms = this.o.handshakeTimeoutMs;
    const err =
      this.state === 'connecting'
        ? new BcpError('timeout', `cannot connect to ${this.label}: no answer within ${ms} ms`)
        : new BcpError('timeout', `${this.who} did not complete the handshake within ${ms} ms`);
    this.fail(err);
  }

  private finish(err: BcpError): void {
    if (this.state === 'closed') return;
    const wasOpen = this.state === 'open';
    this.state = 'closed';
    if (this.handshakeTimer) clearTimeout(this.handshakeTimer);
    if (this.keepaliveTimer) clearInterval(this.keepaliveTimer);
    this.handshakeTimer = null;
    this.keepaliveTimer = null;
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      this.pending.delete(id);
      p.reject(new BcpError('closed', `request '${p.kind}' to ${this.who} failed: ${err.message}`, { cause: err }));
    }
    this.o.events.closed(this, err, wasOpen);
  }
}

function remoteError(b: unknown, kind: string, who: string): BcpError {
  if (typeof b === 'object' && b !== null && typeof (b as { error?: unknown }).error === 'string') {
    const e = b as { error: string; code?: unknown };
    const code = typeof e.code === 'string' ? e.code : 'error';
    return new BcpError('remote', e.error, { remoteCode: code });
  }
  return new BcpError('remote', `request '${kind}' to ${who} failed without a message`, { remoteCode: 'error' });
}
