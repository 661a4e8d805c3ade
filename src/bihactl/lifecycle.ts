// bihactl start / stop / status and the commands that go through the local socket.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BihaError } from '../controller/errors.js';
import { localRequest, localSocketPath } from '../controller/localsock.js';
import { bihaDir, logDir, readNodeConf } from '../controller/nodefiles.js';
import type { NodeConf } from '../controller/nodefiles.js';
import { pgCtlStop, postmasterPid, resolvePgEnv } from '../controller/pg/tools.js';
import type { StatusFile } from '../controller/sqlbridge.js';
import { info, requireOpt } from './util.js';

async function loadConf(pgdataOpt: unknown): Promise<{ pgdata: string; conf: NodeConf }> {
  const pgdata = path.resolve(requireOpt('pgdata', pgdataOpt));
  try {
    await fsp.access(path.join(bihaDir(pgdata), 'biha.conf'));
  } catch {
    throw new BihaError('not_a_node', `${pgdata} is not a biha node (no pg_biha/biha.conf)`, {
      hint: 'create one with bihactl init or bihactl add',
    });
  }
  return { pgdata, conf: await readNodeConf(pgdata) };
}

export async function controllerPid(pgdata: string): Promise<number | null> {
  try {
    const pid = Number((await fsp.readFile(path.join(bihaDir(pgdata), 'controller.pid'), 'utf8')).trim());
    if (!pid) return null;
    process.kill(pid, 0);
    const stat = await fsp.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
    if (/^\d+ \(.*\) Z/.test(stat)) return null;
    return pid;
  } catch {
    return null;
  }
}

function binPath(): string {
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'bihactl.js');
}

export async function cmdStart(o: { pgdata?: string; wait?: string }): Promise<void> {
  const { pgdata, conf } = await loadConf(o.pgdata);
  const running = await controllerPid(pgdata);
  if (running !== null) throw new BihaError('already_running', `the controller of ${pgdata} already runs (PID ${running})`);
  const st = fs.statSync(pgdata);
  const asRoot0 = typeof process.getuid === 'function' && process.getuid() === 0;
  if (asRoot0) {
    // The controller runs as the data directory's owner and must be able to load this program.
    const r = spawnSync(process.execPath, ['-e', `require('fs').accessSync(${JSON.stringify(binPath())}, require('fs').constants.R_OK)`], { uid: st.uid, gid: st.gid });
    if (r.status !== 0)
      throw new BihaError('unreadable_install', `the owner of ${pgdata} (uid ${st.uid}) cannot read ${binPath()}`, {
        hint: 'make the biha installation readable for that user (chmod o+rx on its directories)',
      });
  }
  await fsp.mkdir(logDir(pgdata), { recursive: true });
  const logFile = path.join(logDir(pgdata), 'controller.log');
  const out = fs.openSync(logFile, 'a', 0o600);
  const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (asRoot) fs.fchownSync(out, st.uid, st.gid);
  const child = spawn(process.execPath, [binPath(), 'controller', `--pgdata=${pgdata}`, `--log-file=${logFile}`], {
    detached: true,
    stdio: ['ignore', out, out],
    ...(asRoot ? { uid: st.uid, gid: st.gid } : {}),
    env: { ...process.env },
  });
  fs.closeSync(out);
  let exited: number | null = null;
  child.once('exit', (code) => (exited = code ?? 1));
  child.unref();
  const waitMs = o.wait !== undefined ? Number(o.wait) * 1000 : 120_000;
  const deadline = Date.now() + waitMs;
  const sock = localSocketPath(conf.bihaPort);
  while (Date.now() < deadline) {
    if (exited !== null) {
      const tail = (await fsp.readFile(logFile, 'utf8').catch(() => '')).trim().split('\n').slice(-5).join('\n');
      throw new BihaError('start_failed', `the controller exited at once (code ${exited}); last log lines:\n${tail}`, {
        hint: `see ${logFile}`,
      });
    }
    try {
      await localRequest(sock, 'status', {}, 1000);
      info(`controller of node ${conf.nodeId} started (PID ${child.pid}); log: ${logFile}`);
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new BihaError('timeout', `the controller did not answer within ${Math.round(waitMs / 1000)} s`, { hint: `see ${logFile}` });
}

export async function cmdStop(o: { pgdata?: string; keepPostgres?: boolean }): Promise<void> {
  const { pgdata, conf } = await loadConf(o.pgdata);
  const pid = await controllerPid(pgdata);
  if (pid !== null) {
    await localRequest(localSocketPath(conf.bihaPort), 'shutdown', { stopPostgres: !o.keepPostgres }, 5000).catch(() => {
      process.kill(pid, 'SIGTERM');
    });
    const deadline = Date.now() + 120_000;
    while (Date.now() < deadline && (await controllerPid(pgdata)) !== null) await new Promise((r) => setTimeout(r, 50));
    if ((await controllerPid(pgdata)) !== null) throw new BihaError('timeout', `the controller (PID ${pid}) did not stop within 120 s`);
  }
  if (!o.keepPostgres && conf.mode !== 'referee' && (await postmasterPid(pgdata)) !== null) {
    const env = await resolvePgEnv(pgdata);
    await pgCtlStop(env, pgdata, 'fast', { timeoutMs: 120_000 });
  }
  info(`node ${conf.nodeId} stopped`);
}

export async function nodeRequest(pgdataOpt: unknown, cmd: string, args: Record<string, unknown>, timeoutMs = 40_000): Promise<unknown> {
  const { conf } = await loadConf(pgdataOpt);
  return await localRequest(localSocketPath(conf.bihaPort), cmd, args, timeoutMs);
}

function fmtMs(ms: number | null): string {
  if (ms === null) return '-';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(1)} s`;
}

export function renderStatus(s: StatusFile): string {
  const extra = (s as unknown as { extra?: { lsn?: string; tli?: number; decision?: string } }).extra;
  const rows: string[][] = [['Node', 'Host', 'Mode', 'State', 'Leader', 'Term', 'Online', 'Lag', 'Since last HB']];
  const nodes = new Map(s.nodes.map((n) => [n.id, n]));
  for (const st of s.status) {
    const n = nodes.get(st.id);
    const f = s.monitoring.followers.find((x) => x.id === st.id);
    const hostPort = n ? (n.port ? `${n.host}:${n.port}` : `${n.host} (no PostgreSQL)`) : st.id === s.nodeId ? '(this node)' : '?';
    rows.push([
      `${st.id}${st.id === s.nodeId ? '*' : ''}`,
      hostPort,
      st.mode ?? '-',
      st.state,
      st.leader_id === null ? '-' : String(st.leader_id),
      String(st.term),
      st.online ? 'yes' : 'no',
      f && f.lag_bytes !== null ? `${f.lag_bytes} B` : '-',
      st.id === s.nodeId ? '-' : fmtMs(st.since_last_hb_ms),
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const line = (r: string[]): string => '| ' + r.map((c, i) => c.padEnd(widths[i]!)).join(' | ') + ' |';
  const sep = '+' + widths.map((w) => '-'.repeat(w + 2)).join('+') + '+';
  const c = s.config;
  const out = [
    `Cluster seen from node ${s.nodeId} (term ${c.term}, nquorum ${c.nquorum}, minnodes ${c.minnodes}, heartbeat ${c.heartbeat_send_period} ms x ${c.heartbeat_max_lost}` +
      `${c.sync_standbys > 0 ? `, sync standbys ${c.sync_standbys}` : ''}${c.service_mode ? ', SERVICE MODE' : ''})`,
    sep,
    line(rows[0]!),
    sep,
    ...rows.slice(1).map(line),
    sep,
  ];
  if (extra?.lsn) out.push(`this node: timeline ${extra.tli ?? '?'}, WAL ${extra.lsn}`);
  if (s.error.type !== 'NO_ERROR') out.push(`NODE_ERROR ${s.error.type}: ${s.error.details ?? ''}`);
  return out.join('\n');
}

export async function cmdStatus(o: { pgdata?: string; json?: boolean; watch?: string | boolean }): Promise<void> {
  const once = async (): Promise<void> => {
    const s = (await nodeRequest(o.pgdata, 'status', {}, 5000)) as StatusFile;
    process.stdout.write((o.json ? JSON.stringify(s, null, 2) : renderStatus(s)) + '\n');
  };
  if (!o.watch) return await once();
  const every = typeof o.watch === 'string' ? Math.max(0.2, Number(o.watch)) : 1;
  for (let i = 0; i < 100_000; i++) {
    if (process.stdout.isTTY) process.stdout.write('\x1b[2J\x1b[H');
    await once().catch((e: unknown) => process.stdout.write(`${e instanceof Error ? e.message : String(e)}\n`));
    await new Promise((r) => setTimeout(r, every * 1000));
  }
}
