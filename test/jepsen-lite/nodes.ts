// A biha cluster whose nodes live in their own network namespaces (hosts.ts), driven through the
// bihactl command line as a DBA would: init/add/start run inside the node's namespace, so the
// detached controller (and the PostgreSQL it starts) stays there.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { localRequest, localSocketPath } from '../../src/controller/bridge/localsock.js';
import type { StatusFile } from '../../src/controller/bridge/sqlbridge.js';
import type { Hosts } from './hosts.js';
import { cmdline, pidFromFile, run, signalOwn, sleep } from './proc.js';
import type { RunResult } from './proc.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BIHACTL = path.join(ROOT, 'bin', 'bihactl.js');
export const PASSWORD = 'jepsen-password-1';
export const DB = 'biha_db';
export const USER = 'biha_replication_user';

export interface ClusterParams {
  readonly nodes: number;
  readonly basePort: number;
  readonly nquorum: number;
  readonly minnodes: number;
  readonly syncStandbys: number;
  readonly hbPeriodMs: number;
  readonly hbMaxLost: number;
  /** Set biha.autorewind = true in each node's postgresql.biha.conf (as a DBA would) before its first start. */
  readonly autorewind?: boolean;
}

export class NsCluster {
  magic = '';

  constructor(
    readonly hosts: Hosts,
    readonly p: ClusterParams,
    private readonly log: (s: string) => void,
    /** bin/bihactl.js to run (a private copy of the build, see snapshotProduct). */
    private readonly bihactlPath: string = BIHACTL,
  ) {}

  ids(): number[] {
    return this.hosts.ids();
  }
  pgdata(i: number): string {
    return path.join(this.hosts.dataDir, `n${i}`);
  }
  port(i: number): number {
    return this.p.basePort + (i - 1) * 10;
  }
  bihaPort(i: number): number {
    return this.port(i) + 1;
  }
  addr(i: number): string {
    return this.hosts.addr(i);
  }
  nodeOfPort(port: number): number {
    return this.ids().find((i) => this.port(i) === port) ?? 0;
  }

  /** bihactl inside node i's namespace. */
  async bihactl(i: number, args: string[], timeoutMs = 180_000): Promise<RunResult> {
    return await run('ip', ['netns', 'exec', this.hosts.ns(i), process.execPath, this.bihactlPath, ...args], {
      timeoutMs,
      env: { ...process.env, BIHA_REPLICATION_PASSWORD: PASSWORD },
    });
  }

  private async ok(i: number, args: string[], timeoutMs?: number): Promise<RunResult> {
    const r = await this.bihactl(i, args, timeoutMs);
    if (r.code !== 0) throw new Error(`node ${i}: bihactl ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
    return r;
  }

  async init(): Promise<void> {
    const r = await this.ok(1, [
      'init', '--biha-node-id=1', `--host=${this.addr(1)}`, `--port=${this.port(1)}`, `--http-port=${this.port(1) + 2}`,
      `--nquorum=${this.p.nquorum}`, `--minnodes=${this.p.minnodes}`,
      `--heartbeat-send-period=${this.p.hbPeriodMs}`, `--heartbeat-max-lost=${this.p.hbMaxLost}`,
      ...(this.p.syncStandbys > 0 ? [`--sync-standbys=${this.p.syncStandbys}`] : []),
      `--pgdata=${this.pgdata(1)}`,
    ]);
    this.magic = r.stdout.trim();
  }

  async add(i: number): Promise<void> {
    await this.ok(i, ['add', `--biha-node-id=${i}`, `--host=${this.addr(i)}`, `--port=${this.port(i)}`, `--http-port=${this.port(i) + 2}`, `--magic-string=${this.magic}`, `--pgdata=${this.pgdata(i)}`]);
  }

  async start(i: number): Promise<RunResult> {
    return await this.bihactl(i, ['start', `--pgdata=${this.pgdata(i)}`], 150_000);
  }

  async stop(i: number): Promise<RunResult> {
    return await this.bihactl(i, ['stop', `--pgdata=${this.pgdata(i)}`], 150_000);
  }

  /** init + start node 1, then add + start the others, then wait until all have converged. */
  async create(): Promise<void> {
    fs.mkdirSync(this.hosts.dataDir, { recursive: true, mode: 0o755 });
    fs.chmodSync(this.hosts.dataDir, 0o755);
    await run('chown', ['postgres:postgres', this.hosts.dataDir]);
    this.log('bihactl init node 1');
    await this.init();
    await this.mustStart(1);
    for (const i of this.ids().slice(1)) {
      this.log(`bihactl add node ${i}`);
      await this.add(i);
      await this.mustStart(i);
    }
    const c = await this.waitConverged(120_000);
    if (!c.ok) throw new Error(`the new cluster did not converge: ${c.why}`);
  }

  private async mustStart(i: number): Promise<void> {
    if (this.p.autorewind) {
      const f = path.join(this.pgdata(i), 'postgresql.biha.conf');
      const text = fs.readFileSync(f, 'utf8');
      const next = /^biha\.autorewind\s*=.*$/m.test(text) ? text.replace(/^biha\.autorewind\s*=.*$/m, 'biha.autorewind = true') : `${text}\nbiha.autorewind = true\n`;
      fs.writeFileSync(f, next);
    }
    const r = await this.start(i);
    if (r.code !== 0) throw new Error(`bihactl start node ${i} failed (${r.code}): ${r.stderr.trim()}`);
  }

  /** The controller's status over its local socket (what `bihactl status --json` prints). */
  async status(i: number, timeoutMs = 2000): Promise<StatusFile | null> {
    try {
      return (await localRequest(localSocketPath(this.bihaPort(i)), 'status', {}, timeoutMs)) as StatusFile;
    } catch {
      return null;
    }
  }

  /** Own state of every reachable controller. */
  async ownStates(timeoutMs = 2000): Promise<Map<number, { state: string; term: number; leader: number | null; pgRole: string }>> {
    const out = new Map<number, { state: string; term: number; leader: number | null; pgRole: string }>();
    await Promise.all(
      this.ids().map(async (i) => {
        const s = await this.status(i, timeoutMs);
        const me = s?.status.find((x) => x.id === i);
        if (s && me) {
          const extra = (s as unknown as { extra?: { pg_role?: string } }).extra;
          out.set(i, { state: me.state, term: me.term ?? 0, leader: me.leader_id, pgRole: extra?.pg_role ?? '?' });
        }
      }),
    );
    return out;
  }

  /**
   * Converged: exactly one node says LEADER_RW, every other node says FOLLOWER (or NODE_ERROR,
   * which is reported), all in the leader's term and naming it, and the leader's PostgreSQL is a
   * primary. Polls until `timeoutMs`.
   */
  async waitConverged(timeoutMs: number): Promise<{ ok: boolean; leader: number; ms: number; why: string; nodeErrors: number[] }> {
    const t0 = Date.now();
    let why = '';
    for (let k = 0; k < 100_000 && Date.now() - t0 < timeoutMs; k++) {
      const st = await this.ownStates();
      const leaders = [...st].filter(([, s]) => s.state === 'LEADER_RW');
      const nodeErrors = [...st].filter(([, s]) => s.state === 'NODE_ERROR').map(([i]) => i);
      if (leaders.length === 1) {
        const [lid, l] = leaders[0]!;
        const bad = this.ids().filter((i) => {
          if (i === lid) return l.pgRole !== 'PRIMARY';
          const s = st.get(i);
          return !s || !((s.state === 'FOLLOWER' && s.leader === lid && s.term === l.term) || s.state === 'NODE_ERROR');
        });
        if (bad.length === 0) return { ok: true, leader: lid, ms: Date.now() - t0, why: '', nodeErrors };
        why = `leader ${lid} (term ${l.term}); not following yet: ${bad.map((i) => `${i}=${st.get(i)?.state ?? 'no answer'}`).join(', ')}`;
      } else {
        why = `${leaders.length} LEADER_RW: ${[...st].map(([i, s]) => `${i}=${s.state}/t${s.term}`).join(', ')}`;
      }
      await sleep(250);
    }
    return { ok: false, leader: 0, ms: Date.now() - t0, why, nodeErrors: [] };
  }

  controllerPid(i: number): number | null {
    return pidFromFile(path.join(this.pgdata(i), 'pg_biha', 'controller.pid'));
  }
  postmasterPid(i: number): number | null {
    return pidFromFile(path.join(this.pgdata(i), 'postmaster.pid'));
  }

  watchdogPid(i: number): number | null {
    return pidFromFile(path.join(this.pgdata(i), 'pg_biha', 'watchdog.pid'));
  }

  /** kill -9 / SIGSTOP / SIGCONT of node i's controller, postmaster or watchdog (only if it is ours). */
  signal(i: number, what: 'controller' | 'postmaster' | 'watchdog', sig: NodeJS.Signals): boolean {
    const pid = what === 'controller' ? this.controllerPid(i) : what === 'watchdog' ? this.watchdogPid(i) : this.postmasterPid(i);
    return signalOwn(pid, sig, this.pgdata(i));
  }

  /**
   * A whole-host freeze: SIGSTOP of every process in node i's namespace (controller, watchdog,
   * postmaster, every backend), found by namespace, never by name. Two passes, so that a process
   * forked while the first pass ran is stopped too. Returns the PIDs stopped.
   */
  async freeze(i: number): Promise<number[]> {
    const stopped = new Set<number>();
    for (let pass = 0; pass < 2; pass++) {
      for (const p of await this.hosts.ownPids(i)) {
        if (stopped.has(p)) continue;
        try {
          process.kill(p, 'SIGSTOP');
          stopped.add(p);
        } catch {
          // gone
        }
      }
    }
    return [...stopped];
  }

  /** SIGCONT of every process in node i's namespace (the end of a freeze; harmless otherwise). */
  async thaw(i: number): Promise<number> {
    let n = 0;
    for (const p of await this.hosts.ownPids(i)) {
      try {
        process.kill(p, 'SIGCONT');
        n++;
      } catch {
        // gone
      }
    }
    return n;
  }

  /** pg_rewind processes running in node i's namespace (found by namespace, then by their command line). */
  async rewinds(i: number): Promise<Array<{ pid: number; dryRun: boolean; source: number }>> {
    const out: Array<{ pid: number; dryRun: boolean; source: number }> = [];
    for (const p of await this.hosts.ownPids(i)) {
      const cl = cmdline(p);
      if (!/(^|\/)pg_rewind /.test(cl)) continue;
      const host = /--source-server=.*?host=([0-9.]+)/.exec(cl)?.[1] ?? '';
      out.push({ pid: p, dryRun: cl.includes('--dry-run'), source: this.ids().find((x) => this.addr(x) === host) ?? 0 });
    }
    return out;
  }

  /** A host crash: SIGKILL of every process in the node's namespace (controller, watchdog, PostgreSQL). */
  async crash(i: number): Promise<number> {
    const pids = await this.hosts.pids(i);
    for (const p of pids) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        // gone
      }
    }
    return pids.length;
  }

  /** Is the controller of node i alive (not necessarily answering)? */
  controllerAlive(i: number): boolean {
    const pid = this.controllerPid(i);
    if (!pid) return false;
    try {
      process.kill(pid, 0);
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      return !/^\d+ \(.*\) Z/.test(stat);
    } catch {
      return false;
    }
  }

  /** Starts node i's controller again if it is not running (after a kill or a crash). */
  async ensureStarted(i: number): Promise<RunResult | null> {
    if (this.controllerAlive(i)) return null;
    // A controller killed with -9 leaves its PID file; bihactl start checks that PID is gone.
    return await this.start(i);
  }

  /** Copies node logs into the run directory. */
  copyLogs(dest: string): void {
    fs.mkdirSync(dest, { recursive: true });
    for (const i of this.ids()) {
      const dir = path.join(this.pgdata(i), 'pg_biha', 'log');
      let files: string[] = [];
      try {
        files = fs.readdirSync(dir);
      } catch {
        continue;
      }
      for (const f of files) {
        try {
          fs.copyFileSync(path.join(dir, f), path.join(dest, `n${i}-${f}`));
        } catch {
          // unreadable
        }
      }
    }
  }

  /** Stops every node cleanly (bounded), so its logs end with the shutdown. */
  async stopAll(): Promise<void> {
    await Promise.all(this.ids().map(async (i) => {
      if (fs.existsSync(path.join(this.pgdata(i), 'pg_biha', 'biha.conf'))) await this.bihactl(i, ['stop', `--pgdata=${this.pgdata(i)}`], 60_000);
    }));
  }
}

/**
 * Copies bin/, dist/, sql/ and conf-templates/ into test/jepsen-lite/.product/<id>/ (inside the repository, so that
 * node_modules resolves) and checks that the copy loads: a rebuild of dist/ by someone else
 * during a long run then cannot hand the nodes a half-written build. Returns the copy's bihactl.
 */
export async function snapshotProduct(id: string): Promise<{ bihactl: string; dir: string }> {
  const dir = path.join(ROOT, 'test', 'jepsen-lite', '.product', id);
  for (let attempt = 0; attempt < 10; attempt++) {
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
    for (const sub of ['bin', 'dist', 'sql', 'conf-templates']) fs.cpSync(path.join(ROOT, sub), path.join(dir, sub), { recursive: true });
    fs.writeFileSync(path.join(dir, 'package.json'), fs.readFileSync(path.join(ROOT, 'package.json')));
    const bihactl = path.join(dir, 'bin', 'bihactl.js');
    const r = await run(process.execPath, [bihactl, '--help'], { timeoutMs: 30_000 });
    if (r.code === 0) return { bihactl, dir };
    await sleep(3000);
  }
  throw new Error('the build in dist/ does not load (bin/bihactl.js --help fails): run npm run build');
}
