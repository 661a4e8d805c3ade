// Event callbacks: executables a DBA configures per node (postgresql.biha.conf) that the controller
// runs after something happened to this node: its role changed, it became the leader through an
// election (failover) or a planned transfer (switchover), or it entered NODE_ERROR.
//
// Callbacks run after the fact and never hold anything up: fire() only puts the event in a small
// bounded queue and returns. One worker runs the queued callbacks one at a time, in order. Each run
// is started (exec.ts) without a shell, in a process group of its own, and the whole group is killed
// after biha.callbacks_timeout seconds (SIGTERM, then SIGKILL). The settings are read when a callback is
// about to run, so a change in postgresql.biha.conf applies without a restart.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from 'pino';
import type { SoftState } from '../../raft/index.js';
import { ExecError, startProgram } from '../exec.js';
import type { RunningProgram } from '../exec.js';

export const CALLBACK_EVENTS = ['role_change', 'failover', 'switchover', 'node_error'] as const;
export type CallbackEvent = (typeof CALLBACK_EVENTS)[number];

/** How a callback run ended (the `outcome` label of biha_callbacks_total). */
export type CallbackOutcome = 'ok' | 'failed' | 'timeout' | 'error' | 'dropped';

export const DEFAULT_CALLBACKS_TIMEOUT_S = 10;
/** Events waiting to run, beyond the running one; the oldest waiting event is dropped past this. */
export const DEFAULT_CALLBACK_QUEUE = 16;
/** Between SIGTERM and SIGKILL of a callback that ran past its timeout. */
export const CALLBACK_KILL_GRACE_MS = 2000;

export interface CallbackSettings {
  /** Absolute path of the executable per event; absent = none. */
  readonly commands: Partial<Record<CallbackEvent, string>>;
  readonly timeoutMs: number;
}

/** One event: what the callback gets as arguments and environment. */
export interface CallbackEventInfo {
  readonly event: CallbackEvent;
  readonly nodeId: number;
  readonly term: number;
  /** The node's role after the event: leader, follower or node_error. */
  readonly role: string;
  /** 0 = no known leader. */
  readonly leaderId: number;
  readonly pgdata: string;
  /** The last argument: the new role (role_change, failover, switchover) or the error type (node_error). */
  readonly detail: string;
}

/** biha.callback_<event> and biha.callbacks_timeout from the node's biha.* settings. */
export function callbackSettings(gucs: Readonly<Record<string, string>>): CallbackSettings {
  const commands: Partial<Record<CallbackEvent, string>> = {};
  for (const e of CALLBACK_EVENTS) {
    const v = (gucs[`biha.callback_${e}`] ?? '').trim();
    if (v !== '') commands[e] = v;
  }
  const raw = (gucs['biha.callbacks_timeout'] ?? '').trim();
  const n = Number(raw);
  const seconds = raw !== '' && Number.isFinite(n) && n > 0 ? n : DEFAULT_CALLBACKS_TIMEOUT_S;
  return { commands, timeoutMs: Math.round(seconds * 1000) };
}

/** The argument vector: <event> <node_id> <term> <detail>. */
export function callbackArgs(e: CallbackEventInfo): string[] {
  return [e.event, String(e.nodeId), String(e.term), e.detail];
}

/** The variables added to the controller's environment for a run. */
export function callbackEnv(e: CallbackEventInfo): Record<string, string> {
  return {
    BIHA_EVENT: e.event,
    BIHA_NODE_ID: String(e.nodeId),
    BIHA_TERM: String(e.term),
    BIHA_ROLE: e.role,
    BIHA_LEADER_ID: String(e.leaderId),
    BIHA_PGDATA: e.pgdata,
  };
}

export interface CallbackRunnerOptions {
  readonly log: Logger;
  /** Read when a callback is about to run. */
  readonly settings: () => Promise<CallbackSettings>;
  readonly maxQueue?: number;
  readonly killGraceMs?: number;
  /** Called once per event with how it ended (for metrics). */
  readonly onOutcome?: (event: CallbackEvent, outcome: CallbackOutcome) => void;
}

export interface CallbackResult {
  readonly outcome: Exclude<CallbackOutcome, 'dropped'>;
  readonly code: number | null;
  readonly signal: string | null;
  readonly pid: number | null;
  readonly ms: number;
}

export class CallbackRunner {
  private readonly queue: CallbackEventInfo[] = [];
  private running = false;
  private closed = false;
  private current: { pid: number; kill: () => void } | null = null;
  private idleWaiters: (() => void)[] = [];
  private readonly maxQueue: number;
  private readonly graceMs: number;

  constructor(private readonly o: CallbackRunnerOptions) {
    this.maxQueue = Math.max(1, o.maxQueue ?? DEFAULT_CALLBACK_QUEUE);
    this.graceMs = Math.max(0, o.killGraceMs ?? CALLBACK_KILL_GRACE_MS);
  }

  /** Queue an event; returns at once (never waits for a callback). */
  fire(e: CallbackEventInfo): void {
    if (this.closed) return;
    if (this.queue.length >= this.maxQueue) {
      const dropped = this.queue.shift()!;
      this.o.log.warn(
        { event: dropped.event, term: dropped.term, queued: this.queue.length + 1 },
        `callback queue full (${this.maxQueue} waiting): the oldest waiting event (${dropped.event}, term ${dropped.term}) is dropped`,
      );
      this.o.onOutcome?.(dropped.event, 'dropped');
    }
    this.queue.push(e);
    if (!this.running) {
      // Takes the event off the queue now; everything after that (reading the settings, spawning)
      // happens asynchronously.
      this.running = true;
      void this.drain();
    }
  }

  /** Events waiting (not counting the one running). */
  pending(): number {
    return this.queue.length;
  }

  /** PID of the callback running now (its process group id), or null. */
  runningPid(): number | null {
    return this.current?.pid ?? null;
  }

  /** Resolves once the queue is empty and nothing runs. */
  async idle(): Promise<void> {
    if (!this.running && this.queue.length === 0) return;
    await new Promise<void>((r) => this.idleWaiters.push(r));
  }

  /** Drop what waits and kill what runs (controller shutdown). */
  close(): void {
    this.closed = true;
    this.queue.length = 0;
    this.current?.kill();
  }

  private async drain(): Promise<void> {
    try {
      for (let e = this.queue.shift(); e !== undefined; e = this.queue.shift()) {
        try {
          await this.runOne(e);
        } catch (err) {
          this.o.log.error({ event: e.event, err: err instanceof Error ? err.message : String(err) }, 'callback could not run');
          this.o.onOutcome?.(e.event, 'error');
        }
      }
    } finally {
      this.running = false;
      const w = this.idleWaiters;
      this.idleWaiters = [];
      for (const r of w) r();
    }
  }

  private async runOne(e: CallbackEventInfo): Promise<void> {
    const settings = await this.o.settings();
    const file = settings.commands[e.event];
    if (!file || this.closed) return;
    const r = await this.exec(file, e, settings.timeoutMs);
    this.o.onOutcome?.(e.event, r.outcome);
  }

  /** Runs one callback to its end (or kill). Exposed for tests. */
  async exec(file: string, e: CallbackEventInfo, timeoutMs: number): Promise<CallbackResult> {
    const log = this.o.log;
    const started = performance.now();
    const ms = (): number => Math.round(performance.now() - started);
    if (!path.isAbsolute(file)) {
      log.warn({ event: e.event, path: file }, `biha.callback_${e.event} must be an absolute path; not run`);
      return { outcome: 'error', code: null, signal: null, pid: null, ms: 0 };
    }
    try {
      fs.accessSync(file, fs.constants.X_OK);
    } catch {
      log.warn({ event: e.event, path: file }, `biha.callback_${e.event}: ${file} is not an executable file this user may run; not run`);
      return { outcome: 'error', code: null, signal: null, pid: null, ms: 0 };
    }
    const args = callbackArgs(e);
    let run: RunningProgram;
    try {
      run = startProgram(file, args, {
        processGroup: true,
        noOutput: true,
        cwd: e.pgdata,
        env: { ...process.env, ...callbackEnv(e) },
        timeoutMs,
        killGraceMs: this.graceMs,
      });
    } catch (err) {
      log.warn({ event: e.event, path: file, err: err instanceof Error ? err.message : String(err) }, 'callback could not be started');
      return { outcome: 'error', code: null, signal: null, pid: null, ms: ms() };
    }
    const pid = run.pid;
    if (pid !== null) {
      this.current = { pid, kill: () => run.stop() };
      log.info({ event: e.event, path: file, args, pid }, `callback ${e.event} started`);
    }
    // The timeout signals the whole process group (SIGTERM, then SIGKILL): children the callback
    // left behind in its group go too.
    const warnTimer = setTimeout(
      () => log.warn({ event: e.event, path: file, pid, timeoutMs }, `callback ${e.event} ran longer than biha.callbacks_timeout (${timeoutMs / 1000} s): killing its process group`),
      timeoutMs,
    );
    let r: CallbackResult;
    try {
      await run.done;
      r = { outcome: 'ok', code: 0, signal: null, pid, ms: ms() };
    } catch (err) {
      if (!(err instanceof ExecError) || err.failure === 'spawn') {
        log.warn({ event: e.event, path: file, err: err instanceof Error ? err.message : String(err) }, 'callback could not be started');
        r = { outcome: 'error', code: null, signal: null, pid, ms: ms() };
      } else {
        r = { outcome: err.failure === 'timeout' ? 'timeout' : 'failed', code: err.exitCode, signal: err.signal, pid, ms: ms() };
      }
    } finally {
      clearTimeout(warnTimer);
      this.current = null;
    }
    if (r.outcome === 'ok') log.info({ event: e.event, pid, code: r.code, ms: r.ms }, `callback ${e.event} exited with code 0`);
    else if (r.outcome === 'failed')
      log.warn({ event: e.event, pid, code: r.code, signal: r.signal, ms: r.ms }, `callback ${e.event} failed (${r.code !== null ? `exit code ${r.code}` : `signal ${r.signal}`})`);
    else if (r.outcome === 'timeout') log.warn({ event: e.event, pid, signal: r.signal, ms: r.ms }, `callback ${e.event} was killed after the timeout`);
    return r;
  }
}

/** The role a callback is told about. Campaigning nodes count as followers. */
export type CallbackRole = 'leader' | 'follower' | 'node_error';

export function callbackRole(s: Pick<SoftState, 'role' | 'state'>): CallbackRole {
  if (s.state === 'NODE_ERROR' || s.state === 'NODE_ERROR_VOTING') return 'node_error';
  return s.role === 'leader' ? 'leader' : 'follower';
}

/**
 * Turns what the controller observes into callback events.
 *
 * failover vs switchover: a planned transfer (biha.set_leader, the failback window) ends with the
 * old leader sending TimeoutNow in its term T to the target, which then campaigns in term T + 1.
 * The controller notes the term of every TimeoutNow it receives; a node that becomes the leader in
 * exactly the term that follows one was elected through the transfer (switchover). Any other
 * election (the leader was lost, or the cluster formed) is a failover.
 */
export class CallbackEvents {
  private lastRole: CallbackRole | null = null;
  private transferTerm = -1;

  constructor(
    private readonly runner: CallbackRunner,
    private readonly nodeId: number,
    private readonly pgdata: string,
  ) {}

  /** The leader in `term` asked this node to campaign now (raft TimeoutNow). */
  noteTimeoutNow(term: number): void {
    this.transferTerm = term + 1;
  }

  /** A new soft state of this node. */
  onSoft(prev: SoftState | null, s: SoftState): void {
    const role = callbackRole(s);
    const initialWait = this.lastRole === null && role === 'follower' && s.leaderId === 0;
    if (role !== this.lastRole && !initialWait) {
      this.lastRole = role;
      this.fire('role_change', s, role);
    }
    if (s.role === 'leader' && prev?.role !== 'leader') this.fire(s.term === this.transferTerm ? 'switchover' : 'failover', s, 'leader');
  }

  /** This node entered NODE_ERROR (`type` as biha.error_details() shows it). */
  nodeError(s: SoftState, type: string): void {
    this.fire('node_error', s, type);
  }

  private fire(event: CallbackEvent, s: SoftState, detail: string): void {
    this.runner.fire({ event, nodeId: this.nodeId, term: s.term, role: callbackRole(s), leaderId: s.leaderId, pgdata: this.pgdata, detail });
  }
}
