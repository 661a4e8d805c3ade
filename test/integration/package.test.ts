// The release artifacts as a DBA gets them: scripts/package.sh builds the .deb and the npm
// tarball; the .deb installs with dpkg -i, its bihactl (on the PATH, no checkout behind it) creates,
// starts, shows and stops a real node on PostgreSQL, and dpkg -r takes it all away again; the same
// .deb on Debian 12 with Debian's own Node.js 18 (test/roots/package.sh in a debootstrap root).
import { execFile, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PASSWORD, waitFor } from '../helpers/cluster.js';
import { claimPorts } from '../helpers/ports.js';

const pexec = promisify(execFile);
const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');
/** The host's node (PORT..PORT+2) and the Node.js 18 root's (PORT+10..PORT+12). */
const PORT = claimPorts(24210, 20);
const version = (JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const arch = spawnSync('dpkg', ['--print-architecture'], { encoding: 'utf8' }).stdout.trim();

const out = fs.mkdtempSync(path.join(os.tmpdir(), 'biha-release-'));
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'biha-pkg-'));
const pgdata = path.join(work, 'n1');
let installedHere = false;

async function run(cmd: string, args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await pexec(cmd, args, { env: { ...process.env, ...env }, timeout: 300_000, maxBuffer: 16 << 20, cwd: work });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof x.code === 'number' ? x.code : 1, stdout: x.stdout ?? '', stderr: x.stderr ?? '' };
  }
}

/** The installed bihactl, found through the PATH as a DBA's shell finds it; never the checkout's. */
async function installed(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return await run('bihactl', args, { BIHA_REPLICATION_PASSWORD: PASSWORD, PATH: `/usr/bin:/bin:/usr/sbin:/sbin` });
}

beforeAll(async () => {
  if (process.getuid?.() !== 0) throw new Error('this test installs a Debian package: run it as root (CI does)');
  if (spawnSync('dpkg-query', ['-W', '-f=${Status}', 'biha'], { encoding: 'utf8' }).stdout.includes('install ok installed')) {
    throw new Error('a biha package is already installed on this machine; this test would replace and remove it (dpkg -r biha first)');
  }
  fs.chmodSync(work, 0o755);
  spawnSync('chown', ['postgres:postgres', work]);
  const r = await run('bash', [path.join(ROOT, 'scripts', 'package.sh')], { BIHA_RELEASE_DIR: out });
  if (r.code !== 0) throw new Error(`scripts/package.sh failed: ${r.stderr}${r.stdout}`);
}, 600_000);

afterAll(async () => {
  if (fs.existsSync(path.join(pgdata, 'postmaster.pid')) || fs.existsSync(path.join(pgdata, 'pg_biha', 'controller.pid'))) {
    await installed(['stop', `--pgdata=${pgdata}`]);
  }
  if (installedHere) await run('dpkg', ['--purge', 'biha']);
  fs.rmSync(work, { recursive: true, force: true });
  fs.rmSync(out, { recursive: true, force: true });
}, 120_000);

describe('the release package', () => {
  it('writes the .deb and the npm tarball; the tarball holds what runs and no tests or sources', async () => {
    expect(fs.existsSync(path.join(out, `biha_${version}_${arch}.deb`))).toBe(true);
    const tgz = path.join(out, `biha-${version}.tgz`);
    const list = (await run('tar', ['-tzf', tgz])).stdout.split('\n').filter(Boolean);
    expect(list).toContain('package/bin/bihactl.js');
    expect(list).toContain('package/dist/bihactl/main.js');
    // The dashboard page, bundled at packaging time: nothing is fetched at run time.
    expect(list).toContain('package/dist/dashboard/index.html');
    expect(list.filter((f) => /^package\/dist\/dashboard\/app-[A-Z0-9]+\.js$/.test(f))).toHaveLength(1);
    expect(list).toContain('package/sql/biha--1.0.sql');
    expect(list).toContain('package/conf-templates/postgresql.biha.conf.tmpl');
    expect(list.filter((f) => f.startsWith('package/src/') || f.startsWith('package/test/'))).toEqual([]);
  });

  it('installs with dpkg -i: bihactl on the PATH, the unit template, logrotate, and the PostgreSQL and Node dependencies declared', async () => {
    const deb = path.join(out, `biha_${version}_${arch}.deb`);
    const info = (await run('dpkg-deb', ['-f', deb, 'Depends'])).stdout;
    // Debian 12's own nodejs is 18.19 or newer (bookworm updates), Debian 13's 20.
    expect(info).toMatch(/nodejs \(>= 18\.19\)/);
    expect(info).toMatch(/postgresql-15/);
    const r = await run('dpkg', ['-i', deb]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    installedHere = true;
    expect(fs.realpathSync('/usr/bin/bihactl')).toBe('/usr/lib/biha/bin/bihactl.js');
    expect(fs.readFileSync('/lib/systemd/system/biha@.service', 'utf8')).toContain('ExecStart=/usr/bin/bihactl controller --pgdata=%f');
    expect(fs.existsSync('/etc/logrotate.d/biha')).toBe(true);
    const v = await installed(['--version']);
    expect(v.stdout.trim()).toBe(version);
  });

  it('the installed bihactl creates, starts, shows and stops a node on real PostgreSQL', async () => {
    const init = await installed(['init', '--biha-node-id=1', '--host=127.0.0.1', `--port=${PORT}`, `--http-port=${PORT + 2}`, '--nquorum=1', '--minnodes=1', `--pgdata=${pgdata}`]);
    expect(init.stderr).not.toMatch(/error/i);
    expect(init.code).toBe(0);
    expect((await installed(['start', `--pgdata=${pgdata}`])).code).toBe(0);
    const st = await waitFor('the installed node to lead', async () => {
      const s = await installed(['status', `--pgdata=${pgdata}`, '--json']);
      if (s.code !== 0) return null;
      const j = JSON.parse(s.stdout) as { status: Array<{ id: number; state: string }> };
      return j.status.find((n) => n.id === 1 && n.state === 'LEADER_RW') ?? null;
    }, 60_000, 200);
    expect(st.state).toBe('LEADER_RW');
    // The controller runs the installed code, not this checkout's.
    const pid = fs.readFileSync(path.join(pgdata, 'pg_biha', 'controller.pid'), 'utf8').trim().split('\n')[0]!;
    expect(fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8')).toContain('/usr/lib/biha/');
    expect((await installed(['stop', `--pgdata=${pgdata}`])).code).toBe(0);
    expect(fs.existsSync(path.join(pgdata, 'postmaster.pid'))).toBe(false);
  });

  it("installs and runs on Debian 12 with Debian's own Node.js 18 and PostgreSQL 15 (root of scripts/debian-root.sh node18)", async () => {
    // The root sees this checkout read-only at the same path: the .deb goes below release/ (ignored by git).
    fs.mkdirSync(path.join(ROOT, 'release'), { recursive: true });
    const dir = fs.mkdtempSync(path.join(ROOT, 'release', '.root-test-'));
    try {
      const deb = path.join(dir, `biha_${version}_${arch}.deb`);
      fs.copyFileSync(path.join(out, `biha_${version}_${arch}.deb`), deb);
      const script = path.join(ROOT, 'scripts', 'debian-root.sh');
      const b = await run('bash', [script, 'node18']);
      expect(b.code, b.stderr.slice(-2000)).toBe(0);
      const r = await run('bash', [script, 'node18', 'run', 'bash', 'test/roots/package.sh', deb], { BIHA_SCENARIO_PORT: String(PORT + 10) });
      const res = new Map([...r.stdout.matchAll(/^RESULT ([a-z_]+)=(.*)$/gm)].map((m) => [m[1]!, m[2]!]));
      expect(r.code, `${r.stdout.slice(-3000)}${r.stderr.slice(-2000)}`).toBe(0);
      expect(res.get('node_version')).toMatch(/^v18\./);
      expect(res.get('dpkg_install')).toBe('ok');
      expect(res.get('version')).toBe(version);
      expect(res.get('state')).toBe('LEADER_RW');
      expect(res.get('controller_code')).toBe('/usr/lib/biha/bin/bihactl.js');
      expect(res.get('stopped')).toBe('yes');
      expect(res.get('purged')).toBe('yes');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 900_000);

  it('dpkg -r removes the code, the command and the unit, and leaves the data directory alone; --purge the logrotate file', async () => {
    const r = await run('dpkg', ['-r', 'biha']);
    expect(r.code).toBe(0);
    installedHere = false;
    expect(fs.existsSync('/usr/lib/biha')).toBe(false);
    expect(fs.existsSync('/usr/bin/bihactl')).toBe(false);
    expect(fs.existsSync('/lib/systemd/system/biha@.service')).toBe(false);
    expect(fs.existsSync(path.join(pgdata, 'PG_VERSION'))).toBe(true);
    expect(fs.existsSync('/etc/logrotate.d/biha')).toBe(true);
    expect((await run('dpkg', ['--purge', 'biha'])).code).toBe(0);
    expect(fs.existsSync('/etc/logrotate.d/biha')).toBe(false);
  });
});
