// Acknowledged writes: a client inserts sequential ids and remembers each id whose commit the
// server acknowledged; after a failover the ids missing on the new leader are the lost writes.
import { performance } from 'node:perf_hooks';
import type pg from 'pg';
import { pacedWrites } from '../../src/client/multihost.js';
import type { MultiHostTarget } from '../../src/client/multihost.js';

export interface Ack {
  id: number;
  /** performance.now() when the commit was acknowledged. */
  at: number;
  port: number;
}

/** The acknowledged ids not present, in ascending order. */
export function missingIds(acked: readonly number[], present: Iterable<number>): number[] {
  const have = new Set(present);
  return [...new Set(acked)].filter((id) => !have.has(id)).sort((a, b) => a - b);
}

export const ACKED_TABLE = 'bench_acked';

/**
 * Inserts (run, id) with id = 1, 2, 3... into bench_acked every `periodMs` for `seconds` through
 * the multi-host target (reconnecting after any error, 2 s query timeout) and returns the
 * acknowledged ones. An insert that failed or timed out is not acknowledged (it may still have
 * committed); its id is not reused.
 */
export async function writeAcked(t: MultiHostTarget, o: { run: number; periodMs: number; seconds: number; stop?: () => boolean }): Promise<{ acks: Ack[]; failed: number }> {
  const acks: Ack[] = [];
  const { failed } = await pacedWrites(t, o, async (c, id) => {
    await c.client.query({ text: `insert into ${ACKED_TABLE}(run, id, port) values ($1, $2, $3)`, values: [o.run, id, c.port], query_timeout: 2000 } as pg.QueryConfig);
    acks.push({ id, at: performance.now(), port: c.port });
  });
  return { acks, failed };
}

export const CREATE_ACKED = `create table if not exists ${ACKED_TABLE} (run int, id int, port int, at timestamptz default clock_timestamp(), primary key (run, id))`;
