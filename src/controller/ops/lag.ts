// A replication lag limit as the DBA writes it (the `lag` of /replica?lag= and --proxy-ro-max-lag).

const UNITS: Readonly<Record<string, number>> = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3, tb: 1024 ** 4 };

/**
 * The `lag` of /replica?lag=: bytes as an integer, or with a PostgreSQL memory unit (B, kB, MB,
 * GB, TB; 1kB = 1024 bytes; case is ignored; a fraction is allowed with a unit, as 1.5MB).
 * Returns null when the text is not such a value.
 */
export function parseLag(text: string): number | null {
  const m = /^\s*(\d{1,20}(?:\.\d{1,20})?)\s*([a-zA-Z]{1,2})?\s*$/.exec(text);
  if (!m || m[1] === undefined) return null;
  const unit = m[2] === undefined ? 1 : UNITS[m[2].toLowerCase()];
  if (unit === undefined) return null;
  if (m[2] === undefined && m[1].includes('.')) return null;
  const n = Math.floor(Number(m[1]) * unit);
  return Number.isSafeInteger(n) ? n : null;
}
