// bihactl: the command-line interface of biha. Names and options follow the biha reference.
import * as path from 'node:path';
import { Command, CommanderError } from 'commander';
import { BihaError, EXIT } from '../controller/errors.js';
import { finished, oneMode, remoteOptions, requireRemote, serviceModeArg, showConfig } from './cliopts.js';
import type { LocalOrRemote } from './cliopts.js';
import { applyLocalConfig, localConfig, parseAssignments } from './config.js';
import type { ReinitOptions } from './reinit.js';
import { nodeRequest } from './localnode.js';
import { done, isParserSuccess, printJson, reportFailure, usageError, wantsJson } from './output.js';
import type { StatusOpts } from './statusview.js';
import { intOpt, isoTime } from './util.js';
import { packageVersion } from '../controller/version.js';
import { dataDirOf } from '../controller/pg/layout.js';
import { proxyOptions } from './proxyopts.js';

// Each command's implementation is loaded when that command runs: bihactl starts without loading
// the controller, the PostgreSQL client or the metrics library for a command that needs none of them.
const load = {
  controller: () => import('../controller/controller.js'),
  watchdog: () => import('../controller/pg/watchdog.js'),
  add: () => import('./add.js'),
  backup: () => import('./backup.js'),
  conninfo: () => import('./conninfo.js'),
  drain: () => import('./drain.js'),
  init: () => import('./init.js'),
  lifecycle: () => import('./lifecycle.js'),
  httpcreds: () => import('./httpcreds.js'),
  reinit: () => import('./reinit.js'),
  remotecmds: () => import('./remotecmds.js'),
  statusview: () => import('./statusview.js'),
  systemd: () => import('./systemd.js'),
  security: () => import('./security.js'),
  fsm: () => import('./fsm.js'),
  failback: () => import('../controller/ops/failback.js'),
};

export function buildProgram(): Command {
  const program = new Command('bihactl')
    .description('built-in high availability for PostgreSQL: create, join and operate a biha cluster')
    .exitOverride()
    .showHelpAfterError(false)
    // The parser's errors are printed by main() in bihactl's own one-line format.
    .configureOutput({ writeErr: (s) => process.stderr.write(s), outputError: () => undefined })
    .version(packageVersion(), '-V, --version', 'print the version of biha')
    .option('--pg-bindir <dir>', 'bin directory of the PostgreSQL programs (sets BIHA_PG_BINDIR; default: those of the data directory\'s PG_VERSION)');

  // --pg-bindir works through BIHA_PG_BINDIR, so a controller started from here inherits it.
  program.hook('preAction', (cmd) => {
    const dir = (cmd.opts() as { pgBindir?: string }).pgBindir;
    if (dir === undefined) return;
    if (dir.trim() === '') throw new BihaError('bad_args', '--pg-bindir needs a directory');
    process.env.BIHA_PG_BINDIR = path.resolve(dir);
  });
  // --pgdata may name a node's configuration directory (Debian's /etc/postgresql/N/NAME): the
  // commands on an existing node work on the data directory it names. init and add read it themselves.
  program.hook('preAction', async (_cmd, action) => {
    const pgdata = (action.opts() as { pgdata?: unknown }).pgdata;
    if (typeof pgdata !== 'string' || pgdata.trim() === '' || ['init', 'add'].includes(action.name())) return;
    action.setOptionValue('pgdata', await dataDirOf(pgdata.trim()));
  });

  const init = program
    .command('init')
    .description('create the first node of a cluster (initdb, or --convert a stopped data directory); prints the magic string on stdout')
    .option('--biha-node-id <id>', 'id of this node (positive integer)')
    .option('--host <host>', 'host name or address the other nodes use to reach this node')
    .option('--port <port>', 'PostgreSQL port')
    .option('--biha-port <port>', 'control channel port (default: --port + 1)')
    .option('--http-port <port>', 'health and metrics HTTP port (default: --port + 2576, 8008 for 5432)')
    .option('--http-host <addr>', 'address the HTTP port listens on (default: the --host address)')
    .option('--http-user <name>', 'user of the remote management API (HTTP basic auth); password from BIHA_HTTP_PASSWORD or typed on a terminal')
    .option('--http-tls', "serve the HTTP port over HTTPS with the control channel's certificate (needs a TLS cluster)")
    .option('--nquorum <n>', 'votes needed to elect a leader')
    .option('--minnodes <n>', 'live nodes (leader included) the leader needs to accept writes')
    .option('--pgdata <dir>', "data directory (new or empty, or existing with --convert), or with --convert Debian's configuration directory /etc/postgresql/N/NAME")
    .option('--sync-standbys <k>', "synchronous replication: synchronous_standby_names = 'ANY k (...)'")
    .option('--heartbeat-send-period <ms>', 'heartbeat period in milliseconds (default 1000)')
    .option('--heartbeat-max-lost <n>', 'heartbeats a follower may miss before an election (default 10)')
    .option('--convert', 'turn an existing, stopped data directory into the first node')
    .option('--magic-file <file>', 'also write the magic string to this file (mode 0600)')
    .option('--use-ssl', 'TLS on the control channel: make a cluster CA and a node certificate in pg_biha/tls (openssl)')
    .option('--ssl-ca-file <file>', 'TLS with this cluster CA certificate (PEM) instead of a generated one; implies --use-ssl')
    .option('--ssl-cert-file <file>', "this node's certificate (PEM), signed by --ssl-ca-file")
    .option('--ssl-key-file <file>', "this node's private key (PEM, unencrypted)")
    .option('--json', 'print JSON: node_id, pgdata and magic_string');
  proxyOptions(init).action(async (o) => (await load.init()).cmdInit(o));

  const add = program
    .command('add')
    .description('add a node: register it through the leader and copy the data with pg_basebackup')
    .option('--biha-node-id <id>', 'id of the new node')
    .option('--host <host>', 'host name or address of the new node')
    .option('--port <port>', 'PostgreSQL port of the new node (a referee has none: --port then only derives the other ports)')
    .option('--biha-port <port>', 'control channel port (default: --port + 1)')
    .option('--http-port <port>', 'health and metrics HTTP port (default: --port + 2576, 8008 for 5432)')
    .option('--http-host <addr>', 'address the HTTP port listens on (default: the --host address)')
    .option('--http-user <name>', 'user of the remote management API (HTTP basic auth); password from BIHA_HTTP_PASSWORD or typed on a terminal')
    .option('--http-tls', "serve the HTTP port over HTTPS with the control channel's certificate (needs a TLS cluster)")
    .option('--magic-string <s>', 'the magic string printed by bihactl init or biha.get_magic_string()')
    .option('--magic-file <file>', 'read the magic string from this file')
    .option('--use-leader <conn>', 'reach the leader by "host=H port=P biha-port=BP" instead of a magic string')
    .option('--pgdata <dir>', "data directory of the new node (new or empty), or Debian's configuration directory /etc/postgresql/N/NAME of an emptied cluster")
    .option('--convert-standby', 'turn an existing, stopped standby of the leader into the new node')
    .option('--backup-method <m>', 'pg_basebackup (the only method)')
    .option('--mode <mode>', 'regular (default), referee or referee_with_wal')
    .option('--can-be-leader <bool>', 'whether the node may become the leader')
    .option('--can-vote <bool>', 'whether the node votes in elections')
    .option('--priority <n>', 'breaks ties between equally up-to-date candidates (higher first)')
    .option('--ssl-ca-file <file>', 'TLS clusters: the cluster CA certificate (PEM); without the three --ssl options the node gets a certificate from the cluster CA')
    .option('--ssl-cert-file <file>', "TLS clusters: this node's certificate (PEM), signed by the cluster CA")
    .option('--ssl-key-file <file>', "TLS clusters: this node's private key (PEM, unencrypted)")
    .option('--allow-sync-loss', 'add the voter even though synchronous mode would then not keep every acknowledged commit through a failover (sync_standbys + 1 + nquorum > voting nodes)')
    .option('--json', 'print JSON');
  proxyOptions(add).action(async (o) => (await load.add()).cmdAdd(o));

  program
    .command('start')
    .description('start the node controller in the background (it starts PostgreSQL); returns once it answers and, for a node just added, once it has its vote')
    .option('--pgdata <dir>', 'data directory of the node')
    .option('--wait <seconds>', 'how long to wait for the controller and a new node\'s vote (default 120)')
    .option('--json', 'print JSON')
    .action(async (o: { pgdata?: string; wait?: string; json?: boolean }) => {
      await (await load.lifecycle()).cmdStart(o);
      await finished(o, 'start');
    });

  program
    .command('stop')
    .description('stop the node controller and PostgreSQL')
    .option('--pgdata <dir>', 'data directory of the node')
    .option('--keep-postgres', 'stop only the controller')
    .option('--json', 'print JSON')
    .action(async (o: { pgdata?: string; keepPostgres?: boolean; json?: boolean }) => {
      await (await load.lifecycle()).cmdStop(o);
      await finished(o, 'stop');
    });

  program
    .command('controller')
    .description('run the node controller in the foreground (for systemd)')
    .option('--pgdata <dir>', 'data directory of the node')
    .option('--log-file <file>', 'log to this file instead of stderr')
    .action(async (o: { pgdata?: string; logFile?: string }) => {
      if (!o.pgdata) throw new BihaError('bad_args', '--pgdata is required');
      const code = await (await load.controller()).runController({ pgdata: o.pgdata, ...(o.logFile ? { logFile: o.logFile } : {}) });
      process.exitCode = code;
    });

  program
    .command('systemd-unit')
    .description('print (or write with --output) the systemd unit that runs this node\'s controller')
    .option('--pgdata <dir>', 'data directory of the node')
    .option('--unit-name <name>', 'unit name (default biha-node<ID>)')
    .option('--output <file>', 'write the unit to this file instead of stdout')
    .action(async (o) => (await load.systemd()).cmdSystemdUnit(o));

  program
    .command('watchdog', { hidden: true })
    .description('the lease watchdog (started by the controller)')
    .option('--pgdata <dir>', 'data directory of the node')
    .action(async (o: { pgdata?: string }) => {
      if (!o.pgdata) throw new BihaError('bad_args', '--pgdata is required');
      process.exitCode = await (await load.watchdog()).runWatchdog(o.pgdata);
    });

  program
    .command('fsm')
    .description('print the node controller\'s transition table: what NC does for each PostgreSQL role and goal')
    .option('--json', 'print JSON')
    .action(async (o: { json?: boolean }) => (await load.fsm()).cmdFsm(o));

  remoteOptions(
    program
      .command('status')
      .description('show the cluster as this node (or the node of --url) sees it')
      .option('--pgdata <dir>', 'data directory of the node')
      .option('--json', 'print JSON')
      .option('--watch [seconds]', 'refresh every N seconds (default 1) until Ctrl-C')
      .option('--count <n>', 'with --watch: stop after N refreshes'),
    false,
  ).action(async (o: StatusOpts & LocalOrRemote) => {
    const { cmdStatus, statusView } = await load.statusview();
    const remote = oneMode(o) === 'remote' ? await load.remotecmds() : null;
    await cmdStatus(o, remote ? () => remote.remoteStatusView(o) : () => statusView(o.pgdata));
  });

  remoteOptions(
    program
      .command('set-leader')
      .alias('switchover')
      .description('switch the leadership over to another node (biha.set_leader; POST /switchover with --url)')
      .argument('[id]', 'node to make the leader')
      .option('--pgdata <dir>', 'data directory of any node')
      .option('--id <id>', 'node to make the leader')
      .option('--to <id>', 'same as --id')
      .option('--leader <id>', 'with --url: switch over only if this node is the leader now')
      .option('--scheduled-at <time>', 'with --url: switch over at this ISO-8601 time (within 7 days) instead of now')
      .option('--cancel', 'with --url: cancel the switchover scheduled on that node (no id)')
      .option('--json', 'print JSON'),
    true,
  ).action(async (arg: string | undefined, o: LocalOrRemote & { id?: string; to?: string; leader?: string; scheduledAt?: string; cancel?: boolean }) => {
    if (o.cancel) {
      requireRemote(o, 'set-leader --cancel', 'a switchover is scheduled only through the HTTP API');
      if ([arg, o.id, o.to, o.leader, o.scheduledAt].some((x) => x !== undefined)) throw new BihaError('bad_args', '--cancel takes no node id, --leader or --scheduled-at');
      await (await load.remotecmds()).remoteCancelSwitchover(o);
      return;
    }
    const id = intOpt('id', arg ?? o.id ?? o.to, 1, 1_000_000);
    if (oneMode(o) === 'remote') {
      const leader = o.leader === undefined ? undefined : intOpt('leader', o.leader, 1, 1_000_000);
      await (await load.remotecmds()).remoteSetLeader(o, { candidate: id, ...(leader !== undefined ? { leader } : {}), ...(o.scheduledAt !== undefined ? { scheduled_at: isoTime('scheduled-at', o.scheduledAt) } : {}) });
      return;
    }
    if (o.leader !== undefined || o.scheduledAt !== undefined) throw new BihaError('bad_args', '--leader and --scheduled-at work with --url only');
    const ok = await nodeRequest(o.pgdata, 'set_leader', { id });
    if (ok === false)
      throw new BihaError('switchover_failed', `the switchover to node ${id} did not complete`, {
        hint: 'the leader logged why; select * from biha.last_switchover() on it shows the outcome',
      });
    done(o, `node ${id} is the leader`, { leader: id });
  });

  remoteOptions(
    program
      .command('failover')
      .description('with --url: make --candidate the leader now (POST /failover); biha elects a leader by itself when there is none')
      .option('--candidate <id>', 'node to make the leader')
      .option('--json', 'print JSON'),
    true,
  ).action(async (o: LocalOrRemote & { candidate?: string }) => {
    requireRemote(o, 'failover', 'on this host use bihactl set-leader');
    await (await load.remotecmds()).remoteFailover(o, intOpt('candidate', o.candidate, 1, 1_000_000));
  });

  remoteOptions(
    program
      .command('restart')
      .description("with --url: restart the PostgreSQL of the URL's node (POST /restart); on the leader --force is needed")
      .option('--json', 'print JSON'),
    true,
  ).action(async (o: LocalOrRemote) => {
    requireRemote(o, 'restart', 'on this host use bihactl stop and bihactl start');
    await (await load.remotecmds()).remoteRestart(o);
  });

  remoteOptions(
    program
      .command('history')
      .description("the timeline switches of the cluster, oldest first: the leader's timeline history with who was promoted and why (GET /history with --url)")
      .option('--pgdata <dir>', 'data directory of any node')
      .option('--json', 'print JSON'),
    false,
  ).action(async (o: LocalOrRemote) => {
    if (oneMode(o) === 'remote') await (await load.remotecmds()).remoteHistory(o);
    else (await load.remotecmds()).showHistory(o, await nodeRequest(o.pgdata, 'history', {}, 15_000), o.pgdata ?? 'the node');
  });

  remoteOptions(
    program
      .command('config')
      .description('show the cluster settings (config), or change them (config set KEY=VALUE...) under their SQL parameter names')
      .argument('[action]', 'show (default) or set')
      .argument('[settings...]', 'with set: KEY=VALUE, e.g. heartbeat_max_lost=20')
      .option('--pgdata <dir>', 'data directory of any node (a change goes to the leader)')
      .option('--json', 'print JSON'),
    true,
  ).action(async (action: string | undefined, settings: string[], o: LocalOrRemote) => {
    const remote = oneMode(o) === 'remote';
    if (action === undefined || action === 'show') {
      if (settings.length > 0) throw new BihaError('bad_args', 'config show takes no arguments; to change settings: bihactl config set KEY=VALUE');
      if (remote) await (await load.remotecmds()).remoteConfig(o);
      else showConfig(o, await localConfig(o.pgdata));
      return;
    }
    if (action !== 'set') throw new BihaError('bad_args', `config ${action}: give config (to show the settings) or config set KEY=VALUE...`);
    const patch = parseAssignments(settings);
    if (remote) await (await load.remotecmds()).remoteConfigSet(o, patch);
    else showConfig(o, await applyLocalConfig(o.pgdata, patch));
  });

  program
    .command('remove-node')
    .description('remove a node from the cluster (biha.remove_node)')
    .option('--pgdata <dir>', 'data directory of any node')
    .option('--id <id>', 'node to remove')
    .option('--json', 'print JSON')
    .action(async (o: { pgdata?: string; id?: string; json?: boolean }) => {
      const id = intOpt('id', o.id, 1, 1_000_000);
      await nodeRequest(o.pgdata, 'remove_node', { id });
      done(o, `node ${id} removed`, { removed: id });
    });

  program
    .command('reset-node-error')
    .description('clear the NODE_ERROR state of this node (biha.reset_node_error)')
    .option('--pgdata <dir>', 'data directory of the node')
    .option('--json', 'print JSON')
    .action(async (o: { pgdata?: string; json?: boolean }) => {
      await nodeRequest(o.pgdata, 'reset_node_error', {});
      done(o, 'NODE_ERROR cleared', { node_error: 'NO_ERROR' });
    });

  program
    .command('rewind')
    .description('pg_rewind this node from the leader, keeping its biha identity; clears NODE_ERROR (pg_rewind --biha in the reference)')
    .option('--pgdata <dir>', 'data directory of the node')
    .option('--json', 'print JSON')
    .action(async (o: { pgdata?: string; json?: boolean }) => {
      const r = await nodeRequest(o.pgdata, 'rewind', {}, 600_000);
      done(o, String(r));
    });

  remoteOptions(
    program
      .command('reinit')
      .description("take a fresh copy of this follower's data from the leader with pg_basebackup, keeping the node's identity; clears NODE_ERROR (POST /reinitialize with --url)")
      .option('--pgdata <dir>', 'data directory of the node (stopped first if it runs)')
      .option('--no-keep', 'delete the old data before the copy instead of keeping it in <dir>.old-<time> until the copy succeeded')
      .option('--json', 'print JSON'),
    true,
  ).action(async (o: LocalOrRemote & ReinitOptions) => {
    if (oneMode(o) === 'remote') await (await load.remotecmds()).remoteReinit(o);
    else await (await load.reinit()).cmdReinit(o);
  });

  program
    .command('failback')
    .description("set the preferred leader and the cron expression of its failback window (biha.set_failback), or turn it off with --off")
    .option('--pgdata <dir>', 'data directory of any node')
    .option('--id <id>', 'the preferred leader')
    .option('--cron <expr>', "when leadership may return to it, e.g. '*/5 * * * *' (6 fields: seconds first)")
    .option('--off', 'no preferred leader (biha.reset_failback)')
    .option('--json', 'print JSON')
    .action(async (o: { pgdata?: string; id?: string; cron?: string; off?: boolean; json?: boolean }) => {
      if (o.off) {
        if (o.id !== undefined || o.cron !== undefined) throw new BihaError('bad_args', '--off takes no --id or --cron');
        await nodeRequest(o.pgdata, 'reset_failback', {});
        done(o, 'failback window off', { failback: null });
        return;
      }
      if (o.id === undefined && o.cron === undefined)
        throw new BihaError('bad_args', "give --id=N --cron='*/5 * * * *' to set the failback window, or --off to turn it off");
      const id = intOpt('id', o.id, 1, 1_000_000);
      if (o.cron === undefined) throw new BihaError('bad_args', "--cron is required (for example --cron='*/5 * * * *'), or give --off");
      const bad = (await load.failback()).cronProblem(o.cron);
      if (bad) throw new BihaError('bad_args', bad);
      await nodeRequest(o.pgdata, 'set_failback', { id, cron: o.cron });
      done(o, `leadership may return to node ${id} at '${o.cron.trim()}'`, { failback: { id, cron: o.cron.trim() } });
    });

  program
    .command('set-http-credentials')
    .description('set (or --remove) the user and password of the remote management API of an existing node; the controller uses them from its next request')
    .option('--pgdata <dir>', 'data directory of the node')
    .option('--http-user <name>', 'user name; the password comes from BIHA_HTTP_PASSWORD or is typed on a terminal')
    .option('--remove', 'remove the credentials: the node then refuses every POST, PATCH and DELETE request (403)')
    .option('--json', 'print JSON')
    .action(async (o: { pgdata?: string; httpUser?: string; remove?: boolean; json?: boolean }) => {
      await (await load.httpcreds()).cmdSetHttpCredentials(o);
      await finished(o, 'set-http-credentials', { http_user: o.remove ? null : (o.httpUser?.trim() ?? null) });
    });

  program
    .command('magic-string')
    .description('print a magic string for adding nodes (biha.get_magic_string)')
    .option('--pgdata <dir>', 'data directory of any node')
    .option('--json', 'print JSON')
    .action(async (o: { pgdata?: string; json?: boolean }) => {
      const magic = String(await nodeRequest(o.pgdata, 'get_magic_string', {}));
      if (o.json) printJson({ magic_string: magic });
      else process.stdout.write(magic + '\n');
    });

  remoteOptions(
    program
      .command('service-mode')
      .description('turn service (maintenance) mode on or off (biha.service_mode; PATCH /config with --url): no automatic elections or rewinds while on')
      .argument('[on|off]', 'on or off (or give --on / --off)')
      .option('--pgdata <dir>', 'data directory of the leader (to turn it off without a leader: any node that can lead)')
      .option('--on', 'turn service mode on')
      .option('--off', 'turn service mode off')
      .option('--json', 'print JSON'),
    true,
  ).action(async (arg: string | undefined, o: LocalOrRemote & { on?: boolean; off?: boolean }) => {
    const on = serviceModeArg(arg, o);
    if (oneMode(o) === 'remote') {
      await (await load.remotecmds()).remoteServiceMode(o, on);
      return;
    }
    await nodeRequest(o.pgdata, 'service_mode', { value: on });
    done(o, `service mode is ${on ? 'on: no automatic elections or rewinds until service-mode off' : 'off'}`, { service_mode: on });
  });

  program
    .command('rotate-secret')
    .description('replace the cluster secret by a new random one on every node, without downtime; prints the new magic string')
    .option('--pgdata <dir>', 'data directory of any node')
    .option('--magic-file <file>', 'also write the new magic string to this file (mode 0600)')
    .option('--json', 'print JSON')
    .action(async (o: { pgdata?: string; magicFile?: string; json?: boolean }) => (await load.security()).cmdRotateSecret(o));

  program
    .command('conninfo')
    .description('print libpq multi-host URIs over all data nodes: read-write first, then read-only')
    .option('--pgdata <dir>', 'data directory of any node')
    .option('--dbname <db>', 'database name (default postgres)')
    .option('--user <user>', 'user name (default: none, libpq uses the OS user)')
    .option('--json', 'print JSON')
    .action(async (o) => (await load.conninfo()).cmdConninfo(o));

  program
    .command('drain')
    .description('take this node out for maintenance: hand the leadership over if it leads, then stop it')
    .option('--pgdata <dir>', 'data directory of the node')
    .option('--drain-secs <n>', 'how long to wait for another node to become LEADER_RW (default 30)')
    .option('--force', 'stop even when no other node can take over')
    .option('--json', 'print JSON')
    .action(async (o: { pgdata?: string; drainSecs?: string; force?: boolean; json?: boolean }) => {
      await (await load.drain()).cmdDrain(o);
      await finished(o, 'drain');
    });

  program
    .command('rejoin')
    .description('start this node again and wait until it streams from the leader')
    .option('--pgdata <dir>', 'data directory of the node')
    .option('--wait <seconds>', 'how long to wait (default 120)')
    .option('--json', 'print JSON')
    .action(async (o: { pgdata?: string; wait?: string; json?: boolean }) => {
      await (await load.drain()).cmdRejoin(o);
      await finished(o, 'rejoin');
    });

  program
    .command('backup')
    .description('pg_basebackup of the cluster from a streaming follower, one backup at a time cluster-wide')
    .option('--pgdata <dir>', 'data directory of any node (its controller takes the backup lock)')
    .option('--target <dir>', 'new or empty directory for the backup')
    .option('--allow-leader', 'copy from the leader when no follower streams')
    .option('--max-rate <rate>', 'limit the transfer rate (pg_basebackup --max-rate, e.g. 20M)')
    .option('--json', 'print JSON')
    .action(async (o: { pgdata?: string; target?: string; allowLeader?: boolean; maxRate?: string; json?: boolean }) => {
      await (await load.backup()).cmdBackup(o);
      await finished(o, 'backup', { target: o.target === undefined ? null : path.resolve(o.target) });
    });

  return program;
}

/** The subcommand an argument list names (for the hint of a usage error). */
function commandNamed(program: Command, args: readonly string[]): string | null {
  for (const a of args) {
    if (a.startsWith('-')) continue;
    const c = program.commands.find((x) => x.name() === a || x.aliases().includes(a));
    return c ? c.name() : null;
  }
  return null;
}

/**
 * Runs bihactl with argv; returns the exit code. A failure is one `bihactl: ...` line on stderr, or
 * with --json one `{"error","code"}` document on stdout; its exit code comes from exitcodes.ts.
 */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  const json = wantsJson(argv);
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT.OK;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (isParserSuccess(e)) return EXIT.OK;
      return reportFailure(usageError(e, commandNamed(program, argv.slice(2))), json);
    }
    return reportFailure(e, json);
  }
}
