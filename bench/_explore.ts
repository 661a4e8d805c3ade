import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { measureWriteGap, parseMultiHostUri } from '../src/client/multihost.js';
import { TestCluster, bihactl, sleep } from '../test/helpers/cluster.js';
const c = new TestCluster({ nodes: 3, basePort: 19500, heartbeatSendPeriod: 1000, heartbeatMaxLost: 10 });
try {
  await c.init();
  for (const i of c.ids()) {
    if (i > 1) { const a = await c.add(i); if (a.code) throw new Error(a.stderr); }
    const f = path.join(c.pgdata(i), 'postgresql.biha.conf');
    fs.writeFileSync(f, fs.readFileSync(f, 'utf8').replace(/^biha\.NodeControllerLog_log_level\s*=.*$/m, 'biha.NodeControllerLog_log_level = LOG').replace(/^biha\.NodeControllerWarn_log_level\s*=.*$/m, 'biha.NodeControllerWarn_log_level = LOG'));
    await c.start(i);
    if (i >= 2) await c.waitLeader();
  }
  for (const i of [2, 3]) await c.waitState(i, 'FOLLOWER');
  for (let r = 0; r < 3; r++) {
    const leader = await c.waitLeader();
    const target = (leader % 3) + 1;
    await sleep(3000);
    const t0 = performance.now();
    let last = 0;
    const p = measureWriteGap(parseMultiHostUri(c.connString()), { periodMs: 20, seconds: 8, table: 'g', onAck: (at, port) => { if (port !== last) console.log(`  ack at ${Math.round(at)} port ${port}`); last = port; } });
    await sleep(2000);
    const w = Date.now();
    console.log(`set-leader ${leader} -> ${target} at ${Math.round(performance.now() - t0)}`);
    const res = await bihactl(['set-leader', `--id=${target}`, `--pgdata=${c.pgdata(leader)}`]);
    console.log(`  done at ${Math.round(performance.now() - t0)} code ${res.code} ${res.stderr.trim()}`);
    console.log(await p);
    for (const i of [leader, target]) {
      const log = fs.readFileSync(path.join(c.pgdata(i), 'pg_biha/log/controller.log'), 'utf8').split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as {time: string; msg: string; component?: string; ms?: number}).filter((j) => Date.parse(j.time) >= w - 100);
      console.log(`  node ${i}:\n` + log.map((j) => `    +${Date.parse(j.time) - w} ${j.component} ${j.msg}${j.ms !== undefined ? ` ms=${j.ms}` : ''}`).join('\n'));
    }
    await sleep(3000);
  }
} finally { await c.destroy(); }
