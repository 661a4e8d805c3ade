// The watchdog: a small process that outlives the controller and fences PostgreSQL when the leader's
// lease runs out without the controller renewing it (controller killed, paused by SIGSTOP, or stuck).
//
// The controller feeds it lines on stdin:
//   arm <ms>     PostgreSQL may stay writable for <ms> more milliseconds (the lease left)
//   disarm       PostgreSQL is not writable; nothing to guard
// When an armed deadline passes, the watchdog stops the postmaster with SIGQUIT (PostgreSQL's
// immediate shutdown: no further commit is acknowledged) and exits. When stdin closes (the
// controller died) nobody can renew the lease any more: disarmed, it exits at once; armed, it
// fences at the deadline. Its PID is in pg_biha/watchdog.pid.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import type { Logger } from 'pino';

/** Reads the postmaster PID from postmaster.pid (null when absent). */
function postmasterPidSync(pgdata: string): number | null {
  try {
    const pid = Number(fs.readFileSync(path.join(pgdata, 'postmaster.pid'), 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

function log(pgdata: string, msg: string): void {
  const line = JSON.stringify({ level: 40, time: new Date().toISOString(), component: 'WD', pid: process.pid, msg }) + '\n';
  try {
    fs.appendFileSync(path.join(pgdata, 'pg_biha', 'log', 'controller.log'), line);
  } catch {
    process.stderr.write(line);
  }
}

/** The watchdog process body (`bihactl watchdog --pgdata=DIR`, started by the controller). */
export async function runWatchdog(pgdata: string): Promise<number> {
  const pidFile = path.join(pgdata, 'pg_biha', 'watchdog.pid');
  fs.writeFileSync(pidFile, `${process.pid}\n`, { mode: 0o600 });
  let deadline: number | null = null; // on the monotonic clock of this process
  let timer: NodeJS.Timeout | null = null;
  let controllerGone = false;
  let finish!: (code: number) => void;
  const done = new Promise<number>((r) => (finish = r));
  const cleanup = (): void => {
    try {
      if (fs.readFileSync(pidFile, 'utf8').trim() === String(process.pid)) fs.rmSync(pidFile, { force: true });
    } catch {
      // gone already
    }
  };
  const fence = (): void => {
    const pid = postmasterPidSync(pgdata);
    if (pid !== null) {
      try {
        process.kill(pid, 'SIGQUIT');
        log(pgdata, `lease expired without renewal: PostgreSQL (PID ${pid}) fenced with an immediate shutdown`);
      } catch {
        // not running
      }
    }
    cleanup();
    finish(0);
  };
  const schedule = (): void => {
    if (timer) clearTimeout(timer);
    timer = null;
    if (deadline === null) {
      if (controllerGone) {
        cleanup();
        finish(0);
      }
      return;
    }
    const left = deadline - performance.now();
    if (left <= 0) fence();
    else timer = setTimeout(fence, left);
  };
  let buf = '';
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (chunk: string) => {
    buf += chunk;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      const m = /^arm (\d+(?:\.\d+)?)$/.exec(line);
      if (m) deadline = performance.now() + Number(m[1]);
      else if (line === 'disarm') deadline = null;
    }
    schedule();
  });
  process.stdin.on('end', () => {
    controllerGone = true;
    schedule();
  });
  process.stdin.on('error', () => {
    controllerGone = true;
    schedule();
  });
  process.on('SIGTERM', () => {
    // A clean controller stop disarms first; a bare SIGTERM must not leave a lease unguarded.
    if (deadline === null) {
      cleanup();
      finish(0);
    }
  });
  return await done;
}

/** Controller side: starts the watchdog and renews it. */
export class WatchdogClient {
  private child: ChildProcess | null = null;
  private armedUntil: number | null = null;
  private lastSent = 0;

  constructor(
    private readonly pgdata: string,
    private readonly bin: string,
    private readonly log: Logger,
  ) {}

  start(): void {
    const child = spawn(process.execPath, [this.bin, 'watchdog', `--pgdata=${this.pgdata}`], {
      detached: true,
      stdio: ['pipe', 'ignore', 'ignore'],
    });
    child.unref();
    child.stdin?.on('error', () => undefined);
    child.once('exit', (code, sig) => {
      if (this.child === child) {
        this.child = null;
        this.log.warn({ code, sig }, 'the watchdog exited');
      }
    });
    this.child = child;
    this.log.info({ pid: child.pid }, 'watchdog started');
  }

  private write(line: string): void {
    const s = this.child?.stdin;
    if (s && !s.destroyed) s.write(line + '\n');
  }

  /** PostgreSQL may stay writable until `until` (this process's performance.now() clock). */
  arm(until: number, now: number): void {
    const changed = this.armedUntil === null || Math.abs(until - this.armedUntil) > 5 || now - this.lastSent > 200;
    if (!changed) return;
    this.armedUntil = until;
    this.lastSent = now;
    this.write(`arm ${Math.max(0, Math.round(until - now))}`);
  }

  disarm(): void {
    if (this.armedUntil === null) return;
    this.armedUntil = null;
    this.write('disarm');
  }

  /** Clean stop: disarm and close its input; it exits. */
  stop(): void {
    this.disarm();
    this.child?.stdin?.end();
    this.child = null;
  }

  /** Leave the watchdog running with its current deadline (the controller exits, PostgreSQL keeps running). */
  detach(): void {
    this.child?.stdin?.end();
    this.child = null;
  }

  alive(): boolean {
    return this.child !== null;
  }
}
