// Errors of the control channel. One class with a code; the message is one line for a human.

export type BcpErrorCode =
  /** The other side did not prove the cluster secret, or refused ours (or its TLS certificate). */
  | 'auth'
  /** A request or a handshake did not finish in time. */
  | 'timeout'
  /** The connection closed (or the transport was closed) before the answer came. */
  | 'closed'
  /** No connection: refused, host not found, or the peer is not connected right now. */
  | 'unreachable'
  /** The remote request handler failed; the message is the remote one, verbatim. */
  | 'remote'
  /** The listen port is taken. */
  | 'addr_in_use'
  /** Listening failed for another reason (address not available, permission denied). */
  | 'listen'
  /** The other side broke the protocol (malformed, oversized, wrong version, unexpected frame). */
  | 'protocol';

export class BcpError extends Error {
  override readonly name = 'BcpError';
  readonly code: BcpErrorCode;
  /** For code 'remote': the code the remote handler's error carried ('error' when it had none). */
  readonly remoteCode: string | undefined;

  constructor(code: BcpErrorCode, message: string, options?: { cause?: unknown; remoteCode?: string }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.remoteCode = options?.remoteCode;
  }
}
