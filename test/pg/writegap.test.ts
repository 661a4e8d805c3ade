// The client's write-gap loop (src/client/multihost.ts measureWriteGap, used by the demo and the
// benchmarks) against a real PostgreSQL 15 that goes away and comes back: it keeps writing,
// reconnects, and reports the outage as its longest gap.

import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { measureWriteGap, parseMultiHostUri } from '../../src/client/multihost.js';
import { writeBihaConf } from '../../src/controller/pg/conf.js';
import { LocalPg } from '../../src/controller/pg/conn.js';
import { initdb, pgCtlStart, pgCtlStop, resolvePgEnv } from '../../src/controller/pg/tools.js';
import type { PgEnv } from '../../src/controller/pg/tools.js';
import { cleanup, freePort, scratchDir } from './helpers.js';

let base = '';
let dir = '';
let port = 0;
let env: PgEnv;
let db: LocalPg;

beforeAll(async () => {
  base = await scratchDir('gap');
  dir = path.join(base, 'n1');
  port = await freePort();
  env = await resolvePgEnv(dir);
  await initdb(env, dir, { noSync: true });
  await writeBihaConf(dir, { listenAddresses: '127.0.0.1', port, nodeId: 1, host: '127.0.0.1', bihaPort: port + 1000, syncStandbyNames: '', autorewind: false });
  await pgCtlStart(env, dir, { logFile: path.join(base, 'n1.log') });
  db = new LocalPg({ pgdata: dir, port, user: env.user });
  await db.query("create role gap_writer login password 'gap-pass-1'");
  await db.query('grant create on schema public to gap_writer');
});

afterAll(async () => {
  await db?.close();
  if (env && dir) await pgCtlStop(env, dir, 'immediate').catch(() => undefined);
  if (base) await cleanup(base, [dir]);
});

describe('measureWriteGap', () => {
  it('keeps writing through a restart of the server and reports the outage as its longest gap', async () => {
    const target = parseMultiHostUri(`postgresql://gap_writer:gap-pass-1@127.0.0.1:${port}/postgres?target_session_attrs=read-write&connect_timeout=2`);
    let downAt = Infinity;
    let startingAt = Infinity;
    let restartedAt = Infinity;
    let acksAfter = 0;
    const t0 = performance.now();
    const run = measureWriteGap(target, {
      periodMs: 20,
      seconds: 120,
      table: 'gap_rows',
      stop: () => acksAfter >= 5,
      onAck: (at) => {
        if (t0 + at > restartedAt) acksAfter++;
      },
    });
    await new Promise((r) => setTimeout(r, 1000));
    await pgCtlStop(env, dir, 'immediate');
    downAt = performance.now();
    await new Promise((r) => setTimeout(r, 600));
    startingAt = performance.now();
    await pgCtlStart(env, dir, { logFile: path.join(base, 'n1.log') });
    restartedAt = performance.now();
    const r = await run;
    expect(acksAfter).toBe(5);
    expect(r.failed).toBeGreaterThan(0);
    // The longest gap spans the outage: it starts before the server was down and ends after it
    // was started again (the times are rounded to whole ms).
    expect(t0 + r.gapFromMs).toBeLessThanOrEqual(downAt + 1);
    expect(t0 + r.gapToMs).toBeGreaterThanOrEqual(startingAt - 1);
    expect(r.maxGapMs).toBeGreaterThanOrEqual(600);
    // Every acknowledged insert is there (a failed one may have committed too).
    const rows = await db.query<{ n: string }>('select count(*) as n from gap_rows');
    expect(Number(rows[0]?.n)).toBeGreaterThanOrEqual(r.ok);
  });
});
