// ClientEndpoints: follows the writable leader for the proxy. A leader raft names counts only once
// its PostgreSQL is confirmed a primary; a new leader closes the sessions to the previous one; no
// leader holds new connections for the hold time, then closes them (counted in the metrics).
// Backends are plain TCP echo servers. Ports: 27420-27429 (this suite's share of its range).
import * as net from 'node:net';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { ClientEndpoints } from '../../src/controller/ops/endpoints.js';
import { Metrics } from '../../src/controller/ops/metrics.js';
import type { Backend, Routes } from '../../src/controller/ops/proxyroute.js';
import { claimPorts } from '../helpers/ports.js';
import { echoServer, tcpClient, until } from '../helpers/tcp.js';
import type { Cleanups, TcpClient } from '../helpers/tcp.js';

const PROXY_PORT = claimPorts(27420, 3);
const A: Backend = { id: 1, host: '127.0.0.1', port: PROXY_PORT + 1 };
const B: Backend = { id: 2, host: '127.0.0.1', port: PROXY_PORT + 2 };

const cleanups: Cleanups = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function echo(b: Backend): Promise<void> {
  await echoServer(b.port, b.host, String(b.id), cleanups);
}

async function connect(): Promise<TcpClient> {
  return await tcpClient(PROXY_PORT, cleanups);
}

/** Endpoints on node 3 whose raft view and peers' answers the test sets. */
async function endpoints(holdMs: number): Promise<{ world: { routes: Routes; primary: Set<number> }; metrics: Metrics; e: ClientEndpoints }> {
  const world = { routes: { leader: null, term: 0, readers: [] } as Routes, primary: new Set<number>() };
  const metrics = new Metrics({ node_id: '3', node_name: '', region: '' });
  const e = new ClientEndpoints({
    conf: { port: PROXY_PORT, holdMs },
    selfId: 3,
    listenHost: '127.0.0.1',
    log: pino({ level: 'silent' }),
    metrics,
    electionTimeoutMs: () => 1000,
    routes: () => world.routes,
    selfPrimary: () => false,
    peerPrimary: (id) => Promise.resolve(world.primary.has(id)),
    inline: true,
  });
  await e.start();
  cleanups.push(() => e.close());
  return { world, metrics, e };
}

describe('ClientEndpoints', () => {
  it('sends connections to a LEADER_RW node only once its PostgreSQL answers as a primary', async () => {
    await echo(A);
    const { world } = await endpoints(30_000);
    world.routes = { leader: A, term: 2, readers: [] };
    const c = await connect();
    c.sock.write('q');
    await new Promise((r) => setTimeout(r, 300));
    expect(c.received()).toBe('');
    world.primary.add(A.id);
    await until('the held connection to reach node 1', () => c.received() === '1:q');
  });

  it('a new leader closes the sessions to the previous one; new connections go to it', async () => {
    await echo(A);
    await echo(B);
    const { world } = await endpoints(30_000);
    world.primary.add(A.id).add(B.id);
    world.routes = { leader: A, term: 2, readers: [] };
    const old = await connect();
    old.sock.write('x');
    await until('the session on node 1', () => old.received() === '1:x');
    world.routes = { leader: B, term: 3, readers: [] };
    await old.closed;
    const fresh = await connect();
    fresh.sock.write('y');
    await until('the session on node 2', () => fresh.received() === '2:y');
  });

  it('without a writable leader a new connection waits for the hold time, then is closed and counted', async () => {
    const { metrics } = await endpoints(300);
    const c = await connect();
    await c.closed;
    expect(c.received()).toBe('');
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/biha_proxy_connections_dropped_total\{endpoint="rw",reason="hold_timeout"[^}]*\} 1/);
    expect(text).toMatch(/biha_proxy_connections_total\{endpoint="rw"[^}]*\} 1/);
  });
});
