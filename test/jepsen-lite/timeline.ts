// The timeline picture of a run (SVG): one lane per node with its raft state and term over time
// (from the controller logs), when its PostgreSQL was a primary and when its controller did not
// answer (from the status samples), its acknowledged / indeterminate writes and lost writes; fault
// intervals as shaded bands; write throughput and unavailability windows at the bottom.
import type { NemesisRecord, OpRecord, SampleRecord } from './history.js';
import type { LogEvent, StateEvent } from './logs.js';
import type { SplitBrain, Window } from './checker.js';

export interface TimelineInput {
  readonly title: string;
  readonly subtitle: string;
  readonly verdict: string;
  readonly ok: boolean;
  readonly nodes: readonly number[];
  readonly start: number;
  readonly end: number;
  /** Time 0 of the axis labels (the workload start, as in summary.txt). */
  readonly zero: number;
  readonly states: ReadonlyMap<number, readonly StateEvent[]>;
  readonly events: readonly LogEvent[];
  readonly samples: readonly SampleRecord[];
  readonly ops: readonly OpRecord[];
  readonly lost: readonly OpRecord[];
  readonly splitBrain: readonly SplitBrain[];
  readonly nemeses: readonly NemesisRecord[];
  readonly windows: readonly Window[];
}

const STATE_COLOR: Record<string, string> = {
  LEADER_RW: '#2e7d32',
  LEADER_RO: '#9ccc65',
  FOLLOWER: '#90caf9',
  FOLLOWER_OFFERED: '#ffe082',
  FOLLOWER_VOTING: '#ffe082',
  CANDIDATE: '#ffb300',
  CSTATE_FORMING: '#ffe082',
  NODE_ERROR: '#c62828',
  NODE_ERROR_VOTING: '#e57373',
  STARTUP: '#bdbdbd',
};

const FAULT_COLORS = ['#ef9a9a', '#ce93d8', '#9fa8da', '#80cbc4', '#ffcc80', '#bcaaa4', '#b0bec5'];

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

export function renderTimeline(t: TimelineInput): string {
  const W = 1600;
  const left = 110;
  const right = 30;
  const plotW = W - left - right;
  const span = Math.max(1, t.end - t.start);
  const x = (ms: number): number => left + ((Math.min(Math.max(ms, t.start), t.end) - t.start) / span) * plotW;
  const out: string[] = [];
  const faultNames = [...new Set(t.nemeses.map((n) => n.name))];
  const colorOf = (name: string): string => FAULT_COLORS[faultNames.indexOf(name) % FAULT_COLORS.length]!;

  // Fault rows: intervals stacked so that overlapping (mixed) faults are both visible.
  const rows: number[] = [];
  const faultRow = t.nemeses.map((n) => {
    let r = rows.findIndex((endAt) => endAt <= n.start);
    if (r < 0) {
      r = rows.length;
      rows.push(0);
    }
    rows[r] = n.end || t.end;
    return r;
  });
  const headerH = 64;
  const faultTop = headerH;
  const faultH = Math.max(1, rows.length) * 22;
  const lanesTop = faultTop + faultH + 14;
  const laneH = 58;
  const lanesH = t.nodes.length * laneH;
  const thrTop = lanesTop + lanesH + 34;
  const thrH = 70;
  const unavTop = thrTop + thrH + 10;
  const legendTop = unavTop + 40;
  const H = legendTop + 70;

  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="DejaVu Sans, Arial, sans-serif" font-size="11">`);
  out.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="#ffffff"/>`);
  out.push('<defs><pattern id="down" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#ffffff"/><rect width="3" height="6" fill="#757575"/></pattern></defs>');
  out.push(`<text x="${left}" y="20" font-size="15" font-weight="bold">${esc(t.title)}</text>`);
  out.push(`<text x="${left}" y="38" font-size="12">${esc(t.subtitle)}</text>`);
  out.push(`<text x="${left}" y="55" font-size="13" font-weight="bold" fill="${t.ok ? '#2e7d32' : '#c62828'}">${esc(t.verdict)}</text>`);

  // Fault bands across the lanes, and labelled bars in the fault rows.
  out.push('<g id="faults">');
  t.nemeses.forEach((n, k) => {
    const x0 = x(n.start);
    const x1 = Math.max(x0 + 2, x(n.end || t.end));
    const c = colorOf(n.name);
    out.push(`<rect x="${x0.toFixed(1)}" y="${lanesTop - 4}" width="${(x1 - x0).toFixed(1)}" height="${lanesH + 4}" fill="${c}" fill-opacity="0.22"/>`);
    const y = faultTop + faultRow[k]! * 22;
    out.push(`<rect x="${x0.toFixed(1)}" y="${y}" width="${(x1 - x0).toFixed(1)}" height="18" fill="${c}" stroke="#555" stroke-width="0.5"><title>${esc(`${n.name}: ${n.what} (${((n.end - n.start) / 1000).toFixed(1)} s)`)}</title></rect>`);
    out.push(`<text x="${(x0 + 3).toFixed(1)}" y="${y + 13}" font-size="10">${esc(n.name)}${n.nodes.length && n.nodes.length < t.nodes.length ? ` ${esc(n.nodes.join(','))}` : ''}</text>`);
  });
  out.push(`<text x="8" y="${faultTop + 13}" font-weight="bold">faults</text>`);
  out.push('</g>');

  // Node lanes.
  t.nodes.forEach((node, k) => {
    const y = lanesTop + k * laneH;
    out.push(`<g id="node-${node}">`);
    out.push(`<text x="8" y="${y + 17}" font-weight="bold">node ${node}</text>`);
    out.push(`<text x="8" y="${y + 31}" font-size="9" fill="#555">state / term</text>`);
    out.push(`<text x="8" y="${y + 46}" font-size="9" fill="#555">writes</text>`);
    const samples = t.samples.filter((s) => s.node === node).sort((a, b) => a.at - b.at);
    // Raft state segments with the term.
    const st = t.states.get(node) ?? [];
    let lastTerm = -1;
    for (let i = 0; i < st.length; i++) {
      const s = st[i]!;
      const nextAt = st[i + 1]?.at ?? t.end;
      if (nextAt < t.start) continue;
      const x0 = x(s.at);
      const x1 = x(nextAt);
      const c = STATE_COLOR[s.state] ?? '#e0e0e0';
      out.push(`<rect x="${x0.toFixed(1)}" y="${y + 8}" width="${Math.max(0.8, x1 - x0).toFixed(1)}" height="18" fill="${c}"><title>${esc(`node ${node}: ${s.state}, term ${s.term}, leader ${s.leader || '-'} from ${((s.at - t.start) / 1000).toFixed(2)} s`)}</title></rect>`);
      if (s.term !== lastTerm && x1 - x0 > 14) {
        out.push(`<text x="${(x0 + 2).toFixed(1)}" y="${y + 21}" font-size="9" fill="${s.state === 'LEADER_RW' || s.state === 'NODE_ERROR' ? '#fff' : '#000'}">t${s.term}</text>`);
        lastTerm = s.term;
      }
    }
    // Sampled every ~0.5 s: controller not answering (hatched over the state bar) and PostgreSQL
    // answering as a primary (thin dark bar above it).
    for (let i = 0; i < samples.length; i++) {
      const s = samples[i]!;
      const next = Math.min(samples[i + 1]?.at ?? s.at + 500, s.at + 3000);
      const sx = x(s.at);
      const sw = Math.max(1, x(next) - sx);
      if (s.state === null) out.push(`<rect x="${sx.toFixed(1)}" y="${y + 8}" width="${sw.toFixed(1)}" height="18" fill="url(#down)"><title>no answer from the controller</title></rect>`);
      if (s.pgRole === 'PRIMARY') out.push(`<rect x="${sx.toFixed(1)}" y="${y + 1}" width="${sw.toFixed(1)}" height="5" fill="#1b5e20"><title>PostgreSQL answers as a primary</title></rect>`);
    }
    // Log events: restarts, fences, NODE_ERROR.
    for (const e of t.events.filter((ev) => ev.node === node && ev.at >= t.start && ev.at <= t.end)) {
      const ex = x(e.at);
      const mark = e.kind === 'started' ? '▲' : e.kind === 'fence' ? '⛔' : e.kind === 'node_error' ? '✖' : e.kind === 'promote' ? '★' : e.kind === 'vote_fence' ? '◆' : e.kind === 'pg_restart' ? '↻' : e.kind === 'rewind' ? '⟲' : '▼';
      out.push(`<text x="${ex.toFixed(1)}" y="${y + 7}" font-size="8" text-anchor="middle" fill="#333">${mark}<title>${esc(`${e.kind}: ${e.msg}`)}</title></text>`);
    }
    // Writes acknowledged on this node: ok (green), indeterminate (orange).
    const acks = t.ops.filter((o) => o.node === node && o.outcome !== 'fail');
    const px = new Map<number, 'ok' | 'info'>();
    for (const o of acks) {
      const px0 = Math.round(x(o.complete));
      if (px.get(px0) !== 'info') px.set(px0, o.outcome === 'info' ? 'info' : 'ok');
    }
    for (const [p, kind] of px) out.push(`<line x1="${p}" y1="${y + 34}" x2="${p}" y2="${y + (kind === 'info' ? 52 : 46)}" stroke="${kind === 'info' ? '#ef6c00' : '#43a047'}" stroke-width="1"/>`);
    for (const o of t.lost.filter((l) => l.node === node)) {
      const lx = x(o.complete);
      out.push(`<path d="M${(lx - 4).toFixed(1)},${y + 36} l8,8 m0,-8 l-8,8" stroke="#d50000" stroke-width="2"><title>${esc(`LOST: ${o.value} acknowledged by node ${node} in term ${o.term ?? '?'}`)}</title></path>`);
    }
    out.push(`<line x1="${left}" y1="${y + laneH - 2}" x2="${W - right}" y2="${y + laneH - 2}" stroke="#e0e0e0"/>`);
    out.push('</g>');
  });

  // Split-brain witnesses.
  for (const s of t.splitBrain) {
    for (const op of [s.earlier, s.later]) {
      const sx = x(op.complete);
      out.push(`<line x1="${sx.toFixed(1)}" y1="${lanesTop}" x2="${sx.toFixed(1)}" y2="${lanesTop + lanesH}" stroke="#d500f9" stroke-width="2" stroke-dasharray="4,2"><title>${esc(`split-brain (${s.kind}): ${s.message}`)}</title></line>`);
    }
  }

  // Time axis.
  const axisY = lanesTop + lanesH + 4;
  out.push(`<line x1="${left}" y1="${axisY}" x2="${W - right}" y2="${axisY}" stroke="#000"/>`);
  const spanS = span / 1000;
  const step = spanS > 600 ? 60 : spanS > 240 ? 30 : spanS > 100 ? 10 : 5;
  const firstTick = Math.ceil((t.start - t.zero) / 1000 / step) * step;
  for (let s = firstTick; t.zero + s * 1000 <= t.end; s += step) {
    const tx = x(t.zero + s * 1000);
    out.push(`<line x1="${tx.toFixed(1)}" y1="${axisY}" x2="${tx.toFixed(1)}" y2="${axisY + 5}" stroke="#000"/>`);
    out.push(`<text x="${tx.toFixed(1)}" y="${axisY + 17}" text-anchor="middle" font-size="10">${s} s</text>`);
  }

  // Throughput per second: ok up, info and fail down.
  const buckets = Math.ceil(span / 1000);
  const okB = new Array<number>(buckets).fill(0);
  const infoB = new Array<number>(buckets).fill(0);
  const failB = new Array<number>(buckets).fill(0);
  for (const o of t.ops) {
    const b = Math.floor((o.complete - t.start) / 1000);
    if (b < 0 || b >= buckets) continue;
    if (o.outcome === 'ok') okB[b]!++;
    else if (o.outcome === 'info') infoB[b]!++;
    else failB[b]!++;
  }
  const maxB = Math.max(1, ...okB, ...infoB.map((v, i) => v + failB[i]!));
  const mid = thrTop + thrH / 2;
  const scale = thrH / 2 / maxB;
  out.push(`<text x="8" y="${thrTop + 12}" font-weight="bold">writes / s</text>`);
  out.push(`<text x="8" y="${thrTop + 26}" font-size="9" fill="#43a047">ok (up)</text>`);
  out.push(`<text x="8" y="${thrTop + 38}" font-size="9" fill="#ef6c00">info / fail (down)</text>`);
  out.push(`<text x="${left - 4}" y="${thrTop + 8}" font-size="9" text-anchor="end">${maxB}</text>`);
  const bw = plotW / buckets;
  for (let b = 0; b < buckets; b++) {
    const bx = left + b * bw;
    if (okB[b]) out.push(`<rect x="${bx.toFixed(1)}" y="${(mid - okB[b]! * scale).toFixed(1)}" width="${Math.max(0.8, bw - 0.3).toFixed(1)}" height="${(okB[b]! * scale).toFixed(1)}" fill="#43a047"/>`);
    if (infoB[b]) out.push(`<rect x="${bx.toFixed(1)}" y="${mid}" width="${Math.max(0.8, bw - 0.3).toFixed(1)}" height="${(infoB[b]! * scale).toFixed(1)}" fill="#ef6c00"/>`);
    if (failB[b]) out.push(`<rect x="${bx.toFixed(1)}" y="${(mid + infoB[b]! * scale).toFixed(1)}" width="${Math.max(0.8, bw - 0.3).toFixed(1)}" height="${(failB[b]! * scale).toFixed(1)}" fill="#e57373"/>`);
  }
  out.push(`<line x1="${left}" y1="${mid}" x2="${W - right}" y2="${mid}" stroke="#9e9e9e" stroke-width="0.5"/>`);

  // Unavailability windows.
  out.push(`<text x="8" y="${unavTop + 12}" font-weight="bold">no write acked</text>`);
  for (const w of t.windows) {
    const x0 = x(w.from);
    const x1 = Math.max(x0 + 1, x(w.to));
    out.push(`<rect x="${x0.toFixed(1)}" y="${unavTop + 2}" width="${(x1 - x0).toFixed(1)}" height="12" fill="#d32f2f"><title>${esc(`${(w.ms / 1000).toFixed(1)} s without an acknowledged write${w.faults.length ? ` (${w.faults.join(', ')})` : ''}`)}</title></rect>`);
    if (x1 - x0 > 24) out.push(`<text x="${((x0 + x1) / 2).toFixed(1)}" y="${unavTop + 27}" font-size="9" text-anchor="middle">${(w.ms / 1000).toFixed(1)} s</text>`);
  }

  // Legend.
  let lx = left;
  let ly = legendTop;
  const item = (color: string, label: string, shape: 'box' | 'line' | 'x' = 'box'): void => {
    if (shape === 'box') out.push(`<rect x="${lx}" y="${ly}" width="14" height="10" fill="${color}" stroke="#999" stroke-width="0.3"/>`);
    else if (shape === 'line') out.push(`<line x1="${lx + 7}" y1="${ly - 2}" x2="${lx + 7}" y2="${ly + 12}" stroke="${color}" stroke-width="2"/>`);
    else out.push(`<path d="M${lx + 3},${ly} l8,8 m0,-8 l-8,8" stroke="${color}" stroke-width="2"/>`);
    out.push(`<text x="${lx + 18}" y="${ly + 9}">${esc(label)}</text>`);
    lx += 30 + label.length * 7;
  };
  for (const s of ['LEADER_RW', 'LEADER_RO', 'FOLLOWER', 'CANDIDATE', 'FOLLOWER_VOTING', 'NODE_ERROR', 'STARTUP']) item(STATE_COLOR[s]!, s);
  item('url(#down)', 'controller not answering');
  item('#1b5e20', 'PostgreSQL answers as primary (thin bar)');
  lx = left;
  ly += 22;
  item('#43a047', 'write acknowledged (ok)', 'line');
  item('#ef6c00', 'indeterminate (info)', 'line');
  item('#d50000', 'LOST acknowledged write', 'x');
  item('#d500f9', 'split-brain witness', 'line');
  out.push(`<text x="${lx}" y="${ly + 9}">▲ controller started  ★ promoted  ◆ vote fenced WAL  ⛔ fenced  ↻ PG restarted  ✖ NODE_ERROR; bands: faults</text>`);
  out.push('</svg>');
  return out.join('\n');
}
