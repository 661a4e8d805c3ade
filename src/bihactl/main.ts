// bihactl: the command-line interface of biha. Names and options follow the biha reference.
import * as path from 'node:path';
import { Command, CommanderError } from 'commander';
import { runController } from '../controller/controller.js';
import { runWatchdog } from '../controller/pg/watchdog.js';
import { BihaError, EXIT, oneLine } from '../controller/errors.js';
import { cmdAdd } from './add.js';
import { cmdBackup } from './backup.js';
import { cmdConninfo } from './conninfo.js';
import { cmdDrain, cmdRejoin } from './drain.js';
import { cmdInit } from './init.js';
import { cmdSetHttpCredentials } from './httpcreds.js';
import { cmdReinit } from './reinit.js';
import { cmdStart, cmdStop, nodeRequest } from './lifecycle.js';
import { cmdStatus } from './statusview.js';
import { cmdSystemdUnit } from './systemd.js';
import { cmdRotateSecret } from './security.js';
import { intOpt } from './util.js';
import { cmdFsm } from './fsm.js';
import { packageVersion } from './version.js';
import { cronProblem } from '../controller/ops/failback.js';

function exitCodeOf(e: unknown): number {
  if (!(e instanceof BihaError)) return EXIT.FAILURE;
  if (/^(bad_args|password_mismatch|bad_magic|pgdata_not_empty|pgdata_not_dir|port_in_use|no_password|not_a_node|not_a_cluster|bad_tls|target_not_empty|conflicting_setting)$/.test(e.code)) return EXIT.BAD_ARGS;
  if (/^(unreachable|not_running|auth|bad_password)$/.test(e.code)) return EXIT.UNREACHABLE;
  if (e.code === 'timeout') return EXIT.TIMEOUT;
  if (/^(already_running|running|already_node|state_corrupt|state_version|root_owner|insecure_mode|tls_mismatch|backup_locked|no_successor|no_streaming_follower|node_error|sync_loss|is_leader|reinit_interrupted|rewind_in_progress)$/.test(e.code)) return EXIT.BAD_STATE;
  return EXIT.FAILURE;
}

export function buildProgram(): Command {
  const program = new Command('bihactl')
    .description('built-in high availability for PostgreSQL: create, join and operate a biha cluster')
    .exitOverride()
    .showHelpAfterError(false)
    .configureOutput({ writeErr: (s) => process.stderr.write(s) })
    .version(packageVersion(), '-V, --version', 'print the version of biha')
    .option('--pg-bindir <dir>', 'bin directory of the PostgreSQL programs (sets BIHA_PG_BINDIR; default: those of the data directory\'s PG_VERSION)');

  // --pg-bindir works through BIHA_PG_BINDIR, so a controller started from here inherits it.
  program.hook('preAction', (cmd) => {
    const dir = (cmd.opts() as { pgBindir?: string }).pgBindir;
    if (dir === undefined) return;
    if (dir.trim() === '') throw new BihaError('bad_args', '--pg-bindir needs a directory');
    process.env.BIHA_PG_BINDIR = path.resolve(dir);
  });

  program
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
    .option('--pgdata <dir>', 'data directory (new or empty, or existing with --convert)')
    .option('--sync-standbys <k>', "synchronous replication: synchronous_standby_names = 'ANY k (...)'")
    .option('--heartbeat-send-period <ms>', 'heartbeat period in milliseconds (default 1000)')
    .option('--heartbeat-max-lost <n>', 'heartbeats a follower may miss before an election (default 10)')
    .option('--convert', 'turn an existing, stopped data directory into the first node')
    .option('--magic-file <file>', 'also write the magic string to this file (mode 0600)')
    .option('--use-ssl', 'TLS on the control channel: make a cluster CA and a node certificate in pg_biha/tls (openssl)')
    .option('--ssl-ca-file <file>', 'TLS with this cluster CA certificate (PEM) instead of a generated one; implies --use-ssl')
    .option('--ssl-cert-file <file>', "this node's certificate (PEM), signed by --ssl-ca-file")
    .option('--ssl-key-file <file>', "this node's private key (PEM, unencrypted)")
    .action(async (o) => cmdInit(o));

  program
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
    .option('--pgdata <dir>', 'data directory of the new node (new or empty)')
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
    .action(async (o) => cmdAdd(o));

  program
    .command('start')
    .description('start the node controller in the background (it starts PostgreSQL); returns once it answers and, for a node just added, once it has its vote')
    .option('--pgdata <dir>', 'data directory of the node')
    .option('--wait <seconds>', 'how long to wait for the controller and a new node\'s vote (default 120)')
    .action(async (o) => cmdStart(o));

  program
    .command('stop')
    .description('stop the node controller and PostgreSQL')
    .option('--pgdata <dir>', 'data directory of the node')
    .option('--keep-postgres', 'stop only the controller')
    .action(async (o) => cmdStop(o));

  program
    .command('controller')
    .description('run the node controller in the foreground (for systemd)')
    .option('--pgdata <dir>', 'data directory of the node')
    .option('--log-file <file>', 'log to this file instead of stderr')
    .action(async (o: { pgdata?: string; logFile?: string }) => {
      if (!o.pgdata) throw new BihaError('bad_args', '--pgdata is required');
      const code = await runController({ pgdata: o.pgdata, ...(o.logFile ? { logFile: o.logFile } : {}) });
      process.exitCode = code;
    });

  program
    .command('systemd-unit')
    .description('print (or write with --output) the systemd unit that runs this node\'s controller')
    .option('--pgdata <dir>', 'data directory of the node')
    .option('--unit-name <name>', 'unit name (default biha-node<ID>)')
    .option('--output <file>', 'write the unit to this file instead of stdout')
    .action(async (o) => cmdSystemdUnit(o));

  program
    .command('watchdog', { hidden: true })
    .description('the lease watchdog (started by the controller)')
    .option('--pgdata <dir>', 'data directory of the node')
    .action(async (o: { pgdata?: string }) => {
      if (!o.pgdata) throw new BihaError('bad_args', '--pgdata is required');
      process.exitCode = await runWatchdog(o.pgdata);
    });

  program
    .command('fsm')
    .description('print the node controller\'s transition table: what NC does for each PostgreSQL role and goal')
    .option('--json', 'print JSON')
    .action((o: { json?: boolean }) => cmdFsm(o));

  program
    .command('status')
    .description('show the cluster as this node sees it')
    .option('--pgdata <dir>', 'data directory of the node')
    .option('--json', 'print JSON')
    .option('--watch [seconds]', 'refresh every N seconds (default 1) until Ctrl-C')
    .option('--count <n>', 'with --watch: stop after N refreshes')
    .action(async (o) => cmdStatus(o));

  program
    .command('set-leader')
    .alias('switchover')
    .description('switch the leadership over to another node (biha.set_leader)')
    .option('--pgdata <dir>', 'data directory of any node')
    .option('--id <id>', 'node to make the leader')
    .option('--to <id>', 'same as --id')
    .action(async (o: { pgdata?: string; id?: string; to?: string }) => {
      const id = intOpt('id', o.id ?? o.to, 1, 1_000_000);
      const done = await nodeRequest(o.pgdata, 'set_leader', { id });
      if (done === false)
        throw new BihaError('switchover_failed', `the switchover to node ${id} did not complete`, {
          hint: 'the leader logged why; select * from biha.last_switchover() on it shows the outcome',
        });
      process.stderr.write(`bihactl: node ${id} is the leader\n`);
    });

  program
    .command('remove-node')
    .description('remove a node from the cluster (biha.remove_node)')
    .option('--pgdata <dir>', 'data directory of any node')
    .option('--id <id>', 'node to remove')
    .action(async (o: { pgdata?: string; id?: string }) => {
      const id = intOpt('id', o.id, 1, 1_000_000);
      await nodeRequest(o.pgdata, 'remove_node', { id });
      process.stderr.write(`bihactl: node ${id} removed\n`);
    });

  program
    .command('reset-node-error')
    .description('clear the NODE_ERROR state of this node (biha.reset_node_error)')
    .option('--pgdata <dir>', 'data directory of the node')
    .action(async (o: { pgdata?: string }) => {
      await nodeRequest(o.pgdata, 'reset_node_error', {});
      process.stderr.write('bihactl: NODE_ERROR cleared\n');
    });

  program
    .command('rewind')
    .description('pg_rewind this node from the leader, keeping its biha identity; clears NODE_ERROR (pg_rewind --biha in the reference)')
    .option('--pgdata <dir>', 'data directory of the node')
    .action(async (o: { pgdata?: string }) => {
      const r = await nodeRequest(o.pgdata, 'rewind', {}, 600_000);
      process.stderr.write(`bihactl: ${String(r)}\n`);
    });

  program
    .command('reinit')
    .description("take a fresh copy of this follower's data from the leader with pg_basebackup, keeping the node's identity; clears NODE_ERROR")
    .option('--pgdata <dir>', 'data directory of the node (stopped first if it runs)')
    .option('--no-keep', 'delete the old data before the copy instead of keeping it in <dir>.old-<time> until the copy succeeded')
    .action(async (o) => cmdReinit(o));

  program
    .command('failback')
    .description("set the preferred leader and the cron expression of its failback window (biha.set_failback), or turn it off with --off")
    .option('--pgdata <dir>', 'data directory of any node')
    .option('--id <id>', 'the preferred leader')
    .option('--cron <expr>', "when leadership may return to it, e.g. '*/5 * * * *' (6 fields: seconds first)")
    .option('--off', 'no preferred leader (biha.reset_failback)')
    .action(async (o: { pgdata?: string; id?: string; cron?: string; off?: boolean }) => {
      if (o.off) {
        if (o.id !== undefined || o.cron !== undefined) throw new BihaError('bad_args', '--off takes no --id or --cron');
        await nodeRequest(o.pgdata, 'reset_failback', {});
        process.stderr.write('bihactl: failback window off\n');
        return;
      }
      if (o.id === undefined && o.cron === undefined)
        throw new BihaError('bad_args', "give --id=N --cron='*/5 * * * *' to set the failback window, or --off to turn it off");
      const id = intOpt('id', o.id, 1, 1_000_000);
      if (o.cron === undefined) throw new BihaError('bad_args', "--cron is required (for example --cron='*/5 * * * *'), or give --off");
      const bad = cronProblem(o.cron);
      if (bad) throw new BihaError('bad_args', bad);
      await nodeRequest(o.pgdata, 'set_failback', { id, cron: o.cron });
      process.stderr.write(`bihactl: leadership may return to node ${id} at '${o.cron.trim()}'\n`);
    });

  program
    .command('set-http-credentials')
    .description('set (or --remove) the user and password of the remote management API of an existing node; the controller uses them from its next request')
    .option('--pgdata <dir>', 'data directory of the node')
    .option('--http-user <name>', 'user name; the password comes from BIHA_HTTP_PASSWORD or is typed on a terminal')
    .option('--remove', 'remove the credentials: the node then refuses every POST and PATCH request (403)')
    .action(async (o: { pgdata?: string; httpUser?: string; remove?: boolean }) => cmdSetHttpCredentials(o));

  program
    .command('magic-string')
    .description('print a magic string for adding nodes (biha.get_magic_string)')
    .option('--pgdata <dir>', 'data directory of any node')
    .action(async (o: { pgdata?: string }) => {
      process.stdout.write(String(await nodeRequest(o.pgdata, 'get_magic_string', {})) + '\n');
    });

  program
    .command('service-mode')
    .description('turn service (maintenance) mode on or off (biha.service_mode): no automatic elections or rewinds while on')
    .option('--pgdata <dir>', 'data directory of the leader (to turn it off without a leader: any node that can lead)')
    .option('--on', 'turn service mode on')
    .option('--off', 'turn service mode off')
    .action(async (o: { pgdata?: string; on?: boolean; off?: boolean }) => {
      if (Boolean(o.on) === Boolean(o.off)) throw new BihaError('bad_args', 'give exactly one of --on and --off');
      await nodeRequest(o.pgdata, 'service_mode', { value: Boolean(o.on) });
      process.stderr.write(`bihactl: service mode is ${o.on ? 'on: no automatic elections or rewinds until --off' : 'off'}\n`);
    });

  program
    .command('rotate-secret')
    .description('replace the cluster secret by a new random one on every node, without downtime; prints the new magic string')
    .option('--pgdata <dir>', 'data directory of any node')
    .option('--magic-file <file>', 'also write the new magic string to this file (mode 0600)')
    .action(async (o: { pgdata?: string; magicFile?: string }) => cmdRotateSecret(o));

  program
    .command('conninfo')
    .description('print libpq multi-host URIs over all data nodes: read-write first, then read-only')
    .option('--pgdata <dir>', 'data directory of any node')
    .option('--dbname <db>', 'database name (default postgres)')
    .option('--user <user>', 'user name (default: none, libpq uses the OS user)')
    .option('--json', 'print JSON')
    .action(async (o) => cmdConninfo(o));

  program
    .command('drain')
    .description('take this node out for maintenance: hand the leadership over if it leads, then stop it')
    .option('--pgdata <dir>', 'data directory of the node')
    .option('--drain-secs <n>', 'how long to wait for another node to become LEADER_RW (default 30)')
    .option('--force', 'stop even when no other node can take over')
    .action(async (o) => cmdDrain(o));

  program
    .command('rejoin')
    .description('start this node again and wait until it streams from the leader')
    .option('--pgdata <dir>', 'data directory of the node')
    .option('--wait <seconds>', 'how long to wait (default 120)')
    .action(async (o) => cmdRejoin(o));

  program
    .command('backup')
    .description('pg_basebackup of the cluster from a streaming follower, one backup at a time cluster-wide')
    .option('--pgdata <dir>', 'data directory of any node (its controller takes the backup lock)')
    .option('--target <dir>', 'new or empty directory for the backup')
    .option('--allow-leader', 'copy from the leader when no follower streams')
    .option('--max-rate <rate>', 'limit the transfer rate (pg_basebackup --max-rate, e.g. 20M)')
    .action(async (o) => cmdBackup(o));

  return program;
}

/** Runs bihactl with argv; returns the exit code. One line on stderr for any failure. */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT.OK;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.exitCode === 0) return EXIT.OK;
      return EXIT.BAD_ARGS;
    }
    process.stderr.write(`bihactl: ${oneLine(e)}\n`);
    return exitCodeOf(e);
  }
}
