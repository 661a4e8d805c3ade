// bihactl drain / rejoin: take one node out of the cluster for maintenance (a rolling upgrade) and
// bring it back. drain hands the leadership over first when the node leads; rejoin waits until the
// node streams from the leader again.
import { BihaError, oneLine } from '../controller/errors.js';
import { LocalPg, localStatus } from '../controller/pg/conn.js';
import { resolvePgEnv } from '../controller/pg/tools.js';
import type { NodeInfo } from '../raft/index.js';
import { cmdStart, cmdStop } from './lifecycle.js';
import { controllerPid, loadConf, nodeRequest } from './localnode.js';
import { committedNodes, statusView } from './statusview.js';
import type { StatusView } from './statusview.js';
import { info, intOpt } from './util.js';

const LEADER_STATES = new Set(['LEADER_RW', 'LEADER_RO']);

export interface Successors {
  /** Nodes that could take over, best first. */
  ids: number[];
  /** Why each other node cannot. */
  excluded: string[];
}

/**
 * Followers that can take the leadership over from `v.nodeId`: data nodes allowed to lead, online,
 * in FOLLOWER state and streaming from it; the least lagging first, then the higher priority.
 */
export function pickSuccessors(v: StatusView, nodes: readonly NodeInfo[]): Successors {
  const ok: Array<{ id: number; lag: number; priority: number }> = [];
  const excluded: string[] = [];
  for (const n of nodes) {
    if (n.id === v.nodeId) continue;
    const m = v.members.find((x) => x.id === n.id);
    const f = v.monitoring.followers.find((x) => x.id === n.id);
    let why: string | null = null;
    if (n.mode !== 'regular') why = `is a ${n.mode}`;
    else if (!n.canBeLeader) why = 'has can_be_leader off';
    else if (!m || !m.online) why = 'is offline';
    else if (m.state !== 'FOLLOWER') why = `is in state ${m.state}`;
    else if (!f || f.state !== 'streaming') why = 'does not stream from the leader';
    if (why) excluded.push(`node ${n.id} ${why}`);
    else ok.push({ id: n.id, lag: f?.lag_bytes ?? Number.MAX_SAFE_INTEGER, priority: n.priority });
  }
  ok.sort((a, b) => a.lag - b.lag || b.priority - a.priority || a.id - b.id);
  return { ids: ok.map((x) => x.id), excluded };
}

async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

/** Another node is LEADER_RW as this node sees it. */
async function otherLeader(pgdata: string, self: number): Promise<number | null> {
  const v = await statusView(pgdata).catch(() => null);
  const l = v?.members.find((m) => m.state === 'LEADER_RW' && m.id !== self);
  return l ? l.id : null;
}

export async function cmdDrain(o: { pgdata?: string; drainSecs?: string; force?: boolean }): Promise<void> {
  const { pgdata, conf } = await loadConf(o.pgdata);
  const secs = intOpt('drain-secs', o.drainSecs ?? '30', 1, 3600);
  const deadline = Date.now() + secs * 1000;
  if ((await controllerPid(pgdata)) === null) {
    info(`the controller of node ${conf.nodeId} does not run; stopping what is left`);
    await cmdStop({ pgdata });
    return;
  }
  let v = await statusView(pgdata);
  const self = v.members.find((m) => m.self);
  if (self && LEADER_STATES.has(self.state)) {
    const nodes = await committedNodes(pgdata);
    let succ = pickSuccessors(v, nodes);
    // Followers may be reconnecting (after a switchover or a restart): give them until the deadline.
    for (let i = 0; i < 100_000 && succ.ids.length === 0 && Date.now() < deadline; i++) {
      await sleep(500);
      v = await statusView(pgdata);
      succ = pickSuccessors(v, nodes);
    }
    if (succ.ids.length === 0) {
      if (!o.force)
        throw new BihaError('no_successor', `node ${conf.nodeId} is the leader and no other node can take over within --drain-secs ${secs} s (${succ.excluded.join('; ') || 'it is the only node'}); the node keeps running`, {
          hint: 'bring a follower up to date first, or add --force to stop the leader anyway and leave the cluster without a leader until it returns',
        });
      info(`no other node can take over (${succ.excluded.join('; ') || 'it is the only node'}); --force: stopping the leader anyway`);
    } else {
      let newLeader: number | null = null;
      const errors: string[] = [];
      for (const id of succ.ids) {
        const left = deadline - Date.now();
        if (left <= 0) break;
        info(`node ${conf.nodeId} is the leader: handing the leadership over to node ${id}`);
        try {
          if ((await nodeRequest(pgdata, 'set_leader', { id }, Math.max(1000, left))) === false) errors.push(`node ${id}: the switchover did not complete`);
        } catch (e) {
          errors.push(`node ${id}: ${oneLine(e)}`);
          // The transfer may have completed anyway (the reply was lost): look before trying the next.
        }
        for (let i = 0; i < 100_000 && Date.now() < deadline; i++) {
          newLeader = await otherLeader(pgdata, conf.nodeId);
          if (newLeader !== null) break;
          const me = (await statusView(pgdata).catch(() => null))?.members.find((m) => m.self);
          if (me && LEADER_STATES.has(me.state) && errors.length > 0) break; // still the leader after a failed transfer
          await sleep(200);
        }
        if (newLeader !== null) break;
      }
      if (newLeader === null) {
        if (!o.force)
          throw new BihaError('timeout', `no other node became LEADER_RW within --drain-secs ${secs} s${errors.length ? ` (${errors.join('; ')})` : ''}; node ${conf.nodeId} keeps running`, {
            hint: 'see bihactl status; try again, raise --drain-secs, or add --force to stop anyway',
          });
        info(`no other node became the leader within ${secs} s; --force: stopping anyway`);
      } else info(`node ${newLeader} is LEADER_RW`);
    }
  }
  await cmdStop({ pgdata });
}

export async function cmdRejoin(o: { pgdata?: string; wait?: string }): Promise<void> {
  const { pgdata, conf } = await loadConf(o.pgdata);
  const secs = intOpt('wait', o.wait ?? '120', 1, 86_400);
  const deadline = Date.now() + secs * 1000;
  if ((await controllerPid(pgdata)) === null) await cmdStart({ pgdata, wait: String(secs) });
  else info(`the controller of node ${conf.nodeId} already runs`);
  const env = conf.mode === 'referee' ? null : await resolvePgEnv(pgdata);
  const pg = env ? new LocalPg({ pgdata, port: conf.port, user: env.user, database: 'postgres', applicationName: 'bihactl' }) : null;
  let last = 'no status yet';
  try {
    for (let i = 0; i < 1_000_000 && Date.now() < deadline; i++) {
      if (i > 0) await sleep(250);
      let v: StatusView;
      try {
        v = await statusView(pgdata);
      } catch (e) {
        last = oneLine(e);
        continue;
      }
      const me = v.members.find((m) => m.self);
      if (v.error.type !== 'NO_ERROR' || (me && me.state.startsWith('NODE_ERROR')))
        throw new BihaError('node_error', `node ${conf.nodeId} is in NODE_ERROR (${v.error.type}): ${v.error.details ?? 'no details'}`, {
          hint: `follow docs/runbooks/node-error.md: usually bihactl rewind --pgdata=${pgdata}, then bihactl rejoin again`,
        });
      const leader = v.leader_id;
      if (me && LEADER_STATES.has(me.state) && leader === conf.nodeId) {
        info(`node ${conf.nodeId} is back and is the leader (${me.state})`);
        return;
      }
      last = `state ${me?.state ?? '?'}, leader ${leader ?? 'unknown'}`;
      if (!me || me.state !== 'FOLLOWER' || leader === null || leader === conf.nodeId) continue;
      const lnode = v.members.find((m) => m.id === leader);
      if (!lnode || lnode.state !== 'LEADER_RW') continue;
      if (!pg) {
        info(`referee node ${conf.nodeId} is back; the leader is node ${leader}`);
        return;
      }
      const s = await localStatus(pg).catch((e: unknown) => {
        last = `${last}; PostgreSQL: ${oneLine(e)}`;
        return null;
      });
      const wr = s?.walReceiver ?? null;
      if (s && !s.inRecovery) {
        last = `${last}; PostgreSQL is not in recovery`;
        continue;
      }
      last = `${last}; walreceiver ${wr ? `${wr.status} from ${wr.senderHost ?? '?'}:${wr.senderPort ?? '?'}` : 'not running'}`;
      if (wr && wr.status === 'streaming' && wr.senderPort === lnode.port) {
        info(`node ${conf.nodeId} is a streaming follower of the leader, node ${leader} (${lnode.host}:${lnode.port})`);
        return;
      }
    }
  } finally {
    await pg?.close().catch(() => undefined);
  }
  throw new BihaError('timeout', `node ${conf.nodeId} did not become a streaming follower within ${secs} s (${last})`, {
    hint: `see bihactl status --pgdata=${pgdata} and ${pgdata}/pg_biha/log/controller.log`,
  });
}
