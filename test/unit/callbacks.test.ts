// The callback runner on real processes: arguments and environment, the timeout that kills the
// whole process group, the bounded queue, and the event mapping (failover vs switchover).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CallbackEvents,
  CallbackRunner,
  callbackRole,
  callbackSettings,
} from '../../src/controller/ops/callbacks.js';
import type { CallbackEvent, CallbackEventInfo, CallbackOutcome, CallbackSettings } from '../../src/controller/ops/callbacks.js';
import type { SoftState } from '../../src/raft/index.js';

let dir = '';
const log = pino({ level: 'silent' });

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'biha-callbacks-'));
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

function script(name: string, body: string): string {
  const f = path.join(dir, name);
  fs.writeFileSync(f, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  return f;
}

function alive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) [ZX]/.test(stat);
  } catch {
    return false;
  }
}

async function waitUntil(what: string, fn: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (fn()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const ev = (over: Partial<CallbackEventInfo> = {}): CallbackEventInfo => ({
  event: 'failover',
  nodeId: 2,
  term: 7,
  role: 'leader',
  leaderId: 2,
  pgdata: dir,
  detail: 'leader',
  ...over,
});

function runner(settings: CallbackSettings, over: { maxQueue?: number; killGraceMs?: number } = {}): { r: CallbackRunner; outcomes: [CallbackEvent, CallbackOutcome][] } {
  const outcomes: [CallbackEvent, CallbackOutcome][] = [];
  const r = new CallbackRunner({ log, settings: async () => settings, onOutcome: (e, o) => outcomes.push([e, o]), ...over });
  return { r, outcomes };
}

describe('callbackSettings', () => {
  it('reads the per-event paths and the timeout, with defaults', () => {
    expect(callbackSettings({})).toEqual({ commands: {}, timeoutMs: 10_000 });
    const s = callbackSettings({
      'biha.callback_role_change': '/usr/local/bin/rc',
      'biha.callback_failover': ' /x/fo ',
      'biha.callback_switchover': '',
      'biha.callbacks_timeout': '2.5',
    });
    expect(s.commands).toEqual({ role_change: '/usr/local/bin/rc', failover: '/x/fo' });
    expect(s.timeoutMs).toBe(2500);
    expect(callbackSettings({ 'biha.callbacks_timeout': 'soon' }).timeoutMs).toBe(10_000);
    expect(callbackSettings({ 'biha.callbacks_timeout': '0' }).timeoutMs).toBe(10_000);
  });
});

describe('CallbackRunner', () => {
  it('passes <event> <node_id> <term> <detail> and the BIHA_* environment, without a shell', async () => {
    const out = path.join(dir, 'args.out');
    const f = script('args.sh', `printf '%s|' "$@" > ${out}; echo >> ${out}; echo "$BIHA_EVENT $BIHA_NODE_ID $BIHA_TERM $BIHA_ROLE $BIHA_LEADER_ID $BIHA_PGDATA" >> ${out}`);
    const { r, outcomes } = runner({ commands: { switchover: f }, timeoutMs: 5000 });
    r.fire(ev({ event: 'switchover', nodeId: 3, term: 12, role: 'leader', leaderId: 3, detail: 'leader; rm -rf /tmp/x $(id)' }));
    await r.idle();
    const lines = fs.readFileSync(out, 'utf8').split('\n');
    // The detail arrives as one argument, untouched: no shell saw it.
    expect(lines[0]).toBe('switchover|3|12|leader; rm -rf /tmp/x $(id)|');
    expect(lines[1]).toBe(`switchover 3 12 leader 3 ${dir}`);
    expect(outcomes).toEqual([['switchover', 'ok']]);
  });

  it('runs nothing for an event without a callback, and reports a failing one', async () => {
    const f = script('fail.sh', 'exit 3');
    const { r, outcomes } = runner({ commands: { node_error: f }, timeoutMs: 5000 });
    r.fire(ev({ event: 'role_change' }));
    r.fire(ev({ event: 'node_error', detail: 'REWIND_FAILED' }));
    await r.idle();
    expect(outcomes).toEqual([['node_error', 'failed']]);
    const res = await r.exec(f, ev(), 5000);
    expect(res.outcome).toBe('failed');
    expect(res.code).toBe(3);
  });

  it('refuses a relative path or a file that is not executable', async () => {
    const f = path.join(dir, 'noexec.sh');
    fs.writeFileSync(f, '#!/bin/sh\nexit 0\n', { mode: 0o644 });
    const { r } = runner({ commands: {}, timeoutMs: 1000 });
    expect((await r.exec('noexec.sh', ev(), 1000)).outcome).toBe('error');
    // root may run anything with an x bit; a file without one is refused for everybody.
    expect((await r.exec(f, ev(), 1000)).outcome).toBe('error');
    expect((await r.exec(path.join(dir, 'missing'), ev(), 1000)).outcome).toBe('error');
  });

  it('kills the process group of a callback that hangs past the timeout (SIGTERM, then SIGKILL)', async () => {
    const pids = path.join(dir, 'hang.pids');
    // The script ignores SIGTERM and leaves a child in its group: both must go.
    const f = script('hang.sh', `trap '' TERM\nsleep 1000 &\necho "$$ $!" > ${pids}\nwait\nwait`);
    const { r, outcomes } = runner({ commands: { failover: f }, timeoutMs: 600 }, { killGraceMs: 300 });
    const t0 = Date.now();
    r.fire(ev());
    await waitUntil('the callback to start', () => fs.existsSync(pids) && fs.readFileSync(pids, 'utf8').includes(' '));
    const [shPid, sleepPid] = fs.readFileSync(pids, 'utf8').trim().split(' ').map(Number) as [number, number];
    expect(alive(shPid)).toBe(true);
    expect(alive(sleepPid)).toBe(true);
    await r.idle();
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(600);
    expect(took).toBeLessThan(8000);
    expect(outcomes).toEqual([['failover', 'timeout']]);
    await waitUntil('the sleep child to be killed', () => !alive(sleepPid));
    expect(alive(shPid)).toBe(false);
  });

  it('fire() returns at once and keeps order; a full queue drops the oldest waiting event', async () => {
    const out = path.join(dir, 'order.out');
    const gate = path.join(dir, 'gate');
    const f = script('order.sh', `while [ ! -e ${gate} ]; do sleep 0.05; done\necho "$1 $3" >> ${out}`);
    const { r, outcomes } = runner({ commands: { role_change: f, failover: f }, timeoutMs: 20_000 }, { maxQueue: 3 });
    const t0 = performance.now();
    for (let term = 1; term <= 6; term++) r.fire(ev({ event: term % 2 ? 'role_change' : 'failover', term }));
    expect(performance.now() - t0).toBeLessThan(50);
    // Term 1 is running (or about to); 2..6 wait in a queue of 3: 2 and 3 are dropped.
    await waitUntil('term 1 to run', () => r.runningPid() !== null);
    expect(r.pending()).toBe(3);
    fs.writeFileSync(gate, '');
    await r.idle();
    expect(fs.readFileSync(out, 'utf8').trim().split('\n')).toEqual(['role_change 1', 'failover 4', 'role_change 5', 'failover 6']);
    expect(outcomes.filter(([, o]) => o === 'dropped')).toEqual([['failover', 'dropped'], ['role_change', 'dropped']]);
    expect(outcomes.filter(([, o]) => o === 'ok')).toHaveLength(4);
  });

  it('close() kills the running callback and drops the rest', async () => {
    const pidFile = path.join(dir, 'close.pid');
    const f = script('close.sh', `echo $$ > ${pidFile}\nexec sleep 1000`);
    const { r } = runner({ commands: { failover: f }, timeoutMs: 60_000 }, { killGraceMs: 200 });
    r.fire(ev());
    r.fire(ev({ term: 8 }));
    await waitUntil('the callback to start', () => fs.existsSync(pidFile) && fs.readFileSync(pidFile, 'utf8').trim() !== '');
    const pid = Number(fs.readFileSync(pidFile, 'utf8').trim());
    r.close();
    await r.idle();
    await waitUntil('the callback to be killed', () => !alive(pid));
    expect(r.pending()).toBe(0);
  });
});

describe('CallbackEvents', () => {
  const soft = (over: Partial<SoftState>): SoftState => ({ role: 'follower', term: 1, leaderId: 0, writable: false, state: 'FOLLOWER', transferTarget: 0, ...over });

  function events(): { e: CallbackEvents; fired: CallbackEventInfo[] } {
    const fired: CallbackEventInfo[] = [];
    const fake = { fire: (x: CallbackEventInfo) => fired.push(x) } as unknown as CallbackRunner;
    return { e: new CallbackEvents(fake, 2, '/data'), fired };
  }

  it('maps states to roles', () => {
    expect(callbackRole(soft({ role: 'leader', state: 'LEADER_RW' }))).toBe('leader');
    expect(callbackRole(soft({ role: 'candidate', state: 'CANDIDATE' }))).toBe('follower');
    expect(callbackRole(soft({ state: 'NODE_ERROR' }))).toBe('node_error');
    expect(callbackRole(soft({ state: 'NODE_ERROR_VOTING' }))).toBe('node_error');
  });

  it('an election after the leader was lost is a failover; after TimeoutNow it is a switchover', () => {
    const { e, fired } = events();
    const f1 = soft({ term: 3, leaderId: 1 });
    e.onSoft(null, soft({ term: 3, state: 'STARTUP' }));
    expect(fired).toEqual([]);
    e.onSoft(soft({ term: 3 }), f1);
    const c4 = soft({ role: 'candidate', term: 4, state: 'CANDIDATE' });
    e.onSoft(f1, c4);
    const l4 = soft({ role: 'leader', term: 4, leaderId: 2, state: 'LEADER_RW' });
    e.onSoft(c4, l4);
    const f5 = soft({ term: 5, leaderId: 3 });
    e.onSoft(l4, f5);
    e.noteTimeoutNow(5);
    const c6 = soft({ role: 'candidate', term: 6, state: 'CANDIDATE' });
    e.onSoft(f5, c6);
    e.onSoft(c6, soft({ role: 'leader', term: 6, leaderId: 2, state: 'LEADER_RW' }));
    e.nodeError(soft({ term: 6, state: 'NODE_ERROR', leaderId: 3 }), 'REWIND_FAILED');
    expect(fired.map((x) => `${x.event} ${x.term} ${x.detail} ${x.role} ${x.leaderId}`)).toEqual([
      'role_change 3 follower follower 1',
      'role_change 4 leader leader 2',
      'failover 4 leader leader 2',
      'role_change 5 follower follower 3',
      'role_change 6 leader leader 2',
      'switchover 6 leader leader 2',
      'node_error 6 REWIND_FAILED node_error 3',
    ]);
    expect(fired.every((x) => x.nodeId === 2 && x.pgdata === '/data')).toBe(true);
  });

  it('a TimeoutNow whose campaign failed does not make a later election a switchover', () => {
    const { e, fired } = events();
    e.onSoft(null, soft({ term: 5, leaderId: 1 }));
    e.noteTimeoutNow(5);
    e.onSoft(soft({ term: 5, leaderId: 1 }), soft({ role: 'candidate', term: 6, state: 'CANDIDATE' }));
    e.onSoft(soft({ role: 'candidate', term: 6, state: 'CANDIDATE' }), soft({ role: 'leader', term: 7, leaderId: 2, state: 'LEADER_RW' }));
    expect(fired.map((x) => x.event)).toEqual(['role_change', 'role_change', 'failover']);
  });
});
