// Seeded random runs of small clusters with crashes, restarts, partitions and WAL movement,
// checking on every step: at most one leader per term, never two writable leaders at once, a
// persisted vote never changes within its term, and after healing a leader is elected in bounded
// time. A failing seed is reported by number and replays exactly (FUZZ_SEED=<n>); FUZZ_SEEDS=<n>
// runs a longer batch (the default keeps the suite fast).
import { describe, expect, it } from 'vitest';
import { runSeed } from './fuzz.js';

describe('raft core under random faults', () => {
  const only = process.env.FUZZ_SEED;
  const count = Number(process.env.FUZZ_SEEDS ?? 4);
  const seeds = only ? [Number(only)] : Array.from({ length: count }, (_, i) => i + 1);
  for (const seed of seeds) {
    it(`seed ${seed}, reliable network`, () => {
      const out = runSeed(seed);
      expect(out.violations).toEqual([]);
      // T = 1000 ms: restarted nodes wait T, then the ranked election (with retries) follows.
      expect(out.electedAfterHealMs).toBeGreaterThanOrEqual(0);
      expect(out.electedAfterHealMs).toBeLessThanOrEqual(5000);
    });
  }
  for (const seed of only ? [Number(only)] : seeds.slice(0, Math.max(1, Math.floor(count / 2)))) {
    it(`seed ${seed}, 10 % loss and up to 60 ms delay`, () => {
      const out = runSeed(seed, true);
      expect(out.violations).toEqual([]);
      // Loss keeps going after the heal; a leader must still appear within the 20 s bound.
      expect(out.electedAfterHealMs).toBeGreaterThanOrEqual(0);
    });
  }
});
