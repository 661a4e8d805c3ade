// The proxy on a real three-node cluster (bihactl init/add --proxy-port, --proxy-ro-port on every
// node): a connection through any node's proxy port reaches the writable leader's PostgreSQL; the
// read-only port spreads connections over the streaming followers; after a switchover the old
// connection is closed and new ones reach the new leader; after kill -9 of the leader a new
// connection through the same port reaches the new leader; a connection made while there is no
// leader at all is held and goes through once one is elected.
// Ports: 27000-27029 (node i: PostgreSQL 27000 + 10(i-1), control +1, HTTP +2, proxy +3, read-only proxy +4).
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PASSWORD, TestCluster, sleep, waitFor } from '../helpers/cluster.js';

const c = new TestCluster({ nodes: 3, basePort: 27000, nquorum: 2, minnodes: 2, heartbeatSendPeriod: 200, heartbeatMaxLost: 5 });
const proxyPort = (i: number): number => c.port(i) + 3;
const roPort = (i: number): number => c.port(i) + 4;
/** Long enough for a node to be restarted while a connection waits. */
const HOLD_MS = 120_000;
const proxyArgs = (i: number): string[] => [`--proxy-port=${proxyPort(i)}`, `--proxy-ro-port=${roPort(i)}`, `--proxy-hold-ms=${HOLD_MS}`];

interface Landed {
  inRecovery: boolean;
  port: number;
}

/** A session through `port`, left open. */
async function open(port: number, timeoutMs = 10_000): Promise<pg.Client> {
  const cl = new pg.Client({ host: '127.0.0.1', port, user: 'biha_replication_user', password: PASSWORD, database: 'biha_db', connectionTimeoutMillis: timeoutMs });
  cl.on('error', () => undefined);
  try {
    await cl.connect();
  } catch (e) {
    await cl.end().catch(() => undefined);
    throw e;
  }
  return cl;
}

async function where(cl: pg.Client): Promise<Landed> {
  const r = await cl.query<{ ro: boolean; port: number }>('select pg_is_in_recovery() as ro, inet_server_port() as port');
  return { inRecovery: r.rows[0]!.ro, port: r.rows[0]!.port };
}

/** Where one new connection through `port` lands. */
async function land(port: number, timeoutMs = 10_000): Promise<Landed> {
  const cl = await open(port, timeoutMs);
  try {
    return await where(cl);
  } finally {
    await cl.end().catch(() => undefined);
  }
}

/** Waits until a new connection through `port` reaches node `leader`'s PostgreSQL as a primary. */
async function waitLands(port: number, leader: number): Promise<Landed> {
  return await waitFor(`a connection through port ${port} to reach node ${leader} as a primary`, async () => {
    const l = await land(port).catch(() => null);
    return l && !l.inRecovery && l.port === c.port(leader) ? l : null;
  }, 90_000, 200);
}

async function waitAllFollowing(leader: number): Promise<void> {
  for (const i of c.ids()) if (i !== leader) await c.waitStreaming(i);
}

describe('proxy to the writable leader', () => {
  beforeAll(async () => {
    const r = await c.init(proxyArgs(1));
    if (r.code !== 0) throw new Error(`init failed: ${r.stderr}`);
    await c.start(1);
    for (const i of [2, 3]) {
      const a = await c.add(i, proxyArgs(i));
      if (a.code !== 0) throw new Error(`add ${i} failed: ${a.stderr}`);
      await c.start(i);
      await c.waitLeader();
    }
    await waitAllFollowing(await c.waitLeader());
  }, 300_000);
  afterAll(async () => {
    await c.destroy();
  }, 120_000);

  it("a connection through a follower's proxy port reaches the leader's PostgreSQL, a writable primary", async () => {
    const l = await c.waitLeader();
    for (const f of c.ids().filter((i) => i !== l)) {
      const landed = await waitLands(proxyPort(f), l);
      expect(landed).toEqual({ inRecovery: false, port: c.port(l) });
    }
    // The leader's own proxy port too.
    expect(await waitLands(proxyPort(l), l)).toEqual({ inRecovery: false, port: c.port(l) });
  });

  it('the read-only port spreads connections over the streaming followers', async () => {
    const l = await c.waitLeader();
    const followers = c.ids().filter((i) => i !== l);
    const landings: Landed[] = [];
    await waitFor('read-only connections on both followers', async () => {
      landings.push(await land(roPort(l)));
      return followers.every((f) => landings.some((x) => x.port === c.port(f))) ? true : null;
    }, 60_000, 50);
    expect(landings.every((x) => x.inRecovery)).toBe(true);
    expect([...new Set(landings.map((x) => x.port))].sort()).toEqual(followers.map((f) => c.port(f)).sort());
  });

  it('after a switchover the old connection is closed and new connections reach the new leader', async () => {
    const l = await c.waitLeader();
    const via = c.ids().find((i) => i !== l)!;
    const target = c.ids().find((i) => i !== l && i !== via)!;
    const old = await open(proxyPort(via));
    expect(await where(old)).toEqual({ inRecovery: false, port: c.port(l) });
    const r = await c.su<{ set_leader: boolean }>(l, `select biha.set_leader(${target})`, 'biha_db');
    expect(r[0]?.set_leader).toBe(true);
    expect(await c.waitLeader({ not: l, timeoutMs: 60_000 })).toBe(target);
    await waitFor('the connection to the old leader to be closed', async () => ((await old.query('select 1').then(() => false, () => true)) ? true : null), 60_000, 200);
    await old.end().catch(() => undefined);
    expect(await waitLands(proxyPort(via), target)).toEqual({ inRecovery: false, port: c.port(target) });
    await waitAllFollowing(target);
  });

  it('after kill -9 of the leader a new connection through the same proxy port reaches the new leader', async () => {
    const l = await c.waitLeader();
    const via = c.ids().find((i) => i !== l)!;
    expect(await waitLands(proxyPort(via), l)).toEqual({ inRecovery: false, port: c.port(l) });
    c.kill9(l);
    const next = await c.waitLeader({ not: l, timeoutMs: 60_000 });
    expect(await waitLands(proxyPort(via), next)).toEqual({ inRecovery: false, port: c.port(next) });
    await c.start(l);
    await waitAllFollowing(next);
  });

  it('a connection made while there is no leader is held and goes through once one is elected', async () => {
    const l = await c.waitLeader();
    const stay = c.ids().find((i) => i !== l)!;
    const stopped = c.ids().filter((i) => i !== stay);
    for (const i of stopped) {
      const s = await c.stop(i);
      expect(s.code, s.stderr).toBe(0);
    }
    await waitFor(`node ${stay} to see no writable leader`, async () => ((await c.leader(stay)) === null ? true : null), 60_000);
    let settled = false;
    const held = land(proxyPort(stay), HOLD_MS).finally(() => (settled = true));
    held.catch(() => undefined);
    // A few election timeouts (5 × 200 ms) without a leader: the connection waits, it is not refused.
    await sleep(3000);
    expect(settled).toBe(false);
    for (const i of stopped) await c.start(i);
    const next = await c.waitLeader({ timeoutMs: 90_000 });
    const landed = await held;
    expect(landed).toEqual({ inRecovery: false, port: c.port(next) });
  });
});
