// The rewind's identity guarantee without PostgreSQL: a crash (the store dropped, nothing else run)
// at every step of a rewind leaves a node that opens as itself, with every acknowledged vote.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { readNodeConf, readNodeState, rewindMarkerPath, rewindSaveDir, writeNodeConf, writeNodeState } from '../../src/controller/state/nodefiles.js';
import { NodeStore } from '../../src/controller/state/store.js';
import {
  holdPath,
  openNodeStore,
  readHold,
  recoverInterruptedRewind,
  restoreAfterRewind,
  saveBeforeRewind,
} from '../../src/controller/pg/rewindsave.js';
import type { NodeConf, NodeState } from '../../src/controller/state/nodefiles.js';
import { nodeOne, tempDirForFile } from '../helpers/nodefiles.js';

const tmp = tempDirForFile('biha-rewindsave-');
const { node, conf, state0 } = nodeOne('mine');
const hardOf = (s: NodeState, term: number, vote: number): NodeState['raft'] => ({ ...s.raft, hard: { ...s.raft.hard, term, vote } });

let n = 0;
async function freshNode(): Promise<string> {
  const pgdata = path.join(tmp.path, `n${++n}`);
  await fsp.mkdir(path.join(pgdata, 'pg_biha', 'tls'), { recursive: true, mode: 0o700 });
  await fsp.mkdir(path.join(pgdata, 'pg_wal', 'archive_status'), { recursive: true });
  await fsp.writeFile(path.join(pgdata, 'pg_wal', '000000010000000000000003'), 'my wal');
  await fsp.writeFile(path.join(pgdata, 'pg_biha', 'pgpass'), 'mine\n', { mode: 0o600 });
  await fsp.writeFile(path.join(pgdata, 'pg_biha', 'tls', 'node.key'), 'my key\n', { mode: 0o600 });
  await fsp.writeFile(path.join(pgdata, 'postgresql.conf'), "include 'postgresql.biha.conf'\n");
  await fsp.writeFile(path.join(pgdata, 'postgresql.biha.conf'), 'biha.id = 1\n');
  await writeNodeConf(pgdata, conf);
  await writeNodeState(pgdata, state0);
  return pgdata;
}

/** What pg_rewind does to pg_biha/ and the conf files: the source's copies replace ours. */
async function pgRewindCopies(pgdata: string): Promise<void> {
  await writeNodeConf(pgdata, { ...conf, nodeId: 2, secrets: ['theirs'], bihaPort: 6433 });
  await writeNodeState(pgdata, { raft: hardOf(state0, 3, 2), nodeError: null });
  await fsp.writeFile(path.join(pgdata, 'pg_biha', 'tls', 'node.key'), 'their key\n');
  await fsp.mkdir(path.join(pgdata, 'pg_biha', 'cmd'), { recursive: true });
  await fsp.writeFile(path.join(pgdata, 'pg_biha', 'cmd', 'x.req'), 'theirs\n');
  await fsp.writeFile(path.join(pgdata, 'postgresql.biha.conf'), 'biha.id = 2\n');
  await fsp.writeFile(path.join(pgdata, 'pg_wal', '000000010000000000000003'), 'their wal');
}

const STEPS = ['saved', 'begun', 'copied', 'voted', 'restored', 'ended'] as const;
type Step = (typeof STEPS)[number];

/** A rewind of `pgdata` (pg_rewind simulated) that stops dead after `crashAfter`. Returns the last acknowledged term. */
async function rewindUntil(pgdata: string, crashAfter: Step): Promise<number> {
  const store = await NodeStore.open(pgdata);
  await store.setRaft(hardOf(store.state, 5, 1));
  let acked = 5;
  const steps: Record<Step, () => Promise<void>> = {
    saved: async () => void (await saveBeforeRewind(pgdata)),
    begun: () => store.beginRewind({ sourceId: 2, source: '127.0.0.1:6432', startedAt: new Date().toISOString(), pid: process.pid }),
    copied: () => pgRewindCopies(pgdata),
    voted: async () => {
      await store.setRaft(hardOf(store.state, 6, 3));
      acked = 6;
    },
    restored: async () => void (await restoreAfterRewind(pgdata)),
    ended: () => store.endRewind(),
  };
  for (const s of STEPS) {
    await steps[s]();
    if (s === crashAfter) break;
  }
  // A change not yet acknowledged when the process dies may or may not be on disk.
  void store.setRaft(hardOf(store.state, 7, 0)).catch(() => undefined);
  return acked;
}

describe('a crash during a rewind', () => {
  for (const step of STEPS) {
    it(`after "${step}": the node opens as itself with its acknowledged term and vote`, async () => {
      const pgdata = await freshNode();
      const acked = await rewindUntil(pgdata, step);
      await new Promise((r) => setTimeout(r, 20));
      const notes: string[] = [];
      const { store, recovered, hold } = await openNodeStore(pgdata, (m) => notes.push(m));
      expect(store.conf).toEqual(conf);
      expect(store.state.raft.hard.term).toBeGreaterThanOrEqual(acked);
      if (store.state.raft.hard.term === 6) expect(store.state.raft.hard.vote).toBe(3);
      expect(await fsp.readFile(path.join(pgdata, 'pg_biha', 'pgpass'), 'utf8')).toBe('mine\n');
      expect(await fsp.readFile(path.join(pgdata, 'pg_biha', 'tls', 'node.key'), 'utf8')).toBe('my key\n');
      expect(await fsp.readFile(path.join(pgdata, 'postgresql.biha.conf'), 'utf8')).toBe('biha.id = 1\n');
      expect(fs.existsSync(path.join(pgdata, 'pg_biha', 'cmd', 'x.req'))).toBe(false);
      expect(fs.existsSync(rewindMarkerPath(pgdata))).toBe(false);
      const interrupted = step !== 'saved' && step !== 'ended';
      expect(recovered !== null).toBe(interrupted);
      if (interrupted) {
        // PostgreSQL stays stopped, the node is in NODE_ERROR, the WAL from before is kept.
        expect(hold).toMatch(/pg_rewind from node 2 .*bihactl rewind/);
        expect(readHold(pgdata)).toBe(hold);
        expect(store.state.nodeError?.type).toBe('REWIND_FAILED');
        expect(notes.join('\n')).toMatch(/interrupted rewind detected/);
        expect(await fsp.readFile(path.join(recovered!.keptIn, 'pg_wal', '000000010000000000000003'), 'utf8')).toBe('my wal');
        expect(fs.existsSync(rewindSaveDir(pgdata))).toBe(false);
      } else {
        expect(hold).toBeNull();
        expect(store.state.nodeError).toBeNull();
      }
      // And it stays itself: a second start recovers nothing more.
      const again = await openNodeStore(pgdata, () => undefined);
      expect(again.recovered).toBeNull();
      expect(again.store.state).toEqual(store.state);
    });
  }

  it('bihactl readers see the node itself during a rewind', async () => {
    const pgdata = await freshNode();
    await rewindUntil(pgdata, 'voted');
    expect((await readNodeConf(pgdata)).nodeId).toBe(1);
    expect((await readNodeState(pgdata)).raft.hard).toMatchObject({ term: 6, vote: 3 });
  });

  it('waits for a pg_rewind that outlived its controller before restoring', async () => {
    const pgdata = await freshNode();
    await rewindUntil(pgdata, 'copied');
    const script = path.join(tmp.path, 'pg_rewind');
    await fsp.writeFile(script, '#!/bin/sh\nsleep 1.5\n', { mode: 0o755 });
    const child = spawn(script, [`--target-pgdata=${pgdata}`], { stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 200));
    const notes: string[] = [];
    const t0 = Date.now();
    const r = await recoverInterruptedRewind(pgdata, (m) => notes.push(m));
    expect(Date.now() - t0).toBeGreaterThan(800);
    expect(notes.join('\n')).toMatch(/still runs .* waiting for it to end/);
    expect(r?.restored).toContain('postgresql.biha.conf');
    expect(child.exitCode).toBe(0);
    expect(fs.existsSync(holdPath(pgdata))).toBe(true);
  });
});
