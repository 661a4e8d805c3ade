// The lease watchdog on a real leader: a watchdog that dies is noticed and restarted by its
// controller, and its node stops leading meanwhile (nobody would fence its PostgreSQL); a leader's
// watchdog fences PostgreSQL when the controller is killed; a watchdog that fenced a frozen
// controller's PostgreSQL stays for when it resumes.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { connectMultiHost, parseMultiHostUri } from '../../src/client/multihost.js';
import { TestCluster, bihaOk, sleep, waitFor } from '../helpers/cluster.js';
import { useCluster } from '../helpers/suite.js';

function running(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) [ZX]/.test(stat);
  } catch {
    return false;
  }
}

describe('the watchdog of a real leader', () => {
  const c = new TestCluster({ nodes: 3, basePort: 23700 });
  useCluster(c, () => {
    // The fenced leader may hold records its followers never received: it rejoins through pg_rewind.
    c.setAutorewind(true);
  });

  const log = (i: number): string => fs.readFileSync(path.join(c.pgdata(i), 'pg_biha', 'log', 'controller.log'), 'utf8');
  /** The running watchdog of node i (its PID file names a process of this cluster), other than `not`. */
  const watchdogPid = async (i: number, not: number | null = null): Promise<number> =>
    await waitFor(`the watchdog of node ${i}`, async () => {
      const pid = Number(fs.readFileSync(path.join(c.pgdata(i), 'pg_biha', 'watchdog.pid'), 'utf8').trim());
      if (!pid || pid === not || !running(pid)) return null;
      return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(c.dir) ? pid : null;
    }, 10_000, 20);

  it('kill -9 of the leader watchdog: the node stops leading at once (nobody would fence it), gets a new watchdog; a leader whose controller is killed is fenced by its watchdog', async () => {
    const leader = await c.waitLeader();
    const term = (await c.status(leader)).status.find((x) => x.id === leader)!.term ?? 0;
    const old = await watchdogPid(leader);
    process.kill(old, 'SIGKILL');
    const fresh = await watchdogPid(leader, old);
    expect(fresh).not.toBe(old);
    await waitFor('the controller to report the new watchdog', async () => log(leader).includes('holds the current lease state'), 10_000, 50);
    expect(log(leader)).toContain('the watchdog exited');
    // A node whose PostgreSQL nobody would fence does not lead: it stepped down, and a leader of a
    // later term (maybe itself again, with its new watchdog) is writable.
    const next = await waitFor('a writable leader in a later term', async () => {
      const l = await c.waitLeader();
      const st = (await c.status(l)).status.find((x) => x.id === l)!;
      return st.state === 'LEADER_RW' && (st.term ?? 0) > term ? l : null;
    }, 30_000, 100);
    const { client, port } = await connectMultiHost(parseMultiHostUri(c.connString()));
    try {
      expect(port).toBe(c.port(next));
      await client.query('create table if not exists wd_probe (id int)');
      await client.query('insert into wd_probe values (1)');
    } finally {
      await client.end();
    }

    // The leader's watchdog holds the lease: with the controller gone it fences PostgreSQL.
    const guard = await watchdogPid(next);
    const postmaster = c.postmasterPid(next)!;
    c.kill9(next, 'controller');
    await waitFor('the watchdog to fence PostgreSQL', async () => !running(postmaster), 10_000, 20);
    expect(log(next)).toContain('fenced with an immediate shutdown');
    await waitFor('the watchdog to exit', async () => !running(guard), 10_000, 20);
    const after = await c.waitLeader({ not: next });
    expect(after).not.toBe(next);
    await bihaOk(['start', `--pgdata=${c.pgdata(next)}`]);
    await c.waitStreaming(next);
  });

  it('SIGSTOP of the leader controller: its watchdog fences and stays; after SIGCONT the node follows with the same watchdog', async () => {
    const leader = await c.waitLeader();
    const wd = await watchdogPid(leader);
    const postmaster = c.postmasterPid(leader)!;
    const before = log(leader).split('fenced with an immediate shutdown').length;
    c.signalController(leader, 'SIGSTOP');
    try {
      await waitFor('the watchdog to fence PostgreSQL', async () => !running(postmaster), 10_000, 20);
      expect(log(leader).split('fenced with an immediate shutdown').length).toBe(before + 1);
      await sleep(500);
      expect(running(wd)).toBe(true);
    } finally {
      c.signalController(leader, 'SIGCONT');
    }
    await c.waitStreaming(leader);
    expect(await watchdogPid(leader)).toBe(wd);
  });
});
