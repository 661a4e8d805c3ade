// bihactl conninfo: libpq multi-host connection URIs over every data node of the cluster.
import { BihaError } from '../controller/errors.js';
import type { NodeInfo } from '../raft/index.js';
import { loadConf } from './localnode.js';
import { committedNodes } from './statusview.js';

export interface ConnInfo {
  read_write: string;
  read_only: string;
  hosts: Array<{ id: number; host: string; port: number }>;
  dbname: string;
  user: string | null;
}

function hostPort(n: { host: string; port: number }): string {
  const h = n.host.includes(':') && !n.host.startsWith('[') ? `[${n.host}]` : n.host;
  return `${h}:${n.port}`;
}

/** The URIs for the data nodes (referees have no data to serve) of a committed configuration. */
export function buildConnInfo(nodes: readonly NodeInfo[], o: { dbname?: string | undefined; user?: string | undefined; connectTimeout?: number | undefined }): ConnInfo {
  const data = nodes.filter((n) => n.mode === 'regular' && n.port > 0).sort((a, b) => a.id - b.id);
  const dbname = o.dbname ?? 'postgres';
  const user = o.user ?? null;
  const base =
    `postgresql://${user !== null ? `${encodeURIComponent(user)}@` : ''}${data.map(hostPort).join(',')}/${encodeURIComponent(dbname)}` +
    `?connect_timeout=${o.connectTimeout ?? 2}&target_session_attrs=`;
  return {
    read_write: `${base}read-write`,
    read_only: `${base}prefer-standby`,
    hosts: data.map((n) => ({ id: n.id, host: n.host, port: n.port })),
    dbname,
    user,
  };
}

export async function cmdConninfo(o: { pgdata?: string; dbname?: string; user?: string; json?: boolean }): Promise<void> {
  const { pgdata } = await loadConf(o.pgdata);
  for (const [name, v] of [['dbname', o.dbname], ['user', o.user]] as const)
    if (v !== undefined && (v.trim() === '' || /[\s/?#]/.test(v))) throw new BihaError('bad_args', `--${name} "${v}" is not a valid name: no spaces, "/", "?" or "#"`);
  const nodes = await committedNodes(pgdata);
  const ci = buildConnInfo(nodes, { dbname: o.dbname, user: o.user });
  if (ci.hosts.length === 0)
    throw new BihaError('no_config', `the committed configuration in ${pgdata} lists no data nodes`, {
      hint: 'run bihactl conninfo on a node that has joined the cluster (bihactl status shows its members)',
    });
  if (o.json) process.stdout.write(JSON.stringify(ci, null, 2) + '\n');
  else process.stdout.write(`${ci.read_write}\n${ci.read_only}\n`);
}
