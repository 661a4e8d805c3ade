// bihactl init/add --proxy-* and --vip options: what biha.conf keeps, and one clear line for bad input.
import { describe, expect, it } from 'vitest';
import { proxyConf, proxyPorts } from '../../src/bihactl/proxyopts.js';
import { distinctPorts } from '../../src/bihactl/util.js';
import { vipFailure } from '../../src/controller/ops/vip.js';
import { parseVip } from '../../src/controller/ops/vipspec.js';
import { ExecError } from '../../src/controller/exec.js';

describe('proxyConf', () => {
  it('is absent unless a proxy port or a virtual IP is given', () => {
    expect(proxyConf({})).toBeUndefined();
  });

  it('keeps the ports, the hold, the lag in bytes and the virtual IP', () => {
    expect(proxyConf({ proxyPort: '6432', proxyRoPort: '6433', proxyHoldMs: '8000', proxyRoMaxLag: '1MB', vip: '10.0.0.100/24', vipInterface: 'eth0' })).toEqual({
      port: 6432, roPort: 6433, holdMs: 8000, roMaxLagBytes: 1024 * 1024, vip: { address: '10.0.0.100', prefix: 24, iface: 'eth0' },
    });
    expect(proxyConf({ vip: '192.168.1.5/32', vipInterface: 'br-0' })).toEqual({ vip: { address: '192.168.1.5', prefix: 32, iface: 'br-0' } });
  });

  it('refuses bad values with one line that says what to give', () => {
    expect(() => proxyConf({ proxyPort: '70000' })).toThrow('--proxy-port must be an integer between 1 and 65535, not "70000"');
    expect(() => proxyConf({ proxyRoPort: '6433', proxyRoMaxLag: 'lots' })).toThrow('--proxy-ro-max-lag must be bytes or a size such as 16MB or 1GB, not "lots"');
    expect(() => proxyConf({ proxyRoMaxLag: '1MB', proxyPort: '6432' })).toThrow('--proxy-ro-max-lag applies to --proxy-ro-port: give --proxy-ro-port too');
    expect(() => proxyConf({ proxyHoldMs: '100' })).toThrow('--proxy-hold-ms applies to --proxy-port and --proxy-ro-port: give one of them too');
  });

  it('a proxy port must differ from the node\'s other ports', () => {
    const c = proxyConf({ proxyPort: '5433' });
    expect(() => distinctPorts({ port: 5432, 'biha-port': 5433, ...proxyPorts(c) })).toThrow('--proxy-port must differ from --biha-port (both are 5433)');
  });
});

describe('parseVip', () => {
  it('needs both options, an IPv4 address with a prefix and an interface name', () => {
    expect(parseVip(undefined, undefined)).toBeUndefined();
    expect(() => parseVip('10.0.0.100/24', undefined)).toThrow('--vip needs --vip-interface=IF');
    expect(() => parseVip(undefined, 'eth0')).toThrow('--vip-interface needs --vip=ADDR/PREFIX');
    expect(() => parseVip('10.0.0.100', 'eth0')).toThrow('--vip must be an IPv4 address with a prefix length such as 10.0.0.100/24, not "10.0.0.100"');
    expect(() => parseVip('10.0.0.300/24', 'eth0')).toThrow('--vip must be an IPv4 address');
    expect(() => parseVip('10.0.0.1/33', 'eth0')).toThrow('--vip must be an IPv4 address');
    expect(() => parseVip('10.0.0.1/24', 'eth0; rm -rf /')).toThrow('--vip-interface must be a network interface name such as eth0');
    expect(() => parseVip('10.0.0.1/24', 'a-name-far-too-long')).toThrow('--vip-interface must be a network interface name');
  });
});

describe('vipFailure', () => {
  const spec = { address: '10.0.0.100', prefix: 24, iface: 'eth0' };
  const refused = (stderr: string): ExecError =>
    new ExecError('ip failed with exit code 2', { program: 'ip', command: 'ip addr add', failure: 'exit', exitCode: 2, signal: null, stderr, stdout: '', tail: stderr });

  it('names the capability when ip is refused', () => {
    expect(vipFailure(spec, 'add', refused('RTNETLINK answers: Operation not permitted'))).toBe(
      'cannot add the virtual IP 10.0.0.100/24 on eth0: ip was refused (operation not permitted): the controller needs the CAP_NET_ADMIN capability (systemd: AmbientCapabilities=CAP_NET_ADMIN in the unit, see docs/operations.md)',
    );
  });

  it('names the interface when it does not exist', () => {
    expect(vipFailure(spec, 'add', refused('Cannot find device "eth0"'))).toBe('cannot add the virtual IP 10.0.0.100/24 on eth0: there is no network interface eth0: fix --vip-interface');
  });
});
