// WAL positions. PostgreSQL prints an LSN as two 32-bit hex halves ("0/59029D50"); we keep it as a
// plain number (hi * 2^32 + lo). Real clusters stay far below 2^53 bytes of WAL, so a number is exact.

import { BihaError } from '../errors.js';

const TWO32 = 0x1_0000_0000;
const LSN_RE = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/;

export function parseLsn(text: string): number {
  const m = LSN_RE.exec(text.trim());
  if (!m || m[1] === undefined || m[2] === undefined) {
    throw new BihaError('bad_lsn', `"${text}" is not a WAL position (expected the form 0/59029D50)`);
  }
  return parseInt(m[1], 16) * TWO32 + parseInt(m[2], 16);
}

/** Like parseLsn, but NULL / undefined / empty stay null. */
export function parseLsnOrNull(text: string | null | undefined): number | null {
  if (text === null || text === undefined || text === '') return null;
  return parseLsn(text);
}

/** A WAL position from text that may be anything (a status file's field): null unless it is one. */
export function lsnOf(text: unknown): number | null {
  if (typeof text !== 'string') return null;
  try {
    return parseLsn(text);
  } catch {
    return null;
  }
}

export function formatLsn(n: number): string {
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new BihaError('bad_lsn', `${n} is not a WAL position`);
  }
  const hi = Math.floor(n / TWO32);
  const lo = n % TWO32;
  return `${hi.toString(16).toUpperCase()}/${lo.toString(16).toUpperCase()}`;
}

/** Timeline of a WAL segment file name such as 000000020000000000000059 (or 00000002.history). */
export function tliFromWalFile(name: string): number {
  const base = name.slice(name.lastIndexOf('/') + 1);
  const m = /^([0-9A-Fa-f]{8})(?:[0-9A-Fa-f]{16}(?:\.partial)?|\.history)?$/.exec(base);
  if (!m || m[1] === undefined) {
    throw new BihaError('bad_wal_file', `"${name}" is not a WAL file name`);
  }
  return parseInt(m[1], 16);
}
