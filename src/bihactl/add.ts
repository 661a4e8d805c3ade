// bihactl add: register a node through the leader and copy its data (or convert a standby).
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import pg from 'pg';
import { joiningState } from '../raft/index.js';
import type { NodeInfo, NodeMode, PersistentState } from '../raft/index.js';
import { BihaError } from '../controller/errors.js';
import { decodeMagic } from '../controller/security/magic.js';
import type { Magic } from '../controller/security/magic.js';
import { bihaDir, logDir, slotName, writeNodeConf, writeNodeState } from '../controller/state/nodefiles.js';
import { chownToRunAs, controldata, postmasterPid, resolvePgEnv } from '../controller/pg/tools.js';
import { assertOpenssl, caFingerprint, makeNodeCert, readMaterialFiles, writeTlsDir } from '../controller/security/tlsfiles.js';
import type { TlsMaterial } from '../controller/security/tlsfiles.js';
import { assertPrivate } from '../controller/security/secfiles.js';
import { REPLICATION_USER, writePassfile } from './init.js';
import { copyFromLeader, makeOwnStandby } from './clone.js';
import { register } from './join.js';
import type { JoinReply } from './join.js';
import { HTTP_PORT_OFFSET, assertEmptyDir, assertPortFree, defaultHttpPort, defaultPort, distinctPorts, info, intOpt, requireOpt } from './util.js';
import { lookupPassword } from './pgpass.js';
import { httpSetup, writeHttpSetup } from './httpcreds.js';
import type { HttpOptions } from './httpcreds.js';

export interface AddOptions extends HttpOptions {
  bihaNodeId?: string;
  host?: string;
  port?: string;
  bihaPort?: string;
  httpPort?: string;
  magicString?: string;
  magicFile?: string;
  useLeader?: string;
  pgdata?: string;
  convertStandby?: boolean;
  backupMethod?: string;
  mode?: string;
  canBeLeader?: string;
  canVote?: string;
  priority?: string;
  sslCaFile?: string;
  sslCertFile?: string;
  sslKeyFile?: string;
  allowSyncLoss?: boolean;
}

function boolOpt(name: string, v: string | undefined, dflt: boolean): boolean {
  if (v === undefined) return dflt;
  if (/^(true|on|yes|1)$/i.test(v)) return true;
  if (/^(false|off|no|0)$/i.test(v)) return false;
  throw new BihaError('bad_args', `--${name} must be true or false, not "${v}"`);
}

function parseUseLeader(s: string): { host: string; port: number; bihaPort: number } {
  const kv: Record<string, string> = {};
  for (const part of s.trim().split(/\s+/)) {
    const m = /^([a-z-]+)=(.+)$/.exec(part);
    if (!m) throw new BihaError('bad_args', `--use-leader must look like "host=H port=P biha-port=BP", not "${s}"`);
    kv[m[1]!] = m[2]!;
  }
  const host = requireOpt('use-leader host', kv['host']);
  const port = intOpt('use-leader port', kv['port'], 1, 65535);
  const bihaPort = kv['biha-port'] !== undefined ? intOpt('use-leader biha-port', kv['biha-port'], 1, 65535) : port + 1;
  return { host, port, bihaPort };
}

/**
 * The password of biha_replication_user for joining through `l`: add logs in to biha_db with it,
 * then copies the data over a replication connection, so a password-file line for either database
 * serves (biha_db first).
 */
async function joinPassword(l: { host: string; port: number }): Promise<string | null> {
  return (
    (await lookupPassword({ host: l.host, port: l.port, user: REPLICATION_USER, database: 'biha_db' })) ??
    (await lookupPassword({ host: l.host, port: l.port, user: REPLICATION_USER, database: 'replication' }))
  );
}

/** With --use-leader the magic string is read from the leader over SQL, as biha_replication_user. */
async function magicFromLeader(l: { host: string; port: number }, password: string): Promise<Magic> {
  const c = new pg.Client({ host: l.host, port: l.port, user: REPLICATION_USER, password, database: 'biha_db', connectionTimeoutMillis: 5000 });
  try {
    await c.connect();
    const r = await c.query<{ m: string }>('select biha.get_magic_string() as m');
    return decodeMagic(r.rows[0]?.m ?? '');
  } catch (e) {
    throw pgConnectError(l, e);
  } finally {
    await c.end().catch(() => undefined);
  }
}

function pgConnectError(l: { host: string; port: number }, e: unknown): BihaError {
  if (e instanceof BihaError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  if (/password authentication failed/.test(msg))
    return new BihaError('bad_password', `the leader ${l.host}:${l.port} rejected the password of ${REPLICATION_USER}`, {
      hint: 'fix the password file (PGPASSFILE or ~/.pgpass) or BIHA_REPLICATION_PASSWORD',
    });
  if (/ECONNREFUSED|ETIMEDOUT|EHOSTUNREACH|timeout/i.test(msg))
    return new BihaError('unreachable', `cannot reach PostgreSQL of the leader at ${l.host}:${l.port} (${msg})`, {
      hint: 'is the leader started (bihactl start) and reachable?',
    });
  return new BihaError('leader_sql', `cannot use the leader at ${l.host}:${l.port}: ${msg}`);
}

/**
 * The password works on the leader's PostgreSQL. A leader that has just started (its PostgreSQL
 * still starting up, or not consistent yet) is asked again for up to 30 s.
 */
/** Logs in as the replication user; returns the PostgreSQL major version the cluster runs. */
async function checkPassword(l: { host: string; port: number }, password: string): Promise<number> {
  const deadline = Date.now() + 30_000;
  for (let attempt = 0; ; attempt++) {
    const c = new pg.Client({ host: l.host, port: l.port, user: REPLICATION_USER, password, database: 'biha_db', connectionTimeoutMillis: 5000 });
    try {
      await c.connect();
      const r = await c.query<{ major: number }>(
        "select system_identifier::text as sid, current_setting('server_version_num')::int / 10000 as major from pg_control_system()",
      );
      return Number(r.rows[0]?.major);
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      if (!/starting up|not yet accepting connections|shutting down/.test(msg) || Date.now() > deadline) throw pgConnectError(l, e);
      if (attempt === 0) info(`PostgreSQL of the leader at ${l.host}:${l.port} is not ready yet (${msg}); asking again for up to 30 s`);
      await new Promise((r) => setTimeout(r, 500));
    } finally {
      await c.end().catch(() => undefined);
    }
  }
}

async function leaderSystemId(l: { host: string; port: number }, password: string): Promise<string> {
  const c = new pg.Client({ host: l.host, port: l.port, user: REPLICATION_USER, password, database: 'biha_db', connectionTimeoutMillis: 5000 });
  try {
    await c.connect();
    const r = await c.query<{ sid: string }>('select system_identifier::text as sid from pg_control_system()');
    return r.rows[0]?.sid ?? '';
  } finally {
    await c.end().catch(() => undefined);
  }
}

export async function cmdAdd(o: AddOptions): Promise<void> {
  const nodeId = intOpt('biha-node-id', requireOpt('biha-node-id', o.bihaNodeId), 1, 1_000_000);
  const host = requireOpt('host', o.host);
  const mode = (o.mode ?? 'regular') as NodeMode;
  if (!['regular', 'referee', 'referee_with_wal'].includes(mode))
    throw new BihaError('bad_args', `--mode must be regular, referee or referee_with_wal, not "${o.mode}"`);
  // A referee runs no PostgreSQL: it is registered with port 0, and --port only derives its other ports.
  const basePort = mode === 'referee' ? (o.port ? intOpt('port', o.port, 1, 65535) : 0) : intOpt('port', requireOpt('port', o.port), 1, 65535);
  const port = mode === 'referee' ? 0 : basePort;
  if (basePort === 0 && o.bihaPort === undefined)
    throw new BihaError('bad_args', `a referee has no PostgreSQL port to derive its ports from: give --biha-port (and --http-port, default --biha-port + ${HTTP_PORT_OFFSET - 1})`);
  const bihaPort = o.bihaPort !== undefined ? intOpt('biha-port', o.bihaPort, 1, 65535) : defaultPort('biha-port', basePort, 1);
  const httpPort = o.httpPort !== undefined ? intOpt('http-port', o.httpPort, 1, 65535) : basePort ? defaultHttpPort(basePort) : defaultHttpPort(bihaPort - 1, 'biha-port');
  distinctPorts({ port, 'biha-port': bihaPort, 'http-port': httpPort });
  const pgdata = path.resolve(requireOpt('pgdata', o.pgdata));
  const sources = [o.magicString, o.magicFile, o.useLeader].filter((x) => x !== undefined).length;
  if (sources !== 1) throw new BihaError('bad_args', 'give exactly one of --magic-string, --magic-file or --use-leader');
  if (o.backupMethod !== undefined && o.backupMethod !== 'pg_basebackup')
    throw new BihaError('bad_args', `--backup-method ${o.backupMethod} is not supported; use pg_basebackup`);
  if (o.convertStandby && mode === 'referee') throw new BihaError('bad_args', '--convert-standby and --mode=referee contradict each other: a referee has no data');
  const canBeLeader = boolOpt('can-be-leader', o.canBeLeader, mode === 'regular');
  const canVote = boolOpt('can-vote', o.canVote, true);
  if (mode !== 'regular' && canBeLeader) throw new BihaError('bad_args', `a ${mode} node can never be the leader: drop --can-be-leader`);
  const priority = o.priority !== undefined ? intOpt('priority', o.priority, 0, 1000) : 0;

  if (o.convertStandby) {
    try {
      await fsp.access(path.join(pgdata, 'PG_VERSION'));
    } catch {
      throw new BihaError('not_a_cluster', `--convert-standby needs an existing data directory, and ${pgdata} has no PG_VERSION`);
    }
    if ((await postmasterPid(pgdata)) !== null)
      throw new BihaError('running', `PostgreSQL is running in ${pgdata}`, { hint: `stop it first: pg_ctl stop -D ${pgdata}` });
  } else {
    await assertEmptyDir(pgdata, 'choose an empty or new directory, or use --convert-standby for an existing stopped standby');
  }
  if (port !== 0) await assertPortFree('port', port);
  await assertPortFree('biha port', bihaPort);

  let magic: Magic;
  let password: string | null = null;
  if (o.useLeader !== undefined) {
    const l = parseUseLeader(o.useLeader);
    password = await joinPassword(l);
    if (!password)
      throw new BihaError('no_password', `no password for ${REPLICATION_USER} at ${l.host}:${l.port}`, {
        hint: 'add it to the password file (PGPASSFILE or ~/.pgpass) or set BIHA_REPLICATION_PASSWORD',
      });
    magic = await magicFromLeader(l, password);
  } else {
    const text = o.magicString ?? (await fsp.readFile(o.magicFile!, 'utf8').catch(() => {
      throw new BihaError('bad_args', `cannot read --magic-file ${o.magicFile}`);
    }));
    if (o.magicFile !== undefined) {
      try {
        assertPrivate(o.magicFile, 'the cluster secret');
      } catch (e) {
        info(`warning: ${(e as BihaError).message}; ${(e as BihaError).hint ?? ''}`);
      }
    }
    magic = decodeMagic(text);
  }
  const ownTls = await tlsOptions(magic, o);
  const http = await httpSetup(o, host, magic.tls);
  const first = magic.peers[0]!;
  if (password === null && mode !== 'referee') {
    password = await joinPassword(first);
    if (!password)
      throw new BihaError('no_password', `no password for ${REPLICATION_USER} at ${first.host}:${first.port}`, {
        hint: 'add it to the password file (PGPASSFILE or ~/.pgpass) or set BIHA_REPLICATION_PASSWORD',
      });
  }
  // The cluster's major decides which PostgreSQL programs take the copy and run this node.
  const clusterMajor = password !== null ? await checkPassword(first, password) : undefined;

  const created = !o.convertStandby && (await fsp.stat(pgdata).then(() => false, () => true));
  let env = await resolvePgEnv(pgdata, clusterMajor !== undefined ? { clusterMajor } : {});
  if (!o.convertStandby) await fsp.mkdir(pgdata, { recursive: true, mode: 0o700 });
  await chownToRunAs(env, pgdata);

  const node: NodeInfo = { id: nodeId, host, port, bihaPort, mode, canBeLeader, canVote, priority };
  if (o.convertStandby && password !== null) {
    const want = await leaderSystemId(first, password);
    const cd = await controldata(env, pgdata);
    if (cd['Database system identifier'] !== want)
      throw new BihaError('foreign_standby', `${pgdata} is not a copy of the leader's cluster (system identifier ${cd['Database system identifier']} vs ${want})`, {
        hint: 'use bihactl add without --convert-standby to copy the data',
      });
  }
  info(`registering node ${nodeId} with the cluster`);
  let registered: Awaited<ReturnType<typeof register>>;
  try {
    registered = await register(magic, node, ownTls, o.allowSyncLoss === true);
  } catch (e) {
    // Nothing was registered: leave no directory this command made.
    if (created) await fsp.rm(pgdata, { recursive: true, force: true }).catch(() => undefined);
    throw e;
  }
  const { leader, snapshot, tls: joinTls } = registered;
  info(`node ${nodeId} is registered; the leader is node ${leader.id} (${leader.host}:${leader.port})`);

  try {
    const tlsMat = magic.tls ? await nodeTls(magic, joinTls, ownTls, nodeId, host) : null;
    if (mode !== 'referee' && !o.convertStandby) {
      await copyFromLeader(env, { host: leader.host, port: leader.port, password: password!, pgdata, slot: slotName(nodeId) });
    }
    // From here on the copy's PG_VERSION (the leader's) decides which programs serve the node.
    if (mode !== 'referee') env = await resolvePgEnv(pgdata);
    // The copy carries the leader's pg_biha/ and conf: replace them with this node's own.
    await fsp.rm(bihaDir(pgdata), { recursive: true, force: true });
    await fsp.mkdir(logDir(pgdata), { recursive: true, mode: 0o700 });
    if (mode !== 'referee') {
      await makeOwnStandby(env, pgdata, { nodeId, host, port, bihaPort });
      await writePassfile(pgdata, password!);
    }
    await writeNodeConf(pgdata, {
      clusterId: magic.clusterId,
      nodeId,
      host,
      port,
      bihaPort,
      httpPort,
      httpHost: http.httpHost,
      httpTls: http.httpTls,
      mode,
      secrets: [magic.secret],
      seeds: magic.peers.filter((p) => p.id !== nodeId),
      replicationUser: REPLICATION_USER,
      tls: magic.tls,
    });
    await writeHttpSetup(pgdata, http);
    if (tlsMat) await writeTlsDir(pgdata, tlsMat);
    const raft: PersistentState = snapshot
      ? { hard: { term: 0, vote: 0, commit: snapshot.index }, log: { snapshot, entries: [] } }
      : joiningState();
    await writeNodeState(pgdata, { raft, nodeError: null });
    await chownToRunAs(env, pgdata);
  } catch (e) {
    if (created) await fsp.rm(pgdata, { recursive: true, force: true }).catch(() => undefined);
    throw new BihaError((e as BihaError).code ?? 'add_failed', `node ${nodeId} was registered in the cluster but its setup failed: ${(e as Error).message}`, {
      cause: e,
      hint: `fix the cause and run the same bihactl add again (the registration is reused), or remove it with select biha.remove_node(${nodeId})`,
    });
  }
  info(`node ${nodeId} is ready; start it with: bihactl start --pgdata=${pgdata}`);
}

/** Checks the TLS options against the magic string before anything is registered or written. */
async function tlsOptions(magic: Magic, o: AddOptions): Promise<TlsMaterial | null> {
  const given = o.sslCaFile !== undefined || o.sslCertFile !== undefined || o.sslKeyFile !== undefined;
  if (!magic.tls) {
    if (given) throw new BihaError('bad_args', 'the cluster does not use TLS on its control channel: drop --ssl-ca-file, --ssl-cert-file and --ssl-key-file');
    return null;
  }
  if (!given) {
    if (magic.tlsOwnCerts)
      throw new BihaError('bad_args', 'the nodes of this cluster bring their own TLS certificates (no node holds the CA key)', {
        hint: 'give --ssl-ca-file (the cluster CA), --ssl-cert-file and --ssl-key-file (this node, signed by that CA)',
      });
    await assertOpenssl();
    return null;
  }
  const own = await readMaterialFiles({ ca: o.sslCaFile, cert: o.sslCertFile, key: o.sslKeyFile });
  if (caFingerprint(own.ca) !== magic.tlsCa)
    throw new BihaError('bad_tls', `--ssl-ca-file ${o.sslCaFile} is not the CA of this cluster (its fingerprint differs from the one in the magic string)`);
  return own;
}

/** This node's TLS material: its own files, or a key and certificate signed here with the CA from the join reply. */
async function nodeTls(magic: Magic, reply: JoinReply['tls'], own: TlsMaterial | null, nodeId: number, host: string): Promise<TlsMaterial> {
  if (!reply?.ca || caFingerprint(reply.ca) !== magic.tlsCa)
    throw new BihaError('bad_tls', 'the leader did not send the cluster CA named in the magic string');
  if (own) return { ...own, ...(reply.caKey === undefined ? {} : { caKey: reply.caKey }) };
  if (reply.caKey === undefined)
    throw new BihaError('bad_tls', 'the leader holds no CA key to sign a certificate for this node', {
      hint: 'give --ssl-ca-file, --ssl-cert-file and --ssl-key-file',
    });
  info(`making a TLS key and certificate for node ${nodeId}, signed by the cluster CA`);
  return await makeNodeCert(reply.ca, reply.caKey, nodeId, host);
}
