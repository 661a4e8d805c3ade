// Names of OS users and groups by id, from /etc/passwd and /etc/group (Node has no getpwuid).
import * as fs from 'node:fs';

export interface OsUser {
  readonly name: string;
  readonly home: string;
}

function lookup(file: string, id: number): string[] | null {
  try {
    const line = fs
      .readFileSync(file, 'utf8')
      .split('\n')
      .find((l) => l.split(':')[2] === String(id));
    return line ? line.split(':') : null;
  } catch {
    return null;
  }
}

/** The user with this uid; falls back to the number as the name and / as home. */
export function osUserById(uid: number): OsUser {
  const f = lookup('/etc/passwd', uid);
  return { name: f?.[0] || String(uid), home: f?.[5] || '/' };
}

/** The group name of this gid, or the number. */
export function osGroupById(gid: number): string {
  return lookup('/etc/group', gid)?.[0] || String(gid);
}
