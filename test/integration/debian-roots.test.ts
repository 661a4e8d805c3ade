// biha beyond the host's PostgreSQL 15 and Node.js 20: the scenario of test/roots/scenario.sh (3
// nodes, failover under writes, the old leader's rejoin, switchover, rewind, backup) run inside the
// roots of scripts/debian-root.sh: PostgreSQL 17 on Debian 13 (profile pg17, ports 24500-24522;
// PostgreSQL 17 needs Debian 13's libraries), and PostgreSQL 15 on Debian 12's own Node.js 18
// (profile node18, ports 24550-24572), the oldest runtime biha supports. A root is built when
// missing; .ci/run builds both before the tests.
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt } from '../helpers/cluster.js';
import { claimPorts } from '../helpers/ports.js';

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');
const BUILD_TIMEOUT_MS = 20 * 60_000;
const SCENARIO_TIMEOUT_MS = 20 * 60_000;

interface Run {
  code: number | null;
  signal: string | null;
  output: string;
  results: Map<string, string>;
}

/**
 * Runs `bash ARGS` in the checkout without blocking the worker (a blocked worker misses vitest's
 * calls); on timeout its whole process group is killed (for `debian-root.sh PROFILE run`, the namespace and
 * everything in it with it).
 */
function runBash(args: string[], timeoutMs: number, env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn('bash', args, {
      cwd: ROOT,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const timer = setTimeout(() => {
      output += `\n(bash ${args.join(' ')} did not finish within ${timeoutMs / 1000} s: killed)\n`;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    }, timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const results = new Map<string, string>();
      for (const m of output.matchAll(/^RESULT ([a-z0-9_]+)=(.*)$/gm)) results.set(m[1]!, m[2]!);
      resolve({ code, signal, output, results });
    });
  });
}

interface Root {
  readonly profile: 'pg17' | 'node18';
  readonly what: string;
  readonly pg: number;
  readonly port: number;
  readonly node: number;
}

const ROOTS: readonly Root[] = [
  { profile: 'pg17', what: 'PostgreSQL 17 on Debian 13', pg: 17, port: 24500, node: 20 },
  { profile: 'node18', what: "PostgreSQL 15 on Debian 12's Node.js 18", pg: 15, port: 24550, node: 18 },
];

describe.each(ROOTS)('a 3-node cluster, $what (root $profile)', ({ profile, pg, port, node }) => {
  let run: Run = { code: null, signal: null, output: '', results: new Map() };
  const r = (k: string): string | undefined => run.results.get(k);
  const num = (k: string): number => Number(r(k) ?? NaN);

  beforeAll(async () => {
    ensureBuilt();
    const t0 = Date.now();
    const script = path.join(ROOT, 'scripts', 'debian-root.sh');
    const b = await runBash([script, profile], BUILD_TIMEOUT_MS);
    if (b.code !== 0) throw new Error(`scripts/debian-root.sh ${profile} failed (${b.code ?? b.signal}): ${b.output.slice(-4000)}`);
    const t1 = Date.now();
    run = await runBash([script, profile, 'run', 'bash', 'test/roots/scenario.sh'], SCENARIO_TIMEOUT_MS, {
      BIHA_SCENARIO_PG: String(pg),
      BIHA_SCENARIO_PORT: process.env['BIHA_SCENARIO_PORT'] ?? String(claimPorts(port, 30)),
    });
    process.stderr.write(`${profile}: root ready in ${Math.round((t1 - t0) / 1000)} s (${b.output.trim().split('\n').pop() ?? ''}), scenario ${Math.round((Date.now() - t1) / 1000)} s\n`);
  }, BUILD_TIMEOUT_MS + SCENARIO_TIMEOUT_MS + 120_000);

  it('the scenario runs to its end and cleans up', () => {
    expect(run.code, run.output.slice(-8000)).toBe(0);
    expect(run.output).toMatch(/^scenario: .*removed \/tmp\/biha-scenario\./m);
  });

  it(`runs on Node.js ${node} and every node runs PostgreSQL ${pg}`, () => {
    expect(run.output).toMatch(new RegExp(`Node\\.js v${node}\\.`));
    for (const n of [1, 2, 3]) {
      expect(r(`pg_version_n${n}`), `PG_VERSION of node ${n}`).toBe(String(pg));
      expect(num(`server_version_num_n${n}`), `server_version_num of node ${n}`).toBeGreaterThanOrEqual(pg * 10000);
      expect(num(`server_version_num_n${n}`)).toBeLessThan((pg + 1) * 10000);
    }
    expect(r('rewind_pg_version')).toBe(String(pg));
  });

  it(pg >= 16 ? "pg_hba.conf and pg_ident.conf include biha's files (PostgreSQL 16+) and PostgreSQL reads the rules from there" : "pg_hba.conf holds biha's rules (before PostgreSQL 16) and PostgreSQL reads them", () => {
    for (const n of [1, 2, 3]) {
      if (pg >= 16) {
        expect(r(`hba_include_n${n}`), `include line in node ${n}'s pg_hba.conf`).toBe('1');
        expect(r(`ident_include_n${n}`), `include line in node ${n}'s pg_ident.conf`).toBe('1');
        expect(num(`hba_rules_from_include_n${n}`), `rules of pg_hba.biha.conf on node ${n}`).toBeGreaterThanOrEqual(8);
      } else {
        expect(num(`hba_rules_n${n}`), `biha_replication_user rules in node ${n}'s pg_hba.conf`).toBeGreaterThanOrEqual(4);
      }
    }
  });

  it('forms a cluster: node 1 leads, two followers stream, synchronous mode is set', () => {
    expect(r('leader_initial')).toBe('1');
    expect(num('followers_streaming')).toBe(2);
    expect(r('sync_standby_names')).toBe("'ANY 1 (biha_node_2, biha_node_3)'");
  });

  it('fails over after kill -9 of the leader and loses no acknowledged row', () => {
    expect(['2', '3']).toContain(r('failover_new_leader'));
    expect(num('failover_elected_ms')).toBeLessThan(60_000);
    expect(num('acked_rows')).toBeGreaterThan(0);
    expect(num('acked_on_new_leader')).toBeGreaterThanOrEqual(10);
    expect(num('acked_missing')).toBe(0);
    expect(num('present_rows')).toBeGreaterThanOrEqual(num('acked_rows'));
  });

  it('the old leader comes back as a streaming follower with the new leader\'s rows', () => {
    expect(r('rejoin_state')).toBe('FOLLOWER');
    expect(['yes', 'no']).toContain(r('rejoin_rewound'));
    expect(num('rejoin_rows')).toBe(num('present_rows'));
  });

  it('switches over with bihactl set-leader: the target leads and takes writes, the previous leader follows', () => {
    expect(r('switchover_target')).toBeDefined();
    expect(r('switchover_leader')).toBe(r('switchover_target'));
    expect(r('switchover_write')).toBe('ok');
    expect(r('switchover_old_state')).toBe('FOLLOWER');
  });

  it('a diverged old leader lands in NODE_ERROR and follows again after bihactl rewind', () => {
    expect(r('rewind_new_leader')).toBeDefined();
    expect(r('rewind_new_leader')).not.toBe(r('switchover_target'));
    expect(r('rewind_error')).toBe('TIMELINE_DIVERGED');
    expect(r('rewind_state')).toBe('FOLLOWER');
    expect(r('rewind_error_after')).toBe('NO_ERROR');
    expect(r('rewind_only_on_old')).toBe('absent');
  });

  it('with biha.autorewind = true a diverged old leader is rewound by its controller and follows', () => {
    expect(r('autorewind_new_leader')).toBeDefined();
    expect(r('autorewind_state')).toBe('FOLLOWER');
    expect(num('autorewind_rewinds')).toBe(1);
    expect(r('autorewind_only_on_old')).toBe('absent');
  });

  it('bihactl backup copies a follower and pg_verifybackup accepts the copy', () => {
    expect(r('backup_pg_version')).toBe(String(pg));
    expect(r('backup_verified')).toBe('yes');
  });

  it('ends with one leader and two streaming followers', () => {
    expect(['1', '2', '3']).toContain(r('final_leader'));
    expect(num('final_followers')).toBe(2);
    expect(num('panics')).toBe(0);
  });
});
