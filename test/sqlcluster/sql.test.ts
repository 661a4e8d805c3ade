// The biha_db SQL interface on a real 3-node cluster (issue: "biha_db SQL interface works on every
// node"). Nothing stands in for the controller: every command goes through the SQL bridge of the
// node psql is connected to, to that node's controller, and on to the leader when it must.
//
// Golden files, pg_regress style: test/sqlcluster/golden/<script>.sql runs through
//   runuser -u postgres -- psql -X -a -h SOCKET_DIR -p PORT -d biha_db -f <script>.sql
// (stdout and stderr together, from the golden directory) and must equal the .out file named for
// that run. UPDATE_GOLDEN=1 rewrites the .out files; review the diff afterwards.
// The scripts run in the order of the `it`s below: the cluster is shared and changes on the way
// (roles, a switchover to node 2, heartbeat_max_lost = 7).
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestCluster, waitFor } from '../helpers/cluster.js';

const GOLDEN = path.join(path.dirname(fileURLToPath(import.meta.url)), 'golden');
const UPDATE = process.env['UPDATE_GOLDEN'] === '1';
const PSQL = '/usr/lib/postgresql/15/bin/psql';

const c = new TestCluster({ nodes: 3, basePort: 19100, heartbeatSendPeriod: 500, heartbeatMaxLost: 10 });
const outDir = fs.mkdtempSync(path.join(os.tmpdir(), 'biha-sqlcluster-'));

/** Runs psql as the OS user postgres on node i; stdout and stderr go to one file, in order. */
async function psql(i: number, args: string[]): Promise<{ code: number; out: string }> {
  const file = path.join(outDir, `psql-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}.out`);
  const fd = fs.openSync(file, 'w');
  try {
    const code = await new Promise<number>((resolve, reject) => {
      const p = spawn('runuser', ['-u', 'postgres', '--', PSQL, '-X', '-h', c.socketDir(i), '-p', String(c.port(i)), '-d', 'biha_db', ...args], {
        cwd: GOLDEN,
        stdio: ['ignore', fd, fd],
        env: { ...process.env, PGTZ: 'UTC', PGDATESTYLE: 'ISO, MDY', LC_ALL: 'C' },
      });
      const timer = setTimeout(() => p.kill('SIGKILL'), 90_000);
      p.on('error', reject);
      p.on('exit', (code) => {
        clearTimeout(timer);
        resolve(code ?? 1);
      });
    });
    return { code, out: fs.readFileSync(file, 'utf8') };
  } finally {
    fs.closeSync(fd);
    fs.rmSync(file, { force: true });
  }
}

/** One value from a query on node i (psql -At), or an exception. */
async function value(i: number, sql: string): Promise<string> {
  const r = await psql(i, ['-A', '-t', '-v', 'ON_ERROR_STOP=1', '-c', sql]);
  if (r.code !== 0) throw new Error(`psql on node ${i}: ${r.out}`);
  return r.out.trim();
}

/** Runs golden/<script>.sql on node i and compares the output with golden/<out>.out. */
async function golden(script: string, i: number, out: string, vars: Record<string, string | number> = {}): Promise<string> {
  const v = Object.entries(vars).flatMap(([k, x]) => ['-v', `${k}=${x}`]);
  const r = await psql(i, ['-a', '-v', 'SHOW_CONTEXT=never', ...v, '-f', `${script}.sql`]);
  expect(r.code, `psql ${script}.sql on node ${i}:\n${r.out}`).toBe(0);
  const expectedFile = path.join(GOLDEN, `${out}.out`);
  if (UPDATE) {
    fs.writeFileSync(expectedFile, r.out);
  } else {
    if (!fs.existsSync(expectedFile)) throw new Error(`${expectedFile} is missing: run with UPDATE_GOLDEN=1 and review it`);
    expect(r.out, `${script}.sql on node ${i} against ${out}.out`).toBe(fs.readFileSync(expectedFile, 'utf8'));
  }
  return r.out;
}

/**
 * Waits until node i sees `leader` lead a healthy 3-node cluster: every node online in the right
 * state, every control connection ACTIVE, PostgreSQL in the matching role and, on the leader, both
 * followers streaming and their replay position known (a walsender reports none until the
 * standby's first reply, so lag_bytes is NULL for a moment after a follower attaches).
 */
async function waitHealthy(i: number, leader: number): Promise<void> {
  const sql = `
    SELECT (SELECT count(*) = 3 AND bool_and(leader_id = ${leader} AND online
                  AND state = CASE WHEN id = ${leader} THEN 'LEADER_RW' ELSE 'FOLLOWER' END)
              FROM biha.status_v)
       AND (SELECT count(*) = 2 AND bool_and(state = 'ACTIVE') FROM biha.nodes_v)
       AND pg_is_in_recovery() = (${i} <> ${leader})
       AND (SELECT bool_and(pg_state = CASE WHEN ${i} = ${leader} THEN 'promoted' ELSE 'recovery' END)
              FROM biha.monitoring())
       AND (${i} <> ${leader} OR (SELECT count(*) = 2 AND bool_and(follower_state = 'streaming' AND lag_bytes IS NOT NULL)
                                   FROM biha.monitoring()))`;
  await waitFor(`node ${i} to see node ${leader} lead a healthy cluster`, async () => (await value(i, sql)) === 't', 90_000, 200);
}

async function waitAllHealthy(leader: number): Promise<void> {
  for (const i of c.ids()) await waitHealthy(i, leader);
}

function controllerLog(i: number): string {
  return fs.readFileSync(path.join(c.pgdata(i), 'pg_biha', 'log', 'controller.log'), 'utf8');
}

describe('biha_db SQL interface on a real 3-node cluster, from the leader and from a follower', () => {
  beforeAll(async () => {
    await c.create();
    await waitAllHealthy(1);
  }, 240_000);
  afterAll(async () => {
    await c.destroy();
    fs.rmSync(outDir, { recursive: true, force: true });
  }, 120_000);

  it('roles created on the leader reach the followers', async () => {
    await golden('roles', 1, 'roles');
    for (const i of [2, 3]) {
      await waitFor(`the sqlc_ roles on node ${i}`, async () => (await value(i, "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'sqlc\\_%'")) === '3', 60_000, 200);
    }
  });

  it('every reader answers on the leader', async () => {
    await waitHealthy(1, 1);
    await golden('read', 1, 'read.leader');
  });

  it('every reader answers on a follower', async () => {
    await waitHealthy(2, 1);
    await golden('read', 2, 'read.follower');
  });

  it('permissions are the same on the leader and on a follower', async () => {
    await waitHealthy(1, 1);
    const onLeader = await golden('permissions', 1, 'permissions', { leader: 1 });
    await waitHealthy(2, 1);
    const onFollower = await golden('permissions', 2, 'permissions', { leader: 1 });
    expect(onFollower).toBe(onLeader);
    // The controller logs each command with the caller's session_user.
    expect(controllerLog(1)).toContain('set_leader requested by sqlc_manager');
    expect(controllerLog(2)).toContain('set_leader requested by sqlc_manager');
  });

  it('error paths on the leader go through its controller and change nothing', async () => {
    await waitHealthy(1, 1);
    await golden('errors_leader', 1, 'errors_leader');
    expect(controllerLog(1)).toContain('set_priority requested by sqlc_manager');
  });

  it('error paths on a follower: passed to the leader, or refused as leader-only', async () => {
    await waitHealthy(2, 1);
    await golden('errors_follower', 2, 'errors_follower');
    await waitAllHealthy(1);
  });

  it('a switchover asked for on a follower with select biha.set_leader(2), then a heartbeat change on the new leader, are seen by every node', async () => {
    const termBefore = Number(await value(2, 'SELECT term FROM biha.config()'));
    expect(termBefore).toBeGreaterThanOrEqual(1);
    await golden('switchover', 2, 'switchover');
    await waitAllHealthy(2);
    expect(await c.leader()).toBe(2);

    await golden('heartbeat', 2, 'heartbeat');
    for (const i of c.ids()) {
      await waitFor(`heartbeat_max_lost = 7 on node ${i}`, async () => (await value(i, 'SELECT heartbeat_max_lost FROM biha.config()')) === '7', 30_000, 200);
    }
    const outs: string[] = [];
    for (const i of c.ids()) {
      await waitHealthy(i, 2);
      outs.push(await golden('observe', i, 'observe', { term_before: termBefore }));
    }
    expect(new Set(outs).size).toBe(1);
    // bihactl reads the same from the controllers.
    for (const i of c.ids()) {
      const s = await c.status(i);
      expect(s.config.heartbeat_max_lost).toBe(7);
      expect(s.status.find((x) => x.state === 'LEADER_RW')?.id).toBe(2);
    }
  });
});
