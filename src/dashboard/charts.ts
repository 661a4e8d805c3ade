// Small uPlot charts of the last minutes, one line per node: replication lag in bytes, replay lag
// in time, and the biha state as a level (leader at the top, unknown at the bottom).
import uPlot from 'uplot';
import type { DashSample } from '../controller/ops/dashboard/wire.js';
import { el } from './dom.js';
import { STATE_LEVEL_NAMES, fmtBytes, fmtClock, fmtMs, stateLevel } from './format.js';

const WINDOW_MS = 5 * 60_000;
const HEIGHT = 160;
const COLORS = ['#2563eb', '#16a34a', '#dc2626', '#9333ea', '#ea580c', '#0891b2', '#ca8a04', '#db2777'];

type Point = DashSample['nodes'][number];

interface ChartSpec {
  title: string;
  value(p: Point, index: number): number | null;
  ticks(v: number): string;
  /** Fixed y range and splits (the state chart); free otherwise. */
  levels?: readonly string[];
}

const SPECS: readonly ChartSpec[] = [
  { title: 'replication lag (bytes)', value: (p) => p.lag_bytes, ticks: (v) => fmtBytes(v) },
  { title: 'replay lag (time)', value: (p) => p.lag_ms, ticks: (v) => fmtMs(v) },
  // Lines of different nodes at the same level are drawn a little apart.
  { title: 'state', value: (p, i) => stateLevel(p.state) + i * 0.08, ticks: (v) => STATE_LEVEL_NAMES[Math.round(v)] ?? '', levels: STATE_LEVEL_NAMES },
];

function options(spec: ChartSpec, ids: readonly number[], width: number): uPlot.Options {
  const levels = spec.levels;
  return {
    title: spec.title,
    width,
    height: HEIGHT,
    cursor: { drag: { x: false, y: false } },
    scales: { x: { time: true }, y: levels ? { range: [-0.3, levels.length - 0.5] } : { range: (_u, _min, max) => [0, Math.max(1, max * 1.1)] } },
    series: [
      {},
      ...ids.map((id, i) => ({
        label: `node ${id}`,
        stroke: COLORS[i % COLORS.length] ?? '#555',
        width: 1.5,
        spanGaps: false,
        points: { show: false },
        value: (_u: uPlot, v: number | null) => (v === null ? '—' : spec.ticks(v)),
        ...(levels ? { paths: uPlot.paths.stepped?.({ align: 1 }) } : {}),
      })),
    ],
    axes: [
      { values: (_u, splits) => splits.map((v) => fmtClock(v * 1000)) },
      {
        size: levels ? 100 : 80,
        values: (_u, splits) => splits.map((v) => spec.ticks(v)),
        ...(levels ? { splits: () => levels.map((_n, i) => i) } : {}),
      },
    ],
  };
}

export class Charts {
  private samples: DashSample[] = [];
  private ids: number[] = [];
  private plots: uPlot[] = [];
  private readonly boxes: HTMLElement[];

  constructor(root: HTMLElement) {
    this.boxes = SPECS.map(() => el('div', 'chart'));
    root.replaceChildren(...this.boxes);
    new ResizeObserver(() => this.resize()).observe(root);
  }

  reset(samples: readonly DashSample[]): void {
    this.samples = [...samples].sort((a, b) => a.t_ms - b.t_ms);
    this.refresh();
  }

  add(sample: DashSample): void {
    const last = this.samples.at(-1);
    if (last && sample.t_ms <= last.t_ms) return;
    this.samples.push(sample);
    this.refresh();
  }

  private refresh(): void {
    const newest = this.samples.at(-1)?.t_ms ?? 0;
    this.samples = this.samples.filter((s) => s.t_ms >= newest - WINDOW_MS);
    const ids = [...new Set(this.samples.flatMap((s) => s.nodes.map((n) => n.id)))].sort((a, b) => a - b);
    if (ids.join() !== this.ids.join() || this.plots.length === 0) this.rebuild(ids);
    SPECS.forEach((spec, k) => this.plots[k]?.setData(this.data(spec)));
  }

  private data(spec: ChartSpec): uPlot.AlignedData {
    const xs = this.samples.map((s) => s.t_ms / 1000);
    const ys = this.ids.map((id, i) => this.samples.map((s) => {
      const p = s.nodes.find((n) => n.id === id);
      return p ? spec.value(p, i) : null;
    }));
    return [xs, ...ys];
  }

  private rebuild(ids: number[]): void {
    for (const p of this.plots) p.destroy();
    this.ids = ids;
    this.plots = SPECS.map((spec, k) => {
      const box = this.boxes[k]!;
      return new uPlot(options(spec, ids, this.widthOf(box)), this.data(spec), box);
    });
  }

  private widthOf(box: HTMLElement): number {
    return Math.max(240, Math.floor(box.clientWidth || 320));
  }

  private resize(): void {
    this.plots.forEach((p, k) => {
      const box = this.boxes[k];
      if (box) p.setSize({ width: this.widthOf(box), height: HEIGHT });
    });
  }
}
