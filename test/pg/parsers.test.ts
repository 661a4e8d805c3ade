// Pure helpers of the PostgreSQL adapter: LSNs, tool output parsers, conninfo and conf syntax,
// templates and marker blocks, error formatting. No server needed.

import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BihaError, EXIT, oneLine } from '../../src/controller/errors.js';
import { formatLsn, parseLsn, parseLsnOrNull, tliFromWalFile } from '../../src/controller/pg/lsn.js';
import {
  conninfoValue,
  parseConninfo,
  pgpassLine,
  quoteLiteral,
  replicationConninfo,
} from '../../src/controller/pg/conn.js';
import {
  BEGIN_MARK,
  END_MARK,
  parseConf,
  readBihaGucs,
  renderServiceUnit,
  renderTemplate,
  renderText,
  setAutoConfOffline,
  templatesDir,
  upsertMarkedBlock,
} from '../../src/controller/pg/conf.js';
import {
  parseBasebackupProgress,
  parseRewindOutput,
  parseTimelineHistory,
  recordEnd,
} from '../../src/controller/pg/tools.js';

describe('lsn', () => {
  it('parses and formats PostgreSQL LSNs', () => {
    expect(parseLsn('0/59029D50')).toBe(0x59029d50);
    expect(parseLsn('1/0')).toBe(2 ** 32);
    expect(parseLsn('A/FFFFFFFF')).toBe(10 * 2 ** 32 + 0xffffffff);
    expect(formatLsn(0x59029d50)).toBe('0/59029D50');
    expect(formatLsn(2 ** 32 + 1)).toBe('1/1');
    expect(parseLsnOrNull(null)).toBeNull();
    expect(() => parseLsn('59029D50')).toThrow(BihaError);
    expect(() => parseLsn('0/123456789')).toThrow(/not a WAL position/);
    expect(() => formatLsn(-1)).toThrow(BihaError);
  });

  it('formatLsn and parseLsn are inverse and keep order', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 0xffffffff }), (hi, lo) => {
        const n = hi * 2 ** 32 + lo;
        expect(parseLsn(formatLsn(n))).toBe(n);
        expect(parseLsn(formatLsn(n).toLowerCase())).toBe(n);
      }),
    );
  });

  it('reads the timeline of WAL file names', () => {
    expect(tliFromWalFile('000000020000000000000059')).toBe(2);
    expect(tliFromWalFile('pg_wal/0000000A0000000100000003.partial')).toBe(10);
    expect(tliFromWalFile('00000003.history')).toBe(3);
    expect(() => tliFromWalFile('backup_label')).toThrow(BihaError);
  });
});

describe('tool output parsers', () => {
  it('parses basebackup progress lines split on \\r and \\n', () => {
    const out = 'waiting for checkpoint\r30683/30683 kB (100%), 0/1 tablespace\r30683/30683 kB (100%), 1/1 tablespace\r\n';
    const ps = out.split(/\r\n|\r|\n/).map(parseBasebackupProgress).filter((p) => p !== null);
    expect(ps).toEqual([
      { doneKb: 30683, totalKb: 30683, pct: 100 },
      { doneKb: 30683, totalKb: 30683, pct: 100 },
    ]);
    expect(parseBasebackupProgress('  1200/191520 kB (0%), 0/2 tablespaces (/x/base/1/123)')).toEqual({ doneKb: 1200, totalKb: 191520, pct: 0 });
    expect(parseBasebackupProgress('pg_basebackup: checkpoint completed')).toBeNull();
  });

  it('parses the divergence point out of pg_rewind output', () => {
    const r = parseRewindOutput(
      'pg_rewind: connected to server\npg_rewind: servers diverged at WAL location 0/590037A0 on timeline 1\npg_rewind: rewinding from last common checkpoint at 0/59000098 on timeline 1\npg_rewind: Done!\n',
    );
    expect(r).toMatchObject({ divergedAt: '0/590037A0', divergedTli: 1, noRewindRequired: false });
    const same = parseRewindOutput('pg_rewind: source and target cluster are on the same timeline\npg_rewind: no rewind required\n');
    expect(same).toMatchObject({ divergedAt: null, divergedTli: null, noRewindRequired: true });
  });

  it('parses timeline history files', () => {
    expect(parseTimelineHistory('1\t0/590037A0\tno recovery target specified\n\n2\t0/5A000000\tno recovery target specified\n')).toEqual([
      { parentTli: 1, switchLsn: 0x590037a0 },
      { parentTli: 2, switchLsn: 0x5a000000 },
    ]);
  });

  it('computes the end of a WAL record across page and segment headers', () => {
    const g = { blockSize: 8192, segSize: 16 * 1024 * 1024 };
    expect(recordEnd(0x59029bb8, 0x198, g)).toBe(0x59029d50); // ends inside the page, MAXALIGNed
    expect(recordEnd(8192 - 16, 16, g)).toBe(8192); // ends exactly at the page end
    expect(recordEnd(8192 - 16, 20, g)).toBe(8192 + 24 + 8); // 4 bytes after the short page header
    expect(recordEnd(g.segSize - 8, 16, g)).toBe(g.segSize + 40 + 8); // crosses into a new segment (long header)
  });
});

describe('conninfo, literals and pgpass', () => {
  it('quotes conninfo values so that libpq reads them back unchanged', () => {
    const ci = replicationConninfo({ host: '10.0.0.1', port: 5432, user: 'biha_replication_user', passfile: "/tmp/o'dd dir\\pgpass", applicationName: 'node 2' });
    expect(parseConninfo(ci)).toEqual({
      host: '10.0.0.1', port: '5432', user: 'biha_replication_user', passfile: "/tmp/o'dd dir\\pgpass", application_name: 'node 2', connect_timeout: '2',
    });
    fc.assert(fc.property(fc.string(), (s) => {
      expect(parseConninfo(`k=${conninfoValue(s)}`)).toEqual({ k: s });
    }));
  });

  it('quotes SQL literals and pgpass fields', () => {
    expect(quoteLiteral("it's")).toBe("'it''s'");
    expect(quoteLiteral('a\\b')).toBe(" E'a\\\\b'");
    expect(pgpassLine({ host: 'h', port: '*', database: 'replication', user: 'u', password: 'p:w\\x' })).toBe('h:*:replication:u:p\\:w\\\\x');
  });
});

describe('conf files and templates', () => {
  it('parses postgresql.conf syntax', () => {
    const text = [
      '# comment',
      "listen_addresses = 'a, b'   # trailing",
      'port = 5432',
      "primary_conninfo = 'host=x passfile=''/p q'''",
      'biha.BihaLog_log_level LOG',
      "include 'postgresql.biha.conf'",
      "esc = 'a\\'b'",
    ].join('\n');
    expect(parseConf(text)).toEqual([
      ['listen_addresses', 'a, b'],
      ['port', '5432'],
      ['primary_conninfo', "host=x passfile='/p q'"],
      ['biha.BihaLog_log_level', 'LOG'],
      ['esc', "a'b"],
    ]);
  });

  it('renders templates and refuses unknown placeholders', async () => {
    expect(renderText('a {{x}} b {{ y }}', { x: '1', y: '2' })).toBe('a 1 b 2');
    expect(() => renderText('{{x}} {{z}}', { x: '1' })).toThrow(/needs a value for \{\{z\}\}/);
    await expect(renderTemplate('postgresql.biha.conf', {})).rejects.toMatchObject({ code: 'template_var' });
    const unit = await renderServiceUnit({ unitName: 'biha', pgdata: '/var/lib/pg', user: 'postgres', group: 'postgres', bindir: '/usr/lib/postgresql/15/bin', bihactl: '/usr/bin/bihactl' });
    expect(unit).toMatch(/^ExecStart=\/usr\/bin\/bihactl controller --pgdata=\/var\/lib\/pg$/m);
    expect(unit).toMatch(/^User=postgres$/m);
    // An explicit bin directory is fixed in the unit; without one the controller follows PG_VERSION.
    expect(unit).toMatch(/^Environment=BIHA_PG_BINDIR=\/usr\/lib\/postgresql\/15\/bin$/m);
    const following = await renderServiceUnit({ unitName: 'biha', pgdata: '/var/lib/pg', user: 'postgres', group: 'postgres', bindir: null, bihactl: '/usr/bin/bihactl' });
    expect(following).not.toMatch(/BIHA_PG_BINDIR=/);
    expect(following).not.toMatch(/^Environment=/m);
    expect(following).toMatch(/^ExecStart=\/usr\/bin\/bihactl controller --pgdata=\/var\/lib\/pg$/m);
    // A node with a virtual IP gets the capability `ip addr add` needs; the others do not.
    expect(following).not.toMatch(/^AmbientCapabilities=/m);
    const vip = await renderServiceUnit({ unitName: 'biha', pgdata: '/var/lib/pg', user: 'postgres', group: 'postgres', bindir: null, bihactl: '/usr/bin/bihactl', vip: true });
    expect(vip).toMatch(/^AmbientCapabilities=CAP_NET_ADMIN$/m);
    expect(unit.split('\n')[0]).toMatch(/Generated by bihactl/);
    for (const f of await fsp.readdir(templatesDir())) {
      const text = await fsp.readFile(path.join(templatesDir(), f), 'utf8');
      expect(text.split('\n')[0], f).toMatch(/^# Generated by bihactl.*do not edit by hand/);
    }
  });

  it('marker blocks are inserted once and replaced in place', () => {
    const orig = 'local all all peer\nhost all all 127.0.0.1/32 scram-sha-256\n';
    const once = upsertMarkedBlock(orig, ['A', 'B'], 'top');
    expect(once).toBe(`${BEGIN_MARK}\nA\nB\n${END_MARK}\n${orig}`);
    expect(upsertMarkedBlock(once, ['A', 'B'], 'top')).toBe(once);
    const changed = upsertMarkedBlock(once, ['C'], 'top');
    expect(changed).toBe(`${BEGIN_MARK}\nC\n${END_MARK}\n${orig}`);
    const atEnd = upsertMarkedBlock('x', ['A'], 'end');
    expect(atEnd).toBe(`x\n${BEGIN_MARK}\nA\n${END_MARK}\n`);
    expect(upsertMarkedBlock(`${atEnd}y\n`, ['B'], 'end')).toBe(`x\n${BEGIN_MARK}\nB\n${END_MARK}\ny\n`);
  });

  it('readBihaGucs lets postgresql.auto.conf win and keeps the reference spelling', async () => {
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'biha-conf-'));
    try {
      await fsp.writeFile(path.join(dir, 'postgresql.biha.conf'), "biha.id = 3\nbiha.host = 'h1'\nbiha.BihaLog_log_level = LOG\nport = 5\n");
      await setAutoConfOffline(dir, { 'biha.host': 'h2', work_mem: '4MB' });
      await fsp.appendFile(path.join(dir, 'postgresql.auto.conf'), "biha.bihalog_log_level = 'WARNING'\n");
      expect(await readBihaGucs(dir)).toEqual({ 'biha.id': '3', 'biha.host': 'h2', 'biha.BihaLog_log_level': 'WARNING' });
      await setAutoConfOffline(dir, { 'biha.host': null, work_mem: "o'k" });
      const auto = await fsp.readFile(path.join(dir, 'postgresql.auto.conf'), 'utf8');
      expect(auto).not.toMatch(/biha\.host/);
      expect(auto.match(/^work_mem/gm)).toHaveLength(1);
      expect(parseConf(auto)).toContainEqual(['work_mem', "o'k"]);
    } finally {
      await fsp.rm(dir, { recursive: true, force: true });
    }
  });
});

describe('errors', () => {
  it('oneLine gives the message and the hint on one line', () => {
    const e = new BihaError('x', 'PostgreSQL did not start:\n  FATAL: boom', { hint: 'see the log', cause: new Error('inner') });
    expect(e.name).toBe('BihaError');
    expect(e.code).toBe('x');
    expect((e.cause as Error).message).toBe('inner');
    expect(oneLine(e)).toBe('PostgreSQL did not start: FATAL: boom (see the log)');
    expect(oneLine(Object.assign(new Error('connect failed'), { code: 'ECONNREFUSED' }))).toBe('connect failed [ECONNREFUSED]');
    expect(oneLine('plain')).toBe('plain');
    expect(EXIT.TIMEOUT).toBe(5);
  });
});
