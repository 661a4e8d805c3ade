// Request bodies of the remote management API: size limit and JSON objects only.
import { Readable } from 'node:stream';
import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { HttpError, MAX_BODY_BYTES, parseJsonObject, readBody } from '../../src/controller/ops/httpbody.js';

function request(chunks: Buffer[], headers: Record<string, string> = {}): IncomingMessage {
  const r = Readable.from(chunks) as unknown as IncomingMessage;
  (r as { headers: Record<string, string> }).headers = headers;
  return r;
}

async function refusal(p: Promise<unknown>): Promise<HttpError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof HttpError) return e;
    throw e;
  }
  throw new Error('not refused');
}

describe('readBody', () => {
  it('returns the bytes up to the limit', async () => {
    const b = await readBody(request([Buffer.from('{"a":'), Buffer.from('1}')]));
    expect(b.toString()).toBe('{"a":1}');
    expect((await readBody(request([Buffer.alloc(MAX_BODY_BYTES, 0x20)]))).length).toBe(MAX_BODY_BYTES);
  });
  it('refuses more than 64 KB with 413, announced or streamed', async () => {
    const announced = await refusal(readBody(request([], { 'content-length': String(MAX_BODY_BYTES + 1) })));
    expect(announced.status).toBe(413);
    const streamed = await refusal(readBody(request([Buffer.alloc(40_000), Buffer.alloc(40_000)])));
    expect(streamed.status).toBe(413);
    expect(streamed.message).toMatch(/larger than 65536 bytes/);
  });
});

describe('parseJsonObject', () => {
  it('takes an empty body as {} and returns objects', () => {
    expect(parseJsonObject(Buffer.from(''))).toEqual({});
    expect(parseJsonObject(Buffer.from(' {"candidate": 2} '))).toEqual({ candidate: 2 });
  });
  it('refuses invalid JSON and non-objects with a one-line 400', () => {
    for (const text of ['{candidate: 2}', '[1]', '"x"', 'null', '3', '{"a":1']) {
      let err: unknown = null;
      try {
        parseJsonObject(Buffer.from(text));
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(HttpError);
      expect((err as HttpError).status).toBe(400);
      expect((err as HttpError).message).not.toContain('\n');
    }
  });
});
