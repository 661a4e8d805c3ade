// Challenge-response authentication of a BCP connection over the cluster secret.
//
//   dialer   -> hello {clusterId, id, nonce, client}      (both sides send hello at once)
//   acceptor -> hello {clusterId, id, nonce, client:false}
//   dialer   -> auth  {proofs}    after checking the acceptor's hello
//   acceptor -> auth  {proofs}    only after verifying the dialer's proofs (else auth_fail)
//   dialer verifies the acceptor's proofs (else auth_fail)
//
// A proof is HMAC-SHA256(secret, transcript) where the transcript binds the protocol version, the
// cluster id, both ids, both nonces, the client flag and the direction, so a proof is good for one
// connection and one direction only. Each side sends one proof per secret it holds (the current one
// first), so during a rotation a node holding [new, old] and a node holding [old] still agree.

import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { PROTOCOL_VERSION } from './codec.js';

export const NONCE_BYTES = 32;
export const PROOF_BYTES = 32;
/** At most this many proofs are sent or examined (one per secret held during a rotation). */
export const MAX_PROOFS = 4;

export const HANDSHAKE_KINDS = { hello: 'hello', auth: 'auth', authFail: 'auth_fail' } as const;

export interface HelloBody {
  clusterId: string;
  id: number;
  nonce: Buffer;
  /** True for a client (bihactl, a node being added): it only makes requests. */
  client: boolean;
}

export interface AuthBody {
  proofs: Buffer[];
}

export const AUTH_FAIL_REASONS = ['secret', 'cluster', 'id', 'tls', 'protocol'] as const;
export type AuthFailReason = (typeof AUTH_FAIL_REASONS)[number];

export interface AuthFailBody {
  reason: AuthFailReason;
  detail: string;
}

export type Direction = 'dialer' | 'acceptor';

export interface Transcript {
  clusterId: string;
  dialerId: number;
  acceptorId: number;
  dialerNonce: Buffer;
  acceptorNonce: Buffer;
  /** The dialer is a client. */
  client: boolean;
}

export function newNonce(): Buffer {
  return randomBytes(NONCE_BYTES);
}

export function computeProof(secret: string, t: Transcript, prover: Direction): Buffer {
  const h = createHmac('sha256', secret);
  h.update(`biha-bcp/${PROTOCOL_VERSION}\0${t.clusterId}\0${t.dialerId}\0${t.acceptorId}\0`);
  h.update(t.dialerNonce);
  h.update(t.acceptorNonce);
  h.update(`\0${t.client ? 'client' : 'peer'}\0${prover}`);
  return h.digest();
}

/** Proofs for every secret held (current first), at most MAX_PROOFS. */
export function makeProofs(secrets: readonly string[], t: Transcript, prover: Direction): Buffer[] {
  return secrets.slice(0, MAX_PROOFS).map((s) => computeProof(s, t, prover));
}

/** True if any proof matches any accepted secret. Constant-time comparison of each candidate. */
export function verifyProofs(secrets: readonly string[], proofs: readonly Buffer[], t: Transcript, prover: Direction): boolean {
  let ok = false;
  for (const s of secrets) {
    const expected = computeProof(s, t, prover);
    for (const p of proofs.slice(0, MAX_PROOFS)) {
      if (p.length === expected.length && timingSafeEqual(p, expected)) ok = true;
    }
  }
  return ok;
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x) && !ArrayBuffer.isView(x);
}

function asBuffer(x: unknown, len: number): Buffer | null {
  if (!(x instanceof Uint8Array) || x.length !== len) return null;
  return Buffer.from(x.buffer, x.byteOffset, x.byteLength);
}

export function parseHello(b: unknown): HelloBody | string {
  if (!isObject(b)) return 'hello body is not a map';
  if (typeof b.clusterId !== 'string') return 'hello has no cluster id';
  if (typeof b.id !== 'number' || !Number.isSafeInteger(b.id) || b.id < 0) return 'hello has no valid node id';
  if (typeof b.client !== 'boolean') return 'hello has no client flag';
  const nonce = asBuffer(b.nonce, NONCE_BYTES);
  if (!nonce) return `hello nonce is not ${NONCE_BYTES} bytes`;
  return { clusterId: b.clusterId, id: b.id, nonce, client: b.client };
}

export function parseAuth(b: unknown): AuthBody | string {
  if (!isObject(b) || !Array.isArray(b.proofs)) return 'auth body has no proofs';
  if (b.proofs.length === 0 || b.proofs.length > MAX_PROOFS) return `auth carries ${b.proofs.length} proofs (1 to ${MAX_PROOFS} expected)`;
  const proofs: Buffer[] = [];
  for (const p of b.proofs) {
    const buf = asBuffer(p, PROOF_BYTES);
    if (!buf) return `an auth proof is not ${PROOF_BYTES} bytes`;
    proofs.push(buf);
  }
  return { proofs };
}

export function parseAuthFail(b: unknown): AuthFailBody {
  if (isObject(b) && typeof b.reason === 'string' && (AUTH_FAIL_REASONS as readonly string[]).includes(b.reason)) {
    const detail = typeof b.detail === 'string' ? b.detail.slice(0, 200) : '';
    return { reason: b.reason as AuthFailReason, detail };
  }
  return { reason: 'protocol', detail: 'no reason given' };
}
