// Secret rotation values, the TLS fields of the magic string, TLS material checks, private files,
// and a node being added pinning the cluster CA by its fingerprint.
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { connectClient } from '../../src/controller/bcp/transport.js';
import { oneLine } from '../../src/controller/errors.js';
import { decodeMagic, encodeMagic } from '../../src/controller/security/magic.js';
import {
  SECRET_META_KEY,
  doneValue,
  newSecret,
  openSealed,
  reconcileSecrets,
  rotateSecret,
  rotationView,
  sealSecret,
  secretId,
} from '../../src/controller/security/rotation.js';
import { assertPrivate, writeSecretFile } from '../../src/controller/security/secfiles.js';
import { caFingerprint, makeClusterPki, makeNodeCert, readMaterialFiles, verifyMaterial } from '../../src/controller/security/tlsfiles.js';
import type { TlsMaterial } from '../../src/controller/security/tlsfiles.js';
import { CLUSTER, Fleet } from '../bcp/helpers.js';

const CID = '0123456789abcdef';

describe('secret rotation values', () => {
  const a = newSecret();
  const b = newSecret();

  it('seals the new secret so that only a holder of the current one can read it', () => {
    const v = sealSecret(CID, a, b);
    expect(v).not.toContain(b);
    expect(openSealed(CID, v, a)).toBe(b);
    expect(() => openSealed(CID, v, b)).toThrow();
    expect(() => openSealed('fedcba9876543210', v, a)).toThrow();
    const tampered = JSON.parse(v) as { ct: string };
    tampered.ct = Buffer.from('x'.repeat(64)).toString('base64url');
    expect(() => openSealed(CID, JSON.stringify(tampered), a)).toThrow();
  });

  it('a node holding the old secret takes the new one first, keeps the old until it is retired, then drops it', () => {
    const meta1 = { [SECRET_META_KEY]: sealSecret(CID, a, b) };
    expect(rotationView(meta1)).toEqual({ latest: secretId(CID, b), pending: true });
    expect(reconcileSecrets(CID, meta1, [a])).toEqual([b, a]);
    expect(reconcileSecrets(CID, meta1, [b, a])).toBeNull();
    const meta2 = { [SECRET_META_KEY]: doneValue(secretId(CID, b)) };
    expect(meta2[SECRET_META_KEY]).not.toContain((JSON.parse(meta1[SECRET_META_KEY]) as { ct: string }).ct);
    expect(rotationView(meta2).pending).toBe(false);
    expect(reconcileSecrets(CID, meta2, [b, a])).toEqual([b]);
    expect(reconcileSecrets(CID, meta2, [b])).toBeNull();
    // A node added with the new magic string already holds it.
    expect(reconcileSecrets(CID, meta1, [b])).toBeNull();
    expect(reconcileSecrets(CID, {}, [a])).toBeNull();
  });

  it('a node that missed a whole rotation gets a clear error', () => {
    const c = newSecret();
    const meta = { [SECRET_META_KEY]: sealSecret(CID, b, c) };
    expect(() => reconcileSecrets(CID, meta, [a])).toThrow(/does not hold/);
    expect(() => reconcileSecrets(CID, { [SECRET_META_KEY]: doneValue(secretId(CID, c)) }, [a])).toThrow(/does not hold/);
  });

  it('the leader completes a pending rotation instead of starting a new one, and reports members that do not confirm', async () => {
    let meta: Record<string, string> = {};
    let held = [a];
    const proposed: string[] = [];
    const peers = new Map<number, string[]>([[2, [a]]]);
    const host = {
      clusterId: CID,
      secrets: () => held,
      meta: () => meta,
      members: () => [2],
      proposeMeta: async (key: string, value: string) => {
        proposed.push(key);
        meta = { ...meta, [key]: value };
        held = reconcileSecrets(CID, meta, held) ?? held;
      },
      askSecrets: async (id: number) => (peers.get(id) ?? []).map((s) => secretId(CID, s)),
      log: () => undefined,
    };
    await expect(rotateSecret(host, 300)).rejects.toThrow(/node\(s\) 2 did not confirm/);
    expect(proposed).toEqual([SECRET_META_KEY]);
    expect(held).toHaveLength(2);
    peers.set(2, [held[0]!, a]);
    const r = await rotateSecret(host, 300);
    expect(r.resumed).toBe(true);
    expect(proposed).toEqual([SECRET_META_KEY, SECRET_META_KEY]);
    expect(rotationView(meta)).toEqual({ latest: secretId(CID, r.secret), pending: false });
    expect(held).toEqual([r.secret]);
    expect(r.secret).not.toBe(a);
  });
});

describe('TLS material', () => {
  let dir = '';
  let pki: TlsMaterial;
  let other: TlsMaterial;
  beforeAll(async () => {
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'biha-sec-'));
    pki = await makeClusterPki(CID, 1, '127.0.0.1');
    other = await makeClusterPki('fedcba9876543210', 1, 'db1.example');
  }, 60_000);
  afterAll(async () => {
    await fsp.rm(dir, { recursive: true, force: true });
  });

  it('a generated node certificate is signed by the CA and matches its key', async () => {
    const n2 = await makeNodeCert(pki.ca, pki.caKey!, 2, 'db2.example');
    expect(() => verifyMaterial(n2, { ca: 'ca', cert: 'cert', key: 'key' })).not.toThrow();
    expect(n2.key).not.toBe(pki.key);
  });

  it('checks files: all three or none, readable, PEM, signed by the CA, key of the certificate', async () => {
    const w = (n: string, t: string): string => {
      fs.writeFileSync(path.join(dir, n), t);
      return path.join(dir, n);
    };
    const ca = w('ca.crt', pki.ca);
    const cert = w('node.crt', pki.cert);
    const key = w('node.key', pki.key);
    await expect(readMaterialFiles({ ca, cert, key })).resolves.toMatchObject({ ca: pki.ca });
    const msg = async (f: { ca?: string; cert?: string; key?: string }): Promise<string> =>
      oneLine(await readMaterialFiles(f).then(() => null, (e: unknown) => e));
    expect(await msg({ ca, cert })).toMatch(/all three of --ssl-ca-file, --ssl-cert-file and --ssl-key-file/);
    expect(await msg({ ca: path.join(dir, 'nope'), cert, key })).toMatch(/cannot read --ssl-ca-file .*nope: ENOENT/);
    expect(await msg({ ca: w('junk.crt', 'hello'), cert, key })).toMatch(/--ssl-ca-file .*junk.crt is not a PEM certificate/);
    expect(await msg({ ca: w('other-ca.crt', other.ca), cert, key })).toMatch(/--ssl-cert-file .*node.crt is not signed by the CA in --ssl-ca-file/);
    expect(await msg({ ca, cert, key: w('other.key', other.key) })).toMatch(/other.key is not the private key of --ssl-cert-file/);
    expect(await msg({ ca: cert, cert, key })).toMatch(/is not a CA certificate/);
    expect(await msg({ ca, cert, key: w('bad.key', 'x') })).toMatch(/is not a PEM private key/);
    for (const m of [await msg({ ca: path.join(dir, 'nope'), cert, key }), await msg({ ca, cert, key: w('other2.key', other.key) })]) expect(m).not.toContain('\n');
  });

  it('the CA fingerprint is 43 base64url characters and the magic string carries it', () => {
    const fp = caFingerprint(pki.ca);
    expect(fp).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const m = encodeMagic({ clusterId: CID, secret: 'f'.repeat(64), peers: [{ id: 1, host: '127.0.0.1', port: 5432, bihaPort: 5433 }], tls: true, tlsCa: fp, tlsOwnCerts: true });
    const d = decodeMagic(m);
    expect(d).toMatchObject({ tls: true, tlsCa: fp, tlsOwnCerts: true });
    const plain = decodeMagic(encodeMagic({ clusterId: CID, secret: 'f'.repeat(64), peers: d.peers, tls: false, tlsCa: fp }));
    expect(plain.tls).toBe(false);
    expect(plain.tlsCa).toBeUndefined();
    const noFp = 'biha1.' + Buffer.from(JSON.stringify({ c: CID, s: 'f'.repeat(64), l: d.peers, t: true })).toString('base64url');
    expect(() => decodeMagic(noFp)).toThrow(/without the fingerprint/);
  });

  describe('a client pinning the CA by fingerprint', () => {
    const fleet = new Fleet();
    afterEach(async () => {
      await fleet.closeAll();
    });
    const tlsOf = (m: TlsMaterial): { key: string; cert: string; ca: string } => ({ key: m.key, cert: `${m.cert.trim()}\n${m.ca.trim()}\n`, ca: m.ca });

    it('connects to a node of the pinned CA', async () => {
      const n = await fleet.start(2, { tls: tlsOf(pki) });
      n.t.onRequest(async () => 'pong');
      const c = await connectClient({ host: '127.0.0.1', port: n.port, clusterId: CLUSTER, secret: 'secret-1', selfId: 7, timeoutMs: 3000, tls: { pin: caFingerprint(pki.ca) } });
      await expect(c.request('ping2', null, 2000)).resolves.toBe('pong');
      c.close();
    });

    it('refuses a node of another CA before sending anything, even with the right secret', async () => {
      const n = await fleet.start(2, { tls: tlsOf(other) });
      await expect(
        connectClient({ host: '127.0.0.1', port: n.port, clusterId: CLUSTER, secret: 'secret-1', selfId: 7, timeoutMs: 3000, tls: { pin: caFingerprint(pki.ca) } }),
      ).rejects.toThrow(/is refused: its certificate is not issued by the cluster CA named in the magic string/);
      expect(n.t.stats().framesIn).toBe(0);
    });
  });
});

describe('private files', () => {
  let dir = '';
  beforeAll(async () => {
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'biha-sec-files-'));
  });
  afterAll(async () => {
    await fsp.rm(dir, { recursive: true, force: true });
  });

  it('writeSecretFile creates 0600 and narrows an existing wider file', async () => {
    const f = path.join(dir, 'magic');
    await writeSecretFile(f, 'one\n');
    expect(fs.statSync(f).mode & 0o777).toBe(0o600);
    fs.chmodSync(f, 0o644);
    await writeSecretFile(f, 'two\n');
    expect(fs.statSync(f).mode & 0o777).toBe(0o600);
    expect(fs.readFileSync(f, 'utf8')).toBe('two\n');
    expect(fs.existsSync(`${f}.new`)).toBe(false);
  });

  it('assertPrivate names the chmod to run for files and directories open to others', () => {
    const f = path.join(dir, 'key');
    fs.writeFileSync(f, 'k', { mode: 0o600 });
    expect(() => assertPrivate(f, 'a key')).not.toThrow();
    fs.chmodSync(f, 0o604);
    expect(oneLine(catchErr(() => assertPrivate(f, 'a key')))).toBe(`${f} holds a key and is open to its group or to others (mode 0604) (run: chmod 600 ${f})`);
    const d = path.join(dir, 'tls');
    fs.mkdirSync(d, { mode: 0o750 });
    fs.chmodSync(d, 0o750);
    expect(oneLine(catchErr(() => assertPrivate(d, 'the TLS keys')))).toContain(`run: chmod 700 ${d}`);
    expect(() => assertPrivate(path.join(dir, 'missing'), 'x')).not.toThrow();
  });
});

function catchErr(fn: () => void): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error('expected an error');
}

describe('one rotation at a time', () => {
  it('a second rotate-secret while one runs is refused', async () => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => (release = r));
    let meta: Record<string, string> = {};
    let held = [newSecret()];
    const host = {
      clusterId: CID,
      secrets: () => held,
      meta: () => meta,
      members: () => [],
      proposeMeta: async (key: string, value: string) => {
        await gate;
        meta = { ...meta, [key]: value };
        held = reconcileSecrets(CID, meta, held) ?? held;
      },
      askSecrets: async () => [],
      log: () => undefined,
    };
    const first = rotateSecret(host, 100);
    await expect(rotateSecret(host, 100)).rejects.toThrow(/already running/);
    release();
    await expect(first).resolves.toMatchObject({ resumed: false });
    expect(held).toHaveLength(1);
  });
});
