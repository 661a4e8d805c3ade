// The cluster-wide backup lock: at most one `bihactl backup` runs at a time in the whole cluster.
//
// The leader's controller keeps the lock in memory (the `backup_lock` command; a follower forwards
// it to the leader). A holder is a node id plus a random token; the lock expires after its TTL
// unless renewed with the same token, so a backup whose bihactl died frees the lock by itself.
// When the leadership moves the new leader starts with a free lock: the running backup re-takes it
// at its next renewal (same token), and a backup started in between may take it first, in which
// case the renewal fails and the older backup stops.
import { z } from 'zod';
import { BihaError } from '../errors.js';
import type { StatusFile } from '../bridge/sqlbridge.js';

export const BACKUP_LOCK_MIN_TTL_MS = 5_000;
export const BACKUP_LOCK_MAX_TTL_MS = 600_000;

export interface BackupLockHolder {
  readonly nodeId: number;
  readonly token: string;
  readonly acquiredAt: number;
  readonly expiresAt: number;
}

/** What a `backup_lock` request returns. */
export type BackupLockReply =
  | {
      ok: true;
      leader: number;
      token: string;
      ttl_ms: number;
      /** Data nodes that stream from the leader right now, lowest replay lag first. */
      streaming: number[];
    }
  | { ok: false; leader: number; holder: HolderView };

/** `status` and `release` replies: who holds the lock now. */
export interface BackupLockStatusReply {
  ok: true;
  leader: number;
  holder: HolderView | null;
}
export interface HolderView {
  node: number;
  held_ms: number;
  expires_in_ms: number;
}

export class BackupLock {
  private holder: BackupLockHolder | null = null;

  /** The current holder, or null when the lock is free (an expired lock counts as free). */
  current(now: number): BackupLockHolder | null {
    if (this.holder && this.holder.expiresAt <= now) this.holder = null;
    return this.holder;
  }

  /** Takes the lock when it is free or already held with this token (which is then a renewal). */
  acquire(nodeId: number, token: string, ttlMs: number, now: number): { ok: true } | { ok: false; holder: BackupLockHolder } {
    const h = this.current(now);
    if (h && h.token !== token) return { ok: false, holder: h };
    this.holder = { nodeId, token, acquiredAt: h ? h.acquiredAt : now, expiresAt: now + ttlMs };
    return { ok: true };
  }

  /** Frees the lock if this token holds it; true if it did. */
  release(token: string, now: number): boolean {
    const h = this.current(now);
    if (!h || h.token !== token) return false;
    this.holder = null;
    return true;
  }
}

const ArgsSchema = z.object({
  op: z.enum(['acquire', 'renew', 'release', 'status']),
  node: z.number().int().positive().max(1_000_000).optional(),
  token: z.string().min(8).max(128).optional(),
  ttl_ms: z.number().int().min(BACKUP_LOCK_MIN_TTL_MS).max(BACKUP_LOCK_MAX_TTL_MS).optional(),
});

/** Data nodes streaming from this (leader) node, lowest lag first, from its status snapshot. */
export function streamingFollowers(s: StatusFile): number[] {
  const bad = new Set(s.status.filter((x) => !x.online || /NODE_ERROR/.test(x.state)).map((x) => x.id));
  return s.monitoring.followers
    .filter((f) => f.id > 0 && f.id !== s.nodeId && f.state === 'streaming' && !bad.has(f.id))
    .sort((a, b) => (a.lag_bytes ?? Number.MAX_SAFE_INTEGER) - (b.lag_bytes ?? Number.MAX_SAFE_INTEGER) || a.id - b.id)
    .map((f) => f.id);
}

/** The `backup_lock` command on the leader. */
export function backupLockCommand(
  lock: BackupLock,
  rawArgs: Record<string, unknown>,
  leaderId: number,
  status: () => StatusFile,
  now: number,
): BackupLockReply | BackupLockStatusReply {
  const p = ArgsSchema.safeParse(rawArgs);
  if (!p.success) throw new BihaError('bad_args', `backup_lock: ${p.error.issues.map((i) => `${i.path.join('.') || 'args'}: ${i.message}`).join('; ')}`);
  const a = p.data;
  const view = (h: BackupLockHolder): HolderView => ({ node: h.nodeId, held_ms: Math.max(0, now - h.acquiredAt), expires_in_ms: Math.max(0, h.expiresAt - now) });
  const viewOrNull = (h: BackupLockHolder | null): HolderView | null => (h ? view(h) : null);
  if (a.op === 'status') return { ok: true, leader: leaderId, holder: viewOrNull(lock.current(now)) };
  if (a.token === undefined) throw new BihaError('bad_args', `backup_lock ${a.op} needs a token`);
  if (a.op === 'release') {
    lock.release(a.token, now);
    return { ok: true, leader: leaderId, holder: viewOrNull(lock.current(now)) };
  }
  if (a.node === undefined || a.ttl_ms === undefined) throw new BihaError('bad_args', `backup_lock ${a.op} needs node and ttl_ms`);
  const r = lock.acquire(a.node, a.token, a.ttl_ms, now);
  if (!r.ok) return { ok: false, leader: leaderId, holder: view(r.holder) };
  return { ok: true, leader: leaderId, token: a.token, ttl_ms: a.ttl_ms, streaming: streamingFollowers(status()) };
}
