import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { BcpError, connectClient, type Transport } from '../../src/controller/bcp/transport.js';
import { CLUSTER, Fleet, RawClient, Relay, closedPort, stateOf, waitFor } from './helpers.js';

const fleet = new Fleet();
const relays: Relay[] = [];

afterEach(async () => {
  await Promise.all(relays.splice(0).map((r) => r.close()));
  await fleet.closeAll();
});

async function rejection(p: Promise<unknown>): Promise<BcpError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(BcpError);
    return err as BcpError;
  }
  throw new Error('expected a rejection');
}

function allActive(t: Transport): boolean {
  const info = t.peerInfo();
  return info.length > 0 && info.every((p) => p.state === 'ACTIVE');
}

describe('Transport mesh', () => {
  it('three transports connect, exchange messages and requests', async () => {
    const n1 = await fleet.start(1);
    const n2 = await fleet.start(2);
    const n3 = await fleet.start(3);
    const got: Array<[number, number, string, unknown]> = [];
    for (const n of [n1, n2, n3]) {
      const self = n.addr.id;
      n.t.onMessage((from, kind, body) => got.push([self, from, kind, body]));
      n.t.onRequest(async (from, kind, body) => ({ at: self, from, kind, body }));
    }
    // Node 3 only accepts: before anybody dials it, its peers are INIT.
    n3.t.setPeers([n1.addr, n2.addr, n3.addr]);
    expect(n3.t.peerInfo().map((p) => [p.id, p.state, p.connCount])).toEqual([
      [1, 'INIT', 0],
      [2, 'INIT', 0],
    ]);
    n2.t.setPeers([n1.addr, n2.addr, n3.addr]);
    n1.t.setPeers([n1.addr, n2.addr, n3.addr]);
    await waitFor(() => [n1, n2, n3].every((n) => allActive(n.t)), 'a full mesh');
    for (const n of [n1, n2, n3]) {
      for (const p of n.t.peerInfo()) {
        expect(p.connCount).toBe(1);
        expect(p.sinceConnStartMs).not.toBeNull();
        expect(p.id).not.toBe(n.addr.id);
      }
    }

    expect(n1.t.send(2, 'note', { a: 1 })).toBe(true);
    expect(n3.t.send(1, 'note', [3, 1])).toBe(true);
    expect(n2.t.send(3, 'note', 'x')).toBe(true);
    expect(n1.t.send(9, 'note', null)).toBe(false);
    await waitFor(() => got.length === 3, 'three messages');
    expect(got).toEqual(
      expect.arrayContaining([
        [2, 1, 'note', { a: 1 }],
        [1, 3, 'note', [3, 1]],
        [3, 2, 'note', 'x'],
      ]),
    );

    await expect(n3.t.request(1, 'status', { q: 1 }, 2000)).resolves.toEqual({ at: 1, from: 3, kind: 'status', body: { q: 1 } });
    await expect(n1.t.request(3, 'status', null, 2000)).resolves.toEqual({ at: 3, from: 1, kind: 'status', body: null });
    const stats = n1.t.stats();
    expect(stats.framesIn).toBeGreaterThan(0);
    expect(stats.framesOut).toBeGreaterThan(0);
    expect(stats.authFailures).toBe(0);
  });

  it('matches several requests in flight by request id', async () => {
    const n1 = await fleet.start(1);
    const n2 = await fleet.start(2);
    // Later requests are answered first.
    n2.t.onRequest(async (_from, _kind, body) => {
      const i = body as number;
      await new Promise((r) => setTimeout(r, (20 - i) * 5));
      return i * 10;
    });
    n1.t.setPeers([n1.addr, n2.addr]);
    n2.t.setPeers([n1.addr, n2.addr]);
    await waitFor(() => stateOf(n1.t, 2) === 'ACTIVE' && stateOf(n2.t, 1) === 'ACTIVE', 'the link');
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => n1.t.request(2, 'calc', i, 5000)));
    expect(answers).toEqual(Array.from({ length: 20 }, (_, i) => i * 10));
  });

  it('carries a failing handler back as a remote error, and times out on no answer', async () => {
    const n1 = await fleet.start(1);
    const n2 = await fleet.start(2);
    n2.t.onRequest(async (_from, kind) => {
      if (kind === 'fail') throw Object.assign(new Error('node 2 is not the leader; the leader is node 3'), { code: 'not_leader' });
      if (kind === 'plain') throw new Error('plain failure');
      return new Promise(() => undefined);
    });
    n1.t.setPeers([n1.addr, n2.addr]);
    n2.t.setPeers([n1.addr, n2.addr]);
    await waitFor(() => stateOf(n1.t, 2) === 'ACTIVE', 'the link');

    const e1 = await rejection(n1.t.request(2, 'fail', null, 2000));
    expect(e1.code).toBe('remote');
    expect(e1.message).toBe('node 2 is not the leader; the leader is node 3');
    expect(e1.remoteCode).toBe('not_leader');
    const e2 = await rejection(n1.t.request(2, 'plain', null, 2000));
    expect(e2.code).toBe('remote');
    expect(e2.remoteCode).toBe('error');
    const e3 = await rejection(n1.t.request(2, 'hang', null, 100));
    expect(e3.code).toBe('timeout');
    // The connection survives all of that.
    expect(stateOf(n1.t, 2)).toBe('ACTIVE');
    const e4 = await rejection(n1.t.request(7, 'x', null, 100));
    expect(e4.code).toBe('unreachable');
    expect(() => n1.t.send(2, 'hello', null)).toThrow(BcpError);
  });

  it('rejects pending requests when the transport closes', async () => {
    const n1 = await fleet.start(1);
    const n2 = await fleet.start(2);
    n2.t.onRequest(() => new Promise(() => undefined));
    n1.t.setPeers([n1.addr, n2.addr]);
    n2.t.setPeers([n1.addr, n2.addr]);
    await waitFor(() => stateOf(n1.t, 2) === 'ACTIVE', 'the link');
    const pending = rejection(n1.t.request(2, 'hang', null, 10_000));
    await n1.t.close();
    expect((await pending).code).toBe('closed');
    expect(n1.t.send(2, 'x', null)).toBe(false);
    await waitFor(() => stateOf(n2.t, 1) === 'IDLE', 'node 2 to see the link lost');
  });

  it('reports a taken port as addr_in_use', async () => {
    const n1 = await fleet.start(1);
    const err = await rejection(fleet.start(2, { listenPort: n1.port }));
    expect(err.code).toBe('addr_in_use');
    expect(err.message).toContain(`127.0.0.1:${n1.port}`);
  });
});

describe('Transport authentication', () => {
  it('refuses a peer with a wrong secret and keeps serving the others', async () => {
    const n2 = await fleet.start(2);
    const n3 = await fleet.start(3);
    const intruder = await fleet.start(1, { secrets: () => ['guessed'] });
    const got: number[] = [];
    n3.t.onMessage((from) => got.push(from));
    n2.t.setPeers([n2.addr, n3.addr]);
    n3.t.setPeers([n2.addr, n3.addr]);
    intruder.t.setPeers([intruder.addr, n3.addr]);
    await waitFor(() => n3.t.stats().authFailures >= 2, 'two refusals at node 3');
    const info = intruder.t.peerInfo()[0];
    expect(info?.state).not.toBe('ACTIVE');
    expect(info?.lastError).toBe(`the node at 127.0.0.1:${n3.port} rejected our cluster secret: check the magic string`);
    expect(n3.logs.some((l) => l.includes('did not prove the cluster secret'))).toBe(true);
    expect(intruder.t.stats().authFailures).toBeGreaterThan(0);
    expect(intruder.t.stats().reconnects).toBeGreaterThan(0);

    await waitFor(() => stateOf(n2.t, 3) === 'ACTIVE', 'the good link');
    expect(n2.t.send(3, 'note', 1)).toBe(true);
    await waitFor(() => got.length === 1, 'a message over the good link');
    expect(got).toEqual([2]);
    expect(stateOf(n3.t, 2)).toBe('ACTIVE');
  });

  it('refuses a peer from another cluster, and a node at an unexpected address', async () => {
    const n2 = await fleet.start(2);
    n2.t.setPeers([n2.addr]);
    const foreign = await fleet.start(1, { clusterId: 'other-cluster' });
    foreign.t.setPeers([foreign.addr, n2.addr]);
    await waitFor(() => (foreign.t.peerInfo()[0]?.lastError ?? '').includes('belongs to cluster'), 'the refusal');
    expect(foreign.t.peerInfo()[0]?.lastError).toBe(
      `the node at 127.0.0.1:${n2.port} belongs to cluster '${CLUSTER}', not 'other-cluster': check the magic string`,
    );
    await waitFor(() => n2.logs.some((l) => l.includes("belongs to cluster 'other-cluster'")), 'the log line at node 2');

    const confused = await fleet.start(1);
    confused.t.setPeers([confused.addr, { id: 3, host: '127.0.0.1', port: n2.port }]);
    await waitFor(() => (confused.t.peerInfo()[0]?.lastError ?? '').includes('not node 3'), 'the id mismatch');
    expect(stateOf(confused.t, 3)).not.toBe('ACTIVE');
  });

  it('accepts old and new secrets during a rotation', async () => {
    const both = await fleet.start(1, { secrets: () => ['new', 'old'] });
    const oldOnly = await fleet.start(2, { secrets: () => ['old'] });
    const newOnly = await fleet.start(3, { secrets: () => ['new'] });
    const all = [both.addr, oldOnly.addr, newOnly.addr];
    for (const n of [both, oldOnly, newOnly]) n.t.setPeers(all);
    await waitFor(
      () => stateOf(both.t, 2) === 'ACTIVE' && stateOf(both.t, 3) === 'ACTIVE' && stateOf(oldOnly.t, 1) === 'ACTIVE' && stateOf(newOnly.t, 1) === 'ACTIVE',
      'the rotating node to link with both',
    );
    // Nodes holding disjoint secrets never link.
    await waitFor(() => oldOnly.t.stats().authFailures > 0, 'old and new to refuse each other');
    expect(stateOf(oldOnly.t, 3)).not.toBe('ACTIVE');
    both.t.onRequest(async () => 'ok');
    for (const secret of ['new', 'old']) {
      const c = await connectClient({ host: '127.0.0.1', port: both.port, clusterId: CLUSTER, secret, timeoutMs: 2000 });
      await expect(c.request('status', null, 2000)).resolves.toBe('ok');
      c.close();
    }
  });
});

describe('connectClient', () => {
  it('makes requests to any node, which answers as from its client id', async () => {
    const n2 = await fleet.start(2);
    n2.t.setPeers([n2.addr]);
    n2.t.onRequest(async (from, kind, body) => ({ from, kind, body }));
    const c = await connectClient({ host: '127.0.0.1', port: n2.port, clusterId: CLUSTER, secret: 'secret-1', timeoutMs: 2000 });
    await expect(c.request('status', { verbose: true }, 2000)).resolves.toEqual({ from: 0, kind: 'status', body: { verbose: true } });
    const joining = await connectClient({ host: '127.0.0.1', port: n2.port, clusterId: CLUSTER, secret: 'secret-1', selfId: 5, timeoutMs: 2000 });
    await expect(joining.request('join', null, 2000)).resolves.toEqual({ from: 5, kind: 'join', body: null });
    // A client never becomes a peer link.
    expect(n2.t.peerInfo()).toEqual([]);
    c.close();
    joining.close();
    const err = await rejection(c.request('status', null, 1000));
    expect(err.code).toBe('closed');
  });

  it('says exactly what failed', async () => {
    const n2 = await fleet.start(2);
    const base = { host: '127.0.0.1', port: n2.port, clusterId: CLUSTER, secret: 'secret-1', timeoutMs: 2000 };

    const wrongSecret = await rejection(connectClient({ ...base, secret: 'wrong' }));
    expect(wrongSecret.code).toBe('auth');
    expect(wrongSecret.message).toBe(`the node at 127.0.0.1:${n2.port} rejected our cluster secret: check the magic string`);

    const wrongCluster = await rejection(connectClient({ ...base, clusterId: 'elsewhere' }));
    expect(wrongCluster.code).toBe('auth');
    expect(wrongCluster.message).toBe(`the node at 127.0.0.1:${n2.port} belongs to cluster '${CLUSTER}', not 'elsewhere': check the magic string`);

    const port = await closedPort();
    const refused = await rejection(connectClient({ ...base, port }));
    expect(refused.code).toBe('unreachable');
    expect(refused.message).toBe(`cannot connect to 127.0.0.1:${port}: connection refused`);

    expect(n2.t.stats().authFailures).toBe(2);
  });

  it('times out against a server that never answers the handshake', async () => {
    const sockets: net.Socket[] = [];
    const silent = net.createServer((s) => void sockets.push(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
    const port = (silent.address() as net.AddressInfo).port;
    try {
      const err = await rejection(connectClient({ host: '127.0.0.1', port, clusterId: CLUSTER, secret: 's', timeoutMs: 200 }));
      expect(err.code).toBe('timeout');
      expect(err.message).toBe(`the node at 127.0.0.1:${port} did not complete the handshake within 200 ms`);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => silent.close(() => r()));
    }
  });
});

describe('Transport robustness', () => {
  it('closes a connection that sends an oversized frame before the handshake', async () => {
    const n2 = await fleet.start(2);
    const raw = new RawClient(n2.port);
    await raw.connected();
    const head = Buffer.alloc(4);
    head.writeUInt32BE(2 << 20, 0);
    raw.socket.write(head);
    await raw.waitClosed();
    await waitFor(() => n2.logs.some((l) => l.includes('oversized')), 'the logged reason');
  });

  it('closes an authenticated connection that sends an oversized frame, and keeps serving', async () => {
    const n2 = await fleet.start(2);
    n2.t.onRequest(async () => 'fine');
    const raw = new RawClient(n2.port);
    await raw.authenticate('secret-1');
    raw.send({ k: 'status', r: 1, b: null });
    const reply = await raw.next();
    expect(reply).toMatchObject({ re: true, r: 1, k: 'status', b: 'fine' });
    const head = Buffer.alloc(4);
    head.writeUInt32BE((1 << 20) + 1, 0);
    raw.socket.write(head);
    await raw.waitClosed();
    await waitFor(() => n2.logs.some((l) => l.includes('oversized')), 'the logged reason');
    const c = await connectClient({ host: '127.0.0.1', port: n2.port, clusterId: CLUSTER, secret: 'secret-1', timeoutMs: 2000 });
    await expect(c.request('status', null, 2000)).resolves.toBe('fine');
    c.close();
  });

  it('closes a connection that sends anything but the handshake first, or garbage', async () => {
    const n2 = await fleet.start(2);
    const early = new RawClient(n2.port);
    await early.connected();
    early.send({ k: 'raft', b: { type: 'vote' } });
    await early.waitClosed();
    await waitFor(() => n2.logs.some((l) => l.includes("sent 'raft' instead of hello")), 'the logged reason');

    const garbage = new RawClient(n2.port);
    await garbage.connected();
    garbage.socket.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    await garbage.waitClosed();

    const silent = await fleet.start(3, { connectTimeoutMs: 150 });
    const idle = new RawClient(silent.port);
    await idle.waitClosed();
    await waitFor(() => silent.logs.some((l) => l.includes('did not complete the handshake within 150 ms')), 'the timeout log');
  });

  it('reconnects a lost connection: IDLE, then ACTIVE again with a higher connCount', async () => {
    const n1 = await fleet.start(1, { maxBackoffMs: 100 });
    const n2 = await fleet.start(2);
    const relay = new Relay(n2.port);
    relays.push(relay);
    const relayPort = await relay.start();
    const via = { id: 2, host: '127.0.0.1', port: relayPort };
    n1.t.setPeers([n1.addr, via]);
    n2.t.setPeers([n1.addr, n2.addr]);
    await waitFor(() => stateOf(n1.t, 2) === 'ACTIVE' && stateOf(n2.t, 1) === 'ACTIVE', 'the first link');
    expect(n1.t.peerInfo()[0]?.connCount).toBe(1);

    relay.refusing = true;
    relay.cut();
    await waitFor(() => stateOf(n1.t, 2) === 'IDLE', 'the dialer to see the link lost');
    await waitFor(() => stateOf(n2.t, 1) === 'IDLE', 'the acceptor to see the link lost');
    expect(n1.t.peerInfo()[0]?.sinceConnStartMs).toBeNull();
    relay.refusing = false;
    await waitFor(() => stateOf(n1.t, 2) === 'ACTIVE' && stateOf(n2.t, 1) === 'ACTIVE', 'the link to come back');
    expect(n1.t.peerInfo()[0]?.connCount).toBe(2);
    expect(n2.t.peerInfo()[0]?.connCount).toBe(2);
    expect(n1.t.stats().reconnects).toBeGreaterThan(0);
    n2.t.onRequest(async () => 'back');
    await expect(n1.t.request(2, 'status', null, 2000)).resolves.toBe('back');
  });

  it('serves requests only for an authenticated node outside its peer set, until the set includes it', async () => {
    const n1 = await fleet.start(1);
    const n2 = await fleet.start(2);
    const got: number[] = [];
    n2.t.onMessage((from) => got.push(from));
    n2.t.onRequest(async (from) => `hi ${from}`);
    n2.t.setPeers([n2.addr]);
    n1.t.setPeers([n1.addr, n2.addr]);
    await waitFor(() => stateOf(n1.t, 2) === 'ACTIVE', 'node 1 to link');
    await expect(n1.t.request(2, 'status', null, 2000)).resolves.toBe('hi 1');
    expect(n1.t.send(2, 'note', null)).toBe(true);
    // Messages from a node outside the set are dropped; a later request proves the message was processed first.
    await n1.t.request(2, 'status', null, 2000);
    expect(got).toEqual([]);
    n2.t.setPeers([n1.addr, n2.addr]);
    expect(stateOf(n2.t, 1)).toBe('ACTIVE');
    expect(n1.t.send(2, 'note', null)).toBe(true);
    await waitFor(() => got.length === 1, 'the message after adoption');
  });

  it('disconnects removed peers and stops redialing them', async () => {
    const n1 = await fleet.start(1);
    const n2 = await fleet.start(2);
    n1.t.setPeers([n1.addr, n2.addr]);
    n2.t.setPeers([n1.addr, n2.addr]);
    await waitFor(() => stateOf(n2.t, 1) === 'ACTIVE', 'the link');
    n1.t.setPeers([n1.addr]);
    expect(n1.t.peerInfo()).toEqual([]);
    await waitFor(() => stateOf(n2.t, 1) === 'IDLE', 'node 2 to see the link closed');
    const before = n2.t.peerInfo()[0]?.connCount;
    await new Promise((r) => setTimeout(r, 300));
    expect(stateOf(n2.t, 1)).toBe('IDLE');
    expect(n2.t.peerInfo()[0]?.connCount).toBe(before);
  });
});
