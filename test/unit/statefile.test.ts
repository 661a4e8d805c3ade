import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  StateFileError,
  canonicalJson,
  readStateFile,
  readStateFileSync,
  writeStateFile,
  writeStateFileSync,
} from '../../src/controller/state/statefile.js';
import { oneLine } from '../../src/controller/errors.js';

let dir = '';
beforeAll(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'biha-statefile-'));
});
afterAll(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

const hard = { term: 7, votedFor: 2, nodes: [{ id: 1, host: 'a' }, { id: 2, host: 'b' }], note: 'ünïcode ✓' };

async function codeOf(p: Promise<unknown>): Promise<string> {
  const e = await p.then(() => null, (x: unknown) => x);
  expect(e).toBeInstanceOf(StateFileError);
  return (e as StateFileError).code;
}

describe('state files', () => {
  it('round-trip, mode 0600, version first on disk', async () => {
    const f = path.join(dir, 'hard.state');
    await writeStateFile(f, 'raft-hardstate', 1, hard);
    expect(await readStateFile(f, 'raft-hardstate', 1)).toEqual({ version: 1, data: hard });
    expect((await fsp.stat(f)).mode & 0o777).toBe(0o600);
    const text = await fsp.readFile(f, 'utf8');
    expect(Object.keys(JSON.parse(text) as object)).toEqual(['version', 'kind', 'data', 'crc']);
    await writeStateFile(f, 'raft-hardstate', 1, { ...hard, term: 8 }, 0o640);
    expect((await readStateFile<typeof hard>(f, 'raft-hardstate', 1)).data.term).toBe(8);
    expect((await fsp.stat(f)).mode & 0o777).toBe(0o640);
  });

  it('the sync writer and reader produce and accept the same format', async () => {
    const f = path.join(dir, 'sync.state');
    writeStateFileSync(f, 'node', 2, hard);
    expect(await readStateFile(f, 'node', 2)).toEqual({ version: 2, data: hard });
    await writeStateFile(f, 'node', 2, { x: 1 });
    expect(readStateFileSync(f, 'node', 2)).toEqual({ version: 2, data: { x: 1 } });
  });

  it('detects a flipped byte in the data (checksum mismatch)', async () => {
    const f = path.join(dir, 'flip.state');
    await writeStateFile(f, 'raft-hardstate', 1, hard);
    const text = await fsp.readFile(f, 'utf8');
    const i = text.indexOf('"term": 7');
    expect(i).toBeGreaterThan(0);
    await fsp.writeFile(f, text.slice(0, i) + '"term": 9' + text.slice(i + '"term": 7'.length));
    const err = await readStateFile(f, 'raft-hardstate', 1).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StateFileError);
    expect((err as StateFileError).code).toBe('state_corrupt');
    expect(oneLine(err)).toBe(`${f} is corrupt (checksum mismatch): restore it from a backup or re-add the node with bihactl add`);
  });

  it('detects every single-byte change that alters the content', async () => {
    const f = path.join(dir, 'every.state');
    await writeStateFile(f, 'k', 1, { term: 12, votedFor: 3 });
    const orig = await fsp.readFile(f);
    const good = JSON.stringify(JSON.parse(orig.toString('utf8')));
    let checked = 0;
    for (let i = 0; i < orig.length; i++) {
      const b = Buffer.from(orig);
      b[i] = (b[i] ?? 0) ^ 0x01;
      let same = false;
      try {
        same = JSON.stringify(JSON.parse(b.toString('utf8'))) === good;
      } catch {
        same = false;
      }
      if (same) continue; // whitespace-only change: same content
      await fsp.writeFile(f, b);
      expect(await codeOf(readStateFile(f, 'k', 1))).toBe('state_corrupt');
      checked++;
    }
    expect(checked).toBeGreaterThan(orig.length / 2);
  });

  it('detects a torn (truncated) file', async () => {
    const f = path.join(dir, 'torn.state');
    await writeStateFile(f, 'k', 1, hard);
    const text = await fsp.readFile(f, 'utf8');
    await fsp.writeFile(f, text.slice(0, Math.floor(text.length / 2)));
    expect(await codeOf(readStateFile(f, 'k', 1))).toBe('state_corrupt');
    await fsp.writeFile(f, '');
    expect(await codeOf(readStateFile(f, 'k', 1))).toBe('state_corrupt');
  });

  it('refuses a newer version and another kind; reports a missing file', async () => {
    const f = path.join(dir, 'ver.state');
    await writeStateFile(f, 'k', 3, hard);
    expect(await codeOf(readStateFile(f, 'k', 2))).toBe('state_version');
    expect((await readStateFile(f, 'k', 3)).version).toBe(3);
    expect(await codeOf(readStateFile(f, 'other', 3))).toBe('state_corrupt');
    expect(await codeOf(readStateFile(path.join(dir, 'nope.state'), 'k', 1))).toBe('state_missing');
  });

  it('is atomic: a leftover temporary file is ignored and the next write replaces the file', async () => {
    const f = path.join(dir, 'atomic.state');
    await writeStateFile(f, 'k', 1, { term: 1 });
    await fsp.writeFile(`${f}.new`, '{"version": 1, "kind": "k", "da', { mode: 0o644 });
    expect((await readStateFile(f, 'k', 1)).data).toEqual({ term: 1 });
    await writeStateFile(f, 'k', 1, { term: 2 });
    expect((await readStateFile(f, 'k', 1)).data).toEqual({ term: 2 });
    expect((await fsp.stat(f)).mode & 0o777).toBe(0o600);
  });

  it('concurrent writes of one file all succeed and leave one complete value', async () => {
    const f = path.join(dir, 'concurrent.state');
    const values = Array.from({ length: 20 }, (_, i) => ({ term: i, pad: 'x'.repeat(1000 * (i + 1)) }));
    await Promise.all(values.map((v) => writeStateFile(f, 'k', 1, v)));
    const back = (await readStateFile<{ term: number; pad: string }>(f, 'k', 1)).data;
    expect(values).toContainEqual(back);
    expect((await fsp.readdir(dir)).filter((n) => n.includes('concurrent.state') && n !== 'concurrent.state')).toEqual([]);
  });

  it('accepts an equivalent file with reordered keys (canonical checksum)', async () => {
    const f = path.join(dir, 'order.state');
    await writeStateFile(f, 'k', 1, { b: 1, a: { d: 2, c: 3 } });
    const o = JSON.parse(await fsp.readFile(f, 'utf8')) as Record<string, unknown>;
    await fsp.writeFile(f, JSON.stringify({ crc: o.crc, data: { a: { c: 3, d: 2 }, b: 1 }, kind: o.kind, version: o.version }));
    expect((await readStateFile(f, 'k', 1)).data).toEqual({ a: { c: 3, d: 2 }, b: 1 });
    expect(canonicalJson({ b: 1, a: [{ z: 1, y: 2 }] })).toBe('{"a":[{"y":2,"z":1}],"b":1}');
  });

  it('round-trips any JSON value', async () => {
    const f = path.join(dir, 'prop.state');
    await fc.assert(
      fc.asyncProperty(fc.jsonValue(), async (v) => {
        await writeStateFile(f, 'p', 1, v);
        const back = await readStateFile(f, 'p', 1);
        expect(back.data).toEqual(JSON.parse(JSON.stringify(v ?? null)));
      }),
      { numRuns: 60 },
    );
  });
});
