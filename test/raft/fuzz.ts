// Seeded random runs of small clusters (see fuzz.test.ts). Kept apart so a seed can be replayed
// from a script as well as from the test.
import { TestCluster, nodeInfo } from './cluster.js';
import { seededRand } from './scenario.js';

export interface Outcome {
  readonly violations: string[];
  readonly electedAfterHealMs: number;
  readonly proposals: number;
}

export function runSeed(seed: number, lossy = false): Outcome {
  const rnd = seededRand(seed * 1_000_003);
  const n = 3 + Math.floor(rnd() * 3); // 3..5 nodes, majority quorums
  const maj = Math.floor(n / 2) + 1;
  // Any split-brain-free pair: 2 * nquorum > n and nquorum + minnodes > n.
  const nquorum = maj + Math.floor(rnd() * (n - maj + 1));
  const minnodes = n - nquorum + 1 + Math.floor(rnd() * nquorum);
  const infos = [];
  for (let id = 1; id <= n; id++) infos.push(nodeInfo(id));
  const c = new TestCluster(infos, { nquorum, minnodes });
  if (lossy) c.net = { rand: seededRand(seed * 7 + 1), loss: 0.1, maxDelay: 60 };
  const violations: string[] = [];
  const leaderOfTerm = new Map<number, number>();
  const voteOf = new Map<string, number>();
  const snapshots = new Map<number, string>();
  let proposals = 0;

  const check = (): void => {
    let writable = 0;
    for (const [id, node] of c.nodes) {
      if (!node) continue;
      const s = node.soft();
      if (s.role === 'leader') {
        const prev = leaderOfTerm.get(s.term);
        if (prev !== undefined && prev !== id) violations.push(`t=${c.time} term ${s.term}: leaders ${prev} and ${id}`);
        leaderOfTerm.set(s.term, id);
      }
      if (s.writable) writable++;
    }
    if (writable > 1) violations.push(`t=${c.time}: ${writable} writable leaders`);
    for (const [id, d] of c.disk) {
      if (d.hard.vote === 0) continue;
      const key = `${id}@${d.hard.term}`;
      const prev = voteOf.get(key);
      if (prev !== undefined && prev !== d.hard.vote) violations.push(`node ${id} voted ${prev} then ${d.hard.vote} in term ${d.hard.term}`);
      voteOf.set(key, d.hard.vote);
    }
    // State Machine Safety: every node that committed index i has the same state at i.
    for (const [id, d] of c.disk) {
      const snap = d.log.snapshot;
      if (snap.index === 0) continue;
      const text = JSON.stringify([snap.term, snap.config, snap.meta]);
      const prev = snapshots.get(snap.index);
      if (prev !== undefined && prev !== text) violations.push(`node ${id}: snapshot ${snap.index} differs from another node's`);
      snapshots.set(snap.index, text);
    }
  };

  for (let step = 0; step < 60; step++) {
    const r = rnd();
    const id = 1 + Math.floor(rnd() * n);
    if (r < 0.15 && c.nodes.get(id)) c.crash(id);
    else if (r < 0.35 && !c.nodes.get(id)) c.start(id);
    else if (r < 0.5) c.isolate(id);
    else if (r < 0.6) c.cuts.clear();
    else if (r < 0.75) c.setWal(id, { tli: 1, lsn: (c.wal.get(id)?.lsn ?? 0) + Math.floor(rnd() * 1000) });
    else if (r < 0.85) {
      // Config changes, including the heartbeat settings (T between 800 and 1400 ms).
      for (const l of c.leaders()) {
        const k = rnd();
        const ok = c.node(l).propose(
          k < 0.4
            ? { type: 'set_meta', key: `k${step % 3}`, value: `v${step}` }
            : k < 0.7
              ? { type: 'set_params', params: { noWalOnFollower: step * 100 } }
              : { type: 'set_params', params: { heartbeatMaxLost: 4 + Math.floor(rnd() * 4) } },
          c.time,
        );
        if (ok.ok) proposals++;
      }
    } else {
      // Leadership transfer; the controller fences PostgreSQL at once.
      for (const l of c.leaders()) {
        const target = 1 + Math.floor(rnd() * n);
        if (c.node(l).transferLeadership(target, c.time).ok) c.node(l).setLocalFenced(true);
      }
    }
    const span = 100 + Math.floor(rnd() * 1500);
    for (let t = 0; t < span; t += 10) {
      c.run(10);
      check();
    }
  }
  // Heal everything and require a leader within a bound.
  c.cuts.clear();
  for (const [id, node] of c.nodes) if (!node) c.start(id);
  const healedAt = c.time;
  let electedAfterHealMs = -1;
  for (let t = 0; t < 20_000 && electedAfterHealMs < 0; t += 10) {
    c.run(10);
    check();
    const leaders = c.leaders();
    if (leaders.length === 1 && c.node(leaders[0]!).soft().writable) electedAfterHealMs = c.time - healedAt;
  }
  return { violations, electedAfterHealMs, proposals };
}

