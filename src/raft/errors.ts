// Errors raised by the pure raft core. Only programming errors and invalid config changes throw;
// everything a peer can cause is handled as data (a rejected message, a refused proposal).

export type RaftErrorCode = 'invalid_change' | 'invalid_state' | 'invalid_transition';

export class RaftError extends Error {
  override readonly name = 'RaftError';
  readonly code: RaftErrorCode;

  constructor(code: RaftErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}
