// Event callbacks and the failback window on a real 3-node cluster: a callback script logs its
// arguments; kill -9 of the leader logs failover on the new leader, biha.set_leader logs switchover,
// a hanging callback neither delays a failover nor outlives biha.callbacks_timeout; a failback
// window brings leadership back to the preferred node, and stops doing so once it is reset.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestCluster, bihactl, bihaOk, sleep, waitFor } from '../helpers/cluster.js';

const failbackOf = (s: unknown): unknown => (s as { extra?: { failback?: unknown } }).extra?.failback;

function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) [ZX]/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

describe('callbacks and the failback window on a 3-node cluster', () => {
  const c = new TestCluster({ nodes: 3, basePort: 21500 });
  const logOf = (i: number): string => path.join(c.dir, `cb-${i}.log`);
  const lines = (i: number): string[] => (fs.existsSync(logOf(i)) ? fs.readFileSync(logOf(i), 'utf8').split('\n').filter((l) => l !== '') : []);
  const logScript = path.join(c.dir, 'cb.sh');
  const hangScript = path.join(c.dir, 'hang.sh');

  /** Replaces this test's callback lines in every node's postgresql.biha.conf. */
  function configure(settings: Record<string, string>): void {
    for (const i of c.ids()) {
      const f = path.join(c.pgdata(i), 'postgresql.biha.conf');
      const kept = fs.readFileSync(f, 'utf8').split('\n').filter((l) => !/^biha\.callback/.test(l)).join('\n').replace(/\n*$/, '\n');
      fs.writeFileSync(f, kept + Object.entries(settings).map(([k, v]) => `${k} = '${v}'\n`).join(''));
    }
  }

  /**
   * select biha.set_leader(target) on the node that is neither the leader nor the target (it is
   * passed on to the leader): the old leader's PostgreSQL restarts as a standby and would end the
   * session.
   */
  async function switchTo(target: number): Promise<void> {
    const cur = await c.waitLeader();
    if (cur === target) return;
    const via = c.ids().find((i) => i !== cur && i !== target)!;
    const r = await c.su<{ set_leader: boolean }>(via, `select biha.set_leader(${target})`, 'biha_db');
    expect(r[0]?.set_leader).toBe(true);
    await waitFor(`node ${target} to lead`, async () => ((await c.leader(target)) === target ? true : null), 30_000);
  }

  async function termOf(i: number): Promise<number> {
    return (await c.status(i)).config.term;
  }

  beforeAll(async () => {
    fs.writeFileSync(logScript, `#!/bin/sh\necho "$* leader=$BIHA_LEADER_ID role=$BIHA_ROLE event=$BIHA_EVENT node=$BIHA_NODE_ID term=$BIHA_TERM pgdata=$BIHA_PGDATA pw=\${BIHA_REPLICATION_PASSWORD:-none}" >> ${c.dir}/cb-$BIHA_NODE_ID.log\n`, { mode: 0o755 });
    fs.writeFileSync(hangScript, `#!/bin/sh\nsleep 1000 &\necho "$$ $!" >> ${c.dir}/hang-$BIHA_NODE_ID.pids\nwait\n`, { mode: 0o755 });
    fs.chmodSync(logScript, 0o755);
    fs.chmodSync(hangScript, 0o755);
    await c.create();
    configure({
      'biha.callback_role_change': logScript,
      'biha.callback_failover': logScript,
      'biha.callback_switchover': logScript,
      'biha.callback_node_error': logScript,
    });
  }, 180_000);
  afterAll(async () => {
    // A hanging callback whose controller was killed with -9 outlives it: end those this test
    // started (their PIDs are in hang-*.pids and their working directory is a node of this cluster).
    for (const f of fs.existsSync(c.dir) ? fs.readdirSync(c.dir).filter((x) => /^hang-\d+\.pids$/.test(x)) : []) {
      for (const pid of fs.readFileSync(path.join(c.dir, f), 'utf8').split(/\s+/).map(Number).filter((n) => n > 0)) {
        let cwd = '';
        try {
          cwd = fs.readlinkSync(`/proc/${pid}/cwd`);
        } catch {
          continue;
        }
        if (cwd.startsWith(c.dir)) process.kill(pid, 'SIGKILL');
      }
    }
    await c.destroy();
  }, 120_000);

  it('kill -9 of the leader: the new leader runs failover and role_change callbacks; the old one reports follower on return', async () => {
    const old = await c.waitLeader();
    c.kill9(old, 'both');
    const next = await c.waitLeader({ not: old, timeoutMs: 30_000 });
    const term = await termOf(next);
    await waitFor(`failover on node ${next}`, async () => lines(next).some((l) => l.startsWith(`failover ${next} ${term} leader `)), 20_000);
    const mine = lines(next);
    expect(mine).toContain(`role_change ${next} ${term} leader leader=${next} role=leader event=role_change node=${next} term=${term} pgdata=${c.pgdata(next)} pw=none`);
    expect(mine).toContain(`failover ${next} ${term} leader leader=${next} role=leader event=failover node=${next} term=${term} pgdata=${c.pgdata(next)} pw=none`);
    // role_change was queued first, and nothing called it a switchover.
    expect(mine.findIndex((l) => l.startsWith('role_change') && l.includes(' leader leader='))).toBeLessThan(mine.findIndex((l) => l.startsWith('failover')));
    expect(mine.some((l) => l.startsWith('switchover'))).toBe(false);

    await bihaOk(['start', `--pgdata=${c.pgdata(old)}`]);
    await c.waitState(old, 'FOLLOWER');
    await waitFor(`node ${old} to report follower`, async () => lines(old).some((l) => l.startsWith(`role_change ${old} `) && l.includes(` follower leader=${next} `)), 20_000);
    expect(lines(old).some((l) => l.startsWith('failover') || l.startsWith('switchover'))).toBe(false);
  });

  it('select biha.set_leader(n) runs switchover on the new leader and role_change follower on the old one', async () => {
    const cur = await c.waitLeader();
    const target = c.ids().find((i) => i !== cur)!;
    const before = lines(target).length;
    await switchTo(target);
    const term = await termOf(target);
    await waitFor(`switchover on node ${target}`, async () => lines(target).some((l) => l.startsWith(`switchover ${target} ${term} leader leader=${target}`)), 20_000);
    const added = lines(target).slice(before);
    expect(added.some((l) => l.startsWith(`role_change ${target} ${term} leader `))).toBe(true);
    expect(added.some((l) => l.startsWith('failover'))).toBe(false);
    // The old leader steps down when the target's vote request arrives, before it knows the winner.
    await waitFor(`role_change follower on node ${cur}`, async () => lines(cur).some((l) => new RegExp(`^role_change ${cur} ${term} follower leader=(0|${target}) role=follower `).test(l)), 20_000);
  });

  it('a failback window returns leadership to the preferred node; reset, it stays where it was put', async () => {
    // Node 2 leads first.
    await switchTo(2);
    await c.waitState(1, 'FOLLOWER');

    // Bad input: one clear line, nothing stored.
    await expect(c.su(2, "select biha.set_failback(1, 'every minute')", 'biha_db')).rejects.toThrow(/"every minute" is not a valid cron expression: give 5 fields/);
    await expect(c.su(2, "select biha.set_failback(9, '* * * * *')", 'biha_db')).rejects.toThrow(/node 9 is not in the cluster/);
    const bad = await bihactl(['failback', `--pgdata=${c.pgdata(3)}`, '--id=1', '--cron=61 * * * *']);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toMatch(/^bihactl: "61 \* \* \* \*" is not a valid cron expression/);
    expect(failbackOf(await c.status(2))).toBeNull();

    // Set from a follower (forwarded to the leader), every second.
    const t0 = Date.now();
    const set = await bihactl(['failback', `--pgdata=${c.pgdata(3)}`, '--id=1', '--cron=* * * * * *']);
    expect(set.code, set.stderr).toBe(0);
    expect(set.stderr).toContain("leadership may return to node 1 at '* * * * * *'");
    await waitFor('leadership back on node 1', async () => ((await c.leader(1)) === 1 ? true : null), 60_000);
    expect(Date.now() - t0).toBeLessThan(60_000);
    const st = await c.status(1);
    expect(failbackOf(st)).toEqual({ id: 1, cron: '* * * * * *' });
    const shown = await bihaOk(['status', `--pgdata=${c.pgdata(1)}`]);
    expect(shown.stdout).toContain("failback window: leadership may return to node 1 at '* * * * * *'");
    // A failback is a planned transfer: node 1 ran its switchover callback.
    const term = await termOf(1);
    await waitFor('switchover on node 1', async () => lines(1).some((l) => l.startsWith(`switchover 1 ${term} leader`)), 20_000);

    // Reset: a switchover to node 2 now sticks.
    const off = await c.su<{ reset_failback: boolean }>(3, 'select biha.reset_failback()', 'biha_db');
    expect(off[0]?.reset_failback).toBe(true);
    await c.waitState(2, 'FOLLOWER');
    await switchTo(2);
    expect(failbackOf(await c.status(2))).toBeNull();
    for (let k = 0; k < 6; k++) {
      await sleep(1000);
      expect(await c.leader(2)).toBe(2);
    }
  });

  it('a callback that hangs on every node does not hold up a failover and is killed after biha.callbacks_timeout', async () => {
    configure({
      'biha.callback_role_change': hangScript,
      'biha.callback_failover': logScript,
      'biha.callbacks_timeout': '15',
    });
    const old = await c.waitLeader();
    await c.waitState(c.ids().find((i) => i !== old)!, 'FOLLOWER');
    c.kill9(old, 'both');
    const t0 = Date.now();
    const next = await c.waitLeader({ not: old, timeoutMs: 30_000 });
    const pidsFile = path.join(c.dir, `hang-${next}.pids`);
    await waitFor('the hanging callback to start', async () => fs.existsSync(pidsFile) && fs.readFileSync(pidsFile, 'utf8').includes(' '), 20_000);
    const startedAt = Date.now();
    const [sh, sl] = fs.readFileSync(pidsFile, 'utf8').trim().split('\n').pop()!.split(' ').map(Number) as [number, number];
    // The new leader takes writes while its role_change callback hangs.
    await waitFor('a write on the new leader', async () => {
      await c.su(next, 'create table if not exists cb_t (v int); insert into cb_t values (1)', 'biha_db');
      return true;
    }, 30_000);
    // ... well before the callback's 15 s are up: it is still running.
    expect(Date.now() - startedAt).toBeLessThan(14_000);
    expect(alive(sh)).toBe(true);
    expect(alive(sl)).toBe(true);
    // Killed after 15 s (SIGTERM to its process group, SIGKILL 2 s later at the latest).
    await waitFor('the hanging callback and its child to be gone', async () => !alive(sh) && !alive(sl), 40_000);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(15_000);
    // The failover callback queued behind it ran after it was killed.
    const term = await termOf(next);
    await waitFor(`failover logged on node ${next}`, async () => lines(next).some((l) => l.startsWith(`failover ${next} ${term} leader`)), 20_000);
    const metrics = await fetch(`http://127.0.0.1:${c.httpPort(next)}/metrics`).then((r) => r.text());
    expect(metrics).toMatch(/biha_callbacks_total\{[^}]*event="role_change"[^}]*outcome="timeout"[^}]*\} [1-9]/);
    expect(metrics).toMatch(/biha_callbacks_total\{[^}]*event="failover"[^}]*outcome="ok"[^}]*\} [1-9]/);
    await bihaOk(['start', `--pgdata=${c.pgdata(old)}`]);
    await c.waitState(old, 'FOLLOWER');
  });
});
