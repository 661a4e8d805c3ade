// The controller's metrics use prom-client's classes without its index, which would also load the
// default process metrics and @opentelemetry/api, modules the controller never uses. Checked in
// a fresh Node process on the built code: what its module cache holds after loading the metrics.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt } from '../helpers/cluster.js';

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');

beforeAll(() => {
  ensureBuilt();
});

function loadedAfter(module: string): string[] {
  const script = `
    import { createRequire } from 'node:module';
    const m = await import(${JSON.stringify(path.join(ROOT, 'dist', module))});
    const reg = new m.Metrics({ node_id: '1', node_name: 'a', region: '' });
    const text = await reg.registry.metrics();
    if (!text.includes('biha_')) throw new Error('no biha metrics');
    process.stdout.write(JSON.stringify(Object.keys(createRequire(import.meta.url).cache)));
  `;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`node failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as string[];
}

describe('the metrics module', () => {
  it('serves the biha metrics without loading prom-client\'s index or @opentelemetry/api', () => {
    const loaded = loadedAfter(path.join('controller', 'ops', 'metrics.js'));
    expect(loaded.some((f) => f.includes(`${path.sep}prom-client${path.sep}lib${path.sep}counter.js`))).toBe(true);
    expect(loaded.filter((f) => f.includes('@opentelemetry'))).toEqual([]);
    expect(loaded.filter((f) => f.endsWith(`${path.sep}prom-client${path.sep}index.js`))).toEqual([]);
  });
});
