// What bihactl prints when it fails, through the real command line: the option parser's errors in
// bihactl's own one-line format with the usage exit code, the same failures as one JSON document
// with --json, and the checks of remote mode that refuse before anything is sent.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bihactl, ensureBuilt } from '../helpers/cluster.js';
import type { CliResult } from '../helpers/cluster.js';

/** In this suite's port range, with nothing listening: connections are refused. */
const DEAD_URL = 'http://127.0.0.1:25998';
let dir = '';

beforeAll(() => {
  ensureBuilt();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'biha-cli-output-'));
}, 180_000);
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

/** One `bihactl: ...` line on stderr, nothing on stdout, this exit code. */
function oneLine(r: CliResult, exit: number, re: RegExp): void {
  expect(r.code, r.stderr).toBe(exit);
  expect(r.stdout).toBe('');
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^bihactl: \S/);
  expect(lines[0]).toMatch(re);
}

/** With --json: `{"error", "code"}` on stdout, nothing on stderr, this exit code. */
function jsonError(r: CliResult, exit: number, code: string, re: RegExp): void {
  expect(r.code, r.stdout + r.stderr).toBe(exit);
  expect(r.stderr).toBe('');
  const doc = JSON.parse(r.stdout) as { error: unknown; code: unknown };
  expect(Object.keys(doc).sort()).toEqual(['code', 'error']);
  expect(doc.code).toBe(code);
  expect(typeof doc.error).toBe('string');
  expect(doc.error).not.toMatch(/\n/);
  expect(doc.error).toMatch(re);
}

describe('option parser errors', () => {
  it('print one bihactl: line naming the command\'s help, with exit code 2', async () => {
    oneLine(await bihactl(['status', '--no-such-option']), 2, /^bihactl: unknown option '--no-such-option' \(see bihactl status --help\)$/);
    oneLine(await bihactl(['status', '--pgdata']), 2, /option '--pgdata <dir>' argument missing/);
    oneLine(await bihactl(['no-such-command']), 2, /unknown command 'no-such-command'/);
    oneLine(await bihactl(['remove-node', 'extra', '--id=2']), 2, /too many arguments.*see bihactl remove-node --help/);
    oneLine(await bihactl(['switchover', '--nope']), 2, /see bihactl set-leader --help/);
  });

  it('with --json are one JSON error document with the code usage', async () => {
    jsonError(await bihactl(['status', '--json', '--no-such-option']), 2, 'usage', /^unknown option '--no-such-option'/);
    jsonError(await bihactl(['config', '--json', '--url']), 2, 'usage', /argument missing/);
  });

  it('help and version still succeed', async () => {
    const h = await bihactl(['config', '--help']);
    expect(h.code).toBe(0);
    expect(h.stdout).toMatch(/--cluster-file <file>/);
    expect(h.stdout).toMatch(/--http-user <name>/);
  });
});

describe('command errors', () => {
  it('a failing command prints one line, or with --json one document, with the exit code of its error code', async () => {
    const none = path.join(dir, 'no-node');
    oneLine(await bihactl(['status', `--pgdata=${none}`]), 2, /is not a biha node/);
    jsonError(await bihactl(['status', `--pgdata=${none}`, '--json']), 2, 'not_a_node', /is not a biha node/);
    jsonError(await bihactl(['set-leader', 'x', `--pgdata=${none}`, '--json']), 2, 'bad_args', /--id must be an integer/);
    jsonError(await bihactl(['config', 'set', 'quorum=2', `--pgdata=${none}`, '--json']), 2, 'bad_args', /unknown setting "quorum"/);
    jsonError(await bihactl(['service-mode', 'maybe', '--json']), 2, 'bad_args', /service-mode takes on or off/);
    jsonError(await bihactl(['service-mode', 'on', '--off', '--json']), 2, 'bad_args', /give exactly one of --on and --off/);
  });
});

describe('remote mode checks', () => {
  it('refuses bad URLs, --pgdata with --url, and remote-only commands without --url', async () => {
    jsonError(await bihactl(['status', '--url=db1:8008', '--json']), 2, 'bad_url', /must start with http:\/\/ or https:\/\//);
    jsonError(await bihactl(['status', `--url=${DEAD_URL}`, `--pgdata=${dir}`, '--json']), 2, 'bad_args', /not both/);
    jsonError(await bihactl(['failover', '--candidate=2', '--json']), 2, 'bad_args', /failover works through a node's HTTP API: give --url/);
    jsonError(await bihactl(['set-leader', '--cancel', '--json']), 2, 'bad_args', /set-leader --cancel works through a node's HTTP API/);
    jsonError(await bihactl(['set-leader', '2', '--cancel', `--url=${DEAD_URL}`, '--json']), 2, 'bad_args', /--cancel takes no node id/);
    jsonError(await bihactl(['history', '--json']), 2, 'bad_args', /give --pgdata=DIR \(a node on this host\) or --url=http:\/\/HOST:PORT/);
    jsonError(await bihactl(['restart', `--url=${DEAD_URL}`, `--url=${DEAD_URL}`, '--force', '--json']), 2, 'bad_args', /restart acts on one node: give exactly one --url/);
    const f = path.join(dir, 'cluster.yaml');
    fs.writeFileSync(f, 'urls:\n  - http://db1:8008\n');
    jsonError(await bihactl(['status', `--cluster-file=${f}`, '--json']), 2, 'bad_cluster_file', /is not JSON/);
  });

  it('a disruptive command without a terminal and without --force is refused before anything is sent', async () => {
    for (const args of [['set-leader', '2'], ['failover', '--candidate=2'], ['restart'], ['reinit'], ['service-mode', 'on'], ['config', 'set', 'service_mode=on']]) {
      const r = await bihactl([...args, `--url=${DEAD_URL}`]);
      // Refused at the confirmation: had it sent the request, the dead URL would have made it exit 4.
      oneLine(r, 2, /refusing to .* without a confirmation, and there is no terminal to ask on \(add --force to run it without asking\)/);
    }
  });

  it('--http-user without BIHA_HTTP_PASSWORD and without a terminal is one line, before any request', async () => {
    const r = await bihactl(['set-leader', '2', `--url=${DEAD_URL}`, '--force', '--http-user=admin'], { BIHA_HTTP_PASSWORD: '' });
    oneLine(r, 2, /no password for --http-user=admin \(set BIHA_HTTP_PASSWORD, or run on a terminal to type it\)/);
  });

  it('no node answering is exit 4, naming every URL tried', async () => {
    const other = 'http://127.0.0.1:25997';
    const r = await bihactl(['status', `--url=${DEAD_URL}`, `--url=${other}`, '--json']);
    jsonError(r, 4, 'unreachable', /no node answered: http:\/\/127\.0\.0\.1:25998 \(ECONNREFUSED\); http:\/\/127\.0\.0\.1:25997 \(ECONNREFUSED\)/);
    oneLine(await bihactl(['set-leader', '2', `--url=${DEAD_URL}`, '--force']), 4, /no node answered/);
  });
});
