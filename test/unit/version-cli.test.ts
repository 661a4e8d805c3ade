// bihactl --version / -V and the global --pg-bindir option, through the real command line.
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bihactl, ensureBuilt } from '../helpers/cluster.js';

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');
const version = (JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
let dir = '';

beforeAll(async () => {
  ensureBuilt();
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'biha-cli-version-'));
}, 180_000);
afterAll(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

describe('bihactl global options', () => {
  it('--version and -V print the package version and exit 0', async () => {
    expect(version).toMatch(/^\d+\.\d+\.\d+/);
    for (const flag of ['--version', '-V']) {
      const r = await bihactl([flag]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toBe(`${version}\n`);
      expect(r.stderr).toBe('');
    }
  });

  it('--pg-bindir is checked before anything is made, before or after the command name', async () => {
    const noCtl = path.join(dir, 'no-programs');
    fs.mkdirSync(noCtl);
    for (const [i, args] of [
      ['--pg-bindir', noCtl, 'init'],
      ['init', `--pg-bindir=${noCtl}`],
    ].entries()) {
      const pgdata = path.join(dir, `node${i}`);
      const r = await bihactl([...args, '--biha-node-id=1', '--host=127.0.0.1', '--port=20940', '--nquorum=1', '--minnodes=1', `--pgdata=${pgdata}`]);
      expect(r.code).not.toBe(0);
      expect(r.stdout).toBe('');
      const last = r.stderr.trim().split('\n').pop() ?? '';
      expect(last).toBe(`bihactl: BIHA_PG_BINDIR=${noCtl} does not contain pg_ctl (point BIHA_PG_BINDIR (bihactl --pg-bindir) at the bin directory of a PostgreSQL installation, or unset it)`);
      expect(fs.existsSync(pgdata)).toBe(false);
    }
  });

  it('--pg-bindir with an empty value is refused', async () => {
    const r = await bihactl(['--pg-bindir=', 'fsm']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('bihactl: --pg-bindir needs a directory\n');
  });
});
