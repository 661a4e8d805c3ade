// bihactl's remote mode, the parts that need no node: URLs and cluster files, the error (and exit
// code) each kind of refusal turns into, KEY=VALUE settings, and the status table drawn from a
// node's /cluster document, which must be the one the local status draws from its status file.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { StatusFile } from '../../src/controller/bridge/sqlbridge.js';
import { clusterDoc } from '../../src/controller/ops/http.js';
import { parseAssignments, renderConfig } from '../../src/bihactl/config.js';
import { exitCodeOf } from '../../src/bihactl/exitcodes.js';
import { clusterDocToView, renderHistory } from '../../src/bihactl/remotecmds.js';
import { nodeUrls, parseClusterFile, parseNodeUrl, refusal } from '../../src/bihactl/remote.js';
import { buildStatusView, renderStatus } from '../../src/bihactl/statusview.js';
import { isoTime } from '../../src/bihactl/util.js';

function statusFile(): StatusFile {
  return {
    version: 1,
    generatedAtMs: Date.UTC(2026, 11, 3, 12, 0, 0),
    nodeId: 2,
    config: { id: 2, term: 4, nquorum: 2, minnodes: 2, heartbeat_send_period: 1000, heartbeat_max_lost: 10, no_wal_on_follower: 20000, sync_standbys: 1, service_mode: false, mode: 'regular', can_be_leader: true, can_vote: true, learner: false, priority: 0 },
    status: [
      { id: 1, leader_id: 1, term: 4, online: true, state: 'LEADER_RW', last_known_state: 'LEADER_RW', since_last_hb_ms: 180, mode: 'regular' },
      { id: 2, leader_id: 1, term: 4, online: true, state: 'FOLLOWER', last_known_state: null, since_last_hb_ms: null, mode: 'regular' },
      { id: 3, leader_id: 1, term: 4, online: false, state: 'FOLLOWER', last_known_state: 'FOLLOWER', since_last_hb_ms: 9000, mode: 'referee' },
    ],
    nodes: [
      { id: 1, host: '10.0.0.1', port: 5432, state: 'ESTABLISHED', since_conn_start_ms: 1000, conn_count: 1 },
      { id: 3, host: '10.0.0.3', port: 0, state: 'INIT', since_conn_start_ms: null, conn_count: 0 },
    ],
    error: { type: 'NO_ERROR', details: null, begin_lsn: null, end_lsn: null, current_tli: null, next_tli: null, replay_lsn: null },
    monitoring: { pg_state: 'recovery', followers: [] },
    extra: { tli: 3, lsn: '0/5000148', lag_bytes: 0 },
  };
}

describe('node URLs', () => {
  it('keeps the scheme, host and port; refuses anything else with a line that says what to write', () => {
    expect(parseNodeUrl('http://db1:8008', '--url')).toBe('http://db1:8008');
    expect(parseNodeUrl(' https://10.0.0.1:8443/ ', '--url')).toBe('https://10.0.0.1:8443');
    expect(parseNodeUrl('http://[::1]:25500', '--url')).toBe('http://[::1]:25500');
    expect(() => parseNodeUrl('db1:8008', '--url')).toThrow(/must start with http:\/\/ or https:\/\//);
    expect(() => parseNodeUrl('nonsense', '--url')).toThrow(/is not a URL/);
    expect(() => parseNodeUrl('http://admin:pw@db1:8008', '--url')).toThrow(/carries credentials/);
    expect(() => parseNodeUrl('http://db1:8008/cluster', '--url')).toThrow(/only a scheme, host and port/);
    for (const bad of ['db1:8008', 'http://a:b@c', 'http://db1/x']) {
      let err: unknown = null;
      try {
        parseNodeUrl(bad, '--url');
      } catch (e) {
        err = e;
      }
      expect(err, bad).not.toBeNull();
      expect(exitCodeOf(err)).toBe(2);
    }
  });

  it('reads a cluster file: a list or {"urls": [...]}; refuses others', async () => {
    expect(parseClusterFile('["http://a:1", "http://b:2"]', 'f')).toEqual(['http://a:1', 'http://b:2']);
    expect(parseClusterFile('{"urls": ["http://a:1"]}', 'f')).toEqual(['http://a:1']);
    expect(() => parseClusterFile('urls: [x]', 'f')).toThrow(/is not JSON/);
    expect(() => parseClusterFile('{"nodes": ["http://a:1"]}', 'f')).toThrow(/does not name the nodes' URLs/);
    expect(() => parseClusterFile('[]', 'f')).toThrow(/names no node/);
    expect(() => parseClusterFile('["ftp://a"]', 'f')).toThrow(/must start with http/);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'biha-remote-'));
    try {
      const f = path.join(dir, 'cluster.json');
      fs.writeFileSync(f, JSON.stringify({ urls: ['http://db1:8008', 'http://db2:8008'] }));
      expect(await nodeUrls({ clusterFile: f })).toEqual(['http://db1:8008', 'http://db2:8008']);
      await expect(nodeUrls({ clusterFile: path.join(dir, 'none.json') })).rejects.toThrow(/cannot read --cluster-file .*ENOENT/);
      await expect(nodeUrls({ clusterFile: f, url: ['http://x:1'] })).rejects.toThrow(/not both/);
      await expect(nodeUrls({})).rejects.toThrow(/give --url/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('--scheduled-at', () => {
  it('takes an ISO-8601 date and time, sent in UTC', () => {
    expect(isoTime('scheduled-at', '2030-01-31T22:00:00Z')).toBe('2030-01-31T22:00:00.000Z');
    expect(isoTime('scheduled-at', '2030-01-31T23:00:00+01:00')).toBe('2030-01-31T22:00:00.000Z');
    expect(() => isoTime('scheduled-at', 'tomorrow')).toThrow(/--scheduled-at must be an ISO-8601 time such as 2030-01-31T22:00:00Z, not "tomorrow"/);
    expect(() => isoTime('scheduled-at', '2030-01-31')).toThrow(/ISO-8601 time/);
    expect(() => isoTime('scheduled-at', '2030-13-45T99:00')).toThrow(/ISO-8601 time/);
  });
});

describe('refusals', () => {
  const code = (status: number, body: unknown, user: string | null = null): { code: string; exit: number; msg: string } => {
    const e = refusal('http://db1:8008', 'POST', '/switchover', status, body, user);
    return { code: e.code, exit: exitCodeOf(e), msg: e.message };
  };

  it('401 and 403 are denials (exit 6), whatever code the body carries', () => {
    expect(code(401, null)).toMatchObject({ code: 'unauthorized', exit: 6 });
    expect(code(401, null).msg).toMatch(/needs HTTP credentials/);
    expect(code(401, { error: 'x', code: 'bad_args' }, 'admin')).toMatchObject({ code: 'unauthorized', exit: 6 });
    expect(code(401, null, 'admin').msg).toMatch(/refused the credentials of --http-user=admin/);
    const off = code(403, { error: 'remote management is off: set credentials with bihactl set-http-credentials', code: 'whatever' });
    expect(off).toMatchObject({ code: 'remote_management_off', exit: 6 });
    expect(off.msg).toMatch(/remote management is off/);
  });

  it('a known code in the body decides; otherwise the HTTP status does', () => {
    expect(code(503, { error: 'did not complete', code: 'switchover_failed' })).toMatchObject({ code: 'switchover_failed', exit: 1 });
    expect(code(400, { error: 'x', code: 'not_eligible' })).toMatchObject({ code: 'not_eligible', exit: 2 });
    expect(code(412, { error: 'node 1 is not the leader', code: 'some_new_code' })).toMatchObject({ code: 'leader_mismatch', exit: 3 });
    expect(code(409, { error: 'x' })).toMatchObject({ code: 'conflict', exit: 3 });
    expect(code(400, { error: 'x' })).toMatchObject({ code: 'bad_args', exit: 2 });
    expect(code(503, null)).toMatchObject({ code: 'unavailable', exit: 3 });
    expect(code(500, 'oops')).toMatchObject({ code: 'http_error', exit: 1 });
    expect(code(405, null).msg).toMatch(/does not serve POST \/switchover \(HTTP 405\)/);
    // A 404 that is the node's own answer (its code says so) is not a missing route.
    expect(code(404, { error: 'no switchover is scheduled on this node', code: 'not_scheduled' })).toEqual({ code: 'not_scheduled', exit: 3, msg: 'http://db1:8008: no switchover is scheduled on this node' });
    expect(code(409, { error: 'node 1 is the leader' }).msg).toBe('http://db1:8008: node 1 is the leader');
  });
});

describe('config set KEY=VALUE', () => {
  it('types the values by their SQL parameter', () => {
    expect(parseAssignments(['heartbeat_max_lost=20', 'service_mode=on', 'nquorum=2'])).toEqual({ heartbeat_max_lost: 20, service_mode: true, nquorum: 2 });
    expect(parseAssignments(['service_mode=false'])).toEqual({ service_mode: false });
  });

  it('refuses unknown keys, bad values, repeats and a missing =', () => {
    expect(() => parseAssignments([])).toThrow(/at least one KEY=VALUE/);
    expect(() => parseAssignments(['heartbeat_max_lost'])).toThrow(/is not KEY=VALUE/);
    expect(() => parseAssignments(['=3'])).toThrow(/is not KEY=VALUE/);
    expect(() => parseAssignments(['quorum=3'])).toThrow(/unknown setting "quorum"/);
    expect(() => parseAssignments(['nquorum=-1'])).toThrow(/nquorum must be a non-negative integer, not "-1"/);
    expect(() => parseAssignments(['nquorum=2.5'])).toThrow(/non-negative integer/);
    expect(() => parseAssignments(['service_mode=maybe'])).toThrow(/service_mode must be true or false/);
    expect(() => parseAssignments(['nquorum=2', 'nquorum=3'])).toThrow(/given twice/);
  });

  it('prints one aligned key = value line per setting', () => {
    expect(renderConfig({ nquorum: 2, service_mode: false })).toBe('nquorum      = 2\nservice_mode = false');
  });
});

describe('remote status', () => {
  it('draws from /cluster the table the local status draws from the status file', () => {
    const st = statusFile();
    const local = buildStatusView(st, 'c0ffee', [
      { id: 1, host: '10.0.0.1', port: 5432, mode: 'regular' },
      { id: 3, host: '10.0.0.3', port: 0, mode: 'referee' },
    ]);
    const doc = JSON.parse(JSON.stringify({ ...clusterDoc(st), cluster_id: 'c0ffee' })) as unknown;
    const remote = clusterDocToView(doc, 'http://db2:8010');
    expect(remote.members).toEqual(local.members);
    expect(remote.leader_id).toBe(1);
    expect(renderStatus(remote)).toBe(renderStatus(local));
  });

  it('names the URL when the node sends no cluster id, and refuses a document that is not /cluster', () => {
    const doc = JSON.parse(JSON.stringify(clusterDoc(statusFile()))) as unknown;
    expect(renderStatus(clusterDocToView(doc, 'http://db2:8010'))).toMatch(/^\+ Cluster http:\/\/db2:8010 \(seen from node 2\): leader 1, term 4/);
    expect(() => clusterDocToView({ role: 'primary' }, 'http://db2:8010')).toThrow(/answered GET \/cluster with a document bihactl does not understand/);
  });
});

describe('history table', () => {
  it('one line per timeline switch, - for what the cluster does not know', () => {
    expect(renderHistory([])).toMatch(/no timeline switch/);
    const t = renderHistory([
      { timeline: 2, switch_lsn: '0/3000060', time: '2026-12-03T15:02:11.000Z', new_leader: 2, reason: 'switchover' },
      { timeline: 3, switch_lsn: '0/5000000', time: null, new_leader: null, reason: null },
    ]).split('\n');
    expect(t[0]).toMatch(/^Timeline\s+Switch LSN\s+Time\s+New leader\s+Reason$/);
    expect(t[1]).toMatch(/^2\s+0\/3000060\s+2026-12-03T15:02:11.000Z\s+2\s+switchover$/);
    expect(t[2]).toMatch(/^3\s+0\/5000000\s+-\s+-\s+-$/);
  });
});
