// The record of the last switchover this node ran as the leader (read by biha.last_switchover(),
// bihactl status --json and the log), and the wait that lets the SQL statement which asked for a
// switchover on the leader's own session return its answer before the fence restarts PostgreSQL.

export type SwitchoverState = 'started' | 'completed' | 'failed';

export interface SwitchoverRecord {
  /** The node that was to become the leader. */
  target: number;
  state: SwitchoverState;
  /** What happened, in words. */
  detail: string;
  started_at_ms: number;
  finished_at_ms: number | null;
}

export function switchoverStarted(target: number, now: number): SwitchoverRecord {
  return { target, state: 'started', detail: `switchover to node ${target} started`, started_at_ms: now, finished_at_ms: null };
}

export function switchoverFinished(r: SwitchoverRecord, ok: boolean, detail: string, now: number): SwitchoverRecord {
  return { ...r, state: ok ? 'completed' : 'failed', detail, finished_at_ms: now };
}

/** Runs one query against the local PostgreSQL (the controller's own connection). */
export type LocalQuery = (sql: string, params: unknown[]) => Promise<Array<Record<string, unknown>>>;

/**
 * Waits until backend `pid` is no longer running the statement it started before `beforeMs`
 * (epoch ms), or `timeoutMs` passed. True when the statement finished (or the backend is gone).
 * A query error counts as finished: the caller then goes on, as it would without the wait.
 */
export async function waitStatementDone(query: LocalQuery, pid: number, beforeMs: number, timeoutMs: number, everyMs = 10): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let running: boolean;
    try {
      const rows = await query(
        "select 1 from pg_stat_activity where pid = $1 and state = 'active' and query_start <= to_timestamp($2::double precision / 1000)",
        [pid, beforeMs],
      );
      running = rows.length > 0;
    } catch {
      return true;
    }
    if (!running) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
