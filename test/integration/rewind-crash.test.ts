// A controller killed (SIGKILL) while pg_rewind runs: pg_rewind has copied the source's pg_biha/
// (its node id, raft vote and term, secrets) over this node's. After the restart the node must be
// itself again, with every vote and term it persisted during the rewind (a node that forgot a vote
// could vote twice in one term), PostgreSQL must stay stopped (the data directory may be half
// rewound), and the node must be in NODE_ERROR REWIND_FAILED until `bihactl rewind` (the runbook,
// docs/runbooks/node-error.md) brings it back as a streaming follower.
//
// The window is held open by a PostgreSQL bin directory (BIHA_PG_BINDIR) whose pg_rewind runs the
// real one and then sleeps.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { readStateFile } from '../../src/controller/state/statefile.js';
import type { NodeConf, NodeState } from '../../src/controller/state/nodefiles.js';
import { PG_BIN, TestCluster, bihaOk, bihactl, waitFor } from '../helpers/cluster.js';
import { useCluster } from '../helpers/suite.js';

/** A bin directory of symlinks to PostgreSQL 15's programs, whose pg_rewind sleeps after the real one. */
function slowRewindBindir(c: TestCluster, holdSeconds: number): { bindir: string; doneFile: string } {
  const bindir = path.join(c.dir, 'slow-bin');
  const doneFile = path.join(c.dir, 'pg_rewind.done');
  fs.mkdirSync(bindir, { recursive: true, mode: 0o755 });
  for (const name of fs.readdirSync(PG_BIN)) {
    if (name !== 'pg_rewind') fs.symlinkSync(path.join(PG_BIN, name), path.join(bindir, name));
  }
  fs.writeFileSync(
    path.join(bindir, 'pg_rewind'),
    [
      '#!/bin/sh',
      `${PG_BIN}/pg_rewind "$@"`,
      'rc=$?',
      'case "$*" in *--dry-run*) exit $rc ;; esac',
      `echo $rc > ${doneFile}`,
      `sleep ${holdSeconds}`,
      'exit $rc',
      '',
    ].join('\n'),
    { mode: 0o755 },
  );
  return { bindir, doneFile };
}

/**
 * The PID of the controller of `pgdata`, from the process table: while pg_rewind runs, its
 * pg_biha/controller.pid may be the source node's copy.
 */
function controllerOf(pgdata: string): number {
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const argv = fs.readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0');
      if (argv.includes('controller') && argv.includes(`--pgdata=${pgdata}`)) return Number(e);
    } catch {
      // gone
    }
  }
  throw new Error(`no controller runs for ${pgdata}`);
}

const readConf = async (pgdata: string): Promise<NodeConf> => (await readStateFile<NodeConf>(path.join(pgdata, 'pg_biha', 'biha.conf'), 'biha.conf', 1)).data;
const readState = async (pgdata: string): Promise<NodeState> => (await readStateFile<NodeState>(path.join(pgdata, 'pg_biha', 'biha.state'), 'biha.state', 1)).data;

describe('a controller killed while pg_rewind runs', () => {
  const c = new TestCluster({ nodes: 3, basePort: 23600 });
  useCluster(c, () => c.setAutorewind(true));

  it('restarts as itself with the votes it persisted, keeps PostgreSQL stopped in NODE_ERROR, and bihactl rewind brings it back', async () => {
    for (const i of c.ids()) if ((await c.leader()) !== i) await c.waitStreaming(i);
    const old = await c.divergeAndCrashLeader();
    const pgdata = c.pgdata(old);
    const before = await readConf(pgdata);
    const termBefore = (await readState(pgdata)).raft.hard.term;
    const { bindir, doneFile } = slowRewindBindir(c, 25);

    // The node finds its divergence and rewinds by itself (autorewind), through the slow pg_rewind.
    const st = await bihactl(['start', `--pgdata=${pgdata}`], { BIHA_PG_BINDIR: bindir });
    expect(st.code, st.stderr).toBe(0);
    await waitFor('pg_rewind to have copied the source', async () => fs.existsSync(doneFile), 90_000);
    expect(fs.readFileSync(doneFile, 'utf8').trim()).toBe('0');

    // A new term while the rewind runs: a switchover between the two others asks this node for its vote.
    const leader = await c.waitLeader({ not: old });
    const other = c.ids().find((i) => i !== old && i !== leader)!;
    await bihaOk(['set-leader', `--pgdata=${c.pgdata(leader)}`, `--id=${other}`]);
    await c.waitLeader({ not: leader });
    const during = await waitFor('the rewinding node to take the new term', async () => {
      const s = await c.status(old);
      const newLeaderTerm = s.status.find((x) => x.id === other)?.term ?? 0;
      return s.config.term >= newLeaderTerm && s.config.term > termBefore ? s : null;
    }, 30_000);
    expect(fs.existsSync(doneFile)).toBe(true);

    // Crash in the window: pg_rewind has finished copying, the controller has not put pg_biha back.
    process.kill(controllerOf(pgdata), 'SIGKILL');
    const restart = await bihactl(['start', `--pgdata=${pgdata}`]);
    expect(restart.code, restart.stderr).toBe(0);

    // Itself: its id, its secrets, a term not older than the one it had during the rewind.
    const after = await readConf(pgdata);
    expect(after.nodeId).toBe(old);
    expect(after.secrets).toEqual(before.secrets);
    expect(after.bihaPort).toBe(before.bihaPort);
    const s = await c.status(old);
    expect(s.nodeId).toBe(old);
    const hard = (await readState(pgdata)).raft.hard;
    expect(hard.term).toBeGreaterThanOrEqual(during.config.term);
    // The log says what happened; PostgreSQL stays stopped: the data directory may be half rewound.
    const log = fs.readFileSync(path.join(pgdata, 'pg_biha', 'log', 'controller.log'), 'utf8');
    expect(log).toMatch(/interrupted rewind/);
    const err = await waitFor('the node in NODE_ERROR', async () => {
      const x = await c.status(old);
      return /^NODE_ERROR/.test(x.status.find((y) => y.id === old)?.state ?? '') ? x : null;
    }, 30_000);
    expect(err.error.type).toBe('REWIND_FAILED');
    expect(err.error.details).toMatch(/bihactl rewind/);
    expect(c.postmasterPid(old)).toBeNull();
    expect(fs.existsSync(`${pgdata}.biha-rewind-save/rewind-in-progress`)).toBe(false);

    // The way out: rewind again from the leader. When the crash came after pg_rewind had copied a
    // WAL segment the source was still writing, that copy ends before the point where the others'
    // timelines forked. Then either pg_rewind cannot read back from there ("could not find previous
    // WAL record"), or it succeeds but keeps the short segment (it copies no WAL from before the
    // last common checkpoint), and recovery stops at its end without streaming. Either way the
    // runbook's last resort follows: bihactl reinit, a fresh copy
    // under the same registration.
    const r = await bihactl(['rewind', `--pgdata=${pgdata}`]);
    let streams = false;
    if (r.code === 0) {
      expect(r.stderr).toContain('rewound from node');
      streams = await c.waitStreaming(old, 60_000).then(() => true, () => false);
      // When it does not stream, replay stopped at the end of the short segment (on a record whose
      // prev-link points elsewhere, or on a cut-off one, then waiting for WAL): bihactl reinit below.
    } else {
      expect(r.stderr).toMatch(/pg_rewind failed .*could not find previous WAL record/);
      expect(c.postmasterPid(old)).toBeNull();
    }
    if (!streams) {
      // (The magic string of the cluster's start names this node itself as the seed: bihactl
      // reinit finds the leader through the members the node knows.)
      await bihaOk(['reinit', `--pgdata=${pgdata}`]);
      await c.start(old);
    }
    await c.waitStreaming(old, 90_000).catch((e: unknown) => {
      // Which way out was taken, and what the node's logs say, for the post-mortem.
      const tail = (f: string): string => (fs.existsSync(f) ? fs.readFileSync(f, 'utf8').split('\n').slice(-40).join('\n') : '(none)');
      const logs = path.join(pgdata, 'pg_biha', 'log');
      throw new Error(`${String(e)}; bihactl rewind exited ${r.code}: ${r.stderr.trim()}\n--- controller.log\n${tail(path.join(logs, 'controller.log'))}\n--- postgresql.log\n${tail(path.join(logs, 'postgresql.log'))}`);
    });
    expect((await c.status(old)).error.type).toBe('NO_ERROR');
    const t = await c.su<{ t: string | null }>(old, "select to_regclass('only_on_old')::text as t", 'biha_db');
    expect(t[0]?.t).toBeNull();
    expect((await readConf(pgdata)).nodeId).toBe(old);
    // A slow pg_rewind of 25 s, a switchover, two restarts, and maybe a fresh base backup.
  }, 300_000);
});
