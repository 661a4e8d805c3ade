// bihactl reinit: a fresh copy of this node's data from the leader, keeping the node's identity
// (node id, pg_biha/, its configuration files). The last resort of the runbooks, for a follower
// whose data cannot follow the leader any more (NODE_ERROR, a lost replication slot, corruption).
//
// Steps, each leaving a state that a rerun of the command (or its error message) explains:
//   1. ask the cluster for the leader (the leader reuses the node's registration and makes sure of
//      its slot biha_node_<id>); refuse on the leader itself;
//   2. stop the node's controller and PostgreSQL;
//   3. save the identity files into DIR.biha-reinit/ and move the old data to DIR.old-<time>
//      (or, with --no-keep, delete it); DIR.biha-reinit/reinit.json marks the copy as begun;
//   4. pg_basebackup from the leader into DIR, put the identity files back, make it a standby
//      without NODE_ERROR; remove DIR.biha-reinit/.
// A failed copy puts the old data back (or, with --no-keep, says how to continue).
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { BihaError } from '../controller/errors.js';
import { localRequest, localSocketPath } from '../controller/bridge/localsock.js';
import type { StatusFile } from '../controller/bridge/sqlbridge.js';
import { dataDirMajor } from '../controller/pg/bindir.js';
import { holdPath, syncTree } from '../controller/pg/rewindsave.js';
import { chownToRunAs, postmasterPid, resolvePgEnv } from '../controller/pg/tools.js';
import type { Magic, MagicPeer } from '../controller/security/magic.js';
import { caFingerprint, loadTlsDir } from '../controller/security/tlsfiles.js';
import { atomicWriteFile } from '../controller/state/atomic.js';
import { BIHA_DIR, passfilePath, readNodeConf, readNodeState, rewindMarkerPath, slotName, writeNodeState } from '../controller/state/nodefiles.js';
import type { NodeConf, NodeState } from '../controller/state/nodefiles.js';
import type { NodeInfo } from '../raft/index.js';
import { copyFromLeader, emptyDir, makeOwnStandby } from './clone.js';
import { register } from './join.js';
import { cmdStop } from './lifecycle.js';
import { controllerPid, loadConf } from './localnode.js';
import { info, requireOpt } from './util.js';
import { done } from './output.js';

export interface ReinitOptions {
  json?: boolean;
  pgdata?: string;
  /** false with --no-keep. */
  keep?: boolean;
}

/** Where reinit keeps the node's identity files while the copy runs (small: no data). */
export function reinitSaveDir(pgdata: string): string {
  return `${path.resolve(pgdata)}.biha-reinit`;
}

interface ReinitMark {
  /** The old data directory's contents, or null with --no-keep. */
  old: string | null;
  /** PostgreSQL major of the old data (the programs that take the copy). */
  major: number;
}

/**
 * Entries of a data directory that PostgreSQL (and a copy from the leader) owns. Everything else at
 * the top level is the node's own and survives a reinit: pg_biha/, postgresql.conf and the other
 * configuration files, included files and directories, certificates.
 */
const PG_OWNED = /^(PG_VERSION|base|global|pg_(?!biha$)[a-z_]+|postmaster\.(pid|opts)|backup_label(\.old)?|backup_manifest|tablespace_map(\.old)?|standby\.signal|recovery\.signal|current_logfiles|log)$/;

/** Left behind too: the hold file of an unfinished rewind (a fresh copy is not half rewound). */
const NOT_KEPT = new Set([path.basename(holdPath('/x'))]);

export function isNodeOwnEntry(name: string): boolean {
  return !PG_OWNED.test(name) && !NOT_KEPT.has(name);
}

function timestamp(d: Date): string {
  return d.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
}

/** The cluster's members as this node last knew them: its committed configuration and its seeds. */
function peersOf(conf: NodeConf, state: NodeState): MagicPeer[] {
  const out = new Map<number, MagicPeer>();
  for (const n of state.raft.log.snapshot?.config.nodes ?? [])
    if (n.id !== conf.nodeId && n.bihaPort > 0) out.set(n.id, { id: n.id, host: n.host, port: n.port, bihaPort: n.bihaPort });
  for (const s of conf.seeds) if (s.id !== conf.nodeId && !out.has(s.id)) out.set(s.id, s);
  return [...out.values()];
}

function notLeaderError(conf: NodeConf, pgdata: string, others: MagicPeer[]): BihaError {
  const other = others[0];
  return new BihaError('is_leader', `node ${conf.nodeId} is the leader: reinit copies a follower from the leader and cannot run on the leader itself`, {
    hint: `hand the leadership over first (bihactl set-leader --pgdata=${pgdata} --id=${other ? other.id : 'N'}), then run bihactl reinit again`,
  });
}

export async function cmdReinit(o: ReinitOptions): Promise<void> {
  const pgdata = path.resolve(requireOpt('pgdata', o.pgdata));
  const keep = o.keep !== false;
  const save = reinitSaveDir(pgdata);
  const files = path.join(save, 'files');
  const markFile = path.join(save, 'reinit.json');
  const resumed = fs.existsSync(markFile);
  if (!resumed && fs.existsSync(save))
    throw new BihaError('reinit_interrupted', `an earlier bihactl reinit stopped while it set the old data aside: ${save} holds the node's identity files, and the old data may be split between ${pgdata} and ${pgdata}.old-*`, {
      hint: `move the entries of the newest ${pgdata}.old-* back into ${pgdata}, remove ${save}, then run bihactl reinit again`,
    });
  if (!resumed) {
    await loadConf(pgdata);
    if (fs.existsSync(rewindMarkerPath(pgdata)))
      throw new BihaError('rewind_in_progress', `a rewind of ${pgdata} was interrupted: the node's own files are in its rewind save directory`, {
        hint: `start the node once (bihactl start --pgdata=${pgdata}) so that it puts them back, stop it, then run bihactl reinit again`,
      });
  }
  // The identity: in PGDATA, or (continuing an interrupted reinit) in the save directory.
  const idRoot = resumed ? files : pgdata;
  const conf = await readNodeConf(idRoot);
  const state = await readNodeState(idRoot);
  if (conf.mode === 'referee') throw new BihaError('bad_args', `node ${conf.nodeId} is a referee: it has no data to copy`);
  const peers = peersOf(conf, state);

  // 1. The leader. A running controller says whether this node leads; the cluster says who does.
  const running = resumed ? null : await controllerPid(pgdata);
  if (running !== null) {
    const st = (await localRequest(localSocketPath(conf.bihaPort), 'status', {}, 5000).catch(() => null)) as StatusFile | null;
    const self = st?.status.find((r) => r.id === conf.nodeId);
    if (self && /^LEADER/.test(self.state)) throw notLeaderError(conf, pgdata, peers);
  }
  if (peers.length === 0) throw new BihaError('no_peers', `node ${conf.nodeId} knows no other member of its cluster to copy from`);
  const tlsMat = conf.tls ? await loadTlsDir(idRoot) : null;
  const magic: Magic = {
    clusterId: conf.clusterId,
    secret: conf.secrets[0]!,
    peers,
    tls: conf.tls,
    ...(tlsMat ? { tlsCa: caFingerprint(tlsMat.ca) } : {}),
  };
  const cfgNode = state.raft.log.snapshot?.config.nodes.find((n) => n.id === conf.nodeId);
  const node: NodeInfo = {
    id: conf.nodeId, host: conf.host, port: conf.port, bihaPort: conf.bihaPort, mode: conf.mode,
    canBeLeader: cfgNode?.canBeLeader ?? true, canVote: cfgNode?.canVote ?? true, priority: cfgNode?.priority ?? 0,
  };
  info(`asking the cluster for the leader of node ${conf.nodeId}`);
  const { leader } = await register(magic, node, tlsMat, false);
  if (leader.id === conf.nodeId) throw notLeaderError(conf, pgdata, peers);
  info(`the leader is node ${leader.id} (${leader.host}:${leader.port}); its slot ${slotName(conf.nodeId)} for this node is in place`);

  // 2. Stop the node.
  if (!resumed && (running !== null || (await postmasterPid(pgdata)) !== null)) {
    info(`stopping node ${conf.nodeId}`);
    await cmdStop({ pgdata });
  }

  // 3. Set the old data aside.
  let mark: ReinitMark;
  if (resumed) {
    mark = JSON.parse(await fsp.readFile(markFile, 'utf8')) as ReinitMark;
    info(`continuing an interrupted reinit: the identity of node ${conf.nodeId} is in ${save}` + (mark.old ? `, the old data in ${mark.old}` : ''));
    await fsp.mkdir(pgdata, { recursive: true, mode: 0o700 });
    await emptyDir(pgdata);
  } else {
    mark = await setAside(pgdata, save, files, keep);
  }

  // 4. The copy.
  const configDir = conf.configDir ?? null;
  const env = await resolvePgEnv(pgdata, { clusterMajor: mark.major, configDir });
  try {
    await chownToRunAs(env, pgdata);
    await chownToRunAs(env, save);
    info(`copying the data of node ${leader.id} into ${pgdata}`);
    await copyFromLeader(env, { host: leader.host, port: leader.port, passfile: passfilePath(files), pgdata, slot: slotName(conf.nodeId) });
    const envCopy = await resolvePgEnv(pgdata, { configDir });
    // The copy carries the leader's pg_biha/ and configuration: this node's own take their place.
    await fsp.rm(path.join(pgdata, BIHA_DIR), { recursive: true, force: true });
    for (const name of await fsp.readdir(files)) await fsp.cp(path.join(files, name), path.join(pgdata, name), { recursive: true, force: true, preserveTimestamps: true });
    await makeOwnStandby(envCopy, pgdata, conf);
    await fsp.rm(holdPath(pgdata), { force: true });
    // The raft state as the stopped node last wrote it (saved after the stop), without NODE_ERROR.
    await writeNodeState(pgdata, { ...(await readNodeState(pgdata)), nodeError: null });
    await chownToRunAs(envCopy, pgdata);
  } catch (e) {
    throw await failed(e, pgdata, save, mark, conf.nodeId);
  }
  await fsp.rm(save, { recursive: true, force: true });
  info(`node ${conf.nodeId} has a fresh copy of the data of node ${leader.id}` + (mark.old ? `; the old data is in ${mark.old}: remove it once the node streams` : ''));
  done(o, `start it with: bihactl start --pgdata=${pgdata}`, { node_id: conf.nodeId, pgdata, leader_id: leader.id, old_data: mark.old ?? null });
}

/** Saves the identity files, then moves the old data aside (or deletes it); writes the mark last. */
async function setAside(pgdata: string, save: string, files: string, keep: boolean): Promise<ReinitMark> {
  const major = await dataDirMajor(pgdata);
  if (major === null)
    throw new BihaError('not_a_cluster', `${pgdata} has no PG_VERSION`, { hint: 'the node has no data to replace: remove it (select biha.remove_node(id)) and add it again with bihactl add' });
  const entries = await fsp.readdir(pgdata);
  await fsp.mkdir(files, { recursive: true, mode: 0o700 });
  for (const name of entries.filter(isNodeOwnEntry)) await fsp.cp(path.join(pgdata, name), path.join(files, name), { recursive: true, preserveTimestamps: true });
  // Durable before the old data moves: from here on the save directory is the node's identity.
  await syncTree(save);
  let old: string | null = null;
  if (keep) {
    old = `${pgdata}.old-${timestamp(new Date())}`;
    await fsp.mkdir(old, { mode: 0o700 });
    const moved: string[] = [];
    try {
      for (const name of entries) {
        await fsp.rename(path.join(pgdata, name), path.join(old, name));
        moved.push(name);
      }
    } catch (e) {
      for (const name of moved) await fsp.rename(path.join(old, name), path.join(pgdata, name));
      await fsp.rmdir(old);
      await fsp.rm(save, { recursive: true, force: true });
      const code = (e as NodeJS.ErrnoException).code;
      throw new BihaError('cannot_keep', `cannot move the old data of ${pgdata} to ${old} (${code ?? (e as Error).message}); nothing was changed`, {
        hint: code === 'EXDEV' ? `${pgdata} is a mount point: the old data can only be kept on the same file system; copy it away yourself and use --no-keep` : 'fix the cause, or use --no-keep',
      });
    }
  }
  const mark: ReinitMark = { old, major };
  await atomicWriteFile(path.join(save, 'reinit.json'), JSON.stringify(mark) + '\n', { mode: 0o600 });
  if (!keep) await emptyDir(pgdata);
  return mark;
}

/** After a failed copy: the old data back in place, or (--no-keep) the exact state and the way on. */
async function failed(e: unknown, pgdata: string, save: string, mark: ReinitMark, nodeId: number): Promise<BihaError> {
  const msg = e instanceof Error ? e.message : String(e);
  if (mark.old) {
    try {
      await emptyDir(pgdata);
      for (const name of await fsp.readdir(mark.old)) await fsp.rename(path.join(mark.old, name), path.join(pgdata, name));
      await fsp.rmdir(mark.old);
      await fsp.rm(save, { recursive: true, force: true });
    } catch (e2) {
      return new BihaError('reinit_failed', `the copy for node ${nodeId} failed (${msg}), and putting the old data back failed too (${(e2 as Error).message}): the old data is in ${mark.old}, the identity files in ${save}`, {
        cause: e,
        hint: `fix the cause and run bihactl reinit --pgdata=${pgdata} again (it continues with the saved identity), or move ${mark.old}/* back into ${pgdata} and remove ${save}`,
      });
    }
    return new BihaError('reinit_failed', `the copy for node ${nodeId} failed: ${msg}; the old data of ${pgdata} is back in place, unchanged (the node is stopped)`, {
      cause: e,
      hint: 'fix the cause and run bihactl reinit again',
    });
  }
  return new BihaError('reinit_failed', `the copy for node ${nodeId} failed: ${msg}; ${pgdata} holds no usable data (--no-keep deleted the old data) and the node's identity is in ${save}`, {
    cause: e,
    hint: `fix the cause and run bihactl reinit --pgdata=${pgdata} again: it continues from there`,
  });
}
