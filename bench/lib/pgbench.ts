// pgbench beside a benchmark: initialisation, a run in the background that can be stopped, and
// its progress reports (-P 1 --progress-timestamp) read back.
import { spawn } from 'node:child_process';
import type { TestCluster } from '../../test/helpers/cluster.js';
import { PG_BIN, asPostgres } from '../../test/helpers/cluster.js';

export interface Progress {
  /** Wall clock ms at the end of the reported interval. */
  at: number;
  tps: number;
}

/**
 * The progress lines of `pgbench -P N --progress-timestamp` (on its stderr), e.g.
 * "progress: 1764788400.123 s, 512.3 tps, lat 15.347 ms stddev 4.012, 0 failed".
 */
export function parseProgress(text: string): Progress[] {
  const out: Progress[] = [];
  for (const m of text.matchAll(/^progress: (\d+(?:\.\d+)?) s, (\d+(?:\.\d+)?) tps/gm)) out.push({ at: Number(m[1]) * 1000, tps: Number(m[2]) });
  return out;
}

/** The "tps = N (without initial connection time)" of pgbench's final report, or null. */
export function parseTps(text: string): number | null {
  const m = /^tps = (\d+(?:\.\d+)?) \(without initial connection time\)/m.exec(text);
  return m ? Number(m[1]) : null;
}

/** pgbench -i -s `scale` as the postgres OS user on node i's unix socket, database postgres. */
export async function initPgbench(c: TestCluster, i: number, scale: number): Promise<void> {
  const r = await asPostgres(`${PG_BIN}/pgbench`, ['-i', '-q', '-s', String(scale), '-h', c.socketDir(i), '-p', String(c.port(i)), 'postgres'], {}, 600_000);
  if (r.code !== 0) throw new Error(`pgbench -i -s ${scale} on node ${i} failed: ${r.stderr.trim()}`);
}

export interface Running {
  /** Resolves when pgbench exits (by itself, at -T, or when its clients all aborted). */
  done: Promise<{ code: number | null; stdout: string; stderr: string }>;
  /** SIGTERM to pgbench's process group (it was started in a group of its own). */
  stop(): void;
}

/**
 * TPC-B (`pgbench -c clients -j threads -T seconds -P 1 --progress-timestamp`) against node i as
 * the postgres OS user, in the background.
 */
export function runPgbench(c: TestCluster, i: number, o: { clients: number; threads: number; seconds: number }): Running {
  const args = ['-c', String(o.clients), '-j', String(o.threads), '-T', String(o.seconds), '-P', '1', '--progress-timestamp', '-h', c.socketDir(i), '-p', String(c.port(i)), 'postgres'];
  const asRoot = process.getuid?.() === 0;
  const [file, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', `${PG_BIN}/pgbench`, ...args]] : [`${PG_BIN}/pgbench`, args];
  const child = spawn(file, argv, { cwd: '/tmp', detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.on('error', (e) => resolve({ code: null, stdout, stderr: `${stderr}${e.message}` }));
  });
  return {
    done,
    stop: () => {
      if (child.exitCode !== null || child.pid === undefined) return;
      try {
        process.kill(-child.pid, 'SIGTERM');
      } catch {
        // already gone
      }
    },
  };
}
