// A real biha cluster for integration tests: real PostgreSQL 15 processes on loopback ports,
// driven through the bihactl command line exactly as a DBA would. Nothing is mocked.
import { execFile, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import type { StatusFile } from '../../src/controller/bridge/sqlbridge.js';
import { claimPorts, releasePorts } from './ports.js';
import { processTree } from './proctree.js';

const pexec = promisify(execFile);
const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');
export const BIHACTL = path.join(ROOT, 'bin', 'bihactl.js');
export const PASSWORD = 'test-password-1';

/** Builds dist/ once per test process (bihactl runs the compiled code, as users do). */
let built = false;
export function ensureBuilt(): void {
  if (built || process.env['BIHA_TEST_NO_BUILD'] === '1') return;
  const r = spawnSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: ROOT, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`build failed: ${r.stdout}${r.stderr}`);
  built = true;
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function bihactl(args: string[], env: Record<string, string> = {}, timeoutMs = 180_000): Promise<CliResult> {
  try {
    const r = await pexec(process.execPath, [BIHACTL, ...args], {
      env: { ...process.env, BIHA_REPLICATION_PASSWORD: PASSWORD, ...env },
      timeout: timeoutMs,
      maxBuffer: 16 << 20,
    });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof x.code === 'number' ? x.code : 1, stdout: x.stdout ?? '', stderr: x.stderr ?? '' };
  }
}

export async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

export async function waitFor<T>(what: string, fn: () => Promise<T | null | undefined | false>, timeoutMs = 60_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown = null;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    await sleep(everyMs);
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}

export interface ClusterOptions {
  nodes: number;
  /**
   * Where the cluster's ports should start: node i uses a block of 10 from basePort + (i - 1) * 10.
   * The block actually used (ports.ts) starts later when one of these ports is taken; it has room
   * for two nodes added beyond `nodes`.
   */
  basePort: number;
  nquorum?: number;
  minnodes?: number;
  heartbeatSendPeriod?: number;
  heartbeatMaxLost?: number;
  syncStandbys?: number;
  /** Node modes by id (bihactl add --mode); nodes not listed are regular. */
  modes?: Record<number, 'regular' | 'referee' | 'referee_with_wal'>;
}

export class TestCluster {
  readonly dir: string;
  magic = '';
  private readonly base: number;
  private readonly span: number;

  constructor(readonly o: ClusterOptions) {
    ensureBuilt();
    this.span = (o.nodes + 2) * 10;
    this.base = claimPorts(o.basePort, this.span);
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'biha-test-'));
    fs.chmodSync(this.dir, 0o755);
    if (process.getuid?.() === 0) spawnSync('chown', ['postgres:postgres', this.dir]);
  }

  pgdata(i: number): string {
    return path.join(this.dir, `n${i}`);
  }
  port(i: number): number {
    if (i < 1 || i * 10 > this.span) throw new Error(`node ${i} has no ports: this cluster claimed room for ${this.span / 10} nodes`);
    return this.base + (i - 1) * 10;
  }

  /**
   * Node i's HTTP port: given to init/add explicitly as its PostgreSQL port + 2, inside the node's
   * block of 10 ports (tests run on fixed port ranges and must not depend on bihactl's default).
   */
  httpPort(i: number): number {
    return this.port(i) + 2;
  }

  async init(extra: string[] = []): Promise<CliResult> {
    const r = await bihactl([
      'init', '--biha-node-id=1', '--host=127.0.0.1', `--port=${this.port(1)}`, `--http-port=${this.httpPort(1)}`,
      `--nquorum=${this.o.nquorum ?? 2}`, `--minnodes=${this.o.minnodes ?? 2}`,
      `--heartbeat-send-period=${this.o.heartbeatSendPeriod ?? 200}`, `--heartbeat-max-lost=${this.o.heartbeatMaxLost ?? 5}`,
      ...(this.o.syncStandbys ? [`--sync-standbys=${this.o.syncStandbys}`] : []),
      `--pgdata=${this.pgdata(1)}`, ...extra,
    ]);
    if (r.code === 0) this.magic = r.stdout.trim();
    return r;
  }

  mode(i: number): 'regular' | 'referee' | 'referee_with_wal' {
    return this.o.modes?.[i] ?? 'regular';
  }

  async add(i: number, extra: string[] = []): Promise<CliResult> {
    const mode = this.mode(i);
    // A referee has no PostgreSQL port: its biha port is given as the derived one would be.
    const ports = [...(mode === 'referee' ? [`--biha-port=${this.port(i) + 1}`] : [`--port=${this.port(i)}`]), `--http-port=${this.httpPort(i)}`];
    const modeArg = mode === 'regular' ? [] : [`--mode=${mode}`];
    return await bihactl(['add', `--biha-node-id=${i}`, '--host=127.0.0.1', ...ports, ...modeArg, `--magic-string=${this.magic}`, `--pgdata=${this.pgdata(i)}`, ...extra]);
  }

  async start(i: number): Promise<CliResult> {
    return await bihaOk(['start', `--pgdata=${this.pgdata(i)}`]);
  }

  async stop(i: number): Promise<CliResult> {
    return await bihactl(['stop', `--pgdata=${this.pgdata(i)}`]);
  }

  /**
   * init (with `initExtra`) + start node 1, then add + start nodes 2..`count` one by one, waiting
   * for a writable leader; nodes above `count` are left for the test to add.
   */
  async create(initExtra: string[] = [], count = this.o.nodes, each: { args?: (i: number) => string[]; beforeStart?: (i: number) => void } = {}): Promise<void> {
    const r = await this.init(initExtra);
    if (r.code !== 0) throw new Error(`init failed: ${r.stderr}`);
    each.beforeStart?.(1);
    await this.start(1);
    for (let i = 2; i <= count; i++) {
      const a = await this.add(i, each.args?.(i) ?? []);
      if (a.code !== 0) throw new Error(`add ${i} failed: ${a.stderr}`);
      each.beforeStart?.(i);
      await this.start(i);
      if (i >= (this.o.minnodes ?? 2)) await this.waitLeader();
    }
  }

  async status(i: number): Promise<StatusFile> {
    const r = await bihactl(['status', `--pgdata=${this.pgdata(i)}`, '--json'], {}, 10_000);
    if (r.code !== 0) throw new Error(`status ${i}: ${r.stderr}`);
    return JSON.parse(r.stdout) as StatusFile;
  }

  /** The node that is LEADER_RW as seen from `from` (any live node if omitted). */
  async leader(from?: number): Promise<number | null> {
    const ids = from ? [from] : this.ids();
    for (const i of ids) {
      try {
        const s = await this.status(i);
        const l = s.status.find((x) => x.state === 'LEADER_RW');
        if (l) return l.id;
      } catch {
        // node down
      }
    }
    return null;
  }

  async waitLeader(opts: { not?: number; from?: number; timeoutMs?: number } = {}): Promise<number> {
    return await waitFor('a LEADER_RW', async () => {
      const l = await this.leader(opts.from);
      return l !== null && l !== opts.not ? l : null;
    }, opts.timeoutMs ?? 60_000);
  }

  async waitState(i: number, state: string, timeoutMs = 60_000): Promise<StatusFile> {
    return await waitFor(`node ${i} in ${state}`, async () => {
      const s = await this.status(i);
      return s.status.find((x) => x.id === i)?.state === state ? s : null;
    }, timeoutMs);
  }

  /** Waits until node i is a follower whose PostgreSQL streams from the leader (not only raft FOLLOWER: a rewind may still run). */
  async waitStreaming(i: number, timeoutMs = 90_000): Promise<void> {
    await this.waitState(i, 'FOLLOWER', timeoutMs);
    await waitFor(`node ${i} to stream WAL`, async () => {
      const r = await this.su<{ status: string }>(i, 'select status from pg_stat_wal_receiver').catch(() => []);
      return r[0]?.status === 'streaming';
    }, timeoutMs);
  }

  ids(): number[] {
    return Array.from({ length: this.o.nodes }, (_, k) => k + 1);
  }

  controllerPid(i: number): number | null {
    try {
      return Number(fs.readFileSync(path.join(this.pgdata(i), 'pg_biha', 'controller.pid'), 'utf8').trim()) || null;
    } catch {
      return null;
    }
  }
  postmasterPid(i: number): number | null {
    try {
      return Number(fs.readFileSync(path.join(this.pgdata(i), 'postmaster.pid'), 'utf8').split('\n')[0]) || null;
    } catch {
      return null;
    }
  }

  /** Whether process `pid` runs from this cluster's directory. */
  private isOwn(pid: number): boolean {
    try {
      return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(this.dir);
    } catch {
      return false;
    }
  }

  private signalOwn(pid: number | null, sig: NodeJS.Signals): void {
    if (!pid || !this.isOwn(pid)) return;
    try {
      process.kill(pid, sig);
    } catch {
      // already gone
    }
  }

  /** kill -9 of a node's controller and postmaster (a host crash, as far as the node goes). */
  kill9(i: number, what: 'controller' | 'postmaster' | 'both' = 'both'): void {
    if (what !== 'postmaster') this.signalOwn(this.controllerPid(i), 'SIGKILL');
    if (what !== 'controller') this.signalOwn(this.postmasterPid(i), 'SIGKILL');
  }

  /**
   * Node i's controller, postmaster and every process below them (backends, walsenders, the
   * watchdog): what a frozen or cut-off host stops. Only processes of this cluster.
   */
  hostPids(i: number): number[] {
    return processTree([this.controllerPid(i), this.postmasterPid(i)].filter((p): p is number => p !== null));
  }

  /** SIGSTOP of node i's whole host (hostPids): nothing answers, no connection is reset. Returns the PIDs for thaw. */
  freeze(i: number): number[] {
    const pids = this.hostPids(i);
    for (const pid of pids) this.signalPid(pid, 'SIGSTOP');
    return pids;
  }

  /** SIGCONT of what freeze stopped. */
  thaw(pids: readonly number[]): void {
    for (const pid of pids) this.signalPid(pid, 'SIGCONT');
  }

  private signalPid(pid: number, sig: NodeJS.Signals): void {
    try {
      process.kill(pid, sig);
    } catch {
      // already gone
    }
  }

  signalController(i: number, sig: NodeJS.Signals): void {
    this.signalOwn(this.controllerPid(i), sig);
  }

  /** A superuser SQL session on node i over its unix socket. */
  async sql<T extends pg.QueryResultRow = pg.QueryResultRow>(i: number, text: string, params: unknown[] = [], database = 'postgres'): Promise<T[]> {
    const c = new pg.Client({ host: '127.0.0.1', port: this.port(i), user: 'biha_replication_user', password: PASSWORD, database: database === 'postgres' ? 'biha_db' : database, connectionTimeoutMillis: 3000 });
    await c.connect();
    try {
      return (await c.query<T>(text, params)).rows;
    } finally {
      await c.end();
    }
  }

  /**
   * Makes the leader's WAL diverge: its followers stop receiving WAL (their password files are
   * moved aside meanwhile, so a follower attached again by its controller cannot authenticate), the
   * leader commits rows only it has (table only_on_old; asynchronous mode acknowledges them), then
   * it crashes and another node leads. Returns the old leader's id.
   */
  async divergeAndCrashLeader(): Promise<number> {
    const old = await this.waitLeader();
    const followers = this.ids().filter((i) => i !== old);
    const pgpass = (i: number): string => path.join(this.pgdata(i), 'pg_biha', 'pgpass');
    for (const f of followers) fs.renameSync(pgpass(f), `${pgpass(f)}.aside`);
    try {
      for (const f of followers) {
        await this.su(f, "alter system set primary_conninfo = ''");
        await this.su(f, 'select pg_reload_conf()');
      }
      await waitFor('the followers to disconnect', async () => {
        const r = await this.su<{ n: string }>(old, 'select count(*) as n from pg_stat_replication');
        return r[0]?.n === '0';
      });
      await this.su(old, 'create table if not exists only_on_old (id int)', 'biha_db');
      await this.su(old, 'insert into only_on_old select generate_series(1, 1000)', 'biha_db');
      this.kill9(old, 'both');
    } finally {
      for (const f of followers) fs.renameSync(`${pgpass(f)}.aside`, pgpass(f));
    }
    await this.waitLeader({ not: old, timeoutMs: 30_000 });
    return old;
  }

  /** Sets biha.autorewind in every node's postgresql.biha.conf (read by the controller when it needs it). */
  setAutorewind(on: boolean): void {
    for (const i of this.ids()) {
      const f = path.join(this.pgdata(i), 'postgresql.biha.conf');
      if (!fs.existsSync(f)) continue;
      fs.writeFileSync(f, fs.readFileSync(f, 'utf8').replace(/^biha\.autorewind\s*=.*$/m, `biha.autorewind = ${on ? 'true' : 'false'}`));
    }
  }

  /** The unix socket directory node i's running server uses (from its postmaster.pid). */
  socketDir(i: number): string {
    return socketDirOf(this.pgdata(i), this.port(i));
  }

  /** A superuser SQL session over node i's unix socket (root maps to the cluster superuser). */
  async su<T extends pg.QueryResultRow = pg.QueryResultRow>(i: number, text: string, db = 'postgres'): Promise<T[]> {
    const cl = new pg.Client({ host: this.socketDir(i), port: this.port(i), user: 'postgres', database: db });
    await cl.connect();
    try {
      return (await cl.query<T>(text)).rows;
    } finally {
      await cl.end();
    }
  }

  connString(): string {
    const hosts = this.ids().map((i) => `127.0.0.1:${this.port(i)}`).join(',');
    return `postgresql://biha_replication_user:${PASSWORD}@${hosts}/biha_db?target_session_attrs=read-write&connect_timeout=2`;
  }

  /** Stops every controller and PostgreSQL this cluster started, then removes the directory. */
  async destroy(): Promise<void> {
    for (const i of this.ids()) {
      if (fs.existsSync(path.join(this.pgdata(i), 'pg_biha', 'biha.conf'))) await bihactl(['stop', `--pgdata=${this.pgdata(i)}`], {}, 60_000);
    }
    for (const i of this.ids()) this.kill9(i);
    // Anything else still running from this cluster's directory (a controller whose PID file was
    // rewritten, a watchdog) is ours too.
    const own = (): number[] => fs.readdirSync('/proc').filter((e) => /^\d+$/.test(e)).map(Number).filter((pid) => this.isOwn(pid));
    for (const pid of own()) this.signalOwn(pid, 'SIGKILL');
    // Their ports and files are free once they are gone (a killed process may linger a moment as
    // a zombie, which no longer holds anything: /proc/PID/cmdline is empty then).
    await waitFor('the cluster\'s processes to end', async () => own().length === 0, 10_000, 50).catch(() => undefined);
    releasePorts(Array.from({ length: this.span }, (_, k) => this.base + k));
    // BIHA_TEST_KEEP=1 keeps the data directories and logs for a post-mortem.
    if (process.env['BIHA_TEST_KEEP'] === '1') process.stderr.write(`kept ${this.dir}\n`);
    else fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

export async function bihaOk(args: string[]): Promise<CliResult> {
  const r = await bihactl(args);
  if (r.code !== 0) throw new Error(`bihactl ${args[0]} failed (${r.code}): ${r.stderr}`);
  return r;
}

// ---- Helpers for the CLI and lifecycle suites ----

export const PG_BIN = '/usr/lib/postgresql/15/bin';

/** bihactl with the test environment minus `unset`, plus `env` (e.g. without BIHA_REPLICATION_PASSWORD). */
export async function bihactlWithEnv(args: string[], opts: { env?: Record<string, string>; unset?: string[] }, timeoutMs = 180_000): Promise<CliResult> {
  const env: Record<string, string | undefined> = { ...process.env, BIHA_REPLICATION_PASSWORD: PASSWORD, ...(opts.env ?? {}) };
  for (const k of opts.unset ?? []) delete env[k];
  try {
    const r = await pexec(process.execPath, [BIHACTL, ...args], { env, timeout: timeoutMs, maxBuffer: 16 << 20 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof x.code === 'number' ? x.code : 1, stdout: x.stdout ?? '', stderr: x.stderr ?? '' };
  }
}

/** A PostgreSQL tool run as the postgres OS user (through runuser when the tests run as root). */
export async function asPostgres(cmd: string, args: string[], env: Record<string, string> = {}, timeoutMs = 180_000): Promise<CliResult> {
  const envArgs = Object.entries(env).map(([k, v]) => `${k}=${v}`);
  const asRoot = process.getuid?.() === 0;
  const [file, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', 'env', ...envArgs, cmd, ...args]] : ['env', [...envArgs, cmd, ...args]];
  try {
    const r = await pexec(file, argv, { timeout: timeoutMs, maxBuffer: 16 << 20, cwd: '/tmp' });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof x.code === 'number' ? x.code : 1, stdout: x.stdout ?? '', stderr: x.stderr ?? '' };
  }
}

/**
 * The socket directory of a running server: the one its postmaster.pid names, else the first of
 * the usual directories that holds the port's socket.
 */
export function socketDirOf(pgdata: string | null, port: number): string {
  if (pgdata) {
    try {
      const dir = (fs.readFileSync(path.join(pgdata, 'postmaster.pid'), 'utf8').split('\n')[4] ?? '').trim();
      if (dir) return dir;
    } catch {
      // not running: look for the socket below
    }
  }
  for (const dir of ['/var/run/postgresql', '/tmp']) if (fs.existsSync(path.join(dir, `.s.PGSQL.${port}`))) return dir;
  return '/var/run/postgresql';
}

/** psql as the postgres OS user over the server's unix socket; the output unaligned, tuples only. */
export async function psqlAsPostgres(port: number, database: string, sql: string, pgdata: string | null = null): Promise<string> {
  const host = socketDirOf(pgdata, port);
  const r = await asPostgres(`${PG_BIN}/psql`, ['-X', '-At', '-v', 'ON_ERROR_STOP=1', '-h', host, '-p', String(port), '-d', database, '-c', sql], {}, 30_000);
  if (r.code !== 0) throw new Error(`psql on port ${port} failed: ${r.stderr.trim()}`);
  return r.stdout.trim();
}
