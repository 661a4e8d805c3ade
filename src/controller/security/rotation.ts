// Rotation of the cluster secret through the configuration log, without downtime.
//
// Two committed `set_meta` entries on key 'secret' make a rotation:
//   1. the new secret, sealed (AES-256-GCM) under a key derived from the current secret, so the
//      config log and the raft messages that carry it never hold it in clear, even on a plain-TCP
//      control channel. Every node that applies it holds [new, old]: its handshakes prove both, so
//      nodes that have and have not applied it yet keep talking (no reconnect, no election).
//   2. only the id of the new secret, marked done: proposed by the leader once every member answered
//      that the new secret is its current one. Nodes that apply it drop every other secret; from
//      then on a magic string made before the rotation no longer authenticates. It also replaces
//      the sealed value, so no snapshot sent later (to a node being added) carries it: someone who
//      holds the retired secret cannot open anything the cluster keeps.
// A rotation interrupted between the two (a member was down, the leader changed) is completed by the
// next `bihactl rotate-secret`, which then does not start another one: a node never needs more than
// two secrets.
//
// Secrets are named by an id (HMAC of the secret): it tells which secret sealed a value and which one
// a node holds, and reveals nothing about the secret.
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { BihaError } from '../errors.js';

export const SECRET_META_KEY = 'secret';

interface Sealed {
  v: 1;
  /** id of the new secret */
  id: string;
  /** id of the secret it is sealed under */
  by: string;
  iv: string;
  ct: string;
  tag: string;
}

/** Phase 2: the rotation to `id` is complete; every other secret is retired. */
interface Done {
  v: 1;
  id: string;
  done: true;
}

export function secretId(clusterId: string, secret: string): string {
  return createHmac('sha256', secret).update(`biha secret id\0${clusterId}`).digest('base64url').slice(0, 22);
}

function sealKey(clusterId: string, secret: string): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, clusterId, 'biha secret rotation', 32));
}

export function newSecret(): string {
  return randomBytes(32).toString('hex');
}

/** The meta value announcing `next`, sealed under `current`. */
export function sealSecret(clusterId: string, current: string, next: string): string {
  const iv = randomBytes(12);
  const id = secretId(clusterId, next);
  const by = secretId(clusterId, current);
  const c = createCipheriv('aes-256-gcm', sealKey(clusterId, current), iv);
  c.setAAD(Buffer.from(`${clusterId}\0${id}\0${by}`));
  const ct = Buffer.concat([c.update(next, 'utf8'), c.final()]);
  const v: Sealed = { v: 1, id, by, iv: iv.toString('base64url'), ct: ct.toString('base64url'), tag: c.getAuthTag().toString('base64url') };
  return JSON.stringify(v);
}

function parseMeta(value: string | undefined): Sealed | Done | null {
  if (value === undefined) return null;
  try {
    const o = JSON.parse(value) as Partial<Sealed & { done: boolean }>;
    if (o.v !== 1 || typeof o.id !== 'string') return null;
    if (o.done === true) return { v: 1, id: o.id, done: true };
    if (typeof o.by === 'string' && typeof o.iv === 'string' && typeof o.ct === 'string' && typeof o.tag === 'string') return o as Sealed;
  } catch {
    // not ours
  }
  return null;
}

function parseSealed(value: string | undefined): Sealed | null {
  const m = parseMeta(value);
  return m && !('done' in m) ? m : null;
}

/** The meta value that completes the rotation to the secret with id `id`. */
export function doneValue(id: string): string {
  const v: Done = { v: 1, id, done: true };
  return JSON.stringify(v);
}

/** Opens a sealed value with `secret`; throws when it is not the one it was sealed under or was altered. */
export function openSealed(clusterId: string, value: string, secret: string): string {
  const s = parseSealed(value);
  if (!s) throw new BihaError('bad_meta', 'the rotated secret in the configuration log is not readable');
  const d = createDecipheriv('aes-256-gcm', sealKey(clusterId, secret), Buffer.from(s.iv, 'base64url'));
  d.setAAD(Buffer.from(`${clusterId}\0${s.id}\0${s.by}`));
  d.setAuthTag(Buffer.from(s.tag, 'base64url'));
  const out = Buffer.concat([d.update(Buffer.from(s.ct, 'base64url')), d.final()]).toString('utf8');
  if (secretId(clusterId, out) !== s.id) throw new BihaError('bad_meta', 'the rotated secret does not match its id');
  return out;
}

export interface RotationView {
  /** id of the newest secret announced in the log (null: never rotated). */
  readonly latest: string | null;
  /** true while the secrets before `latest` are still accepted. */
  readonly pending: boolean;
}

export function rotationView(meta: Readonly<Record<string, string>>): RotationView {
  const s = parseMeta(meta[SECRET_META_KEY]);
  if (!s) return { latest: null, pending: false };
  return { latest: s.id, pending: !('done' in s) };
}

/**
 * The secrets a node should hold under the committed meta, or null if `held` is already right.
 * Throws when the node cannot open the announced secret (it holds none of the secrets it was sealed
 * under: it missed a whole rotation).
 */
export function reconcileSecrets(clusterId: string, meta: Readonly<Record<string, string>>, held: readonly string[]): string[] | null {
  const s = parseMeta(meta[SECRET_META_KEY]);
  if (!s) return null;
  const id = (x: string): string => secretId(clusterId, x);
  let next = [...held];
  const have = next.find((x) => id(x) === s.id);
  if (have === undefined) {
    if ('done' in s)
      throw new BihaError('secret_lost', 'the cluster secret was rotated to one this node does not hold', {
        hint: 're-add this node with a magic string from bihactl magic-string',
      });
    const sealer = next.find((x) => id(x) === s.by);
    if (sealer === undefined)
      throw new BihaError('secret_lost', 'the cluster secret was rotated with a secret this node does not hold', {
        hint: 're-add this node with a magic string from bihactl magic-string',
      });
    const fresh = openSealed(clusterId, meta[SECRET_META_KEY]!, sealer);
    next = [fresh, ...next].slice(0, 2);
  } else if (next[0] !== have) {
    next = [have, ...next.filter((x) => x !== have)].slice(0, 2);
  }
  if ('done' in s) next = next.filter((x) => id(x) === s.id);
  const same = next.length === held.length && next.every((x, i) => x === held[i]);
  return same ? null : next;
}

export interface RotationHost {
  clusterId: string;
  /** Secrets this node holds, current first. */
  secrets(): readonly string[];
  meta(): Readonly<Record<string, string>>;
  /** Ids of the other members of the committed configuration. */
  members(): number[];
  /** Commits a set_meta through raft (this node is the leader). */
  proposeMeta(key: string, value: string): Promise<void>;
  /** Asks member `id` for the ids of the secrets it holds, current first. */
  askSecrets(id: number): Promise<string[]>;
  log(msg: string): void;
}

export interface RotationResult {
  /** The new current secret. */
  secret: string;
  /** A rotation started before was completed instead of starting a new one. */
  resumed: boolean;
}

async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

/**
 * Leader side of `bihactl rotate-secret`. Announces a new secret (unless one is pending), waits
 * until every member holds it as its current secret, then retires the others.
 */
let running = false;

export async function rotateSecret(h: RotationHost, waitMs = 20_000): Promise<RotationResult> {
  if (running) throw new BihaError('busy', 'a secret rotation is already running on this node; wait for it to finish');
  running = true;
  try {
    return await rotate(h, waitMs);
  } finally {
    running = false;
  }
}

async function rotate(h: RotationHost, waitMs: number): Promise<RotationResult> {
  const view = rotationView(h.meta());
  let resumed = false;
  if (view.pending) {
    resumed = true;
    h.log('completing the secret rotation started before');
  } else {
    const current = h.secrets()[0];
    if (current === undefined) throw new BihaError('no_secret', 'this node holds no cluster secret');
    await h.proposeMeta(SECRET_META_KEY, sealSecret(h.clusterId, current, newSecret()));
    h.log('new cluster secret committed; waiting for every node to use it');
  }
  const latest = rotationView(h.meta()).latest!;
  const deadline = Date.now() + waitMs;
  let missing: number[] = [];
  for (let round = 0; round < 1000; round++) {
    missing = [];
    for (const id of h.members()) {
      const ids = await h.askSecrets(id).catch(() => [] as string[]);
      if (ids[0] !== latest) missing.push(id);
    }
    if (missing.length === 0 || Date.now() > deadline) break;
    await sleep(200);
  }
  if (missing.length > 0)
    throw new BihaError(
      'rotation_pending',
      `the new cluster secret is committed, but node(s) ${missing.join(', ')} did not confirm it within ${Math.round(waitMs / 1000)} s; the old secret stays accepted until they do`,
      { hint: 'start or reconnect those nodes, then run bihactl rotate-secret again to finish the rotation' },
    );
  await h.proposeMeta(SECRET_META_KEY, doneValue(latest));
  const secret = h.secrets().find((x) => secretId(h.clusterId, x) === latest);
  if (secret === undefined) throw new BihaError('rotation_failed', 'the leader does not hold the new secret after the rotation');
  h.log('cluster secret rotated; the old secret is no longer accepted');
  return { secret, resumed };
}
