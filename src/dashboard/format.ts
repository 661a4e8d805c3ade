// How the page writes sizes, durations and times. Pure.

const BYTE_UNITS = ['B', 'kB', 'MB', 'GB', 'TB'] as const;

/** Bytes with a PostgreSQL unit (1 kB = 1024 bytes); '—' when unknown. */
export function fmtBytes(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '—';
  let v = Math.max(0, n);
  let u = 0;
  while (v >= 1024 && u < BYTE_UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 ? String(Math.round(v)) : v.toFixed(v < 10 ? 1 : 0)} ${BYTE_UNITS[u]}`;
}

/** A duration: 250 ms, 3.2 s, 4 min 5 s, 2 h 3 min; '—' when unknown. */
export function fmtMs(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '—';
  const v = Math.max(0, ms);
  if (v < 10) return `${Number(v.toFixed(1))} ms`;
  if (v < 1000) return `${Math.round(v)} ms`;
  if (v < 60_000) return `${(v / 1000).toFixed(v < 10_000 ? 1 : 0)} s`;
  if (v < 3_600_000) return `${Math.floor(v / 60_000)} min ${Math.floor((v % 60_000) / 1000)} s`;
  return `${Math.floor(v / 3_600_000)} h ${Math.floor((v % 3_600_000) / 60_000)} min`;
}

/** The local wall-clock time of an epoch-ms instant, as HH:MM:SS. */
export function fmtClock(ms: number): string {
  const d = new Date(ms);
  const p = (x: number): string => String(x).padStart(2, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** A chart level per biha state: higher is closer to leading; 0 when unknown. */
export function stateLevel(state: string): number {
  if (state === 'LEADER_RW') return 6;
  if (state === 'LEADER_RO') return 5;
  if (state.startsWith('FOLLOWER')) return 4;
  if (state === 'CANDIDATE') return 3;
  if (state.startsWith('NODE_ERROR')) return 2;
  if (state === 'STARTUP' || state === 'CSTATE_FORMING') return 1;
  return 0;
}

export const STATE_LEVEL_NAMES: readonly string[] = ['UNKNOWN', 'STARTUP', 'NODE_ERROR', 'CANDIDATE', 'FOLLOWER', 'LEADER_RO', 'LEADER_RW'];

/** HTTP basic credentials (RFC 7617, UTF-8). */
export function basicAuth(user: string, password: string): string {
  const bytes = new TextEncoder().encode(`${user}:${password}`);
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return `Basic ${btoa(bin)}`;
}
