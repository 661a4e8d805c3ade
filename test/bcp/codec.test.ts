import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Packr } from 'msgpackr';
import {
  FrameDecoder,
  FrameEncodeError,
  MAX_FRAME_BYTES,
  PROTOCOL_VERSION,
  encodeFrame,
  isDecodeError,
  type DecodeError,
  type Frame,
} from '../../src/controller/bcp/codec.js';

const raw = new Packr({ useRecords: false });

function frame(over: Partial<Frame> = {}): Frame {
  return { v: PROTOCOL_VERSION, c: 'cluster-a', f: 1, r: 0, k: 'raft', re: false, b: { hello: 'world' }, ...over };
}

/** Wraps arbitrary msgpack-encodable value as a frame body with a correct length prefix. */
function rawFrame(value: unknown): Buffer {
  const body = raw.pack(value);
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length, 0);
  return Buffer.concat([head, body]);
}

function frames(out: Array<Frame | DecodeError>): Frame[] {
  return out.filter((x): x is Frame => !isDecodeError(x));
}

function errors(out: Array<Frame | DecodeError>): DecodeError[] {
  return out.filter(isDecodeError);
}

describe('frame codec', () => {
  it('round-trips a frame and writes a big-endian length prefix', () => {
    const f = frame({ r: 7, re: true, b: { list: [1, 'two', null], bin: Buffer.from([1, 2, 3]), nested: { ok: true } } });
    const buf = encodeFrame(f);
    expect(buf.readUInt32BE(0)).toBe(buf.length - 4);
    const out = new FrameDecoder().push(buf);
    expect(out).toEqual([f]);
  });

  it('decodes a stream of several frames split at every byte boundary', () => {
    const list = [
      frame({ k: 'hello', b: { nonce: 'ab'.repeat(32) } }),
      frame({ r: 1, k: 'status', b: null }),
      frame({ r: 1, re: true, k: 'status', b: { state: 'LEADER_RW', term: 3 } }),
      frame({ f: 0, k: 'x', b: 'é'.repeat(40) }),
    ];
    const stream = Buffer.concat(list.map((f) => encodeFrame(f)));
    for (let i = 0; i <= stream.length; i++) {
      const d = new FrameDecoder();
      const got = [...d.push(stream.subarray(0, i)), ...d.push(stream.subarray(i))];
      expect(got).toEqual(list);
      expect(d.pendingBytes).toBe(0);
    }
    for (let i = 1; i < stream.length; i++) {
      for (let j = i; j <= stream.length; j += 7) {
        const d = new FrameDecoder();
        const got = [...d.push(stream.subarray(0, i)), ...d.push(stream.subarray(i, j)), ...d.push(stream.subarray(j))];
        expect(got).toEqual(list);
      }
    }
  });

  it('decodes a stream fed one byte at a time', () => {
    const list = [frame({ b: Buffer.alloc(300, 7) }), frame({ r: 9 })];
    const stream = Buffer.concat(list.map((f) => encodeFrame(f)));
    const d = new FrameDecoder();
    const got: Array<Frame | DecodeError> = [];
    for (let i = 0; i < stream.length; i++) got.push(...d.push(stream.subarray(i, i + 1)));
    expect(got).toEqual(list);
  });

  it('keeps a truncated frame until the rest arrives', () => {
    const buf = encodeFrame(frame());
    const d = new FrameDecoder();
    expect(d.push(buf.subarray(0, buf.length - 1))).toEqual([]);
    expect(d.pendingBytes).toBe(buf.length - 1);
    expect(d.push(buf.subarray(buf.length - 1))).toEqual([frame()]);
  });

  it('reports an oversized length prefix at once, without waiting for the body', () => {
    const d = new FrameDecoder(1000);
    const head = Buffer.alloc(4);
    head.writeUInt32BE(1001, 0);
    const out = d.push(head);
    expect(out).toHaveLength(1);
    expect(out[0]).toMatchObject({ error: 'oversized' });
    expect(d.pendingBytes).toBe(0);
  });

  it('reports a length prefix above MAX_FRAME_BYTES with the default limit', () => {
    const head = Buffer.alloc(4);
    head.writeUInt32BE(MAX_FRAME_BYTES + 1, 0);
    expect(new FrameDecoder().push(head)[0]).toMatchObject({ error: 'oversized' });
    head.writeUInt32BE(0xffffffff, 0);
    expect(new FrameDecoder().push(head)[0]).toMatchObject({ error: 'oversized' });
  });

  it('returns frames decoded before an error, then the error, and stays poisoned', () => {
    const good = encodeFrame(frame());
    const d = new FrameDecoder();
    const out = d.push(Buffer.concat([good, Buffer.from([0, 0, 0, 1, 0xc1]), good]));
    expect(frames(out)).toEqual([frame()]);
    expect(errors(out)).toEqual([expect.objectContaining({ error: 'malformed' })]);
    const again = d.push(good);
    expect(frames(again)).toEqual([]);
    expect(errors(again)).toEqual([expect.objectContaining({ error: 'malformed' })]);
  });

  it.each<[string, unknown, DecodeError['error']]>([
    ['a wrong version', { v: 2, c: 'a', f: 1, r: 0, k: 'x', re: false, b: null }, 'version'],
    ['a missing version', { c: 'a', f: 1, r: 0, k: 'x', re: false, b: null }, 'malformed'],
    ['a string version', { v: '1', c: 'a', f: 1, r: 0, k: 'x', re: false, b: null }, 'malformed'],
    ['a non-object', 42, 'malformed'],
    ['an array', [1, 'a', 1, 0, 'x', false, null], 'malformed'],
    ['null', null, 'malformed'],
    ['a numeric cluster id', { v: 1, c: 5, f: 1, r: 0, k: 'x', re: false, b: null }, 'malformed'],
    ['a negative sender', { v: 1, c: 'a', f: -1, r: 0, k: 'x', re: false, b: null }, 'malformed'],
    ['a fractional sender', { v: 1, c: 'a', f: 1.5, r: 0, k: 'x', re: false, b: null }, 'malformed'],
    ['a request id above 32 bits', { v: 1, c: 'a', f: 1, r: 2 ** 32, k: 'x', re: false, b: null }, 'malformed'],
    ['an empty kind', { v: 1, c: 'a', f: 1, r: 0, k: '', re: false, b: null }, 'malformed'],
    ['a long kind', { v: 1, c: 'a', f: 1, r: 0, k: 'k'.repeat(65), re: false, b: null }, 'malformed'],
    ['a numeric reply flag', { v: 1, c: 'a', f: 1, r: 0, k: 'x', re: 1, b: null }, 'malformed'],
    ['a missing body', { v: 1, c: 'a', f: 1, r: 0, k: 'x', re: false }, 'malformed'],
  ])('reports %s as an error value', (_name, value, kind) => {
    const out = new FrameDecoder().push(rawFrame(value));
    expect(out).toHaveLength(1);
    expect(out[0]).toMatchObject({ error: kind });
    expect((out[0] as DecodeError).detail.length).toBeGreaterThan(0);
  });

  it('reports invalid msgpack, trailing bytes and an empty body as malformed', () => {
    const body = raw.pack(frame());
    const trailing = Buffer.concat([body, Buffer.from([0x01])]);
    const cases = [Buffer.from([0xc1]), trailing, Buffer.alloc(0), Buffer.from([0x85, 0xa1])];
    for (const b of cases) {
      const head = Buffer.alloc(4);
      head.writeUInt32BE(b.length, 0);
      const out = new FrameDecoder().push(Buffer.concat([head, b]));
      expect(out).toEqual([expect.objectContaining({ error: 'malformed' })]);
    }
  });

  it('refuses to encode a frame above the limit or an unencodable body', () => {
    expect(() => encodeFrame(frame({ b: Buffer.alloc(MAX_FRAME_BYTES) }))).toThrow(FrameEncodeError);
    try {
      encodeFrame(frame({ b: 2n ** 80n }));
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(FrameEncodeError);
      expect((err as FrameEncodeError).code).toBe('unencodable');
    }
  });

  it('does not let a __proto__ key pollute prototypes', () => {
    const body = Buffer.from([0x81, 0xa9, ...Buffer.from('__proto__'), 0x81, 0xa1, 0x78, 0x01]);
    const value = { v: 1, c: 'a', f: 1, r: 0, k: 'x', re: false, b: 'placeholder' };
    const enc = raw.pack(value);
    // Replace the body string with the crafted map.
    const placeholder = raw.pack('placeholder');
    const at = enc.indexOf(placeholder);
    const crafted = Buffer.concat([enc.subarray(0, at), body, enc.subarray(at + placeholder.length)]);
    const head = Buffer.alloc(4);
    head.writeUInt32BE(crafted.length, 0);
    const out = new FrameDecoder().push(Buffer.concat([head, crafted]));
    expect(frames(out)).toHaveLength(1);
    expect(({} as Record<string, unknown>).x).toBeUndefined();
    expect(Object.getPrototypeOf(frames(out)[0]?.b)).toBe(Object.prototype);
  });
});

// JSON-like bodies without -0 (msgpack has no negative zero integer) and without __proto__ keys.
const body = fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.parse(JSON.stringify(v)) as unknown);
const arbFrame: fc.Arbitrary<Frame> = fc.record({
  v: fc.constant(PROTOCOL_VERSION),
  c: fc.string({ maxLength: 40 }),
  f: fc.nat(),
  r: fc.nat({ max: 0xffffffff }),
  k: fc.string({ minLength: 1, maxLength: 64 }),
  re: fc.boolean(),
  b: fc.oneof(body, fc.uint8Array({ maxLength: 64 }).map((u) => Buffer.from(u))),
});

describe('frame codec properties', () => {
  it('push never throws on random bytes split at random points', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), fc.array(fc.nat(), { maxLength: 8 }), (bytes, cuts) => {
        const buf = Buffer.from(bytes);
        const d = new FrameDecoder(4096);
        const points = cuts.map((c) => c % (buf.length + 1)).sort((a, b) => a - b);
        let prev = 0;
        for (const p of [...points, buf.length]) {
          const out = d.push(buf.subarray(prev, p));
          expect(Array.isArray(out)).toBe(true);
          prev = p;
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('push never throws on a valid length prefix followed by random msgpack-ish bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 256 }), (bytes) => {
        const head = Buffer.alloc(4);
        head.writeUInt32BE(bytes.length, 0);
        const out = new FrameDecoder().push(Buffer.concat([head, Buffer.from(bytes)]));
        expect(out).toHaveLength(1);
      }),
      { numRuns: 3000 },
    );
  });

  it('valid frames round-trip whatever the chunking', () => {
    fc.assert(
      fc.property(fc.array(arbFrame, { minLength: 1, maxLength: 5 }), fc.array(fc.nat(), { maxLength: 6 }), (list, cuts) => {
        const stream = Buffer.concat(list.map((f) => encodeFrame(f)));
        const points = cuts.map((c) => c % (stream.length + 1)).sort((a, b) => a - b);
        const d = new FrameDecoder();
        const got: Array<Frame | DecodeError> = [];
        let prev = 0;
        for (const p of [...points, stream.length]) {
          got.push(...d.push(stream.subarray(prev, p)));
          prev = p;
        }
        expect(got).toEqual(list);
      }),
      { numRuns: 500 },
    );
  });

  it('a corrupted stream never throws, and frames before the corruption still decode', () => {
    fc.assert(
      fc.property(
        fc.array(arbFrame, { minLength: 1, maxLength: 4 }),
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        fc.nat(),
        (list, where, xor, cut) => {
          const encoded = list.map((f) => encodeFrame(f));
          const stream = Buffer.concat(encoded);
          const pos = where % stream.length;
          stream[pos] = (stream[pos] ?? 0) ^ xor;
          // Frames that end before the corrupted byte are intact.
          let intact = 0;
          let end = 0;
          for (const e of encoded) {
            if (end + e.length <= pos) {
              intact++;
              end += e.length;
            } else break;
          }
          const d = new FrameDecoder();
          const c = cut % (stream.length + 1);
          const got = [...d.push(stream.subarray(0, c)), ...d.push(stream.subarray(c))];
          expect(got.slice(0, intact)).toEqual(list.slice(0, intact));
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('a truncated stream yields a prefix of the frames and nothing else', () => {
    fc.assert(
      fc.property(fc.array(arbFrame, { minLength: 1, maxLength: 4 }), fc.nat(), (list, cut) => {
        const stream = Buffer.concat(list.map((f) => encodeFrame(f)));
        const c = cut % stream.length;
        const got = new FrameDecoder().push(stream.subarray(0, c));
        expect(errors(got)).toEqual([]);
        expect(got).toEqual(list.slice(0, got.length));
        expect(got.length).toBeLessThan(list.length);
      }),
      { numRuns: 500 },
    );
  });
});
