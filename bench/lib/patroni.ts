// A real 3-node Patroni cluster on loopback for the side-by-side benchmark: a one-member etcd
// (v3 API) in a temporary directory, Debian's Patroni run as the postgres OS user with generated
// YAML (patroniconf.ts), PostgreSQL 15. Every process it starts is stopped by PID.
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { PG_BIN, sleep, waitFor } from '../../test/helpers/cluster.js';
import { claimPorts, releasePorts } from '../../test/helpers/ports.js';
import type { PatroniTiming } from './patroniconf.js';
import { patroniYaml } from './patroniconf.js';
import { processTree } from './proc.js';
import { fmtMs } from './report.js';

export const PATRONI_BIN = '/usr/bin/patroni';
export const PATRONICTL_BIN = '/usr/bin/patronictl';
export const ETCD_BIN = '/usr/bin/etcd';

/** Every Patroni cluster this process started and has not destroyed yet (destroyed on Ctrl-C). */
export const patroniClusters: PatroniCluster[] = [];

/** A member as Patroni's REST API `GET /cluster` lists it. */
export interface PatroniMember {
  name: string;
  role: string;
  state: string;
  port: number;
  lag?: number | string;
  timeline?: number;
}

function postgresIds(): { uid: number; gid: number } {
  const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
  return { uid, gid };
}

function alive(pid: number): boolean {
  try {
    const st = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return st.slice(st.lastIndexOf(')') + 2, st.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

export class PatroniCluster {
  readonly dir: string;
  readonly scope = 'biha-bench';
  private readonly base: number;
  private readonly span = 20;
  private readonly superPassword = randomBytes(12).toString('hex');
  private readonly replPassword = randomBytes(12).toString('hex');
  private readonly ids0 = [1, 2, 3];
  private etcd: ChildProcess | null = null;
  private readonly patroni = new Map<number, ChildProcess>();
  private readonly owner = postgresIds();

  /** Ports from basePort (moved on when taken): PostgreSQL +0..2, etcd client +3 and peer +4, REST +10..12. */
  constructor(basePort: number, readonly timing: PatroniTiming) {
    this.base = claimPorts(basePort, this.span);
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'patroni-bench-'));
    fs.chmodSync(this.dir, 0o755);
    fs.chownSync(this.dir, this.owner.uid, this.owner.gid);
    patroniClusters.push(this);
  }

  ids(): number[] {
    return [...this.ids0];
  }
  name(i: number): string {
    return `pg${i}`;
  }
  port(i: number): number {
    return this.base + i - 1;
  }
  restPort(i: number): number {
    return this.base + 10 + i - 1;
  }
  private etcdPort(): number {
    return this.base + 3;
  }
  private nodeDir(i: number): string {
    return path.join(this.dir, this.name(i));
  }
  dataDir(i: number): string {
    return path.join(this.nodeDir(i), 'data');
  }
  configFile(i: number): string {
    return path.join(this.nodeDir(i), 'patroni.yml');
  }
  idOf(name: string): number {
    const i = this.ids0.find((k) => this.name(k) === name);
    if (i === undefined) throw new Error(`no Patroni member named ${name}`);
    return i;
  }

  /** The multi-host URI of the write-gap client, as the postgres superuser. */
  connString(): string {
    const hosts = this.ids0.map((i) => `127.0.0.1:${this.port(i)}`).join(',');
    return `postgresql://postgres:${this.superPassword}@${hosts}/postgres?target_session_attrs=read-write&connect_timeout=2`;
  }

  /** etcd, then the three Patroni nodes; resolves once the cluster is healthy. */
  async start(): Promise<void> {
    const t = performance.now();
    await this.startEtcd();
    for (const i of this.ids0) {
      fs.mkdirSync(this.nodeDir(i), { mode: 0o700 });
      fs.chownSync(this.nodeDir(i), this.owner.uid, this.owner.gid);
      fs.writeFileSync(this.configFile(i), patroniYaml({
        scope: this.scope, name: this.name(i), pgPort: this.port(i), restPort: this.restPort(i), etcd: `127.0.0.1:${this.etcdPort()}`,
        dataDir: this.dataDir(i), nodeDir: this.nodeDir(i), binDir: PG_BIN,
        superuserPassword: this.superPassword, replicationPassword: this.replPassword, timing: this.timing,
      }), { mode: 0o600 });
      fs.chownSync(this.configFile(i), this.owner.uid, this.owner.gid);
      this.startNode(i);
      // The first node bootstraps alone; the others then clone it.
      if (i === 1) await waitFor('Patroni node pg1 to lead', async () => (await this.members().catch(() => [])).some((m) => m.role === 'leader' && m.state === 'running'), 180_000, 250);
    }
    const leader = await this.waitHealthy();
    console.log(
      `Patroni cluster ${this.dir}: ${this.ids0.length} nodes, PostgreSQL on ports ${this.ids0.map((i) => this.port(i)).join(', ')}, REST ${this.ids0.map((i) => this.restPort(i)).join(', ')}, ` +
        `etcd ${this.etcdPort()}; ttl ${this.timing.ttl} s, loop_wait ${this.timing.loopWait} s, retry_timeout ${this.timing.retryTimeout} s; ${this.name(leader)} leads (ready in ${fmtMs(performance.now() - t)})`,
    );
  }

  private async startEtcd(): Promise<void> {
    const client = `http://127.0.0.1:${this.etcdPort()}`;
    const peer = `http://127.0.0.1:${this.etcdPort() + 1}`;
    const log = fs.openSync(path.join(this.dir, 'etcd.log'), 'a');
    this.etcd = spawn(ETCD_BIN, [
      '--name', 'bench', '--data-dir', path.join(this.dir, 'etcd'),
      '--listen-client-urls', client, '--advertise-client-urls', client,
      '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer,
      '--initial-cluster', `bench=${peer}`, '--initial-cluster-state', 'new',
    ], { stdio: ['ignore', log, log] });
    fs.closeSync(log);
    await waitFor('etcd to be healthy', async () => {
      const r = await fetch(`${client}/health`, { signal: AbortSignal.timeout(2000) }).catch(() => null);
      return r?.ok === true && ((await r.json()) as { health?: string }).health === 'true';
    }, 60_000, 200);
  }

  /** Starts node i's Patroni as the postgres OS user, its output appended to the node's patroni.log. */
  startNode(i: number): void {
    const log = fs.openSync(path.join(this.dir, `${this.name(i)}.log`), 'a');
    const child = spawn(PATRONI_BIN, [this.configFile(i)], {
      uid: this.owner.uid,
      gid: this.owner.gid,
      cwd: this.nodeDir(i),
      env: { PATH: '/usr/bin:/bin', HOME: this.nodeDir(i), USER: 'postgres', LANG: 'C.UTF-8' },
      stdio: ['ignore', log, log],
    });
    fs.closeSync(log);
    child.on('error', () => undefined);
    this.patroni.set(i, child);
  }

  /** `GET /cluster` from the first node whose REST API answers. */
  async members(): Promise<PatroniMember[]> {
    let last: unknown = null;
    for (const i of this.ids0) {
      try {
        const r = await fetch(`http://127.0.0.1:${this.restPort(i)}/cluster`, { signal: AbortSignal.timeout(2000) });
        if (r.ok) return ((await r.json()) as { members?: PatroniMember[] }).members ?? [];
        last = `HTTP ${r.status}`;
      } catch (e) {
        last = e;
      }
    }
    throw new Error(`no Patroni REST API answers: ${String(last)}`);
  }

  /** Node i's Patroni log lines written at or after `sinceWall` (Patroni writes UTC "YYYY-MM-DD hh:mm:ss,mmm LEVEL: message"). */
  logLines(i: number, sinceWall: number): Array<{ t: number; msg: string }> {
    let text = '';
    try {
      text = fs.readFileSync(path.join(this.dir, `${this.name(i)}.log`), 'utf8');
    } catch {
      return [];
    }
    const out: Array<{ t: number; msg: string }> = [];
    for (const l of text.split('\n')) {
      const m = /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d),(\d{3}) \w+: (.*)$/.exec(l);
      if (!m) continue;
      const t = Date.parse(`${m[1]}T${m[2]}.${m[3]}Z`);
      if (t >= sinceWall) out.push({ t, msg: m[4] ?? '' });
    }
    return out;
  }

  /** When node i took the leader lock and promoted, relative to `sinceWall`, from its log. */
  logTimeline(i: number, sinceWall: number): string {
    const ev = this.logLines(i, sinceWall);
    const marks: Array<[string, RegExp]> = [
      ['leader lock', /promoted self to leader by acquiring session lock|acquired session lock as a leader/],
      ['first loop as leader', /no action\. I am \(\S+\), the leader with the lock/],
    ];
    return marks.map(([label, re]) => {
      const e = ev.find((x) => re.test(x.msg));
      return `${label} ${e ? `+${e.t - sinceWall} ms` : 'not logged'}`;
    }).join(', ');
  }

  /** Whether node i's Patroni ran pg_rewind since `sinceWall`. */
  rewound(i: number, sinceWall: number): boolean {
    return this.logLines(i, sinceWall).some((e) => /running pg_rewind/.test(e.msg));
  }

  /** Node i's PostgreSQL as the superuser over TCP. */
  private async query<T>(i: number, sql: string): Promise<T[]> {
    const c = new pg.Client({ host: '127.0.0.1', port: this.port(i), user: 'postgres', password: this.superPassword, database: 'postgres', connectionTimeoutMillis: 3000 });
    c.on('error', () => undefined);
    await c.connect();
    try {
      return (await c.query(sql)).rows as T[];
    } finally {
      await c.end().catch(() => undefined);
    }
  }

  /**
   * The leader's id once the cluster is healthy: `GET /cluster` lists one running leader and two
   * running replicas on its timeline, and the leader's pg_stat_replication shows both streaming.
   */
  async waitHealthy(timeoutMs = 300_000): Promise<number> {
    return waitFor('a healthy Patroni cluster (one leader, two streaming replicas)', async () => {
      const ms = await this.members().catch(() => []);
      const leader = ms.find((m) => m.role === 'leader' && m.state === 'running');
      const replicas = ms.filter((m) => m.role === 'replica' && m.state === 'running' && (m.timeline === undefined || m.timeline === leader?.timeline));
      if (!leader || ms.length !== this.ids0.length || replicas.length !== this.ids0.length - 1) return null;
      const id = this.idOf(leader.name);
      const rows = await this.query<{ n: string }>(id, "select count(*) as n from pg_stat_replication where state = 'streaming'").catch(() => []);
      return Number(rows[0]?.n ?? 0) === this.ids0.length - 1 ? id : null;
    }, timeoutMs, 250);
  }

  /** Node i's postmaster PID from its postmaster.pid, if that process runs from this cluster's directory. */
  private postmasterPid(i: number): number | null {
    try {
      const pid = Number(fs.readFileSync(path.join(this.dataDir(i), 'postmaster.pid'), 'utf8').split('\n')[0]);
      return pid && this.isOwn(pid) ? pid : null;
    } catch {
      return null;
    }
  }

  private isOwn(pid: number): boolean {
    try {
      return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(this.dir);
    } catch {
      return false;
    }
  }

  /**
   * SIGKILL of node i's Patroni process and its postmaster (which Patroni starts detached) with
   * every process below either, found by PID from /proc. Returns the PIDs killed.
   */
  kill9(i: number): number[] {
    const roots = [this.patroni.get(i)?.pid, this.postmasterPid(i)].filter((p): p is number => typeof p === 'number' && alive(p));
    const pids = processTree(roots);
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
    this.patroni.delete(i);
    return pids;
  }

  /** Starts a killed node's Patroni again and waits until it is a streaming replica of a healthy cluster. */
  async rejoin(i: number): Promise<number> {
    this.startNode(i);
    return this.waitHealthy();
  }

  /** `patronictl switchover --leader X --candidate Y --force`; resolves with its exit code and output. */
  async switchover(leader: number, candidate: number): Promise<{ code: number; out: string }> {
    return new Promise((resolve) => {
      const child = spawn(PATRONICTL_BIN, ['-c', this.configFile(leader), 'switchover', this.scope, '--leader', this.name(leader), '--candidate', this.name(candidate), '--force'], {
        env: { PATH: '/usr/bin:/bin', HOME: this.dir, LANG: 'C.UTF-8' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (out += d.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), 180_000);
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code: code ?? 1, out });
      });
      child.on('error', (e) => {
        clearTimeout(timer);
        resolve({ code: 1, out: e.message });
      });
    });
  }

  /** Stops Patroni (which stops its PostgreSQL) and etcd, kills whatever of theirs is left, removes the directory. */
  async destroy(): Promise<void> {
    for (const child of this.patroni.values()) if (child.pid && alive(child.pid)) child.kill('SIGTERM');
    await waitFor('Patroni to stop', async () => [...this.patroni.values()].every((c) => !c.pid || !alive(c.pid)), 60_000, 250).catch(() => undefined);
    const own = (): number[] => fs.readdirSync('/proc').filter((e) => /^\d+$/.test(e)).map(Number).filter((pid) => pid !== process.pid && this.isOwn(pid));
    const roots = [...this.patroni.values()].map((c) => c.pid).filter((p): p is number => typeof p === 'number' && alive(p));
    for (const pid of [...processTree(roots), ...own()]) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
    if (this.etcd?.pid && alive(this.etcd.pid)) this.etcd.kill('SIGTERM');
    await waitFor('etcd to stop', async () => !this.etcd?.pid || !alive(this.etcd.pid), 20_000, 100).catch(() => {
      if (this.etcd?.pid) process.kill(this.etcd.pid, 'SIGKILL');
    });
    await waitFor('the Patroni cluster\'s processes to end', async () => own().length === 0, 10_000, 50).catch(() => undefined);
    this.patroni.clear();
    releasePorts(Array.from({ length: this.span }, (_, k) => this.base + k));
    if (process.env['BIHA_TEST_KEEP'] === '1') process.stderr.write(`kept ${this.dir}\n`);
    else fs.rmSync(this.dir, { recursive: true, force: true });
    const k = patroniClusters.indexOf(this);
    if (k >= 0) patroniClusters.splice(k, 1);
  }
}

/** Patroni's and etcd's versions as their programs print them. */
export function patroniVersions(): { patroni: string; etcd: string } {
  const run = (cmd: string, args: string[]): string => {
    try {
      return execFileSync(cmd, args, { encoding: 'utf8', timeout: 30_000 }).trim();
    } catch {
      return 'not installed';
    }
  };
  return {
    patroni: run(PATRONI_BIN, ['--version']).replace(/^patroni\s+/i, ''),
    etcd: (/etcd Version:\s*(\S+)/.exec(run(ETCD_BIN, ['--version']))?.[1]) ?? 'unknown',
  };
}

/** Waits, bounded, for `pid` to be gone; used after a kill before restarting a node. */
export async function waitGone(pids: readonly number[], timeoutMs = 10_000): Promise<void> {
  const t = performance.now();
  while (pids.some(alive) && performance.now() - t < timeoutMs) await sleep(50);
}
