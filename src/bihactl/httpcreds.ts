// The HTTP options of bihactl init / add (--http-user, --http-host, --http-tls) and
// bihactl set-http-credentials: the credentials of the remote management API (ops/httpauth.ts).
import * as fs from 'node:fs';
import { BihaError } from '../controller/errors.js';
import { credentialsPath, hashCredentials, passwordProblem, removeCredentials, userProblem, writeCredentials } from '../controller/ops/httpauth.js';
import type { HttpCredentials } from '../controller/ops/httpauth.js';
import { loadConf } from './localnode.js';
import { info, requireOpt } from './util.js';
import { promptHidden } from './prompt.js';

export interface HttpOptions {
  httpUser?: string;
  httpHost?: string;
  httpTls?: boolean;
}

/** What init / add write: where the HTTP server listens, whether over TLS, and the credentials (null: none). */
export interface HttpSetup {
  readonly httpHost: string;
  readonly httpTls: boolean;
  readonly credentials: HttpCredentials | null;
}

/**
 * The HTTP password: BIHA_HTTP_PASSWORD, else typed twice on a terminal without echo. Without a
 * terminal and without the variable, a one-line error.
 */
export async function httpPassword(user: string): Promise<string> {
  const env = process.env['BIHA_HTTP_PASSWORD'];
  let password: string;
  if (env !== undefined && env !== '') {
    password = env;
  } else {
    if (!process.stdin.isTTY)
      throw new BihaError('no_password', `no HTTP password for ${user}: set BIHA_HTTP_PASSWORD, or run on a terminal to type it`);
    password = await promptHidden(`HTTP password for ${user}: `);
    const again = await promptHidden('Repeat the password: ');
    if (password !== again) throw new BihaError('password_mismatch', 'the two passwords differ; run the command again');
  }
  const bad = passwordProblem(password);
  if (bad) throw new BihaError('bad_args', bad);
  return password;
}

async function credentialsFor(userOpt: string): Promise<HttpCredentials> {
  const user = userOpt.trim();
  const bad = userProblem(user);
  if (bad) throw new BihaError('bad_args', `--http-user: ${bad}`);
  return await hashCredentials(user, await httpPassword(user));
}

/** Checks the HTTP options of init / add (before anything is written); asks for the password. */
export async function httpSetup(o: HttpOptions, host: string, clusterTls: boolean): Promise<HttpSetup> {
  if (o.httpHost !== undefined && o.httpHost.trim() === '') throw new BihaError('bad_args', '--http-host needs an address, such as --http-host=0.0.0.0 or --http-host=10.0.0.5');
  if (o.httpTls && !clusterTls)
    throw new BihaError('bad_args', '--http-tls serves HTTPS with the control channel\'s certificate, and this cluster has no TLS', {
      hint: 'create the cluster with bihactl init --use-ssl (or the --ssl-*-file options), or drop --http-tls',
    });
  return {
    httpHost: o.httpHost?.trim() ?? host,
    httpTls: o.httpTls === true,
    credentials: o.httpUser === undefined ? null : await credentialsFor(o.httpUser),
  };
}

/** Writes the credentials file of a node being created (its owner is set with the rest of pg_biha). */
export async function writeHttpSetup(pgdata: string, s: HttpSetup): Promise<void> {
  if (s.credentials) await writeCredentials(pgdata, s.credentials);
}

/** bihactl set-http-credentials: set (or --remove) the credentials of an existing node. */
export async function cmdSetHttpCredentials(o: { pgdata?: string; httpUser?: string; remove?: boolean }): Promise<void> {
  const { pgdata, conf } = await loadConf(o.pgdata);
  if (o.remove) {
    if (o.httpUser !== undefined) throw new BihaError('bad_args', '--remove takes no --http-user');
    const had = removeCredentials(pgdata);
    info(had ? `node ${conf.nodeId}: HTTP credentials removed; POST, PATCH and DELETE requests are refused (403) from now on` : `node ${conf.nodeId} had no HTTP credentials`);
    return;
  }
  const creds = await credentialsFor(requireOpt('http-user', o.httpUser));
  await writeCredentials(pgdata, creds);
  // Readable by the controller, which runs as the data directory's owner.
  const st = fs.statSync(pgdata);
  if (typeof process.getuid === 'function' && process.getuid() === 0) fs.chownSync(credentialsPath(pgdata), st.uid, st.gid);
  info(`node ${conf.nodeId}: HTTP credentials for ${creds.user} set in ${credentialsPath(pgdata)}; the controller uses them from its next request`);
}
