// WatchdogClient against both real watchdog processes (the Perl one, bin/biha-watchdog, and the
// Node one, `bihactl watchdog --pgdata=DIR`), spawned exactly as the controller spawns them, as the
// current user; then the line protocol spoken to each directly, and the two mixed on one directory. PGDATA is a temporary directory with
// pg_biha/log/ and a postmaster.pid naming a harmless process started here (`sleep 60`): fencing
// is that process receiving SIGQUIT. No PostgreSQL is needed.
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WatchdogClient, monoMs } from '../../src/controller/pg/watchdog.js';
import type { WatchdogOptions } from '../../src/controller/pg/watchdog.js';
import { watchdogCommand } from '../../src/controller/pg/watchdogcmd.js';
import type { WatchdogImpl } from '../../src/controller/pg/watchdogcmd.js';
import { BIHACTL, ensureBuilt, sleep, waitFor } from '../helpers/cluster.js';

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');

const IMPLS: WatchdogImpl[] = ['perl', 'node'];
/** The implementation the tests of the current describe block run. */
let impl: WatchdogImpl = 'perl';
let base = '';
/** Every process this file started (fake postmasters, watchdogs): killed after each test if still running. */
const started = new Set<number>();
const clients: WatchdogClient[] = [];

beforeAll(() => {
  ensureBuilt();
  base = fs.mkdtempSync(path.join(os.tmpdir(), 'biha-watchdog-'));
});
afterEach(async () => {
  for (const c of clients.splice(0)) c.stop();
  await sleep(100);
  for (const pid of started) {
    if (running(pid)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }
  started.clear();
});
afterAll(() => {
  fs.rmSync(base, { recursive: true, force: true });
});

/** True while the process exists and is not a zombie. */
function running(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) [ZX]/.test(stat);
  } catch {
    return false;
  }
}

interface Fixture {
  pgdata: string;
  postmaster: ChildProcess;
  /** Resolves with the signal that ended the fake postmaster. */
  ended: Promise<NodeJS.Signals | null>;
  endedAt: () => number | null;
}

let seq = 0;
function fixture(): Fixture {
  const pgdata = path.join(base, `node${++seq}`);
  fs.mkdirSync(path.join(pgdata, 'pg_biha', 'log'), { recursive: true });
  const postmaster = spawn('sleep', ['60'], { stdio: 'ignore' });
  const pid = postmaster.pid;
  if (pid === undefined) throw new Error('could not start sleep');
  started.add(pid);
  fs.writeFileSync(path.join(pgdata, 'postmaster.pid'), `${pid}\n${pgdata}\n${Math.floor(Date.now() / 1000)}\n5432\n`);
  let at: number | null = null;
  const ended = new Promise<NodeJS.Signals | null>((resolve) =>
    postmaster.once('exit', (_code, sig) => {
      at = performance.now();
      resolve(sig);
    }),
  );
  return { pgdata, postmaster, ended, endedAt: () => at };
}

/** Health events as the owner sees them, and the client's log lines. */
class Owner {
  readonly health: boolean[] = [];
  readonly logs: string[] = [];
  readonly log = pino({ level: 'debug' }, { write: (s: string) => void this.logs.push(s) });
  readonly onHealth = (alive: boolean): void => {
    this.health.push(alive);
  };
  async healthIs(n: number, timeoutMs = 5000): Promise<boolean[]> {
    return await waitFor(`${n} health events (have ${JSON.stringify(this.health)})`, async () => this.health.length >= n && this.health.slice(), timeoutMs, 10);
  }
}

function client(f: Fixture, o: Owner, opts: Omit<WatchdogOptions, 'onHealth'> = {}, bin = BIHACTL): WatchdogClient {
  const c = new WatchdogClient(f.pgdata, bin, o.log, { impl, ...opts, onHealth: o.onHealth });
  clients.push(c);
  return c;
}

/** A started client whose watchdog runs and reported healthy once. */
async function runningWatchdog(opts: Omit<WatchdogOptions, 'onHealth'> = {}): Promise<{ f: Fixture; o: Owner; c: WatchdogClient; pid: number }> {
  const f = fixture();
  const o = new Owner();
  const c = client(f, o, opts);
  c.start();
  const pid = await watchdogPid(f);
  expect(await o.healthIs(1)).toEqual([true]);
  return { f, o, c, pid };
}

/** The PID in pg_biha/watchdog.pid once it names a running process other than `not`. */
async function watchdogPid(f: Fixture, not: number | null = null): Promise<number> {
  const pid = await waitFor('the watchdog PID file', async () => {
    try {
      const p = Number(fs.readFileSync(path.join(f.pgdata, 'pg_biha', 'watchdog.pid'), 'utf8').trim());
      return p > 0 && p !== not && running(p) ? p : null;
    } catch {
      return null;
    }
  }, 5000, 10);
  started.add(pid);
  return pid;
}

function controllerLog(f: Fixture): string {
  try {
    return fs.readFileSync(path.join(f.pgdata, 'pg_biha', 'log', 'controller.log'), 'utf8');
  } catch {
    return '';
  }
}

describe.each(IMPLS)('WatchdogClient with the real %s watchdog process', (which) => {
  beforeAll(() => {
    impl = which;
  });

  it('runs the implementation asked for, and says so', async () => {
    const { o, pid } = await runningWatchdog();
    const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    expect(cmdline).toContain(which === 'perl' ? 'biha-watchdog' : 'bihactl.js\0watchdog');
    expect(o.logs.join('')).toContain(`"impl":"${which}"`);
  });

  it('an arm is confirmed by the watchdog, and so is a disarm', async () => {
    const { f, o, c } = await runningWatchdog();
    expect(c.alive()).toBe(true);
    const now = performance.now();
    expect(await c.arm(now + 5000, now)).toBe(true);
    expect(await c.disarm()).toBe(true);
    await sleep(100);
    expect(running(f.postmaster.pid!)).toBe(true);
    expect(o.health).toEqual([true]);
  });

  it('an armed deadline that passes fences the postmaster with SIGQUIT; the watchdog keeps running disarmed', async () => {
    const { f, o, c, pid } = await runningWatchdog();
    const now = performance.now();
    expect(await c.arm(now + 300, now)).toBe(true);
    expect(await Promise.race([f.ended, sleep(3000).then(() => 'not fenced')])).toBe('SIGQUIT');
    expect(f.endedAt()! - now).toBeGreaterThanOrEqual(290);
    await waitFor('the fence in the log', async () => controllerLog(f).includes('fenced with an immediate shutdown'), 2000, 10);
    // Its controller is still there: the watchdog stays, disarmed, and answers.
    await sleep(100);
    expect(running(pid)).toBe(true);
    expect(o.health).toEqual([true]);
    expect(await c.disarm()).toBe(true);
  });

  it('a confirmed disarm prevents the fence', async () => {
    const { f, o, c } = await runningWatchdog();
    const now = performance.now();
    expect(await c.arm(now + 300, now)).toBe(true);
    expect(await c.disarm()).toBe(true);
    await sleep(800);
    expect(running(f.postmaster.pid!)).toBe(true);
    expect(controllerLog(f)).not.toContain('fenced');
  });

  it('renewals push the deadline without waiting; when they stop, the last deadline fences', async () => {
    const { f, o, c } = await runningWatchdog();
    const t0 = performance.now();
    expect(await c.arm(t0 + 300, t0)).toBe(true);
    for (let i = 0; i < 10; i++) {
      await sleep(100);
      const now = performance.now();
      c.renew(now + 300, now);
    }
    expect(running(f.postmaster.pid!)).toBe(true);
    const last = performance.now();
    expect(await Promise.race([f.ended, sleep(3000).then(() => 'not fenced')])).toBe('SIGQUIT');
    expect(f.endedAt()! - last).toBeGreaterThanOrEqual(150);
  });

  it('an arm after the watchdog was killed resolves false quickly', async () => {
    const { f, o, c, pid } = await runningWatchdog({ restartMinMs: 2000 });
    process.kill(pid, 'SIGKILL');
    const now = performance.now();
    const ok = await c.arm(now + 5000, now);
    expect(ok).toBe(false);
    expect(performance.now() - now).toBeLessThan(500);
    // Nothing to talk to until the restart: still false, at once.
    const t1 = performance.now();
    expect(await c.arm(t1 + 5000, t1)).toBe(false);
    expect(performance.now() - t1).toBeLessThan(50);
    expect(c.alive()).toBe(false);
  });

  it('a killed watchdog is restarted: health goes down, then up once the new one answers', async () => {
    const { f, o, c, pid } = await runningWatchdog();
    process.kill(pid, 'SIGKILL');
    const pid2 = await watchdogPid(f, pid);
    expect(pid2).not.toBe(pid);
    expect(await o.healthIs(3)).toEqual([true, false, true]);
    expect(c.alive()).toBe(true);
    const now = performance.now();
    expect(await c.arm(now + 5000, now)).toBe(true);
    expect(o.logs.join('')).toContain('the watchdog exited');
  });

  it('a watchdog killed while armed: health down at once; the restarted one holds the same deadline before health is up', async () => {
    const { f, o, c, pid } = await runningWatchdog();
    const now = performance.now();
    expect(await c.arm(now + 1500, now)).toBe(true);
    process.kill(pid, 'SIGKILL');
    await watchdogPid(f, pid);
    expect(running(f.postmaster.pid!)).toBe(true);
    // Nobody renews: the new watchdog fences at the deadline the owner had set.
    expect(await Promise.race([f.ended, sleep(4000).then(() => 'not fenced')])).toBe('SIGQUIT');
    expect(f.endedAt()! - now).toBeGreaterThanOrEqual(1490);
    expect(o.health).toEqual([true, false, true]);
  });

  it('a frozen watchdog does not confirm: the arm resolves false within the bound, and it is replaced', async () => {
    const { f, o, c, pid } = await runningWatchdog({ ackTimeoutMs: 300 });
    process.kill(pid, 'SIGSTOP');
    const now = performance.now();
    expect(await c.arm(now + 5000, now)).toBe(false);
    const took = performance.now() - now;
    expect(took).toBeGreaterThanOrEqual(290);
    expect(took).toBeLessThan(1000);
    expect(await o.healthIs(3)).toEqual([true, false, true]);
    await waitFor('the frozen watchdog to be gone', async () => !running(pid), 3000, 10);
    await watchdogPid(f, pid);
    const t1 = performance.now();
    expect(await c.arm(t1 + 5000, t1)).toBe(true);
  });

  it('a controller that was stalled itself does not take the unread answers for a silent watchdog', async () => {
    const { f, o, c, pid } = await runningWatchdog({ ackTimeoutMs: 300 });
    const block = (ms: number): void => {
      const until = Date.now() + ms;
      while (Date.now() < until) {
        // this process is stalled; the answers wait in the pipe
      }
    };
    const now = performance.now();
    const armed = c.arm(now + 5000, now);
    block(800);
    expect(await armed).toBe(true);
    const t1 = performance.now();
    c.renew(t1 + 5000, t1);
    block(800);
    const t2 = performance.now();
    c.renew(t2 + 5000, t2);
    await sleep(500);
    expect(await c.disarm()).toBe(true);
    expect(o.health).toEqual([true]);
    expect(c.pid()).toBe(pid);
    expect(running(pid)).toBe(true);
  });

  it('renewals notice a frozen watchdog too: unanswered for longer than the bound, it is replaced and the new one holds the latest deadline', async () => {
    const { f, o, c, pid } = await runningWatchdog({ ackTimeoutMs: 300 });
    process.kill(pid, 'SIGSTOP');
    const t0 = performance.now();
    while (o.health.length < 2 && performance.now() - t0 < 3000) {
      const now = performance.now();
      c.renew(now + 1000, now);
      await sleep(50);
    }
    expect(o.health).toEqual([true, false]);
    expect(performance.now() - t0).toBeLessThan(1000);
    const last = performance.now();
    c.renew(last + 1500, last);
    expect(await o.healthIs(3)).toEqual([true, false, true]);
    expect(running(pid)).toBe(false);
    expect(await Promise.race([f.ended, sleep(4000).then(() => 'not fenced')])).toBe('SIGQUIT');
    expect(f.endedAt()! - last).toBeGreaterThanOrEqual(1490);
  });

  it('an arm while the watchdog is still starting resolves false at once; the watchdog that comes up holds that deadline', async () => {
    const f = fixture();
    const o = new Owner();
    const c = client(f, o);
    c.start();
    const now = performance.now();
    expect(await c.arm(now + 2000, now)).toBe(false);
    expect(performance.now() - now).toBeLessThan(50);
    expect(await o.healthIs(1)).toEqual([true]);
    expect(running(f.postmaster.pid!)).toBe(true);
    expect(await Promise.race([f.ended, sleep(5000).then(() => 'not fenced')])).toBe('SIGQUIT');
    expect(f.endedAt()! - now).toBeGreaterThanOrEqual(1990);
  });

  it('a watchdog that cannot start is retried with a growing delay, not in a loop', async () => {
    const f = fixture();
    const o = new Owner();
    const counter = path.join(f.pgdata, 'starts');
    // A bihactl.js and a biha-watchdog that count their starts and fail.
    const broken = path.join(f.pgdata, 'bihactl.js');
    fs.writeFileSync(broken, `import * as fs from 'node:fs';\nfs.appendFileSync(${JSON.stringify(counter)}, 'x');\nprocess.exit(1);\n`);
    fs.writeFileSync(path.join(f.pgdata, 'biha-watchdog'), `open(my $f, '>>', ${JSON.stringify(counter)}) or die; print {$f} 'x'; close $f; exit 1;\n`, { mode: 0o755 });
    const c = client(f, o, { restartMinMs: 100, restartMaxMs: 400 }, broken);
    c.start();
    await sleep(2000);
    c.stop();
    const starts = fs.readFileSync(counter, 'utf8').length;
    // 0, then 100, 200, 400, 400, … ms between attempts (plus the start of node itself).
    expect(starts).toBeGreaterThanOrEqual(3);
    expect(starts).toBeLessThanOrEqual(8);
    expect(o.health.every((h) => !h)).toBe(true);
    expect(c.alive()).toBe(false);
  });

  it('stop: the watchdog exits, nothing is fenced, nothing restarts', async () => {
    const { f, o, c, pid } = await runningWatchdog();
    const now = performance.now();
    expect(await c.arm(now + 300, now)).toBe(true);
    c.stop();
    await waitFor('the watchdog to exit', async () => !running(pid), 3000, 10);
    await sleep(500);
    expect(running(f.postmaster.pid!)).toBe(true);
    expect(fs.existsSync(path.join(f.pgdata, 'pg_biha', 'watchdog.pid'))).toBe(false);
    expect(o.health).toEqual([true]);
  });

  it('detach: the controller process exits at once, the watchdog keeps guarding the lease and fences at its deadline', async () => {
    const f = fixture();
    // A controller of its own: a separate node process that arms, detaches and must then exit by itself.
    const script = `
      import { pino } from 'pino';
      import { WatchdogClient } from ${JSON.stringify(path.join(ROOT, 'dist', 'controller', 'pg', 'watchdog.js'))};
      const c = new WatchdogClient(${JSON.stringify(f.pgdata)}, ${JSON.stringify(BIHACTL)}, pino({ level: 'silent' }), {
        impl: ${JSON.stringify(which)},
        onHealth: async (up) => {
          if (!up) return;
          const now = performance.now();
          const ok = await c.arm(now + 3000, now);
          process.stdout.write(ok ? 'armed\\n' : 'not armed\\n');
          c.detach();
        },
      });
      c.start();
    `;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT, encoding: 'utf8', timeout: 10_000 });
    expect(r.stdout.trim()).toBe('armed');
    expect(r.status).toBe(0);
    // It exited well before the deadline: nothing of the detached watchdog held it.
    expect(running(f.postmaster.pid!)).toBe(true);
    const pid = await watchdogPid(f);
    expect(await Promise.race([f.ended, sleep(4000).then(() => 'not fenced')])).toBe('SIGQUIT');
    // Its controller is gone: after the fence it exits and removes its PID file.
    await waitFor('the detached watchdog to exit', async () => !running(pid), 3000, 10);
    expect(fs.existsSync(path.join(f.pgdata, 'pg_biha', 'watchdog.pid'))).toBe(false);
  });

  it('detach while the watchdog is dead and not yet restarted: one is started for the current deadline', async () => {
    const { f, o, c, pid } = await runningWatchdog({ restartMinMs: 10_000 });
    const now = performance.now();
    expect(await c.arm(now + 2500, now)).toBe(true);
    process.kill(pid, 'SIGKILL');
    expect(await o.healthIs(2)).toEqual([true, false]);
    c.detach();
    const fresh = await watchdogPid(f, pid);
    expect(running(f.postmaster.pid!)).toBe(true);
    expect(await Promise.race([f.ended, sleep(5000).then(() => 'not fenced')])).toBe('SIGQUIT');
    expect(f.endedAt()! - now).toBeGreaterThanOrEqual(2490);
    await waitFor('the detached watchdog to exit', async () => !running(fresh), 3000, 10);
    expect(o.health).toEqual([true, false]);
  });

  it('a new watchdog beside an older detached one: the old one only keeps its own deadline, then leaves; the PID file stays the new one', async () => {
    await olderBesideNewer(which, which);
  });
});

describe.each([
  ['node', 'perl'],
  ['perl', 'node'],
] as const)('an older %s watchdog beside a newer %s one on the same directory', (older, newer) => {
  it('the old one only keeps its own deadline, then leaves; the PID file stays the new one', async () => {
    await olderBesideNewer(older, newer);
  });
});

/** A controller with an `older` watchdog detaches while armed; a new one starts a `newer` watchdog on the same directory. */
async function olderBesideNewer(older: WatchdogImpl, newer: WatchdogImpl): Promise<void> {
  const f = fixture();
  const o1 = new Owner();
  const c1 = client(f, o1, { impl: older });
  c1.start();
  const old = await watchdogPid(f);
  expect(await o1.healthIs(1)).toEqual([true]);
  const now = performance.now();
  expect(await c1.arm(now + 3000, now)).toBe(true);
  c1.detach();
  // A new controller starts on the same directory while the old lease still runs.
  const o2 = new Owner();
  const c2 = client(f, o2, { impl: newer });
  c2.start();
  const fresh = await watchdogPid(f, old);
  expect(await o2.healthIs(1)).toEqual([true]);
  expect(running(old)).toBe(true);
  expect(running(f.postmaster.pid!)).toBe(true);
  expect(o2.logs.join('') + controllerLog(f)).toMatch(new RegExp(`watchdog \\(PID ${old}\\) is still running`));
  expect(await Promise.race([f.ended, sleep(6000).then(() => 'not fenced')])).toBe('SIGQUIT');
  expect(f.endedAt()! - now).toBeGreaterThanOrEqual(2990);
  await waitFor('the old watchdog to exit', async () => !running(old), 3000, 10);
  expect(Number(fs.readFileSync(path.join(f.pgdata, 'pg_biha', 'watchdog.pid'), 'utf8').trim())).toBe(fresh);
  expect(running(fresh)).toBe(true);
  expect(o2.health).toEqual([true]);
}

/** A watchdog process spoken to directly over its pipes, without WatchdogClient. */
class Raw {
  readonly proc: ChildProcess;
  readonly lines: string[] = [];
  readonly exited: Promise<number | null>;
  private buf = '';
  constructor(f: Fixture, which: WatchdogImpl) {
    const cmd = watchdogCommand(BIHACTL, f.pgdata, which);
    this.proc = spawn(cmd.file, cmd.args, { stdio: ['pipe', 'pipe', 'ignore'] });
    if (this.proc.pid !== undefined) started.add(this.proc.pid);
    this.exited = new Promise((resolve) => this.proc.once('exit', (code) => resolve(code)));
    this.proc.stdin?.on('error', () => undefined);
    this.proc.stdout?.setEncoding('utf8');
    this.proc.stdout?.on('data', (chunk: string) => {
      this.buf += chunk;
      const parts = this.buf.split('\n');
      this.buf = parts.pop() ?? '';
      this.lines.push(...parts);
    });
  }
  send(line: string): void {
    this.proc.stdin?.write(line + '\n');
  }
  async line(prefix: string): Promise<string> {
    return await waitFor(`a line "${prefix}..." from the watchdog (have ${JSON.stringify(this.lines)})`, async () => this.lines.find((l) => l.startsWith(prefix)) ?? null, 5000, 10);
  }
  /** Waits for `ready`, checks its clock against this process's, and returns the watchdog's PID. */
  async ready(): Promise<number> {
    const words = (await this.line('ready ')).split(' ');
    const skew = monoMs() - Number(words[2]);
    expect(skew).toBeGreaterThanOrEqual(-5);
    expect(skew).toBeLessThan(60_000);
    return Number(words[1]);
  }
}

describe.each(IMPLS)('the %s watchdog\'s line protocol', (which) => {
  it('ready names its PID, which the PID file holds; ok answers each command; arm without renewal fences the postmaster with SIGQUIT', async () => {
    const f = fixture();
    const w = new Raw(f, which);
    const pid = await w.ready();
    expect(pid).toBe(w.proc.pid);
    expect(fs.readFileSync(path.join(f.pgdata, 'pg_biha', 'watchdog.pid'), 'utf8')).toBe(`${pid}\n`);
    expect(fs.statSync(path.join(f.pgdata, 'pg_biha', 'watchdog.pid')).mode & 0o777).toBe(0o600);
    w.send(`arm 7 ${(monoMs() + 300).toFixed(3)}`);
    expect(await w.line('ok ')).toBe('ok 7');
    expect(await Promise.race([f.ended, sleep(3000).then(() => 'not fenced')])).toBe('SIGQUIT');
    expect(await w.line('fenced ')).toBe(`fenced 7 ${f.postmaster.pid}`);
    expect(controllerLog(f)).toContain(`"component":"WD"`);
    expect(controllerLog(f)).toContain(`PostgreSQL (PID ${f.postmaster.pid}) fenced with an immediate shutdown`);
  });

  it('a deadline already passed fences at once; a disarm before the deadline prevents the fence; an unknown line is logged and ignored', async () => {
    const f = fixture();
    const w = new Raw(f, which);
    await w.ready();
    w.send('hello "there"');
    w.send(`arm 1 ${(monoMs() + 400).toFixed(3)}`);
    w.send('disarm 2');
    await w.line('ok 2');
    expect(w.lines).toContain('ok 1');
    await sleep(700);
    expect(running(f.postmaster.pid!)).toBe(true);
    expect(controllerLog(f)).toContain('ignored an unknown command from the controller: \\"hello \\\\\\"there\\\\\\"\\"');
    w.send(`arm 3 ${(monoMs() - 10).toFixed(3)}`);
    expect(await Promise.race([f.ended, sleep(3000).then(() => 'not fenced')])).toBe('SIGQUIT');
    expect(await w.line('fenced ')).toBe(`fenced 3 ${f.postmaster.pid}`);
  });

  it('stdin closed while armed: it fences at the deadline, then exits and removes its PID file', async () => {
    const f = fixture();
    const w = new Raw(f, which);
    await w.ready();
    const t0 = performance.now();
    w.send(`arm 1 ${(monoMs() + 800).toFixed(3)}`);
    await w.line('ok 1');
    w.proc.stdin?.end();
    await sleep(300);
    expect(running(w.proc.pid!)).toBe(true);
    expect(await Promise.race([f.ended, sleep(4000).then(() => 'not fenced')])).toBe('SIGQUIT');
    expect(f.endedAt()! - t0).toBeGreaterThanOrEqual(790);
    expect(await Promise.race([w.exited, sleep(3000).then(() => 'still running')])).toBe(0);
    expect(fs.existsSync(path.join(f.pgdata, 'pg_biha', 'watchdog.pid'))).toBe(false);
  });

  it('stdin closed while disarmed: it exits at once and fences nothing', async () => {
    const f = fixture();
    const w = new Raw(f, which);
    await w.ready();
    w.send('disarm 1');
    await w.line('ok 1');
    w.proc.stdin?.end();
    expect(await Promise.race([w.exited, sleep(3000).then(() => 'still running')])).toBe(0);
    expect(running(f.postmaster.pid!)).toBe(true);
    expect(fs.existsSync(path.join(f.pgdata, 'pg_biha', 'watchdog.pid'))).toBe(false);
  });

  it('SIGTERM and SIGHUP while armed are ignored (it still answers and fences); SIGTERM while disarmed ends it', async () => {
    const f = fixture();
    const w = new Raw(f, which);
    await w.ready();
    w.send(`arm 1 ${(monoMs() + 60_000).toFixed(3)}`);
    await w.line('ok 1');
    w.proc.kill('SIGTERM');
    w.proc.kill('SIGHUP');
    await sleep(300);
    expect(running(w.proc.pid!)).toBe(true);
    w.send(`arm 2 ${(monoMs() + 200).toFixed(3)}`);
    await w.line('ok 2');
    expect(await Promise.race([f.ended, sleep(3000).then(() => 'not fenced')])).toBe('SIGQUIT');
    await w.line('fenced ');
    // Fenced, it is disarmed: now a SIGTERM ends it (SIGHUP still does not).
    w.proc.kill('SIGHUP');
    await sleep(200);
    expect(running(w.proc.pid!)).toBe(true);
    w.proc.kill('SIGTERM');
    expect(await Promise.race([w.exited, sleep(3000).then(() => 'still running')])).toBe(0);
  });

  it('the PID file is left alone at exit when it names another process', async () => {
    const f = fixture();
    const w = new Raw(f, which);
    await w.ready();
    const pidFile = path.join(f.pgdata, 'pg_biha', 'watchdog.pid');
    fs.writeFileSync(pidFile, `${f.postmaster.pid}\n`);
    w.proc.stdin?.end();
    expect(await Promise.race([w.exited, sleep(3000).then(() => 'still running')])).toBe(0);
    expect(fs.readFileSync(pidFile, 'utf8')).toBe(`${f.postmaster.pid}\n`);
  });

  it('a PID file naming a running process that is not a watchdog is not taken for an earlier watchdog', async () => {
    const f = fixture();
    fs.writeFileSync(path.join(f.pgdata, 'pg_biha', 'watchdog.pid'), `${f.postmaster.pid}\n`);
    const w = new Raw(f, which);
    const pid = await w.ready();
    expect(fs.readFileSync(path.join(f.pgdata, 'pg_biha', 'watchdog.pid'), 'utf8')).toBe(`${pid}\n`);
    expect(controllerLog(f)).not.toContain('an earlier watchdog');
    w.proc.stdin?.end();
    expect(await Promise.race([w.exited, sleep(3000).then(() => 'still running')])).toBe(0);
  });
});
