// The text/event-stream framing.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { sseComment, sseFrame } from '../../src/controller/ops/dashboard/sse.js';

/** What a browser's EventSource makes of one frame (the HTML standard's parsing, reduced to one message). */
function parse(frame: string): { event: string; id: string | null; retry: number | null; data: string } {
  let event = 'message';
  let id: string | null = null;
  let retry: number | null = null;
  const data: string[] = [];
  for (const line of frame.split('\n')) {
    if (line === '' || line.startsWith(':')) continue;
    const i = line.indexOf(':');
    const name = i < 0 ? line : line.slice(0, i);
    let value = i < 0 ? '' : line.slice(i + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (name === 'event') event = value;
    else if (name === 'id') id = value;
    else if (name === 'retry') retry = Number(value);
    else if (name === 'data') data.push(value);
  }
  return { event, id, retry, data: data.join('\n') };
}

describe('SSE framing', () => {
  it('writes the fields, one data line per line, and ends with a blank line', () => {
    expect(sseFrame({ event: 'update', id: '7', retry: 1000, data: '{"a":1}' })).toBe('event: update\nid: 7\nretry: 1000\ndata: {"a":1}\n\n');
    expect(sseFrame({ data: 'a\nb\r\nc\rd' })).toBe('data: a\ndata: b\ndata: c\ndata: d\n\n');
    expect(sseFrame({ data: '' })).toBe('data: \n\n');
  });

  it('any data survives the round trip through the browser parsing, line breaks normalized to \\n', () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom('a', 'b', ' ', ':', 'é', '\r', '\n') }), fc.string({ unit: fc.constantFrom('a', 'b', ' ', ':') }), (data, event) => {
        const frame = sseFrame({ event, data });
        expect(frame.endsWith('\n\n')).toBe(true);
        // Only the terminating blank line: no empty line inside the frame would end the message early.
        expect(frame.slice(0, -2).includes('\n\n')).toBe(false);
        const m = parse(frame);
        expect(m.data).toBe(data.replace(/\r\n|\r/g, '\n'));
        expect(m.event).toBe(event);
      }),
    );
  });

  it('refuses a line break in the event name or id and a bad retry', () => {
    expect(() => sseFrame({ event: 'a\nb', data: 'x' })).toThrow(/line break/);
    expect(() => sseFrame({ id: 'a\rb', data: 'x' })).toThrow(/line break/);
    expect(() => sseFrame({ retry: -1, data: 'x' })).toThrow(/retry/);
    expect(() => sseFrame({ retry: 1.5, data: 'x' })).toThrow(/retry/);
  });

  it('a comment is ignored by the parser and ends with a blank line', () => {
    expect(sseComment('heartbeat')).toBe(': heartbeat\n\n');
    expect(sseComment('a\nb')).toBe(': a\n: b\n\n');
    expect(sseComment()).toBe(':\n\n');
    expect(parse(sseComment('x\ny')).data).toBe('');
  });
});
