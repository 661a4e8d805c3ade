// Port blocks for tests on real servers (test/helpers/ports.ts): two claims never share a port,
// a port something listens on is skipped, and a claim left by a process that is gone is taken over.
import * as fs from 'node:fs';
import * as net from 'node:net';
import { spawnSync } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { claimPorts, releasePorts } from '../helpers/ports.js';

const HINT = 29900;
const mine: number[] = [];
const claim = (hint: number, count: number): number => {
  const base = claimPorts(hint, count);
  for (let k = 0; k < count; k++) mine.push(base + k);
  return base;
};

afterEach(() => {
  releasePorts(mine.splice(0));
});

describe('port blocks', () => {
  it('gives two claims from one hint blocks that do not overlap, and the same ports again once released', () => {
    const a = claim(HINT, 5);
    const b = claim(HINT, 5);
    expect(b).toBeGreaterThanOrEqual(a + 5);
    releasePorts(mine.splice(0));
    expect(claim(HINT, 5)).toBe(a);
  });

  it('skips a block in which something listens', async () => {
    const free = claim(HINT, 3);
    releasePorts(mine.splice(0));
    const srv = net.createServer();
    await new Promise<void>((resolve) => srv.listen(free + 1, '127.0.0.1', resolve));
    try {
      expect(claim(free, 3)).toBeGreaterThanOrEqual(free + 3);
    } finally {
      await new Promise((resolve) => srv.close(resolve));
    }
  });

  it('takes over the claim of a process that is gone, not that of a live one', () => {
    const base = claim(HINT, 1);
    releasePorts(mine.splice(0));
    const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    const deadPid = Number(gone.stdout);
    fs.writeFileSync(`/tmp/biha-test-ports/${base}`, String(deadPid));
    expect(claim(base, 1)).toBe(base);
    releasePorts(mine.splice(0));
    // PID 1 is alive: its claim stands.
    fs.writeFileSync(`/tmp/biha-test-ports/${base}`, '1');
    try {
      expect(claim(base, 1)).toBeGreaterThan(base);
    } finally {
      fs.rmSync(`/tmp/biha-test-ports/${base}`, { force: true });
    }
  });
});
