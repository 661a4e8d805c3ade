// bihactl's questions on a terminal (a pseudo-terminal from util-linux `script`): the confirmation
// of a disruptive remote command and the HTTP password typed without BIHA_HTTP_PASSWORD.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { BIHACTL, ensureBuilt } from '../helpers/cluster.js';

const pexec = promisify(execFile);
/** In this suite's port range, with nothing listening: a request that is sent fails with exit 4. */
const DEAD_URL = 'http://127.0.0.1:25996';

/** Runs bihactl on a pseudo-terminal, typing `input`; returns its exit code and everything the terminal showed. */
async function onTerminal(args: string[], input: string): Promise<{ code: number; screen: string }> {
  const cmd = [process.execPath, BIHACTL, ...args].map((a) => `'${a}'`).join(' ');
  const env = { ...process.env };
  delete env['BIHA_HTTP_PASSWORD'];
  const child = pexec('script', ['-qec', cmd, '/dev/null'], { env, timeout: 60_000 });
  child.child.stdin?.end(input);
  try {
    const r = await child;
    return { code: 0, screen: r.stdout };
  } catch (e) {
    const x = e as { code?: number; stdout?: string };
    return { code: typeof x.code === 'number' ? x.code : -1, screen: x.stdout ?? '' };
  }
}

beforeAll(() => {
  ensureBuilt();
}, 180_000);

describe('on a terminal', () => {
  it('a disruptive remote command asks first; anything but y cancels before anything is sent', async () => {
    const no = await onTerminal(['set-leader', '2', `--url=${DEAD_URL}`], 'n\n');
    expect(no.screen).toMatch(/switch the leadership of http:\/\/127\.0\.0\.1:25996 over to node 2: are you sure\? \[y\/N\]/);
    expect(no.screen).toMatch(/bihactl: switch the leadership .* cancelled, nothing was changed/);
    expect(no.code).toBe(1);
    const yes = await onTerminal(['set-leader', '2', `--url=${DEAD_URL}`], 'y\n');
    expect(yes.screen).toMatch(/are you sure\? \[y\/N\]/);
    // Confirmed, the request went out, and no node answered it.
    expect(yes.screen).toMatch(/bihactl: no node answered: http:\/\/127\.0\.0\.1:25996 \(ECONNREFUSED\)/);
    expect(yes.code).toBe(4);
  }, 120_000);

  it('--force asks nothing; --http-user without BIHA_HTTP_PASSWORD asks for the password', async () => {
    const forced = await onTerminal(['service-mode', 'on', `--url=${DEAD_URL}`, '--force'], '');
    expect(forced.screen).not.toMatch(/are you sure/);
    expect(forced.code).toBe(4);
    const typed = await onTerminal(['restart', `--url=${DEAD_URL}`, '--force', '--http-user=admin'], 'some-password\r');
    expect(typed.screen).toMatch(/HTTP password for admin: /);
    expect(typed.screen).toMatch(/no node answered/);
    expect(typed.code).toBe(4);
  }, 120_000);
});
