import { runSeed } from '../../src/sim/run.js';
const cfgs: any[] = [{ minnodes: 1 }, { nquorum: 1, minnodes: 1 }, { minnodes: 1, mode: 'sync' }];
for (const c of cfgs) {
  let v = 0; const kinds: Record<string, number> = {}; let first = '';
  for (let s = 0; s < 40; s++) {
    const r = runSeed({ seed: s, nodes: 3, ...c });
    for (const x of r.violations) { v++; kinds[x.invariant] = (kinds[x.invariant] ?? 0) + 1; if (!first) first = `seed ${s}: ${x.description}`; }
  }
  console.log(JSON.stringify(c), v, JSON.stringify(kinds), first);
}
