// Registering a node through the leader of its cluster (the control channel's `join` request):
// bihactl add registers a new node; bihactl reinit asks again for its own registration, which the
// leader reuses (and makes sure of the node's replication slot).
import { BcpError, connectClient } from '../controller/bcp/transport.js';
import { BihaError } from '../controller/errors.js';
import type { NodeInfo, Snapshot } from '../raft/index.js';
import type { Magic, MagicPeer } from '../controller/security/magic.js';
import type { TlsMaterial } from '../controller/security/tlsfiles.js';
import { info } from './util.js';

export interface JoinReply {
  ok?: boolean;
  redirect?: MagicPeer;
  leader?: MagicPeer;
  snapshot?: Snapshot;
  /** TLS clusters: the CA certificate and, when the cluster holds it, the CA key. */
  tls?: { ca?: string; caKey?: string };
}

const ROTATED_HINT = 'if the cluster secret was rotated, get a new magic string with bihactl magic-string or select biha.get_magic_string()';

/**
 * Register through the leader. A member that answers but knows no leader (an election, or a first
 * node that has just started) is asked again for up to 30 s: a DBA adding a node right after
 * starting the leader, or during a failover, should not have to retry by hand.
 */
export async function register(
  magic: Magic,
  node: NodeInfo,
  own: TlsMaterial | null,
  allowSyncLoss: boolean,
): Promise<{ leader: MagicPeer; snapshot: Snapshot | null; tls: JoinReply['tls'] }> {
  const deadline = Date.now() + 30_000;
  for (let round = 0; ; round++) {
    try {
      return await registerOnce(magic, node, own, allowSyncLoss);
    } catch (e) {
      if (!(e instanceof BihaError) || e.code !== 'no_leader_yet' || Date.now() > deadline) {
        if (e instanceof BihaError && e.code === 'no_leader_yet') throw new BihaError('unreachable', e.message, e.hint ? { hint: e.hint } : undefined);
        throw e;
      }
      if (round === 0) info('the cluster has no leader right now (an election?); asking again for up to 30 s');
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

/** One pass over the known members, following one redirect per member. */
async function registerOnce(
  magic: Magic,
  node: NodeInfo,
  own: TlsMaterial | null,
  allowSyncLoss: boolean,
): Promise<{ leader: MagicPeer; snapshot: Snapshot | null; tls: JoinReply['tls'] }> {
  // A TLS cluster: the server must chain to the CA whose fingerprint the magic string carries.
  const tls = magic.tls ? { pin: magic.tlsCa!, ...(own ? { key: own.key, cert: own.cert } : {}) } : undefined;
  const tried: string[] = [];
  let noLeader = false;
  const queue: MagicPeer[] = [...magic.peers];
  for (let i = 0; i < queue.length && i < 10; i++) {
    const p = queue[i]!;
    let client;
    try {
      client = await connectClient({
        host: p.host,
        port: p.bihaPort,
        clusterId: magic.clusterId,
        secret: magic.secret,
        selfId: node.id,
        timeoutMs: 5000,
        ...(tls ? { tls } : {}),
      });
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      const code = (e as { code?: unknown }).code;
      if (code === 'auth' || /secret|cluster id/i.test(msg)) {
        if (/cluster id/i.test(msg))
          throw new BihaError('auth', `the node at ${p.host}:${p.bihaPort} belongs to another cluster than the one the magic string names (${magic.clusterId}): check the magic string`);
        throw new BihaError('auth', msg, /secret/i.test(msg) ? { hint: ROTATED_HINT } : undefined);
      }
      if (!magic.tls && /closed the connection during the handshake/.test(msg))
        throw new BihaError('auth', `${msg}: the cluster may use TLS on its control channel, which this magic string does not say`, {
          hint: 'use a magic string from bihactl magic-string or select biha.get_magic_string() on a cluster node',
        });
      tried.push(`${p.host}:${p.bihaPort} (${msg})`);
      continue;
    }
    try {
      const r = (await client.request('join', { node, ...(allowSyncLoss ? { allowSyncLoss } : {}) }, 20_000)) as JoinReply;
      if (r.redirect) {
        queue.splice(i + 1, 0, r.redirect);
        continue;
      }
      if (r.leader) return { leader: r.leader, snapshot: r.snapshot ?? null, tls: r.tls };
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      if (/no leader/.test(msg)) {
        noLeader = true;
        tried.push(`${p.host}:${p.bihaPort} (${msg})`);
        continue;
      }
      // The zero-loss rule of synchronous mode: the cluster's settings, not this command's, must change first.
      const code = e instanceof BcpError && e.remoteCode === 'sync_loss' ? 'sync_loss' : 'join_refused';
      throw new BihaError(code, `the leader refused to add node ${node.id}: ${msg}`);
    } finally {
      client.close();
    }
  }
  throw new BihaError(noLeader ? 'no_leader_yet' : 'unreachable', `cannot reach the leader of the cluster: ${tried.join('; ') || 'no member answered'}`, {
    hint: 'start the leader (bihactl start) or pass a fresh magic string (select biha.get_magic_string())',
  });
}

