// The quick jepsen-lite run (3 nodes, synchronous mode, the main nemeses, under 4 minutes): a real
// biha cluster in network namespaces under faults and a write load. Synchronous mode promises that
// no acknowledged write is lost and that no two nodes acknowledge writes as leaders at once.
// JEPSEN_SEED=<n> replays another fault schedule; the run directory is printed with the summary.
import { describe, expect, it } from 'vitest';
import { ensureBuilt } from '../helpers/cluster.js';
import { MAIN_NEMESES } from './nemesis.js';
import { runJepsen } from './run.js';

describe('jepsen-lite quick run: 3 nodes, sync mode, main nemeses', () => {
  it('loses no acknowledged write, never has two writable leaders, keeps the raft invariants and converges after healing', async () => {
    ensureBuilt();
    const seed = Number(process.env['JEPSEN_SEED'] ?? '20251121');
    const lines: string[] = [];
    const r = await runJepsen({
      nodes: 3,
      timeSec: 140,
      nemeses: MAIN_NEMESES,
      mode: 'sync',
      seed,
      png: false,
      log: (s) => lines.push(s),
      command: `JEPSEN_SEED=${seed} npx vitest run test/jepsen-lite/quick.test.ts`,
    });
    console.log(`${lines.filter((l) => l.startsWith('[')).join('\n')}\n\n${r.text}\nrun directory: ${r.dir}`);
    expect(r.set, 'the final read on the leader').not.toBeNull();
    expect(r.set!.ok, 'acknowledged writes').toBeGreaterThan(0);
    expect(r.set!.lost.map((o) => `${o.value} (node ${o.node}, term ${o.term})`), 'lost acknowledged writes').toEqual([]);
    expect(r.set!.failedButPresent.map((o) => `${o.value}: ${o.error ?? ''}`), 'writes reported failed that were applied').toEqual([]);
    expect(r.splitBrain.map((s) => s.message), 'two writable leaders').toEqual([]);
    expect([...r.consensus.twoLeaders, ...r.consensus.disagreeingLeader, ...r.consensus.termDecrease, ...r.consensus.doubleVote], 'raft invariants from the logs').toEqual([]);
    expect(r.converged.ok, `convergence after the final heal: ${r.converged.why}`).toBe(true);
  }, 330_000);
});
