// BCP over TLS with certificates made by openssl in a temporary directory.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import tls from 'node:tls';
import { Conn } from '../../src/controller/bcp/connection.js';
import { BcpError, connectClient } from '../../src/controller/bcp/transport.js';
import { CLUSTER, Fleet, memLogger, stateOf, waitFor } from './helpers.js';

interface Pki {
  ca: string;
  key: string;
  cert: string;
}

let dir = '';
let good: Pki;
let rogue: Pki;

function openssl(args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
}

function makePki(name: string): Pki {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(['req', '-x509', ...ec, '-keyout', `${name}-ca.key`, '-out', `${name}-ca.crt`, '-days', '2', '-subj', `/CN=${name} cluster CA`]);
  openssl(['req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name} node`]);
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', `${name}-ca.crt`, '-CAkey', `${name}-ca.key`, '-CAcreateserial', '-out', `${name}.crt`, '-days', '2']);
  const read = (f: string): string => readFileSync(join(dir, f), 'utf8');
  return { ca: read(`${name}-ca.crt`), key: read(`${name}.key`), cert: read(`${name}.crt`) };
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'bcp-tls-'));
  good = makePki('good');
  rogue = makePki('rogue');
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const fleet = new Fleet();
afterEach(async () => {
  await fleet.closeAll();
});

describe('BCP over TLS', () => {
  it('links two nodes with mutual verification and serves a client holding only the CA', async () => {
    const n1 = await fleet.start(1, { tls: good });
    const n2 = await fleet.start(2, { tls: good });
    n2.t.onRequest(async (from, kind) => `${kind} from ${from}`);
    n1.t.setPeers([n1.addr, n2.addr]);
    n2.t.setPeers([n1.addr, n2.addr]);
    await waitFor(() => stateOf(n1.t, 2) === 'ACTIVE' && stateOf(n2.t, 1) === 'ACTIVE', 'the TLS link');
    await expect(n1.t.request(2, 'status', null, 2000)).resolves.toBe('status from 1');

    const c = await connectClient({ host: '127.0.0.1', port: n2.port, clusterId: CLUSTER, secret: 'secret-1', timeoutMs: 3000, tls: { ca: good.ca } });
    await expect(c.request('status', null, 2000)).resolves.toBe('status from 0');
    c.close();
  });

  it('refuses a node whose certificate comes from another CA, even with the right secret', async () => {
    const n2 = await fleet.start(2, { tls: good });
    n2.t.setPeers([n2.addr]);
    const intruder = await fleet.start(1, { tls: { ...rogue, ca: good.ca } });
    intruder.t.setPeers([intruder.addr, n2.addr]);
    await waitFor(() => n2.t.stats().authFailures > 0, 'node 2 to refuse the rogue certificate');
    expect(stateOf(intruder.t, 2)).not.toBe('ACTIVE');
    expect(n2.logs.some((l) => l.includes('not signed by the cluster CA') || l.includes('TLS handshake failed'))).toBe(true);
  });

  it('a client that does not trust the server certificate fails with a TLS message', async () => {
    const n2 = await fleet.start(2, { tls: good });
    try {
      await connectClient({ host: '127.0.0.1', port: n2.port, clusterId: CLUSTER, secret: 'secret-1', timeoutMs: 3000, tls: { ca: rogue.ca } });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(BcpError);
      expect((err as BcpError).code).toBe('auth');
      expect((err as BcpError).message).toContain(`TLS handshake with 127.0.0.1:${n2.port} failed`);
    }
  });

  it('a plain-TCP client against a TLS port fails without hurting the node', async () => {
    const n2 = await fleet.start(2, { tls: good });
    n2.t.onRequest(async () => 'ok');
    try {
      await connectClient({ host: '127.0.0.1', port: n2.port, clusterId: CLUSTER, secret: 'secret-1', timeoutMs: 1000 });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(BcpError);
      expect(['protocol', 'closed', 'timeout']).toContain((err as BcpError).code);
    }
    const c = await connectClient({ host: '127.0.0.1', port: n2.port, clusterId: CLUSTER, secret: 'secret-1', timeoutMs: 3000, tls: { ca: good.ca } });
    await expect(c.request('status', null, 2000)).resolves.toBe('ok');
    c.close();
  });

  it('refuses a node that connects without a client certificate, even with the right secret', async () => {
    const n2 = await fleet.start(2, { tls: good });
    n2.t.setPeers([n2.addr]);
    const socket = tls.connect({ host: '127.0.0.1', port: n2.port, ca: good.ca, checkServerIdentity: () => undefined });
    const failure = new Promise<BcpError>((resolve) => {
      new Conn({
        socket,
        role: 'dialer',
        label: `127.0.0.1:${n2.port}`,
        selfId: 1,
        clusterId: CLUSTER,
        secrets: () => ['secret-1'],
        client: false,
        expectId: 2,
        handshakeTimeoutMs: 3000,
        maxFrameBytes: 1 << 20,
        pingMs: 1000,
        deadMs: 5000,
        logger: memLogger([]),
        stats: { framesIn: 0, framesOut: 0, authFailures: 0 },
        tls: true,
        events: {
          open: () => undefined,
          closed: (_c, err) => resolve(err),
          message: () => undefined,
          request: () => undefined,
        },
      });
    });
    const err = await failure;
    expect(err.code).toBe('auth');
    expect(err.message).toBe(`the node at 127.0.0.1:${n2.port} refused the connection: a node must present a certificate signed by the cluster CA`);
    await waitFor(() => n2.logs.some((l) => l.includes('without a certificate signed by the cluster CA')), 'the logged reason');
  });
});
