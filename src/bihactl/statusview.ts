// bihactl status: the cluster as one node sees it, as a table (like `patronictl list`) or JSON.
import type { NodeInfo } from '../raft/index.js';
import { BihaError, EXIT, oneLine } from '../controller/errors.js';
import { errorCodeOf, exitCodeOf } from './exitcodes.js';
import { readNodeState } from '../controller/state/nodefiles.js';
import type { StatusFile } from '../controller/bridge/sqlbridge.js';
import { intOpt } from './util.js';
import { loadConf, nodeRequest } from './localnode.js';

/** One member of the cluster, one line of the table. */
export interface MemberRow {
  id: number;
  /** The node bihactl asked. */
  self: boolean;
  host: string | null;
  port: number | null;
  mode: string | null;
  /** leader, follower or referee. */
  role: string;
  state: string;
  /** The leader this row's node follows, as the node asked knows it. */
  leader_id: number | null;
  term: number | null;
  online: boolean;
  /** Replay lag behind the leader in bytes, when the node asked knows it. */
  lag_bytes: number | null;
  since_last_hb_ms: number | null;
  /** The member hears the leader but has received no WAL from it for this long (ms); null while WAL flows. */
  no_wal_ms: number | null;
}

/** The status file plus what the table shows: the cluster id, the leader and one row per member. */
export type StatusView = StatusFile & {
  cluster_id: string;
  leader_id: number | null;
  members: MemberRow[];
};

/** What the table needs to know of a member beyond its status row. */
export interface MemberAddress {
  id: number;
  host: string;
  port: number;
  mode: string;
}

export function buildStatusView(s: StatusFile, clusterId: string, nodes: readonly MemberAddress[]): StatusView {
  const extra = s.extra;
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const leader = s.status.find((x) => x.state === 'LEADER_RW' || x.state === 'LEADER_RO')?.id ?? s.status.find((x) => x.id === s.nodeId)?.leader_id ?? null;
  const members = s.status.map((st): MemberRow => {
    const n = byId.get(st.id);
    const peer = s.nodes.find((x) => x.id === st.id);
    const mode = n?.mode ?? (st.id === s.nodeId ? s.config.mode : null);
    const f = s.monitoring.followers.find((x) => x.id === st.id);
    let lag: number | null = null;
    if (f && f.lag_bytes !== null) lag = f.lag_bytes;
    else if (st.id === s.nodeId && typeof extra?.lag_bytes === 'number') lag = extra.lag_bytes;
    else if (st.id === leader && mode !== 'referee') lag = 0;
    return {
      id: st.id,
      self: st.id === s.nodeId,
      host: n?.host ?? peer?.host ?? null,
      port: n ? n.port : (peer?.port ?? null),
      mode,
      role: mode === 'referee' || mode === 'referee_with_wal' ? 'referee' : st.id === leader ? 'leader' : 'follower',
      state: st.state,
      leader_id: st.leader_id,
      term: st.term,
      online: st.online,
      lag_bytes: lag,
      since_last_hb_ms: st.id === s.nodeId ? null : st.since_last_hb_ms,
      no_wal_ms: st.no_wal_ms ?? null,
    };
  });
  return { ...s, cluster_id: clusterId, leader_id: leader, members };
}

function fmtMs(ms: number | null): string {
  if (ms === null) return '-';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(1)} s`;
}

function fmtBytes(b: number | null): string {
  if (b === null) return '-';
  if (b < 1024) return `${b} B`;
  if (b < 1024 * 1024) return `${(b / 1024).toFixed(1)} kB`;
  return `${(b / 1024 / 1024).toFixed(1)} MB`;
}

export function renderStatus(v: StatusView): string {
  const extra = v.extra;
  const rows: string[][] = [['Node', 'Host:Port', 'State', 'Leader', 'Role', 'Mode', 'Term', 'Lag', 'Since last HB']];
  for (const m of v.members) {
    rows.push([
      `${m.id}${m.self ? '*' : ''}`,
      m.host === null ? '?' : m.port ? `${m.host}:${m.port}` : m.mode === 'referee' ? `${m.host} (no PostgreSQL)` : m.host,
      m.online ? m.state : `${m.state} (offline)`,
      m.leader_id === null ? '-' : String(m.leader_id),
      m.role,
      m.mode ?? '-',
      m.term === null ? '-' : String(m.term),
      m.no_wal_ms === null ? fmtBytes(m.lag_bytes) : `${fmtBytes(m.lag_bytes)} (no WAL for ${fmtMs(m.no_wal_ms)})`,
      m.self ? '-' : fmtMs(m.since_last_hb_ms),
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const line = (r: string[]): string => '| ' + r.map((c, i) => c.padEnd(widths[i]!)).join(' | ') + ' |';
  const sep = '+' + widths.map((w) => '-'.repeat(w + 2)).join('+') + '+';
  const c = v.config;
  const head =
    `+ Cluster ${v.cluster_id} (seen from node ${v.nodeId}): leader ${v.leader_id ?? 'none'}, term ${c.term}, ` +
    `nquorum ${c.nquorum}, minnodes ${c.minnodes}` +
    `${c.sync_standbys > 0 ? `, sync standbys ${c.sync_standbys}` : ''}${c.service_mode ? ', SERVICE MODE on' : ''}`;
  const out = [head, sep, line(rows[0]!), sep, ...rows.slice(1).map(line), sep];
  if (extra?.lsn) out.push(`node ${v.nodeId}: timeline ${extra.tli ?? '?'}, WAL ${extra.lsn}`);
  if (extra?.failback) out.push(`failback window: leadership may return to node ${extra.failback.id} at '${extra.failback.cron}'`);
  if (v.error.type !== 'NO_ERROR') out.push(`NODE_ERROR ${v.error.type}: ${v.error.details ?? ''} (see docs/runbooks/node-error.md)`);
  return out.join('\n');
}

/** The committed cluster configuration from the node's state file (readable without the controller). */
export async function committedNodes(pgdata: string): Promise<NodeInfo[]> {
  try {
    return [...(await readNodeState(pgdata)).raft.log.snapshot.config.nodes];
  } catch {
    return [];
  }
}

export async function statusView(pgdataOpt: unknown): Promise<StatusView> {
  const { pgdata, conf } = await loadConf(pgdataOpt);
  const s = (await nodeRequest(pgdata, 'status', {}, 5000)) as StatusFile;
  const nodes = await committedNodes(pgdata);
  if (!nodes.some((n) => n.id === conf.nodeId))
    nodes.push({ id: conf.nodeId, host: conf.host, port: conf.port, bihaPort: conf.bihaPort, mode: conf.mode, canBeLeader: s.config.can_be_leader, canVote: s.config.can_vote, priority: s.config.priority });
  return buildStatusView(s, conf.clusterId, nodes);
}

export interface StatusOpts {
  json?: boolean;
  watch?: string | boolean;
  count?: string;
}

/** bihactl status: `load` reads the view (from the local node, or from a node's HTTP API). */
export async function cmdStatus(o: StatusOpts, load: () => Promise<StatusView>): Promise<void> {
  const count = o.count !== undefined ? intOpt('count', o.count, 1, 1_000_000) : null;
  const watching = o.watch !== undefined && o.watch !== false ? true : count !== null;
  let every = 1;
  if (typeof o.watch === 'string') {
    every = Number(o.watch);
    if (!Number.isFinite(every) || every < 0.2 || every > 3600)
      throw new BihaError('bad_args', `--watch must be a number of seconds between 0.2 and 3600, not "${o.watch}"`);
  }
  if (!watching) {
    const v = await load();
    process.stdout.write((o.json ? JSON.stringify(v, null, 2) : renderStatus(v)) + '\n');
    return;
  }
  // Refreshes until Ctrl-C, or --count times. A failed refresh is shown and the next one tried.
  const limit = count ?? 1_000_000;
  for (let i = 0; i < limit; i++) {
    if (i > 0) await new Promise((r) => setTimeout(r, every * 1000));
    let text: string;
    try {
      const v = await load();
      text = o.json ? JSON.stringify(v) : renderStatus(v);
    } catch (e) {
      if (e instanceof BihaError && exitCodeOf(e) === EXIT.BAD_ARGS) throw e;
      text = o.json ? JSON.stringify({ error: oneLine(e), code: errorCodeOf(e), generatedAtMs: Date.now() }) : `bihactl: ${oneLine(e)}`;
    }
    if (o.json) process.stdout.write(text + '\n');
    else {
      if (process.stdout.isTTY) process.stdout.write('\x1b[2J\x1b[H');
      process.stdout.write(`${new Date().toISOString()}  (every ${every} s${count !== null ? `, ${i + 1}/${count}` : ', Ctrl-C to stop'})\n${text}\n\n`);
    }
  }
}
