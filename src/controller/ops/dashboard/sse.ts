// Server-sent events (the text/event-stream format of the HTML standard): the framing, pure, and a
// hub of bounded size that keeps the streams open, sends each frame to every client, writes a
// comment line as a heartbeat so that proxies and the browser see the stream alive, drops a client
// that does not read, and ends every stream on close.
import type * as http from 'node:http';

export interface SseMessage {
  /** The event type (the page's addEventListener name); "message" when absent. */
  event?: string;
  id?: string;
  /** The client's reconnection delay in milliseconds. */
  retry?: number;
  data: string;
}

function field(name: string, value: string): string {
  if (/[\r\n]/.test(value)) throw new Error(`an SSE ${name} cannot contain a line break`);
  return `${name}: ${value}\n`;
}

/** One message: each line of `data` on its own data: line, ended by a blank line. */
export function sseFrame(m: SseMessage): string {
  let out = '';
  if (m.event !== undefined) out += field('event', m.event);
  if (m.id !== undefined) out += field('id', m.id);
  if (m.retry !== undefined) {
    if (!Number.isInteger(m.retry) || m.retry < 0) throw new Error(`an SSE retry must be a non-negative integer, got ${m.retry}`);
    out += `retry: ${m.retry}\n`;
  }
  for (const line of m.data.split(/\r\n|\r|\n/)) out += `data: ${line}\n`;
  return `${out}\n`;
}

/** A comment (ignored by the browser's EventSource; keeps the connection busy). */
export function sseComment(text = ''): string {
  return `${text.split(/\r\n|\r|\n/).map((l) => (l === '' ? ':' : `: ${l}`)).join('\n')}\n\n`;
}

export interface SseHubOptions {
  maxClients: number;
  heartbeatMs: number;
  /** Bytes a client may leave unread before it is dropped. */
  maxBuffered?: number;
}

export class SseHub {
  private readonly clients = new Set<http.ServerResponse>();
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly maxBuffered: number;

  constructor(private readonly o: SseHubOptions) {
    this.maxBuffered = o.maxBuffered ?? 1024 * 1024;
  }

  get size(): number {
    return this.clients.size;
  }

  /** Whether one more client may connect. */
  hasRoom(): boolean {
    return !this.closed && this.clients.size < this.o.maxClients;
  }

  /**
   * Opens the stream on `res` (headers, the reconnection delay, `first`) and keeps it. False when
   * the hub is full or closed: the caller answers instead.
   */
  accept(req: http.IncomingMessage, res: http.ServerResponse, headers: http.OutgoingHttpHeaders, first: string, retryMs: number): boolean {
    if (!this.hasRoom()) return false;
    res.writeHead(200, { ...headers, 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-store', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' });
    req.socket.setNoDelay(true);
    this.clients.add(res);
    res.on('close', () => this.drop(res));
    this.write(res, `retry: ${retryMs}\n\n${first}`);
    this.timer ??= setInterval(() => this.broadcast(sseComment('heartbeat')), this.o.heartbeatMs);
    this.timer.unref();
    return true;
  }

  broadcast(frame: string): void {
    for (const res of [...this.clients]) this.write(res, frame);
  }

  /** Ends every stream; later accepts are refused. */
  close(): void {
    this.closed = true;
    for (const res of [...this.clients]) {
      this.drop(res);
      res.end();
    }
  }

  private write(res: http.ServerResponse, frame: string): void {
    if (res.writableLength > this.maxBuffered) {
      this.drop(res);
      res.destroy();
      return;
    }
    res.write(frame);
  }

  private drop(res: http.ServerResponse): void {
    this.clients.delete(res);
    if (this.clients.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }
}
