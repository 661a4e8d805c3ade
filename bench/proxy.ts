// The proxy on a real 3-node biha cluster (heartbeat 200 ms x 5, every node with --proxy-port).
//
//   npx vite-node bench/proxy.ts [throughput] [failover]      (none or `all`: both)
//   BENCH_RUNS=N (default 5, at least 5)   BENCH_SECONDS=S (pgbench duration per run, default 10)
//
// throughput  pgbench select-only (-S, 8 clients, 2 threads, persistent connections) straight to
//             the leader's PostgreSQL and through a follower's proxy port, runs alternating; the
//             figure is the median tps of each and their ratio (goal >= 0.9). The same with a new
//             connection per transaction (-C), where the proxy's connection setup shows.
// failover    kill -9 of the leader's controller and postmaster; a probe connects through a
//             follower's proxy port in a loop (one attempt at a time; the proxy holds it while
//             there is no leader) until a connection lands on the new leader's PostgreSQL as a
//             primary. Figures: kill -> that connection, and the new leader's LEADER_RW (its
//             controller.log) -> that connection.
//
// Ports 27100-27124 (node i: PostgreSQL 27100 + 10(i-1), control +1, HTTP +2, proxy +3). The
// cluster lives in /tmp/biha-test-* and is removed at the end (also on Ctrl-C).
import * as fs from 'node:fs';
import * as path from 'node:path';
import pg from 'pg';
import { benchRuns, line, median } from './lib/report.js';
import { PASSWORD, PG_BIN, TestCluster, asPostgres, sleep, waitFor } from '../test/helpers/cluster.js';

const RUNS = benchRuns();
const SECONDS = Math.max(3, Number(process.env['BENCH_SECONDS'] ?? 10) || 10);
const BASE_PORT = 27100;
const HB_MS = 200;
const HB_LOST = 5;
const SCALE = 10;

const proxyPort = (c: TestCluster, i: number): number => c.port(i) + 3;

const ms = (x: number): string => `${x.toFixed(0)} ms`;
const tps = (x: number): string => `${x.toFixed(0)} tps`;

async function makeCluster(): Promise<TestCluster> {
  const c = new TestCluster({ nodes: 3, basePort: BASE_PORT, heartbeatSendPeriod: HB_MS, heartbeatMaxLost: HB_LOST });
  const args = (i: number): string[] => [`--proxy-port=${proxyPort(c, i)}`];
  // A killed leader whose WAL went past the fork rejoins through pg_rewind, so the cluster can be reused.
  await c.create(args(1), 3, { args, beforeStart: () => c.setAutorewind(true) });
  const l = await c.waitLeader();
  for (const i of c.ids()) if (i !== l) await c.waitStreaming(i);
  console.log(`cluster ${c.dir}: 3 nodes on ports ${c.ids().map((i) => c.port(i)).join(', ')}, proxy ports ${c.ids().map((i) => proxyPort(c, i)).join(', ')}, heartbeat ${HB_MS} ms x ${HB_LOST}, node ${l} leads`);
  return c;
}


// ---- throughput ----

async function pgbench(args: string[]): Promise<string> {
  const r = await asPostgres(`${PG_BIN}/pgbench`, args, { PGPASSWORD: PASSWORD }, (SECONDS + 120) * 1000);
  if (r.code !== 0) throw new Error(`pgbench ${args.join(' ')} failed: ${r.stderr.trim()}`);
  return r.stdout;
}

async function selectOnly(port: number, connectEach: boolean): Promise<number> {
  const out = await pgbench([
    '-S', '-n', '-c', '8', '-j', '2', '-T', String(SECONDS), ...(connectEach ? ['-C'] : []),
    '-h', '127.0.0.1', '-p', String(port), '-U', 'biha_replication_user', 'postgres',
  ]);
  const m = /tps = ([\d.]+) \((?:without initial connection time|excluding connections establishing|including connections establishing)\)/.exec(out) ?? /tps = ([\d.]+)/.exec(out);
  if (!m) throw new Error(`no tps in the pgbench output: ${out}`);
  return Number(m[1]);
}

async function throughput(c: TestCluster): Promise<void> {
  const l = await c.waitLeader();
  const via = c.ids().find((i) => i !== l)!;
  console.log(`\nthroughput: pgbench -i -s ${SCALE} on node ${l}, then select-only -c 8 -j 2 -T ${SECONDS}: direct to port ${c.port(l)}, proxied through node ${via}'s port ${proxyPort(c, via)}`);
  await pgbench(['-i', '-q', '-s', String(SCALE), '-h', c.socketDir(l), '-p', String(c.port(l)), 'postgres']);
  await c.su(l, 'grant select on all tables in schema public to biha_replication_user');
  await waitFor('the followers to replay the pgbench tables', async () => {
    for (const i of c.ids()) {
      const r = await c.su<{ n: string }>(i, "select count(*) as n from pg_class where relname = 'pgbench_accounts'").catch(() => []);
      if (r[0]?.n !== '1') return null;
    }
    return true;
  }, 120_000, 500);
  for (const connectEach of [false, true]) {
    const direct: number[] = [];
    const proxied: number[] = [];
    for (let k = 0; k < RUNS; k++) {
      // A run that fails (the leader fenced under load, say) is reported and left out, both sides.
      try {
        await c.waitLeader({ timeoutMs: 120_000 });
        const d = await selectOnly(c.port(l), connectEach);
        const p = await selectOnly(proxyPort(c, via), connectEach);
        direct.push(d);
        proxied.push(p);
        console.log(`  run ${k + 1}${connectEach ? ' (-C)' : ''}: direct ${d.toFixed(0)} tps, proxied ${p.toFixed(0)} tps`);
      } catch (e) {
        console.log(`  run ${k + 1}${connectEach ? ' (-C)' : ''}: failed: ${(e instanceof Error ? e.message : String(e)).split('\n')[0]}`);
      }
    }
    if (direct.length === 0) continue;
    const label = connectEach ? 'select-only, a new connection per transaction (-C)' : 'select-only, persistent connections';
    line(`${label}, direct`, direct, tps);
    line(`${label}, through the proxy`, proxied, tps);
    const ratio = median(proxied) / median(direct);
    console.log(`  ${label}: ratio proxied/direct ${ratio.toFixed(3)}${connectEach ? '' : `   goal >= 0.9: ${ratio >= 0.9 ? 'met' : 'MISSED'}`}`);
  }
}

// ---- failover ----

interface Landed {
  inRecovery: boolean;
  port: number;
}

async function land(port: number): Promise<Landed> {
  const cl = new pg.Client({ host: '127.0.0.1', port, user: 'biha_replication_user', password: PASSWORD, database: 'biha_db', connectionTimeoutMillis: 60_000 });
  cl.on('error', () => undefined);
  try {
    await cl.connect();
    const r = await cl.query<{ ro: boolean; port: number }>('select pg_is_in_recovery() as ro, inet_server_port() as port');
    return { inRecovery: r.rows[0]!.ro, port: r.rows[0]!.port };
  } finally {
    await cl.end().catch(() => undefined);
  }
}

/** When node i's controller.log first says LEADER_RW after `since` (epoch ms), or null. */
function leaderRwAt(c: TestCluster, i: number, since: number): number | null {
  const file = path.join(c.pgdata(i), 'pg_biha', 'log', 'controller.log');
  for (const text of fs.readFileSync(file, 'utf8').split('\n')) {
    if (!text.includes('"state LEADER_RW')) continue;
    try {
      const e = JSON.parse(text) as { time: string };
      const t = Date.parse(e.time);
      if (t >= since) return t;
    } catch {
      // a line cut by the kill
    }
  }
  return null;
}

async function failover(c: TestCluster): Promise<void> {
  console.log(`\nfailover: kill -9 of the leader; a probe connects through a follower's proxy port until it reaches the new leader`);
  const fromKill: number[] = [];
  const fromElection: number[] = [];
  for (let k = 0; k < RUNS; k++) {
    const old = await c.waitLeader();
    for (const i of c.ids()) if (i !== old) await c.waitStreaming(i);
    const via = c.ids().find((i) => i !== old)!;
    const killedAt = Date.now();
    c.kill9(old);
    let landedAt = 0;
    let at: Landed | null = null;
    for (let tries = 0; tries < 3000 && Date.now() - killedAt < 120_000; tries++) {
      const l = await land(proxyPort(c, via)).catch(() => null);
      if (l && !l.inRecovery && l.port !== c.port(old)) {
        landedAt = Date.now();
        at = l;
        break;
      }
      await sleep(20);
    }
    const next = at ? c.ids().find((i) => c.port(i) === at.port) : undefined;
    const rwAt = next !== undefined ? leaderRwAt(c, next, killedAt) : null;
    if (at && rwAt !== null) {
      fromKill.push(landedAt - killedAt);
      fromElection.push(landedAt - rwAt);
      console.log(`  run ${k + 1}: node ${old} killed; node ${next} LEADER_RW after ${ms(rwAt - killedAt)}; first proxied connection on it after ${ms(landedAt - killedAt)} (${ms(landedAt - rwAt)} after LEADER_RW)`);
    } else {
      console.log(`  run ${k + 1}: no proxied connection reached a new leader`);
    }
    await c.start(old);
  }
  line('kill -> first connection through the proxy on the new leader', fromKill, ms);
  line('new leader LEADER_RW -> first connection through the proxy on it', fromElection, ms);
}

// ---- main ----

const NAMES = ['throughput', 'failover'] as const;
type Name = (typeof NAMES)[number];

async function main(): Promise<void> {
  const args = process.argv.slice(2).filter((a) => !a.startsWith('-'));
  const wanted: Name[] = args.length === 0 || args.includes('all') ? [...NAMES] : (args as Name[]);
  for (const w of wanted) if (!NAMES.includes(w)) throw new Error(`unknown benchmark "${w}"; choose from ${NAMES.join(', ')}, all`);
  console.log(`bench/proxy.ts: ${wanted.join(', ')}; ${RUNS} runs each; node ${process.version}; load average ${fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
  const c = await makeCluster();
  const stop = (): void => {
    void c.destroy().finally(() => process.exit(130));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    for (const w of wanted) {
      if (w === 'throughput') await throughput(c);
      else await failover(c);
    }
  } finally {
    await c.destroy();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
