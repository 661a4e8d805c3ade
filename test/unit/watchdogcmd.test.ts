// Choosing the lease watchdog's command: where Perl is looked for, and the command lines of both
// implementations (both must hold "watchdog": a later watchdog recognises an earlier one by it).
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { findPerl, perlScriptBeside, watchdogCommand } from '../../src/controller/pg/watchdogcmd.js';

describe('findPerl', () => {
  const only = (...files: string[]) => (f: string): boolean => files.includes(f);

  it('takes the first perl on PATH', () => {
    expect(findPerl('/opt/a/bin:/usr/local/bin:/usr/bin', only('/usr/local/bin/perl', '/usr/bin/perl'))).toBe('/usr/local/bin/perl');
  });

  it('falls back to /usr/bin/perl when PATH has none, or is unset', () => {
    expect(findPerl('/opt/a/bin', only('/usr/bin/perl'))).toBe('/usr/bin/perl');
    expect(findPerl(undefined, only('/usr/bin/perl'))).toBe('/usr/bin/perl');
  });

  it('ignores empty and relative PATH entries', () => {
    expect(findPerl(':bin:./x', only('bin/perl', 'x/perl', 'perl'))).toBeNull();
  });

  it('is null without any perl', () => {
    expect(findPerl('/usr/bin:/bin', only())).toBeNull();
  });
});

describe('watchdogCommand', () => {
  const bihactl = '/usr/lib/biha/bin/bihactl.js';

  it('the Perl watchdog is bin/biha-watchdog beside bihactl.js, run by perl with --pgdata', () => {
    expect(perlScriptBeside(bihactl)).toBe('/usr/lib/biha/bin/biha-watchdog');
    const cmd = watchdogCommand(bihactl, '/data/n1', 'perl');
    expect(cmd.impl).toBe('perl');
    expect(path.basename(cmd.file)).toBe('perl');
    expect(cmd.args).toEqual(['/usr/lib/biha/bin/biha-watchdog', '--pgdata=/data/n1']);
  });

  it('the Node watchdog is `bihactl watchdog` run by this Node', () => {
    expect(watchdogCommand(bihactl, '/data/n1', 'node')).toEqual({ impl: 'node', file: process.execPath, args: [bihactl, 'watchdog', '--pgdata=/data/n1'] });
  });

  it('auto falls back to the Node watchdog when the Perl script is not installed', () => {
    expect(watchdogCommand('/nonexistent/bin/bihactl.js', '/data/n1').impl).toBe('node');
  });

  it('both command lines name a watchdog', () => {
    for (const impl of ['perl', 'node'] as const) expect([watchdogCommand(bihactl, '/d', impl).file, ...watchdogCommand(bihactl, '/d', impl).args].join('\0')).toContain('watchdog');
  });
});
