// The client-endpoint options of bihactl init and add (--proxy-port, --proxy-ro-port,
// --proxy-hold-ms, --proxy-ro-max-lag, --vip, --vip-interface), checked and turned into the
// `proxy` field of the node's biha.conf.
import type { Command } from 'commander';
import { BihaError } from '../controller/errors.js';
import { parseLag } from '../controller/ops/lag.js';
import { parseVip } from '../controller/ops/vipspec.js';
import type { ProxyConf } from '../controller/state/nodefiles.js';
import { intOpt } from './util.js';

export interface ProxyOptions {
  proxyPort?: string;
  proxyRoPort?: string;
  proxyHoldMs?: string;
  proxyRoMaxLag?: string;
  vip?: string;
  vipInterface?: string;
}

/** Adds the options to an init or add command. */
export function proxyOptions(cmd: Command): Command {
  return cmd
    .option('--proxy-port <port>', 'listen on this port and hand every client connection to the PostgreSQL of the writable leader (off unless set)')
    .option('--proxy-ro-port <port>', 'listen on this port and spread client connections over streaming followers (the leader when none qualifies)')
    .option('--proxy-hold-ms <ms>', 'how long a new proxy connection waits for a writable leader before it is closed (default: heartbeat_send_period × heartbeat_max_lost + 5000)')
    .option('--proxy-ro-max-lag <size>', 'followers further behind than this get no --proxy-ro-port connections (bytes, or 16MB, 1GB...; default 16MB)')
    .option('--vip <addr/prefix>', 'a virtual IPv4 address the writable leader holds, e.g. 10.0.0.100/24 (needs CAP_NET_ADMIN)')
    .option('--vip-interface <if>', 'the network interface that holds --vip, e.g. eth0');
}

/** The options as biha.conf keeps them; undefined when none is given. */
export function proxyConf(o: ProxyOptions): ProxyConf | undefined {
  const port = o.proxyPort !== undefined ? intOpt('proxy-port', o.proxyPort, 1, 65535) : undefined;
  const roPort = o.proxyRoPort !== undefined ? intOpt('proxy-ro-port', o.proxyRoPort, 1, 65535) : undefined;
  const holdMs = o.proxyHoldMs !== undefined ? intOpt('proxy-hold-ms', o.proxyHoldMs, 0, 3_600_000) : undefined;
  let roMaxLagBytes: number | undefined;
  if (o.proxyRoMaxLag !== undefined) {
    const n = parseLag(o.proxyRoMaxLag);
    if (n === null) throw new BihaError('bad_args', `--proxy-ro-max-lag must be bytes or a size such as 16MB or 1GB, not "${o.proxyRoMaxLag}"`);
    roMaxLagBytes = n;
  }
  if (roPort === undefined && roMaxLagBytes !== undefined) throw new BihaError('bad_args', '--proxy-ro-max-lag applies to --proxy-ro-port: give --proxy-ro-port too');
  if (port === undefined && roPort === undefined && holdMs !== undefined) throw new BihaError('bad_args', '--proxy-hold-ms applies to --proxy-port and --proxy-ro-port: give one of them too');
  const vip = parseVip(o.vip, o.vipInterface);
  if (port === undefined && roPort === undefined && vip === undefined) return undefined;
  return {
    ...(port !== undefined ? { port } : {}),
    ...(roPort !== undefined ? { roPort } : {}),
    ...(holdMs !== undefined ? { holdMs } : {}),
    ...(roMaxLagBytes !== undefined ? { roMaxLagBytes } : {}),
    ...(vip !== undefined ? { vip } : {}),
  };
}

/** The proxy ports by option name, for the check that every port of a node differs. */
export function proxyPorts(c: ProxyConf | undefined): Record<string, number> {
  return {
    ...(c?.port !== undefined ? { 'proxy-port': c.port } : {}),
    ...(c?.roPort !== undefined ? { 'proxy-ro-port': c.roPort } : {}),
  };
}
