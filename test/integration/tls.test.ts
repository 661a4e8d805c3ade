// TLS on the control channel of a real cluster: init --use-ssl, nodes added with certificates
// signed by the cluster CA, failover over TLS, plain-TCP peers refused, private file modes.
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import net from 'node:net';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectClient } from '../../src/controller/bcp/transport.js';
import { PROTOCOL_VERSION, encodeFrame } from '../../src/controller/bcp/codec.js';
import { decodeMagic, encodeMagic } from '../../src/controller/security/magic.js';
import { caFingerprint } from '../../src/controller/security/tlsfiles.js';
import { TestCluster, bihaOk, bihactl, waitFor } from '../helpers/cluster.js';
import { useCluster } from '../helpers/suite.js';

const TLS_FILES = ['ca.crt', 'ca.key', 'node.crt', 'node.key'];

function tlsDir(c: TestCluster, i: number): string {
  return path.join(c.pgdata(i), 'pg_biha', 'tls');
}

function mode(p: string): string {
  return (fs.statSync(p).mode & 0o777).toString(8);
}

/** Sends a hello frame over plain TCP; resolves with what happened to the socket. */
async function plainHello(port: number): Promise<{ closed: boolean; bytes: number }> {
  return await new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    let bytes = 0;
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ closed: false, bytes });
    }, 10_000);
    s.on('connect', () => {
      s.write(encodeFrame({ v: PROTOCOL_VERSION, c: 'x', f: 9, r: 0, k: 'hello', re: false, b: { clusterId: 'x', id: 9, nonce: Buffer.alloc(32), client: false } }));
    });
    s.on('data', (d: Buffer) => (bytes += d.length));
    s.on('error', () => undefined);
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ closed: true, bytes });
    });
  });
}

describe('a TLS cluster on real PostgreSQL', () => {
  const c = new TestCluster({ nodes: 3, basePort: 22500 });
  let owner = 0;

  useCluster(c, () => {
    owner = fs.statSync(c.pgdata(1)).uid;
  }, ['--use-ssl']);

  it('records TLS and the CA fingerprint in the magic string', () => {
    const m = decodeMagic(c.magic);
    expect(m.tls).toBe(true);
    expect(m.tlsCa).toBe(caFingerprint(fs.readFileSync(path.join(tlsDir(c, 1), 'ca.crt'), 'utf8')));
    expect(m.tlsOwnCerts).toBe(false);
    expect(c.magic.length).toBeLessThan(400);
  });

  it('gives every node its own key and a certificate signed by the cluster CA, in a 0700 directory of 0600 files owned by the data directory owner', () => {
    const ca = new X509Certificate(fs.readFileSync(path.join(tlsDir(c, 1), 'ca.crt')));
    const keys = new Set<string>();
    for (const i of c.ids()) {
      const dir = tlsDir(c, i);
      expect(mode(dir)).toBe('700');
      expect(fs.statSync(dir).uid).toBe(owner);
      for (const f of TLS_FILES) {
        expect(mode(path.join(dir, f)), `${dir}/${f}`).toBe('600');
        expect(fs.statSync(path.join(dir, f)).uid).toBe(owner);
      }
      expect(fs.readFileSync(path.join(dir, 'ca.crt'), 'utf8')).toBe(ca.toString());
      const cert = new X509Certificate(fs.readFileSync(path.join(dir, 'node.crt')));
      expect(cert.subject).toContain(`biha node ${i}`);
      expect(cert.checkIssued(ca) && cert.verify(ca.publicKey)).toBe(true);
      keys.add(fs.readFileSync(path.join(dir, 'node.key'), 'utf8'));
    }
    expect(keys.size).toBe(3);
  });

  it('links every pair of nodes over TLS', async () => {
    for (const i of c.ids()) {
      await waitFor(`node ${i} to have ACTIVE links to both others`, async () => {
        const s = await c.status(i);
        return s.nodes.length === 2 && s.nodes.every((n) => n.state === 'ACTIVE');
      });
    }
  });

  it('closes a plain-TCP connection to the control port and refuses a plain-TCP client', async () => {
    const l = await c.waitLeader();
    const r = await plainHello(c.port(l) + 1);
    expect(r.closed).toBe(true);
    const m = decodeMagic(c.magic);
    await expect(
      connectClient({ host: '127.0.0.1', port: c.port(l) + 1, clusterId: m.clusterId, secret: m.secret, timeoutMs: 5000 }),
    ).rejects.toThrow(/closed|reset|handshake/);
  });

  it('a node set up without TLS cannot join, nor can one that pins another CA', async () => {
    const m = decodeMagic(c.magic);
    const plain = encodeMagic({ clusterId: m.clusterId, secret: m.secret, peers: m.peers, tls: false });
    const pd = path.join(c.dir, 'n4');
    const r = await bihactl(['add', '--biha-node-id=4', '--host=127.0.0.1', `--port=${c.port(4)}`, `--magic-string=${plain}`, `--pgdata=${pd}`]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/TLS/);
    expect(r.stderr.trim().split('\n').filter((l) => l.startsWith('bihactl: ') && !/registering/.test(l))).toHaveLength(1);
    expect(fs.existsSync(path.join(pd, 'pg_biha', 'biha.conf'))).toBe(false);

    const wrongPin = encodeMagic({ ...m, tlsCa: 'A'.repeat(43) });
    const r2 = await bihactl(['add', '--biha-node-id=4', '--host=127.0.0.1', `--port=${c.port(4)}`, `--magic-string=${wrongPin}`, `--pgdata=${pd}`]);
    expect(r2.code).not.toBe(0);
    expect(r2.stderr).toMatch(/not issued by the cluster CA/);
    expect(fs.existsSync(path.join(pd, 'pg_biha', 'biha.conf'))).toBe(false);
    // Neither attempt registered node 4.
    const s = await c.status(await c.waitLeader());
    expect(s.status.map((x) => x.id)).toEqual([1, 2, 3]);
  });

  it('fails over over TLS after kill -9 of the leader, and the old leader rejoins', async () => {
    const old = await c.waitLeader();
    c.kill9(old, 'both');
    const next = await c.waitLeader({ not: old, timeoutMs: 60_000 });
    expect(next).not.toBe(old);
    await waitFor('a write on the new leader', async () => {
      await c.sql(next, 'create table if not exists tls_t (v int)');
      await c.sql(next, 'insert into tls_t values (1)');
      return true;
    }, 60_000, 500);
    await bihaOk(['start', `--pgdata=${c.pgdata(old)}`]);
    await c.waitState(old, 'FOLLOWER', 90_000);
  });

  it('refuses to start a node whose TLS key is readable by others, naming the chmod to run', async () => {
    const i = 3 === (await c.waitLeader()) ? 2 : 3;
    await bihaOk(['stop', `--pgdata=${c.pgdata(i)}`]);
    const key = path.join(tlsDir(c, i), 'node.key');
    fs.chmodSync(key, 0o644);
    const r = await bihactl(['start', `--pgdata=${c.pgdata(i)}`]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`chmod 600 ${key}`);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    fs.chmodSync(key, 0o600);
    await bihaOk(['start', `--pgdata=${c.pgdata(i)}`]);
    await c.waitState(i, 'FOLLOWER', 90_000);
  });

  it('writes neither the cluster secret, the magic string nor a private key to the logs', async () => {
    // Stopped controllers have written out everything they logged.
    for (const i of c.ids()) await bihaOk(['stop', `--pgdata=${c.pgdata(i)}`]);
    const secret = decodeMagic(c.magic).secret;
    let files = 0;
    for (const i of c.ids()) {
      const dir = path.join(c.pgdata(i), 'pg_biha', 'log');
      for (const f of fs.readdirSync(dir)) {
        const text = fs.readFileSync(path.join(dir, f), 'utf8');
        files++;
        expect(text.includes(secret), `${dir}/${f} holds the secret`).toBe(false);
        expect(text.includes(c.magic), `${dir}/${f} holds the magic string`).toBe(false);
        expect(text.includes('PRIVATE KEY'), `${dir}/${f} holds a key`).toBe(false);
      }
    }
    expect(files).toBeGreaterThanOrEqual(3);
  });
});

/** A CA of the organisation (its key stays here) and node certificates signed by it, made by openssl. */
function externalPki(dir: string, name: string, nodes: number[]): void {
  fs.mkdirSync(dir, { recursive: true });
  const run = (args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  run(['req', '-x509', ...ec, '-keyout', `${name}-ca.key`, '-out', `${name}-ca.crt`, '-days', '30', '-subj', `/CN=${name} CA`, '-addext', 'basicConstraints=critical,CA:TRUE']);
  for (const i of nodes) {
    run(['req', ...ec, '-keyout', `${name}-${i}.key`, '-out', `${name}-${i}.csr`, '-subj', `/CN=db${i}`]);
    run(['x509', '-req', '-in', `${name}-${i}.csr`, '-CA', `${name}-ca.crt`, '-CAkey', `${name}-ca.key`, '-set_serial', String(100 + i), '-days', '30', '-out', `${name}-${i}.crt`]);
  }
}

describe('a TLS cluster with certificates from files (an external CA)', () => {
  const c = new TestCluster({ nodes: 2, basePort: 22700 });
  const pki = path.join(c.dir, 'pki');
  const files = (name: string, i: number): string[] => [
    `--ssl-ca-file=${path.join(pki, `${name}-ca.crt`)}`,
    `--ssl-cert-file=${path.join(pki, `${name}-${i}.crt`)}`,
    `--ssl-key-file=${path.join(pki, `${name}-${i}.key`)}`,
  ];
  beforeAll(() => {
    externalPki(pki, 'corp', [1, 2]);
    externalPki(pki, 'rogue', [1]);
  });
  afterAll(async () => {
    await c.destroy();
  }, 120_000);

  it('init refuses files that do not fit together, in one line, and leaves nothing behind', async () => {
    const mixed = [`--ssl-ca-file=${path.join(pki, 'corp-ca.crt')}`, `--ssl-cert-file=${path.join(pki, 'rogue-1.crt')}`, `--ssl-key-file=${path.join(pki, 'rogue-1.key')}`];
    const r = await c.init(mixed);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^bihactl: --ssl-cert-file \S+rogue-1.crt is not signed by the CA in --ssl-ca-file \S+corp-ca.crt \(sign the node certificate with the cluster CA\)\n$/);
    expect(fs.existsSync(c.pgdata(1))).toBe(false);
    const r2 = await c.init([`--ssl-ca-file=${path.join(pki, 'corp-ca.crt')}`, `--ssl-cert-file=${path.join(pki, 'corp-1.crt')}`, `--ssl-key-file=${path.join(pki, 'corp-2.key')}`]);
    expect(r2.code).toBe(2);
    expect(r2.stderr).toMatch(/corp-2.key is not the private key of --ssl-cert-file/);
    expect(fs.existsSync(c.pgdata(1))).toBe(false);
  });

  it('init takes the files; the CA key is nowhere in the cluster', async () => {
    const r = await c.init(files('corp', 1));
    expect(r.code, r.stderr).toBe(0);
    const m = decodeMagic(c.magic);
    expect(m.tls && m.tlsOwnCerts).toBe(true);
    const dir = tlsDir(c, 1);
    expect(fs.readdirSync(dir).sort()).toEqual(['ca.crt', 'node.crt', 'node.key']);
    expect(mode(dir)).toBe('700');
    for (const f of fs.readdirSync(dir)) expect(mode(path.join(dir, f))).toBe('600');
    await c.start(1);
  });

  it('add asks for the node certificate before registering anything, then joins with it', async () => {
    const r = await c.add(2);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/bring their own TLS certificates/);
    expect(fs.existsSync(c.pgdata(2))).toBe(false);
    const bad = await c.add(2, files('rogue', 1));
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/is not the CA of this cluster/);
    const ok = await c.add(2, files('corp', 2));
    expect(ok.code, ok.stderr).toBe(0);
    expect(fs.readdirSync(tlsDir(c, 2)).sort()).toEqual(['ca.crt', 'node.crt', 'node.key']);
    expect(fs.readFileSync(path.join(tlsDir(c, 2), 'node.crt'), 'utf8')).toBe(fs.readFileSync(path.join(pki, 'corp-2.crt'), 'utf8'));
    await c.start(2);
    await c.waitLeader();
    await waitFor('both nodes linked over TLS', async () => {
      const s = await c.status(2);
      return s.nodes.length === 1 && s.nodes[0]!.state === 'ACTIVE' && s.status.every((x) => x.state === 'LEADER_RW' || x.state === 'FOLLOWER');
    });
  });
});
