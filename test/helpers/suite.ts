// Vitest wiring for suites that share one real cluster. Kept apart from cluster.ts, which the
// benchmarks and scripts also load outside vitest.
import { afterAll, beforeAll } from 'vitest';
import type { TestCluster } from './cluster.js';

/** Creates the cluster (init with `initExtra`, then runs `prepare`) before the suite's tests, and destroys it after them. */
export function useCluster(c: TestCluster, prepare?: () => void | Promise<void>, initExtra: string[] = []): void {
  beforeAll(async () => {
    await c.create(initExtra);
    await prepare?.();
  }, 180_000);
  afterAll(async () => {
    await c.destroy();
  }, 120_000);
}
