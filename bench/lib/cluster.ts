// Real biha clusters for the benchmarks: creation with the settings every benchmark wants, and
// waiting for a healthy cluster between repetitions.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { connectMultiHost, parseMultiHostUri } from '../../src/client/multihost.js';
import { PASSWORD, TestCluster, waitFor } from '../../test/helpers/cluster.js';
import { fmtMs } from './report.js';

/** Every cluster this process created and has not destroyed yet (destroyed on Ctrl-C). */
export const clusters: TestCluster[] = [];

/** A session as biha_replication_user (a biha_cluster_management_role member) on node i. */
export async function connect(c: TestCluster, i: number): Promise<pg.Client> {
  const client = new pg.Client({ host: '127.0.0.1', port: c.port(i), user: 'biha_replication_user', password: PASSWORD, database: 'biha_db', connectionTimeoutMillis: 3000 });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

export async function one<T>(c: TestCluster, i: number, sql: string): Promise<T | undefined> {
  const client = await connect(c, i);
  try {
    return (await client.query(sql)).rows[0] as T | undefined;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * True when node i sees `leader` lead a healthy cluster: every node online in the right state,
 * all control connections ACTIVE, PostgreSQL in the matching role and, on the leader, every
 * follower streaming.
 */
export async function healthyFrom(c: TestCluster, i: number, leader: number): Promise<boolean> {
  const n = c.ids().length;
  const r = await one<{ ok: boolean }>(c, i, `
    SELECT (SELECT count(*) = ${n} AND bool_and(leader_id = ${leader} AND online
                  AND state = CASE WHEN id = ${leader} THEN 'LEADER_RW' ELSE 'FOLLOWER' END)
              FROM biha.status_v)
       AND (SELECT count(*) = ${n - 1} AND bool_and(state = 'ACTIVE') FROM biha.nodes_v)
       AND pg_is_in_recovery() = (${i} <> ${leader})
       AND (${i} <> ${leader} OR (SELECT count(*) = ${n - 1} AND bool_and(follower_state = 'streaming')
                                   FROM biha.monitoring())) AS ok`);
  return r?.ok === true;
}

export async function waitHealthy(c: TestCluster, leader: number, timeoutMs = 180_000): Promise<void> {
  for (const i of c.ids()) {
    await waitFor(`node ${i} to see node ${leader} lead a healthy cluster`, async () => healthyFrom(c, i, leader), timeoutMs, 200);
  }
}

/** The LEADER_RW every reachable node agrees on, once the cluster is healthy. */
export async function healthyLeader(c: TestCluster): Promise<number> {
  const leader = await waitFor('a LEADER_RW', async () => {
    for (const i of c.ids()) {
      const r = await one<{ id: number }>(c, i, "SELECT id FROM biha.status_v WHERE state = 'LEADER_RW'").catch(() => undefined);
      if (r) return r.id;
    }
    return null;
  }, 180_000, 200);
  await waitHealthy(c, leader);
  return leader;
}

/**
 * Settings made in postgresql.biha.conf before each controller first starts (it reads them at
 * start): biha.autorewind = true, so that a killed leader whose WAL went past the new timeline's
 * fork rejoins through pg_rewind instead of stopping in NODE_ERROR and the cluster can be reused;
 * and the NC (node controller) categories Log and Warn at LOG, so that controller.log shows each
 * transition and its duration (the generated file sets them to DEBUG4, which hides them).
 */
export function tuneConf(c: TestCluster, i: number): void {
  const f = path.join(c.pgdata(i), 'postgresql.biha.conf');
  const set = (text: string, name: string, value: string): string => {
    const re = new RegExp(`^${name.replace('.', '\\.')}\\s*=.*$`, 'm');
    return re.test(text) ? text.replace(re, `${name} = ${value}`) : `${text}\n${name} = ${value}\n`;
  };
  let text = fs.readFileSync(f, 'utf8');
  text = set(text, 'biha.autorewind', 'true');
  text = set(text, 'biha.NodeControllerLog_log_level', 'LOG');
  text = set(text, 'biha.NodeControllerWarn_log_level', 'LOG');
  fs.writeFileSync(f, text);
}

export interface BenchClusterOptions {
  basePort: number;
  heartbeatMs: number;
  maxLost: number;
  nodes?: number;
  /** nquorum and minnodes (default 2, as TestCluster). */
  nquorum?: number;
  syncStandbys?: number;
  /** Extra `bihactl init`/`add` arguments per node. */
  args?: (i: number) => string[];
}

/** TestCluster.create() with tuneConf() before each node's first start; waits until it is healthy. */
export async function makeCluster(o: BenchClusterOptions): Promise<TestCluster> {
  const nodes = o.nodes ?? 3;
  const sync = o.syncStandbys ?? 0;
  const c = new TestCluster({ nodes, basePort: o.basePort, heartbeatSendPeriod: o.heartbeatMs, heartbeatMaxLost: o.maxLost, ...(o.nquorum ? { nquorum: o.nquorum, minnodes: o.nquorum } : {}), ...(sync > 0 ? { syncStandbys: sync } : {}) });
  clusters.push(c);
  const t = performance.now();
  await c.create(o.args?.(1) ?? [], nodes, { ...(o.args ? { args: o.args } : {}), beforeStart: (i) => tuneConf(c, i) });
  const leader = await healthyLeader(c);
  console.log(
    `cluster ${c.dir}: ${nodes} nodes on ports ${c.ids().map((i) => c.port(i)).join(', ')}, heartbeat ${o.heartbeatMs} ms x ${o.maxLost}` +
      `${sync > 0 ? `, ${sync} synchronous standby` : ''}, node ${leader} leads (ready in ${fmtMs(performance.now() - t)})`,
  );
  await checkWriter(c, leader);
  return c;
}

/** Destroys a cluster made by makeCluster and forgets it. */
export async function dropCluster(c: TestCluster): Promise<void> {
  await c.destroy();
  const k = clusters.indexOf(c);
  if (k >= 0) clusters.splice(k, 1);
}

/** Destroys every cluster (and whatever `also` stops) on SIGINT/SIGTERM before exiting. */
export function destroyOnSignal(also?: () => Promise<void>): void {
  const stop = (): void => {
    void Promise.all([...clusters.map((c) => c.destroy()), also?.()]).finally(() => process.exit(130));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

let writerChecked = false;

/**
 * Checks once that connectMultiHost of src/client/multihost.ts honours
 * target_session_attrs=read-write: asked for [a follower, the leader], it must pick the leader,
 * or every insert of the write-gap loop would fail on a hot standby and the figures mean nothing.
 */
async function checkWriter(c: TestCluster, leader: number): Promise<void> {
  if (writerChecked) return;
  writerChecked = true;
  const follower = c.ids().find((i) => i !== leader)!;
  const t = parseMultiHostUri(`postgresql://biha_replication_user:${PASSWORD}@127.0.0.1:${c.port(follower)},127.0.0.1:${c.port(leader)}/biha_db?target_session_attrs=read-write&connect_timeout=2`);
  const { client, port } = await connectMultiHost(t);
  await client.end().catch(() => undefined);
  if (port !== c.port(leader))
    throw new Error(`connectMultiHost(target_session_attrs=read-write) picked the hot standby node ${follower} over the leader node ${leader}`);
  console.log('writer: measureWriteGap of src/client/multihost.ts');
}
