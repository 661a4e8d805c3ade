// The one module that runs PostgreSQL programs (initdb, pg_ctl, pg_basebackup, pg_rewind,
// pg_controldata, pg_waldump, postgres --single).
//
// Every call goes through runTool(): it finds the binary, runs it (through exec.ts) with LC_ALL=C as
// the data directory's owner (never as root), captures stderr and turns a failure into a PgToolError
// that carries the command line and the last lines of output.
//
// Measured behaviour this module honours (see POSTGRES-NOTES.md B4, D, E):
//  - pg_ctl -w polls only every 100 ms, so start/stop use -W and poll postmaster.pid / /proc here.
//  - a postmaster killed with kill -9 can stay a zombie for a second or more; its lock file then
//    still blocks a new postmaster, so "gone" means the /proc entry is gone, not kill(pid, 0) failing.
//  - pg_rewind refuses a crashed target; singleUserRecovery() brings it to a clean shutdown.
//  - pg_basebackup progress lines end in \r or \n depending on the output: split on both.

import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { BihaError } from '../errors.js';
import { ExecError, lastLines, programOutput, runProgram } from '../exec.js';
import { exists, resolveBindir } from './bindir.js';
import { layoutOf, recordedConfigDir } from './layout.js';
import { formatLsn, parseLsn } from './lsn.js';
import { parseBool, readDbaSettings } from './settings.js';

// ---------------------------------------------------------------------------------------------
// Errors and environment

export class PgToolError extends BihaError {
  readonly command: string;
  readonly exitCode: number | null;
  readonly stderr: string;

  constructor(
    code: string,
    message: string,
    o: { command: string; exitCode: number | null; stderr: string; cause?: unknown; hint?: string },
  ) {
    const opts: { cause?: unknown; hint?: string } = {};
    if (o.cause !== undefined) opts.cause = o.cause;
    if (o.hint !== undefined) opts.hint = o.hint;
    super(code, message, opts);
    this.name = 'PgToolError';
    this.command = o.command;
    this.exitCode = o.exitCode;
    this.stderr = o.stderr;
  }
}

export interface RunAs {
  uid: number;
  gid: number;
  user: string;
  home: string;
}

export interface PgEnv {
  bindir: string;
  runAs: RunAs | null;
  /** OS user owning the cluster; also the name of its bootstrap superuser. */
  user: string;
  /**
   * The postgresql.conf PostgreSQL reads when it is outside the data directory (Debian's
   * /etc/postgresql/N/NAME): the server is started with config_file set to it.
   */
  configFile?: string;
}

export interface PasswdEntry {
  user: string;
  uid: number;
  gid: number;
  home: string;
}

export function parsePasswdLine(line: string): PasswdEntry | null {
  const f = line.split(':');
  if (f.length < 7 || f[0] === undefined) return null;
  const uid = Number(f[2]);
  const gid = Number(f[3]);
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) return null;
  return { user: f[0], uid, gid, home: f[5] ?? '/' };
}

/** The passwd entry of a uid: /etc/passwd first, then NSS through getent. */
export async function lookupUid(uid: number): Promise<PasswdEntry | null> {
  try {
    const text = await fsp.readFile('/etc/passwd', 'utf8');
    for (const line of text.split('\n')) {
      const e = parsePasswdLine(line);
      if (e && e.uid === uid) return e;
    }
  } catch {
    // fall through to getent
  }
  const out = await programOutput('getent', ['passwd', String(uid)]);
  return out ? parsePasswdLine(out.trim()) : null;
}

function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/**
 * The programs and OS user for pgdata: the bin directory follows the data directory's PG_VERSION
 * (see bindir.ts), or clusterMajor while pgdata has none yet; as root, the tools run as the owner of pgdata (or of its parent if absent).
 * configDir: the directory of the postgresql.conf PostgreSQL reads (null: the data directory's);
 * by default the one the node's identity records.
 */
export async function resolvePgEnv(pgdata: string, o: { clusterMajor?: number; configDir?: string | null } = {}): Promise<PgEnv> {
  const { bindir } = await resolveBindir(pgdata, o.clusterMajor !== undefined ? { clusterMajor: o.clusterMajor } : {});
  const layout = layoutOf(pgdata, o.configDir === undefined ? await recordedConfigDir(pgdata) : o.configDir);
  const conf = layout.external ? { configFile: layout.configFile } : {};
  if (!isRoot()) {
    return { bindir, runAs: null, user: os.userInfo().username, ...conf };
  }
  const abs = path.resolve(pgdata);
  let owned = abs;
  let st;
  try {
    st = await fsp.stat(abs);
  } catch {
    owned = path.dirname(abs);
    try {
      st = await fsp.stat(owned);
    } catch (e) {
      throw new BihaError('pgdata_parent_missing', `neither ${abs} nor its parent directory exists`, {
        cause: e,
        hint: `create ${owned} owned by the postgres user`,
      });
    }
  }
  if (st.uid === 0) {
    throw new BihaError('root_owner', `${owned} is owned by root; PostgreSQL must not run as root`, {
      hint: `chown postgres:postgres ${owned} and run again`,
    });
  }
  const pw = await lookupUid(st.uid);
  if (!pw) {
    throw new BihaError('unknown_owner', `${owned} is owned by uid ${st.uid}, which has no user name`, {
      hint: `chown ${owned} to the postgres user`,
    });
  }
  return { bindir, runAs: { uid: pw.uid, gid: pw.gid, user: pw.user, home: pw.home }, user: pw.user, ...conf };
}

// ---------------------------------------------------------------------------------------------
// Running a tool

export interface RunToolOptions {
  input?: string;
  timeoutMs?: number;
  onStderrLine?: (line: string) => void;
  /** Called for every stdout line; with discardStdout the output is not kept in memory. */
  onStdoutLine?: (line: string) => void;
  discardStdout?: boolean;
  extraEnv?: Record<string, string>;
  cwd?: string;
}

function childEnv(env: PgEnv, extra: Record<string, string> | undefined): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    // Inherited libpq / server variables would silently redirect the tools.
    if (k.startsWith('PG') || k === 'LANG' || k.startsWith('LC_')) continue;
    out[k] = v;
  }
  out.LC_ALL = 'C';
  out.LANG = 'C';
  if (env.runAs) {
    out.HOME = env.runAs.home;
    out.USER = env.runAs.user;
    out.LOGNAME = env.runAs.user;
  }
  return { ...out, ...extra };
}

export function toolPath(env: PgEnv, tool: string): string {
  return tool.includes('/') ? tool : path.join(env.bindir, tool);
}

export async function runTool(
  env: PgEnv,
  tool: string,
  args: string[],
  opts: RunToolOptions = {},
): Promise<{ stdout: string; stderr: string }> {
  const file = toolPath(env, tool);
  try {
    return await runProgram(file, args, {
      cwd: opts.cwd ?? '/',
      env: childEnv(env, opts.extraEnv),
      runAs: env.runAs,
      keepStdout: !opts.discardStdout,
      ...(opts.input !== undefined ? { input: opts.input } : {}),
      ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
      ...(opts.onStdoutLine ? { onStdoutLine: opts.onStdoutLine } : {}),
      ...(opts.onStderrLine ? { onStderrLine: opts.onStderrLine } : {}),
    });
  } catch (e) {
    if (!(e instanceof ExecError)) throw e;
    const o = { command: e.command, exitCode: e.exitCode, stderr: e.stderr };
    if (e.failure === 'spawn')
      throw new PgToolError('pg_tool_spawn', e.message, { ...o, cause: e.cause, hint: 'check that PostgreSQL is installed and BIHA_PG_BINDIR is right' });
    if (e.failure === 'timeout') throw new PgToolError('pg_tool_timeout', e.message, o);
    throw new PgToolError('pg_tool_failed', e.message, o);
  }
}

export async function chownToRunAs(env: PgEnv, p: string): Promise<void> {
  if (!env.runAs || !isRoot()) return;
  const { uid, gid } = env.runAs;
  const walk = async (q: string): Promise<void> => {
    await fsp.lchown(q, uid, gid);
    const st = await fsp.lstat(q);
    if (st.isDirectory()) {
      for (const ent of await fsp.readdir(q)) await walk(path.join(q, ent));
    }
  };
  await walk(p);
}

// ---------------------------------------------------------------------------------------------
// Processes

export type ProcState = 'alive' | 'zombie' | 'gone';

/** State of a process from /proc/<pid>/stat ('Z' and 'X' count as zombie). */
export async function procState(pid: number): Promise<ProcState> {
  if (!Number.isInteger(pid) || pid <= 0) return 'gone';
  try {
    const stat = await fsp.readFile(`/proc/${pid}/stat`, 'utf8');
    const st = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return st === 'Z' || st === 'X' ? 'zombie' : 'alive';
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' && (await exists('/proc/self/stat'))) return 'gone';
    // No /proc: fall back to signal 0 (cannot tell zombies apart).
    try {
      process.kill(pid, 0);
      return 'alive';
    } catch (k) {
      return (k as NodeJS.ErrnoException).code === 'EPERM' ? 'alive' : 'gone';
    }
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Wait until the process is really gone (a zombie is not gone: its lock file still blocks). */
export async function waitPidGone(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; ; i++) {
    if ((await procState(pid)) === 'gone') return true;
    if (Date.now() >= deadline) return false;
    await sleep(i < 200 ? 2 : 10);
  }
}

export interface PostmasterPidFile {
  pid: number;
  datadir: string;
  port: number | null;
  socketDir: string | null;
  status: string | null;
}

export async function readPostmasterPidFile(pgdata: string): Promise<PostmasterPidFile | null> {
  let text: string;
  try {
    text = await fsp.readFile(path.join(pgdata, 'postmaster.pid'), 'utf8');
  } catch {
    return null;
  }
  const lines = text.split('\n');
  const pid = Number((lines[0] ?? '').trim());
  if (!Number.isInteger(pid) || pid <= 0) return null;
  const port = Number((lines[3] ?? '').trim());
  return {
    pid,
    datadir: (lines[1] ?? '').trim(),
    port: Number.isInteger(port) && port > 0 ? port : null,
    socketDir: (lines[4] ?? '').trim() || null,
    status: (lines[7] ?? '').trim() || null,
  };
}

async function isPostgresProcess(pid: number): Promise<boolean> {
  try {
    const comm = (await fsp.readFile(`/proc/${pid}/comm`, 'utf8')).trim();
    return comm === 'postgres' || comm === 'postmaster';
  } catch {
    return (await procState(pid)) === 'alive';
  }
}

/** PID of the postmaster of pgdata, only if it is alive (not a zombie) and is a postgres process. */
export async function postmasterPid(pgdata: string): Promise<number | null> {
  const pf = await readPostmasterPidFile(pgdata);
  if (!pf) return null;
  if ((await procState(pf.pid)) !== 'alive') return null;
  return (await isPostgresProcess(pf.pid)) ? pf.pid : null;
}

/** If postmaster.pid names a zombie postgres, wait until it has been reaped. */
async function waitZombieGone(pgdata: string, timeoutMs: number): Promise<void> {
  const pf = await readPostmasterPidFile(pgdata);
  if (!pf || (await procState(pf.pid)) !== 'zombie') return;
  if (!(await waitPidGone(pf.pid, timeoutMs))) {
    throw new BihaError('pg_zombie', `the old postmaster (PID ${pf.pid}) of ${pgdata} is still a zombie after ${timeoutMs} ms`, {
      hint: 'its parent process does not reap it; restart that parent or the machine',
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Cluster life cycle

/** initdb with peer (local) / scram-sha-256 (host) authentication; the superuser is the OS owner. */
export async function initdb(env: PgEnv, pgdata: string, opts: { noSync?: boolean } = {}): Promise<void> {
  const args = [
    '-D', path.resolve(pgdata), '--auth-local=peer', '--auth-host=scram-sha-256',
    '-U', env.user, '--encoding=UTF8', '--no-instructions',
  ];
  if (opts.noSync) args.push('--no-sync'); // tests only: skips the final fsync of the new cluster
  await runTool(env, 'initdb', args, { timeoutMs: 300_000 });
}

async function readTail(file: string, n: number, from = 0): Promise<string> {
  try {
    const fh = await fsp.open(file, 'r');
    try {
      const { size } = await fh.stat();
      const start = Math.max(from, size - 16_384);
      const buf = Buffer.alloc(Math.max(0, size - start));
      await fh.read(buf, 0, buf.length, start);
      return lastLines(buf.toString('utf8'), n);
    } finally {
      await fh.close();
    }
  } catch {
    return '';
  }
}

async function fileSize(file: string): Promise<number> {
  try {
    return (await fsp.stat(file)).size;
  } catch {
    return 0;
  }
}

/** With the DBA's logging_collector on, the server logs past start-up go to its log_directory. */
async function collectorHint(env: PgEnv, pgdata: string): Promise<string> {
  try {
    const s = await readDbaSettings(pgdata, env.configFile);
    if (parseBool(s.get('logging_collector')?.value ?? 'off') !== true) return '';
    return ` and the server log in ${path.resolve(pgdata, s.get('log_directory')?.value ?? 'log')} (logging_collector is on)`;
  } catch {
    return '';
  }
}

/** A single-quoted word for the shell (pg_ctl passes -o through `sh -c`). */
function shellWord(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * pg_ctl's -o for a configuration outside the data directory: the server reads that
 * postgresql.conf (which names the hba_file, ident_file and data_directory); pg_ctl itself keeps
 * working on the data directory (postmaster.pid, promote and signal files).
 */
export function configFileOpt(env: Pick<PgEnv, 'configFile'>): string[] {
  return env.configFile === undefined ? [] : ['-o', `-c ${shellWord(`config_file=${env.configFile}`)}`];
}

export interface StartOptions {
  logFile: string;
  timeoutMs?: number;
  /** 'ready' (default): until postmaster.pid says ready or standby. 'started': until the postmaster is up. */
  wait?: 'ready' | 'started';
}

/**
 * pg_ctl start -W, then poll postmaster.pid every 5 ms until it says "ready" (accepting
 * connections; a hot standby too) or "standby" (up, but hot_standby = off). When the server
 * already runs this only waits for it to be ready.
 */
export async function pgCtlStart(env: PgEnv, pgdata: string, opts: StartOptions): Promise<void> {
  const dir = path.resolve(pgdata);
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const deadline = Date.now() + timeoutMs;
  const wait = opts.wait ?? 'ready';
  const logFile = path.resolve(opts.logFile);

  await waitZombieGone(dir, timeoutMs);
  const running = await postmasterPid(dir);
  const stale = running === null ? (await readPostmasterPidFile(dir))?.pid ?? null : null;
  const logStart = await fileSize(logFile);

  if (running === null) {
    if (!(await exists(logFile))) {
      const fh = await fsp.open(logFile, 'a', 0o600);
      await fh.close();
      await chownToRunAs(env, logFile);
    }
    await runTool(env, 'pg_ctl', ['start', '-D', dir, '-W', '-s', '-l', logFile, ...configFileOpt(env)], { timeoutMs: 30_000 });
  }

  const fail = async (why: string): Promise<never> => {
    const tail = await readTail(logFile, 6, logStart);
    throw new BihaError('pg_start_failed', `PostgreSQL in ${dir} ${why}${tail ? `: ${tail}` : ''}`, {
      hint: `see ${logFile}${await collectorHint(env, dir)}`,
    });
  };

  let seenPid: number | null = running;
  for (let i = 0; ; i++) {
    const pf = await readPostmasterPidFile(dir);
    if (pf && pf.pid !== stale) {
      const st = await procState(pf.pid);
      if (st !== 'alive') return fail('exited during start-up');
      seenPid = pf.pid;
      if (wait === 'started') return;
      if (pf.status === 'ready' || pf.status === 'standby') return;
      if (pf.status === 'stopping') return fail('is shutting down instead of starting');
    } else if (seenPid !== null) {
      // The lock file we saw is gone again: the postmaster gave up.
      return fail('exited during start-up');
    } else if (i % 10 === 0) {
      // No lock file yet. Errors in the configuration end the postmaster before it creates one.
      const fresh = await readTail(logFile, 20, logStart);
      if (/\b(FATAL|PANIC):/.test(fresh)) return fail('failed to start');
    }
    if (Date.now() >= deadline) return fail(`did not become ready within ${timeoutMs} ms`);
    await sleep(5);
  }
}

/**
 * pg_ctl stop -W, then poll until the postmaster has exited. No-op when not running.
 *
 * An exited postmaster stays a zombie until its parent (usually PID 1) reaps it, which took up to
 * 2 s on the test machines. A zombie that has removed its own postmaster.pid blocks nothing, so by
 * default stop returns then; with waitReaped it waits until the process entry is gone. A zombie
 * still named in postmaster.pid (kill -9) is always waited for: its lock file would make the next
 * postmaster or pg_rewind refuse to start.
 */
export async function pgCtlStop(
  env: PgEnv,
  pgdata: string,
  mode: 'smart' | 'fast' | 'immediate',
  opts: { timeoutMs?: number; waitReaped?: boolean } = {},
): Promise<void> {
  const dir = path.resolve(pgdata);
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const pf = await readPostmasterPidFile(dir);
  if (!pf) return;
  const state = await procState(pf.pid);
  if (state === 'gone') return;
  if (state === 'alive') {
    if (!(await isPostgresProcess(pf.pid))) return; // stale lock file naming some other process
    try {
      await runTool(env, 'pg_ctl', ['stop', '-D', dir, '-m', mode, '-W', '-s'], { timeoutMs: 30_000 });
    } catch (e) {
      // It may have exited between our check and pg_ctl's; only a live postmaster is an error.
      if ((await postmasterPid(dir)) === pf.pid) throw e;
    }
  }
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; ; i++) {
    const st = await procState(pf.pid);
    if (st === 'gone') return;
    if (st === 'zombie' && !opts.waitReaped) {
      const now = await readPostmasterPidFile(dir);
      if (!now || now.pid !== pf.pid) return;
    }
    if (Date.now() >= deadline) {
      throw new BihaError(
        'pg_stop_timeout',
        st === 'zombie'
          ? `the postmaster (PID ${pf.pid}) of ${dir} exited but was not reaped within ${timeoutMs} ms`
          : `PostgreSQL in ${dir} (PID ${pf.pid}) did not stop within ${timeoutMs} ms (mode ${mode})`,
        { hint: mode === 'immediate' ? 'check the server log' : 'retry with mode immediate' },
      );
    }
    await sleep(i < 200 ? 2 : 10);
  }
}

export async function pgCtlReload(env: PgEnv, pgdata: string): Promise<void> {
  await runTool(env, 'pg_ctl', ['reload', '-D', path.resolve(pgdata), '-s'], { timeoutMs: 30_000 });
}

/** Create an empty standby.signal (owned by the cluster owner). */
export async function writeStandbySignal(env: PgEnv, pgdata: string): Promise<void> {
  const f = path.join(path.resolve(pgdata), 'standby.signal');
  const fh = await fsp.open(f, 'a', 0o600);
  await fh.close();
  await chownToRunAs(env, f);
}

export async function removeStandbySignal(pgdata: string): Promise<void> {
  await fsp.rm(path.join(path.resolve(pgdata), 'standby.signal'), { force: true });
}

// ---------------------------------------------------------------------------------------------
// Copying data

export interface BasebackupProgress {
  doneKb: number;
  totalKb: number;
  pct: number;
}

const PROGRESS_RE = /^(\d+)\/(\d+) kB \((\d+)%\), (\d+)\/(\d+) tablespaces?/;

export function parseBasebackupProgress(line: string): BasebackupProgress | null {
  const m = PROGRESS_RE.exec(line.trim());
  if (!m) return null;
  return { doneKb: Number(m[1]), totalKb: Number(m[2]), pct: Number(m[3]) };
}

export interface BasebackupOptions {
  host: string;
  port: number;
  user: string;
  password?: string;
  passfile?: string;
  pgdata: string;
  slot: string;
  onProgress?: (p: BasebackupProgress) => void;
  timeoutMs?: number;
}

/**
 * pg_basebackup with streamed WAL into the given slot (which must already exist on the source).
 * The copy carries the source's postgresql.auto.conf and conf files: rewrite node settings afterwards.
 */
export async function basebackup(env: PgEnv, o: BasebackupOptions): Promise<void> {
  const extraEnv: Record<string, string> = { PGAPPNAME: 'biha_basebackup', PGCONNECT_TIMEOUT: '10' };
  if (o.password !== undefined) extraEnv.PGPASSWORD = o.password;
  if (o.passfile !== undefined) extraEnv.PGPASSFILE = o.passfile;
  const args = [
    '-h', o.host, '-p', String(o.port), '-U', o.user, '-D', path.resolve(o.pgdata),
    '--wal-method=stream', '--checkpoint=fast', '--progress', `--slot=${o.slot}`, '--no-password',
  ];
  try {
    await runTool(env, 'pg_basebackup', args, {
      extraEnv,
      ...(o.timeoutMs !== undefined ? { timeoutMs: o.timeoutMs } : {}),
      onStderrLine: (line) => {
        const p = parseBasebackupProgress(line);
        if (p && o.onProgress) o.onProgress(p);
      },
    });
  } catch (e) {
    if (e instanceof PgToolError && /replication slot "[^"]*" does not exist/.test(e.stderr)) {
      throw new PgToolError('basebackup_no_slot', `pg_basebackup: replication slot "${o.slot}" does not exist on ${o.host}:${o.port}`, {
        command: e.command, exitCode: e.exitCode, stderr: e.stderr, cause: e,
        hint: 'create the slot on the source first',
      });
    }
    throw e;
  }
}

export interface RewindResult {
  /** WAL location where source and target diverged, as printed by pg_rewind. */
  divergedAt: string | null;
  /** Timeline on which they diverged. */
  divergedTli: number | null;
  /** pg_rewind found the target had not written past the divergence point. */
  noRewindRequired: boolean;
  output: string;
}

export function parseRewindOutput(output: string): RewindResult {
  const m = /servers diverged at WAL location ([0-9A-F]+\/[0-9A-F]+) on timeline (\d+)/i.exec(output);
  return {
    divergedAt: m?.[1] ?? null,
    divergedTli: m?.[2] !== undefined ? Number(m[2]) : null,
    noRewindRequired: /no rewind required/.test(output),
    output,
  };
}

/**
 * pg_rewind from a running source. The target must be shut down cleanly (see ensureCleanShutdown).
 * Afterwards the target holds the source's conf files and postgresql.auto.conf: restore node settings.
 */
export async function rewind(
  env: PgEnv,
  o: { pgdata: string; source: string; dryRun: boolean; password?: string; onLine?: (l: string) => void; timeoutMs?: number },
): Promise<RewindResult> {
  const extraEnv: Record<string, string> = { PGAPPNAME: 'biha_rewind', PGCONNECT_TIMEOUT: '10' };
  if (o.password !== undefined) extraEnv.PGPASSWORD = o.password;
  const args = [`--target-pgdata=${path.resolve(o.pgdata)}`, `--source-server=${o.source}`, '--progress'];
  if (o.dryRun) args.push('--dry-run');
  const { stdout, stderr } = await runTool(env, 'pg_rewind', args, {
    extraEnv,
    ...(o.timeoutMs !== undefined ? { timeoutMs: o.timeoutMs } : {}),
    ...(o.onLine ? { onStderrLine: o.onLine } : {}),
  });
  return parseRewindOutput(`${stdout}${stderr}`);
}

// ---------------------------------------------------------------------------------------------
// Offline inspection

export async function controldata(env: PgEnv, pgdata: string): Promise<Record<string, string>> {
  const { stdout } = await runTool(env, 'pg_controldata', ['-D', path.resolve(pgdata)], { timeoutMs: 30_000 });
  const out: Record<string, string> = {};
  for (const line of stdout.split('\n')) {
    const i = line.indexOf(':');
    if (i <= 0) continue;
    out[line.slice(0, i).trim()] = line.slice(i + 1).trim();
  }
  return out;
}

/** Data page checksums are on in pgdata's pg_control (false when it cannot be read). */
export async function dataChecksumsOn(env: PgEnv, pgdata: string): Promise<boolean> {
  try {
    const cd = await controldata(env, pgdata);
    return (cd['Data page checksum version'] ?? '0') !== '0';
  } catch {
    return false;
  }
}

function moveAside(file: string): Promise<string | null> {
  const aside = `${file}.biha-aside`;
  return fsp.rename(file, aside).then(
    () => aside,
    () => null,
  );
}

/**
 * Crash recovery in single-user mode: postgres --single -F -D pgdata template1 </dev/null.
 * Waits for a zombie postmaster to be reaped first. Signal files are moved aside for the run
 * (single-user mode refuses standby mode) and put back afterwards.
 */
export async function singleUserRecovery(env: PgEnv, pgdata: string, opts: { timeoutMs?: number } = {}): Promise<void> {
  const dir = path.resolve(pgdata);
  const timeoutMs = opts.timeoutMs ?? 300_000;
  await waitZombieGone(dir, 30_000);
  const live = await postmasterPid(dir);
  if (live !== null) {
    throw new BihaError('pg_running', `PostgreSQL in ${dir} is running (PID ${live}); stop it before single-user recovery`);
  }
  const moved: Array<[string, string]> = [];
  for (const f of ['standby.signal', 'recovery.signal']) {
    const orig = path.join(dir, f);
    // A run that died half-way left the file aside: put it back first.
    if (!(await exists(orig)) && (await exists(`${orig}.biha-aside`))) await fsp.rename(`${orig}.biha-aside`, orig);
    const aside = await moveAside(orig);
    if (aside) moved.push([aside, orig]);
  }
  try {
    const config = env.configFile === undefined ? [] : ['-c', `config_file=${env.configFile}`];
    await runTool(env, 'postgres', ['--single', '-F', '-D', dir, ...config, 'template1'], { timeoutMs });
  } finally {
    for (const [aside, orig] of moved) await fsp.rename(aside, orig);
  }
}

/** Bring a stopped data directory to a clean shutdown state (what pg_rewind requires). Returns true if recovery ran. */
export async function ensureCleanShutdown(env: PgEnv, pgdata: string): Promise<boolean> {
  const cd = await controldata(env, pgdata);
  const state = cd['Database cluster state'] ?? '';
  if (state === 'shut down' || state === 'shut down in recovery') return false;
  await singleUserRecovery(env, pgdata);
  return true;
}

interface HistoryEntry {
  parentTli: number;
  switchLsn: number;
}

export function parseTimelineHistory(text: string): HistoryEntry[] {
  const out: HistoryEntry[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*(\d+)\s+([0-9A-Fa-f]+\/[0-9A-Fa-f]+)/.exec(line);
    if (m?.[1] !== undefined && m[2] !== undefined) out.push({ parentTli: Number(m[1]), switchLsn: parseLsn(m[2]) });
  }
  return out;
}

const tliHex = (tli: number): string => tli.toString(16).toUpperCase().padStart(8, '0');

/**
 * End of the last valid WAL record that follows `startLsn` on timeline `tli`, walking with pg_waldump.
 * Returns null when not even one record could be read. The end is computed from the last record
 * pg_waldump printed (its start and total length, stepping over page headers).
 */
async function walkTimeline(
  env: PgEnv,
  walDir: string,
  tli: number,
  startLsn: number,
  geometry: { blockSize: number; segSize: number },
): Promise<number | null> {
  let last: { lsn: number; len: number } | null = null;
  const RECORD_RE = /len \(rec\/tot\):\s*\d+\/\s*(\d+), .*?lsn: ([0-9A-F]+\/[0-9A-F]+)/;
  const onLine = (line: string): void => {
    const m = RECORD_RE.exec(line);
    if (m?.[1] !== undefined && m[2] !== undefined) last = { lsn: parseLsn(m[2]), len: Number(m[1]) };
  };
  try {
    await runTool(env, 'pg_waldump', ['-p', walDir, '-t', String(tli), '-s', formatLsn(startLsn)], {
      discardStdout: true,
      onStdoutLine: onLine,
      timeoutMs: 600_000,
    });
  } catch (e) {
    // pg_waldump always ends with an error at the end of WAL; only "nothing read" matters here.
    if (!(e instanceof PgToolError) || e.code !== 'pg_tool_failed') throw e;
  }
  const rec = last as { lsn: number; len: number } | null;
  return rec ? recordEnd(rec.lsn, rec.len, geometry) : null;
}

const SHORT_PHD = 24; // MAXALIGN(sizeof(XLogPageHeaderData))
const LONG_PHD = 40; // MAXALIGN(sizeof(XLogLongPageHeaderData))

/** End position of a WAL record of `len` bytes starting at `lsn`, accounting for page headers. */
export function recordEnd(lsn: number, len: number, g: { blockSize: number; segSize: number }): number {
  let pos = lsn;
  let left = len;
  while (left > 0) {
    const inPage = pos % g.blockSize;
    if (inPage === 0) {
      pos += pos % g.segSize === 0 ? LONG_PHD : SHORT_PHD;
      continue;
    }
    const take = Math.min(g.blockSize - inPage, left);
    pos += take;
    left -= take;
  }
  return Math.ceil(pos / 8) * 8;
}

/**
 * Where this (stopped) node's WAL ends: timeline and LSN. Starts at the last checkpoint's REDO
 * location and walks forward with pg_waldump (pg_controldata does not record the end of WAL; the
 * newest segment file by name may be a recycled one). Follows later timelines whose history file
 * and segments exist locally.
 */
export async function walEnd(env: PgEnv, pgdata: string): Promise<{ tli: number; lsn: number }> {
  const dir = path.resolve(pgdata);
  const walDir = path.join(dir, 'pg_wal');
  const cd = await controldata(env, dir);
  const redo = cd["Latest checkpoint's REDO location"];
  const ckpt = cd['Latest checkpoint location'];
  const tliText = cd["Latest checkpoint's TimeLineID"];
  if (!redo || !ckpt || !tliText) {
    throw new BihaError('controldata_unreadable', `pg_controldata of ${dir} lacks the checkpoint location`);
  }
  const geometry = {
    blockSize: Number(cd['WAL block size'] ?? 8192) || 8192,
    segSize: Number(cd['Bytes per WAL segment'] ?? 16 * 1024 * 1024) || 16 * 1024 * 1024,
  };
  let tli = Number(tliText);
  let end = (await walkTimeline(env, walDir, tli, parseLsn(redo), geometry)) ?? parseLsn(ckpt);

  const files = await fsp.readdir(walDir).catch(() => [] as string[]);
  for (let guard = 0; guard < 64; guard++) {
    // The next timeline that branched off ours at or after where we have been.
    let next: { tli: number; from: number } | null = null;
    for (const f of files) {
      const m = /^([0-9A-F]{8})\.history$/.exec(f);
      if (!m?.[1]) continue;
      const child = parseInt(m[1], 16);
      if (child <= tli || (next && child >= next.tli)) continue;
      const hasSegments = files.some((s) => s.length === 24 && s.startsWith(tliHex(child)));
      if (!hasSegments) continue;
      const hist = parseTimelineHistory(await fsp.readFile(path.join(walDir, f), 'utf8'));
      const fork = hist.find((h) => h.parentTli === tli);
      if (fork && fork.switchLsn <= end) next = { tli: child, from: fork.switchLsn };
    }
    if (!next) break;
    const e = await walkTimeline(env, walDir, next.tli, next.from, geometry);
    if (e === null) break;
    tli = next.tli;
    end = e;
  }
  return { tli, lsn: end };
}
