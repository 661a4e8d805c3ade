// The HTTP layer alone: startHttpServer fed with hand-made StatusFile documents, on an ephemeral
// loopback port.
import * as net from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { HTTP_PATHS, startHttpServer } from '../../src/controller/ops/http.js';
import { parseLag } from '../../src/controller/ops/lag.js';
import type { HttpServerHandle, HttpStatus } from '../../src/controller/ops/http.js';
import { Metrics } from '../../src/controller/ops/metrics.js';
import {
  FakeSource,
  candidate,
  detachedFollower,
  leaderNotPromoted,
  leaderRO,
  leaderRW,
  makeStatus,
  nodeError,
  pgStopped,
  silentLogger,
  streamingFollower,
} from './fixtures.js';

let server: HttpServerHandle;
let source: FakeSource;
let base: string;

beforeAll(async () => {
  source = new FakeSource(leaderRW());
  server = await startHttpServer({
    host: '127.0.0.1',
    port: 0,
    logger: silentLogger,
    source,
    metrics: new Metrics({ node_id: '1', node_name: 'alpha', region: 'eu-west' }),
  });
  base = `http://127.0.0.1:${server.port}`;
});

afterAll(async () => {
  await server.close();
});

beforeEach(() => {
  source.current = leaderRW();
  source.loopAge = null;
  source.broken = null;
});

async function get(path: string, init?: RequestInit): Promise<{ code: number; body: Record<string, unknown>; headers: Headers }> {
  const r = await fetch(base + path, init);
  const text = await r.text();
  return { code: r.status, body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>), headers: r.headers };
}

/** Sends raw bytes and returns the status code of the answer and its body. */
function raw(request: string | Buffer): Promise<{ code: number; body: string }> {
  return new Promise((resolve, reject) => {
    const s = net.connect(server.port, '127.0.0.1');
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', reject);
    s.on('close', () => {
      const text = Buffer.concat(chunks).toString('latin1');
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
      resolve({ code: m ? Number(m[1]) : 0, body: text.slice(text.indexOf('\r\n\r\n') + 4) });
    });
    s.end(request);
  });
}

const CHECKS = ['/primary', '/replica', '/read-only', '/health', '/liveness', '/readiness'] as const;
type Expect = Record<(typeof CHECKS)[number], 200 | 503>;

const MATRIX: Array<[string, () => HttpStatus, Expect]> = [
  ['leader RW', leaderRW, { '/primary': 200, '/replica': 503, '/read-only': 200, '/health': 200, '/liveness': 200, '/readiness': 200 }],
  ['leader RO', leaderRO, { '/primary': 503, '/replica': 503, '/read-only': 200, '/health': 200, '/liveness': 200, '/readiness': 503 }],
  ['leader RW, not promoted yet', leaderNotPromoted, { '/primary': 503, '/replica': 503, '/read-only': 200, '/health': 200, '/liveness': 200, '/readiness': 503 }],
  ['streaming follower', () => streamingFollower(), { '/primary': 503, '/replica': 200, '/read-only': 200, '/health': 200, '/liveness': 200, '/readiness': 200 }],
  ['detached follower', detachedFollower, { '/primary': 503, '/replica': 503, '/read-only': 503, '/health': 200, '/liveness': 200, '/readiness': 503 }],
  ['NODE_ERROR', nodeError, { '/primary': 503, '/replica': 503, '/read-only': 503, '/health': 200, '/liveness': 200, '/readiness': 503 }],
  ['PostgreSQL stopped', pgStopped, { '/primary': 503, '/replica': 503, '/read-only': 503, '/health': 503, '/liveness': 200, '/readiness': 503 }],
  ['candidate', candidate, { '/primary': 503, '/replica': 503, '/read-only': 503, '/health': 200, '/liveness': 200, '/readiness': 503 }],
];

describe('health checks', () => {
  for (const [name, make, expected] of MATRIX) {
    it(`answers every check for: ${name}`, async () => {
      source.current = make();
      const st = source.current;
      const self = st.status.find((r) => r.id === st.nodeId)!;
      for (const path of CHECKS) {
        const { code, body, headers } = await get(path);
        expect({ path, code }).toEqual({ path, code: expected[path] });
        expect(headers.get('content-type')).toBe('application/json');
        expect(body).toMatchObject({ node_id: st.nodeId, state: self.state, term: st.config.term, ok: code === 200 });
        expect(typeof body['role']).toBe('string');
        if (code === 503) expect(typeof body['reason']).toBe('string');
        else expect(body['reason']).toBeUndefined();
      }
    });
  }

  it('treats /leader, /master, /read-write and / as /primary', async () => {
    for (const make of [leaderRW, leaderRO, () => streamingFollower()]) {
      source.current = make();
      const want = (await get('/primary')).code;
      for (const alias of ['/leader', '/master', '/read-write', '/', '/primary/']) expect({ alias, code: (await get(alias)).code }).toEqual({ alias, code: want });
    }
  });

  it('names the Patroni role and the biha state in the body', async () => {
    source.current = leaderRW();
    expect((await get('/primary')).body).toMatchObject({ role: 'primary', state: 'LEADER_RW', term: 7, leader_id: 1, lag_bytes: 0, error: 'NO_ERROR' });
    source.current = streamingFollower();
    expect((await get('/replica')).body).toMatchObject({ role: 'replica', state: 'FOLLOWER', upstream: 1, lag_bytes: 1000, lag_ms: 40, lsn: '0/3000000' });
    source.current = nodeError();
    const b = (await get('/replica')).body;
    expect(b).toMatchObject({ state: 'NODE_ERROR', error: 'TIMELINE_DIVERGED', ok: false });
  });

  it("carries Patroni's server_version, timeline and xlog", async () => {
    source.current = { ...leaderRW(), extra: { ...leaderRW().extra, server_version: 150004, tli: 3, lsn: '0/3000060' } };
    expect((await get('/primary')).body).toMatchObject({ role: 'primary', server_version: 150004, timeline: 3, xlog: { location: '0/3000060' } });
    source.current = streamingFollower({ server_version: 150004, receive_lsn: '0/3000100', replay_lsn: '0/3000000' });
    expect((await get('/replica')).body).toMatchObject({ role: 'replica', server_version: 150004, xlog: { received_location: '0/3000100', replayed_location: '0/3000000' } });
    source.current = pgStopped();
    expect((await get('/health')).body).toMatchObject({ server_version: null, xlog: null });
  });

  it('tells a detached follower why it is not a replica', async () => {
    source.current = detachedFollower();
    const { body } = await get('/replica');
    expect(body['reason']).toMatch(/detached/);
  });

  it('does not call a follower streaming when the controller gives no upstream', async () => {
    source.current = makeStatus({ nodeId: 2, state: 'FOLLOWER', pgState: 'recovery', extra: null });
    expect((await get('/replica')).code).toBe(503);
    expect((await get('/health')).code).toBe(200);
    expect((await get('/replica')).body['role']).toBe('replica');
  });

  it('answers 503 on every check when the status is not available', async () => {
    source.broken = new Error('not started yet');
    for (const path of CHECKS) {
      const { code, body } = await get(path);
      expect({ path, code }).toEqual({ path, code: 503 });
      expect(body).toMatchObject({ node_id: 1, state: 'UNKNOWN', ok: false });
    }
    expect((await get('/cluster')).code).toBe(503);
  });
});

describe('liveness', () => {
  it('is 200 while the loop ran recently, 503 once it is older than the heartbeat timeout', async () => {
    source.loopAge = 15;
    expect((await get('/liveness')).body).toMatchObject({ ok: true, loop_age_ms: 15 });
    // leader: heartbeat_send_period 1000 ms × heartbeat_max_lost 10
    source.loopAge = 10_001;
    expect((await get('/liveness')).code).toBe(503);
    // a follower gets twice as long
    source.current = streamingFollower();
    expect((await get('/liveness')).code).toBe(200);
    source.loopAge = 20_001;
    const { code, body } = await get('/liveness');
    expect(code).toBe(503);
    expect(body['reason']).toMatch(/loop/);
  });

  it('is 503 when asking for the loop age fails', async () => {
    source.loopAge = () => {
      throw new Error('gone');
    };
    expect((await get('/liveness')).code).toBe(503);
  });
});

describe('replica lag limit', () => {
  it('parses bytes and PostgreSQL size units', () => {
    expect(parseLag('0')).toBe(0);
    expect(parseLag('1048576')).toBe(1048576);
    expect(parseLag('16kB')).toBe(16384);
    expect(parseLag('1024kB')).toBe(1048576);
    expect(parseLag('1MB')).toBe(1048576);
    expect(parseLag('1mb')).toBe(1048576);
    expect(parseLag('1.5MB')).toBe(1572864);
    expect(parseLag(' 16 kB ')).toBe(16384);
    expect(parseLag('1GB')).toBe(1024 ** 3);
    expect(parseLag('2TB')).toBe(2 * 1024 ** 4);
    expect(parseLag('100B')).toBe(100);
    for (const bad of ['', ' ', 'abc', '-1', '+1', '1e3', '1.5', '1XB', 'MB', '1 M B', '0x10', '99999999999999999999TB', 'NaN', 'Infinity'])
      expect({ bad, v: parseLag(bad) }).toEqual({ bad, v: null });
  });

  it('compares the limit with the follower lag', async () => {
    source.current = streamingFollower(); // 1000 bytes behind
    expect((await get('/replica?lag=1000')).code).toBe(200);
    expect((await get('/replica?lag=1kB')).code).toBe(200);
    expect((await get('/replica?lag=16kB')).code).toBe(200);
    expect((await get('/replica?lag=1MB')).code).toBe(200);
    const over = await get('/replica?lag=999');
    expect(over.code).toBe(503);
    expect(over.body).toMatchObject({ ok: false, max_lag_bytes: 999, lag_bytes: 1000 });
    expect((await get('/read-only?lag=999')).code).toBe(503);
    expect((await get('/read-only?lag=1000')).code).toBe(200);
    source.current = streamingFollower({ lag_bytes: 2 * 1024 * 1024 });
    expect((await get('/replica?lag=1MB')).code).toBe(503);
    expect((await get('/replica?lag=2MB')).code).toBe(200);
    expect((await get('/replica')).code).toBe(200);
  });

  it('works out the lag from the leader WAL position when the controller gives that instead', async () => {
    source.current = streamingFollower({ lag_bytes: undefined, leader_lsn: '0/3000400', lsn: '0/3000000' });
    expect((await get('/replica')).body['lag_bytes']).toBe(1024);
    expect((await get('/replica?lag=1024')).code).toBe(200);
    expect((await get('/replica?lag=1023')).code).toBe(503);
  });

  it('refuses a follower whose lag is unknown when a limit is asked for', async () => {
    source.current = streamingFollower({ lag_bytes: null, lag_ms: null });
    expect((await get('/replica')).code).toBe(200);
    const { code, body } = await get('/replica?lag=1GB');
    expect(code).toBe(503);
    expect(body['reason']).toBe('lag unknown');
  });

  it('counts the leader as not lagging on /read-only', async () => {
    expect((await get('/read-only?lag=0')).code).toBe(200);
  });

  it('answers 400 to a lag it cannot read, and ignores lag elsewhere', async () => {
    source.current = streamingFollower();
    for (const q of ['lag=abc', 'lag=', 'lag', 'lag=-1', 'lag=1e3', 'lag=%zz', 'lag=1%00MB', `lag=${'9'.repeat(5000)}`]) {
      const { code, body } = await get(`/replica?${q}`);
      expect({ q, code }).toEqual({ q, code: 400 });
      expect(body).toMatchObject({ error: 'bad_lag', state: 'FOLLOWER' });
      expect(JSON.stringify(body).length).toBeLessThan(1000);
    }
    source.current = leaderRW();
    expect((await get('/primary?lag=abc')).code).toBe(200);
    expect((await get('/health?lag=abc')).code).toBe(200);
  });
});

describe('/cluster', () => {
  it('shows members, states, term, leader and config', async () => {
    const { code, body } = await get('/cluster');
    expect(code).toBe(200);
    expect(body).toMatchObject({ node_id: 1, term: 7, leader_id: 1, config: { nquorum: 2, minnodes: 2, heartbeat_send_period: 1000 } });
    const members = body['members'] as Array<Record<string, unknown>>;
    expect(members.map((m) => [m['id'], m['state'], m['leader'], m['online']])).toEqual([
      [1, 'LEADER_RW', true, true],
      [2, 'FOLLOWER', false, true],
      [3, 'FOLLOWER', false, true],
    ]);
    expect(members[1]).toMatchObject({ host: '10.0.0.2', port: 5432, replication: { state: 'streaming', lag_bytes: 0 } });
    expect(members[2]).toMatchObject({ since_last_hb_ms: 360, replication: { lag_bytes: 4096, lag_ms: 250 } });
    expect(body['error']).toMatchObject({ type: 'NO_ERROR' });
  });

  it('is answered on a follower and on a node in NODE_ERROR', async () => {
    source.current = nodeError();
    const { code, body } = await get('/cluster');
    expect(code).toBe(200);
    expect(body).toMatchObject({ node_id: 3, error: { type: 'TIMELINE_DIVERGED' } });
  });
});

describe('methods', () => {
  it('answers HEAD and OPTIONS with the status of GET and no body', async () => {
    for (const make of [leaderRW, () => streamingFollower(), detachedFollower]) {
      source.current = make();
      for (const path of [...CHECKS, '/primary', '/replica?lag=1MB', '/cluster', '/metrics', '/nope']) {
        const g = await fetch(base + path);
        await g.text();
        for (const method of ['HEAD', 'OPTIONS']) {
          const r = await fetch(base + path, { method });
          expect({ path, method, code: r.status }).toEqual({ path, method, code: g.status });
          expect(await r.text()).toBe('');
        }
      }
    }
    const o = await fetch(`${base}/primary`, { method: 'OPTIONS' });
    expect(o.headers.get('allow')).toBe('GET, HEAD, OPTIONS');
  });

  it('refuses other methods with 405', async () => {
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
      const { code, body, headers } = await get('/primary', { method, body: method === 'DELETE' ? undefined : 'x'.repeat(10_000) });
      expect(code).toBe(405);
      expect(body['error']).toBe('method_not_allowed');
      expect(headers.get('allow')).toBe('GET, HEAD, OPTIONS');
    }
    expect((await get('/primary')).code).toBe(200);
  });
});

describe('odd input', () => {
  it('answers 404 JSON with the node state for unknown paths', async () => {
    const { code, body } = await get('/patroni');
    expect(code).toBe(404);
    expect(body).toMatchObject({ error: 'not_found', path: '/patroni', node_id: 1, state: 'LEADER_RW', term: 7, role: 'primary' });
    expect(body['paths']).toEqual(HTTP_PATHS);
    expect((await get('/PRIMARY')).code).toBe(404);
    expect((await get('/primary/x')).code).toBe(404);
  });

  it('keeps a long path out of the answer', async () => {
    const { code, body } = await get(`/${'a'.repeat(8000)}`);
    expect(code).toBe(404);
    expect(JSON.stringify(body).length).toBeLessThan(1500);
  });

  it('answers a path longer than the header limit and keeps serving', async () => {
    const r = await raw(`GET /${'b'.repeat(100_000)} HTTP/1.1\r\nHost: x\r\n\r\n`);
    expect(r.code).toBe(431);
    expect(JSON.parse(r.body)).toMatchObject({ error: 'request_too_large' });
    expect((await get('/primary')).code).toBe(200);
  });

  it('survives malformed requests', async () => {
    const bad = [
      'GARBAGE\r\n\r\n',
      'GET\r\n\r\n',
      'GET /primary HTTP/9.9\r\n\r\n',
      'GET /primary HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n',
      'GET /pri mary HTTP/1.1\r\nHost: x\r\n\r\n',
      Buffer.from([0x47, 0x45, 0x54, 0x20, 0x2f, 0xff, 0xfe, 0x00, 0x20, 0x48, 0x54, 0x54, 0x50, 0x2f, 0x31, 0x2e, 0x31, 0x0d, 0x0a, 0x0d, 0x0a]),
    ];
    for (const b of bad) {
      const r = await raw(b);
      expect(r.code).toBe(400);
      expect(JSON.parse(r.body)).toMatchObject({ error: 'bad_request', node_id: 1 });
    }
    expect((await get('/primary')).code).toBe(200);
  });

  it('reads paths in absolute form and ignores fragments and other parameters', async () => {
    expect((await raw('GET http://db1:5434/primary HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')).code).toBe(200);
    expect((await raw('GET /primary?x=%%%&&==&&#frag HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')).code).toBe(200);
    expect((await raw('GET //primary HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')).code).toBe(404);
    expect((await raw('GET * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')).code).toBe(404);
  });

  it('answers any request target with JSON and a known status code', async () => {
    source.current = streamingFollower();
    const target = fc.string({ maxLength: 300 }).map((s) => '/' + encodeURI(s).replace(/#/g, '%23'));
    const query = fc.option(fc.string({ maxLength: 200 }).map((s) => '?' + encodeURI(s).replace(/#/g, '%23')), { nil: '' });
    const prefix = fc.constantFrom('', '/replica', '/primary', '/read-only', '/cluster');
    await fc.assert(
      fc.asyncProperty(prefix, target, query, async (p, t, q) => {
        const path = (p === '' ? t : p) + q;
        const r = await raw(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
        expect([200, 400, 404, 503]).toContain(r.code);
        expect(() => JSON.parse(r.body) as unknown).not.toThrow();
      }),
      { numRuns: 150 },
    );
    expect((await get('/replica')).code).toBe(200);
  });
});

describe('server lifecycle', () => {
  it('listens on an ephemeral port, closes with open connections, and close is idempotent', async () => {
    const s = await startHttpServer({
      host: '127.0.0.1',
      port: 0,
      logger: silentLogger,
      source: new FakeSource(leaderRW()),
      metrics: new Metrics({ node_id: '1', node_name: 'a', region: 'r' }),
    });
    expect(s.port).toBeGreaterThan(0);
    const sock = net.connect(s.port, '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    await Promise.all([s.close(), s.close()]);
    await expect(fetch(`http://127.0.0.1:${s.port}/primary`)).rejects.toThrow();
    sock.destroy();
  });

  it('rejects when the port is taken', async () => {
    await expect(
      startHttpServer({
        host: '127.0.0.1',
        port: server.port,
        logger: silentLogger,
        source: new FakeSource(leaderRW()),
        metrics: new Metrics({ node_id: '1', node_name: 'a', region: 'r' }),
      }),
    ).rejects.toThrow(/EADDRINUSE/);
  });
});
