// Versioned, atomic, fsynced, checksummed state files (terms and votes, node identity, ...).
//
// On disk a state file is one JSON object, version first:
//   {"version": 1, "kind": "raft-hardstate", "data": {...}, "crc": "<sha256 hex>"}
// `crc` is the SHA-256 of the canonical JSON (keys sorted, no spaces) of {kind, version, data}.
// The envelope never changes between versions: only `data` evolves, new fields at the end.
//
// Writing: atomicWriteFile (atomic.ts): a temporary file of its own is written, fsynced, renamed
// over path, then the directory is fsynced, so a reader sees either the old or the new file, never
// a mix, even when two writes of one file overlap. A temporary file left by a crash is never read.
//
// A file that fails its checksum is an error that stops the caller; it is never silently replaced
// by defaults (a node that forgot its vote could vote twice in one term).

import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import { BihaError } from '../errors.js';
import { atomicWriteFile, atomicWriteFileSync } from './atomic.js';

export type StateFileErrorCode = 'state_corrupt' | 'state_version' | 'state_missing';

export class StateFileError extends BihaError {
  readonly path: string;
  constructor(code: StateFileErrorCode, file: string, message: string, opts?: { cause?: unknown; hint?: string }) {
    super(code, message, opts);
    this.name = 'StateFileError';
    this.path = file;
  }
}

/** JSON with object keys sorted at every level; `undefined` members are dropped like JSON.stringify does. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(JSON.parse(JSON.stringify(value ?? null)) as unknown));
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) out[k] = sortKeys((v as Record<string, unknown>)[k]);
    return out;
  }
  return v;
}

function checksum(kind: string, version: number, data: unknown): string {
  return createHash('sha256').update(canonicalJson({ kind, version, data })).digest('hex');
}

function encode(kind: string, version: number, data: unknown): string {
  if (!Number.isSafeInteger(version) || version < 1) {
    throw new BihaError('bad_state_version', `state file version must be a positive integer, not ${version}`);
  }
  const normalized = JSON.parse(JSON.stringify(data ?? null)) as unknown;
  const crc = checksum(kind, version, normalized);
  return JSON.stringify({ version, kind, data: normalized, crc }, null, 1) + '\n';
}

export async function writeStateFile(file: string, kind: string, version: number, data: unknown, mode = 0o600): Promise<void> {
  await atomicWriteFile(file, encode(kind, version, data), { mode });
}

export function writeStateFileSync(file: string, kind: string, version: number, data: unknown, mode = 0o600): void {
  atomicWriteFileSync(file, encode(kind, version, data), { mode });
}

function corrupt(file: string, why: string, cause?: unknown): StateFileError {
  return new StateFileError(
    'state_corrupt',
    file,
    `${file} is corrupt (${why}): restore it from a backup or re-add the node with bihactl add`,
    cause === undefined ? undefined : { cause },
  );
}

/** Parse and verify the text of a state file. Exported for tests and offline checks. */
export function decodeStateFile<T>(file: string, text: string, kind: string, maxVersion: number): { version: number; data: T } {
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (e) {
    throw corrupt(file, 'not valid JSON', e);
  }
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) throw corrupt(file, 'not a state file');
  const o = obj as Record<string, unknown>;
  const { version, crc } = o;
  if (typeof o.kind !== 'string' || typeof version !== 'number' || !Number.isSafeInteger(version) || typeof crc !== 'string' || !('data' in o)) {
    throw corrupt(file, 'missing fields');
  }
  if (checksum(o.kind, version, o.data) !== crc) throw corrupt(file, 'checksum mismatch');
  if (o.kind !== kind) throw corrupt(file, `holds "${o.kind}", expected "${kind}"`);
  if (version > maxVersion) {
    throw new StateFileError(
      'state_version',
      file,
      `${file} has format version ${version}, newer than the ${maxVersion} this biha understands`,
      { hint: 'upgrade biha on this node before starting it' },
    );
  }
  return { version, data: o.data as T };
}

export async function readStateFile<T>(file: string, kind: string, maxVersion: number): Promise<{ version: number; data: T }> {
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new StateFileError('state_missing', file, `${file} does not exist`, { cause: e });
    }
    throw e;
  }
  return decodeStateFile<T>(file, text, kind, maxVersion);
}

export function readStateFileSync<T>(file: string, kind: string, maxVersion: number): { version: number; data: T } {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new StateFileError('state_missing', file, `${file} does not exist`, { cause: e });
    }
    throw e;
  }
  return decodeStateFile<T>(file, text, kind, maxVersion);
}
