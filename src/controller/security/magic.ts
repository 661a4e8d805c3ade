// The magic string: everything a new node needs to reach the cluster and prove it belongs to it.
//
//   biha1.<base64url of JSON {c: cluster id, s: cluster secret, l: [{id, host, port, bihaPort}], t: tls?,
//          f: CA fingerprint (TLS only), o: 1 when nodes bring their own certificates (TLS only)}>
//
// It carries the cluster secret, so it is printed only on stdout by `bihactl init` and by
// biha.get_magic_string(), and files holding it are created 0600. It never carries the replication
// password: that comes from the password file or BIHA_REPLICATION_PASSWORD.
import { z } from 'zod';
import { BihaError } from '../errors.js';

const PREFIX = 'biha1.';

const MagicSchema = z.object({
  c: z.string().regex(/^[0-9a-f]{16,64}$/),
  s: z.string().min(32).max(256),
  l: z
    .array(
      z.object({
        id: z.number().int().positive(),
        host: z.string().min(1).max(255),
        port: z.number().int().min(1).max(65535),
        bihaPort: z.number().int().min(1).max(65535),
      }),
    )
    .min(1),
  t: z.boolean().optional(),
  f: z.string().regex(/^[A-Za-z0-9_-]{43}$/).optional(),
  o: z.literal(1).optional(),
});

export interface MagicPeer {
  readonly id: number;
  readonly host: string;
  readonly port: number;
  readonly bihaPort: number;
}

export interface Magic {
  readonly clusterId: string;
  readonly secret: string;
  /** Members known when the string was made, the leader first. */
  readonly peers: readonly MagicPeer[];
  readonly tls: boolean;
  /** TLS clusters: SHA-256 of the cluster CA certificate (base64url), pinned by a node being added. */
  readonly tlsCa?: string;
  /** TLS clusters whose CA key no node holds: a node being added must bring its own certificate. */
  readonly tlsOwnCerts?: boolean;
}

export function encodeMagic(m: Magic): string {
  const body = {
    c: m.clusterId,
    s: m.secret,
    l: m.peers.map((p) => ({ ...p })),
    t: m.tls,
    ...(m.tls && m.tlsCa !== undefined ? { f: m.tlsCa } : {}),
    ...(m.tls && m.tlsOwnCerts ? { o: 1 as const } : {}),
  };
  return PREFIX + Buffer.from(JSON.stringify(body), 'utf8').toString('base64url');
}

export function decodeMagic(text: string): Magic {
  const s = text.trim();
  const bad = (why: string): BihaError =>
    new BihaError('bad_magic', `the magic string is not valid: ${why}`, {
      hint: 'copy it again from the output of bihactl init or from select biha.get_magic_string() on a cluster node',
    });
  if (!s.startsWith(PREFIX)) throw bad(`it must start with "${PREFIX}"`);
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(s.slice(PREFIX.length), 'base64url').toString('utf8'));
  } catch {
    throw bad('it is truncated or damaged');
  }
  const r = MagicSchema.safeParse(json);
  if (!r.success) throw bad('it is truncated or damaged');
  const tls = r.data.t ?? false;
  if (tls && r.data.f === undefined) throw bad('it names a TLS cluster without the fingerprint of its CA (made by an older biha?)');
  return {
    clusterId: r.data.c,
    secret: r.data.s,
    peers: r.data.l,
    tls,
    ...(tls ? { tlsCa: r.data.f!, tlsOwnCerts: r.data.o === 1 } : {}),
  };
}
