// Error types shared by the controller and bihactl.
//
// Every failure a user can see is a BihaError: it has a stable machine-readable `code`, a message
// that says what went wrong, an optional `hint` that says what to do, and the underlying `cause`.
// `oneLine()` turns any thrown value into the single line bihactl prints.

export class BihaError extends Error {
  readonly code: string;
  readonly hint?: string;

  constructor(code: string, message: string, opts?: { cause?: unknown; hint?: string }) {
    super(message, opts?.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'BihaError';
    this.code = code;
    if (opts?.hint !== undefined) this.hint = opts.hint;
  }
}

/** Named exit codes for bihactl. */
export const EXIT = {
  OK: 0,
  FAILURE: 1,
  BAD_ARGS: 2,
  BAD_STATE: 3,
  UNREACHABLE: 4,
  TIMEOUT: 5,
  /** A node refused a remote request: HTTP credentials wrong or missing, or remote management off. */
  DENIED: 6,
} as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

function collapse(s: string): string {
  return s.replace(/\s*\n\s*/g, ' ').trim();
}

/** "message (hint)" on one line, without a stack trace. */
export function oneLine(err: unknown): string {
  if (err instanceof BihaError) {
    const msg = collapse(err.message);
    return err.hint ? `${msg} (${collapse(err.hint)})` : msg;
  }
  if (err instanceof Error) {
    const msg = collapse(err.message) || err.name;
    const code = (err as { code?: unknown }).code;
    return typeof code === 'string' && !msg.includes(code) ? `${msg} [${code}]` : msg;
  }
  if (typeof err === 'string') return collapse(err);
  try {
    return collapse(JSON.stringify(err) ?? String(err));
  } catch {
    return String(err);
  }
}
