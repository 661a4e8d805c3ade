// The closing table of the side-by-side benchmark: per scenario, each tool's median and the ratio
// Patroni / biha, as markdown.
import { fmtMs, median } from './report.js';

export interface CompareRow {
  scenario: string;
  /** Figures in ms, one per successful run. */
  biha: readonly number[];
  patroni: readonly number[];
}

function cell(xs: readonly number[]): string {
  return xs.length === 0 ? 'no successful run' : `${fmtMs(median(xs))} (${xs.length} run${xs.length === 1 ? '' : 's'})`;
}

/** Patroni's median over biha's, two decimals ("×"), or "—" when either has no run or biha's is 0. */
export function ratio(biha: readonly number[], patroni: readonly number[]): string {
  if (biha.length === 0 || patroni.length === 0) return '—';
  const b = median(biha);
  if (b <= 0) return '—';
  return `${(median(patroni) / b).toFixed(2)} ×`;
}

/** `| scenario | biha | Patroni | Patroni / biha |` with one line per row. */
export function compareTable(rows: readonly CompareRow[]): string {
  const lines = ['| scenario | biha | Patroni | Patroni / biha |', '|---|---|---|---|'];
  for (const r of rows) lines.push(`| ${r.scenario} | ${cell(r.biha)} | ${cell(r.patroni)} | ${ratio(r.biha, r.patroni)} |`);
  return lines.join('\n');
}
