// The controller's half of the bridge on its own: request files in, reply files out, the status file.
// No PostgreSQL here; test/sql/golden.test.ts runs both halves together.
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  CMD_DIR,
  REPLY_TTL_MS,
  STATUS_FILE,
  SqlBridge,
  encodeRequestFile,
  parseRequestFile,
} from '../../src/controller/bridge/sqlbridge.js';
import type { BridgeReply, BridgeRequest } from '../../src/controller/bridge/sqlbridge.js';
import { fixture } from './standin.js';

const logger = pino({ level: 'silent' });

/** Polls (bounded) until `f` returns a value. */
async function eventually<T>(f: () => Promise<T | undefined>, what: string, limitMs = 5_000): Promise<T> {
  const deadline = Date.now() + limitMs;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

let pgdata: string;
let bridge: SqlBridge | null;
let seen: BridgeRequest[];
let answer: (req: BridgeRequest) => Promise<BridgeReply>;

async function readReply(id: string): Promise<unknown> {
  try {
    return JSON.parse(await fs.readFile(path.join(pgdata, CMD_DIR, `${id}.reply`), 'utf8')) as unknown;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

async function send(req: Partial<{ id: string; fn: string; args: Record<string, unknown>; user: string; ts: number; timeout_ms: number }>): Promise<string> {
  const id = req.id ?? randomUUID();
  const full = { id, fn: 'set_leader', args: { id: 2 }, user: 'dba', ts: Date.now(), timeout_ms: 10_000, ...req };
  await fs.writeFile(path.join(pgdata, CMD_DIR, `${id}.req`), encodeRequestFile(full));
  return id;
}

beforeEach(async () => {
  pgdata = await fs.mkdtemp(path.join(os.tmpdir(), 'biha-bridge-'));
  seen = [];
  answer = async () => ({ ok: true });
  bridge = new SqlBridge({
    pgdata,
    logger,
    pollMs: 20,
    handler: (req) => {
      seen.push(req);
      return answer(req);
    },
  });
  await bridge.start();
});

afterEach(async () => {
  await bridge?.stop();
  bridge = null;
  await fs.rm(pgdata, { recursive: true, force: true });
});

describe('SqlBridge requests', () => {
  it('creates pg_biha/cmd with mode 0700', async () => {
    const st = await fs.stat(path.join(pgdata, CMD_DIR));
    expect(st.isDirectory()).toBe(true);
    expect(st.mode & 0o777).toBe(0o700);
  });

  it('hands a valid request to the handler once, deletes it and writes the reply', async () => {
    answer = async () => ({ ok: true, result: 'magic' });
    const id = await send({ fn: 'get_magic_string', args: {}, user: 'alice' });
    expect(await eventually(() => readReply(id), 'reply')).toEqual({ id, ok: true, result: 'magic' });
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ id, fn: 'get_magic_string', args: {}, user: 'alice', timeoutMs: 10_000 });
    const left = await fs.readdir(path.join(pgdata, CMD_DIR));
    expect(left).toEqual([`${id}.reply`]);
  });

  it('passes the controller reason of a refusal, without a duplicated "biha:" prefix', async () => {
    answer = async () => ({ ok: false, error: 'biha: node 4 is not a member of the cluster' });
    const id = await send({ args: { id: 4 } });
    expect(await eventually(() => readReply(id), 'reply')).toEqual({ id, ok: false, error: 'node 4 is not a member of the cluster' });
  });

  it('turns a throwing handler into a refusal', async () => {
    answer = async () => {
      throw new Error('disk on fire');
    };
    const id = await send({});
    expect(await eventually(() => readReply(id), 'reply')).toEqual({ id, ok: false, error: 'disk on fire' });
  });

  it('rejects unknown functions and bad arguments with the same messages as the SQL side', async () => {
    const cases: Array<[string, Record<string, unknown>, string]> = [
      ['drop_everything', {}, 'unknown function "drop_everything"'],
      ['set_leader', { id: 0 }, 'node id must be a positive integer, not 0'],
      ['set_leader', { id: null }, 'node id must be a positive integer, not NULL'],
      ['set_leader', { id: 1.5 }, 'node id must be a positive integer, not 1.5'],
      ['set_leader', {}, 'node id must be a positive integer, not NULL'],
      ['set_leader', { id: 2, extra: 1 }, "Unrecognized key(s) in object: 'extra'"],
      ['set_heartbeat_send_period', { value: -1 }, 'heartbeat_send_period must be an integer from 10 to 60000, not -1'],
      ['set_heartbeat_max_lost', { value: 1 }, 'heartbeat_max_lost must be an integer from 2 to 1000, not 1'],
      ['set_no_wal_on_follower', { value: -1 }, 'no_wal_on_follower must be a non-negative integer, not -1'],
      ['set_sync_standbys', { value: -1 }, 'sync_standbys must be a non-negative integer, not -1'],
      ['set_sync_standbys', { value: 1, allow_sync_loss: 'yes' }, 'allow_sync_loss must be true or false, not yes'],
      ['set_nquorum_and_minnodes', { nquorum: 2, minnodes: 2, allow_sync_loss: null }, 'allow_sync_loss must be true or false, not NULL'],
      ['set_nquorum_and_minnodes', { nquorum: 2, minnodes: 0 }, 'minnodes must be a positive integer, not 0'],
      ['service_mode', { value: 'yes' }, 'service_mode must be true or false, not yes'],
      ['set_priority', { id: 2, value: -1 }, 'priority must be a non-negative integer, not -1'],
    ];
    for (const [fn, args, error] of cases) {
      const id = await send({ fn, args });
      const reply = (await eventually(() => readReply(id), `reply to ${fn}`)) as { ok: boolean; error: string };
      expect(reply.ok, fn).toBe(false);
      expect(reply.error, fn).toContain(error);
    }
    expect(seen).toEqual([]);
  });

  it('rejects a request whose id does not match its file name', async () => {
    const fileId = randomUUID();
    await fs.writeFile(
      path.join(pgdata, CMD_DIR, `${fileId}.req`),
      encodeRequestFile({ id: randomUUID(), fn: 'set_leader', args: { id: 2 }, user: 'x', ts: Date.now() }),
    );
    const reply = (await eventually(() => readReply(fileId), 'reply')) as { ok: boolean; error: string };
    expect(reply.ok).toBe(false);
    expect(reply.error).toMatch(/does not match the file name/);
    expect(seen).toEqual([]);
  });

  it('waits for a request file to be completed (its final newline)', async () => {
    const id = randomUUID();
    const text = encodeRequestFile({ id, fn: 'set_leader', args: { id: 2 }, user: 'x', ts: Date.now(), timeout_ms: 10_000 });
    const file = path.join(pgdata, CMD_DIR, `${id}.req`);
    await fs.writeFile(file, text.slice(0, 20));
    // Let several polls pass over the incomplete file.
    await new Promise((r) => setTimeout(r, 150));
    expect(seen).toEqual([]);
    expect(await readReply(id)).toBeUndefined();
    await fs.writeFile(file, text);
    expect(await eventually(() => readReply(id), 'reply')).toEqual({ id, ok: true });
    expect(seen).toHaveLength(1);
  });

  it('does not hand an expired request to the handler', async () => {
    const id = await send({ ts: Date.now() - 20_000, timeout_ms: 10_000 });
    const reply = (await eventually(() => readReply(id), 'reply')) as { ok: boolean; error: string };
    expect(reply).toEqual({ id, ok: false, error: 'the set_leader request expired before the biha controller picked it up' });
    expect(seen).toEqual([]);
  });

  it('handles requests concurrently: a slow one does not hold up the next', async () => {
    let release: () => void = () => undefined;
    answer = (req) =>
      req.fn === 'set_leader' ? new Promise((r) => (release = () => r({ ok: true }))) : Promise.resolve({ ok: true, result: false });
    const slow = await send({ fn: 'set_leader' });
    await eventually(async () => (seen.length === 1 ? true : undefined), 'slow request picked up');
    const quick = await send({ fn: 'service_mode', args: { value: false } });
    expect(await eventually(() => readReply(quick), 'quick reply')).toEqual({ id: quick, ok: true, result: false });
    expect(await readReply(slow)).toBeUndefined();
    release();
    expect(await eventually(() => readReply(slow), 'slow reply')).toEqual({ id: slow, ok: true });
  });

  it('deletes replies nobody read after a minute, and keeps fresh ones', async () => {
    const dir = path.join(pgdata, CMD_DIR);
    const old = path.join(dir, `${randomUUID()}.reply`);
    const fresh = path.join(dir, `${randomUUID()}.reply`);
    await fs.writeFile(old, '{}');
    await fs.writeFile(fresh, '{}');
    const past = new Date(Date.now() - REPLY_TTL_MS - 5_000);
    await fs.utimes(old, past, past);
    await eventually(async () => ((await fs.readdir(dir)).includes(path.basename(old)) ? undefined : true), 'old reply deleted');
    expect(await fs.readdir(dir)).toContain(path.basename(fresh));
  });

  it('picks up requests written before it started', async () => {
    await bridge?.stop();
    const id = await send({});
    bridge = new SqlBridge({ pgdata, logger, pollMs: 20, handler: async (r) => (seen.push(r), { ok: true }) });
    await bridge.start();
    expect(await eventually(() => readReply(id), 'reply')).toEqual({ id, ok: true });
  });
});

describe('SqlBridge status file', () => {
  it('writes status.json atomically, last write wins, no temporary files left', async () => {
    const writes = [];
    for (let term = 1; term <= 20; term++) {
      const s = fixture('healthy', 2, Date.now(), Date.now());
      writes.push(bridge?.writeStatus({ ...s, config: { ...s.config, term } }));
    }
    await Promise.all(writes);
    const doc = JSON.parse(await fs.readFile(path.join(pgdata, STATUS_FILE), 'utf8')) as { version: number; config: { term: number } };
    expect(doc.version).toBe(1);
    expect(doc.config.term).toBe(20);
    expect((await fs.readdir(path.join(pgdata, 'pg_biha'))).sort()).toEqual(['cmd', 'status.json']);
  });
});

describe('request file format', () => {
  const id = '0b6c0f5e-1a7b-4c8e-9d3f-2e4a5b6c7d8e';
  it('round-trips what the SQL side writes', () => {
    const text = encodeRequestFile({ id, fn: 'set_priority', args: { id: 3, value: 7 }, user: 'bob', ts: 1, timeout_ms: 500 });
    expect(text).toMatch(/^[0-9a-f]+\n$/);
    expect(parseRequestFile(text, id)).toEqual({
      kind: 'ok',
      req: { id, fn: 'set_priority', args: { id: 3, value: 7 }, user: 'bob', ts: 1, timeoutMs: 500 },
    });
  });
  it('tells an unfinished file from a malformed one', () => {
    expect(parseRequestFile('7b22', id)).toEqual({ kind: 'incomplete' });
    expect(parseRequestFile('xyz\n', id)).toMatchObject({ kind: 'bad', error: 'malformed request: not a hex-encoded line' });
    expect(parseRequestFile('7b22\n', id)).toMatchObject({ kind: 'bad', error: 'malformed request: not JSON' });
  });
});

describe('SqlBridge stop', () => {
  it('removes status.json, so that SQL reports the controller as not running', async () => {
    await bridge?.writeStatus(fixture('healthy', 2, Date.now(), Date.now()));
    await fs.access(path.join(pgdata, STATUS_FILE));
    await bridge?.stop();
    await expect(fs.access(path.join(pgdata, STATUS_FILE))).rejects.toThrow(/ENOENT/);
  });
});

describe('SqlBridge after stop', () => {
  it('ignores a late writeStatus()', async () => {
    await bridge?.stop();
    await bridge?.writeStatus(fixture('healthy', 2, Date.now(), Date.now()));
    await expect(fs.access(path.join(pgdata, STATUS_FILE))).rejects.toThrow(/ENOENT/);
  });
});
