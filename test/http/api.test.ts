// The remote management API's HTTP layer alone: startHttpServer with createApi over a command host
// that records what it is asked (the commands themselves run on real clusters in
// test/integration/rest-api.test.ts).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createApi, syncIds } from '../../src/controller/ops/api.js';
import type { ApiHost } from '../../src/controller/ops/api.js';
import { HttpAuth, credentialsPath, hashCredentials, removeCredentials, writeCredentials } from '../../src/controller/ops/httpauth.js';
import { startHttpServer } from '../../src/controller/ops/http.js';
import type { HttpServerHandle, HttpStatus } from '../../src/controller/ops/http.js';
import { Metrics } from '../../src/controller/ops/metrics.js';
import { BihaError } from '../../src/controller/errors.js';
import { FakeSource, leaderRW, silentLogger, streamingFollower } from './fixtures.js';

class RecordingHost implements ApiHost {
  calls: Array<{ fn: string; args: Record<string, unknown> }> = [];
  answers: Record<string, unknown> = {};
  constructor(private readonly source: FakeSource) {}
  get nodeId(): number {
    return this.source.nodeId;
  }
  status(): HttpStatus {
    return this.source.status();
  }
  run(fn: string, args: Record<string, unknown>): Promise<unknown> {
    this.calls.push({ fn, args });
    const a = this.answers[fn];
    if (a instanceof Error) return Promise.reject(a);
    return Promise.resolve(a ?? true);
  }
}

let server: HttpServerHandle;
let source: FakeSource;
let host: RecordingHost;
let base: string;
let pgdata: string;
const auth = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
const GOOD = auth('admin', 'secret-password');

beforeAll(async () => {
  pgdata = fs.mkdtempSync(path.join(os.tmpdir(), 'biha-api-'));
  fs.mkdirSync(path.join(pgdata, 'pg_biha'), { mode: 0o700 });
  source = new FakeSource(leaderRW());
  host = new RecordingHost(source);
  server = await startHttpServer({
    host: '127.0.0.1',
    port: 0,
    logger: silentLogger,
    source,
    metrics: new Metrics({ node_id: '1', node_name: '', region: '' }),
    api: createApi({ host, auth: new HttpAuth(credentialsPath(pgdata)), log: silentLogger, credentialsHint: 'bihactl set-http-credentials' }),
  });
  base = `http://127.0.0.1:${server.port}`;
});

afterAll(async () => {
  await server.close();
  fs.rmSync(pgdata, { recursive: true, force: true });
});

beforeEach(async () => {
  source.current = leaderRW();
  host.calls = [];
  host.answers = {};
  await writeCredentials(pgdata, await hashCredentials('admin', 'secret-password'));
});

async function call(method: string, p: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ code: number; body: Record<string, unknown>; headers: Headers }> {
  const r = await fetch(base + p, {
    method,
    headers: { ...headers, ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
  });
  const text = await r.text();
  return { code: r.status, body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>), headers: r.headers };
}

describe('authentication', () => {
  it('answers 401 with WWW-Authenticate without or with wrong credentials, and runs nothing', async () => {
    const none = await call('POST', '/switchover', { candidate: 2 });
    expect(none.code).toBe(401);
    expect(none.headers.get('www-authenticate')).toBe('Basic realm="biha"');
    expect(none.body['code']).toBe('unauthorized');
    const wrong = await call('POST', '/switchover', { candidate: 2 }, { Authorization: auth('admin', 'nope-nope') });
    expect(wrong.code).toBe(401);
    expect(host.calls).toEqual([]);
  });
  it('answers 403 on every unsafe method when no credentials are configured', async () => {
    removeCredentials(pgdata);
    for (const [m, p] of [['POST', '/switchover'], ['POST', '/restart'], ['PATCH', '/config'], ['POST', '/reinitialize'], ['POST', '/failover']] as const) {
      const r = await call(m, p, {}, { Authorization: GOOD });
      expect(r.code).toBe(403);
      expect(String(r.body['error'])).toMatch(/^remote management is off: set credentials with bihactl set-http-credentials/);
    }
    expect(host.calls).toEqual([]);
  });
  it('keeps GET endpoints open', async () => {
    host.answers['config'] = { heartbeat_max_lost: 10 };
    const r = await call('GET', '/config');
    expect(r.code).toBe(200);
    expect(r.headers.get('content-type')).toBe('application/json');
    expect(r.body).toEqual({ heartbeat_max_lost: 10 });
  });
});

describe('requests', () => {
  it('runs a switchover through set_leader', async () => {
    const r = await call('POST', '/switchover', { candidate: 2 }, { Authorization: GOOD });
    expect(r.code).toBe(200);
    expect(r.body).toEqual({ message: 'switched over to node 2', leader: 2 });
    expect(host.calls).toEqual([{ fn: 'set_leader', args: { id: 2 } }]);
  });
  it('answers 503 when set_leader returns false, 412 for a wrong leader, 400 without a candidate', async () => {
    host.answers['set_leader'] = false;
    expect((await call('POST', '/switchover', { candidate: 2 }, { Authorization: GOOD })).code).toBe(503);
    const wrong = await call('POST', '/switchover', { leader: 3, candidate: 2 }, { Authorization: GOOD });
    expect(wrong.code).toBe(412);
    expect(wrong.body['error']).toBe('node 3 is not the leader (the leader is node 1)');
    const missing = await call('POST', '/switchover', {}, { Authorization: GOOD });
    expect(missing.code).toBe(400);
    expect(missing.body['error']).toMatch(/"candidate" is required/);
  });
  it('schedules a switchover in the future with 202 and refuses a second one', async () => {
    const at = new Date(Date.now() + 3600_000).toISOString();
    const r = await call('POST', '/switchover', { candidate: 2, scheduled_at: at }, { Authorization: GOOD });
    expect(r.code).toBe(202);
    expect(r.body['scheduled_at']).toBe(at);
    expect((await call('POST', '/switchover', { candidate: 3, scheduled_at: at }, { Authorization: GOOD })).code).toBe(409);
    expect((await call('POST', '/switchover', { candidate: 2, scheduled_at: 'tomorrow' }, { Authorization: GOOD })).code).toBe(400);
    expect(host.calls).toEqual([]);
  });
  it('answers /failover without a leader with 503', async () => {
    source.current = { ...leaderRW(), status: leaderRW().status.map((r) => ({ ...r, leader_id: null })) };
    const r = await call('POST', '/failover', { candidate: 2 }, { Authorization: GOOD });
    expect(r.code).toBe(503);
    expect(r.body['error']).toMatch(/election is in progress/);
  });
  it('maps command errors to status codes with their BihaError code', async () => {
    host.answers['restart'] = new BihaError('is_leader', 'node 1 is the leader');
    const r = await call('POST', '/restart', {}, { Authorization: GOOD });
    expect(r).toMatchObject({ code: 409, body: { error: 'node 1 is the leader', code: 'is_leader' } });
    host.answers['set_config'] = new BihaError('bad_args', 'heartbeat_max_lost must be an integer between 2 and 1000, not 1');
    const bad = await call('PATCH', '/config', { heartbeat_max_lost: 1 }, { Authorization: GOOD });
    expect(bad.code).toBe(400);
    expect(bad.body['error']).toMatch(/^heartbeat_max_lost/);
  });
  it('refuses invalid JSON (400), big bodies (413) and wrong methods (405 with Allow)', async () => {
    const j = await call('POST', '/switchover', '{candidate: 2', { Authorization: GOOD });
    expect(j.code).toBe(400);
    expect(j.body['code']).toBe('bad_json');
    const big = await call('POST', '/switchover', JSON.stringify({ candidate: 2, pad: 'x'.repeat(70_000) }), { Authorization: GOOD });
    expect(big.code).toBe(413);
    const m = await call('DELETE', '/config');
    expect(m.code).toBe(405);
    expect(m.headers.get('allow')).toBe('GET, PATCH, HEAD, OPTIONS');
    const g = await call('GET', '/switchover');
    expect(g.code).toBe(405);
    expect(g.headers.get('allow')).toBe('POST, OPTIONS');
    expect(host.calls).toEqual([]);
  });
  it('answers /sync and /async from the leader\'s synchronous_standby_names', async () => {
    source.current = streamingFollower();
    const me = source.current.nodeId;
    host.answers['sync_standby_names'] = `ANY 1 (biha_node_${me}, biha_node_9)`;
    expect((await call('GET', '/sync')).code).toBe(200);
    expect((await call('GET', '/async')).code).toBe(503);
    host.answers['sync_standby_names'] = '';
    expect((await call('GET', '/sync')).code).toBe(503);
    expect((await call('GET', '/async')).code).toBe(200);
    source.current = leaderRW();
    expect((await call('GET', '/async')).code).toBe(503);
  });
  it('reads node ids out of synchronous_standby_names', () => {
    expect([...syncIds('ANY 2 (biha_node_2, "biha_node_13")')]).toEqual([2, 13]);
    expect(syncIds('').size).toBe(0);
  });
});
