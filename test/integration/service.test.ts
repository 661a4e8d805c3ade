// Service (maintenance) mode on real PostgreSQL: while it is on, the loss of the leader starts no
// election; it shows in bihactl status, biha.config(), GET /cluster and /metrics; and it can be
// turned off even when the cluster has no leader left (one node campaigns once to commit that).
import { describe, expect, it } from 'vitest';
import { TestCluster, bihaOk, bihactl, sleep, waitFor } from '../helpers/cluster.js';
import { useCluster } from '../helpers/suite.js';

async function httpGet(port: number, p: string): Promise<{ status: number; text: string }> {
  const r = await fetch(`http://127.0.0.1:${port}${p}`);
  return { status: r.status, text: await r.text() };
}

describe('service mode on real PostgreSQL', () => {
  const c = new TestCluster({ nodes: 3, basePort: 23000 });
  const httpPort = (i: number): number => c.httpPort(i);

  useCluster(c);

  it('is refused on a follower with the leader named, and turned on at the leader; every view shows it', async () => {
    const l = await c.waitLeader();
    const f = c.ids().find((i) => i !== l)!;
    const bad = await bihactl(['service-mode', '--on', `--pgdata=${c.pgdata(f)}`]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(new RegExp(`^bihactl: .*the leader is node ${l}`, 'm'));
    const both = await bihactl(['service-mode', '--on', '--off', `--pgdata=${c.pgdata(l)}`]);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('give exactly one of --on and --off');

    await bihaOk(['service-mode', '--on', `--pgdata=${c.pgdata(l)}`]);
    for (const i of c.ids()) {
      await waitFor(`node ${i} to see service mode`, async () => (await c.status(i)).config.service_mode);
    }
    const table = await bihaOk(['status', `--pgdata=${c.pgdata(f)}`]);
    expect(table.stdout).toContain('SERVICE MODE on');
    const cfg = await c.sql<{ service_mode: boolean }>(f, 'select service_mode from biha.config()', [], 'biha_db');
    expect(cfg[0]?.service_mode).toBe(true);
    const cluster = JSON.parse((await httpGet(httpPort(f), '/cluster')).text) as { config: { service_mode: boolean } };
    expect(cluster.config.service_mode).toBe(true);
    expect((await httpGet(httpPort(f), '/metrics')).text).toMatch(/^biha_service_mode\{[^}]*\} 1$/m);
  }, 120_000);

  it('the loss of the leader starts no election while it is on, also after the old leader comes back', async () => {
    const l = await c.waitLeader();
    const others = c.ids().filter((i) => i !== l);
    c.kill9(l, 'both');
    // Heartbeat 200 ms x 5: an election would start within about 1-2 s. Watch for 6 s.
    const deadline = Date.now() + 6000;
    while (Date.now() < deadline) {
      for (const i of others) {
        const st = (await c.status(i)).status.find((x) => x.id === i)!;
        expect(['LEADER_RW', 'LEADER_RO', 'CANDIDATE']).not.toContain(st.state);
      }
      await sleep(300);
    }
    await c.start(l);
    await sleep(3000);
    for (const i of c.ids()) {
      const s = await c.status(i);
      expect(s.status.filter((x) => x.state === 'LEADER_RW' || x.state === 'LEADER_RO')).toEqual([]);
      expect(s.config.service_mode).toBe(true);
    }
  }, 120_000);

  it('turning it off without a leader elects the node asked, and failover works again afterwards', async () => {
    const asked = 2;
    const r = await bihaOk(['service-mode', '--off', `--pgdata=${c.pgdata(asked)}`]);
    expect(r.stderr).toContain('service mode is off');
    const l = await c.waitLeader({ timeoutMs: 30_000 });
    expect(l).toBe(asked);
    for (const i of c.ids()) {
      await waitFor(`node ${i} to see service mode off`, async () => !(await c.status(i)).config.service_mode);
    }
    await c.sql(l, 'create table if not exists after_service (id int)', [], 'biha_db');
    await c.sql(l, 'insert into after_service values (1)', [], 'biha_db');

    for (const i of c.ids()) if (i !== l) await c.waitState(i, 'FOLLOWER', 90_000);
    c.kill9(l, 'both');
    const next = await c.waitLeader({ not: l, timeoutMs: 30_000 });
    expect(next).not.toBe(l);
    await bihaOk(['start', `--pgdata=${c.pgdata(l)}`]);
  }, 240_000);
});
