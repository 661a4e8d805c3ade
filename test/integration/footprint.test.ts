// A real node's lease watchdog is the Perl one, started by its controller, and the controller runs
// with its Node settings: the leader's Perl watchdog fences the real PostgreSQL when the controller
// is killed, exits, and a restarted controller starts a Perl watchdog again. Ports 29100-29109.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONTROLLER_NODE_FLAGS } from '../../src/bihactl/controllerflags.js';
import { TestCluster, waitFor } from '../helpers/cluster.js';

const c = new TestCluster({ nodes: 1, basePort: 29100, nquorum: 1, minnodes: 1 });

function running(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) [ZX]/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

const cmdline = (pid: number): string[] => fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
const parentOf = (pid: number): number => {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
};
const log = (): string => fs.readFileSync(path.join(c.pgdata(1), 'pg_biha', 'log', 'controller.log'), 'utf8');

/** The running watchdog named by the PID file, other than `not`. */
async function watchdogPid(not: number | null = null): Promise<number> {
  return await waitFor('the watchdog of node 1', async () => {
    try {
      const pid = Number(fs.readFileSync(path.join(c.pgdata(1), 'pg_biha', 'watchdog.pid'), 'utf8').trim());
      return pid > 0 && pid !== not && running(pid) ? pid : null;
    } catch {
      return null;
    }
  }, 30_000, 50);
}

describe('the footprint of a real node', () => {
  beforeAll(async () => {
    const r = await c.init();
    if (r.code !== 0) throw new Error(`init failed: ${r.stderr}`);
    await c.start(1);
    await c.waitLeader();
  }, 180_000);
  afterAll(async () => {
    await c.destroy();
  }, 120_000);

  it('the controller runs with its Node settings and starts the Perl watchdog as its child', async () => {
    const ctl = c.controllerPid(1)!;
    const args = cmdline(ctl);
    for (const f of CONTROLLER_NODE_FLAGS) expect(args).toContain(f);
    const wd = await watchdogPid();
    expect(cmdline(wd).some((a) => a.endsWith(`${path.sep}bin${path.sep}biha-watchdog`))).toBe(true);
    expect(cmdline(wd)).toContain(`--pgdata=${c.pgdata(1)}`);
    expect(parentOf(wd)).toBe(ctl);
    await waitFor('the log line about the Perl watchdog', async () => log().includes('the lease watchdog runs as a Perl script'), 10_000, 50);
  });

  it('kill -9 of the leader controller: the Perl watchdog fences PostgreSQL, exits, and the restarted controller starts a new one', async () => {
    await c.waitLeader();
    const wd = await watchdogPid();
    const postmaster = c.postmasterPid(1)!;
    c.kill9(1, 'controller');
    await waitFor('the watchdog to fence PostgreSQL', async () => !running(postmaster), 60_000, 50);
    expect(log()).toContain(`PostgreSQL (PID ${postmaster}) fenced with an immediate shutdown`);
    await waitFor('the watchdog to exit', async () => !running(wd), 10_000, 50);
    expect(fs.existsSync(path.join(c.pgdata(1), 'pg_biha', 'watchdog.pid'))).toBe(false);
    await c.start(1);
    await c.waitLeader();
    const fresh = await watchdogPid(wd);
    expect(cmdline(fresh).some((a) => a.endsWith('biha-watchdog'))).toBe(true);
  });
});
