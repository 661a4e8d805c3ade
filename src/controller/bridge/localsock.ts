// The local control socket between bihactl and its node's controller: one JSON request per line,
// one JSON reply per line. It lives in /tmp (/tmp/.s.BIHA.<biha port>, or BIHA_SOCKET_DIR) whatever PostgreSQL's socket directory is,
// is created 0600 for the controller's OS user, and offers only the commands of `LocalCommand`.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { z } from 'zod';
import { BihaError } from '../errors.js';

export function localSocketPath(bihaPort: number): string {
  return path.join(process.env['BIHA_SOCKET_DIR'] ?? os.tmpdir(), `.s.BIHA.${bihaPort}`);
}

export const LocalRequestSchema = z.object({
  cmd: z.string().min(1).max(64),
  args: z.record(z.unknown()).default({}),
});
export type LocalRequest = z.infer<typeof LocalRequestSchema>;
export type LocalReply = { ok: true; result: unknown } | { ok: false; error: string; code?: string };

export class LocalServer {
  private server: net.Server | null = null;
  constructor(
    private readonly sockPath: string,
    private readonly handler: (req: LocalRequest) => Promise<unknown>,
  ) {}

  async start(): Promise<void> {
    // A socket file left by a dead controller is removed; a live one means a second controller.
    if (fs.existsSync(this.sockPath)) {
      const alive = await new Promise<boolean>((resolve) => {
        const c = net.connect(this.sockPath);
        c.once('connect', () => {
          c.destroy();
          resolve(true);
        });
        c.once('error', () => resolve(false));
      });
      if (alive)
        throw new BihaError('already_running', `another controller answers on ${this.sockPath}`, {
          hint: 'stop it with bihactl stop, or check the --pgdata and ports',
        });
      fs.rmSync(this.sockPath, { force: true });
    }
    const server = net.createServer((sock) => this.serve(sock));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.sockPath, () => resolve());
    });
    fs.chmodSync(this.sockPath, 0o600);
    this.server = server;
  }

  private serve(sock: net.Socket): void {
    let buf = '';
    sock.setEncoding('utf8');
    sock.on('error', () => sock.destroy());
    sock.on('data', (chunk: string) => {
      buf += chunk;
      if (buf.length > 1 << 20) {
        sock.destroy();
        return;
      }
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        void this.answer(line).then((reply) => {
          if (!sock.destroyed) sock.write(JSON.stringify(reply) + '\n');
        });
      }
    });
  }

  private async answer(line: string): Promise<LocalReply> {
    let req: LocalRequest;
    try {
      req = LocalRequestSchema.parse(JSON.parse(line));
    } catch {
      return { ok: false, error: 'malformed request', code: 'bad_request' };
    }
    try {
      return { ok: true, result: await this.handler(req) };
    } catch (e) {
      const code = e instanceof BihaError ? e.code : 'failed';
      const msg = e instanceof BihaError && e.hint ? `${e.message} (${e.hint})` : e instanceof Error ? e.message : String(e);
      return { ok: false, error: msg, code };
    }
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (!s) return;
    await new Promise<void>((resolve) => s.close(() => resolve()));
    fs.rmSync(this.sockPath, { force: true });
  }
}

/** One request to a controller's local socket. */
export async function localRequest(sockPath: string, cmd: string, args: Record<string, unknown>, timeoutMs: number): Promise<unknown> {
  return await new Promise<unknown>((resolve, reject) => {
    const sock = net.connect(sockPath);
    let buf = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new BihaError('timeout', `the controller did not answer "${cmd}" within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.setEncoding('utf8');
    sock.once('connect', () => sock.write(JSON.stringify({ cmd, args }) + '\n'));
    sock.on('data', (chunk: string) => {
      buf += chunk;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      sock.destroy();
      let reply: LocalReply;
      try {
        reply = JSON.parse(buf.slice(0, nl)) as LocalReply;
      } catch {
        reject(new BihaError('protocol', 'the controller sent a malformed reply'));
        return;
      }
      if (reply.ok) resolve(reply.result);
      else reject(new BihaError(reply.code ?? 'failed', reply.error));
    });
    sock.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const why = e.code === 'ENOENT' || e.code === 'ECONNREFUSED' ? 'is not running' : `cannot be reached (${e.code ?? e.message})`;
      reject(
        new BihaError('not_running', `the biha controller ${why} (socket ${sockPath})`, {
          hint: 'start it with bihactl start --pgdata=DIR',
        }),
      );
    });
  });
}
