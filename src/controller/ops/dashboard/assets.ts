// The dashboard's built page (index.html and the bundled script and style sheet that
// `npm run build` writes to dist/dashboard), read once into memory and served from there.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface Asset {
  body: Buffer;
  type: string;
  etag: string;
  /** A name carrying its content hash never changes: the browser may keep it for a year. */
  immutable: boolean;
}

/** dist/dashboard beside the compiled controller (dist/controller/ops/dashboard/assets.js). */
export const DEFAULT_ASSETS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'dashboard');

const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
};

/** esbuild's [name]-[hash] file names. */
const HASHED_RE = /-[A-Z0-9]{8,}\.[a-z]+$/;

export function contentType(name: string): string | null {
  return TYPES[path.extname(name).toLowerCase()] ?? null;
}

/**
 * Every servable file of `dir` by name (no subdirectories). Throws when the directory or its
 * index.html is missing, saying how to build them.
 */
export function loadAssets(dir: string): ReadonlyMap<string, Asset> {
  const out = new Map<string, Asset>();
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    throw new Error(`the dashboard is not built (no ${dir}): run npm run build`);
  }
  for (const name of names) {
    const type = contentType(name);
    const file = path.join(dir, name);
    if (type === null || !fs.statSync(file).isFile()) continue;
    const body = fs.readFileSync(file);
    const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`;
    out.set(name, { body, type, etag, immutable: HASHED_RE.test(name) });
  }
  if (!out.has('index.html')) throw new Error(`the dashboard is not built (no index.html in ${dir}): run npm run build`);
  return out;
}
