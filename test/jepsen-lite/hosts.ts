// The host layer: every node is its own host, a network namespace with one veth on a bridge in the
// root namespace. The test process (the client) stays in the root namespace and reaches the nodes
// over the bridge. Faults are nft rules and tc qdiscs inside the node namespaces.
//
// Everything is named with the run's prefix (bj<id>), recorded in a registry file before it is
// created, and removed by teardown() — also from exit and signal handlers (teardownSync) and by
// `--cleanup` for a run whose process died. Only private addresses 10.213.X.0/24 on our own bridge.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { must, netnsOf, run, runSync, sleep } from './proc.js';

export const REGISTRY_DIR = path.join(os.tmpdir(), 'biha-jepsen-active');

export interface Registry {
  readonly prefix: string;
  readonly ownerPid: number;
  readonly namespaces: string[];
  readonly bridge: string;
  readonly dataDir: string;
}

export type PortClass = 'all' | 'biha' | 'pg';

export class Hosts {
  readonly prefix: string;
  readonly bridge: string;
  readonly table: string;
  private created = false;
  private readonly registryFile: string;

  constructor(
    readonly runId: string,
    readonly n: number,
    readonly subnet: number,
    readonly dataDir: string,
  ) {
    if (!/^[a-z0-9]{1,6}$/.test(runId)) throw new Error(`bad run id ${runId}`);
    if (subnet < 1 || subnet > 254) throw new Error(`bad subnet ${subnet}`);
    this.prefix = `bj${runId}`;
    this.bridge = `${this.prefix}br`;
    this.table = `${this.prefix}`;
    this.registryFile = path.join(REGISTRY_DIR, `${this.prefix}.json`);
  }

  ids(): number[] {
    return Array.from({ length: this.n }, (_, k) => k + 1);
  }
  ns(i: number): string {
    return `${this.prefix}-n${i}`;
  }
  private veth(i: number): string {
    return `${this.prefix}v${i}`;
  }
  addr(i: number): string {
    return `10.213.${this.subnet}.${10 + i}`;
  }
  clientAddr(): string {
    return `10.213.${this.subnet}.1`;
  }

  private registry(): Registry {
    return { prefix: this.prefix, ownerPid: process.pid, namespaces: this.ids().map((i) => this.ns(i)), bridge: this.bridge, dataDir: this.dataDir };
  }

  /** Bridge + one namespace per node, each with lo and eth0 (10.213.X.10+i/24). */
  async setup(): Promise<void> {
    fs.mkdirSync(REGISTRY_DIR, { recursive: true });
    fs.writeFileSync(this.registryFile, JSON.stringify(this.registry()));
    this.created = true;
    const sub = `10.213.${this.subnet}`;
    const taken = await run('ip', ['-br', 'addr']);
    if (taken.stdout.includes(`${sub}.`)) throw new Error(`${sub}.0/24 is already in use on this host`);
    await must('ip', ['link', 'add', this.bridge, 'type', 'bridge']);
    await must('ip', ['addr', 'add', `${this.clientAddr()}/24`, 'dev', this.bridge]);
    await must('ip', ['link', 'set', this.bridge, 'up']);
    for (const i of this.ids()) {
      const ns = this.ns(i);
      await must('ip', ['netns', 'add', ns]);
      await must('ip', ['link', 'add', this.veth(i), 'type', 'veth', 'peer', 'name', `${this.prefix}p${i}`]);
      await must('ip', ['link', 'set', `${this.prefix}p${i}`, 'netns', ns]);
      await must('ip', ['link', 'set', this.veth(i), 'master', this.bridge]);
      await must('ip', ['link', 'set', this.veth(i), 'up']);
      await this.exec(i, ['ip', 'link', 'set', 'lo', 'up']);
      await this.exec(i, ['ip', 'link', 'set', `${this.prefix}p${i}`, 'name', 'eth0']);
      await this.exec(i, ['ip', 'addr', 'add', `${this.addr(i)}/24`, 'dev', 'eth0']);
      await this.exec(i, ['ip', 'link', 'set', 'eth0', 'up']);
    }
    // Every node reaches the client address over the bridge before we go on (a TCP connect from
    // inside each namespace to a listener of this process).
    const srv = net.createServer((sock) => sock.destroy());
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(0, this.clientAddr(), () => resolve());
    });
    try {
      const port = (srv.address() as net.AddressInfo).port;
      const probe = `const s=require('net').connect(${port},'${this.clientAddr()}');s.on('connect',()=>process.exit(0));s.on('error',()=>process.exit(1));setTimeout(()=>process.exit(2),1000)`;
      for (const i of this.ids()) {
        for (let tries = 0; ; tries++) {
          const r = await run('ip', ['netns', 'exec', this.ns(i), process.execPath, '-e', probe], { timeoutMs: 5000 });
          if (r.code === 0) break;
          if (tries >= 20) throw new Error(`node ${i} cannot reach the client address ${this.clientAddr()}: ${r.stderr}`);
          await sleep(100);
        }
      }
    } finally {
      srv.close();
    }
  }

  /** Runs a command inside node i's namespace; throws on failure. */
  async exec(i: number, argv: readonly string[], timeoutMs = 30_000): Promise<string> {
    return (await must('ip', ['netns', 'exec', this.ns(i), ...argv], { timeoutMs })).stdout;
  }

  /** PIDs of every process living in node i's namespace (all of them started by this run). */
  async pids(i: number): Promise<number[]> {
    const r = await run('ip', ['netns', 'pids', this.ns(i)], { timeoutMs: 10_000 });
    return r.stdout.split(/\s+/).filter(Boolean).map(Number).filter((p) => Number.isInteger(p) && p > 0);
  }

  /**
   * PIDs living in node i's namespace now: `ip netns pids`, each one checked again through
   * /proc/PID/ns/net against the namespace's own inode (a PID that exited and was reused by some
   * other process in between is left out).
   */
  async ownPids(i: number): Promise<number[]> {
    let ino: number;
    try {
      ino = fs.statSync(path.join('/run/netns', this.ns(i))).ino;
    } catch {
      return [];
    }
    return (await this.pids(i)).filter((p) => netnsOf(p) === `net:[${ino}]`);
  }

  /** Namespace inode of node i (to check that a process really lives there). */
  async nsInode(i: number): Promise<string> {
    const pids = await this.pids(i);
    return pids.length > 0 ? netnsOf(pids[0]!) : '';
  }

  // ---- faults: nft tables and tc qdiscs inside the namespaces ----

  private rules: Map<number, string[]> = new Map();

  private async applyNft(i: number): Promise<void> {
    const lines = this.rules.get(i) ?? [];
    await run('ip', ['netns', 'exec', this.ns(i), 'nft', 'delete', 'table', 'inet', this.table], { timeoutMs: 10_000 });
    if (lines.length === 0) return;
    const script = [
      `table inet ${this.table} {`,
      '  chain input { type filter hook input priority 0; policy accept;',
      ...lines.filter((l) => l.startsWith('in ')).map((l) => `    ${l.slice(3)}`),
      '  }',
      '  chain output { type filter hook output priority 0; policy accept;',
      ...lines.filter((l) => l.startsWith('out ')).map((l) => `    ${l.slice(4)}`),
      '  }',
      '}',
      '',
    ].join('\n');
    const r = await run('ip', ['netns', 'exec', this.ns(i), 'nft', '-f', '-'], { timeoutMs: 10_000, input: script });
    if (r.code !== 0) throw new Error(`nft on node ${i} failed: ${r.stderr}\n${script}`);
  }

  private addRules(i: number, lines: string[]): void {
    this.rules.set(i, [...(this.rules.get(i) ?? []), ...lines]);
  }

  /**
   * Cuts traffic between node a and each of `others`, in both directions, in a's and their
   * namespaces. `ports` limits the cut to the control channel or the PostgreSQL ports (given as
   * the sets of port numbers). Traffic from and to the client is never touched here.
   */
  async cut(pairs: ReadonlyArray<readonly [number, number]>, ports: { kind: PortClass; numbers?: readonly number[] } = { kind: 'all' }): Promise<void> {
    const touched = new Set<number>();
    const portSet = ports.kind === 'all' ? '' : `{ ${(ports.numbers ?? []).join(', ')} }`;
    for (const [a, b] of pairs) {
      for (const [x, y] of [[a, b], [b, a]] as const) {
        const peer = this.addr(y);
        if (ports.kind === 'all') {
          this.addRules(x, [`in ip saddr ${peer} drop`, `out ip daddr ${peer} drop`]);
        } else {
          this.addRules(x, [
            `in ip saddr ${peer} tcp dport ${portSet} drop`,
            `in ip saddr ${peer} tcp sport ${portSet} drop`,
            `out ip daddr ${peer} tcp dport ${portSet} drop`,
            `out ip daddr ${peer} tcp sport ${portSet} drop`,
          ]);
        }
        touched.add(x);
      }
    }
    for (const x of touched) await this.applyNft(x);
  }

  /**
   * Drops, one way only, the packets that node `from` sends to each of `to` (TCP to or from the
   * given ports): dropped on `from`'s way out and on their way in. The other direction is left
   * alone (so TCP acknowledgements of that direction are lost too, as on a real one-way link).
   */
  async cutOneWay(from: number, to: readonly number[], ports: readonly number[]): Promise<void> {
    const set = `{ ${ports.join(', ')} }`;
    for (const y of to) {
      if (y === from) continue;
      this.addRules(from, [`out ip daddr ${this.addr(y)} tcp dport ${set} drop`, `out ip daddr ${this.addr(y)} tcp sport ${set} drop`]);
      this.addRules(y, [`in ip saddr ${this.addr(from)} tcp dport ${set} drop`, `in ip saddr ${this.addr(from)} tcp sport ${set} drop`]);
    }
    for (const x of new Set([from, ...to])) await this.applyNft(x);
  }

  /** Cuts node i from the client as well (a fully isolated host). */
  async cutClient(i: number): Promise<void> {
    this.addRules(i, [`in ip saddr ${this.clientAddr()} drop`, `out ip daddr ${this.clientAddr()} drop`]);
    await this.applyNft(i);
  }

  /** Random loss of pct % of the packets on node i's eth0, both directions. */
  async loss(i: number, pct: number): Promise<void> {
    const p = Math.max(1, Math.min(99, Math.round(pct)));
    this.addRules(i, [`in iifname "eth0" numgen random mod 100 < ${p} drop`, `out oifname "eth0" numgen random mod 100 < ${p} drop`]);
    await this.applyNft(i);
  }

  /**
   * A slow link on node i: tc netem delay when the kernel has sch_netem, otherwise a tbf rate limit
   * (queueing delay). Returns what was applied.
   */
  async slow(i: number, delayMs: number, rateKbit: number): Promise<string> {
    const netem = await run('ip', ['netns', 'exec', this.ns(i), 'tc', 'qdisc', 'replace', 'dev', 'eth0', 'root', 'netem', 'delay', `${delayMs}ms`, `${Math.round(delayMs / 4)}ms`], { timeoutMs: 10_000 });
    if (netem.code === 0) return `netem delay ${delayMs}ms`;
    const tbf = await run('ip', ['netns', 'exec', this.ns(i), 'tc', 'qdisc', 'replace', 'dev', 'eth0', 'root', 'tbf', 'rate', `${rateKbit}kbit`, 'burst', '4kb', 'latency', `${Math.max(50, delayMs * 4)}ms`], { timeoutMs: 10_000 });
    if (tbf.code !== 0) throw new Error(`tc on node ${i} failed: ${tbf.stderr}`);
    return `tbf rate ${rateKbit}kbit (no sch_netem in this kernel)`;
  }

  /** Removes every nft rule and qdisc this run put into the namespaces. */
  async healAll(): Promise<void> {
    this.rules.clear();
    for (const i of this.ids()) {
      await run('ip', ['netns', 'exec', this.ns(i), 'nft', 'delete', 'table', 'inet', this.table], { timeoutMs: 10_000 });
      await run('ip', ['netns', 'exec', this.ns(i), 'tc', 'qdisc', 'del', 'dev', 'eth0', 'root'], { timeoutMs: 10_000 });
    }
  }

  async healNode(i: number): Promise<void> {
    this.rules.delete(i);
    await this.applyNft(i);
  }

  /** Kills what still runs in the namespaces (SIGKILL), deletes them and the bridge. */
  async teardown(): Promise<void> {
    if (!this.created) return;
    for (const i of this.ids()) {
      for (let k = 0; k < 5; k++) {
        const pids = await this.pids(i);
        if (pids.length === 0) break;
        for (const p of pids) {
          try {
            process.kill(p, 'SIGKILL');
          } catch {
            // gone
          }
        }
        await sleep(200);
      }
      await run('ip', ['netns', 'del', this.ns(i)], { timeoutMs: 10_000 });
    }
    await run('ip', ['link', 'del', this.bridge], { timeoutMs: 10_000 });
    fs.rmSync(this.registryFile, { force: true });
    this.created = false;
  }

  /** Synchronous teardown for exit and signal handlers. */
  teardownSync(): void {
    if (!this.created) return;
    teardownRegistrySync(this.registry());
    fs.rmSync(this.registryFile, { force: true });
    this.created = false;
  }
}

export function teardownRegistrySync(r: Registry, removeData = false): void {
  for (const ns of r.namespaces) {
    if (!ns.startsWith(r.prefix)) continue;
    for (let k = 0; k < 5; k++) {
      const pids = runSync('ip', ['netns', 'pids', ns]).stdout.split(/\s+/).filter(Boolean).map(Number);
      if (pids.length === 0) break;
      for (const p of pids) {
        try {
          process.kill(p, 'SIGKILL');
        } catch {
          // gone
        }
      }
      runSync('sleep', ['0.2']);
    }
    runSync('ip', ['netns', 'del', ns]);
  }
  if (r.bridge.startsWith(r.prefix)) runSync('ip', ['link', 'del', r.bridge]);
  if (removeData && r.dataDir.includes('biha-jepsen-')) fs.rmSync(r.dataDir, { recursive: true, force: true });
}

/** Removes what runs whose process is gone left behind (their registry files say what). */
export function cleanupStale(log: (s: string) => void = () => undefined): number {
  let n = 0;
  let files: string[] = [];
  try {
    files = fs.readdirSync(REGISTRY_DIR).filter((f) => /^bj[a-z0-9]+\.json$/.test(f));
  } catch {
    return 0;
  }
  for (const f of files) {
    const file = path.join(REGISTRY_DIR, f);
    let r: Registry;
    try {
      r = JSON.parse(fs.readFileSync(file, 'utf8')) as Registry;
    } catch {
      continue;
    }
    let alive = false;
    try {
      process.kill(r.ownerPid, 0);
      alive = r.ownerPid !== process.pid && fs.readFileSync(`/proc/${r.ownerPid}/cmdline`, 'utf8').includes('node');
    } catch {
      alive = false;
    }
    if (alive) continue;
    log(`removing what run ${r.prefix} left behind (namespaces ${r.namespaces.join(', ')}, bridge ${r.bridge})`);
    teardownRegistrySync(r, true);
    fs.rmSync(file, { force: true });
    n++;
  }
  return n;
}
