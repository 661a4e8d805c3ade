// Request bodies of the remote management API: JSON objects of at most 64 KB.
import type { IncomingMessage } from 'node:http';

export const MAX_BODY_BYTES = 64 * 1024;

/** A request the API refuses, with its HTTP status and a one-line message. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code: string,
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

/** The body's bytes; refuses (413) more than `limit` bytes, whether announced or sent. */
export async function readBody(req: IncomingMessage, limit = MAX_BODY_BYTES): Promise<Buffer> {
  const announced = Number(req.headers['content-length'] ?? '0');
  if (Number.isFinite(announced) && announced > limit) {
    req.resume();
    throw new HttpError(413, `the request body is larger than ${limit} bytes`, 'body_too_large');
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const b = chunk as Buffer;
    size += b.length;
    if (size > limit) {
      req.resume();
      throw new HttpError(413, `the request body is larger than ${limit} bytes`, 'body_too_large');
    }
    chunks.push(b);
  }
  return Buffer.concat(chunks);
}

/**
 * The body as a JSON object: an empty body is {}; anything else must be a JSON object
 * (400 with a one-line message otherwise).
 */
export function parseJsonObject(body: Buffer): Record<string, unknown> {
  const text = body.toString('utf8').trim();
  if (text === '') return {};
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    const why = (e instanceof Error ? e.message : String(e)).split('\n')[0] ?? '';
    throw new HttpError(400, `the request body is not valid JSON (${why})`, 'bad_json');
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new HttpError(400, 'the request body must be a JSON object, such as {"candidate": 2}', 'bad_json');
  return v as Record<string, unknown>;
}

/** What an API route answers: a status, a JSON body, extra headers. */
export interface HttpReply {
  readonly status: number;
  readonly body: unknown;
  readonly headers?: Readonly<Record<string, string>>;
}

/** The remote management API as the HTTP server sees it (ops/api.ts implements it). */
export interface HttpApi {
  /** Paths the API answers. */
  readonly paths: readonly string[];
  /** Answers a request for one of `paths`; reads the body itself. */
  handle(req: IncomingMessage, path: string): Promise<HttpReply>;
  close(): void;
}
