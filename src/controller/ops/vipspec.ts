// The virtual IP as the DBA gives it (--vip=ADDR/PREFIX --vip-interface=IF), checked.
import * as net from 'node:net';
import { BihaError } from '../errors.js';

export interface VipSpec {
  readonly address: string;
  readonly prefix: number;
  readonly iface: string;
}

/** Linux interface names: at most 15 characters, no slash, colon or white space. */
const IFACE_RE = /^[A-Za-z0-9_.@-]{1,15}$/;

/** --vip=ADDR/PREFIX --vip-interface=IF, checked; undefined when neither is given. */
export function parseVip(cidr: string | undefined, iface: string | undefined): VipSpec | undefined {
  if (cidr === undefined && iface === undefined) return undefined;
  if (cidr === undefined) throw new BihaError('bad_args', '--vip-interface needs --vip=ADDR/PREFIX (for example --vip=10.0.0.100/24)');
  if (iface === undefined) throw new BihaError('bad_args', `--vip needs --vip-interface=IF: the network interface that holds ${cidr} (for example eth0)`);
  const m = /^([0-9.]+)\/(\d{1,2})$/.exec(cidr.trim());
  if (!m || !net.isIPv4(m[1]!) || Number(m[2]) > 32 || Number(m[2]) < 1)
    throw new BihaError('bad_args', `--vip must be an IPv4 address with a prefix length such as 10.0.0.100/24, not "${cidr}"`);
  if (!IFACE_RE.test(iface.trim())) throw new BihaError('bad_args', `--vip-interface must be a network interface name such as eth0, not "${iface}"`);
  return { address: m[1]!, prefix: Number(m[2]), iface: iface.trim() };
}

export function vipText(v: VipSpec): string {
  return `${v.address}/${v.prefix} on ${v.iface}`;
}
