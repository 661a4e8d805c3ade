// `npm run jepsen -- --report [--since DIRNAME]`: one Markdown table row per run directory under
// test/jepsen-lite/runs (from each summary.json), plus totals per cluster size and mode.
import * as fs from 'node:fs';
import * as path from 'node:path';

interface Summary {
  command: string;
  options: { nodes: number; mode: string; nemeses: string[]; seed: number; autorewind?: boolean; timeSec: number };
  valid: boolean;
  set: null | { ok: number; info: number; fail: number; lost: Array<{ complete: number }> };
  splitBrain: unknown[];
  consensus: { twoLeaders: string[]; disagreeingLeader: string[]; termDecrease: string[]; doubleVote: string[] };
  converged: { ok: boolean; ms: number; nodeErrors: number[] };
  windows: Array<{ ms: number }>;
  nemeses: Array<{ name: string }>;
  setupError: string | null;
}

export function report(runsDir: string, since = ''): string {
  let dirs: string[] = [];
  try {
    dirs = fs.readdirSync(runsDir).filter((d) => d >= since).sort();
  } catch {
    return `no run directory in ${runsDir}\n`;
  }
  const rows: string[] = [
    '| run | nodes | mode | autorewind | nemeses | seed | ok | info | fail | lost | split-brain | raft invariants | converged (NODE_ERROR) | longest no-ack window |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  const totals = new Map<string, { runs: number; ok: number; lost: number; runsWithLoss: number; split: number; inv: number; notConv: number; nodeErr: number; errors: number }>();
  for (const d of dirs) {
    let s: Summary;
    try {
      s = JSON.parse(fs.readFileSync(path.join(runsDir, d, 'summary.json'), 'utf8')) as Summary;
    } catch {
      continue;
    }
    const inv = s.consensus.twoLeaders.length + s.consensus.disagreeingLeader.length + s.consensus.termDecrease.length + s.consensus.doubleVote.length;
    const lost = s.set ? s.set.lost.length : -1;
    const faults = [...new Set(s.nemeses.map((n) => n.name))].join(', ');
    const longest = Math.max(0, ...s.windows.map((w) => w.ms));
    rows.push(
      `| ${d} | ${s.options.nodes} | ${s.options.mode} | ${s.options.autorewind ? 'on' : 'off'} | ${faults} | ${s.options.seed} | ${s.set?.ok ?? '-'} | ${s.set?.info ?? '-'} | ${s.set?.fail ?? '-'} | ${lost < 0 ? 'no final read' : lost} | ${s.splitBrain.length} | ${inv === 0 ? 'ok' : `${inv} violations`} | ${s.converged.ok ? `yes${s.converged.nodeErrors.length ? ` (${s.converged.nodeErrors.join(',')})` : ''}` : 'NO'} | ${(longest / 1000).toFixed(1)} s |`,
    );
    const key = `${s.options.nodes} nodes ${s.options.mode}`;
    const t = totals.get(key) ?? { runs: 0, ok: 0, lost: 0, runsWithLoss: 0, split: 0, inv: 0, notConv: 0, nodeErr: 0, errors: 0 };
    t.runs++;
    t.ok += s.set?.ok ?? 0;
    t.lost += Math.max(0, lost);
    if (lost > 0) t.runsWithLoss++;
    t.split += s.splitBrain.length;
    t.inv += inv;
    if (!s.converged.ok) t.notConv++;
    if (s.converged.nodeErrors.length) t.nodeErr++;
    if (s.setupError || lost < 0) t.errors++;
    totals.set(key, t);
  }
  const sum: string[] = ['', '| cluster | runs | acknowledged writes | lost (runs with loss) | split-brain | raft invariant violations | not converged | ended with a NODE_ERROR node | run errors |', '| --- | --- | --- | --- | --- | --- | --- | --- | --- |'];
  for (const [k, t] of [...totals].sort()) sum.push(`| ${k} | ${t.runs} | ${t.ok} | ${t.lost} (${t.runsWithLoss}) | ${t.split} | ${t.inv} | ${t.notConv} | ${t.nodeErr} | ${t.errors} |`);
  return [...rows, ...sum, '', configurationTable(dirs.map((d) => path.join(runsDir, d))), ''].join('\n');
}

/**
 * The results table of docs/reliability.md: one row per configuration (nodes, mode) over the given
 * run directories — runs, acknowledged writes, lost writes (sync: must be 0; async: measured),
 * split-brain, double votes, other raft invariant violations, runs that did not converge and runs
 * that failed before a final read.
 */
export function configurationTable(runDirs: readonly string[]): string {
  const rows = new Map<string, { nodes: number; mode: string; runs: number; ok: number; lost: number; runsWithLoss: number; split: number; dbl: number; inv: number; notConv: number; errors: number; nemeses: Set<string> }>();
  for (const d of runDirs) {
    let s: Summary;
    try {
      s = JSON.parse(fs.readFileSync(path.join(d, 'summary.json'), 'utf8')) as Summary;
    } catch {
      continue;
    }
    const key = `${s.options.nodes} ${s.options.mode}`;
    const r = rows.get(key) ?? { nodes: s.options.nodes, mode: s.options.mode, runs: 0, ok: 0, lost: 0, runsWithLoss: 0, split: 0, dbl: 0, inv: 0, notConv: 0, errors: 0, nemeses: new Set<string>() };
    const lost = s.set ? s.set.lost.length : -1;
    r.runs++;
    r.ok += s.set?.ok ?? 0;
    r.lost += Math.max(0, lost);
    if (lost > 0) r.runsWithLoss++;
    r.split += s.splitBrain.length;
    r.dbl += s.consensus.doubleVote.length;
    r.inv += s.consensus.twoLeaders.length + s.consensus.disagreeingLeader.length + s.consensus.termDecrease.length;
    if (!s.converged.ok) r.notConv++;
    if (s.setupError || lost < 0) r.errors++;
    for (const n of s.nemeses) r.nemeses.add(n.name);
    rows.set(key, r);
  }
  const out = [
    '| nodes | mode | runs | acknowledged writes | lost in sync | lost in async (runs with loss) | split-brain | double votes | other raft invariant violations | not converged | run errors | nemeses that struck |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  const all = { runs: 0, ok: 0, split: 0, dbl: 0 };
  for (const r of [...rows.values()].sort((a, b) => a.nodes - b.nodes || a.mode.localeCompare(b.mode))) {
    const sync = r.mode === 'sync';
    out.push(`| ${r.nodes} | ${r.mode} | ${r.runs} | ${r.ok} | ${sync ? r.lost : '—'} | ${sync ? '—' : `${r.lost} (${r.runsWithLoss})`} | ${r.split} | ${r.dbl} | ${r.inv} | ${r.notConv} | ${r.errors} | ${r.nemeses.size} |`);
    all.runs += r.runs;
    all.ok += r.ok;
    all.split += r.split;
    all.dbl += r.dbl;
  }
  const syncLost = [...rows.values()].filter((r) => r.mode === 'sync').reduce((a, r) => a + r.lost, 0);
  const asyncLost = [...rows.values()].filter((r) => r.mode !== 'sync').reduce((a, r) => a + r.lost, 0);
  out.push(`| all | | ${all.runs} | ${all.ok} | ${syncLost} | ${asyncLost} | ${all.split} | ${all.dbl} | | | | |`);
  return out.join('\n');
}
