// Simulator throughput: five-node runs per minute (target >= 1,000 on a 2-core machine).
// Run with `npx vite-node bench/sim.ts [runsPerRepetition]`; prints the median of 5 repetitions.
import { performance } from 'node:perf_hooks';
import { runBatch } from '../src/sim/index.js';

const REPETITIONS = 5;
const runs = Number(process.argv[2] ?? 100);
if (!Number.isInteger(runs) || runs <= 0) throw new Error(`runs per repetition must be a positive integer (got ${process.argv[2]})`);

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

// Warm up the JIT so the first repetition is not an outlier.
await runBatch({ nodes: 5, seedBase: 1_000_000, count: 10 });

const perMinute: number[] = [];
const simSecondsPerSecond: number[] = [];
for (let rep = 0; rep < REPETITIONS; rep++) {
  const t0 = performance.now();
  const s = await runBatch({ nodes: 5, seedBase: 1 + rep * runs, count: runs });
  const ms = performance.now() - t0;
  perMinute.push((runs * 60_000) / ms);
  simSecondsPerSecond.push(s.simMs / ms);
  console.log(`repetition ${rep + 1}: ${runs} five-node runs in ${(ms / 1000).toFixed(2)} s (${s.violations} violations)`);
}
console.log(
  `sim bench: median ${median(perMinute).toFixed(0)} five-node runs/min ` +
    `(${median(simSecondsPerSecond).toFixed(0)} simulated s per s) over ${REPETITIONS} repetitions of ${runs} runs`,
);
