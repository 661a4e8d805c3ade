// Shared helpers for the real-PostgreSQL tests in test/pg: scratch directories owned by the
// postgres OS user, free ports in this suite's range, bounded polling, and clean-up by PID.

import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { claimPorts } from '../helpers/ports.js';
import { lookupUid, postmasterPid, procState, waitPidGone } from '../../src/controller/pg/tools.js';

/** Where this suite's ports start (ports.ts moves past ports in use or claimed). */
const PORT_FIRST = 17010;

/** A port that nothing listens on, claimed for this process (the unix socket name must be free too). */
export async function freePort(): Promise<number> {
  for (let k = 0; k < 100; k++) {
    const p = claimPorts(PORT_FIRST, 1);
    // A socket file left behind keeps the port claimed and unused: take the next one.
    if (!(await fsp.stat(`/tmp/.s.PGSQL.${p}`).then(() => true, () => false))) return p;
  }
  throw new Error(`no free port from ${PORT_FIRST} on`);
}

export const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/** A scratch directory under /tmp owned by postgres when we run as root. */
export async function scratchDir(prefix: string): Promise<string> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), `biha-${prefix}-`));
  if (isRoot) {
    const pw = await lookupUid(Number((await execOut('id', ['-u', 'postgres'])).trim()));
    if (!pw) throw new Error('no postgres OS user');
    await fsp.chown(dir, pw.uid, pw.gid);
  }
  return dir;
}

async function execOut(cmd: string, args: string[]): Promise<string> {
  const { execFile } = await import('node:child_process');
  return new Promise((resolve, reject) => {
    execFile(cmd, args, (err, stdout) => (err ? reject(err) : resolve(stdout)));
  });
}

/** Poll fn every 20 ms until it returns a truthy value; fail after timeoutMs. */
export async function waitFor<T>(what: string, fn: () => Promise<T>, timeoutMs = 20_000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown = null;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() >= deadline) {
      throw new Error(`timed out waiting for ${what}${lastErr ? `: ${(lastErr as Error).message}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Kill -9 whatever postmaster still runs in these data directories (by PID), then remove the base dir. */
export async function cleanup(base: string, pgdatas: string[]): Promise<void> {
  for (const d of pgdatas) {
    const pid = await postmasterPid(d).catch(() => null);
    if (pid !== null && (await procState(pid)) === 'alive') {
      process.kill(pid, 'SIGKILL');
      await waitPidGone(pid, 10_000);
    }
  }
  await fsp.rm(base, { recursive: true, force: true });
}
