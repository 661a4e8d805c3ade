// bihactl start / stop and the commands that go through the local socket.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BihaError } from '../controller/errors.js';
import { runProgram } from '../controller/exec.js';
import { localRequest, localSocketPath } from '../controller/bridge/localsock.js';
import { logDir } from '../controller/state/nodefiles.js';
import type { StatusFile } from '../controller/bridge/sqlbridge.js';
import { pgCtlStop, postmasterPid, resolvePgEnv } from '../controller/pg/tools.js';
import { assertNodeFilesPrivate } from '../controller/security/secfiles.js';
import { controllerPid, loadConf } from './localnode.js';
import { info } from './util.js';
import { CONTROLLER_NODE_FLAGS } from './controllerflags.js';

function binPath(): string {
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'bihactl.js');
}

export async function cmdStart(o: { pgdata?: string; wait?: string }): Promise<void> {
  const { pgdata, conf } = await loadConf(o.pgdata);
  const running = await controllerPid(pgdata);
  if (running !== null) throw new BihaError('already_running', `the controller of ${pgdata} already runs (PID ${running})`);
  assertNodeFilesPrivate(pgdata);
  const st = fs.statSync(pgdata);
  const asRoot0 = typeof process.getuid === 'function' && process.getuid() === 0;
  if (asRoot0) {
    // The controller runs as the data directory's owner and must be able to load this program.
    const readable = await runProgram(process.execPath, ['-e', `require('fs').accessSync(${JSON.stringify(binPath())}, require('fs').constants.R_OK)`], {
      runAs: { uid: st.uid, gid: st.gid },
      timeoutMs: 30_000,
    }).then(
      () => true,
      () => false,
    );
    if (!readable)
      throw new BihaError('unreadable_install', `the owner of ${pgdata} (uid ${st.uid}) cannot read ${binPath()}`, {
        hint: 'make the biha installation readable for that user (chmod o+rx on its directories)',
      });
  }
  await fsp.mkdir(logDir(pgdata), { recursive: true });
  const logFile = path.join(logDir(pgdata), 'controller.log');
  const out = fs.openSync(logFile, 'a', 0o600);
  const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (asRoot) fs.fchownSync(out, st.uid, st.gid);
  // The controller daemon outlives this command (detached, its output in its log file): a direct
  // spawn, not exec.ts's runner, which runs programs to their end and kills them when bihactl exits.
  const child = spawn(process.execPath, [...CONTROLLER_NODE_FLAGS, binPath(), 'controller', `--pgdata=${pgdata}`, `--log-file=${logFile}`], {
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
      await waitForVote(sock, conf.nodeId, deadline);
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new BihaError('timeout', `the controller did not answer within ${Math.round(waitMs / 1000)} s`, { hint: `see ${logFile}` });
}

/**
 * A node just added with a vote starts as a learner: it counts in no election until the leader,
 * hearing it follow with its data, gives it its vote. Wait for that, so that the cluster the DBA
 * sees after `bihactl start` is the one it will fail over with; say so when it takes too long.
 */
async function waitForVote(sock: string, nodeId: number, deadline: number): Promise<void> {
  let said = false;
  for (;;) {
    const s = (await localRequest(sock, 'status', {}, 1000).catch(() => null)) as StatusFile | null;
    if (s !== null && !s.config.learner) {
      if (said) info(`node ${nodeId} follows the leader and has its vote`);
      return;
    }
    if (Date.now() >= deadline) {
      info(`warning: node ${nodeId} is running but has no vote yet: the leader gives it once the node follows with its data (see select * from biha.status_v)`);
      return;
    }
    if (!said && s !== null) info(`node ${nodeId} is a learner until it follows the leader; waiting for its vote`);
    said ||= s !== null;
    await new Promise((r) => setTimeout(r, 200));
  }
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
