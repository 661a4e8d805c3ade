// GET /dashboard and its stream on the controller's HTTP server, fed with hand-made StatusFile
// documents, on loopback ports 26900-26902.
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HTTP_PATHS, startHttpServer } from '../../src/controller/ops/http.js';
import type { HttpServerHandle, HttpStatus } from '../../src/controller/ops/http.js';
import { Metrics } from '../../src/controller/ops/metrics.js';
import { DASHBOARD_CSP } from '../../src/controller/ops/dashboard/dashboard.js';
import type { DashState, DashUpdate } from '../../src/controller/ops/dashboard/wire.js';
import { waitFor } from '../helpers/cluster.js';
import { FakeSource, leaderRW, makeStatus, silentLogger } from '../http/fixtures.js';

/** A source whose documents carry the current time, as the controller's do. */
class LiveSource extends FakeSource {
  override status(): HttpStatus {
    return { ...super.status(), generatedAtMs: Date.now() };
  }
}

const assets = fs.mkdtempSync(path.join(os.tmpdir(), 'biha-dash-assets-'));
fs.writeFileSync(path.join(assets, 'index.html'), '<!doctype html><title>t</title><script type="module" src="/dashboard/assets/app-ABCDEFGH.js"></script>');
fs.writeFileSync(path.join(assets, 'app-ABCDEFGH.js'), 'console.log(1);');
fs.writeFileSync(path.join(assets, 'notes.txt'), 'not served');

async function start(port: number, source: FakeSource, assetsDir = assets): Promise<HttpServerHandle> {
  return await startHttpServer({
    host: '127.0.0.1',
    port,
    logger: silentLogger,
    source,
    metrics: new Metrics({ node_id: '1', node_name: 'alpha', region: 'eu-west' }),
    dashboard: { assetsDir, sampleMs: 50, heartbeatMs: 300, maxClients: 2 },
  });
}

/** An open event stream: its status, headers and the frames received so far. */
interface Stream {
  code: number;
  headers: http.IncomingHttpHeaders;
  frames: string[];
  ended: boolean;
  close(): void;
}

function openStream(port: number): Promise<Stream> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/dashboard/events', headers: { Accept: 'text/event-stream' } }, (res) => {
      const s: Stream = { code: res.statusCode ?? 0, headers: res.headers, frames: [], ended: false, close: () => req.destroy() };
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buf += chunk;
        let i: number;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          s.frames.push(buf.slice(0, i));
          buf = buf.slice(i + 2);
        }
      });
      res.on('end', () => {
        s.ended = true;
      });
      res.on('error', () => {
        s.ended = true;
      });
      resolve(s);
    });
    req.on('error', reject);
  });
}

function dataOf<T>(frame: string): T {
  return JSON.parse(frame.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n')) as T;
}

afterAll(() => {
  fs.rmSync(assets, { recursive: true, force: true });
});

describe('the dashboard on the HTTP port', () => {
  const PORT = 26900;
  const base = `http://127.0.0.1:${PORT}`;
  const source = new LiveSource(leaderRW());
  let server: HttpServerHandle;

  beforeAll(async () => {
    server = await start(PORT, source);
  });
  afterAll(async () => {
    await server.close();
  });

  it('serves the page with a strict Content-Security-Policy and revalidation', async () => {
    const r = await fetch(`${base}/dashboard`);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(r.headers.get('content-security-policy')).toBe(DASHBOARD_CSP);
    expect(DASHBOARD_CSP).toContain("script-src 'self'");
    expect(DASHBOARD_CSP).toContain("default-src 'none'");
    expect(DASHBOARD_CSP).not.toContain('unsafe');
    expect(r.headers.get('x-content-type-options')).toBe('nosniff');
    expect(r.headers.get('cache-control')).toBe('no-cache');
    expect(await r.text()).toContain('app-ABCDEFGH.js');
    const etag = r.headers.get('etag')!;
    expect((await fetch(`${base}/dashboard/`, { headers: { 'If-None-Match': etag } })).status).toBe(304);
  });

  it('serves hashed assets as immutable, and nothing that is not an asset', async () => {
    const js = await fetch(`${base}/dashboard/assets/app-ABCDEFGH.js`);
    expect(js.status).toBe(200);
    expect(js.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(js.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect((await fetch(`${base}/dashboard/assets/notes.txt`)).status).toBe(404);
    expect((await fetch(`${base}/dashboard/assets/..%2f..%2fpackage.json`)).status).toBe(404);
    expect((await fetch(`${base}/dashboard/nothing`)).status).toBe(404);
    expect((await fetch(`${base}/dashboard`, { method: 'POST' })).status).toBe(405);
    expect(HTTP_PATHS).toContain('/dashboard');
  });

  it('answers the whole state as JSON for polling', async () => {
    source.current = leaderRW();
    const r = await fetch(`${base}/dashboard/state`);
    expect(r.status).toBe(200);
    expect(r.headers.get('cache-control')).toBe('no-store');
    const s = (await r.json()) as DashState;
    expect(s.view.node_id).toBe(1);
    expect(s.view.leader_id).toBe(1);
    expect(s.view.nodes.map((n) => [n.id, n.leader, n.state])).toEqual([[1, true, 'LEADER_RW'], [2, false, 'FOLLOWER'], [3, false, 'FOLLOWER']]);
    expect(s.view.nodes.find((n) => n.id === 3)).toMatchObject({ lag_bytes: 4096, lag_ms: 250, sync_state: 'async', replication_state: 'streaming' });
    expect(s.view.health).toEqual({ leader_known: true, voters_online: 3, nquorum: 2, in_majority: true });
    expect(s.samples.length).toBeGreaterThan(0);
  });

  it('streams the state, then an update on a change with the derived events, and heartbeat comments', async () => {
    source.current = leaderRW();
    const s = await openStream(PORT);
    try {
      expect(s.code).toBe(200);
      expect(s.headers['content-type']).toBe('text/event-stream; charset=utf-8');
      expect(s.headers['cache-control']).toBe('no-store');
      await waitFor('the first frames', async () => s.frames.length >= 2, 10_000, 20);
      expect(s.frames[0]).toBe('retry: 1000');
      expect(s.frames[1]!.startsWith('event: state\n')).toBe(true);
      expect(dataOf<DashState>(s.frames[1]!).view.leader_id).toBe(1);
      // The leader loses its lease: no leader known, and the page is told.
      source.current = makeStatus({ state: 'CANDIDATE', leaderId: null, term: 8 });
      const update = await waitFor('an update without a leader', async () => {
        const u = s.frames.filter((f) => f.startsWith('event: update\n')).map((f) => dataOf<DashUpdate>(f));
        return u.find((x) => x.view.leader_id === null) ?? null;
      }, 10_000, 20);
      expect(update.view.health.leader_known).toBe(false);
      expect(update.events.map((e) => e.kind)).toContain('leader_lost');
      expect(update.sample.nodes.find((n) => n.id === 1)?.state).toBe('CANDIDATE');
      await waitFor('a heartbeat comment', async () => s.frames.includes(': heartbeat'), 10_000, 20);
    } finally {
      s.close();
    }
  });

  it('keeps the number of streams bounded', async () => {
    const a = await openStream(PORT);
    const b = await openStream(PORT);
    try {
      await waitFor('two streams open', async () => a.frames.length > 0 && b.frames.length > 0, 10_000, 20);
      const r = await fetch(`${base}/dashboard/events`);
      expect(r.status).toBe(503);
      expect(r.headers.get('retry-after')).toBe('10');
      expect(((await r.json()) as { error: string }).error).toBe('too_many_clients');
    } finally {
      a.close();
      b.close();
    }
    // A closed stream frees its place.
    await waitFor('a place again', async () => {
      const c = await openStream(PORT);
      c.close();
      return c.code === 200;
    }, 10_000, 50);
  });
});

describe('the dashboard server closing and unbuilt', () => {
  it('ends the open streams when the server closes', async () => {
    const server = await start(26901, new LiveSource(leaderRW()));
    const s = await openStream(26901);
    await waitFor('the first frame', async () => s.frames.length >= 2, 10_000, 20);
    await server.close();
    await waitFor('the stream ended', async () => s.ended, 10_000, 20);
  });

  it('says how to build the page when it is not built', async () => {
    const server = await start(26902, new LiveSource(leaderRW()), path.join(assets, 'missing'));
    try {
      const r = await fetch('http://127.0.0.1:26902/dashboard');
      expect(r.status).toBe(503);
      expect(((await r.json()) as { reason: string }).reason).toMatch(/not built .*run npm run build/);
    } finally {
      await server.close();
    }
  });
});
