// bihactl backup: a pg_basebackup of the cluster, taken from a streaming follower, one at a time
// across the whole cluster (the backup lock held by the leader's controller, see backuplock.ts).
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import type { BackupLockReply } from '../controller/ops/backuplock.js';
import { BihaError, oneLine } from '../controller/errors.js';
import { ExecError, startProgram } from '../controller/exec.js';
import { passfilePath } from '../controller/state/nodefiles.js';
import { setAutoConfOffline } from '../controller/pg/conf.js';
import { parseBasebackupProgress, resolvePgEnv, toolPath } from '../controller/pg/tools.js';
import type { PgEnv } from '../controller/pg/tools.js';
import type { NodeInfo } from '../raft/index.js';
import { loadConf, nodeRequest } from './localnode.js';
import { committedNodes } from './statusview.js';
import { lookupPassword } from './pgpass.js';
import { info, progressBar, requireOpt } from './util.js';

/** How long the lock lives without a renewal; bihactl renews it every third of that. */
export const BACKUP_LOCK_TTL_MS = 30_000;
/** How long a backup waits for a follower to stream before it gives up (or copies the leader). */
const FOLLOWER_WAIT_MS = 30_000;

/** The target must be absent or an empty directory: a backup never overwrites anything. */
async function checkTarget(target: string, pgdata: string): Promise<'missing' | 'empty'> {
  const rel = path.relative(pgdata, target);
  if (rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel)))
    throw new BihaError('bad_args', `--target ${target} is inside the data directory ${pgdata}`, { hint: 'choose a directory outside every data directory' });
  let st: fs.Stats;
  try {
    st = await fsp.stat(target);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
    throw new BihaError('bad_args', `cannot use --target ${target}: ${oneLine(e)}`);
  }
  if (!st.isDirectory()) throw new BihaError('target_not_empty', `--target ${target} exists and is not a directory; refusing to overwrite it`, { hint: 'give a new or empty directory' });
  if ((await fsp.readdir(target)).length > 0)
    throw new BihaError('target_not_empty', `--target ${target} is not empty; refusing to overwrite it`, { hint: 'give a new or empty directory' });
  return 'empty';
}

function secs(ms: number): string {
  return `${Math.round(ms / 1000)} s`;
}

async function lockRequest(pgdata: string, args: Record<string, unknown>): Promise<BackupLockReply> {
  return (await nodeRequest(pgdata, 'backup_lock', args, 15_000)) as BackupLockReply;
}

interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderrTail: string;
}

async function runBasebackup(env: PgEnv, args: string[], extraEnv: Record<string, string>, onLine: (l: string) => void, started: (kill: () => void) => void): Promise<RunResult> {
  const childEnv: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PG') && k !== 'LANG' && !k.startsWith('LC_')) childEnv[k] = v;
  Object.assign(childEnv, { LC_ALL: 'C', LANG: 'C' }, env.runAs ? { HOME: env.runAs.home, USER: env.runAs.user, LOGNAME: env.runAs.user } : {}, extraEnv);
  const lines: string[] = [];
  const run = startProgram(toolPath(env, 'pg_basebackup'), args, {
    cwd: '/',
    env: childEnv,
    runAs: env.runAs,
    // Its own process group: pg_basebackup forks a WAL receiver that must stop with it.
    processGroup: true,
    keepStdout: false,
    // A leftover process of the group could keep stderr open: do not wait for it forever.
    pipeGraceMs: 2000,
    onStderrLine: (p) => {
      if (p.trim() === '') return;
      onLine(p);
      if (!parseBasebackupProgress(p)) lines.push(p.trim());
      if (lines.length > 20) lines.shift();
    },
  });
  started(() => run.stop());
  try {
    await run.done;
    return { code: 0, signal: null, stderrTail: '' };
  } catch (e) {
    if (!(e instanceof ExecError)) throw e;
    if (e.failure === 'spawn') return { code: 127, signal: null, stderrTail: e.message };
    return { code: e.exitCode, signal: (e.signal as NodeJS.Signals | null) ?? null, stderrTail: lines.slice(-3).join(' | ') };
  }
}

/** No standby.signal and no primary_conninfo / primary_slot_name in the copy. */
async function detachCopy(target: string): Promise<void> {
  for (const f of ['standby.signal', 'recovery.signal']) await fsp.rm(path.join(target, f), { force: true });
  await setAutoConfOffline(target, { primary_conninfo: null, primary_slot_name: null });
}

/** Brings the target back to what it was: absent, or an empty directory. */
async function undoTarget(target: string, was: 'missing' | 'empty'): Promise<void> {
  if (was === 'missing') {
    await fsp.rm(target, { recursive: true, force: true }).catch(() => undefined);
    return;
  }
  for (const e of await fsp.readdir(target).catch(() => [] as string[])) await fsp.rm(path.join(target, e), { recursive: true, force: true }).catch(() => undefined);
}

export async function cmdBackup(o: { pgdata?: string; target?: string; allowLeader?: boolean; maxRate?: string }): Promise<void> {
  const { pgdata, conf } = await loadConf(o.pgdata);
  const target = path.resolve(requireOpt('target', o.target));
  if (o.maxRate !== undefined && !/^[1-9]\d*[kM]?$/.test(o.maxRate))
    throw new BihaError('bad_args', `--max-rate must be a rate as pg_basebackup takes it (e.g. 512k, 20M), not "${o.maxRate}"`);
  const was = await checkTarget(target, pgdata);
  const env = await resolvePgEnv(pgdata);
  const token = randomBytes(16).toString('hex');

  let got = await lockRequest(pgdata, { op: 'acquire', node: conf.nodeId, token, ttl_ms: BACKUP_LOCK_TTL_MS });
  if (!got.ok) {
    const h = got.holder;
    throw new BihaError(
      'backup_locked',
      `another backup is running: node ${h.node} holds the cluster backup lock (taken ${secs(h.held_ms)} ago, expires in ${secs(h.expires_in_ms)} unless renewed)`,
      { hint: 'try again when that backup has finished' },
    );
  }

  let kill: (() => void) | null = null;
  let stopReason: string | null = null;
  const stop = (why: string): void => {
    stopReason ??= why;
    kill?.();
  };
  const onSignal = (): void => stop('interrupted');
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let renewing = false;
  const renew = setInterval(() => {
    if (renewing) return;
    renewing = true;
    void lockRequest(pgdata, { op: 'renew', node: conf.nodeId, token, ttl_ms: BACKUP_LOCK_TTL_MS })
      .then((r) => {
        if (!r.ok) stop(`the backup lock was lost to node ${r.holder.node} (the leadership moved and another backup took the lock)`);
      })
      .catch((e: unknown) => info(`could not renew the backup lock (will retry): ${oneLine(e)}`))
      .finally(() => (renewing = false));
  }, BACKUP_LOCK_TTL_MS / 3);
  try {
    const nodes = await committedNodes(pgdata);
    const byId = new Map(nodes.map((n) => [n.id, n]));
    const pick = (streaming: number[]): NodeInfo | undefined => streaming.map((id) => byId.get(id)).find((n) => n !== undefined && n.mode === 'regular' && n.port > 0);
    let src = pick(got.streaming);
    // Followers may be reconnecting (after a switchover or a restart): ask the leader again for a while.
    const waitUntil = Date.now() + FOLLOWER_WAIT_MS;
    for (let i = 0; i < 1000 && !src && Date.now() < waitUntil && !stopReason; i++) {
      await new Promise((r) => setTimeout(r, 500));
      const again = await lockRequest(pgdata, { op: 'renew', node: conf.nodeId, token, ttl_ms: BACKUP_LOCK_TTL_MS }).catch(() => null);
      if (again && !again.ok) throw new BihaError('backup_locked', `the backup lock was lost to node ${again.holder.node} while waiting for a streaming follower`);
      if (again?.ok) {
        got = again;
        src = pick(got.streaming);
      }
    }
    if (!src) {
      const leader = byId.get(got.leader);
      if (!o.allowLeader || !leader)
        throw new BihaError('no_streaming_follower', `no follower streamed from the leader (node ${got.leader}) within ${secs(FOLLOWER_WAIT_MS)}, and backups are not taken from the leader unless asked`, {
          hint: 'wait for a follower to catch up (bihactl status), or add --allow-leader to copy from the leader',
        });
      info(`no streaming follower; --allow-leader: copying from the leader, node ${leader.id}`);
      src = leader;
    }
    info(`backup lock taken by node ${conf.nodeId}; copying node ${src.id} (${src.host}:${src.port}) into ${target}`);

    const extraEnv: Record<string, string> = { PGAPPNAME: 'biha_backup', PGCONNECT_TIMEOUT: '10' };
    if (fs.existsSync(passfilePath(pgdata))) extraEnv['PGPASSFILE'] = passfilePath(pgdata);
    else {
      const pw = await lookupPassword({ host: src.host, port: src.port, user: conf.replicationUser, database: 'replication' });
      if (!pw)
        throw new BihaError('no_password', `no password for ${conf.replicationUser} at ${src.host}:${src.port}`, {
          hint: 'add it to the password file (PGPASSFILE or ~/.pgpass) or set BIHA_REPLICATION_PASSWORD',
        });
      extraEnv['PGPASSWORD'] = pw;
    }
    if (was === 'missing') await fsp.mkdir(target, { recursive: true, mode: 0o700 });
    if (env.runAs && process.getuid?.() === 0) await fsp.chown(target, env.runAs.uid, env.runAs.gid);
    await fsp.chmod(target, 0o700);

    const args = [
      '-h', src.host, '-p', String(src.port), '-U', conf.replicationUser, '-D', target,
      '--wal-method=stream', '--checkpoint=fast', '--progress', '--no-password',
      ...(o.maxRate ? [`--max-rate=${o.maxRate}`] : []),
    ];
    const bar = progressBar('pg_basebackup');
    const t0 = Date.now();
    const r = await runBasebackup(env, args, extraEnv, (line) => {
      const p = parseBasebackupProgress(line);
      if (p) bar.update(p.pct, p.doneKb, p.totalKb);
    }, (k) => {
      kill = k;
      if (stopReason) k();
    });
    bar.done();
    if (r.code !== 0 || stopReason) {
      await undoTarget(target, was);
      if (stopReason) throw new BihaError('backup_stopped', `backup stopped: ${stopReason}; ${target} was cleaned up`);
      throw new BihaError('backup_failed', `pg_basebackup from node ${src.id} (${src.host}:${src.port}) failed (${r.signal ?? `exit code ${r.code}`}): ${r.stderrTail || 'no output'}`, {
        hint: `${target} was cleaned up; check the source node and try again`,
      });
    }
    // A copy of a standby would stream from the cluster (and use the source's slot) if started as it
    // is: make it a plain backup. pg_verifybackup ignores these files, the manifest stays valid.
    await detachCopy(target);
    if (!fs.existsSync(path.join(target, 'PG_VERSION'))) {
      await undoTarget(target, was);
      throw new BihaError('backup_failed', `pg_basebackup finished but ${target} holds no PG_VERSION; it was cleaned up`);
    }
    info(`backup of node ${src.id} written to ${target} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  } catch (e) {
    if (!(e instanceof BihaError)) await undoTarget(target, was);
    throw e;
  } finally {
    clearInterval(renew);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await lockRequest(pgdata, { op: 'release', token }).catch((e: unknown) => info(`could not release the backup lock (it expires by itself in ${secs(BACKUP_LOCK_TTL_MS)}): ${oneLine(e)}`));
  }
}
