import net from 'node:net';
import { pino, type Logger } from 'pino';
import { FrameDecoder, PROTOCOL_VERSION, encodeFrame, isDecodeError, type Frame } from '../../src/controller/bcp/codec.js';
import { computeProof, newNonce, parseHello } from '../../src/controller/bcp/handshake.js';
import { Transport, type TransportOptions } from '../../src/controller/bcp/transport.js';

export const CLUSTER = 'cluster-test';

export interface LoggedTransport {
  t: Transport;
  logs: string[];
  port: number;
  addr: { id: number; host: string; port: number };
}

export function memLogger(lines: string[]): Logger {
  return pino({ level: 'debug', base: { component: 'BCP' } }, { write: (s: string) => void lines.push(s) });
}

/** Creates and starts transports; close them all with closeAll(). */
export class Fleet {
  readonly all: Transport[] = [];

  async start(id: number, over: Partial<TransportOptions> = {}): Promise<LoggedTransport> {
    const logs: string[] = [];
    const t = new Transport({
      selfId: id,
      clusterId: CLUSTER,
      secrets: () => ['secret-1'],
      listenHost: '127.0.0.1',
      listenPort: 0,
      logger: memLogger(logs),
      connectTimeoutMs: 1000,
      maxBackoffMs: 200,
      ...over,
    });
    this.all.push(t);
    await t.start();
    const port = t.address().port;
    return { t, logs, port, addr: { id, host: '127.0.0.1', port } };
  }

  async closeAll(): Promise<void> {
    await Promise.all(this.all.splice(0).map((t) => t.close()));
  }
}

/** Polls cond every 10 ms until it holds; throws with `what` after timeoutMs. */
export async function waitFor(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export function stateOf(t: Transport, id: number): string | undefined {
  return t.peerInfo().find((p) => p.id === id)?.state;
}

/** A port nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** TCP relay in front of a port: lets a test cut live connections and refuse new ones. */
export class Relay {
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  refusing = false;
  port = 0;

  constructor(private readonly targetPort: number) {
    this.server = net.createServer((inbound) => {
      if (this.refusing) {
        inbound.destroy();
        return;
      }
      const outbound = net.connect({ host: '127.0.0.1', port: this.targetPort });
      for (const s of [inbound, outbound]) {
        this.sockets.add(s);
        s.on('error', () => undefined);
        s.on('close', () => {
          this.sockets.delete(s);
          inbound.destroy();
          outbound.destroy();
        });
      }
      inbound.pipe(outbound);
      outbound.pipe(inbound);
    });
  }

  async start(): Promise<number> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', () => r()));
    this.port = (this.server.address() as net.AddressInfo).port;
    return this.port;
  }

  /** Destroys every relayed connection (both halves). */
  cut(): void {
    for (const s of this.sockets) s.destroy();
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

/** A hand-driven BCP client speaking the handshake itself, to misbehave after authenticating. */
export class RawClient {
  readonly socket: net.Socket;
  private readonly decoder = new FrameDecoder();
  private readonly frames: Frame[] = [];
  private waiters: Array<() => void> = [];
  closed = false;

  constructor(port: number) {
    this.socket = net.connect({ host: '127.0.0.1', port });
    this.socket.on('error', () => undefined);
    this.socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    this.socket.on('data', (chunk: Buffer) => {
      for (const f of this.decoder.push(chunk)) if (!isDecodeError(f)) this.frames.push(f);
      this.wake();
    });
  }

  async connected(): Promise<void> {
    if (this.socket.readyState === 'open') return;
    await new Promise<void>((r) => this.socket.once('connect', () => r()));
  }

  send(frame: Partial<Frame> & { k: string }): void {
    this.socket.write(encodeFrame({ v: PROTOCOL_VERSION, c: CLUSTER, f: 0, r: 0, re: false, b: null, ...frame }));
  }

  async next(timeoutMs = 3000): Promise<Frame | null> {
    const deadline = Date.now() + timeoutMs;
    while (this.frames.length === 0 && !this.closed) {
      if (Date.now() > deadline) throw new Error('no frame arrived');
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 50);
      });
    }
    return this.frames.shift() ?? null;
  }

  async waitClosed(timeoutMs = 3000): Promise<void> {
    await waitFor(() => this.closed, 'the connection to close', timeoutMs);
  }

  /** Runs the client side of the handshake with `secret`. */
  async authenticate(secret: string, id = 0): Promise<void> {
    await this.connected();
    const nonce = newNonce();
    this.send({ k: 'hello', f: id, b: { clusterId: CLUSTER, id, nonce, client: true } });
    const hello = await this.next();
    if (!hello || hello.k !== 'hello') throw new Error('expected hello');
    const h = parseHello(hello.b);
    if (typeof h === 'string') throw new Error(h);
    const t = { clusterId: CLUSTER, dialerId: id, acceptorId: h.id, dialerNonce: nonce, acceptorNonce: h.nonce, client: true };
    this.send({ k: 'auth', f: id, b: { proofs: [computeProof(secret, t, 'dialer')] } });
    const auth = await this.next();
    if (!auth || auth.k !== 'auth') throw new Error(`expected auth, got ${auth?.k ?? 'close'}`);
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  destroy(): void {
    this.socket.destroy();
  }
}
