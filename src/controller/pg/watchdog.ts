// The watchdog: a small process that outlives the controller and fences PostgreSQL when the leader's
// lease runs out without the controller renewing it (controller killed, paused by SIGSTOP, or stuck).
// Two implementations speak this protocol: bin/biha-watchdog (Perl, a few MB; the one the
// controller starts when Perl with Time::HiRes is there) and runWatchdog below (`bihactl watchdog`,
// a Node process, the fallback); watchdogcmd.ts chooses. A change here is a change to both.
//
// Protocol (one line per message; the controller writes on the watchdog's stdin, the watchdog
// answers on its stdout). Deadlines are absolute, in milliseconds on the host's monotonic clock
// (`monoMs()`, CLOCK_MONOTONIC through process.hrtime, the same in every process of the host), so a
// line that waits in the pipe does not push the deadline later.
//   → arm <seq> <deadline>    PostgreSQL may stay writable until <deadline>; fence when it passes
//                             (at once if it has passed already)
//   → disarm <seq>            PostgreSQL is not writable; nothing to guard
//   ← ready <pid> <now>       once, after pg_biha/watchdog.pid is written; <now> lets the client
//                             check that both processes read the same clock
//   ← ok <seq>                the command <seq> (and every earlier one) is in force
//   ← fenced <seq> <pid|->    the deadline set by <seq> passed: SIGQUIT went to the postmaster
//                             <pid> (PostgreSQL's immediate shutdown: no further commit is
//                             acknowledged); the watchdog is disarmed again
// <seq> increases with every command of one controller. When stdin closes (the controller died or
// detached) nobody can renew the lease any more: disarmed, the watchdog exits at once; armed, it
// fences at the deadline and exits. A bare SIGTERM does not end an armed watchdog.
//
// Two watchdogs on one directory: the client starts a new watchdog only after the previous one
// exited, so two run at once only when a controller detached (left PostgreSQL running as a primary
// and exited) and a new controller started before the old lease ended. The old watchdog then has
// no controller: it exits at once if disarmed, or keeps guarding the lease of the old controller,
// which is still needed (the new controller finds PostgreSQL running as a primary and keeps it until
// its node controller fences it), fences at that deadline and exits. It cannot hit a primary of a
// later term: no node is elected before that lease ends (docs/raft.md, "Lease"); at worst it stops
// a standby the new controller restarted, which is started again. Each one removes
// pg_biha/watchdog.pid only while it names itself, so the file names the newest one.
//
// The controller's side is WatchdogClient. Rules for its owner (the raft driver):
// - Until the first onHealth(true) the node may not lead: no watchdog is known to run.
// - Before pg_promote: `await arm(leaseEnd, now)` must resolve true (the watchdog holds that
//   deadline); false means none runs, it is still starting, or it did not answer within
//   ackTimeoutMs: do not promote.
// - While a writable leader: renew(leaseEnd, now) on every tick (fire and forget).
// - Disarm only once PostgreSQL is no longer a primary (`await disarm()`, or `void disarm()` on
//   ticks: a no-op while nothing changed).
// - onHealth(false) (the watchdog exited or stopped answering; the client restarts it with a
//   bounded backoff): the node may not lead, at once (raft setCanLead(false)). A writable leader
//   steps down and its PostgreSQL is fenced by the normal path. There is no grace period for the
//   restart (a few hundred ms): a controller that died in that window would leave a primary that
//   nobody fences and nobody restarts a watchdog for, while the other nodes elect once the lease
//   ends.
// - onHealth(true) comes only after the restarted watchdog confirmed the client's current state
//   (the last deadline asked for, even one that has passed — it then fences at once — or
//   disarmed): the node may lead again (setCanLead(true)).
// - Shutdown: stop() when PostgreSQL is stopped or not a primary (the watchdog exits); detach()
//   when PostgreSQL stays a running primary (the watchdog keeps its deadline, then fences and
//   exits). No events after either.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import type { Logger } from 'pino';
import { watchdogCommand } from './watchdogcmd.js';
import type { WatchdogCommand, WatchdogImpl } from './watchdogcmd.js';

/** Milliseconds on the host's monotonic clock, the same in every process (CLOCK_MONOTONIC). */
export function monoMs(): number {
  return Number(process.hrtime.bigint() / 1000n) / 1000;
}

/** Reads a PID from the first line of a file (null when absent or not a PID). */
function pidFromFile(file: string): number | null {
  try {
    const pid = Number(fs.readFileSync(file, 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

/** Whether `pid` is a running watchdog (on Linux by its command line; elsewhere any running process). */
function watchdogRunning(pid: number): boolean {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('watchdog');
  } catch {
    if (fs.existsSync('/proc/self')) return false;
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
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
  const earlier = pidFromFile(pidFile);
  if (earlier !== null && earlier !== process.pid && watchdogRunning(earlier))
    log(pgdata, `an earlier watchdog (PID ${earlier}) is still running without its controller: it keeps that controller's lease deadline, if any, and exits after it`);
  fs.writeFileSync(pidFile, `${process.pid}\n`, { mode: 0o600 });
  let deadline: number | null = null; // monoMs()
  let lastSeq = 0;
  let timer: NodeJS.Timeout | null = null;
  let controllerGone = false;
  let finish!: (code: number) => void;
  const done = new Promise<number>((r) => (finish = r));
  // The controller may be gone (a closed pipe): answers are best effort, the fence is not.
  process.stdout.on('error', () => undefined);
  const say = (line: string): void => {
    if (!controllerGone && process.stdout.writable) process.stdout.write(line + '\n');
  };
  const cleanup = (): void => {
    try {
      if (fs.readFileSync(pidFile, 'utf8').trim() === String(process.pid)) fs.rmSync(pidFile, { force: true });
    } catch {
      // gone already
    }
  };
  const exit = (): void => {
    if (timer) clearTimeout(timer);
    timer = null;
    cleanup();
    process.stdin.destroy();
    finish(0);
  };
  const fence = (): void => {
    timer = null;
    deadline = null;
    const pid = pidFromFile(path.join(pgdata, 'postmaster.pid'));
    let fenced = false;
    if (pid !== null) {
      try {
        process.kill(pid, 'SIGQUIT');
        fenced = true;
        log(pgdata, `lease expired without renewal: PostgreSQL (PID ${pid}) fenced with an immediate shutdown`);
      } catch {
        // not running
      }
    }
    say(`fenced ${lastSeq} ${fenced ? pid : '-'}`);
    if (controllerGone) exit();
  };
  const schedule = (): void => {
    if (timer) clearTimeout(timer);
    timer = null;
    if (deadline === null) {
      if (controllerGone) exit();
      return;
    }
    const left = deadline - monoMs();
    if (left <= 0) fence();
    else timer = setTimeout(fence, Math.ceil(left));
  };
  let buf = '';
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (chunk: string) => {
    buf += chunk;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      const arm = /^arm (\d+) (\d+(?:\.\d+)?)$/.exec(line);
      const disarm = /^disarm (\d+)$/.exec(line);
      if (arm) {
        lastSeq = Number(arm[1]);
        deadline = Number(arm[2]);
      } else if (disarm) {
        lastSeq = Number(disarm[1]);
        deadline = null;
      } else {
        log(pgdata, `ignored an unknown command from the controller: ${JSON.stringify(line.slice(0, 80))}`);
        continue;
      }
      say(`ok ${lastSeq}`);
    }
    schedule();
  });
  const gone = (): void => {
    controllerGone = true;
    schedule();
  };
  process.stdin.on('end', gone);
  process.stdin.on('error', gone);
  process.on('SIGTERM', () => {
    // A clean controller stop disarms first; a bare SIGTERM must not leave a lease unguarded.
    if (deadline === null) exit();
  });
  // Nothing to reload; a SIGHUP (a reload or logrotate aimed at the controller's group) must not end it.
  process.on('SIGHUP', () => undefined);
  say(`ready ${process.pid} ${monoMs()}`);
  return await done;
}

export interface WatchdogOptions {
  /** Called on every change: true once a watchdog runs and holds the client's current state, false when it exited or stopped answering. */
  onHealth?: (alive: boolean) => void;
  /** How long a confirmed arm/disarm waits for the answer; a watchdog that does not answer in time is replaced. Default 1000. */
  ackTimeoutMs?: number;
  /** Delay before restarting a watchdog that exited, doubled on every failure up to restartMaxMs. Defaults 100 and 5000. */
  restartMinMs?: number;
  restartMaxMs?: number;
  /** Which watchdog to run (watchdogcmd.ts): 'auto' (default) is the Perl one when Perl can run it, else the Node one. */
  impl?: WatchdogImpl | 'auto';
}

/** A watchdog that stays up this long resets the restart backoff. */
const STABLE_MS = 10_000;
/** A watchdog that has not said `ready` this long after its start is replaced (node starts slowly on a loaded host). */
const START_TIMEOUT_MS = 10_000;
/** A missing answer is looked at again this much later (after an I/O turn of this process) before it condemns the watchdog. */
const RECHECK_MS = 50;

interface Live {
  proc: ChildProcess;
  /** `ready` received and the clock checked. */
  ready: boolean;
  /** The seq that brings a fresh watchdog to the client's state; health is up once it is answered. */
  syncSeq: number | null;
  /** Bounds the start (until `ready`), then the answer to the first command. */
  syncTimer: NodeJS.Timeout | null;
  upSince: number | null;
  killed: boolean;
  buf: string;
}

/**
 * Controller side: starts the watchdog, keeps it at the owner's deadline, restarts it when it dies
 * and reports whether one is running (rules for the owner in the header of this file).
 */
export class WatchdogClient {
  private child: Live | null = null;
  /** The owner's latest wish: a deadline on monoMs(), or null (disarmed). A restarted watchdog is brought to it. */
  private want: number | null = null;
  private seq = 0;
  private acked = 0;
  /** Send time (monoMs) of each line not yet answered, oldest first. */
  private readonly sentAt = new Map<number, number>();
  private readonly waiters = new Map<number, (ok: boolean) => void>();
  private lastSent = 0;
  private healthy = false;
  private suspecting = false;
  private closed = false;
  private failures = 0;
  private restartTimer: NodeJS.Timeout | null = null;
  private readonly ackTimeoutMs: number;
  private readonly restartMinMs: number;
  private readonly restartMaxMs: number;
  private command: WatchdogCommand | null = null;

  constructor(
    private readonly pgdata: string,
    /** bin/bihactl.js of this installation; the Perl watchdog is bin/biha-watchdog beside it. */
    private readonly bin: string,
    private readonly log: Logger,
    private readonly opts: WatchdogOptions = {},
  ) {
    this.ackTimeoutMs = opts.ackTimeoutMs ?? 1000;
    this.restartMinMs = opts.restartMinMs ?? 100;
    this.restartMaxMs = Math.max(this.restartMinMs, opts.restartMaxMs ?? 5000);
  }

  start(): void {
    if (this.closed || this.child) return;
    // A direct spawn, not exec.ts's runner: the watchdog talks with this client over its whole life
    // and must outlive the controller (detached, never killed when the controller exits).
    const cmd = this.chooseCommand();
    const proc = spawn(cmd.file, cmd.args, {
      detached: true,
      stdio: ['pipe', 'pipe', 'ignore'],
    });
    proc.unref();
    const live: Live = { proc, ready: false, syncSeq: null, syncTimer: null, upSince: null, killed: false, buf: '' };
    this.child = live;
    live.syncTimer = setTimeout(() => this.suspect(live, () => live.ready, `not ready within ${START_TIMEOUT_MS} ms`), START_TIMEOUT_MS);
    proc.stdin?.on('error', () => undefined);
    proc.stdout?.setEncoding('utf8');
    proc.stdout?.on('error', () => undefined);
    proc.stdout?.on('data', (chunk: string) => this.onOutput(live, chunk));
    let ended = false;
    const onEnd = (code: number | null, sig: NodeJS.Signals | null, err?: Error): void => {
      if (ended) return;
      ended = true;
      this.onExit(live, code, sig, err);
    };
    proc.once('exit', (code, sig) => onEnd(code, sig));
    proc.once('error', (err) => onEnd(null, null, err));
    this.log.info({ pid: proc.pid, impl: cmd.impl }, 'watchdog started');
  }

  /** The watchdog's command, chosen once (the first start), and logged. */
  private chooseCommand(): WatchdogCommand {
    if (this.command) return this.command;
    const cmd = watchdogCommand(this.bin, this.pgdata, this.opts.impl ?? 'auto');
    this.command = cmd;
    if (cmd.impl === 'perl') this.log.info({ perl: cmd.file, script: cmd.args[0] }, 'the lease watchdog runs as a Perl script');
    else if ((this.opts.impl ?? 'auto') === 'auto') this.log.warn('Perl with Time::HiRes is not available: the lease watchdog runs as a Node process (bihactl watchdog, about 60 MB more memory); install perl to use bin/biha-watchdog');
    else this.log.info('the lease watchdog runs as a Node process (bihactl watchdog)');
    return cmd;
  }

  /** A watchdog runs and holds the client's current state (the owner may lead). */
  alive(): boolean {
    return this.healthy;
  }

  /** PID of the current watchdog process, if one runs. */
  pid(): number | null {
    return this.child?.proc.pid ?? null;
  }

  /**
   * PostgreSQL may stay writable until `until` (the caller's clock, read as `now`). Resolves true
   * once the watchdog holds that deadline; false at once when no watchdog runs or it is still
   * starting, or after ackTimeoutMs without an answer (that watchdog is then replaced). Either way
   * the deadline is the client's state from now on: a watchdog that starts later is armed with it.
   */
  async arm(until: number, now: number): Promise<boolean> {
    this.want = this.toMono(until, now);
    return await this.confirm(this.send());
  }

  /** arm() without waiting, for the renewal on every tick: sends only when the deadline moved (> 5 ms) or every 200 ms. */
  renew(until: number, now: number): void {
    const want = this.toMono(until, now);
    const t = monoMs();
    if (this.want !== null && Math.abs(want - this.want) <= 5 && t - this.lastSent <= 200) return;
    this.want = want;
    this.send();
    this.checkAnswers(t);
  }

  /** Nothing to guard. Resolves true once the watchdog confirmed (at once when it already did). */
  async disarm(): Promise<boolean> {
    if (this.want === null && this.healthy && this.acked === this.seq) return true;
    this.want = null;
    return await this.confirm(this.send());
  }

  /** Clean stop: disarm and close its input; it exits. */
  stop(): void {
    this.want = null;
    this.send(true);
    this.close();
  }

  /**
   * Leave the watchdog running with the current deadline (the controller exits, PostgreSQL keeps
   * running). Without a usable watchdog (one is being restarted or replaced) one is started for
   * it: it reads the deadline from its input once it runs.
   */
  detach(): void {
    if (!this.closed && this.want !== null && (!this.child || this.child.killed)) {
      this.child = null; // a silent one, already killed, is left to its exit
      this.start();
    }
    this.send(true);
    this.close();
  }

  private close(): void {
    this.closed = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = null;
    const live = this.child;
    this.child = null;
    this.healthy = false;
    if (live) {
      if (live.syncTimer) clearTimeout(live.syncTimer);
      live.proc.stdin?.end();
      live.proc.stdout?.destroy();
    }
    this.settleAll(false);
  }

  private toMono(until: number, now: number): number {
    return monoMs() + (until - now);
  }

  /**
   * Sends the current wish; returns its seq, or null when no watchdog is ready to take it (none
   * runs, or it is still starting: then the wish goes with the first command after `ready`).
   * `early` writes to a starting watchdog too (it reads the line once it runs): for stop and detach,
   * which wait for no answer.
   */
  private send(early = false): number | null {
    const s = this.child?.proc.stdin;
    if (!this.child || (!this.child.ready && !early) || this.child.killed || !s || s.destroyed || !s.writable) return null;
    const seq = ++this.seq;
    s.write(this.want === null ? `disarm ${seq}\n` : `arm ${seq} ${this.want.toFixed(3)}\n`);
    this.lastSent = monoMs();
    this.sentAt.set(seq, this.lastSent);
    return seq;
  }

  private async confirm(seq: number | null): Promise<boolean> {
    const live = this.child;
    if (seq === null || !live) return false;
    if (this.acked >= seq) return true;
    return await new Promise<boolean>((resolve) => {
      const timer = setTimeout(
        () =>
          this.suspect(live, () => !this.waiters.has(seq), `no answer to command ${seq} within ${this.ackTimeoutMs} ms`, () => {
            this.waiters.get(seq)?.(false);
            this.waiters.delete(seq);
          }),
        this.ackTimeoutMs,
      );
      this.waiters.set(seq, (ok) => {
        clearTimeout(timer);
        resolve(ok);
      });
    });
  }

  /** Renewals are not awaited: a line still unanswered after ackTimeoutMs means the watchdog is stuck. */
  private checkAnswers(t: number): void {
    const live = this.child;
    const oldest = this.sentAt.entries().next();
    if (!live || oldest.done || this.suspecting || t - oldest.value[1] <= this.ackTimeoutMs) return;
    const seq = oldest.value[0];
    this.suspecting = true;
    this.suspect(live, () => {
      this.suspecting = false;
      return !this.sentAt.has(seq);
    }, `no answer to command ${seq} within ${this.ackTimeoutMs} ms`);
  }

  /**
   * A missing answer condemns the watchdog only if it is still missing one I/O turn later: after a
   * stall of this process its timers run before it reads the answers already waiting in the pipe.
   */
  private suspect(live: Live, answered: () => boolean, why: string, condemned?: () => void): void {
    setTimeout(() => {
      if (live !== this.child || answered()) return;
      condemned?.();
      this.unresponsive(live, why);
    }, RECHECK_MS);
  }

  private settleAll(ok: boolean, upTo = Infinity): void {
    for (const [seq, w] of this.waiters) {
      if (seq > upTo) continue;
      this.waiters.delete(seq);
      w(ok);
    }
  }

  private setHealth(alive: boolean): void {
    if (this.healthy === alive || this.closed) return;
    this.healthy = alive;
    if (alive) this.log.info({ pid: this.pid() }, 'the watchdog is running and holds the current lease state');
    else this.log.warn('no watchdog holds the lease state: this node must not lead');
    try {
      this.opts.onHealth?.(alive);
    } catch (e) {
      this.log.error({ err: e instanceof Error ? e.message : String(e) }, 'the watchdog health callback failed');
    }
  }

  /** A watchdog that does not answer cannot be trusted to fence: health down, SIGKILL, and the exit restarts it. */
  private unresponsive(live: Live, why: string): void {
    if (live !== this.child || live.killed) return;
    live.killed = true;
    this.log.warn({ pid: live.proc.pid, why }, 'the watchdog does not answer; replacing it');
    this.setHealth(false);
    try {
      live.proc.kill('SIGKILL');
    } catch {
      // gone already: the exit event follows
    }
  }

  private onOutput(live: Live, chunk: string): void {
    if (live !== this.child) return;
    live.buf += chunk;
    let nl: number;
    while ((nl = live.buf.indexOf('\n')) >= 0) {
      const line = live.buf.slice(0, nl).trim();
      live.buf = live.buf.slice(nl + 1);
      this.onLine(live, line);
      if (live !== this.child) return;
    }
  }

  private onLine(live: Live, line: string): void {
    const words = line.split(' ');
    const n = Number(words[1]);
    switch (words[0]) {
      case 'ready': {
        // Deadlines are absolute on the host's monotonic clock: refuse a watchdog that reads another one.
        const skew = monoMs() - Number(words[2]);
        if (!Number.isFinite(skew) || skew < -5 || skew > 60_000) {
          this.log.error({ skew }, 'the watchdog reads a different monotonic clock; it cannot guard deadlines');
          this.unresponsive(live, 'clock mismatch');
          return;
        }
        live.ready = true;
        // Bring it to the owner's current state (the last deadline, or disarmed) before health is up.
        live.syncSeq = this.send();
        if (live.syncTimer) clearTimeout(live.syncTimer);
        live.syncTimer = setTimeout(() => this.suspect(live, () => live.syncSeq === null, 'no answer to the first command'), this.ackTimeoutMs);
        return;
      }
      case 'ok': {
        if (!Number.isInteger(n)) return;
        this.acked = Math.max(this.acked, n);
        for (const seq of this.sentAt.keys()) {
          if (seq > n) break;
          this.sentAt.delete(seq);
        }
        this.settleAll(true, n);
        if (live.syncSeq !== null && n >= live.syncSeq) {
          live.syncSeq = null;
          if (live.syncTimer) clearTimeout(live.syncTimer);
          live.syncTimer = null;
          live.upSince = monoMs();
          this.setHealth(true);
        }
        return;
      }
      case 'fenced': {
        this.log.warn({ postmaster: words[2] }, 'the watchdog fenced PostgreSQL: the lease ended without renewal');
        // It is disarmed now; unless a newer command is on its way, so is the client's state.
        if (n === this.seq) this.want = null;
        return;
      }
      default:
        this.log.warn({ line: line.slice(0, 80) }, 'unexpected output from the watchdog');
    }
  }

  private onExit(live: Live, code: number | null, sig: NodeJS.Signals | null, err?: Error): void {
    if (live.syncTimer) clearTimeout(live.syncTimer);
    if (live !== this.child || this.closed) return;
    this.child = null;
    this.sentAt.clear();
    this.settleAll(false);
    this.log.warn({ pid: live.proc.pid, code, sig, err: err?.message, armed: this.want !== null }, 'the watchdog exited');
    this.setHealth(false);
    if (live.upSince !== null && monoMs() - live.upSince >= STABLE_MS) this.failures = 0;
    const delay = Math.min(this.restartMaxMs, this.restartMinMs * 2 ** Math.min(this.failures, 20));
    this.failures++;
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      this.start();
    }, delay);
    this.restartTimer.unref();
  }
}
