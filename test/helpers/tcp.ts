// Small TCP pieces for the proxy tests: an echo server that names itself in every reply, a client
// that records what it received, and a bounded wait. Each registers its clean-up in `cleanups`.
import * as net from 'node:net';

export type Cleanups = Array<() => Promise<void>>;

/** An echo server on host:port that prefixes each reply with `${name}:`; returns its open sockets. */
export async function echoServer(port: number, host: string, name: string, cleanups: Cleanups): Promise<Set<net.Socket>> {
  const sockets = new Set<net.Socket>();
  const srv = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    s.on('data', (d) => s.write(`${name}:${d.toString()}`));
  });
  await new Promise<void>((r) => srv.listen(port, host, () => r()));
  cleanups.push(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => srv.close(() => r()));
  });
  return sockets;
}

export interface TcpClient {
  sock: net.Socket;
  received(): string;
  closed: Promise<void>;
}

/** A connected client of 127.0.0.1:port. */
export async function tcpClient(port: number, cleanups: Cleanups): Promise<TcpClient> {
  const sock = net.connect(port, '127.0.0.1');
  let data = '';
  sock.on('data', (d) => (data += d.toString()));
  sock.on('error', () => undefined);
  const closed = new Promise<void>((r) => sock.on('close', () => r()));
  await new Promise<void>((r, j) => {
    sock.once('connect', () => r());
    sock.once('error', j);
  });
  cleanups.push(async () => void sock.destroy());
  return { sock, received: () => data, closed };
}

/** Waits until `cond` holds, polling every 10 ms, for at most `ms`. */
export async function until(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
