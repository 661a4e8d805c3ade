// A returning old leader whose WAL went past the new timeline's fork point: NODE_ERROR with its
// details (autorewind off), kept across restarts, cleared by `bihactl rewind` (the runbook); and with
// biha.autorewind on, rewound and following by itself.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { TestCluster, bihaOk, sleep, waitFor } from '../helpers/cluster.js';
import { useCluster } from '../helpers/suite.js';

function setAutorewind(c: TestCluster, i: number, on: boolean): void {
  const f = path.join(c.pgdata(i), 'postgresql.biha.conf');
  const text = fs.readFileSync(f, 'utf8').replace(/^biha\.autorewind\s*=.*$/m, `biha.autorewind = ${on ? 'true' : 'false'}`);
  fs.writeFileSync(f, text);
}

describe('rejoining a diverged old leader', () => {
  const c = new TestCluster({ nodes: 3, basePort: 16500 });
  useCluster(c);

  it('autorewind off: NODE_ERROR with the divergence details, kept across a restart; bihactl rewind brings it back', async () => {
    const old = await c.divergeAndCrashLeader();
    await bihaOk(['start', `--pgdata=${c.pgdata(old)}`]);
    const st = await c.waitState(old, 'NODE_ERROR', 60_000);
    expect(st.error.type).toBe('TIMELINE_DIVERGED');
    expect(st.error.begin_lsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    expect(st.error.end_lsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    expect(st.error.next_tli).toBeGreaterThan(st.error.current_tli ?? 0);
    // The error is persisted in pg_biha/biha.state: a restart comes back in NODE_ERROR.
    await bihaOk(['stop', `--pgdata=${c.pgdata(old)}`]);
    await bihaOk(['start', `--pgdata=${c.pgdata(old)}`]);
    const back = await waitFor('the restarted node to report its state', async () => (await c.status(old)).status.find((x) => x.id === old)?.state);
    expect(back).toBe('NODE_ERROR');
    // The runbook: rewind from the leader (identity and the replaced WAL files are kept).
    const r = await bihaOk(['rewind', `--pgdata=${c.pgdata(old)}`]);
    expect(r.stderr).toContain('rewound from node');
    const after = await c.waitState(old, 'FOLLOWER', 60_000);
    expect(after.error.type).toBe('NO_ERROR');
    expect(fs.existsSync(path.join(c.pgdata(old), 'pg_biha', 'biha.conf'))).toBe(true);
    // The rows only the old leader had are gone; the node follows the new timeline.
    await waitFor('the rewound node to be a streaming standby', async () => {
      const rows = await c.su<{ n: string }>(old, "select count(*) as n from pg_stat_wal_receiver where status = 'streaming'");
      return rows[0]?.n === '1';
    });
    const t = await c.su<{ t: string | null }>(old, "select to_regclass('only_on_old')::text as t", 'biha_db');
    expect(t[0]?.t).toBeNull();
  });

  it('autorewind on: the old leader is rewound and follows by itself', async () => {
    for (const i of c.ids()) setAutorewind(c, i, true);
    // Followers must be streaming again before the next divergence.
    for (const i of c.ids()) await c.waitState(i, (await c.leader()) === i ? 'LEADER_RW' : 'FOLLOWER');
    const old = await c.divergeAndCrashLeader();
    await bihaOk(['start', `--pgdata=${c.pgdata(old)}`]);
    const st = await c.waitState(old, 'FOLLOWER', 90_000);
    expect(st.error.type).toBe('NO_ERROR');
    await waitFor('the rewound node to stream', async () => {
      const rows = await c.su<{ n: string }>(old, "select count(*) as n from pg_stat_wal_receiver where status = 'streaming'");
      return rows[0]?.n === '1';
    });
    const t = await c.su<{ t: string | null }>(old, "select to_regclass('only_on_old')::text as t", 'biha_db');
    expect(t[0]?.t).toBeNull();
  });
});
