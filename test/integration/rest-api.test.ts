// The remote management API on a real three-node cluster: credentials (401, 403), switchover and
// failover through HTTP, PATCH /config seen by SQL, GET /history after a switchover, /sync and
// /async, POST /restart and POST /reinitialize of a follower; HTTPS with --http-tls on a one-node
// cluster.
import * as https from 'node:https';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestCluster, bihaOk, bihactl, waitFor } from '../helpers/cluster.js';

const PASSWORD = 'http-password-1';
const AUTH = `Basic ${Buffer.from(`admin:${PASSWORD}`).toString('base64')}`;

interface Reply {
  code: number;
  body: Record<string, unknown> & { length?: number };
  headers: Headers;
}

async function call(c: TestCluster, i: number, method: string, p: string, body?: unknown, auth: string | null = AUTH): Promise<Reply> {
  const r = await fetch(`http://127.0.0.1:${c.httpPort(i)}${p}`, {
    method,
    headers: { ...(auth ? { Authorization: auth } : {}), ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    signal: AbortSignal.timeout(120_000),
  });
  const text = await r.text();
  return { code: r.status, body: text === '' ? {} : (JSON.parse(text) as Reply['body']), headers: r.headers };
}

describe('remote management API', () => {
  const c = new TestCluster({ nodes: 3, basePort: 25000 });
  const follower = async (not: number[] = []): Promise<number> => {
    const l = await c.waitLeader();
    return c.ids().find((i) => i !== l && !not.includes(i))!;
  };
  const allStreaming = async (): Promise<number> => {
    const l = await c.waitLeader();
    for (const i of c.ids()) if (i !== l) await c.waitStreaming(i);
    return l;
  };

  beforeAll(async () => {
    process.env['BIHA_HTTP_PASSWORD'] = PASSWORD;
    await c.create(['--http-user=admin']);
    await allStreaming();
  }, 240_000);
  afterAll(async () => {
    await c.destroy();
  }, 120_000);

  it('keeps GET open and adds server_version, timeline, xlog and role to the health checks', async () => {
    const l = await c.waitLeader();
    const f = await follower();
    const p = await call(c, l, 'GET', '/primary', undefined, null);
    expect(p.code).toBe(200);
    expect(p.headers.get('content-type')).toBe('application/json');
    expect(p.body['role']).toBe('primary');
    expect(p.body['server_version']).toBeGreaterThanOrEqual(150000);
    expect(p.body['timeline']).toBeGreaterThanOrEqual(1);
    expect(p.body['xlog']).toHaveProperty('location');
    const r = await waitFor('the replica check', async () => {
      const x = await call(c, f, 'GET', '/replica', undefined, null);
      return x.code === 200 ? x : null;
    });
    expect(r.body['role']).toBe('replica');
    expect(r.body['xlog']).toHaveProperty('received_location');
    expect(r.body['xlog']).toHaveProperty('replayed_location');
    const cfg = await call(c, f, 'GET', '/config', undefined, null);
    expect(cfg.code).toBe(200);
    expect(cfg.body).toMatchObject({ heartbeat_send_period: 200, heartbeat_max_lost: 5, nquorum: 2, minnodes: 2, sync_standbys: 0, service_mode: false });
  });

  it('answers 401 without valid credentials and 403 on a node that has none', async () => {
    const none = await call(c, 1, 'POST', '/switchover', { candidate: 2 }, null);
    expect(none.code).toBe(401);
    expect(none.headers.get('www-authenticate')).toBe('Basic realm="biha"');
    const wrong = await call(c, 1, 'POST', '/switchover', { candidate: 2 }, `Basic ${Buffer.from('admin:nope-nope').toString('base64')}`);
    expect(wrong.code).toBe(401);
    // Nodes 2 and 3 were added without --http-user.
    const off = await call(c, 2, 'PATCH', '/config', { heartbeat_max_lost: 6 });
    expect(off.code).toBe(403);
    expect(String(off.body['error'])).toMatch(/^remote management is off: set credentials with bihactl set-http-credentials/);
    // Credentials for an existing node take effect without a restart.
    for (const i of [2, 3]) await bihaOk(['set-http-credentials', `--pgdata=${c.pgdata(i)}`, '--http-user=admin']);
    const bad = await call(c, 2, 'PATCH', '/config', { heartbeat_max_lost: 1 });
    expect(bad.code).toBe(400);
    expect(String(bad.body['error'])).toMatch(/heartbeat_max_lost/);
    // Without a terminal and without the variable, one line.
    const r = await bihactl(['set-http-credentials', `--pgdata=${c.pgdata(3)}`, '--http-user=admin'], { BIHA_HTTP_PASSWORD: '' });
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/BIHA_HTTP_PASSWORD/);
    // Removed credentials turn the actions off again.
    await bihaOk(['set-http-credentials', `--pgdata=${c.pgdata(3)}`, '--remove']);
    expect((await call(c, 3, 'POST', '/restart', {})).code).toBe(403);
    await bihaOk(['set-http-credentials', `--pgdata=${c.pgdata(3)}`, '--http-user=admin']);
    expect((await call(c, 3, 'PATCH', '/config', { nquorum: 0 })).code).toBe(400);
  });

  it('PATCH /config on a follower changes heartbeat_max_lost, and biha.config() shows it', async () => {
    const f = await follower();
    const r = await call(c, f, 'PATCH', '/config', { heartbeat_max_lost: 6 });
    expect(r.code, JSON.stringify(r.body)).toBe(200);
    expect(r.body['heartbeat_max_lost']).toBe(6);
    const l = await c.waitLeader();
    await waitFor('biha.config() to show heartbeat_max_lost 6', async () => {
      const rows = await c.su<{ heartbeat_max_lost: number }>(l, 'select heartbeat_max_lost from biha.config()', 'biha_db');
      return rows[0]?.heartbeat_max_lost === 6;
    });
    const bad = await call(c, f, 'PATCH', '/config', { heartbeat_send_period: 5 });
    expect(bad.code).toBe(400);
    expect(String(bad.body['error'])).toMatch(/^heartbeat_send_period must be/);
  });

  it('POST /switchover to a follower moves the leadership; a wrong leader gets 412', async () => {
    const l = await allStreaming();
    const target = await follower();
    const wrong = await call(c, target, 'POST', '/switchover', { leader: target, candidate: target });
    expect(wrong.code).toBe(412);
    const r = await call(c, target, 'POST', '/switchover', { leader: l, candidate: target });
    expect(r.code, JSON.stringify(r.body)).toBe(200);
    expect(r.body).toEqual({ message: `switched over to node ${target}`, leader: target });
    expect(await c.waitLeader({ not: l })).toBe(target);
  });

  it('GET /history lists the new timeline of the switchover', async () => {
    const l = await c.waitLeader();
    const [tli] = await c.su<{ t: string }>(l, 'select substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) as t');
    const current = parseInt(tli!.t, 16);
    expect(current).toBeGreaterThan(1);
    const h = await waitFor('the promotion record', async () => {
      const x = await call(c, l === 1 ? 2 : 1, 'GET', '/history', undefined, null);
      const items = x.body as unknown as Array<Record<string, unknown>>;
      const last = Array.isArray(items) ? items[items.length - 1] : undefined;
      return last?.['timeline'] === current && last['reason'] !== null ? items : null;
    });
    const last = h[h.length - 1]!;
    expect(last).toMatchObject({ timeline: current, new_leader: l, reason: 'switchover' });
    expect(String(last['switch_lsn'])).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    expect(Number.isNaN(Date.parse(String(last['time'])))).toBe(false);
  });

  it('POST /failover with a leader switches over to the candidate', async () => {
    const l = await allStreaming();
    const target = await follower();
    const r = await call(c, l, 'POST', '/failover', { candidate: target });
    expect(r.code, JSON.stringify(r.body)).toBe(200);
    expect(await c.waitLeader({ not: l })).toBe(target);
  });

  it('/sync and /async follow sync_standbys', async () => {
    const l = await allStreaming();
    const f = await follower();
    const on = await call(c, f, 'PATCH', '/config', { sync_standbys: 1 });
    expect(on.code, JSON.stringify(on.body)).toBe(200);
    await waitFor('node to be a synchronous standby', async () => (await call(c, f, 'GET', '/sync', undefined, null)).code === 200);
    expect((await call(c, f, 'GET', '/async', undefined, null)).code).toBe(503);
    expect((await call(c, l, 'GET', '/sync', undefined, null)).code).toBe(503);
    const off = await call(c, l, 'PATCH', '/config', { sync_standbys: 0 });
    expect(off.code, JSON.stringify(off.body)).toBe(200);
    await waitFor('node to be an asynchronous standby', async () => (await call(c, f, 'GET', '/async', undefined, null)).code === 200);
    expect((await call(c, f, 'GET', '/sync', undefined, null)).code).toBe(503);
  });

  it('POST /restart restarts a follower; the leader needs force', async () => {
    const l = await allStreaming();
    const f = await follower();
    const refused = await call(c, l, 'POST', '/restart', {});
    expect(refused.code).toBe(409);
    expect(refused.body['code']).toBe('is_leader');
    const before = c.postmasterPid(f);
    const r = await call(c, f, 'POST', '/restart', {});
    expect(r.code, JSON.stringify(r.body)).toBe(200);
    expect(c.postmasterPid(f)).not.toBe(before);
    await c.waitStreaming(f);
  });

  it('POST /reinitialize copies a follower again from the leader; it streams afterwards', async () => {
    const l = await allStreaming();
    const f = await follower();
    expect((await call(c, l, 'POST', '/reinitialize', { force: true })).code).toBe(409);
    const healthy = await call(c, f, 'POST', '/reinitialize', {});
    expect(healthy.code).toBe(409);
    expect(healthy.body['code']).toBe('streaming');
    const oldPid = c.controllerPid(f);
    const r = await call(c, f, 'POST', '/reinitialize', { force: true });
    expect(r.code, JSON.stringify(r.body)).toBe(202);
    await waitFor('the old controller to stop', async () => c.controllerPid(f) !== oldPid || !fs.existsSync(`/proc/${oldPid}`), 120_000, 200);
    await waitFor('the node to run again', async () => (await call(c, f, 'GET', '/liveness', undefined, null)).code === 200, 300_000, 500);
    await c.waitStreaming(f, 180_000);
    expect(fs.existsSync(`${c.pgdata(f)}.biha-reinit`)).toBe(false);
    await c.su(l, 'create table if not exists after_reinit (v int); insert into after_reinit values (42)');
    await waitFor('the row on the reinitialized node', async () => {
      const rows = await c.su<{ v: number }>(f, 'select v from after_reinit').catch(() => []);
      return rows[0]?.v === 42;
    });
    const log = fs.readFileSync(`${c.pgdata(f)}.biha-reinit.log`, 'utf8');
    expect(log).toMatch(/fresh copy/);
  });
});

describe('remote management API over HTTPS', () => {
  const c = new TestCluster({ nodes: 1, basePort: 25100, nquorum: 1, minnodes: 1 });
  beforeAll(async () => {
    process.env['BIHA_HTTP_PASSWORD'] = PASSWORD;
    const r = await c.init(['--use-ssl', '--http-tls', '--http-user=admin']);
    if (r.code !== 0) throw new Error(r.stderr);
    await c.start(1);
    await c.waitLeader();
  }, 180_000);
  afterAll(async () => {
    await c.destroy();
  }, 120_000);

  it('serves the API with the control channel certificate, checked against the cluster CA', async () => {
    const ca = fs.readFileSync(path.join(c.pgdata(1), 'pg_biha', 'tls', 'ca.crt'), 'utf8');
    const get = (p: string, auth: boolean, method = 'GET', body?: string): Promise<{ code: number; text: string }> =>
      new Promise((resolve, reject) => {
        const req = https.request(
          { host: '127.0.0.1', port: c.httpPort(1), path: p, method, ca, headers: auth ? { Authorization: AUTH, 'Content-Type': 'application/json' } : {} },
          (res) => {
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (d: string) => (text += d));
            res.on('end', () => resolve({ code: res.statusCode ?? 0, text }));
          },
        );
        req.on('error', reject);
        req.end(body);
      });
    const p = await waitFor('the primary check over HTTPS', async () => {
      const x = await get('/primary', false);
      return x.code === 200 ? x : null;
    });
    expect(JSON.parse(p.text)).toMatchObject({ role: 'primary' });
    expect((await get('/config', false, 'PATCH', '{"heartbeat_max_lost": 7}')).code).toBe(401);
    const ok = await get('/config', true, 'PATCH', '{"heartbeat_max_lost": 7}');
    expect(ok.code, ok.text).toBe(200);
    expect(JSON.parse(ok.text)).toMatchObject({ heartbeat_max_lost: 7 });
    // Plain HTTP is not served on that port.
    await expect(fetch(`http://127.0.0.1:${c.httpPort(1)}/primary`, { signal: AbortSignal.timeout(10_000) })).rejects.toThrow();
  });
});
