// Small process helpers for jepsen-lite: run a command with a hard time limit, and signal only
// processes this suite started (checked through /proc before the signal is sent).
import { execFile, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command (no shell) with a time limit; never throws. */
export async function run(cmd: string, args: readonly string[], o: { timeoutMs?: number; env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<RunResult> {
  return await new Promise<RunResult>((resolve) => {
    const child = execFile(
      cmd,
      [...args],
      { timeout: o.timeoutMs ?? 60_000, killSignal: 'SIGKILL', maxBuffer: 16 << 20, env: o.env ?? process.env, encoding: 'utf8' },
      (err, stdout, stderr) => {
        if (!err) return resolve({ code: 0, stdout, stderr });
        const e = err as NodeJS.ErrnoException & { code?: number | string; killed?: boolean };
        const code = typeof e.code === 'number' ? e.code : e.killed ? 124 : 1;
        resolve({ code, stdout: stdout ?? '', stderr: `${stderr ?? ''}${typeof e.code === 'string' ? ` (${e.code})` : ''}${e.killed ? ' (killed: time limit)' : ''}` });
      },
    );
    // A command that exits before reading its input (a failing nft, say) closes the pipe: the
    // EPIPE is not the result, the exit code is.
    child.stdin?.on('error', () => undefined);
    if (o.input !== undefined) child.stdin?.end(o.input);
  });
}

/** Like run() but synchronous: used by the emergency cleanup in exit and signal handlers. */
export function runSync(cmd: string, args: readonly string[], timeoutMs = 20_000): RunResult {
  const r = spawnSync(cmd, [...args], { encoding: 'utf8', timeout: timeoutMs, killSignal: 'SIGKILL' });
  return { code: r.status ?? 1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

export async function must(cmd: string, args: readonly string[], o: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  const r = await run(cmd, args, o);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.code}): ${r.stderr.trim() || r.stdout.trim()}`);
  return r;
}

export async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, Math.max(0, ms)));
}

/** The command line of a process, or '' if it is gone. */
export function cmdline(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    return '';
  }
}

/** The network namespace inode of a process ('' if it is gone). */
export function netnsOf(pid: number): string {
  try {
    return fs.readlinkSync(`/proc/${pid}/ns/net`);
  } catch {
    return '';
  }
}

/** Reads an integer PID from the first line of a file (postmaster.pid, controller.pid). */
export function pidFromFile(file: string): number | null {
  try {
    const n = Number(fs.readFileSync(file, 'utf8').split('\n')[0]!.trim());
    return Number.isInteger(n) && n > 0 ? n : null;
  } catch {
    return null;
  }
}

/**
 * Sends a signal to `pid` only if its command line mentions `mustContain` (the run's own data
 * directory), so a recycled PID of some other process is never hit. Returns whether it was sent.
 */
export function signalOwn(pid: number | null, sig: NodeJS.Signals, mustContain: string): boolean {
  if (!pid) return false;
  if (!cmdline(pid).includes(mustContain)) return false;
  try {
    process.kill(pid, sig);
    return true;
  } catch {
    return false;
  }
}
