// Which lease watchdog the controller starts. The watchdog is a Perl script (bin/biha-watchdog: a
// few MB where a second Node process takes about 60 MB); Perl is on every host with Debian's
// PostgreSQL packages (postgresql-common needs it). Where Perl or its Time::HiRes module is missing,
// the same watchdog written in TypeScript runs instead (`bihactl watchdog`, a Node process).
// Both speak the protocol described in watchdog.ts and keep the same PID file.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';

export type WatchdogImpl = 'perl' | 'node';

/** How to start the watchdog: the program, its arguments, and which implementation it is. */
export interface WatchdogCommand {
  impl: WatchdogImpl;
  file: string;
  args: string[];
}

/** The Perl watchdog shipped beside bin/bihactl.js. */
export function perlScriptBeside(bihactlJs: string): string {
  return path.join(path.dirname(bihactlJs), 'biha-watchdog');
}

/** The first `perl` on PATH (`pathEnv`), else /usr/bin/perl; null when neither is executable. */
export function findPerl(pathEnv: string | undefined, isExecutable: (file: string) => boolean): string | null {
  const dirs = (pathEnv ?? '').split(path.delimiter).filter((d) => d !== '' && path.isAbsolute(d));
  for (const file of [...dirs.map((d) => path.join(d, 'perl')), '/usr/bin/perl']) if (isExecutable(file)) return file;
  return null;
}

function executable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

/** `perl -c script`: Perl runs and has every module the script uses (Time::HiRes, POSIX, ...). Checked once per script. */
const usable = new Map<string, string | null>();
function usablePerl(script: string): string | null {
  const known = usable.get(script);
  if (known !== undefined) return known;
  const perl = findPerl(process.env['PATH'], executable);
  let ok = false;
  if (perl && fs.existsSync(script)) {
    const r = spawnSync(perl, ['-c', script], { stdio: 'ignore', timeout: 10_000 });
    ok = r.status === 0;
  }
  const found = ok ? perl : null;
  usable.set(script, found);
  return found;
}

/**
 * The command that starts the watchdog for `pgdata`. 'auto' (the controller's choice): the Perl
 * one when Perl with Time::HiRes is there, else the Node one; 'perl' or 'node' ask for one.
 * The command line holds "watchdog" either way (a later watchdog recognises an earlier one by it).
 */
export function watchdogCommand(bihactlJs: string, pgdata: string, want: WatchdogImpl | 'auto' = 'auto'): WatchdogCommand {
  const script = perlScriptBeside(bihactlJs);
  const perl = want === 'perl' ? findPerl(process.env['PATH'], executable) ?? '/usr/bin/perl' : want === 'auto' ? usablePerl(script) : null;
  if (perl) return { impl: 'perl', file: perl, args: [script, `--pgdata=${pgdata}`] };
  return { impl: 'node', file: process.execPath, args: [bihactlJs, 'watchdog', `--pgdata=${pgdata}`] };
}
