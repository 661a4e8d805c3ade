// The version of the installed biha package, read from its package.json at run time (bihactl
// --version, biha_build_info).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BihaError } from './errors.js';

/** src/controller/version.ts and dist/controller/version.js both sit two levels below the package root. */
export function packageVersion(): string {
  const file = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'package.json');
  let version: unknown;
  try {
    version = (JSON.parse(fs.readFileSync(file, 'utf8')) as { version?: unknown }).version;
  } catch (e) {
    throw new BihaError('install_broken', `cannot read the version from ${file}: ${(e as Error).message}`, { cause: e, hint: 'reinstall biha' });
  }
  if (typeof version !== 'string' || version === '') throw new BihaError('install_broken', `${file} has no version`, { hint: 'reinstall biha' });
  return version;
}

/** packageVersion(), or 'unknown' when it cannot be read (for labels, where a broken install must not stop the controller). */
export function packageVersionOrUnknown(): string {
  try {
    return packageVersion();
  } catch {
    return 'unknown';
  }
}
