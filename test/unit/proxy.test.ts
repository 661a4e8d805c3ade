// The TCP proxy on real sockets: bytes piped both ways, connections held while there is no backend
// and sent on when one appears, closed after the hold, closed when the owner drops their backend,
// and the connection limit. Backends are plain TCP echo servers (the proxy parses nothing).
// Ports: 27400-27419 (this suite's share of its range).
import type * as net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { TcpProxy } from '../../src/controller/ops/proxy.js';
import type { Backend } from '../../src/controller/ops/proxyroute.js';
import { claimPorts } from '../helpers/ports.js';
import { echoServer, tcpClient, until } from '../helpers/tcp.js';
import type { Cleanups, TcpClient } from '../helpers/tcp.js';

const PROXY_PORT = claimPorts(27400, 4);
const ECHO_A = PROXY_PORT + 1;
const ECHO_B = PROXY_PORT + 2;
const CLOSED_PORT = PROXY_PORT + 3;

const cleanups: Cleanups = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** An echo server that prefixes each reply with its name. */
async function echo(port: number, name: string): Promise<{ sockets: Set<net.Socket> }> {
  return { sockets: await echoServer(port, '127.0.0.1', name, cleanups) };
}

async function proxy(pick: () => Backend | null, o: { holdMs?: number; maxConns?: number } = {}): Promise<TcpProxy> {
  const events = { dropped: [] as string[] };
  const p = new TcpProxy({
    name: 'read-write', host: '127.0.0.1', port: PROXY_PORT, holdMs: () => o.holdMs ?? 10_000, maxConns: o.maxConns ?? 10, connectMs: 2000, pick,
    events: { dropped: (why) => events.dropped.push(why) },
  });
  await p.start();
  cleanups.push(() => p.close());
  return p;
}

async function connect(): Promise<TcpClient> {
  return await tcpClient(PROXY_PORT, cleanups);
}

const A: Backend = { id: 1, host: '127.0.0.1', port: ECHO_A };
const B: Backend = { id: 2, host: '127.0.0.1', port: ECHO_B };

describe('TcpProxy', () => {
  it('pipes a connection to the backend picked when it arrives, both ways', async () => {
    await echo(ECHO_A, 'a');
    await proxy(() => A);
    const c = await connect();
    c.sock.write('hello');
    await until('the echo', () => c.received() === 'a:hello');
  });

  it('holds a connection while there is no backend, and sends it on (with what it wrote) once there is', async () => {
    await echo(ECHO_A, 'a');
    let target: Backend | null = null;
    const p = await proxy(() => target);
    const c = await connect();
    c.sock.write('early');
    await new Promise((r) => setTimeout(r, 200));
    expect(c.received()).toBe('');
    expect(p.size).toBe(1);
    target = A;
    p.wake();
    await until('the held bytes to reach the backend', () => c.received() === 'a:early');
  });

  it('closes a held connection after the hold time', async () => {
    const p = await proxy(() => null, { holdMs: 300 });
    const c = await connect();
    await c.closed;
    expect(p.size).toBe(0);
  });

  it('closeWhere ends the sessions to the backends the owner no longer wants, and only those', async () => {
    await echo(ECHO_A, 'a');
    await echo(ECHO_B, 'b');
    let target = A;
    const p = await proxy(() => target);
    const old = await connect();
    old.sock.write('x');
    await until('the old session', () => old.received() === 'a:x');
    target = B;
    const fresh = await connect();
    fresh.sock.write('y');
    await until('the new session', () => fresh.received() === 'b:y');
    expect(p.closeWhere((b) => b.id !== B.id)).toBe(1);
    await old.closed;
    fresh.sock.write('z');
    await until('the new session to stay', () => fresh.received() === 'b:yb:z');
  });

  it('closes the client when the backend refuses the connection, or closes its side', async () => {
    const p = await proxy(() => ({ id: 9, host: '127.0.0.1', port: CLOSED_PORT }));
    const c = await connect();
    await c.closed;
    expect(p.size).toBe(0);
    await p.close();
    const srv = await echo(ECHO_A, 'a');
    await proxy(() => A);
    const d = await connect();
    d.sock.write('1');
    await until('the session', () => d.received() === 'a:1');
    for (const s of srv.sockets) s.end();
    await d.closed;
  });

  it('accepts at most maxConns connections at once', async () => {
    await echo(ECHO_A, 'a');
    const p = await proxy(() => A, { maxConns: 2 });
    const c1 = await connect();
    const c2 = await connect();
    await until('two sessions', () => p.size === 2);
    const c3 = await connect();
    await c3.closed;
    c1.sock.write('still');
    await until('the first to work', () => c1.received() === 'a:still');
    c2.sock.destroy();
    await until('one session', () => p.size === 1);
    const c4 = await connect();
    c4.sock.write('room');
    await until('a connection once there is room', () => c4.received() === 'a:room');
  });
});
