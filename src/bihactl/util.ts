// Small helpers shared by bihactl commands: option parsing, passwords, port checks, progress.
import * as fsp from 'node:fs/promises';
import * as net from 'node:net';
import { BihaError } from '../controller/errors.js';

export function intOpt(name: string, v: unknown, min: number, max: number): number {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^-?\d+$/.test(v.trim()) ? Number(v) : NaN;
  if (!Number.isInteger(n) || n < min || n > max)
    throw new BihaError('bad_args', `--${name} must be an integer between ${min} and ${max}, not "${String(v)}"`);
  return n;
}

/** A port derived from --port (+1 for the control channel), checked to be a valid port. */
export function defaultPort(name: string, base: number, offset: number): number {
  const p = base + offset;
  if (p > 65535)
    throw new BihaError('bad_args', `--${name} defaults to --port + ${offset} = ${p}, which is not a valid port: give --${name} explicitly`);
  return p;
}

/**
 * How far the HTTP port is from the PostgreSQL port by default: Patroni's REST API port, 8008 beside
 * a PostgreSQL on 5432. Far enough that the HTTP ports of nodes sharing a host never land on the
 * PostgreSQL or control-channel ports of the others (5432/5433, 5434/5435, ... → 8008, 8010, ...).
 */
export const HTTP_PORT_OFFSET = 8008 - 5432;

/**
 * --http-port's default: the PostgreSQL port + 2576 (8008 for 5432). A referee has no PostgreSQL
 * port: it takes its biha port - 1 in its place (`from` says which option the base came from).
 */
export function defaultHttpPort(base: number, from: 'port' | 'biha-port' = 'port'): number {
  const p = base + HTTP_PORT_OFFSET;
  if (p < 1 || p > 65535) {
    const how = from === 'port' ? `--port + ${HTTP_PORT_OFFSET}` : `--biha-port + ${HTTP_PORT_OFFSET - 1}`;
    throw new BihaError('bad_args', `--http-port defaults to ${how} = ${p}, which is not a valid port: give --http-port explicitly`);
  }
  return p;
}

/** The ports a node listens on must all differ. */
export function distinctPorts(ports: Record<string, number>): void {
  const seen = new Map<number, string>();
  for (const [name, p] of Object.entries(ports)) {
    if (p === 0) continue;
    const other = seen.get(p);
    if (other) throw new BihaError('bad_args', `--${name} must differ from --${other} (both are ${p}): every port of a node must differ`);
    seen.set(p, name);
  }
}

export function requireOpt(name: string, v: unknown): string {
  if (typeof v !== 'string' || v.trim() === '') throw new BihaError('bad_args', `--${name} is required`);
  return v.trim();
}

/** Fails when something already listens on host:port (TCP). */
export async function assertPortFree(what: string, port: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EADDRINUSE')
        reject(new BihaError('port_in_use', `${what} ${port} is already in use on this machine`, { hint: `choose another --${what.replace(/ /g, '-')}` }));
      else reject(new BihaError('port_check', `cannot check ${what} ${port}: ${e.message}`));
    });
    srv.listen({ port, host: '0.0.0.0', exclusive: true }, () => srv.close(() => resolve()));
  });
}

/** Empty or missing directory: fine. Anything else: a clear error. */
export async function assertEmptyDir(dir: string, hint: string): Promise<'missing' | 'empty'> {
  try {
    const entries = await fsp.readdir(dir);
    if (entries.length > 0) throw new BihaError('pgdata_not_empty', `--pgdata ${dir} is not empty`, { hint });
    return 'empty';
  } catch (e) {
    if (e instanceof BihaError) throw e;
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
    if ((e as NodeJS.ErrnoException).code === 'ENOTDIR') throw new BihaError('pgdata_not_dir', `--pgdata ${dir} is not a directory`);
    throw e;
  }
}

/** Reads a password from the terminal without echo. */
export async function promptHidden(question: string): Promise<string> {
  const stdin = process.stdin;
  process.stderr.write(question);
  return await new Promise<string>((resolve, reject) => {
    let buf = '';
    stdin.setRawMode?.(true);
    stdin.resume();
    stdin.setEncoding('utf8');
    const onData = (ch: string): void => {
      for (const c of ch) {
        if (c === '\r' || c === '\n') {
          cleanup();
          process.stderr.write('\n');
          resolve(buf);
          return;
        }
        if (c === '\u0003') {
          cleanup();
          reject(new BihaError('cancelled', 'cancelled'));
          return;
        }
        if (c === '\u007f') buf = buf.slice(0, -1);
        else buf += c;
      }
    };
    const cleanup = (): void => {
      stdin.setRawMode?.(false);
      stdin.pause();
      stdin.off('data', onData);
    };
    stdin.on('data', onData);
  });
}

/** The replication password for init: asked on a terminal, else BIHA_REPLICATION_PASSWORD. */
export async function initPassword(): Promise<string> {
  const env = process.env['BIHA_REPLICATION_PASSWORD'];
  if (env !== undefined && env !== '') return env;
  if (!process.stdin.isTTY)
    throw new BihaError('no_password', 'no password for biha_replication_user', {
      hint: 'run on a terminal to type it, or set BIHA_REPLICATION_PASSWORD',
    });
  const a = await promptHidden('Password for biha_replication_user: ');
  const b = await promptHidden('Repeat the password: ');
  if (a !== b) throw new BihaError('password_mismatch', 'the two passwords differ; run bihactl init again');
  if (a.length < 8) throw new BihaError('weak_password', 'the password must have at least 8 characters');
  return a;
}

/** A progress bar on a terminal, nothing otherwise. */
export function progressBar(label: string): { update(pct: number, doneKb: number, totalKb: number): void; done(): void } {
  const tty = process.stderr.isTTY;
  let last = -1;
  return {
    update(pct, doneKb, totalKb) {
      if (!tty) {
        if (pct >= last + 25 || (pct === 100 && last !== 100)) {
          process.stderr.write(`${label}: ${pct}% (${doneKb}/${totalKb} kB)\n`);
          last = pct;
        }
        return;
      }
      const width = 30;
      const fill = Math.round((pct / 100) * width);
      process.stderr.write(`\r${label} [${'#'.repeat(fill)}${'-'.repeat(width - fill)}] ${String(pct).padStart(3)}% ${doneKb}/${totalKb} kB`);
    },
    done() {
      if (tty) process.stderr.write('\n');
    },
  };
}

export function info(msg: string): void {
  process.stderr.write(`bihactl: ${msg}\n`);
}
