// bihactl: the command-line interface of biha. Names and options follow the biha reference.
import { Command, CommanderError } from 'commander';
import { runController } from '../controller/daemon.js';
import { runWatchdog } from '../controller/watchdog.js';
import { BihaError, EXIT, oneLine } from '../controller/errors.js';
import { cmdAdd } from './add.js';
import { cmdInit } from './init.js';
import { cmdStart, cmdStatus, cmdStop, nodeRequest } from './lifecycle.js';
import { intOpt } from './util.js';

function exitCodeOf(e: unknown): number {
  if (!(e instanceof BihaError)) return EXIT.FAILURE;
  if (/^(bad_args|bad_magic|pgdata_not_empty|pgdata_not_dir|port_in_use|no_password|not_a_node|not_a_cluster)$/.test(e.code)) return EXIT.BAD_ARGS;
  if (/^(unreachable|not_running|auth|bad_password)$/.test(e.code)) return EXIT.UNREACHABLE;
  if (e.code === 'timeout') return EXIT.TIMEOUT;
  if (/^(already_running|running|already_node|state_corrupt|state_version|root_owner)$/.test(e.code)) return EXIT.BAD_STATE;
  return EXIT.FAILURE;
}

export function buildProgram(): Command {
  const program = new Command('bihactl')
    .description('built-in high availability for PostgreSQL: create, join and operate a biha cluster')
    .exitOverride()
    .showHelpAfterError(false)
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });

  program
    .command('init')
    .description('create the first node of a cluster (initdb, or --convert a stopped data directory); prints the magic string on stdout')
    .option('--biha-node-id <id>', 'id of this node (positive integer)')
    .option('--host <host>', 'host name or address the other nodes use to reach this node')
    .option('--port <port>', 'PostgreSQL port')
    .option('--biha-port <port>', 'control channel port (default: --port + 1)')
    .option('--http-port <port>', 'health and metrics HTTP port (default: --port + 2)')
    .option('--nquorum <n>', 'votes needed to elect a leader')
    .option('--minnodes <n>', 'live nodes (leader included) the leader needs to accept writes')
    .option('--pgdata <dir>', 'data directory (new or empty, or existing with --convert)')
    .option('--sync-standbys <k>', "synchronous replication: synchronous_standby_names = 'ANY k (...)'")
    .option('--heartbeat-send-period <ms>', 'heartbeat period in milliseconds (default 1000)')
    .option('--heartbeat-max-lost <n>', 'heartbeats a follower may miss before an election (default 10)')
    .option('--convert', 'turn an existing, stopped data directory into the first node')
    .option('--magic-file <file>', 'also write the magic string to this file (mode 0600)')
    .action(async (o) => cmdInit(o));

  program
    .command('add')
    .description('add a node: register it through the leader and copy the data with pg_basebackup')
    .option('--biha-node-id <id>', 'id of the new node')
    .option('--host <host>', 'host name or address of the new node')
    .option('--port <port>', 'PostgreSQL port of the new node (a referee has none: --port then only derives the other ports)')
    .option('--biha-port <port>', 'control channel port (default: --port + 1)')
    .option('--http-port <port>', 'health and metrics HTTP port (default: --port + 2)')
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
    .action(async (o) => cmdAdd(o));

  program
    .command('start')
    .description('start the node controller in the background (it starts PostgreSQL); returns once it answers')
    .option('--pgdata <dir>', 'data directory of the node')
    .option('--wait <seconds>', 'how long to wait for the controller (default 120)')
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
    .command('watchdog', { hidden: true })
    .description('the lease watchdog (started by the controller)')
    .option('--pgdata <dir>', 'data directory of the node')
    .action(async (o: { pgdata?: string }) => {
      if (!o.pgdata) throw new BihaError('bad_args', '--pgdata is required');
      process.exitCode = await runWatchdog(o.pgdata);
    });

  program
    .command('status')
    .description('show the cluster as this node sees it')
    .option('--pgdata <dir>', 'data directory of the node')
    .option('--json', 'print JSON')
    .option('--watch [seconds]', 'refresh every N seconds (default 1)')
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
      await nodeRequest(o.pgdata, 'set_leader', { id });
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
    .command('magic-string')
    .description('print a magic string for adding nodes (biha.get_magic_string)')
    .option('--pgdata <dir>', 'data directory of any node')
    .action(async (o: { pgdata?: string }) => {
      process.stdout.write(String(await nodeRequest(o.pgdata, 'get_magic_string', {})) + '\n');
    });

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
