import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  MIN_REPLICATION_SLOTS,
  MIN_WAL_SENDERS,
  describeRaised,
  parseBool,
  parseConfLine,
  parseIntSetting,
  planSettings,
  readDbaSettings,
} from '../../src/controller/pg/settings.js';
import type { EffectiveSettings } from '../../src/controller/pg/settings.js';
import { BihaError } from '../../src/controller/errors.js';

let dir = '';
beforeAll(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'biha-settings-'));
});
afterAll(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

const PGDATA = '/data/pg';
function settings(entries: Record<string, string>, file = `${PGDATA}/postgresql.conf`): EffectiveSettings {
  return new Map(Object.entries(entries).map(([k, v]) => [k, { value: v, file }]));
}
const plan = (s: EffectiveSettings, dataChecksums = false): ReturnType<typeof planSettings> =>
  planSettings(s, { pgdata: PGDATA, dataChecksums, walReceiverTimeout: '10s' });
const names = (lines: string[]): string[] => lines.map((l) => l.split('=')[0]!.trim());

describe('parseConfLine', () => {
  it('reads name = value, name value, quoted values with escapes, and stops at comments', () => {
    expect(parseConfLine('max_wal_senders = 40')).toEqual({ name: 'max_wal_senders', value: '40' });
    expect(parseConfLine('  max_wal_senders 40   # more senders')).toEqual({ name: 'max_wal_senders', value: '40' });
    expect(parseConfLine("unix_socket_directories = '/run/pg, /tmp'  # two")).toEqual({ name: 'unix_socket_directories', value: '/run/pg, /tmp' });
    expect(parseConfLine("x = 'it''s \\'ok\\''")).toEqual({ name: 'x', value: "it's 'ok'" });
    expect(parseConfLine('wal_level=logical#c')).toEqual({ name: 'wal_level', value: 'logical' });
    expect(parseConfLine('biha.autorewind = true')).toEqual({ name: 'biha.autorewind', value: 'true' });
  });

  it('skips comments, blank lines, unterminated quotes and bare words; recognises include directives', () => {
    expect(parseConfLine('#max_wal_senders = 10')).toBeNull();
    expect(parseConfLine('   ')).toBeNull();
    expect(parseConfLine("x = 'open")).toBeNull();
    expect(parseConfLine('lonely')).toBeNull();
    expect(parseConfLine("include 'extra.conf'")).toEqual({ name: 'include', value: 'extra.conf', include: 'include' });
    expect(parseConfLine("INCLUDE_DIR = 'conf.d'")).toEqual({ name: 'include_dir', value: 'conf.d', include: 'include_dir' });
    expect(parseConfLine("include_if_exists 'x.conf'")?.include).toBe('include_if_exists');
  });
});

describe('parseBool and parseIntSetting', () => {
  it('accept PostgreSQL boolean spellings and reject the rest', () => {
    for (const t of ['on', 'ON', 'true', 't', 'yes', 'y', '1']) expect(parseBool(t), t).toBe(true);
    for (const f of ['off', 'of', 'false', 'f', 'no', 'n', '0']) expect(parseBool(f), f).toBe(false);
    for (const x of ['', 'o', 'maybe', '2']) expect(parseBool(x), x).toBeNull();
  });
  it('accept decimal, octal and hex integers and reject units or words', () => {
    expect(parseIntSetting('40')).toBe(40);
    expect(parseIntSetting(' 2 ')).toBe(2);
    expect(parseIntSetting('0')).toBe(0);
    expect(parseIntSetting('020')).toBe(16);
    expect(parseIntSetting('0x20')).toBe(32);
    expect(parseIntSetting('16MB')).toBeNull();
    expect(parseIntSetting('many')).toBeNull();
  });
});

describe('planSettings', () => {
  it('raises nothing the DBA set high enough and writes only preferences for unset settings', () => {
    const p = plan(settings({ max_wal_senders: '40', max_replication_slots: '20', wal_log_hints: 'on', wal_level: 'logical' }));
    expect(p.raised).toEqual([]);
    expect(names(p.lines)).toEqual(['wal_keep_size', 'max_slot_wal_keep_size', 'hot_standby_feedback', 'wal_receiver_status_interval', 'wal_receiver_timeout']);
  });

  it('raises values below the minimum, PostgreSQL defaults included, and says from what', () => {
    const p = plan(settings({ max_wal_senders: '2' }));
    expect(p.raised).toEqual([
      { name: 'wal_log_hints', from: 'off', to: 'on', source: 'default' },
      { name: 'max_wal_senders', from: '2', to: String(MIN_WAL_SENDERS), source: `${PGDATA}/postgresql.conf` },
      { name: 'max_replication_slots', from: '10', to: String(MIN_REPLICATION_SLOTS), source: 'default' },
    ]);
    expect(names(p.lines).slice(0, 3)).toEqual(['wal_log_hints', 'max_wal_senders', 'max_replication_slots']);
    expect(p.lines.find((l) => l.startsWith('max_wal_senders'))).toMatch(/raised by biha from 2/);
    expect(describeRaised(p.raised[1]!)).toBe(`max_wal_senders raised from 2 (postgresql.conf) to ${MIN_WAL_SENDERS}, the minimum biha needs`);
  });

  it('leaves wal_log_hints alone when data checksums are on, and turns hot_standby on', () => {
    const p = plan(settings({ hot_standby: 'off', max_wal_senders: '16', max_replication_slots: '16' }), true);
    expect(p.raised.map((r) => r.name)).toEqual(['hot_standby']);
    expect(names(p.lines)).not.toContain('wal_log_hints');
  });

  it('keeps the DBA preferences: wal_keep_size, max_slot_wal_keep_size, hot_standby_feedback and timeouts they set are not written', () => {
    const p = plan(settings({ wal_keep_size: '1GB', max_slot_wal_keep_size: '-1', hot_standby_feedback: 'off', wal_receiver_status_interval: '10s', wal_receiver_timeout: '60s' }));
    expect(names(p.lines)).toEqual(['wal_log_hints', 'max_wal_senders', 'max_replication_slots']);
  });

  it('refuses wal_level = minimal with one line', () => {
    let err: unknown = null;
    try {
      plan(settings({ wal_level: 'minimal' }));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(BihaError);
    expect((err as BihaError).code).toBe('conflicting_setting');
    expect((err as Error).message).toMatch(/^wal_level = minimal .* cannot work with biha/);
    expect((err as Error).message).not.toContain('\n');
  });

  it('refuses a too low value from postgresql.auto.conf, which the include cannot override', () => {
    expect(() => plan(settings({ max_wal_senders: '4' }, `${PGDATA}/postgresql.auto.conf`))).toThrow(/max_wal_senders = 4 is set in postgresql\.auto\.conf/);
    expect(() => plan(settings({ max_wal_senders: 'lots' }))).toThrow(/not an integer/);
  });
});

describe('readDbaSettings', () => {
  it('follows includes in place, lets postgresql.auto.conf win, and ignores postgresql.biha.conf', async () => {
    const pg = path.join(dir, 'pgdata');
    await fsp.mkdir(path.join(pg, 'conf.d'), { recursive: true });
    await fsp.writeFile(path.join(pg, 'postgresql.conf'), [
      'max_wal_senders = 4',
      "include 'extra.conf'",
      "include_if_exists 'missing.conf'",
      "include_dir 'conf.d'",
      "unix_socket_directories = '/run/custom'",
      "include 'postgresql.biha.conf'",
      '',
    ].join('\n'));
    await fsp.writeFile(path.join(pg, 'extra.conf'), 'max_wal_senders = 40\nwal_level = logical\n');
    await fsp.writeFile(path.join(pg, 'conf.d', '01.conf'), 'max_replication_slots = 30\n');
    await fsp.writeFile(path.join(pg, 'conf.d', '02.conf'), 'max_replication_slots = 31\n');
    await fsp.writeFile(path.join(pg, 'postgresql.biha.conf'), 'max_wal_senders = 16\nwal_level = replica\n');
    await fsp.writeFile(path.join(pg, 'postgresql.auto.conf'), "wal_log_hints = 'on'\n");
    const s = await readDbaSettings(pg);
    expect(s.get('max_wal_senders')).toEqual({ value: '40', file: path.join(pg, 'extra.conf') });
    expect(s.get('wal_level')?.value).toBe('logical');
    expect(s.get('max_replication_slots')?.value).toBe('31');
    expect(s.get('unix_socket_directories')?.value).toBe('/run/custom');
    expect(s.get('wal_log_hints')).toEqual({ value: 'on', file: path.join(pg, 'postgresql.auto.conf') });
    expect(planSettings(s, { pgdata: pg, dataChecksums: false, walReceiverTimeout: '10s' }).raised).toEqual([]);
  });

  it('fails on a missing include (not include_if_exists)', async () => {
    const pg = path.join(dir, 'broken');
    await fsp.mkdir(pg, { recursive: true });
    await fsp.writeFile(path.join(pg, 'postgresql.conf'), "include 'nope.conf'\n");
    await expect(readDbaSettings(pg)).rejects.toThrow(/cannot read configuration file .*nope\.conf/);
  });
});
