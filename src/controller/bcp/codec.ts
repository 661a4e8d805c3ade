// Frame codec of the control channel (BCP). Pure: takes and returns buffers, never touches a socket.
//
// On the wire a frame is a 4-byte big-endian length N (of what follows), then N bytes of msgpack
// encoding one map: { v, c, f, r, k, re, b } (see docs/protocol.md). Anything the peer sends that is
// not such a frame comes back from FrameDecoder.push() as an error value; push() never throws.

import { Packr, Unpackr } from 'msgpackr';

export const PROTOCOL_VERSION = 1;
/** Largest accepted body (the bytes after the length prefix). */
export const MAX_FRAME_BYTES = 1 << 20;
/** Longest accepted message kind. */
export const MAX_KIND_LENGTH = 64;
const HEADER_BYTES = 4;
const MAX_REQUEST_ID = 0xffff_ffff;

export interface Frame {
  /** Protocol version (PROTOCOL_VERSION). */
  v: number;
  /** Cluster id. */
  c: string;
  /** Sender node id; 0 = a client such as bihactl. */
  f: number;
  /** Request id; 0 = no reply expected. */
  r: number;
  /** Message kind. */
  k: string;
  /** True on replies. */
  re: boolean;
  /** Body. */
  b: unknown;
}

export type DecodeErrorKind = 'oversized' | 'malformed' | 'version';
export type DecodeError = { error: DecodeErrorKind; detail: string };

export function isDecodeError(x: Frame | DecodeError): x is DecodeError {
  return 'error' in x;
}

/** Raised by encodeFrame only (our own frames); decoding reports errors as values. */
export class FrameEncodeError extends Error {
  override readonly name = 'FrameEncodeError';
  readonly code: 'oversized' | 'unencodable';
  constructor(code: 'oversized' | 'unencodable', message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

const packr = new Packr({ useRecords: false });
const unpackr = new Unpackr({ useRecords: false, copyBuffers: true, structuredClone: false, mapsAsObjects: true });

/** Encodes a frame with its length prefix. Throws FrameEncodeError if the body is too large or cannot be encoded. */
export function encodeFrame(frame: Frame, maxBytes: number = MAX_FRAME_BYTES): Buffer {
  let body: Buffer;
  try {
    body = packr.pack({ v: frame.v, c: frame.c, f: frame.f, r: frame.r, k: frame.k, re: frame.re, b: frame.b });
  } catch (err) {
    throw new FrameEncodeError('unencodable', `cannot encode a '${frame.k}' frame: ${errorText(err)}`, { cause: err });
  }
  if (body.length > maxBytes) {
    throw new FrameEncodeError('oversized', `a '${frame.k}' frame of ${body.length} bytes exceeds the limit of ${maxBytes} bytes`);
  }
  const out = Buffer.allocUnsafe(HEADER_BYTES + body.length);
  out.writeUInt32BE(body.length, 0);
  body.copy(out, HEADER_BYTES);
  return out;
}

/**
 * Incremental decoder for one connection. Feed it every chunk read from the socket; it returns the
 * frames completed so far. The first error poisons it: every later push() returns that error again.
 */
export class FrameDecoder {
  private readonly maxBytes: number;
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** Body length announced by the current header, or null while the header is incomplete. */
  private need: number | null = null;
  private poisoned: DecodeError | null = null;

  constructor(maxBytes: number = MAX_FRAME_BYTES) {
    this.maxBytes = maxBytes;
  }

  /** Bytes received but not yet returned as a frame (a partial frame, header included). */
  get pendingBytes(): number {
    return this.buffered + (this.need === null ? 0 : HEADER_BYTES);
  }

  push(chunk: Buffer): Array<Frame | DecodeError> {
    if (this.poisoned) return [this.poisoned];
    const out: Array<Frame | DecodeError> = [];
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    for (;;) {
      if (this.need === null) {
        if (this.buffered < HEADER_BYTES) break;
        const n = this.take(HEADER_BYTES).readUInt32BE(0);
        if (n > this.maxBytes) {
          out.push(this.poison({ error: 'oversized', detail: `frame of ${n} bytes exceeds the limit of ${this.maxBytes} bytes` }));
          break;
        }
        this.need = n;
      }
      if (this.buffered < this.need) break;
      const body = this.take(this.need);
      this.need = null;
      const decoded = decodeBody(body);
      if (isDecodeError(decoded)) {
        out.push(this.poison(decoded));
        break;
      }
      out.push(decoded);
    }
    return out;
  }

  private poison(err: DecodeError): DecodeError {
    this.poisoned = err;
    this.chunks = [];
    this.buffered = 0;
    this.need = null;
    return err;
  }

  /** Removes and returns the first n buffered bytes (n <= buffered). */
  private take(n: number): Buffer {
    const first = this.chunks[0];
    let res: Buffer;
    if (first !== undefined && first.length >= n) {
      res = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
    } else {
      const all = Buffer.concat(this.chunks, this.buffered);
      res = all.subarray(0, n);
      this.chunks = all.length > n ? [all.subarray(n)] : [];
    }
    this.buffered -= n;
    return res;
  }
}

/** Decodes one frame body (without the length prefix). */
export function decodeBody(body: Buffer): Frame | DecodeError {
  if (body.length === 0) return { error: 'malformed', detail: 'empty frame' };
  let value: unknown;
  try {
    value = unpackr.unpack(body);
  } catch (err) {
    return { error: 'malformed', detail: `invalid msgpack: ${msgpackErrorText(err)}` };
  }
  return validateFrame(value);
}

function validateFrame(value: unknown): Frame | DecodeError {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Map || ArrayBuffer.isView(value)) {
    return { error: 'malformed', detail: `frame is ${describe(value)}, not a map` };
  }
  const o = value as Record<string, unknown>;
  if (typeof o.v !== 'number') return { error: 'malformed', detail: `field v (version) is ${describe(o.v)}, not a number` };
  if (o.v !== PROTOCOL_VERSION) {
    return { error: 'version', detail: `protocol version ${String(o.v)} is not supported (this node speaks version ${PROTOCOL_VERSION})` };
  }
  if (typeof o.c !== 'string') return bad('c', 'cluster id', o.c, 'a string');
  if (!isUint(o.f, Number.MAX_SAFE_INTEGER)) return bad('f', 'sender id', o.f, 'a non-negative integer');
  if (!isUint(o.r, MAX_REQUEST_ID)) return bad('r', 'request id', o.r, 'an unsigned 32-bit integer');
  if (typeof o.k !== 'string' || o.k.length === 0 || o.k.length > MAX_KIND_LENGTH) {
    return bad('k', 'kind', o.k, `a string of 1 to ${MAX_KIND_LENGTH} characters`);
  }
  if (typeof o.re !== 'boolean') return bad('re', 'reply flag', o.re, 'a boolean');
  if (!Object.prototype.hasOwnProperty.call(o, 'b')) return { error: 'malformed', detail: 'field b (body) is missing' };
  return { v: o.v, c: o.c, f: o.f, r: o.r, k: o.k, re: o.re, b: o.b };
}

function bad(field: string, what: string, got: unknown, want: string): DecodeError {
  return { error: 'malformed', detail: `field ${field} (${what}) is ${describe(got)}, not ${want}` };
}

function isUint(x: unknown, max: number): x is number {
  return typeof x === 'number' && Number.isInteger(x) && x >= 0 && x <= max;
}

function describe(x: unknown): string {
  if (x === undefined) return 'missing';
  if (x === null) return 'null';
  if (Array.isArray(x)) return 'an array';
  if (x instanceof Map) return 'a map with non-string keys';
  if (ArrayBuffer.isView(x)) return 'binary data';
  return `of type ${typeof x}`;
}

function msgpackErrorText(err: unknown): string {
  const text = errorText(err);
  // msgpackr appends a JSON view of the data to this message; it is not ours to log.
  if (text.startsWith('Data read, but end of buffer not reached')) return 'trailing bytes after the value';
  return text.length > 120 ? `${text.slice(0, 120)}...` : text;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
