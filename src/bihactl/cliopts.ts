// Options and small steps several bihactl commands share: local (--pgdata) or remote (--url,
// --cluster-file) mode, the JSON result of the long-running local commands, argument forms.
import * as path from 'node:path';
import type { Command } from 'commander';
import { BihaError } from '../controller/errors.js';
import { renderConfig } from './config.js';
import type { ClusterSettings } from '../controller/configpatch.js';
import { loadConf } from './localnode.js';
import { printJson } from './output.js';
import type { JsonOpt } from './output.js';
import { collect, isRemote, PASSWORD_ENV } from './remote.js';
import type { RemoteOpts } from './remote.js';

export type LocalOrRemote = RemoteOpts & JsonOpt & { pgdata?: string; force?: boolean };

/** Adds the options of remote mode to a command; `disruptive` adds --force (no confirmation). */
export function remoteOptions(cmd: Command, disruptive: boolean): Command {
  cmd
    .option('--url <url>', "a node's HTTP API, http[s]://HOST:PORT (repeatable: tried in order until one answers)", collect)
    .option('--cluster-file <file>', 'JSON file naming the nodes\' URLs: {"urls": ["http://db1:8008", ...]}')
    .option('--http-user <name>', `user for the HTTP API's changes (password from ${PASSWORD_ENV}, or typed on a terminal)`);
  if (disruptive) cmd.option('--force', 'with --url: do not ask for confirmation');
  return cmd;
}

/** Which node the command talks to: this host's (--pgdata) or one over HTTP (--url, --cluster-file). */
export function oneMode(o: LocalOrRemote): 'local' | 'remote' {
  if (!isRemote(o)) {
    if (o.pgdata === undefined) throw new BihaError('bad_args', 'give --pgdata=DIR (a node on this host) or --url=http://HOST:PORT (a node over HTTP)');
    return 'local';
  }
  if (o.pgdata !== undefined) throw new BihaError('bad_args', 'give --pgdata (a node on this host) or --url/--cluster-file (a node over HTTP), not both');
  return 'remote';
}

export function requireRemote(o: LocalOrRemote, command: string, instead: string): void {
  if (!isRemote(o)) throw new BihaError('bad_args', `${command} works through a node's HTTP API: give --url=http://HOST:PORT or --cluster-file=FILE`, { hint: instead });
}

/** service-mode on|off, or --on / --off: exactly one. */
export function serviceModeArg(arg: string | undefined, o: { on?: boolean; off?: boolean }): boolean {
  const given = [arg === undefined ? null : arg.trim().toLowerCase(), o.on ? 'on' : null, o.off ? 'off' : null].filter((x) => x !== null);
  if (given.length !== 1) throw new BihaError('bad_args', 'give exactly one of --on and --off (or service-mode on|off)');
  if (given[0] !== 'on' && given[0] !== 'off') throw new BihaError('bad_args', `service-mode takes on or off, not "${arg ?? ''}"`);
  return given[0] === 'on';
}

export function showConfig(o: JsonOpt, c: ClusterSettings): void {
  if (o.json) printJson(c);
  else process.stdout.write(renderConfig(c) + '\n');
}

/** With --json, the result of a local command that reports as it goes: which node and that it is done. */
export async function finished(o: JsonOpt & { pgdata?: string }, command: string, fields: Record<string, unknown> = {}): Promise<void> {
  if (!o.json) return;
  const { pgdata, conf } = await loadConf(o.pgdata);
  printJson({ command, node_id: conf.nodeId, pgdata: path.resolve(pgdata), ...fields, message: `${command} done` });
}
