import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  identityDir,
  readNodeConf,
  readNodeState,
  rewindMarkerPath,
  rewindSaveDir,
  writeNodeConf,
  writeNodeState,
} from '../../src/controller/state/nodefiles.js';
import { NodeStore } from '../../src/controller/state/store.js';
import type { StoreIo } from '../../src/controller/state/store.js';
import { ensureBuilt } from '../helpers/cluster.js';
import type { NodeConf, NodeState } from '../../src/controller/state/nodefiles.js';
import { nodeOne, tempDirForFile } from '../helpers/nodefiles.js';

const tmp = tempDirForFile('biha-store-');
const { node, conf, state0 } = nodeOne('s0');
const withTerm = (s: NodeState, term: number, vote = 0): NodeState => ({ ...s, raft: { ...s.raft, hard: { ...s.raft.hard, term, vote } } });

let n = 0;
async function freshNode(): Promise<string> {
  const pgdata = path.join(tmp.path, `n${++n}`);
  await fsp.mkdir(path.join(pgdata, 'pg_biha'), { recursive: true, mode: 0o700 });
  await writeNodeConf(pgdata, conf);
  await writeNodeState(pgdata, state0);
  return pgdata;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** An io that records what it wrote and how many writes overlapped. */
function recordingIo(delayMs: number): StoreIo & { states: number[]; confs: string[][]; maxInFlight: number; failNext: boolean } {
  let inFlight = 0;
  const io = {
    states: [] as number[],
    confs: [] as string[][],
    maxInFlight: 0,
    failNext: false,
    async writeState(_dir: string, s: NodeState): Promise<void> {
      inFlight++;
      io.maxInFlight = Math.max(io.maxInFlight, inFlight);
      await sleep(delayMs);
      inFlight--;
      if (io.failNext) {
        io.failNext = false;
        throw new Error('disk full');
      }
      io.states.push(s.raft.hard.term);
    },
    async writeConf(_dir: string, c: NodeConf): Promise<void> {
      inFlight++;
      io.maxInFlight = Math.max(io.maxInFlight, inFlight);
      await sleep(delayMs);
      inFlight--;
      io.confs.push([...c.secrets]);
    },
  };
  return io;
}

describe('the state store', () => {
  it('changes are visible at once; writes never overlap and each writes the latest value', async () => {
    const io = recordingIo(5);
    const store = NodeStore.of(path.join(tmp.path, 'mem'), conf, state0, io);
    const ps: Array<Promise<void>> = [];
    for (let t = 2; t <= 60; t++) {
      ps.push(store.setRaft(withTerm(store.state, t).raft));
      expect(store.state.raft.hard.term).toBe(t);
      if (t % 10 === 0) ps.push(store.updateConf((c) => ({ ...c, secrets: [`s${t}`, ...c.secrets.slice(0, 1)] })));
    }
    await Promise.all(ps);
    expect(io.maxInFlight).toBe(1);
    // Coalesced: far fewer writes than changes, the last one holds the latest value, none goes back.
    expect(io.states.length).toBeLessThan(10);
    expect(io.states.at(-1)).toBe(60);
    expect([...io.states].sort((a, b) => a - b)).toEqual(io.states);
    expect(io.confs.at(-1)).toEqual(['s60', 's50']);
  });

  it('a change resolves only after a write that contains it has completed', async () => {
    const io = recordingIo(3);
    const store = NodeStore.of(path.join(tmp.path, 'mem2'), conf, state0, io);
    const checks: Array<Promise<void>> = [];
    for (let t = 2; t <= 40; t++) {
      const term = t;
      checks.push(
        store.setRaft(withTerm(store.state, term).raft).then(() => {
          expect(io.states.some((w) => w >= term)).toBe(true);
        }),
      );
      if (t % 7 === 0) await sleep(4);
    }
    await Promise.all(checks);
  });

  it('a failed write rejects the changes it carried; the next change writes everything again', async () => {
    const io = recordingIo(1);
    const store = NodeStore.of(path.join(tmp.path, 'mem3'), conf, state0, io);
    io.failNext = true;
    await expect(store.setRaft(withTerm(store.state, 5).raft)).rejects.toThrow('disk full');
    expect(store.state.raft.hard.term).toBe(5);
    await store.setNodeError(null);
    expect(io.states).toEqual([5]);
    await store.flush();
  });

  it('concurrent updates all land, in memory and on disk', async () => {
    const pgdata = await freshNode();
    const store = await NodeStore.open(pgdata);
    await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        i % 3 === 0
          ? store.updateConf((c) => ({ ...c, seeds: [...c.seeds, { id: i, host: 'h', port: 1, bihaPort: 2 }] }))
          : store.updateState((s) => withTerm(s, s.raft.hard.term + 1)),
      ),
    );
    const onDisk = await readNodeState(pgdata);
    expect(onDisk.raft.hard.term).toBe(1 + 66);
    expect(store.state).toEqual(onDisk);
    expect((await readNodeConf(pgdata)).seeds.map((s) => s.id)).toEqual(Array.from({ length: 34 }, (_, k) => 3 * k));
    expect((await fsp.readdir(path.join(pgdata, 'pg_biha'))).sort()).toEqual(['biha.conf', 'biha.state']);
  });

  it('a reader of the files at any moment sees a complete state, never older than the last acknowledged change', async () => {
    const pgdata = await freshNode();
    const store = await NodeStore.open(pgdata);
    let acked = 1;
    let stop = false;
    let reads = 0;
    const reader = (async () => {
      while (!stop) {
        const floor = acked;
        const s = await readNodeState(pgdata);
        expect(s.raft.hard.term).toBeGreaterThanOrEqual(floor);
        expect(s.raft.hard.vote).toBe(s.raft.hard.term % 3);
        reads++;
        await new Promise((r) => setImmediate(r));
      }
    })();
    const writes: Array<Promise<void>> = [];
    for (let t = 2; t <= 150; t++) {
      const term = t;
      writes.push(store.setRaft(withTerm(store.state, term, term % 3).raft).then(() => void (acked = Math.max(acked, term))));
      if (t % 5 === 0) await sleep(2);
    }
    await Promise.all(writes);
    stop = true;
    await reader;
    expect(reads).toBeGreaterThan(5);
    expect((await readNodeState(pgdata)).raft.hard.term).toBe(150);
  });

  it('a process killed (SIGKILL) at any point leaves files that open as a state at least as new as the last acknowledged one', async () => {
    ensureBuilt();
    const storeJs = path.resolve('dist/controller/state/store.js');
    for (let round = 0; round < 6; round++) {
      const pgdata = await freshNode();
      const script = `
        const { NodeStore } = await import(${JSON.stringify(storeJs)});
        const store = await NodeStore.open(${JSON.stringify(pgdata)});
        for (let t = 2; ; t++) {
          const s = store.state;
          const p = store.update(() => ({
            state: { ...s, raft: { ...s.raft, hard: { ...s.raft.hard, term: t, vote: t % 3 } } },
            conf: t % 4 === 0 ? { ...store.conf, secrets: ['k' + t] } : store.conf,
          }));
          if (t % 3 !== 0) { await p; process.stdout.write('acked ' + t + '\\n'); }
        }`;
      const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      await new Promise<void>((resolve) => {
        const check = setInterval(() => {
          if (out.split('\n').length > 20 + round * 15) {
            clearInterval(check);
            resolve();
          }
        }, 2);
      });
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
      const acked = Math.max(...[...out.matchAll(/acked (\d+)/g)].map((m) => Number(m[1])));
      const s = await readNodeState(pgdata);
      const c = await readNodeConf(pgdata);
      expect(s.raft.hard.term).toBeGreaterThanOrEqual(acked);
      expect(s.raft.hard.vote).toBe(s.raft.hard.term % 3);
      expect(c.secrets[0]).toMatch(/^(s0|k\d+)$/);
      const reopened = await NodeStore.open(pgdata);
      expect(reopened.state).toEqual(s);
    }
  });

  it('during a rewind the files live in the save directory, which readers follow; afterwards PGDATA has the latest', async () => {
    const pgdata = await freshNode();
    const store = await NodeStore.open(pgdata);
    await store.setRaft(withTerm(store.state, 7, 1).raft);
    await fsp.mkdir(path.join(rewindSaveDir(pgdata), 'pg_biha'), { recursive: true });
    await store.beginRewind({ sourceId: 2, source: '127.0.0.1:5442', startedAt: new Date().toISOString(), pid: process.pid });
    expect(fs.existsSync(rewindMarkerPath(pgdata))).toBe(true);
    expect(identityDir(pgdata)).toBe(path.join(rewindSaveDir(pgdata), 'pg_biha'));
    expect(store.rewinding).toBe(true);
    // pg_rewind copies the source's files over PGDATA/pg_biha.
    await writeNodeConf(pgdata, { ...conf, nodeId: 2, secrets: ['other'] });
    await writeNodeState(pgdata, withTerm(state0, 3, 2));
    // A vote during the rewind.
    await store.setRaft(withTerm(store.state, 8, 3).raft);
    expect((await readNodeState(pgdata)).raft.hard).toMatchObject({ term: 8, vote: 3 });
    expect((await readNodeConf(pgdata)).nodeId).toBe(1);
    await store.endRewind();
    expect(fs.existsSync(rewindMarkerPath(pgdata))).toBe(false);
    expect(identityDir(pgdata)).toBe(path.join(pgdata, 'pg_biha'));
    expect((await readNodeState(pgdata)).raft.hard).toMatchObject({ term: 8, vote: 3 });
    expect((await readNodeConf(pgdata)).nodeId).toBe(1);
    await store.setRaft(withTerm(store.state, 9, 0).raft);
    expect((await readNodeState(pgdata)).raft.hard.term).toBe(9);
  });

  it('refuses to open while a rewind marker exists', async () => {
    const pgdata = await freshNode();
    await fsp.mkdir(rewindSaveDir(pgdata), { recursive: true });
    await fsp.writeFile(rewindMarkerPath(pgdata), '{}');
    await expect(NodeStore.open(pgdata)).rejects.toThrow(/interrupted rewind/);
  });
});
