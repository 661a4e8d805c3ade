// The client of the nodes' remote management API (docs/commands.md#remote-mode): the nodes to ask,
// the HTTP credentials, and one request tried on each node in turn until one answers.
//
// A node "answers" when it sends any HTTP response: its status and `{"error","code"}` body then
// decide the outcome. Only a node that could not be reached is skipped for the next one; an unsafe
// request (POST, PATCH) that reached a node but got no answer in time is not sent again elsewhere,
// since the first node may still carry it out.
import * as fsp from 'node:fs/promises';
import { z } from 'zod';
import { BihaError } from '../controller/errors.js';
import { isErrorCode } from './exitcodes.js';
import type { ErrorCode } from './exitcodes.js';
import { promptHidden } from './prompt.js';

/** The options every command with a remote mode takes. */
export interface RemoteOpts {
  url?: string[];
  clusterFile?: string;
  httpUser?: string;
}

export type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE';

export interface RemoteAnswer {
  /** The node's base URL that answered. */
  url: string;
  status: number;
  body: unknown;
}

export const PASSWORD_ENV = 'BIHA_HTTP_PASSWORD';

/** How long one request may take: a switchover or a restart waits for PostgreSQL. */
const READ_TIMEOUT_MS = 15_000;
const WRITE_TIMEOUT_MS = 180_000;

/** Connection errors that mean the request never reached the node (safe to send elsewhere). */
const NOT_REACHED = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'UND_ERR_CONNECT_TIMEOUT']);

export function isRemote(o: RemoteOpts): boolean {
  return (o.url !== undefined && o.url.length > 0) || o.clusterFile !== undefined;
}

/** commander's collector for a repeatable option. */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** One node URL, checked: http or https, no path, no credentials in it. */
export function parseNodeUrl(raw: string, from: string): string {
  let u: URL;
  try {
    u = new URL(raw.trim());
  } catch {
    throw new BihaError('bad_url', `${from} "${raw}" is not a URL`, { hint: 'write it as http://HOST:PORT (the node\'s --http-port)' });
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    throw new BihaError('bad_url', `${from} "${raw}" must start with http:// or https://`);
  if (u.username !== '' || u.password !== '')
    throw new BihaError('bad_url', `${from} "${raw}" carries credentials`, { hint: `give --http-user=NAME and the password in ${PASSWORD_ENV}` });
  if ((u.pathname !== '/' && u.pathname !== '') || u.search !== '' || u.hash !== '')
    throw new BihaError('bad_url', `${from} "${raw}" must be only a scheme, host and port, like http://db1:8008`);
  return u.origin;
}

const ClusterFileSchema = z.union([
  z.array(z.string()),
  z.object({ urls: z.array(z.string()).min(1) }).strict(),
]);

/** The URLs of a cluster file: a JSON list of URLs, or `{"urls": [...]}`. */
export function parseClusterFile(text: string, file: string): string[] {
  const hint = 'write it as {"urls": ["http://db1:8008", "http://db2:8008"]}';
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new BihaError('bad_cluster_file', `--cluster-file ${file} is not JSON: ${(e as Error).message}`, { hint });
  }
  const r = ClusterFileSchema.safeParse(doc);
  if (!r.success) throw new BihaError('bad_cluster_file', `--cluster-file ${file} does not name the nodes' URLs`, { hint });
  const urls = Array.isArray(r.data) ? r.data : r.data.urls;
  if (urls.length === 0) throw new BihaError('bad_cluster_file', `--cluster-file ${file} names no node`, { hint });
  return urls.map((u) => parseNodeUrl(u, `--cluster-file ${file}: URL`));
}

/** The node URLs to try, in order, from --url (repeatable) or --cluster-file. */
export async function nodeUrls(o: RemoteOpts): Promise<string[]> {
  const given = o.url ?? [];
  if (given.length > 0 && o.clusterFile !== undefined) throw new BihaError('bad_args', 'give --url or --cluster-file, not both');
  if (o.clusterFile !== undefined) {
    let text: string;
    try {
      text = await fsp.readFile(o.clusterFile, 'utf8');
    } catch (e) {
      throw new BihaError('bad_cluster_file', `cannot read --cluster-file ${o.clusterFile}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    return parseClusterFile(text, o.clusterFile);
  }
  if (given.length === 0) throw new BihaError('bad_args', 'give --url=http://HOST:PORT or --cluster-file=FILE');
  return given.map((u) => parseNodeUrl(u, '--url'));
}

export interface Credentials {
  user: string;
  password: string;
}

/** The password of --http-user: BIHA_HTTP_PASSWORD, else typed on a terminal. */
export async function credentials(user: string | undefined): Promise<Credentials | null> {
  if (user === undefined) return null;
  if (user.trim() === '' || user.includes(':')) throw new BihaError('bad_args', '--http-user needs a user name without ":"');
  const env = process.env[PASSWORD_ENV];
  if (env !== undefined && env !== '') return { user, password: env };
  if (!process.stdin.isTTY)
    throw new BihaError('no_password', `no password for --http-user=${user}`, { hint: `set ${PASSWORD_ENV}, or run on a terminal to type it` });
  return { user, password: await promptHidden(`HTTP password for ${user}: `) };
}

/** The error code of a refused request: the node's own when bihactl knows it, else one for the status. */
function refusalCode(status: number, bodyCode: unknown): ErrorCode {
  if (status === 401) return 'unauthorized';
  if (status === 403) return 'remote_management_off';
  if (typeof bodyCode === 'string' && isErrorCode(bodyCode)) return bodyCode;
  switch (status) {
    case 400:
    case 422:
      return 'bad_args';
    case 404:
    case 405:
      return 'not_found';
    case 409:
      return 'conflict';
    case 412:
      return 'leader_mismatch';
    case 503:
      return 'unavailable';
    case 504:
      return 'timeout';
    default:
      return 'http_error';
  }
}

function bodyError(body: unknown): string | null {
  if (typeof body === 'object' && body !== null && 'error' in body && typeof body.error === 'string' && body.error.trim() !== '') return body.error;
  return null;
}

/** The BihaError for a non-2xx answer of `url` to `method path`. */
export function refusal(url: string, method: Method, path: string, status: number, body: unknown, user: string | null): BihaError {
  const code: ErrorCode = refusalCode(status, typeof body === 'object' && body !== null && 'code' in body ? body.code : undefined);
  const said = bodyError(body);
  if (status === 401) {
    return user === null
      ? new BihaError(code, `${url} needs HTTP credentials for ${method} ${path}`, { hint: `give --http-user=NAME and the password in ${PASSWORD_ENV}` })
      : new BihaError(code, `${url} refused the credentials of --http-user=${user}`, { hint: `check the user and the password in ${PASSWORD_ENV}` });
  }
  const bodyCode = typeof body === 'object' && body !== null && 'code' in body ? body.code : undefined;
  const own = typeof bodyCode === 'string' && isErrorCode(bodyCode) && bodyCode !== 'not_found' && bodyCode !== 'method_not_allowed';
  if ((status === 404 || status === 405) && !own)
    return new BihaError(code, `${url} does not serve ${method} ${path} (HTTP ${status})${said ? `: ${said}` : ''}`, {
      hint: 'check that --url names the node\'s --http-port and that the node runs a biha with the remote management API',
    });
  return new BihaError(code, `${url}: ${said ?? `HTTP ${status}`}`);
}

function netCode(e: unknown): string | undefined {
  const cause = (e as { cause?: { code?: unknown } }).cause;
  return typeof cause?.code === 'string' ? cause.code : undefined;
}

function isTimeout(e: unknown): boolean {
  return e instanceof DOMException && (e.name === 'TimeoutError' || e.name === 'AbortError');
}

async function readBody(res: Response): Promise<unknown> {
  const text = await res.text();
  if (text.trim() === '') return null;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return { error: text.trim().split('\n')[0] };
  }
}

export class RemoteClient {
  private auth: Credentials | null | undefined;

  constructor(
    readonly urls: readonly string[],
    private readonly httpUser: string | undefined,
  ) {}

  static async from(o: RemoteOpts): Promise<RemoteClient> {
    return new RemoteClient(await nodeUrls(o), o.httpUser);
  }

  /** The credentials, asked for once and only when an unsafe request needs them. */
  private async authHeader(method: Method): Promise<Record<string, string>> {
    if (method === 'GET') return {};
    if (this.auth === undefined) this.auth = await credentials(this.httpUser);
    if (this.auth === null) return {};
    return { authorization: 'Basic ' + Buffer.from(`${this.auth.user}:${this.auth.password}`).toString('base64') };
  }

  /** Sends the request to each node in turn until one answers; a non-2xx answer throws its error. */
  async request(method: Method, path: string, body?: unknown): Promise<RemoteAnswer> {
    const headers: Record<string, string> = { accept: 'application/json', ...(await this.authHeader(method)) };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const tried: string[] = [];
    for (const url of this.urls) {
      let res: Response;
      try {
        res = await fetch(url + path, {
          method,
          headers,
          ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
          redirect: 'error',
          signal: AbortSignal.timeout(method === 'GET' ? READ_TIMEOUT_MS : WRITE_TIMEOUT_MS),
        });
      } catch (e) {
        const code = netCode(e);
        if (method !== 'GET' && isTimeout(e))
          throw new BihaError('timeout', `${url} did not answer ${method} ${path} in time; it may still complete`, { hint: 'check with bihactl status' });
        if (method !== 'GET' && !(code !== undefined && NOT_REACHED.has(code)))
          throw new BihaError('unreachable', `${method} ${path} to ${url} failed: ${code ?? (e as Error).message}`, { hint: 'check with bihactl status before trying again' });
        tried.push(`${url} (${isTimeout(e) ? 'no answer in time' : (code ?? (e as Error).message)})`);
        continue;
      }
      const answer = await readBody(res);
      if (res.status >= 200 && res.status < 300) return { url, status: res.status, body: answer };
      throw refusal(url, method, path, res.status, answer, this.auth?.user ?? null);
    }
    throw new BihaError('unreachable', `no node answered: ${tried.join('; ')}`, { hint: 'check the URLs (each node\'s --http-port) and that the nodes run' });
  }
}
