// The node on this host as bihactl reaches it: its identity (biha.conf), its controller's PID and
// requests over the controller's local socket.
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { BihaError } from '../controller/errors.js';
import { localRequest, localSocketPath } from '../controller/bridge/localsock.js';
import { identityDir, readNodeConf } from '../controller/state/nodefiles.js';
import type { NodeConf } from '../controller/state/nodefiles.js';
import { requireOpt } from './util.js';

/**
 * The node's identity. While a rewind is in progress or was interrupted, PGDATA/pg_biha may hold
 * the source node's files: the node's own are then in the rewind's save directory (identityDir),
 * until its controller starts and puts them back.
 */
export async function loadConf(pgdataOpt: unknown): Promise<{ pgdata: string; conf: NodeConf }> {
  const pgdata = path.resolve(requireOpt('pgdata', pgdataOpt));
  try {
    await fsp.access(path.join(identityDir(pgdata), 'biha.conf'));
  } catch {
    throw new BihaError('not_a_node', `${pgdata} is not a biha node (no pg_biha/biha.conf)`, {
      hint: 'create one with bihactl init or bihactl add',
    });
  }
  return { pgdata, conf: await readNodeConf(pgdata) };
}

export async function controllerPid(pgdata: string): Promise<number | null> {
  try {
    const pid = Number((await fsp.readFile(path.join(identityDir(pgdata), 'controller.pid'), 'utf8')).trim());
    if (!pid) return null;
    process.kill(pid, 0);
    const stat = await fsp.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
    if (/^\d+ \(.*\) Z/.test(stat)) return null;
    return pid;
  } catch {
    return null;
  }
}

export async function nodeRequest(pgdataOpt: unknown, cmd: string, args: Record<string, unknown>, timeoutMs = 40_000): Promise<unknown> {
  const { conf } = await loadConf(pgdataOpt);
  return await localRequest(localSocketPath(conf.bihaPort), cmd, args, timeoutMs);
}
