import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { atomicTempName, atomicWriteFile, atomicWriteFileSync, copyFileAtomic, isAtomicTemp, removeDurably } from '../../src/controller/state/atomic.js';

let dir = '';
beforeAll(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'biha-atomic-'));
});
afterAll(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

const others = async (name: string): Promise<string[]> => (await fsp.readdir(dir)).filter((n) => n.includes(name) && n !== name);

describe('atomicWriteFile', () => {
  it('writes 0600 by default, the given mode otherwise, and narrows a wider file it replaces', async () => {
    const f = path.join(dir, 'mode.txt');
    await fsp.writeFile(f, 'old', { mode: 0o666 });
    await fsp.chmod(f, 0o666);
    await atomicWriteFile(f, 'one');
    expect(await fsp.readFile(f, 'utf8')).toBe('one');
    expect((await fsp.stat(f)).mode & 0o777).toBe(0o600);
    await atomicWriteFile(f, 'two', { mode: 0o640 });
    expect((await fsp.stat(f)).mode & 0o777).toBe(0o640);
    const old = process.umask(0o077);
    try {
      await atomicWriteFile(f, 'three', { mode: 0o644 });
    } finally {
      process.umask(old);
    }
    expect((await fsp.stat(f)).mode & 0o777).toBe(0o644);
    expect(await others('mode.txt')).toEqual([]);
  });

  it('overlapping writes of one file all succeed, each with a temporary file of its own, and leave one complete value', async () => {
    const f = path.join(dir, 'race.txt');
    const values = Array.from({ length: 30 }, (_, i) => `${i}:`.padEnd(5000 * (i + 1), String.fromCharCode(97 + (i % 26))));
    await Promise.all(values.map((v, i) => atomicWriteFile(f, v, { durable: i % 2 === 0 })));
    expect(values).toContain(await fsp.readFile(f, 'utf8'));
    expect(await others('race.txt')).toEqual([]);
  });

  it('the sync writer produces the same file', () => {
    const f = path.join(dir, 'sync.txt');
    atomicWriteFileSync(f, Buffer.from('bytes'), { mode: 0o600 });
    expect(fs.readFileSync(f, 'utf8')).toBe('bytes');
    expect(fs.statSync(f).mode & 0o777).toBe(0o600);
  });

  it('a failed write leaves the old file and no temporary file', async () => {
    const f = path.join(dir, 'fail.txt');
    await atomicWriteFile(f, 'kept');
    // Renaming a file over a directory fails after the temporary file was written.
    const d = path.join(dir, 'isdir');
    await fsp.mkdir(d);
    await expect(atomicWriteFile(d, 'x')).rejects.toThrow();
    expect(await others('isdir')).toEqual([]);
    await expect(atomicWriteFile(path.join(dir, 'missing', 'f'), 'x')).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await fsp.readFile(f, 'utf8')).toBe('kept');
  });

  it('temporary names are unique, hidden and recognised', () => {
    const a = atomicTempName('/x/biha.state');
    const b = atomicTempName('/x/biha.state');
    expect(a).not.toBe(b);
    expect(path.basename(a).startsWith('.biha.state.')).toBe(true);
    expect(isAtomicTemp(a)).toBe(true);
    expect(isAtomicTemp('biha.state')).toBe(false);
    expect(isAtomicTemp('biha.state.new')).toBe(false);
    expect(isAtomicTemp('x.reply')).toBe(false);
  });

  it('copyFileAtomic keeps the source mode; removeDurably removes', async () => {
    const src = path.join(dir, 'src.conf');
    const dst = path.join(dir, 'dst.conf');
    await fsp.writeFile(src, 'port = 1\n');
    await fsp.chmod(src, 0o640);
    await fsp.writeFile(dst, 'other');
    expect(await copyFileAtomic(src, dst)).toBe(true);
    expect(await fsp.readFile(dst, 'utf8')).toBe('port = 1\n');
    expect((await fsp.stat(dst)).mode & 0o777).toBe(0o640);
    expect(await copyFileAtomic(path.join(dir, 'nope'), dst)).toBe(false);
    await removeDurably(dst);
    await removeDurably(dst);
    expect(fs.existsSync(dst)).toBe(false);
  });
});
