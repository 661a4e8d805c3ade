// Latency of the biha_db SQL interface on a real primary and hot standby (Unix sockets, one client).
//
//   npx vite-node bench/sql.ts [runs] [reads per run] [commands per run]
//
// Prints, per node, the median latency of each run and the median of those medians for:
//   SELECT 1                        the round trip to the server, for scale
//   select * from biha.status_v     a read of pg_biha/status.json (as a pg_monitor member)
//   select biha.set_priority(2, 0)  a command round trip through the bridge to a handler that
//                                   answers at once (as a biha_cluster_management_role member)
import { performance } from 'node:perf_hooks';
import { pino } from 'pino';
import { SqlBridge, installSql } from '../src/controller/bridge/sqlbridge.js';
import { createBihaRolesAndDb, startPair, waitForReplay } from '../test/sql/cluster.js';
import type { PgNode } from '../test/sql/cluster.js';
import { fixture } from '../test/sql/standin.js';

const RUNS = Number(process.argv[2] ?? 5);
const READS = Number(process.argv[3] ?? 500);
const COMMANDS = Number(process.argv[4] ?? 100);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

async function measure(node: PgNode, user: string, sql: string, n: number): Promise<number[]> {
  const c = node.client('biha_db', user);
  await c.connect();
  try {
    await c.query(sql); // warm-up: plan caches, file cache
    const perRun: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      const lat: number[] = [];
      for (let i = 0; i < n; i++) {
        const t = performance.now();
        await c.query(sql);
        lat.push(performance.now() - t);
      }
      perRun.push(median(lat));
    }
    return perRun;
  } finally {
    await c.end();
  }
}

const fmt = (ms: number): string => `${ms.toFixed(3)} ms`;

async function main(): Promise<void> {
  const pair = await startPair();
  const bridges: SqlBridge[] = [];
  const timers: NodeJS.Timeout[] = [];
  try {
    await createBihaRolesAndDb(pair.primary);
    const c = pair.primary.client('biha_db');
    await c.connect();
    await installSql(c);
    await c.query(`CREATE ROLE bench_monitor LOGIN IN ROLE pg_monitor;
                   CREATE ROLE bench_manager LOGIN IN ROLE biha_cluster_management_role;`);
    await c.end();
    await waitForReplay(pair.primary, pair.standby);

    const logger = pino({ level: 'silent' });
    const t0 = Date.now();
    for (const [id, node] of [[1, pair.primary], [2, pair.standby]] as const) {
      const b = new SqlBridge({ pgdata: node.dir, logger, handler: async () => ({ ok: true }) });
      await b.start();
      bridges.push(b);
      await b.writeStatus(fixture('healthy', id, Date.now(), t0));
      timers.push(setInterval(() => void b.writeStatus(fixture('healthy', id, Date.now(), t0)).catch(() => undefined), 1000));
    }

    console.log(`biha SQL interface latency: ${RUNS} runs; per run ${READS} reads, ${COMMANDS} commands; median per run`);
    for (const node of [pair.standby, pair.primary]) {
      const rows: Array<[string, number[]]> = [
        ['SELECT 1', await measure(node, 'bench_monitor', 'SELECT 1', READS)],
        ['select * from biha.status_v', await measure(node, 'bench_monitor', 'select * from biha.status_v', READS)],
        ['select biha.set_priority(2, 0)', await measure(node, 'bench_manager', 'select biha.set_priority(2, 0)', COMMANDS)],
      ];
      console.log(`\n${node.name}:`);
      for (const [what, runs] of rows) {
        console.log(`  ${what.padEnd(32)} median ${fmt(median(runs))}   runs: ${runs.map(fmt).join(', ')}`);
      }
    }
  } finally {
    for (const t of timers) clearInterval(t);
    for (const b of bridges) await b.stop();
    await pair.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
