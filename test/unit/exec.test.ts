// The program runner on real processes: output and lines, failures with their exit code and stderr
// tail, timeouts that stop the program (and its whole group when it has one), and a grandchild that
// keeps the pipes open.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExecError, programOutput, runProgram, startProgram } from '../../src/controller/exec.js';

let dir = '';
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'biha-exec-'));
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) [ZX]/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

async function failure(p: Promise<unknown>): Promise<ExecError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(ExecError);
    return e as ExecError;
  }
  throw new Error('the run did not fail');
}

describe('runProgram', () => {
  it('returns stdout and stderr, passes input, and splits lines on \\r and \\n', async () => {
    const lines: string[] = [];
    const r = await runProgram('sh', ['-c', 'cat; printf "a\\rb\\nc" >&2'], { input: 'hello\n', onStderrLine: (l) => lines.push(l) });
    expect(r.stdout).toBe('hello\n');
    expect(r.stderr).toBe('a\rb\nc');
    expect(lines).toEqual(['a', 'b', 'c']);
  });

  it('passes exactly the environment given, without a shell', async () => {
    const r = await runProgram('/usr/bin/env', [], { env: { ONLY: 'x $(id)' } });
    expect(r.stdout.trim()).toBe('ONLY=x $(id)');
  });

  it('a non-zero exit is an ExecError with the program, exit code and stderr tail', async () => {
    const e = await failure(runProgram('sh', ['-c', 'echo one >&2; echo two >&2; exit 3']));
    expect(e.failure).toBe('exit');
    expect(e.code).toBe('exec_exit');
    expect(e.program).toBe('sh');
    expect(e.exitCode).toBe(3);
    expect(e.tail).toBe('one | two');
    expect(e.message).toBe('sh failed with exit code 3: one | two');
    expect(e.command).toContain("sh -c 'echo one");
  });

  it('a program that cannot be started fails as spawn', async () => {
    const e = await failure(runProgram(path.join(dir, 'missing'), []));
    expect(e.failure).toBe('spawn');
    expect(e.message).toMatch(/^cannot run missing: spawn .*ENOENT/);
    expect(await programOutput(path.join(dir, 'missing'), [])).toBeNull();
  });

  it('stops a program past its timeout, with SIGKILL when it ignores SIGTERM', async () => {
    const t0 = Date.now();
    const e = await failure(runProgram('sh', ['-c', "trap '' TERM; while :; do sleep 0.05; done"], { timeoutMs: 300, killGraceMs: 300 }));
    expect(e.failure).toBe('timeout');
    expect(e.message).toBe('sh did not finish within 300 ms and was stopped');
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  it('does not wait for a grandchild that keeps the pipes open', async () => {
    const pidFile = path.join(dir, 'daemon.pid');
    const t0 = Date.now();
    const r = await runProgram('sh', ['-c', `sleep 30 & echo $! > ${pidFile}; echo started`], { pipeGraceMs: 200 });
    expect(r.stdout).toBe('started\n');
    expect(Date.now() - t0).toBeLessThan(5000);
    process.kill(Number(fs.readFileSync(pidFile, 'utf8').trim()), 'SIGKILL');
  });
});

describe('startProgram with a process group', () => {
  it('the timeout kills the whole group', async () => {
    const pids = path.join(dir, 'group.pids');
    const run = startProgram('sh', ['-c', `trap '' TERM; sleep 1000 & echo "$$ $!" > ${pids}; wait; wait`], {
      processGroup: true,
      timeoutMs: 500,
      killGraceMs: 200,
      noOutput: true,
    });
    const e = await failure(run.done);
    expect(e.failure).toBe('timeout');
    const [sh, sleep] = fs.readFileSync(pids, 'utf8').trim().split(' ').map(Number) as [number, number];
    expect(sh).toBe(run.pid);
    const deadline = Date.now() + 5000;
    while (alive(sleep) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(alive(sleep)).toBe(false);
  });

  it('stop() ends the group; the run fails with the signal', async () => {
    const run = startProgram('sleep', ['1000'], { processGroup: true, killGraceMs: 200 });
    expect(run.pid).not.toBeNull();
    run.stop();
    const e = await failure(run.done);
    expect(e.failure).toBe('exit');
    expect(e.signal).toBe('SIGTERM');
  });
});
