// bihactl init/add on real PostgreSQL: every bad input is refused with one clear line on stderr and
// a non-zero exit code, before anything half-made is left behind (the data directory is absent, or
// empty, or exactly as it was) and without changing the running cluster.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeMagic, encodeMagic } from '../../src/controller/security/magic.js';
import type { Magic } from '../../src/controller/security/magic.js';
import { TestCluster, bihactl, bihactlWithEnv } from '../helpers/cluster.js';
import { claimPorts } from '../helpers/ports.js';
import type { CliResult } from '../helpers/cluster.js';

/** Asserts a refusal: non-zero exit, nothing on stdout, only bihactl's own one-line messages on stderr. Returns the error line. */
function refused(r: CliResult, re: RegExp): string {
  expect(r.code, `expected a refusal, got exit 0; stderr: ${r.stderr}`).not.toBe(0);
  expect(r.stdout).toBe('');
  const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
  expect(lines.length, 'an error message on stderr').toBeGreaterThan(0);
  // No stack traces and no multi-line dumps: every line is one of bihactl's (or the option parser's) own.
  for (const l of lines) expect(l).toMatch(/^(bihactl|error): \S/);
  const last = lines[lines.length - 1]!;
  expect(last).toMatch(re);
  return last;
}

function absentOrEmpty(dir: string): boolean {
  return !fs.existsSync(dir) || fs.readdirSync(dir).length === 0;
}

/** A directory holding one file, as a DBA's directory that is not empty. */
function nonEmptyDir(dir: string): string {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'keep.txt'), 'mine\n');
  return dir;
}

describe('bihactl refuses bad input with one clear line and leaves nothing half-made', () => {
  // A: a running single-node cluster; its node slots 2 and 3 are the targets of refused adds.
  const a = new TestCluster({ nodes: 3, basePort: 20100, nquorum: 1, minnodes: 1 });
  // B: another cluster (initialised, never started): the source of a foreign cluster id and secret.
  const b = new TestCluster({ nodes: 1, basePort: 20150, nquorum: 1, minnodes: 1 });
  const FREE_PORT = claimPorts(20130, 3); // nothing listens on FREE_PORT..FREE_PORT+2
  const CLOSED_PORT = claimPorts(20190, 2); // nothing listens on CLOSED_PORT..CLOSED_PORT+1
  let initResult: CliResult;
  let ma: Magic;
  let mb: Magic;
  let bMagicFile = '';

  const target = (): string => a.pgdata(2);
  const addArgs = (extra: string[], port: number | string = a.port(2)): string[] => [
    'add', '--biha-node-id=2', '--host=127.0.0.1', `--port=${port}`, `--pgdata=${target()}`, ...extra,
  ];
  const initArgs = (pgdata: string, extra: string[], port = FREE_PORT): string[] => [
    'init', '--biha-node-id=1', '--host=127.0.0.1', `--port=${port}`, '--nquorum=1', '--minnodes=1', `--pgdata=${pgdata}`, ...extra,
  ];
  const members = async (): Promise<number[]> => (await a.status(1)).status.map((s) => s.id);

  beforeAll(async () => {
    initResult = await a.init();
    if (initResult.code !== 0) throw new Error(`init failed: ${initResult.stderr}`);
    await a.start(1);
    await a.waitState(1, 'LEADER_RW');
    bMagicFile = path.join(b.dir, 'magic');
    const rb = await b.init([`--magic-file=${bMagicFile}`]);
    if (rb.code !== 0) throw new Error(`init of the second cluster failed: ${rb.stderr}`);
    ma = decodeMagic(a.magic);
    mb = decodeMagic(b.magic);
  }, 180_000);

  afterAll(async () => {
    await a.destroy();
    await b.destroy();
  }, 120_000);

  it('a successful init prints exactly one line on stdout: the magic string', () => {
    expect(initResult.stdout).toMatch(/^biha1\.[A-Za-z0-9_-]+\n$/);
    expect(initResult.stdout.split('\n')).toHaveLength(2);
    // --magic-file holds the same string, readable by its owner only.
    expect(fs.readFileSync(bMagicFile, 'utf8').trim()).toBe(b.magic);
    expect(fs.statSync(bMagicFile).mode & 0o777).toBe(0o600);
    expect(b.magic).not.toBe(a.magic);
  });

  it('refuses a malformed magic string', async () => {
    for (const bad of ['garbage', 'biha1.!!!not-base64!!!', `biha1.${Buffer.from('{"c":1}').toString('base64url')}`]) {
      refused(await bihactl(addArgs([`--magic-string=${bad}`])), /magic string is not valid/);
      expect(absentOrEmpty(target())).toBe(true);
    }
  });

  it('refuses a truncated magic string', async () => {
    const cut = a.magic.slice(0, Math.floor(a.magic.length / 2));
    refused(await bihactl(addArgs([`--magic-string=${cut}`])), /magic string is not valid: .*truncated/);
    expect(absentOrEmpty(target())).toBe(true);
  });

  it('refuses a magic string with a wrong secret for the running cluster, saying so', async () => {
    const wrongSecret = encodeMagic({ ...ma, secret: mb.secret });
    refused(await bihactl(addArgs([`--magic-string=${wrongSecret}`])), /secret/);
    expect(absentOrEmpty(target())).toBe(true);
    expect(await members()).toEqual([1]);
  });

  it('refuses a magic string of another cluster, naming the cluster mismatch (not "cannot reach")', async () => {
    // Cluster B's id and secret, pointing at cluster A's node.
    const foreign = encodeMagic({ ...mb, peers: ma.peers });
    const line = refused(await bihactl(addArgs([`--magic-string=${foreign}`])), /belongs to (another )?cluster.*magic string/);
    expect(line).not.toMatch(/cannot reach/);
    expect(absentOrEmpty(target())).toBe(true);
    expect(await members()).toEqual([1]);
  });

  it('refuses an unreachable leader (a magic string pointing to a closed port)', async () => {
    const closed = encodeMagic({ ...ma, peers: [{ id: 1, host: '127.0.0.1', port: CLOSED_PORT, bihaPort: CLOSED_PORT + 1 }] });
    refused(await bihactl(addArgs([`--magic-string=${closed}`])), new RegExp(`cannot reach .*127\\.0\\.0\\.1:${CLOSED_PORT}`));
    expect(absentOrEmpty(target())).toBe(true);
    // The same through --use-leader.
    refused(await bihactl(addArgs([`--use-leader=host=127.0.0.1 port=${CLOSED_PORT}`])), new RegExp(`cannot reach .*${CLOSED_PORT}`));
    expect(absentOrEmpty(target())).toBe(true);
  });

  it('refuses a wrong replication password', async () => {
    const env = { BIHA_REPLICATION_PASSWORD: 'not-the-password' };
    refused(await bihactl(addArgs([`--magic-string=${a.magic}`]), env), /rejected the password of biha_replication_user/);
    expect(absentOrEmpty(target())).toBe(true);
    refused(await bihactl(addArgs([`--use-leader=host=127.0.0.1 port=${a.port(1)}`]), env), /rejected the password/);
    expect(absentOrEmpty(target())).toBe(true);
    expect(await members()).toEqual([1]);
  });

  it('refuses a node id that is already in the cluster (at another host/port)', async () => {
    const r = await bihactl(['add', '--biha-node-id=1', '--host=127.0.0.1', `--port=${a.port(2)}`, `--magic-string=${a.magic}`, `--pgdata=${target()}`]);
    refused(r, /node id 1 is already in the cluster/);
    expect(absentOrEmpty(target())).toBe(true);
    expect(await members()).toEqual([1]);
  });

  it('refuses a voter that would break the zero-loss rule of synchronous mode: exit 3, the rule with the numbers, the way out', async () => {
    // sync_standbys 1 on the one data node: nothing to wait for yet (it counts as 0), and 0 + 1 + 1 > 1.
    await a.sql(1, 'select biha.set_sync_standbys(1)');
    try {
      const r = await bihactl([
        'add', '--biha-node-id=2', '--host=127.0.0.1', '--mode=referee', `--biha-port=${a.port(2) + 1}`, `--http-port=${a.httpPort(2)}`,
        `--magic-string=${a.magic}`, `--pgdata=${target()}`,
      ]);
      const line = refused(r, /adding node 2 breaks the zero-loss rule of synchronous mode/);
      expect(r.code).toBe(3);
      expect(line).toContain('0 + 1 + 1 = 2 is not more than the 2 voting nodes');
      expect(line).toContain('raise nquorum to 2 first');
      expect(line).toContain('--allow-sync-loss');
      expect(absentOrEmpty(target())).toBe(true);
      expect(await members()).toEqual([1]);
    } finally {
      await a.sql(1, 'select biha.set_sync_standbys(0)');
    }
  });

  it('refuses a non-empty --pgdata for init and for add, leaving its contents alone', async () => {
    const dir = nonEmptyDir(path.join(a.dir, 'not-empty'));
    refused(await bihactl(initArgs(dir, [])), /--pgdata .*not-empty is not empty/);
    expect(fs.readdirSync(dir)).toEqual(['keep.txt']);
    refused(await bihactl(['add', '--biha-node-id=2', '--host=127.0.0.1', `--port=${a.port(2)}`, `--magic-string=${a.magic}`, `--pgdata=${dir}`]), /--pgdata .*not-empty is not empty/);
    expect(fs.readdirSync(dir)).toEqual(['keep.txt']);
  });

  it('refuses a PostgreSQL port or a biha port that is in use', async () => {
    const dir = path.join(a.dir, 'ports');
    refused(await bihactl(initArgs(dir, [], a.port(1))), new RegExp(`port ${a.port(1)} is already in use`));
    expect(fs.existsSync(dir)).toBe(false);
    refused(await bihactl(initArgs(dir, [`--biha-port=${a.port(1) + 1}`])), new RegExp(`biha port ${a.port(1) + 1} is already in use`));
    expect(fs.existsSync(dir)).toBe(false);
    refused(await bihactl(addArgs([`--magic-string=${a.magic}`], a.port(1))), new RegExp(`port ${a.port(1)} is already in use`));
    expect(absentOrEmpty(target())).toBe(true);
    refused(await bihactl(addArgs([`--magic-string=${a.magic}`, `--biha-port=${a.port(1) + 1}`])), new RegExp(`biha port ${a.port(1) + 1} is already in use`));
    expect(absentOrEmpty(target())).toBe(true);
    expect(await members()).toEqual([1]);
  });

  it('refuses options that contradict each other or are not numbers', async () => {
    const m = `--magic-string=${a.magic}`;
    refused(await bihactl(addArgs([m, `--magic-file=${path.join(b.dir, 'magic')}`])), /exactly one of --magic-string, --magic-file or --use-leader/);
    refused(await bihactl(addArgs([m, `--use-leader=host=127.0.0.1 port=${a.port(1)}`])), /exactly one of/);
    refused(await bihactl(addArgs([])), /exactly one of --magic-string, --magic-file or --use-leader/);
    refused(await bihactl(addArgs([m, '--convert-standby', '--mode=referee'])), /--convert-standby and --mode=referee/);
    refused(await bihactl(addArgs([m, `--biha-port=${a.port(2)}`])), /--biha-port must differ from --port/);
    refused(await bihactl(addArgs([m], 'abc')), /--port must be an integer .* not "abc"/);
    refused(await bihactl(addArgs([m, '--mode=witness'])), /--mode must be regular, referee or referee_with_wal/);
    refused(await bihactl(addArgs([m, '--backup-method=rsync'])), /--backup-method rsync is not supported/);
    refused(await bihactl(addArgs([`--magic-file=${path.join(a.dir, 'no-such-file')}`])), /cannot read --magic-file/);
    expect(absentOrEmpty(target())).toBe(true);

    const dir = path.join(a.dir, 'contradict');
    refused(await bihactl(initArgs(dir, [`--biha-port=${FREE_PORT}`])), /--biha-port must differ from --port/);
    refused(await bihactl(initArgs(dir, []).map((x) => (x === '--nquorum=1' ? '--nquorum=0' : x))), /--nquorum must be an integer between 1 and \d+, not "0"/);
    refused(await bihactl(initArgs(dir, []).map((x) => (x === '--minnodes=1' ? '--minnodes=x' : x))), /--minnodes must be an integer/);
    refused(await bihactl(initArgs(dir, []).map((x) => x.replace(`--port=${FREE_PORT}`, '--port=54x'))), /--port must be an integer .* not "54x"/);
    refused(await bihactl(initArgs(dir, []).filter((x) => !x.startsWith('--pgdata'))), /--pgdata is required/);
    refused(await bihactl(initArgs(dir, ['--no-such-option'])), /unknown option '--no-such-option'/);
    expect(fs.existsSync(dir)).toBe(false);
    expect(await members()).toEqual([1]);
  });

  it('refuses --convert of a directory without PG_VERSION', async () => {
    const dir = nonEmptyDir(path.join(a.dir, 'no-pg-version'));
    refused(await bihactl(initArgs(dir, ['--convert'])), /--convert needs an existing data directory, and .* has no PG_VERSION/);
    expect(fs.readdirSync(dir)).toEqual(['keep.txt']);
    const missing = path.join(a.dir, 'missing');
    refused(await bihactl(initArgs(missing, ['--convert'])), /has no PG_VERSION/);
    expect(fs.existsSync(missing)).toBe(false);
  });

  it('refuses init without a password when BIHA_REPLICATION_PASSWORD is unset and stdin is not a terminal', async () => {
    const dir = path.join(a.dir, 'no-password');
    const r = await bihactlWithEnv(initArgs(dir, []), { unset: ['BIHA_REPLICATION_PASSWORD'] });
    refused(r, /no password for biha_replication_user.*BIHA_REPLICATION_PASSWORD/);
    expect(fs.existsSync(dir)).toBe(false);
    // An empty variable is no password either.
    refused(await bihactl(initArgs(dir, []), { BIHA_REPLICATION_PASSWORD: '' }), /no password for biha_replication_user/);
    expect(fs.existsSync(dir)).toBe(false);
  });

  it('refuses --port 65535 with its default --biha-port out of range in words, not a Node.js error', async () => {
    const dir = path.join(a.dir, 'port-65535');
    const line = refused(await bihactl(initArgs(dir, [], 65535)), /biha-port/);
    expect(line).not.toMatch(/ERR_SOCKET_BAD_PORT|options\.port/);
    expect(fs.existsSync(dir)).toBe(false);
  });

  it('refuses a --port whose default --http-port (--port + 2576) is out of range, asking for --http-port', async () => {
    const dir = path.join(a.dir, 'http-port-default');
    const line = refused(await bihactl(initArgs(dir, [], 63000)), /--http-port defaults to --port \+ 2576 = 65576, which is not a valid port: give --http-port explicitly/);
    expect(line).not.toMatch(/ERR_SOCKET_BAD_PORT|options\.port/);
    expect(fs.existsSync(dir)).toBe(false);
  });

  it('refuses --http-port equal to --port', async () => {
    const dir = path.join(a.dir, 'http-port');
    refused(await bihactl(initArgs(dir, [`--http-port=${FREE_PORT}`])), /--http-port/);
    expect(fs.existsSync(dir)).toBe(false);
  });

  it('systemd-unit prints a unit that runs this node\'s controller as the data directory\'s owner', async () => {
    const r = await bihactl(['systemd-unit', `--pgdata=${a.pgdata(1)}`]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^User=postgres$/m);
    expect(r.stdout).toMatch(/^Group=postgres$/m);
    expect(r.stdout).toContain(`controller --pgdata=${a.pgdata(1)}`);
    expect(r.stdout).toMatch(/^KillMode=process$/m);
    expect(r.stdout).not.toMatch(/\{\{/);
    const unit = path.join(a.dir, 'biha-node1.service');
    const w = await bihactl(['systemd-unit', `--pgdata=${a.pgdata(1)}`, `--output=${unit}`]);
    expect(w.code, w.stderr).toBe(0);
    expect(fs.readFileSync(unit, 'utf8')).toBe(r.stdout);
    refused(await bihactl(['systemd-unit', `--pgdata=${a.pgdata(1)}`, '--unit-name=bad name']), /not a valid systemd unit name/);
    refused(await bihactl(['systemd-unit', `--pgdata=${a.dir}`]), /is not a biha node/);
  });

  it('the PostgreSQL programs follow the data directory: --pg-bindir of another major is refused, a matching one is fixed in the unit', async () => {
    const none = { unset: ['BIHA_PG_BINDIR'] };
    const version = fs.readFileSync(path.join(a.pgdata(1), 'PG_VERSION'), 'utf8').trim();
    // Without a bin directory the unit fixes none: the controller follows PG_VERSION.
    const plain = await bihactlWithEnv(['systemd-unit', `--pgdata=${a.pgdata(1)}`], none);
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stdout).not.toMatch(/^Environment=BIHA_PG_BINDIR/m);
    // The bin directory of the running cluster's own version, given explicitly, is written into the unit.
    const own = `/usr/lib/postgresql/${version}/bin`;
    const fixed = await bihactlWithEnv(['systemd-unit', `--pgdata=${a.pgdata(1)}`, `--pg-bindir=${own}`], none);
    expect(fixed.code, fixed.stderr).toBe(0);
    expect(fixed.stdout).toMatch(new RegExp(`^Environment=BIHA_PG_BINDIR=${own}$`, 'm'));
    // A bin directory of another major: one line naming both versions and what to do.
    const other = Number(version) === 16 ? 17 : 16;
    const fake = path.join(a.dir, `fake-pg${other}`, 'bin');
    fs.mkdirSync(fake, { recursive: true });
    fs.writeFileSync(path.join(fake, 'pg_ctl'), `#!/bin/sh\necho "pg_ctl (PostgreSQL) ${other}.1"\n`, { mode: 0o755 });
    const wrong = await bihactlWithEnv(['systemd-unit', `--pgdata=${a.pgdata(1)}`, `--pg-bindir=${fake}`], none);
    refused(wrong, new RegExp(`BIHA_PG_BINDIR=${fake} holds PostgreSQL ${other}, but the data directory .* is PostgreSQL ${version} \\(point BIHA_PG_BINDIR \\(bihactl --pg-bindir\\) at the bin directory of PostgreSQL ${version}`));
    // The same through the environment.
    refused(await bihactlWithEnv(['systemd-unit', `--pgdata=${a.pgdata(1)}`], { env: { BIHA_PG_BINDIR: fake } }), /holds PostgreSQL \d+, but the data directory/);
  });

  it('the running cluster is untouched by all of the above: one member, LEADER_RW, writable', async () => {
    const s = await a.status(1);
    expect(s.status.map((x) => [x.id, x.state])).toEqual([[1, 'LEADER_RW']]);
    await a.sql(1, 'create table if not exists cli_probe (v int)');
    await a.sql(1, 'insert into cli_probe values (1)');
    expect(await a.sql<{ n: string }>(1, 'select count(*)::text as n from cli_probe')).toEqual([{ n: '1' }]);
  });
});
