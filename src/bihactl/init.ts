// bihactl init: create (or --convert) the first node of a cluster and print the magic string.
import { randomBytes } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { bootstrapState, DEFAULT_PARAMS, splitBrainWarning, validateChange } from '../raft/index.js';
import type { ClusterParams, NodeInfo } from '../raft/index.js';
import { BihaError } from '../controller/errors.js';
import { encodeMagic } from '../controller/security/magic.js';
import { bihaDir, logDir, passfilePath, writeNodeConf, writeNodeState } from '../controller/state/nodefiles.js';
import type { NodeConf } from '../controller/state/nodefiles.js';
import { planBihaConf, writeBihaConf } from '../controller/pg/conf.js';
import { describeRaised } from '../controller/pg/settings.js';
import { pgpassLine, quoteLiteral, withConn } from '../controller/pg/conn.js';
import { chownToRunAs, dataChecksumsOn, initdb, pgCtlStart, pgCtlStop, postmasterPid, resolvePgEnv } from '../controller/pg/tools.js';
import type { PgEnv } from '../controller/pg/tools.js';
import { installSql } from '../controller/bridge/sqlbridge.js';
import { secretDir, writeSecretFile } from '../controller/security/secfiles.js';
import { TLS_META_KEY, caFingerprint, makeClusterPki, readMaterialFiles, writeTlsDir } from '../controller/security/tlsfiles.js';
import type { TlsMaterial } from '../controller/security/tlsfiles.js';
import { httpSetup, writeHttpSetup } from './httpcreds.js';
import type { HttpOptions } from './httpcreds.js';
import { assertEmptyDir, assertPortFree, defaultHttpPort, defaultPort, distinctPorts, info, initPassword, intOpt, requireOpt } from './util.js';

export interface InitOptions extends HttpOptions {
  bihaNodeId?: string;
  host?: string;
  port?: string;
  bihaPort?: string;
  httpPort?: string;
  nquorum?: string;
  minnodes?: string;
  pgdata?: string;
  syncStandbys?: string;
  convert?: boolean;
  magicFile?: string;
  heartbeatSendPeriod?: string;
  heartbeatMaxLost?: string;
  useSsl?: boolean;
  sslCaFile?: string;
  sslCertFile?: string;
  sslKeyFile?: string;
}

export const REPLICATION_USER = 'biha_replication_user';

/** Roles and grants of the reference (F.9.3.3), pg_rewind's function grants included. */
function roleSql(password: string): string[] {
  return [
    `DO $$ BEGIN
       IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'biha_cluster_management_role') THEN CREATE ROLE biha_cluster_management_role NOLOGIN; END IF;
       IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'biha_replication_role') THEN CREATE ROLE biha_replication_role NOLOGIN; END IF;
       IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${REPLICATION_USER}') THEN CREATE ROLE ${REPLICATION_USER} LOGIN REPLICATION; END IF;
     END $$`,
    `ALTER ROLE ${REPLICATION_USER} WITH LOGIN REPLICATION PASSWORD ${quoteLiteral(password)}`,
    `GRANT biha_replication_role, biha_cluster_management_role TO ${REPLICATION_USER}`,
    'GRANT pg_monitor TO biha_cluster_management_role',
  ];
}

/** The function grants pg_rewind needs; function privileges are per database, so given in biha_db. */
const REWIND_GRANTS = [
  'GRANT EXECUTE ON FUNCTION pg_catalog.pg_ls_dir(text, boolean, boolean) TO biha_replication_role',
  'GRANT EXECUTE ON FUNCTION pg_catalog.pg_stat_file(text, boolean) TO biha_replication_role',
  'GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text) TO biha_replication_role',
  'GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean) TO biha_replication_role',
];

export async function cmdInit(o: InitOptions): Promise<void> {
  const nodeId = intOpt('biha-node-id', requireOpt('biha-node-id', o.bihaNodeId), 1, 1_000_000);
  const host = requireOpt('host', o.host);
  const port = intOpt('port', requireOpt('port', o.port), 1, 65535);
  const bihaPort = o.bihaPort !== undefined ? intOpt('biha-port', o.bihaPort, 1, 65535) : defaultPort('biha-port', port, 1);
  const httpPort = o.httpPort !== undefined ? intOpt('http-port', o.httpPort, 1, 65535) : defaultHttpPort(port);
  distinctPorts({ port, 'biha-port': bihaPort, 'http-port': httpPort });
  const nquorum = intOpt('nquorum', requireOpt('nquorum', o.nquorum), 1, 100);
  const minnodes = intOpt('minnodes', requireOpt('minnodes', o.minnodes), 1, 100);
  const syncStandbys = o.syncStandbys !== undefined ? intOpt('sync-standbys', o.syncStandbys, 0, 100) : 0;
  const pgdata = path.resolve(requireOpt('pgdata', o.pgdata));
  const params: ClusterParams = {
    ...DEFAULT_PARAMS,
    nquorum,
    minnodes,
    syncStandbys,
    ...(o.heartbeatSendPeriod !== undefined ? { heartbeatSendPeriod: intOpt('heartbeat-send-period', o.heartbeatSendPeriod, 10, 60000) } : {}),
    ...(o.heartbeatMaxLost !== undefined ? { heartbeatMaxLost: intOpt('heartbeat-max-lost', o.heartbeatMaxLost, 2, 1000) } : {}),
  };
  const node: NodeInfo = { id: nodeId, host, port, bihaPort, mode: 'regular', canBeLeader: true, canVote: true, priority: 0 };
  const bad = validateChange({ nodes: [node], params: DEFAULT_PARAMS }, { type: 'set_params', params });
  if (bad) throw new BihaError('bad_args', bad);

  // Check everything we can before touching the disk.
  if (o.convert) {
    try {
      await fsp.access(path.join(pgdata, 'PG_VERSION'));
    } catch {
      throw new BihaError('not_a_cluster', `--convert needs an existing data directory, and ${pgdata} has no PG_VERSION`, {
        hint: 'drop --convert to create a new one',
      });
    }
    if ((await postmasterPid(pgdata)) !== null)
      throw new BihaError('running', `PostgreSQL is running in ${pgdata}`, { hint: `stop it first: pg_ctl stop -D ${pgdata}` });
    try {
      await fsp.access(path.join(pgdata, 'pg_biha', 'biha.conf'));
      throw new BihaError('already_node', `${pgdata} is already a biha node`, { hint: 'use bihactl start' });
    } catch (e) {
      if (e instanceof BihaError) throw e;
    }
    // The DBA's settings must work with biha before anything is written.
    await planBihaConf(pgdata, { dataChecksums: await dataChecksumsOn(await resolvePgEnv(pgdata), pgdata) });
  } else {
    await assertEmptyDir(pgdata, 'choose an empty or new directory, or use --convert for an existing stopped data directory');
  }
  await assertPortFree('port', port);
  await assertPortFree('biha port', bihaPort);
  const clusterId = randomBytes(8).toString('hex');
  // TLS material is made or checked before anything is written: a bad file leaves nothing behind.
  let tls: TlsMaterial | null = null;
  if (o.sslCaFile !== undefined || o.sslCertFile !== undefined || o.sslKeyFile !== undefined) {
    tls = await readMaterialFiles({ ca: o.sslCaFile, cert: o.sslCertFile, key: o.sslKeyFile });
  } else if (o.useSsl) {
    tls = await makeClusterPki(clusterId, nodeId, host);
  }
  const password = await initPassword();
  const http = await httpSetup(o, host, tls !== null);
  if (syncStandbys > 0)
    info(
      `synchronous mode: a commit waits for ${syncStandbys} standby(s); acknowledged commits survive a failover ` +
        `only while sync_standbys + 1 + nquorum > voting nodes (here ${syncStandbys} + 1 + ${nquorum} > N allows N <= ${syncStandbys + nquorum}); ` +
        'bihactl add, biha.set_sync_standbys and biha.set_nquorum_and_minnodes refuse a change that breaks it unless told to allow it',
    );
  const warn = splitBrainWarning({ nodes: [node, { ...node, id: nodeId + 1 }, { ...node, id: nodeId + 2 }], params });
  if (warn) info(`warning for a 3-node cluster with these settings: ${warn}`);

  const created = !o.convert && (await fsp.stat(pgdata).then(() => false, () => true));
  const env = await resolvePgEnv(pgdata);
  let started = false;
  try {
    if (!o.convert) {
      await fsp.mkdir(pgdata, { recursive: true, mode: 0o700 });
      await chownToRunAs(env, pgdata);
      info(`initdb ${pgdata}`);
      await initdb(env, pgdata);
    }
    await fsp.mkdir(logDir(pgdata), { recursive: true, mode: 0o700 });
    const plan = await writeBihaConf(pgdata, {
      listenAddresses: '*',
      port,
      nodeId,
      host,
      bihaPort,
      syncStandbyNames: '',
      autorewind: false,
      dataChecksums: await dataChecksumsOn(env, pgdata),
    });
    for (const r of plan.raised) info(describeRaised(r));
    if (o.convert && plan.raised.length === 0) info('kept all replication settings of the data directory: none is below what biha needs');
    await chownToRunAs(env, bihaDir(pgdata));
    info('starting PostgreSQL to create biha_db and the biha roles');
    await pgCtlStart(env, pgdata, { logFile: path.join(logDir(pgdata), 'postgresql.log'), timeoutMs: 120_000 });
    started = true;
    await setupDatabase(env, pgdata, port, password);
    await pgCtlStop(env, pgdata, 'fast', { timeoutMs: 120_000 });
    started = false;

    const secret = randomBytes(32).toString('hex');
    await writePassfile(pgdata, password);
    const conf: NodeConf = {
      clusterId,
      nodeId,
      host,
      port,
      bihaPort,
      httpPort,
      httpHost: http.httpHost,
      httpTls: http.httpTls,
      mode: 'regular',
      secrets: [secret],
      seeds: [],
      replicationUser: REPLICATION_USER,
      tls: tls !== null,
    };
    await writeNodeConf(pgdata, conf);
    await writeHttpSetup(pgdata, http);
    const raft = bootstrapState(node, params);
    // TLS is a property of the cluster: the CA fingerprint is in the committed configuration.
    const meta = tls ? { ...raft.log.snapshot.meta, [TLS_META_KEY]: caFingerprint(tls.ca) } : raft.log.snapshot.meta;
    await writeNodeState(pgdata, { raft: { ...raft, log: { ...raft.log, snapshot: { ...raft.log.snapshot, meta } } }, nodeError: null });
    if (tls) {
      await writeTlsDir(pgdata, tls);
      info(`TLS on the control channel: ${tls.caKey ? 'a new cluster CA and a node certificate' : 'the given CA and certificate'} are in ${path.join(bihaDir(pgdata), 'tls')}`);
    }
    await chownToRunAs(env, bihaDir(pgdata));
    const tlsMagic = tls ? { tlsCa: caFingerprint(tls.ca), tlsOwnCerts: tls.caKey === undefined } : {};
    const magic = encodeMagic({ clusterId, secret, peers: [{ id: nodeId, host, port, bihaPort }], tls: tls !== null, ...tlsMagic });
    if (o.magicFile) await writeSecretFile(o.magicFile, magic + '\n');
    process.stdout.write(magic + '\n');
    info(`node ${nodeId} initialised; start it with: bihactl start --pgdata=${pgdata}`);
  } catch (e) {
    if (started) await pgCtlStop(env, pgdata, 'immediate').catch(() => undefined);
    if (created) {
      await fsp.rm(pgdata, { recursive: true, force: true }).catch(() => undefined);
      throw new BihaError((e as BihaError).code ?? 'init_failed', `init failed and ${pgdata} was removed: ${(e as Error).message}`, { cause: e });
    }
    throw new BihaError((e as BihaError).code ?? 'init_failed', `init failed: ${(e as Error).message}`, {
      cause: e,
      hint: o.convert
        ? `${pgdata} may now hold postgresql.biha.conf, pg_hba.biha.conf and pg_biha/: remove them and the include lines before retrying`
        : `remove ${pgdata} before retrying`,
    });
  }
}

async function setupDatabase(env: PgEnv, pgdata: string, port: number, password: string): Promise<void> {
  await withConn({ pgdata, port, user: env.user, database: 'postgres' }, async (c) => {
    for (const q of roleSql(password)) await c.query(q);
    const db = await c.query("select 1 from pg_database where datname = 'biha_db'");
    if (db.rowCount === 0) await c.query(`CREATE DATABASE biha_db OWNER ${REPLICATION_USER}`);
  });
  await withConn({ pgdata, port, user: env.user, database: 'biha_db' }, async (c) => {
    for (const q of REWIND_GRANTS) await c.query(q);
    const v = await installSql(c);
    info(`installed the biha SQL interface ${v} in biha_db`);
  });
}

/** pg_biha/pgpass: the replication password for this node's walreceiver and pg_rewind. */
export async function writePassfile(pgdata: string, password: string): Promise<void> {
  const line = pgpassLine({ host: '*', port: '*', database: '*', user: REPLICATION_USER, password });
  await secretDir(bihaDir(pgdata));
  await writeSecretFile(passfilePath(pgdata), line + '\n');
}
