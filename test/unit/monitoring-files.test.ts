// The Grafana dashboard and the Prometheus alert rules shipped in docs/ read only metrics the
// controller exports, and docs/operations.md lists exactly those metrics.
import * as fs from 'node:fs';
import { load } from 'js-yaml';
import { beforeAll, describe, expect, it } from 'vitest';
import { Metrics } from '../../src/controller/ops/metrics.js';
import { bihaNamesIn } from '../helpers/promtext.js';

const read = (rel: string): string => fs.readFileSync(new URL(`../../${rel}`, import.meta.url), 'utf8');

let exported: Set<string>;
beforeAll(async () => {
  exported = new Set(await new Metrics({ node_id: '1', node_name: '', region: '' }).names());
});

/** Names an expression reads that the controller does not export. */
function unknownIn(expr: string): string[] {
  return bihaNamesIn(expr).filter((n) => !exported.has(n));
}

describe('bihaNamesIn', () => {
  it('finds metric names and skips label values', () => {
    expect(bihaNamesIn('sum by (le) (rate(biha_control_rtt_seconds_bucket{slot="biha_node_2"}[5m])) and biha_x')).toEqual(['biha_control_rtt_seconds_bucket', 'biha_x']);
  });
});

interface Target {
  expr?: unknown;
  datasource?: { uid?: unknown };
}
interface Panel {
  id?: unknown;
  type?: unknown;
  title?: unknown;
  datasource?: { type?: unknown; uid?: unknown };
  targets?: Target[];
  panels?: Panel[];
}
interface Variable {
  name: string;
  type: string;
  query?: unknown;
  datasource?: { uid?: unknown };
}

describe('docs/grafana/biha-dashboard.json', () => {
  const dash = JSON.parse(read('docs/grafana/biha-dashboard.json')) as { title?: unknown; uid?: unknown; panels: Panel[]; templating: { list: Variable[] } };
  const panels = dash.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
  const queried = panels.filter((p) => p.type !== 'row');
  const exprs = queried.flatMap((p) => (p.targets ?? []).map((t) => String(t.expr)));

  it('is a dashboard with a Prometheus datasource variable and cluster and node variables', () => {
    expect(dash.title).toBe('biha');
    expect(typeof dash.uid).toBe('string');
    const vars = new Map(dash.templating.list.map((v) => [v.name, v]));
    expect(vars.get('DS_PROMETHEUS')).toMatchObject({ type: 'datasource', query: 'prometheus' });
    for (const name of ['cluster', 'node_name']) {
      expect(vars.get(name), name).toMatchObject({ type: 'query', datasource: { uid: '${DS_PROMETHEUS}' } });
    }
    const ids = panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('queries through ${DS_PROMETHEUS} in every panel and target, and filters by node', () => {
    expect(queried.length).toBeGreaterThan(10);
    for (const p of queried) {
      expect(p.datasource, String(p.title)).toEqual({ type: 'prometheus', uid: '${DS_PROMETHEUS}' });
      expect(p.targets?.length, String(p.title)).toBeGreaterThan(0);
      for (const t of p.targets ?? []) {
        expect(t.datasource?.uid, String(p.title)).toBe('${DS_PROMETHEUS}');
        expect(String(t.expr), String(p.title)).toContain('node_name=~"$node_name"');
      }
    }
  });

  it('reads only metrics the controller exports', () => {
    const variableQueries = dash.templating.list.map((v) => (typeof v.query === 'object' && v.query !== null ? String((v.query as { query?: unknown }).query ?? '') : ''));
    for (const e of [...exprs, ...variableQueries]) expect(unknownIn(e), e).toEqual([]);
  });

  it('shows leader and states, lag, timeline, elections, heartbeats, slots and the PostgreSQL roles', () => {
    const used = new Set(exprs.flatMap(bihaNamesIn));
    for (const n of [
      'biha_is_leader', 'biha_state', 'biha_replication_lag_bytes', 'biha_replication_lag_seconds', 'biha_timeline',
      'biha_elections_started_total', 'biha_elections_won_total', 'biha_peer_since_last_heartbeat_seconds',
      'biha_slot_retained_wal_bytes', 'biha_postgres_running', 'biha_postgres_primary', 'biha_postgres_replica',
    ]) expect(used.has(n), n).toBe(true);
  });
});

interface Rule {
  alert?: unknown;
  expr?: unknown;
  for?: unknown;
  labels?: { severity?: unknown };
  annotations?: { summary?: unknown; description?: unknown };
}

describe('docs/prometheus/biha-alerts.yml', () => {
  const doc = load(read('docs/prometheus/biha-alerts.yml')) as { groups?: Array<{ name?: unknown; rules?: Rule[] }> };
  const rules = (doc.groups ?? []).flatMap((g) => g.rules ?? []);

  it('is a rule file of alerts, each with an expression, a severity and a summary', () => {
    expect(doc.groups?.map((g) => g.name)).toEqual(['biha']);
    const names = rules.map((r) => r.alert);
    expect(new Set(names).size).toBe(names.length);
    for (const r of rules) {
      expect(r.alert, JSON.stringify(r)).toMatch(/^Biha[A-Za-z]+$/);
      expect(typeof r.expr, String(r.alert)).toBe('string');
      expect(r.labels?.severity, String(r.alert)).toMatch(/^(critical|warning)$/);
      expect(typeof r.annotations?.summary, String(r.alert)).toBe('string');
      if (r.for !== undefined) expect(r.for, String(r.alert)).toMatch(/^\d+[smh]$/);
    }
  });

  it('alerts on no leader, node error and offline, lag, elections, slots, PostgreSQL down, two primaries and callbacks', () => {
    expect(rules.map((r) => r.alert)).toEqual(expect.arrayContaining([
      'BihaNoLeader', 'BihaNodeError', 'BihaNodeOffline', 'BihaReplicationLagBytes', 'BihaReplicationLagSeconds', 'BihaFrequentElections',
      'BihaSlotRetainsWal', 'BihaSlotLost', 'BihaPostgresDown', 'BihaTwoPrimaries', 'BihaCallbackFailing',
    ]));
  });

  it('reads only metrics the controller exports', () => {
    for (const r of rules) {
      const expr = String(r.expr);
      expect(bihaNamesIn(expr).length, String(r.alert)).toBeGreaterThan(0);
      expect(unknownIn(expr), String(r.alert)).toEqual([]);
    }
  });
});

describe('docs/operations.md', () => {
  it('lists every metric the controller exports, and no other', () => {
    const doc = read('docs/operations.md');
    const section = doc.slice(doc.indexOf('## Prometheus'), doc.indexOf('\n## ', doc.indexOf('## Prometheus') + 1));
    const listed = [...section.matchAll(/^\| `(biha_[a-z0-9_]+)` \|/gm)].map((m) => m[1]!);
    const expected = [...exported].map((n) => n.replace(/_(bucket|sum|count)$/, '')).filter((n, i, all) => all.indexOf(n) === i);
    expect([...listed].sort()).toEqual(expected.sort());
    expect(section).toContain('docs/grafana/biha-dashboard.json');
    expect(section).toContain('docs/prometheus/biha-alerts.yml');
  });
});
