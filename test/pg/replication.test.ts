// Two real PostgreSQL 15 nodes: basebackup a standby through a slot, stream, detach and
// reattach with ALTER SYSTEM, promote, and rewind the crashed, diverged old primary.

import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pino from 'pino';
import { PostgresActions, notConsistentYet } from '../../src/controller/pg/actions.js';
import type { PgActionsDeps } from '../../src/controller/pg/actions.js';
import type { NodeConf, NodeState } from '../../src/controller/state/nodefiles.js';
import { NodeStore } from '../../src/controller/state/store.js';
import { DEFAULT_PARAMS } from '../../src/raft/index.js';
import type { ClusterConfig } from '../../src/raft/index.js';
import { readBihaGucs, setAutoConfOffline, writeBihaConf } from '../../src/controller/pg/conf.js';
import type { BihaConfVars } from '../../src/controller/pg/conf.js';
import {
  LocalPg,
  checkpoint,
  conninfoValue,
  ensureSlot,
  localStatus,
  pgpassLine,
  promote,
  replicationConninfo,
  setPrimary,
} from '../../src/controller/pg/conn.js';
import { formatLsn, parseLsn } from '../../src/controller/pg/lsn.js';
import {
  basebackup,
  chownToRunAs,
  controldata,
  ensureCleanShutdown,
  initdb,
  parseTimelineHistory,
  pgCtlStart,
  pgCtlStop,
  postmasterPid,
  readPostmasterPidFile,
  resolvePgEnv,
  rewind,
  runTool,
  walEnd,
  writeStandbySignal,
} from '../../src/controller/pg/tools.js';
import type { BasebackupProgress, PgEnv } from '../../src/controller/pg/tools.js';
import { cleanup, freePort, scratchDir, waitFor } from './helpers.js';

const REPL_USER = 'biha_replication_user';
const REPL_PASSWORD = "s3cret:pa'ss";

let base = '';
let n1 = '';
let n2 = '';
let p1 = 0;
let p2 = 0;
let env: PgEnv;
let passfile = '';
let db1: LocalPg;
let db2: LocalPg;
let n3 = '';
let db3: LocalPg | undefined;

const confVars = (id: number, port: number): BihaConfVars => ({
  listenAddresses: '127.0.0.1',
  port,
  nodeId: id,
  host: '127.0.0.1',
  bihaPort: port + 1000,
  syncStandbyNames: '',
  autorewind: true,
});

const upstream = (port: number, app: string): string =>
  replicationConninfo({ host: '127.0.0.1', port, user: REPL_USER, passfile, applicationName: app });

beforeAll(async () => {
  base = await scratchDir('repl');
  n1 = path.join(base, 'n1');
  n2 = path.join(base, 'n2');
  p1 = await freePort();
  p2 = await freePort();
  env = await resolvePgEnv(n1);
  await initdb(env, n1, { noSync: true });
  await writeBihaConf(n1, confVars(1, p1));
  await pgCtlStart(env, n1, { logFile: path.join(base, 'n1.log') });
  db1 = new LocalPg({ pgdata: n1, port: p1, user: env.user });
  db2 = new LocalPg({ pgdata: n2, port: p2, user: env.user });
  await db1.query(`CREATE ROLE ${REPL_USER} LOGIN REPLICATION PASSWORD '${REPL_PASSWORD.replace(/'/g, "''")}'`);
  for (const fn of [
    'pg_ls_dir(text, boolean, boolean)',
    'pg_stat_file(text, boolean)',
    'pg_read_binary_file(text)',
    'pg_read_binary_file(text, bigint, bigint, boolean)',
  ]) {
    await db1.query(`GRANT EXECUTE ON FUNCTION pg_catalog.${fn} TO ${REPL_USER}`);
  }
  passfile = path.join(base, 'pgpass');
  await fsp.writeFile(passfile, pgpassLine({ host: '127.0.0.1', port: '*', database: '*', user: REPL_USER, password: REPL_PASSWORD }) + '\n', { mode: 0o600 });
  await chownToRunAs(env, passfile);
});

afterAll(async () => {
  await db1?.close();
  await db2?.close();
  await db3?.close();
  for (const d of [n1, n2, n3]) if (env && d) await pgCtlStop(env, d, 'immediate').catch(() => undefined);
  if (base) await cleanup(base, [n1, n2, n3]);
});

async function caughtUp(): Promise<boolean> {
  const cur = (await localStatus(db1)).currentLsn ?? Infinity;
  const st = await localStatus(db2);
  return (st.replayLsn ?? 0) >= cur;
}

/** The controller's PostgreSQL actions for node `id` (data directory `pgdata`). */
function actionsOn(pgdata: string, id: number, pg: LocalPg, config: ClusterConfig): PostgresActions {
  const conf = { nodeId: id, replicationUser: REPL_USER } as NodeConf;
  const deps: PgActionsDeps = {
    pgdata,
    conf,
    store: NodeStore.of(pgdata, conf, { nodeError: null } as NodeState),
    env,
    pg,
    log: pino({ level: 'silent' }),
    config: () => config,
    restoreIdentity: () => Promise.resolve(),
  };
  return new PostgresActions(deps);
}

describe('standby from a basebackup', () => {
  it('refuses a missing slot with a clear error', async () => {
    const err = await basebackup(env, {
      host: '127.0.0.1', port: p1, user: REPL_USER, passfile, pgdata: path.join(base, 'bad'), slot: 'no_such_slot',
    }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'basebackup_no_slot' });
    expect(String((err as Error).message)).toContain('no_such_slot');
  });

  it('copies the primary through an existing slot and reports progress', async () => {
    await ensureSlot(db1, 'n2');
    const progress: BasebackupProgress[] = [];
    await basebackup(env, {
      host: '127.0.0.1', port: p1, user: REPL_USER, password: REPL_PASSWORD, pgdata: n2, slot: 'n2',
      onProgress: (p) => progress.push(p),
    });
    expect(progress.length).toBeGreaterThan(0);
    const last = progress[progress.length - 1];
    expect(last?.pct).toBe(100);
    expect(last?.doneKb).toBe(last?.totalKb);
    expect(last?.totalKb).toBeGreaterThan(1000);
    // The copy carries the primary's identity (POSTGRES-NOTES D3): restore this node's own.
    expect((await readBihaGucs(n2))['biha.id']).toBe('1');
    await writeBihaConf(n2, confVars(2, p2));
    expect((await readBihaGucs(n2))['biha.id']).toBe('2');
  });

  it('streams once primary_conninfo and the slot are set', async () => {
    await setAutoConfOffline(n2, { primary_conninfo: upstream(p1, 'n2'), primary_slot_name: 'n2' });
    await writeStandbySignal(env, n2);
    await pgCtlStart(env, n2, { logFile: path.join(base, 'n2.log') });
    expect((await readPostmasterPidFile(n2))?.status).toBe('ready'); // 'standby' would mean hot_standby = off
    const st = await waitFor('n2 streaming', async () => {
      const s = await localStatus(db2);
      return s.walReceiver?.status === 'streaming' ? s : null;
    });
    expect(st.inRecovery).toBe(true);
    expect(st.tli).toBe(1);
    expect(st.currentLsn).toBeNull();
    expect(st.replayPauseState).toBe('not paused');
    expect(st.walReceiver).toMatchObject({ senderHost: '127.0.0.1', senderPort: p1, receivedTli: 1 });
    expect(st.receiveLsn).toBeGreaterThan(0);

    const prim = await waitFor('n2 in pg_stat_replication', async () => {
      const s = await localStatus(db1);
      return s.replication.find((r) => r.applicationName === 'n2' && r.state === 'streaming') ?? null;
    });
    expect(prim.syncState).toBe('async');
    expect(prim.sentLsn).toBeGreaterThan(0);

    await db1.query('CREATE TABLE kept (x int); INSERT INTO kept SELECT generate_series(1, 100)');
    await waitFor('n2 to replay', caughtUp);
    const rows = await db2.query<{ n: number }>('SELECT count(*)::int AS n FROM kept');
    expect(rows[0]?.n).toBe(100);
  });

  it("setPrimary('', '') detaches the standby and setPrimary(conninfo, slot) reattaches it", async () => {
    await setPrimary(db2, '', '');
    await waitFor('walreceiver gone', async () => (await localStatus(db2)).walReceiver === null);
    await waitFor('n2 gone from the primary', async () => (await localStatus(db1)).replication.length === 0);
    await db1.query('INSERT INTO kept VALUES (101)');
    await setPrimary(db2, upstream(p1, 'n2'), 'n2');
    await waitFor('n2 streaming again', async () => (await localStatus(db2)).walReceiver?.status === 'streaming');
    await waitFor('n2 to replay', caughtUp);
    expect((await db2.query<{ n: number }>('SELECT count(*)::int AS n FROM kept'))[0]?.n).toBe(101);
  });
});

describe('failover and rewind of the diverged old primary', () => {
  let switchLsn = 0;

  it('promotes the detached standby onto a new timeline', async () => {
    await waitFor('n2 to replay', caughtUp);
    await setPrimary(db2, '', '');
    await waitFor('walreceiver gone', async () => (await localStatus(db2)).walReceiver === null);
    // The old primary goes on writing what the new one will never see, then crashes.
    await db1.query('CREATE TABLE lost (x int); INSERT INTO lost SELECT generate_series(1, 1000)');
    const pid = (await postmasterPid(n1)) as number;
    process.kill(pid, 'SIGKILL');

    await promote(db2, 10_000);
    const st = await localStatus(db2);
    expect(st.inRecovery).toBe(false);
    expect(st.tli).toBe(2);
    const hist = await db2.query<{ h: string }>("SELECT pg_read_file('pg_wal/00000002.history') AS h");
    const entries = parseTimelineHistory(hist[0]?.h ?? '');
    expect(entries).toHaveLength(1);
    expect(entries[0]?.parentTli).toBe(1);
    switchLsn = entries[0]?.switchLsn ?? 0;
    expect(switchLsn).toBeGreaterThan(0);
    await db2.query('INSERT INTO kept VALUES (102)');
  });

  it('walEnd of the crashed old primary lies past the switch point', async () => {
    await waitFor('old postmaster dead', async () => (await postmasterPid(n1)) === null);
    const end = await walEnd(env, n1);
    expect(end.tli).toBe(1);
    expect(end.lsn).toBeGreaterThan(switchLsn);
  });

  it('pg_rewind: a dry run reports the divergence and changes nothing, the real run rewinds', async () => {
    expect(await ensureCleanShutdown(env, n1)).toBe(true);
    expect((await controldata(env, n1))['Database cluster state']).toBe('shut down');
    expect(await ensureCleanShutdown(env, n1)).toBe(false);

    // Right after promotion the source's control file may still name timeline 1 (the
    // post-promotion checkpoint runs in the background); pg_rewind would then see "same timeline".
    await checkpoint(db2);
    const source = `host=127.0.0.1 port=${p2} user=${REPL_USER} dbname=postgres passfile=${conninfoValue(passfile)}`;
    const lines: string[] = [];
    const dry = await rewind(env, { pgdata: n1, source, dryRun: true, onLine: (l) => lines.push(l) });
    expect(dry.divergedAt).toBe(formatLsn(switchLsn));
    expect(dry.divergedTli).toBe(1);
    expect(dry.noRewindRequired).toBe(false);
    expect(lines.some((l) => l.includes('servers diverged'))).toBe(true);
    expect((await readBihaGucs(n1))['biha.id']).toBe('1');
    expect((await controldata(env, n1))["Latest checkpoint's TimeLineID"]).toBe('1');

    const real = await rewind(env, { pgdata: n1, source, dryRun: false });
    expect(real.divergedAt).toBe(formatLsn(switchLsn));
    expect(real.output).toMatch(/Done!/);
    // pg_rewind copied the source's files, identity included (POSTGRES-NOTES D3).
    expect((await readBihaGucs(n1))['biha.id']).toBe('2');
  });

  it('the rewound node follows the new primary on the new timeline without the lost writes', async () => {
    await writeBihaConf(n1, confVars(1, p1));
    await ensureSlot(db2, 'n1');
    await setAutoConfOffline(n1, { primary_conninfo: upstream(p2, 'n1'), primary_slot_name: 'n1' });
    await writeStandbySignal(env, n1);
    await pgCtlStart(env, n1, { logFile: path.join(base, 'n1.log') });
    const st = await waitFor('n1 streaming from n2', async () => {
      const s = await localStatus(db1);
      return s.walReceiver?.status === 'streaming' && s.walReceiver.receivedTli === 2 ? s : null;
    });
    expect(st.inRecovery).toBe(true);
    expect(st.tli).toBe(2);
    expect(st.walReceiver?.senderPort).toBe(p2);
    await waitFor('n1 replays 102', async () => (await db1.query<{ n: number }>('SELECT count(*)::int AS n FROM kept'))[0]?.n === 102);
    const lost = await db1.query<{ r: string | null }>("SELECT to_regclass('lost')::text AS r");
    expect(lost[0]?.r).toBeNull();
    const prim = await waitFor('n1 in pg_stat_replication of n2', async () =>
      (await localStatus(db2)).replication.find((r) => r.applicationName === 'n1') ?? null);
    expect(prim.state).toBe('streaming');
    expect(parseLsn(formatLsn(prim.sentLsn ?? 0))).toBe(prim.sentLsn);
  });

  it('walEnd of the stopped follower is on the new timeline, at or past what it replayed', async () => {
    await waitFor('n1 to replay', async () => {
      const cur = (await localStatus(db2)).currentLsn ?? Infinity;
      return ((await localStatus(db1)).replayLsn ?? 0) >= cur;
    });
    const replayed = (await localStatus(db1)).replayLsn ?? 0;
    await pgCtlStop(env, n1, 'fast');
    expect((await controldata(env, n1))['Database cluster state']).toBe('shut down in recovery');
    const end = await walEnd(env, n1);
    expect(end.tli).toBe(2);
    expect(end.lsn).toBeGreaterThanOrEqual(replayed);
  });
});

describe('a standby that is not consistent yet', () => {
  // n2 is the primary (timeline 2). n3 is copied from it without WAL and pointed at a port where
  // nothing listens, as a node whose rewind or base backup source went away: it refuses connections
  // until it has replayed up to the backup's end, so only pg_control and a reload can retarget it.
  let actions: PostgresActions;

  it('takes the new upstream from pg_control and a reload, then becomes consistent and streams', async () => {
    n3 = path.join(base, 'n3');
    const p3 = await freePort();
    const dead = await freePort();
    await ensureSlot(db2, 'biha_node_3');
    await runTool(env, 'pg_basebackup', ['-D', n3, '-h', '127.0.0.1', '-p', String(p2), '-U', REPL_USER, '-X', 'none', '--checkpoint=fast', '--no-password'], {
      extraEnv: { PGPASSFILE: passfile },
      timeoutMs: 120_000,
    });
    await writeBihaConf(n3, confVars(3, p3));
    await fsp.mkdir(path.join(n3, 'pg_biha'), { recursive: true, mode: 0o700 });
    await fsp.copyFile(passfile, path.join(n3, 'pg_biha', 'pgpass'));
    await chownToRunAs(env, path.join(n3, 'pg_biha'));
    await chownToRunAs(env, path.join(n3, 'pg_biha', 'pgpass'));
    await setAutoConfOffline(n3, { primary_conninfo: upstream(dead, 'biha_node_3'), primary_slot_name: 'biha_node_3' });
    await writeStandbySignal(env, n3);
    await pgCtlStart(env, n3, { logFile: path.join(base, 'n3.log'), wait: 'started' });
    db3 = new LocalPg({ pgdata: n3, port: p3, user: env.user });
    const refused = await waitFor('n3 to refuse connections', async () => {
      const e = await db3!.query('select 1').then(() => null, (err: unknown) => err);
      return e && notConsistentYet(e) ? e : null;
    });
    expect(notConsistentYet(refused)).toBe(true);

    const config: ClusterConfig = {
      nodes: [2, 3].map((id) => ({ id, host: '127.0.0.1', port: id === 2 ? p2 : p3, bihaPort: 1, mode: 'regular' as const, canBeLeader: true, canVote: true, priority: 0 })),
      params: DEFAULT_PARAMS,
    };
    actions = actionsOn(n3, 3, db3, config);
    // Not consistent without being a fresh copy (a crashed primary replaying its own WAL): refused,
    // pg_control does not say where its WAL ends.
    await expect(actions.position()).rejects.toThrow(/not yet accepting connections|is starting up/);
    actions.noteCopied();
    // A fresh copy: pg_control's minimum recovery point says where its WAL must reach.
    const pos = await actions.position();
    expect(pos.tli).toBe(2);
    expect(pos.end).toBeGreaterThan(0);
    await actions.follow(config.nodes[0]!);
    const st = await waitFor('n3 consistent and streaming from n2', async () => {
      const s = await localStatus(db3!).catch(() => null);
      return s?.walReceiver?.status === 'streaming' ? s : null;
    }, 60_000);
    expect(st.walReceiver?.senderPort).toBe(p2);
    expect(st.tli).toBe(2);
    await waitFor('n3 replays 102', async () => (await db3!.query<{ n: number }>('SELECT count(*)::int AS n FROM kept'))[0]?.n === 102);
  });
});

describe('slots on a primary', () => {
  // n2 is the primary and n3 streams from it through biha_node_3. Slots made on a standby hold no
  // WAL (restart_lsn is null); biha_node_7 and biha_node_8 are such slots after a promotion.
  const slots = async (): Promise<Map<string, { reserved: boolean; active: boolean }>> => {
    const r = await db2.query<{ slot_name: string; reserved: boolean; active: boolean }>(
      'select slot_name, restart_lsn is not null as reserved, active from pg_replication_slots order by 1',
    );
    return new Map(r.map((x) => [x.slot_name, { reserved: x.reserved, active: x.active }]));
  };

  it("leaves a live follower's slot for its own reply, and makes a down node's slot hold WAL", async () => {
    await db2.query("select pg_create_physical_replication_slot('biha_node_7', false)");
    await db2.query("select pg_create_physical_replication_slot('biha_node_8', false)");
    const config: ClusterConfig = {
      nodes: [2, 3, 7, 8].map((id) => ({ id, host: '127.0.0.1', port: 1, bihaPort: 1, mode: 'regular' as const, canBeLeader: true, canVote: true, priority: 0 })),
      params: DEFAULT_PARAMS,
    };
    const a2 = actionsOn(n2, 2, db2, config);
    // Node 7 is live: it may connect at any moment, so its slot must never be missing.
    // Node 8 is down: its slot is made again, holding WAL until it returns.
    await a2.ensureSlots(['biha_node_3', 'biha_node_7', 'biha_node_8'], ['biha_node_8']);
    const s = await slots();
    expect(s.get('biha_node_7')).toEqual({ reserved: false, active: false });
    expect(s.get('biha_node_8')).toEqual({ reserved: true, active: false });
    expect(s.get('biha_node_3')).toEqual({ reserved: true, active: true });
    // A slot in use is never dropped, even when it is named to hold WAL.
    await a2.ensureSlots(['biha_node_3', 'biha_node_7', 'biha_node_8'], ['biha_node_3', 'biha_node_8']);
    expect((await slots()).get('biha_node_3')).toEqual({ reserved: true, active: true });
    // Slots of nodes no longer in the configuration go; slots biha did not make stay.
    await a2.ensureSlots(['biha_node_3'], []);
    expect([...(await slots()).keys()]).toEqual(['biha_node_3', 'n1']);
  });
});

describe("a switchover's fence", () => {
  // n2 is the primary with n3 streaming from it. A fast fence stops it cleanly and reports where
  // its WAL ends before the restart: the switchover hands over as soon as the target has that WAL.
  it('reports the WAL end of the clean stop, which the streaming standby already has and the restarted standby replays to', async () => {
    const config: ClusterConfig = { nodes: [], params: DEFAULT_PARAMS };
    const a2 = actionsOn(n2, 2, db2, config);
    for (const d of [n2, n3]) await fsp.mkdir(path.join(d, 'pg_biha', 'log'), { recursive: true });
    await db2.query('create table if not exists handover(x int)');
    await db2.query('insert into handover select generate_series(1, 1000)');
    let end: { tli: number; lsn: number } | null = null;
    let standbyHad = 0;
    await a2.fence('fast', (e) => {
      end = e;
    });
    const got = end as { tli: number; lsn: number } | null;
    expect(got).not.toBeNull();
    if (!got) return;
    // The walsender of a clean shutdown waits until the standby has written everything.
    standbyHad = (await localStatus(db3!)).receiveLsn ?? 0;
    expect(standbyHad).toBeGreaterThanOrEqual(got.lsn);
    // The restarted standby starts from the shutdown checkpoint: it has replayed exactly to the end.
    await waitFor('n2 to accept connections as a standby', async () => (await localStatus(db2).catch(() => null))?.inRecovery === true);
    const st = await localStatus(db2);
    expect(st.tli).toBe(got.tli);
    expect(st.replayLsn).toBe(got.lsn);
    // An immediate fence knows no end (crash recovery would find it).
    let immediate: unknown = 'not called';
    await actionsOn(n3, 3, db3!, config).fence('immediate', (e) => {
      immediate = e;
    });
    expect(immediate).toBeNull();
  });
});
