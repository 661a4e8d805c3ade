// Where a failover's time goes, read from the new leader's controller log: detection (the kill to
// the PreVote), PreVote, election (the vote to LEADER_RO), lease (LEADER_RO to LEADER_RW),
// promotion (LEADER_RW to PostgreSQL promoted, with its own steps) and the client (promoted to the
// first acknowledged write).
import type { LogEvent } from './logs.js';
import { fmtMs, line } from './report.js';

export const PHASES = ['detection', 'prevote', 'election', 'lease', 'promotion', 'client'] as const;
export type Phase = (typeof PHASES)[number];
export type Breakdown = Partial<Record<Phase, number>> & { steps?: Record<string, number> };

const at = (ev: readonly LogEvent[], test: (e: LogEvent) => boolean): number | undefined => ev.find(test)?.t;

/**
 * The phases of one failover. `zero` is the kill (wall clock ms) and `firstWrite` the first write
 * the new leader acknowledged (wall clock ms); `ev` the new leader's log from the kill on.
 */
export function failoverBreakdown(ev: readonly LogEvent[], zero: number, firstWrite: number): Breakdown {
  const pre = at(ev, (e) => e.msg.startsWith('state CANDIDATE') && e.fields['role'] === 'precandidate');
  const cand = at(ev, (e) => e.msg.startsWith('state CANDIDATE') && e.fields['role'] === 'candidate');
  const ro = at(ev, (e) => e.msg.startsWith('state LEADER_RO'));
  const rw = at(ev, (e) => e.msg.startsWith('state LEADER_RW'));
  const promoted = at(ev, (e) => /^done: promote/.test(e.msg));
  const stepsEv = ev.find((e) => e.msg === 'promotion steps (ms)');
  const out: Breakdown = {};
  const put = (k: Phase, a: number | undefined, b: number | undefined): void => {
    if (a !== undefined && b !== undefined) out[k] = b - a;
  };
  // A transfer (TimeoutNow) skips the PreVote: the election then starts at the candidacy.
  put('detection', zero, pre ?? cand);
  put('prevote', pre, cand);
  put('election', cand, ro);
  put('lease', ro, rw);
  put('promotion', rw, promoted);
  put('client', promoted, firstWrite);
  if (stepsEv) {
    const steps: Record<string, number> = {};
    for (const [k, v] of Object.entries(stepsEv.fields)) if (typeof v === 'number' && !['level', 'node', 'pid'].includes(k)) steps[k] = v;
    out.steps = steps;
  }
  return out;
}

export function formatBreakdown(b: Breakdown): string {
  const parts = PHASES.map((p) => (b[p] === undefined ? `${p} -` : `${p} ${Math.round(b[p])} ms`));
  const steps = b.steps ? ` (promotion steps: ${Object.entries(b.steps).map(([k, v]) => `${k} ${v}`).join(', ')} ms)` : '';
  return parts.join(', ') + steps;
}

/** The median of each phase over the runs. */
export function printBreakdowns(runs: readonly Breakdown[]): void {
  for (const p of PHASES) {
    line(`  ${p}`, runs.map((b) => b[p]).filter((x): x is number => x !== undefined), fmtMs);
  }
  const stepNames = [...new Set(runs.flatMap((b) => Object.keys(b.steps ?? {})))];
  for (const s of stepNames) line(`    promotion step ${s}`, runs.map((b) => b.steps?.[s]).filter((x): x is number => x !== undefined), fmtMs);
}
