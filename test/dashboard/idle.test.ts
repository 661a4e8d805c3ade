// The dashboard samples the controller's status only while someone asks for it: nothing after the
// first sample until a request, then until idleAfterMs passed without requests and without an open
// event stream. A bare http server on loopback port 29400 carries the requests.
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Dashboard } from '../../src/controller/ops/dashboard/dashboard.js';
import type { DashState } from '../../src/controller/ops/dashboard/wire.js';
import type { StatusFile } from '../../src/controller/bridge/sqlbridge.js';
import { sleep, waitFor } from '../helpers/cluster.js';
import { leaderRW, silentLogger } from '../http/fixtures.js';

const PORT = 29400;
const base = `http://127.0.0.1:${PORT}`;
const assets = fs.mkdtempSync(path.join(os.tmpdir(), 'biha-dash-idle-'));
fs.writeFileSync(path.join(assets, 'index.html'), '<!doctype html><title>t</title>');

/** Counts the status reads: one per sample. */
let reads = 0;
let dash: Dashboard | null = null;
let server: http.Server | null = null;

function status(): StatusFile {
  reads++;
  return { ...leaderRW(), generatedAtMs: Date.now() } as StatusFile;
}

async function serve(d: Dashboard): Promise<void> {
  dash = d;
  server = http.createServer((req, res) => d.handle(req, res, new URL(req.url ?? '/', base).pathname));
  await new Promise<void>((resolve) => server!.listen(PORT, '127.0.0.1', resolve));
}

beforeAll(() => {
  reads = 0;
});
afterEach(async () => {
  dash?.close();
  dash = null;
  const s = server;
  server = null;
  if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
});
afterAll(() => {
  fs.rmSync(assets, { recursive: true, force: true });
});

describe('the dashboard samples only while it is asked for', () => {
  it('after its first sample it reads nothing until a request; the request is answered with a fresh sample', async () => {
    reads = 0;
    const d = new Dashboard({ status, logger: silentLogger, assetsDir: assets, sampleMs: 20, idleAfterMs: 300 });
    await serve(d);
    d.start();
    expect(reads).toBe(1);
    await sleep(400);
    expect(reads).toBe(1);
    expect(d.sampling()).toBe(false);
    const before = Date.now();
    const r = await fetch(`${base}/dashboard/state`);
    expect(r.status).toBe(200);
    const st = (await r.json()) as DashState;
    expect(st.view.generated_at_ms).toBeGreaterThanOrEqual(before);
    expect(reads).toBe(2);
    expect(d.sampling()).toBe(true);
  });

  it('a page that polls keeps it sampling; without requests it stops after idleAfterMs', async () => {
    reads = 0;
    const d = new Dashboard({ status, logger: silentLogger, assetsDir: assets, sampleMs: 20, idleAfterMs: 4000 });
    await serve(d);
    d.start();
    for (let i = 0; i < 5; i++) {
      expect((await fetch(`${base}/dashboard/state`)).status).toBe(200);
      await sleep(100);
      expect(d.sampling()).toBe(true);
    }
    await waitFor('sampling to stop', async () => !d.sampling(), 15_000, 20);
    const after = reads;
    await sleep(1500);
    expect(reads).toBe(after);
  });

  it('an open event stream keeps it sampling past idleAfterMs; closing it lets sampling stop', async () => {
    reads = 0;
    const d = new Dashboard({ status, logger: silentLogger, assetsDir: assets, sampleMs: 20, idleAfterMs: 200 });
    await serve(d);
    d.start();
    const frames: string[] = [];
    const req = http.get(`${base}/dashboard/events`, (res) => {
      res.setEncoding('utf8');
      res.on('data', (c: string) => frames.push(c));
      res.on('error', () => undefined);
    });
    req.on('error', () => undefined);
    await waitFor('the state frame', async () => frames.join('').includes('event: state'), 5000, 20);
    await sleep(600);
    expect(d.sampling()).toBe(true);
    const during = reads;
    await sleep(300);
    expect(reads).toBeGreaterThan(during);
    req.destroy();
    await waitFor('sampling to stop after the stream closed', async () => !d.sampling(), 15_000, 20);
  });
});
