// The one place that runs outside programs to their end (PostgreSQL's tools, openssl, pg_config,
// getent, the DBA's callbacks, pg_basebackup for bihactl backup), built on execa.
//
// What every run gets:
//  - no shell: the program and its arguments go to exec as they are;
//  - an optional timeout: SIGTERM, then SIGKILL after killGraceMs; the run fails as 'timeout';
//  - the child is killed when this process exits (execa's cleanup), unless it runs in a process
//    group of its own (processGroup), where this module signals the whole group instead: on the
//    timeout, on stop() and when this process exits;
//  - optional uid/gid (the data directory's owner when running as root);
//  - stdout and stderr read here, split into lines on \r and \n for the callers that follow
//    progress, stderr kept up to its last 256 kB;
//  - a failure as an ExecError carrying the program, the command line, the exit code or signal,
//    and the tail of stderr.
// A grandchild that keeps our pipes open (a daemon started by pg_ctl, a leftover of a killed
// callback) does not hold the run up: pipes still open pipeGraceMs after the child exited are closed.
//
// Long-lived children that talk to the controller over their lifetime or must outlive it (the
// controller daemon that bihactl start detaches, the watchdog) do not fit a run-to-the-end adapter
// and keep a direct spawn where they are started.
import { execa } from 'execa';
import type { ResultPromise } from 'execa';
import * as path from 'node:path';
import { BihaError } from './errors.js';

/** How a run failed: could not be started, ran past its timeout, or ended with a non-zero exit code or a signal. */
export type ExecFailure = 'spawn' | 'timeout' | 'exit';

export class ExecError extends BihaError {
  /** Base name of the program. */
  readonly program: string;
  /** The command line, quoted for a shell (for logs and error details). */
  readonly command: string;
  readonly failure: ExecFailure;
  readonly exitCode: number | null;
  readonly signal: string | null;
  /** What the program wrote on stderr (its last 256 kB). */
  readonly stderr: string;
  readonly stdout: string;
  /** The last lines of stderr (of stdout when stderr was empty), joined by " | "; '' when there was no output. */
  readonly tail: string;

  constructor(
    message: string,
    o: { program: string; command: string; failure: ExecFailure; exitCode: number | null; signal: string | null; stderr: string; stdout: string; tail: string; cause?: unknown },
  ) {
    super(`exec_${o.failure}`, message, o.cause !== undefined ? { cause: o.cause } : {});
    this.name = 'ExecError';
    this.program = o.program;
    this.command = o.command;
    this.failure = o.failure;
    this.exitCode = o.exitCode;
    this.signal = o.signal;
    this.stderr = o.stderr;
    this.stdout = o.stdout;
    this.tail = o.tail;
  }
}

export interface ExecOptions {
  /** Working directory (default: this process's). */
  cwd?: string;
  /** The complete environment of the child (default: this process's). */
  env?: NodeJS.ProcessEnv;
  /** Written to stdin, which is closed afterwards; without it stdin is /dev/null. */
  input?: string;
  timeoutMs?: number;
  /** Between SIGTERM and SIGKILL when the run is stopped or timed out (default 2000 ms). */
  killGraceMs?: number;
  /** Run with these ids (only honoured when this process may switch to them). */
  runAs?: { uid: number; gid: number } | null;
  onStdoutLine?: (line: string) => void;
  onStderrLine?: (line: string) => void;
  /** Keep stdout in memory for the result (default true). */
  keepStdout?: boolean;
  /** Do not connect stdout and stderr at all (nothing is read or kept). */
  noOutput?: boolean;
  /** Run in a process group of its own; timeouts, stop() and this process's exit signal the whole group. */
  processGroup?: boolean;
  /** How long to wait for the pipes to close after the child exited (default 1000 ms). */
  pipeGraceMs?: number;
}

export interface ExecResult {
  stdout: string;
  stderr: string;
}

export interface RunningProgram {
  /** PID of the child (for processGroup: also its process group id); null when it could not be started. */
  readonly pid: number | null;
  /** Resolves when the program exited with code 0; rejects with an ExecError otherwise. */
  readonly done: Promise<ExecResult>;
  /** SIGTERM (to its group with processGroup), SIGKILL after killGraceMs. The run then fails as 'exit'. */
  stop(): void;
}

const MAX_KEEP = 256 * 1024;
const DEFAULT_KILL_GRACE_MS = 2000;
const DEFAULT_PIPE_GRACE_MS = 1000;

function shellQuote(a: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`;
}

/** The last `n` non-empty lines of `text`, joined by " | ". */
export function lastLines(text: string, n: number): string {
  const lines = text.split(/[\r\n]+/).map((l) => l.trim()).filter((l) => l !== '');
  return lines.slice(-n).join(' | ');
}

/** Splits a stream of chunks into lines on \r and \n (progress output ends lines with \r). */
export class LineSplitter {
  private buf = '';
  constructor(private readonly emit: (line: string) => void) {}
  push(chunk: string): void {
    this.buf += chunk;
    const parts = this.buf.split(/\r\n|\r|\n/);
    this.buf = parts.pop() ?? '';
    for (const p of parts) if (p !== '') this.emit(p);
  }
  end(): void {
    if (this.buf !== '') this.emit(this.buf);
    this.buf = '';
  }
}

function mayChangeIds(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

function signalGroup(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig);
  } catch {
    // the group is gone
  }
}

/** Starts `file` with `args`; see the top of this file for what the run gets. */
export function startProgram(file: string, args: readonly string[], o: ExecOptions = {}): RunningProgram {
  const program = path.basename(file);
  const command = [file, ...args].map(shellQuote).join(' ');
  const graceMs = Math.max(0, o.killGraceMs ?? DEFAULT_KILL_GRACE_MS);
  const group = o.processGroup === true;
  const ids = o.runAs && mayChangeIds() ? { uid: o.runAs.uid, gid: o.runAs.gid } : {};
  const output = o.noOutput ? 'ignore' : 'pipe';

  const child: ResultPromise = execa(file, args, {
    ...(o.cwd !== undefined ? { cwd: o.cwd } : {}),
    env: o.env ?? process.env,
    extendEnv: false,
    ...(o.input !== undefined ? { input: o.input } : { stdin: 'ignore' as const }),
    stdout: output,
    stderr: output,
    // Read here (below): no size limit, and lines split on \r as well.
    buffer: false,
    reject: true,
    ...ids,
    detached: group,
    // A child in its own group is killed (with its group) by the exit hook below.
    cleanup: !group,
    // For a group the timers below signal the group; execa's would reach the leader only.
    ...(o.timeoutMs !== undefined && !group ? { timeout: o.timeoutMs } : {}),
    killSignal: 'SIGTERM',
    forceKillAfterDelay: graceMs,
  });
  const pid = child.pid ?? null;

  let stdout = '';
  let stderr = '';
  const keepStdout = o.keepStdout !== false;
  const outLines = o.onStdoutLine ? new LineSplitter(o.onStdoutLine) : null;
  const errLines = o.onStderrLine ? new LineSplitter(o.onStderrLine) : null;
  child.stdout?.setEncoding('utf8');
  child.stderr?.setEncoding('utf8');
  child.stdout?.on('data', (d: string) => {
    if (keepStdout) stdout += d;
    outLines?.push(d);
  });
  child.stderr?.on('data', (d: string) => {
    stderr += d;
    if (stderr.length > MAX_KEEP) stderr = stderr.slice(-MAX_KEEP);
    errLines?.push(d);
  });

  // A grandchild holding our pipes open must not hold the run up.
  child.once('exit', () => {
    setTimeout(() => {
      child.stdout?.destroy();
      child.stderr?.destroy();
    }, o.pipeGraceMs ?? DEFAULT_PIPE_GRACE_MS).unref();
  });

  let timedOut = false;
  let hardKill: NodeJS.Timeout | null = null;
  const stopGroup = (): void => {
    if (pid === null) return;
    signalGroup(pid, 'SIGTERM');
    hardKill ??= setTimeout(() => signalGroup(pid, 'SIGKILL'), graceMs);
    hardKill.unref();
  };
  let groupTimer: NodeJS.Timeout | null = null;
  const onParentExit = (): void => {
    if (pid !== null) signalGroup(pid, 'SIGKILL');
  };
  if (group && pid !== null) {
    if (o.timeoutMs !== undefined)
      groupTimer = setTimeout(() => {
        timedOut = true;
        stopGroup();
      }, o.timeoutMs);
    process.once('exit', onParentExit);
  }

  const done = (async (): Promise<ExecResult> => {
    try {
      await child;
      return { stdout, stderr };
    } catch (e) {
      const x = e as { exitCode?: number; signal?: string; timedOut?: boolean; cause?: unknown };
      const sys = x.cause instanceof Error ? (x.cause as NodeJS.ErrnoException).syscall : undefined;
      const spawnFailed = x.exitCode === undefined && x.signal === undefined && !x.timedOut && typeof sys === 'string' && sys.startsWith('spawn');
      const failure: ExecFailure = spawnFailed ? 'spawn' : x.timedOut || timedOut ? 'timeout' : 'exit';
      const exitCode = x.exitCode ?? null;
      const signal = x.signal ?? null;
      const tail = lastLines(stderr, 4) || lastLines(stdout, 4);
      const cause = spawnFailed && x.cause instanceof Error ? x.cause : e;
      let message: string;
      if (failure === 'spawn') message = `cannot run ${program}: ${(cause as Error).message}`;
      else if (failure === 'timeout') message = `${program} did not finish within ${o.timeoutMs} ms and was stopped`;
      else message = `${program} ${signal ? `was killed by ${signal}` : `failed with exit code ${exitCode}`}: ${tail || 'no output'}`;
      throw new ExecError(message, { program, command, failure, exitCode, signal, stderr, stdout, tail, cause });
    } finally {
      outLines?.end();
      errLines?.end();
      if (groupTimer) clearTimeout(groupTimer);
      process.off('exit', onParentExit);
    }
  })();
  // Callers that only stop() a run must not see an unhandled rejection from it.
  done.catch(() => undefined);

  return {
    pid,
    done,
    stop: () => {
      if (group) stopGroup();
      else child.kill('SIGTERM');
    },
  };
}

/** Runs `file` with `args` to its end; rejects with an ExecError unless it exits with code 0. */
export function runProgram(file: string, args: readonly string[], o: ExecOptions = {}): Promise<ExecResult> {
  return startProgram(file, args, o).done;
}

/** The program's stdout in the C locale, or null when it could not run, failed or took over 10 s. */
export async function programOutput(file: string, args: readonly string[], o: { timeoutMs?: number } = {}): Promise<string | null> {
  try {
    return (await runProgram(file, args, { env: { ...process.env, LC_ALL: 'C' }, timeoutMs: o.timeoutMs ?? 10_000 })).stdout;
  } catch {
    return null;
  }
}
