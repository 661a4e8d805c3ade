// The commands of bihactl's remote mode (--url / --cluster-file): each one request to a node's
// remote management API, its answer printed as the local command prints its own.
import { z } from 'zod';
import { BihaError } from '../controller/errors.js';
import type { StatusFile } from '../controller/bridge/sqlbridge.js';
import { renderConfig } from './config.js';
import type { ConfigPatch } from './config.js';
import { done, printJson } from './output.js';
import type { JsonOpt } from './output.js';
import { confirm } from './prompt.js';
import { RemoteClient } from './remote.js';
import type { RemoteOpts } from './remote.js';
import { buildStatusView } from './statusview.js';
import type { StatusView } from './statusview.js';

export type RemoteCmdOpts = RemoteOpts & JsonOpt & { force?: boolean };

const MemberSchema = z
  .object({
    id: z.number().int(),
    host: z.string().optional(),
    port: z.number().int().optional(),
    mode: z.string().optional(),
    state: z.string(),
    last_known_state: z.string().nullable(),
    online: z.boolean(),
    term: z.number().nullable(),
    leader_id: z.number().nullable(),
    since_last_hb_ms: z.number().nullable(),
  })
  .passthrough();

const ClusterDocSchema = z
  .object({
    node_id: z.number().int(),
    cluster_id: z.string().optional(),
    generated_at: z.string(),
    members: z.array(MemberSchema),
    connections: z.array(z.object({ id: z.number().int(), host: z.string(), port: z.number() }).passthrough()),
    config: z.object({ term: z.number(), nquorum: z.number(), minnodes: z.number() }).passthrough(),
    error: z.object({ type: z.string() }).passthrough(),
    monitoring: z.object({ followers: z.array(z.object({ id: z.number() }).passthrough()) }).passthrough(),
    node: z.record(z.unknown()).optional(),
  })
  .passthrough();

function badAnswer(url: string, what: string): BihaError {
  return new BihaError('bad_response', `${url} answered ${what} with a document bihactl does not understand`, {
    hint: 'check that --url names a biha node\'s --http-port and that bihactl and the node run the same biha version',
  });
}

/** The /cluster document of a node as the status view the local `bihactl status` shows. */
export function clusterDocToView(doc: unknown, url: string): StatusView {
  const r = ClusterDocSchema.safeParse(doc);
  if (!r.success) throw badAnswer(url, 'GET /cluster');
  const d = r.data;
  const status: StatusFile['status'] = d.members.map((m) => ({
    id: m.id,
    leader_id: m.leader_id,
    term: m.term,
    online: m.online,
    state: m.state,
    last_known_state: m.last_known_state,
    since_last_hb_ms: m.since_last_hb_ms,
    ...(m.mode !== undefined ? { mode: m.mode } : {}),
  }));
  // The document carries the same objects the status file does; zod checked the fields read here.
  const s: StatusFile = {
    version: 1,
    generatedAtMs: Date.parse(d.generated_at),
    nodeId: d.node_id,
    config: d.config as unknown as StatusFile['config'],
    status,
    nodes: d.connections as unknown as StatusFile['nodes'],
    error: d.error as unknown as StatusFile['error'],
    monitoring: d.monitoring as unknown as StatusFile['monitoring'],
    ...(d.node ? { extra: d.node as StatusFile['extra'] } : {}),
  };
  // A node lists no connection to itself: its own row has no address (shown as ?).
  const addresses = d.members.flatMap((m) => (m.host === undefined ? [] : [{ id: m.id, host: m.host, port: m.port ?? 0, mode: m.mode ?? 'regular' }]));
  return buildStatusView(s, d.cluster_id ?? url, addresses);
}

export async function remoteStatusView(o: RemoteOpts): Promise<StatusView> {
  const client = await RemoteClient.from(o);
  const a = await client.request('GET', '/cluster');
  return clusterDocToView(a.body, a.url);
}

function messageOf(body: unknown, fallback: string): string {
  if (typeof body === 'object' && body !== null && 'message' in body && typeof body.message === 'string') return body.message;
  return fallback;
}

/** Prints an unsafe request's answer: its document with --json, else its message. */
function answered(o: JsonOpt, body: unknown, fallback: string): void {
  if (o.json) printJson(body ?? { message: fallback });
  else process.stderr.write(`bihactl: ${messageOf(body, fallback)}\n`);
}

function clusterName(client: RemoteClient): string {
  return client.urls.length === 1 ? client.urls[0]! : `the cluster of ${client.urls[0]!}`;
}

/** The body of POST /switchover. */
export interface SwitchoverRequest {
  candidate: number;
  leader?: number;
  scheduled_at?: string;
}

export async function remoteSetLeader(o: RemoteCmdOpts, req: SwitchoverRequest): Promise<void> {
  const client = await RemoteClient.from(o);
  const when = req.scheduled_at === undefined ? '' : ` at ${req.scheduled_at}`;
  await confirm(`switch the leadership of ${clusterName(client)} over to node ${req.candidate}${when}`, o.force);
  const a = await client.request('POST', '/switchover', req);
  answered(o, a.body, a.status === 202 ? `switchover to node ${req.candidate} scheduled${when}` : `node ${req.candidate} is the leader`);
}

/** Cancels the switchover scheduled on the URL's node (DELETE /switchover). */
export async function remoteCancelSwitchover(o: RemoteCmdOpts): Promise<void> {
  const client = await oneNode(o, 'set-leader --cancel');
  const a = await client.request('DELETE', '/switchover');
  answered(o, a.body, `the switchover scheduled on ${a.url} is cancelled`);
}

export async function remoteFailover(o: RemoteCmdOpts, candidate: number): Promise<void> {
  const client = await RemoteClient.from(o);
  await confirm(`fail ${clusterName(client)} over to node ${candidate}`, o.force);
  const a = await client.request('POST', '/failover', { candidate });
  answered(o, a.body, `node ${candidate} is the leader`);
}

/** restart and reinit act on the node of the URL: exactly one. */
async function oneNode(o: RemoteCmdOpts, what: string): Promise<RemoteClient> {
  const client = await RemoteClient.from(o);
  if (client.urls.length !== 1)
    throw new BihaError('bad_args', `${what} acts on one node: give exactly one --url (the node's), not ${client.urls.length}`);
  return client;
}

export async function remoteRestart(o: RemoteCmdOpts): Promise<void> {
  const client = await oneNode(o, 'restart');
  await confirm(`restart PostgreSQL on ${client.urls[0]!}`, o.force);
  const a = await client.request('POST', '/restart', o.force ? { force: true } : {});
  answered(o, a.body, `PostgreSQL on ${a.url} runs again`);
}

export async function remoteReinit(o: RemoteCmdOpts): Promise<void> {
  const client = await oneNode(o, 'reinit');
  await confirm(`re-copy the data directory of ${client.urls[0]!} from the leader`, o.force);
  const a = await client.request('POST', '/reinitialize', o.force ? { force: true } : {});
  answered(o, a.body, a.status === 202 ? `reinit of ${a.url} started; follow it with bihactl status --url=${a.url}` : `${a.url} has a fresh copy of the leader's data`);
}

const ConfigSchema = z.record(z.union([z.number(), z.boolean(), z.string(), z.null()]));

export async function remoteConfig(o: RemoteCmdOpts): Promise<void> {
  const client = await RemoteClient.from(o);
  const a = await client.request('GET', '/config');
  const r = ConfigSchema.safeParse(a.body);
  if (!r.success) throw badAnswer(a.url, 'GET /config');
  if (o.json) printJson(r.data);
  else process.stdout.write(renderConfig(r.data) + '\n');
}

export async function remoteConfigSet(o: RemoteCmdOpts, patch: ConfigPatch): Promise<void> {
  const client = await RemoteClient.from(o);
  if (patch.service_mode !== undefined) await confirm(`turn service mode ${patch.service_mode ? 'on' : 'off'} on ${clusterName(client)}`, o.force);
  const a = await client.request('PATCH', '/config', patch);
  const r = ConfigSchema.safeParse(a.body);
  if (!r.success) throw badAnswer(a.url, 'PATCH /config');
  if (o.json) printJson(r.data);
  else {
    process.stdout.write(renderConfig(r.data) + '\n');
    done(o, `settings changed: ${Object.keys(patch).join(', ')}`);
  }
}

export async function remoteServiceMode(o: RemoteCmdOpts, on: boolean): Promise<void> {
  const client = await RemoteClient.from(o);
  await confirm(`turn service mode ${on ? 'on' : 'off'} on ${clusterName(client)}`, o.force);
  const a = await client.request('PATCH', '/config', { service_mode: on });
  if (o.json) printJson(a.body);
  else done(o, `service mode is ${on ? 'on: no automatic elections or rewinds until service-mode off' : 'off'}`);
}

const HistorySchema = z.array(
  z
    .object({
      timeline: z.number().int(),
      switch_lsn: z.string().nullable(),
      time: z.string().nullable(),
      new_leader: z.number().int().nullable(),
      reason: z.string().nullable(),
    })
    .passthrough(),
);

export type HistoryEntry = z.infer<typeof HistorySchema>[number];

export function renderHistory(h: readonly HistoryEntry[]): string {
  if (h.length === 0) return 'no timeline switch yet (timeline 1)';
  const rows = [['Timeline', 'Switch LSN', 'Time', 'New leader', 'Reason']];
  for (const e of h) rows.push([String(e.timeline), e.switch_lsn ?? '-', e.time ?? '-', e.new_leader === null ? '-' : String(e.new_leader), e.reason ?? '-']);
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

/** Prints the timeline switches (GET /history, or the local node's history command). */
export function showHistory(o: JsonOpt, body: unknown, from: string): void {
  const r = HistorySchema.safeParse(body);
  if (!r.success) throw badAnswer(from, 'history');
  if (o.json) printJson(r.data);
  else process.stdout.write(renderHistory(r.data) + '\n');
}

export async function remoteHistory(o: RemoteCmdOpts): Promise<void> {
  const client = await RemoteClient.from(o);
  const a = await client.request('GET', '/history');
  showHistory(o, a.body, a.url);
}
