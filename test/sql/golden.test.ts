// The biha_db SQL interface on a real primary and hot standby, each with a SqlBridge whose handler is
// a stand-in controller. Golden files: test/sql/golden/<name>.sql run through psql -X -a -q; the
// output must equal <name>.out on every node listed. UPDATE_GOLDEN=1 rewrites the .out files.
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqlBridge, STATUS_FILE, installSql } from '../../src/controller/bridge/sqlbridge.js';
import type { StatusFile } from '../../src/controller/bridge/sqlbridge.js';
import { createBihaRolesAndDb, startPair, waitForReplay } from './cluster.js';
import type { Pair, PgNode } from './cluster.js';
import { StandIn, fixture } from './standin.js';
import type { Call, FixtureKind } from './standin.js';

const GOLDEN = path.join(path.dirname(fileURLToPath(import.meta.url)), 'golden');
const UPDATE = process.env.UPDATE_GOLDEN === '1';

interface Node {
  name: 'primary' | 'standby';
  id: number;
  pg: PgNode;
  bridge: SqlBridge;
  standIn: StandIn;
}

let pair: Pair;
let nodes: Node[] = [];
let heartbeat: NodeJS.Timeout | null = null;
const t0 = Date.now();

/** What the status file of a node is while a script runs. */
type StatusSetup = { kind: 'fresh'; fixture: FixtureKind } | { kind: 'stale' } | { kind: 'missing' };

async function setStatus(n: Node, s: StatusSetup, asNode = n.id): Promise<void> {
  if (heartbeat) clearInterval(heartbeat);
  heartbeat = null;
  if (s.kind === 'missing') {
    await fs.rm(path.join(n.pg.dir, STATUS_FILE), { force: true });
    return;
  }
  if (s.kind === 'stale') {
    const at = Date.now() - 60_000;
    await n.bridge.writeStatus(fixture('healthy', asNode, at, at));
    return;
  }
  const write = (): Promise<void> => n.bridge.writeStatus(fixture(s.fixture, asNode, Date.now(), t0));
  await write();
  // Like a controller: rewrite at least once per heartbeat period.
  heartbeat = setInterval(() => void write().catch(() => undefined), 500);
}

/** Both nodes get the status file of node 2, so that one expected output fits both. */
async function runGolden(name: string, n: Node, status: StatusSetup): Promise<string> {
  await setStatus(n, status, 2);
  try {
    return await n.pg.psqlScript(path.join(GOLDEN, `${name}.sql`));
  } finally {
    if (heartbeat) clearInterval(heartbeat);
    heartbeat = null;
  }
}

async function checkGolden(name: string, out: string): Promise<void> {
  const expectedFile = path.join(GOLDEN, `${name}.out`);
  if (UPDATE) {
    await fs.writeFile(expectedFile, out);
    return;
  }
  const expected = await fs.readFile(expectedFile, 'utf8');
  expect(out).toBe(expected);
}

const CASES: Array<{ name: string; status: StatusSetup }> = [
  { name: 'read', status: { kind: 'fresh', fixture: 'healthy' } },
  { name: 'node_error', status: { kind: 'fresh', fixture: 'node_error' } },
  { name: 'commands', status: { kind: 'fresh', fixture: 'healthy' } },
  { name: 'missing', status: { kind: 'missing' } },
  { name: 'stale', status: { kind: 'stale' } },
  { name: 'permissions', status: { kind: 'fresh', fixture: 'healthy' } },
];

/** The calls each script must make to the controller of the node it runs on, in order. */
const EXPECTED_CALLS: Record<string, Call[]> = {
  read: [],
  missing: [],
  stale: [],
  node_error: [
    { fn: 'reset_node_error', args: {}, user: 'postgres' },
    { fn: 'reset_node_error', args: {}, user: 'postgres' },
  ],
  commands: [
    ['set_leader', { id: 2 }],
    ['remove_node', { id: 3 }],
    ['get_magic_string', {}],
    ['set_heartbeat_max_lost', { value: 5 }],
    ['set_heartbeat_send_period', { value: 250 }],
    ['set_no_wal_on_follower', { value: 30000 }],
    ['set_nquorum_and_minnodes', { nquorum: 2, minnodes: 2 }],
    ['set_sync_standbys', { value: 0 }],
    ['set_sync_standbys', { value: 1 }],
    ['set_sync_standbys', { value: 1, allow_sync_loss: true }],
    ['set_sync_standbys', { value: 1, allow_sync_loss: false }],
    ['set_nquorum_and_minnodes', { nquorum: 2, minnodes: 2, allow_sync_loss: true }],
    ['service_mode', { value: true }],
    ['service_mode', { value: false }],
    ['set_can_be_leader', { id: 3, value: false }],
    ['set_can_vote', { id: 3, value: false }],
    ['set_priority', { id: 2, value: 10 }],
    ['set_priority', { id: 2, value: 0 }],
    ['reset_node_error', {}],
    ['set_priority', { id: 2, value: 1 }],
    ['set_leader', { id: 9 }],
    ['remove_node', { id: 1 }],
    ['set_nquorum_and_minnodes', { nquorum: 5, minnodes: 2 }],
    ['set_sync_standbys', { value: 3 }],
    ['set_sync_standbys', { value: 3, allow_sync_loss: true }],
    ['set_can_vote', { id: 9, value: true }],
    ['set_priority', { id: 13, value: 1 }],
    ['set_leader', { id: 77 }],
    ['set_priority', { id: 2, value: 2 }],
    ['set_priority', { id: 2, value: 4 }],
    ['set_failback', { id: 1, cron: '*/5 * * * *' }],
    ['reset_failback', {}],
    ['set_failback', { id: 9, cron: '*/5 * * * *' }],
  ].map(([fn, args]) => ({ fn: fn as string, args: args as Record<string, unknown>, user: 'postgres' })),
  permissions: [
    { fn: 'set_leader', args: { id: 2 }, user: 'biha_test_manager' },
    { fn: 'get_magic_string', args: {}, user: 'biha_test_manager' },
    { fn: 'set_priority', args: { id: 2, value: 5 }, user: 'biha_test_manager' },
    { fn: 'service_mode', args: { value: true }, user: 'biha_test_manager' },
    { fn: 'set_sync_standbys', args: { value: 1, allow_sync_loss: true }, user: 'biha_test_manager' },
    { fn: 'reset_node_error', args: {}, user: 'biha_test_manager' },
  ],
};

beforeAll(async () => {
  pair = await startPair();
  await createBihaRolesAndDb(pair.primary);
  const c = pair.primary.client('biha_db');
  await c.connect();
  try {
    expect(await installSql(c)).toBe('1.0');
    await c.query(`
      CREATE ROLE biha_test_monitor IN ROLE pg_monitor;
      CREATE ROLE biha_test_manager IN ROLE biha_cluster_management_role;
      CREATE ROLE biha_test_plain;
    `);
  } finally {
    await c.end();
  }
  await waitForReplay(pair.primary, pair.standby);
  const logger = pino({ level: 'silent' });
  for (const [name, id, pg] of [['primary', 1, pair.primary], ['standby', 2, pair.standby]] as const) {
    const standIn = new StandIn();
    const bridge = new SqlBridge({ pgdata: pg.dir, logger, handler: standIn.handler, pollMs: 50 });
    await bridge.start();
    nodes.push({ name, id, pg, bridge, standIn });
  }
});

afterAll(async () => {
  if (heartbeat) clearInterval(heartbeat);
  for (const n of nodes) {
    n.standIn.release();
    await n.bridge.stop();
  }
  nodes = [];
  await pair?.stop();
});

describe('golden SQL scripts, on the hot standby and on the primary', () => {
  for (const c of CASES) {
    it(c.name, async () => {
      const outputs: string[] = [];
      // The standby first: it is the case the bridge exists for.
      for (const n of [...nodes].reverse()) {
        const other = nodes.find((o) => o !== n);
        n.standIn.take();
        other?.standIn.take();
        const out = await runGolden(c.name, n, c.status);
        outputs.push(out);
        // Each command reached the controller of the node it was issued on, and only that one.
        expect(n.standIn.take(), `calls on ${n.name}`).toEqual(EXPECTED_CALLS[c.name]);
        expect(other?.standIn.take(), `calls on the other node while running on ${n.name}`).toEqual([]);
      }
      const [first, ...rest] = outputs;
      for (const o of rest) expect(o).toBe(first);
      await checkGolden(c.name, first ?? '');
    });
  }
});

describe('bridge facts on the two nodes', () => {
  it('each node reads its own status file', async () => {
    for (const n of nodes) await setStatus(n, { kind: 'fresh', fixture: 'healthy' });
    if (heartbeat) clearInterval(heartbeat);
    for (const n of nodes) {
      const rows = await n.pg.query<{ id: number; node_id: number }>(
        'SELECT c.id, m.node_id FROM biha.config() c, (SELECT DISTINCT node_id FROM biha.monitoring()) m',
        [],
        'biha_db',
      );
      expect(rows).toEqual([{ id: n.id, node_id: n.id }]);
    }
  });

  it('a status file rewritten by the controller is seen by the next query', async () => {
    const n = nodes.find((x) => x.name === 'standby');
    if (!n) throw new Error('no standby');
    const s: StatusFile = fixture('healthy', n.id, Date.now(), t0);
    await n.bridge.writeStatus({ ...s, config: { ...s.config, term: 41 } });
    const a = await n.pg.query<{ term: string }>('SELECT term FROM biha.config()', [], 'biha_db');
    await n.bridge.writeStatus({ ...s, generatedAtMs: Date.now(), config: { ...s.config, term: 42 } });
    const b = await n.pg.query<{ term: string }>('SELECT term FROM biha.config()', [], 'biha_db');
    expect([a[0]?.term, b[0]?.term]).toEqual(['41', '42']);
  });

  it('a status file is stale after 10 s, or after three heartbeat periods when that is longer', async () => {
    const n = nodes.find((x) => x.name === 'standby');
    if (!n) throw new Error('no standby');
    const leaderState = async (ageMs: number, periodMs: number): Promise<string | undefined> => {
      const s = fixture('healthy', n.id, Date.now() - ageMs, t0);
      await n.bridge.writeStatus({ ...s, config: { ...s.config, heartbeat_send_period: periodMs } });
      const rows = await n.pg.query<{ state: string }>('SELECT state FROM biha.status_v WHERE id = 1', [], 'biha_db');
      return rows[0]?.state;
    };
    expect(await leaderState(5_000, 1000)).toBe('LEADER_RW');
    expect(await leaderState(11_000, 1000)).toBe('UNKNOWN');
    expect(await leaderState(30_000, 20_000)).toBe('LEADER_RW');
    expect(await leaderState(61_000, 20_000)).toBe('UNKNOWN');
  });

  it('the standby really is in recovery', async () => {
    const rows = await pair.standby.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r');
    expect(rows[0]?.r).toBe(true);
  });
});
