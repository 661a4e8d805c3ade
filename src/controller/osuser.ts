// Synchronous name lookups for the moments nothing may wait (dropping root privileges at start);
// the passwd format itself is parsed by the PostgreSQL adapter (pg/tools.ts, parsePasswdLine).
import * as fs from 'node:fs';
import { parsePasswdLine } from './pg/tools.js';

function lines(file: string): string[] {
  try {
    return fs.readFileSync(file, 'utf8').split('\n');
  } catch {
    return [];
  }
}

/** The user with this uid; falls back to the number as the name and / as home. */
export function osUserById(uid: number): { name: string; home: string } {
  for (const l of lines('/etc/passwd')) {
    const e = parsePasswdLine(l);
    if (e && e.uid === uid) return { name: e.user, home: e.home };
  }
  return { name: String(uid), home: '/' };
}

/** The group name of this gid, or the number. */
export function osGroupById(gid: number): string {
  const f = lines('/etc/group').map((l) => l.split(':')).find((x) => x[2] === String(gid));
  return f?.[0] || String(gid);
}
