// The virtual IP module against real interfaces: three network namespaces (two "nodes" and a
// client) on a bridge in a fourth. The holder on node A adds the address and A answers the
// client's ARP requests for it; A gives it up and B takes it, and B's gratuitous ARP moves the client's neighbour entry to
// B's MAC address without the client asking; release() removes it. Run as an OS user without
// CAP_NET_ADMIN, `ip addr add` is refused and the log says which capability is missing.
// The namespaces' names carry this suite's port range (27000-27499); they are always deleted.
import { spawnSync } from 'node:child_process';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VipHolder } from '../../src/controller/ops/vip.js';
import type { VipSpec } from '../../src/controller/ops/vipspec.js';
import { waitFor } from '../helpers/cluster.js';

const IP = '/usr/sbin/ip';
const NS = { br: 'bv27460br', a: 'bv27460a', b: 'bv27460b', c: 'bv27460c' } as const;
const ADDR = { a: '10.27.46.1', b: '10.27.46.2', c: '10.27.46.3' } as const;
const VIP: VipSpec = { address: '10.27.46.100', prefix: 24, iface: 'eth0' };

function ip(...args: string[]): string {
  const r = spawnSync(IP, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim()}`);
  return r.stdout;
}
function inNs(ns: string, ...cmd: string[]): { ok: boolean; out: string } {
  const r = spawnSync(IP, ['netns', 'exec', ns, ...cmd], { encoding: 'utf8' });
  return { ok: r.status === 0, out: `${r.stdout}${r.stderr}` };
}

function removeNamespaces(): void {
  const have = spawnSync(IP, ['netns', 'list'], { encoding: 'utf8' }).stdout;
  for (const ns of Object.values(NS)) if (new RegExp(`^${ns}\\b`, 'm').test(have)) spawnSync(IP, ['netns', 'del', ns]);
}

/** Node namespaces a, b, c, each with eth0 on the bridge br0 in namespace br. */
function createNetwork(): void {
  for (const ns of Object.values(NS)) ip('netns', 'add', ns);
  ip('-n', NS.br, 'link', 'add', 'br0', 'type', 'bridge');
  ip('-n', NS.br, 'link', 'set', 'br0', 'up');
  for (const k of ['a', 'b', 'c'] as const) {
    ip('link', 'add', 'eth0', 'netns', NS[k], 'type', 'veth', 'peer', 'name', `v${k}`, 'netns', NS.br);
    ip('-n', NS.br, 'link', 'set', `v${k}`, 'master', 'br0', 'up');
    ip('-n', NS[k], 'addr', 'add', `${ADDR[k]}/24`, 'dev', 'eth0');
    ip('-n', NS[k], 'link', 'set', 'eth0', 'up');
    ip('-n', NS[k], 'link', 'set', 'lo', 'up');
  }
}

function mac(k: 'a' | 'b'): string {
  const j = JSON.parse(ip('-n', NS[k], '-j', 'link', 'show', 'eth0')) as Array<{ address: string }>;
  return j[0]!.address;
}
function holds(k: 'a' | 'b'): boolean {
  return ip('-n', NS[k], '-o', 'addr', 'show', 'dev', 'eth0').includes(` ${VIP.address}/${VIP.prefix} `);
}
/** The MAC address the client's neighbour table has for the virtual IP ('' when none). */
function clientNeighbour(): string {
  const j = JSON.parse(ip('-n', NS.c, '-j', 'neigh', 'show', VIP.address)) as Array<{ lladdr?: string }>;
  return j[0]?.lladdr ?? '';
}

/** The MAC address that answers the client's ARP request for the virtual IP ('' when none does). */
function answering(): string {
  const r = inNs(NS.c, 'arping', '-c', '1', '-w', '2', '-I', 'eth0', VIP.address);
  return r.ok ? (/\[([0-9A-Fa-f:]{17})\]/.exec(r.out)?.[1] ?? '').toLowerCase() : '';
}

function captureLog(): { log: pino.Logger; lines: string[] } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(...chunk.toString().split('\n').filter((l) => l !== ''));
      cb();
    },
  });
  return { log: pino({ level: 'info' }, sink), lines };
}

function holder(k: 'a' | 'b', log: pino.Logger): VipHolder {
  return new VipHolder({ spec: VIP, log, prefix: [IP, 'netns', 'exec', NS[k]], retryMs: 200 });
}

describe('virtual IP on real interfaces', () => {
  beforeAll(() => {
    removeNamespaces();
    createNetwork();
  });
  afterAll(() => {
    removeNamespaces();
  });

  it('follows the holder: added on A, moved to B with a gratuitous ARP the client takes, removed by release()', async () => {
    const la = captureLog();
    const lb = captureLog();
    const a = holder('a', la.log);
    const b = holder('b', lb.log);
    a.set(true);
    await waitFor('A to hold the virtual IP', async () => holds('a'), 10_000);
    expect(answering()).toBe(mac('a'));
    // The client has talked to A (its entry is stale now, as after a while without traffic).
    ip('-n', NS.c, 'neigh', 'replace', VIP.address, 'lladdr', mac('a'), 'dev', 'eth0', 'nud', 'stale');

    a.set(false);
    await waitFor('A to give up the virtual IP', async () => !holds('a'), 10_000);
    b.set(true);
    await waitFor('B to hold the virtual IP', async () => holds('b'), 10_000);
    // Nothing from the client meanwhile: only B's announcement can move its entry.
    await waitFor("the client's neighbour entry to name B", async () => clientNeighbour() === mac('b'), 15_000);
    expect(answering()).toBe(mac('b'));
    expect(holds('a')).toBe(false);

    await b.release();
    expect(holds('b')).toBe(false);
    expect(la.lines.join('\n')).toMatch(/virtual IP 10\.27\.46\.100\/24 on eth0 added/);
    expect(la.lines.join('\n')).toMatch(/virtual IP 10\.27\.46\.100\/24 on eth0 removed/);
    expect(lb.lines.join('\n')).not.toMatch(/"level":50/);
  });

  it('without CAP_NET_ADMIN, ip addr add is refused and the log names the capability', async () => {
    const l = captureLog();
    const h = new VipHolder({ spec: VIP, log: l.log, prefix: [IP, 'netns', 'exec', NS.a, 'runuser', '-u', 'postgres', '--'], retryMs: 200 });
    h.set(true);
    await waitFor('the refusal in the log', async () => l.lines.some((x) => x.includes('CAP_NET_ADMIN')), 10_000);
    expect(holds('a')).toBe(false);
    const line = JSON.parse(l.lines.find((x) => x.includes('CAP_NET_ADMIN'))!) as { level: number; msg: string };
    expect(line.level).toBe(50);
    expect(line.msg).toBe(
      'cannot add the virtual IP 10.27.46.100/24 on eth0: ip was refused (operation not permitted): the controller needs the CAP_NET_ADMIN capability (systemd: AmbientCapabilities=CAP_NET_ADMIN in the unit, see docs/operations.md)',
    );
    h.set(false);
  });
});
