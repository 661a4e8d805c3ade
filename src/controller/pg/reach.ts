// Which PostgreSQL ports this host can open: a TCP connect with a short timeout, closed at once.
// The raft driver asks while no WAL arrives from the leader, so that the leader can give way to a
// node its followers can replicate from (docs/raft.md, "Giving way").
import * as net from 'node:net';
import type { NodeId, NodeInfo } from '../../raft/index.js';

/** How long one connect may take before the port counts as unreachable. */
export const PG_REACH_TIMEOUT_MS = 1000;

function canConnect(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    const done = (ok: boolean): void => {
      s.removeAllListeners();
      s.on('error', () => undefined);
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

/** The ids of the nodes whose PostgreSQL port (host:port of their record) accepts a connection. */
export async function reachablePg(nodes: readonly NodeInfo[], timeoutMs = PG_REACH_TIMEOUT_MS): Promise<NodeId[]> {
  const ok = await Promise.all(nodes.map((n) => canConnect(n.host, n.port, timeoutMs)));
  return nodes.filter((_, i) => ok[i]).map((n) => n.id);
}
