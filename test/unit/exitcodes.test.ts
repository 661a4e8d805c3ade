// The exit-code table: every error code raised in src has an entry, the codes of the remote
// management API map as documented, and docs/commands.md lists each code under its exit code.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BihaError, EXIT } from '../../src/controller/errors.js';
import { EXIT_CODES, exitCodeOf, isErrorCode } from '../../src/bihactl/exitcodes.js';

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return sources(p);
    return e.name.endsWith('.ts') ? [p] : [];
  });
}

/** The first argument of every `new BihaError(` call, as source text (up to its top-level comma). */
function firstArgs(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/new BihaError\(/g)) {
    let depth = 0;
    let i = m.index + m[0].length;
    const start = i;
    for (; i < text.length; i++) {
      const c = text[i]!;
      if (c === '(' || c === '[' || c === '{') depth++;
      else if (c === ')' || c === ']' || c === '}') {
        if (depth === 0) break;
        depth--;
      } else if (c === ',' && depth === 0) break;
    }
    out.push(text.slice(start, i));
  }
  return out;
}

const literals = (s: string): string[] => [...s.matchAll(/'([a-z][a-z0-9_]*)'/g)].map((m) => m[1]!);

/** Every error code src can raise, as far as a scan of the source finds them. */
function codesInSource(): Map<string, string> {
  const found = new Map<string, string>();
  const add = (code: string, file: string): void => {
    if (!found.has(code)) found.set(code, path.relative(ROOT, file));
  };
  for (const file of sources(path.join(ROOT, 'src'))) {
    const text = fs.readFileSync(file, 'utf8');
    for (const arg of firstArgs(text)) {
      for (const c of literals(arg)) add(c, file);
      // new BihaError(code, ...): the code was chosen just before, as `const code = ...;`.
      if (arg.trim() === 'code') for (const m of text.matchAll(/const code = ([^;]+);/g)) for (const c of literals(m[1]!)) add(c, file);
    }
    // Refusals of the raft core become BihaErrors with their code (controller.proposeAndWait, set_leader).
    const propose = /export type ProposeErrorCode =([^;]+);/.exec(text);
    if (propose) for (const c of literals(propose[1]!)) add(c, file);
    // The local socket's own refusals, and the HTTP API's error answers.
    for (const m of text.matchAll(/\{ ok: false, error: [^}]*code: '([a-z_]+)' \}/g)) add(m[1]!, file);
    for (const m of text.matchAll(/(?:errorReply|HttpError)\(\s*\d{3},[^\n]*?'([a-z_]+)'(?:,\s*\{[^}]*\})?\)/g)) add(m[1]!, file);
  }
  return found;
}

describe('exit codes', () => {
  it('has an entry for every error code raised in src', () => {
    const found = codesInSource();
    // The scan finds the codes this test was written against, so it does scan.
    for (const c of ['bad_args', 'timeout', 'switchover_failed', 'change_in_progress', 'join_refused', 'bad_request'] as const) expect(found.has(c), c).toBe(true);
    const missing = [...found].filter(([c]) => !isErrorCode(c)).map(([c, f]) => `${c} (${f})`);
    expect(missing).toEqual([]);
  });

  it('maps each class of failure to its exit code, and anything unknown to 1', () => {
    expect(exitCodeOf(new BihaError('bad_args', 'x'))).toBe(EXIT.BAD_ARGS);
    expect(exitCodeOf(new BihaError('usage', 'x'))).toBe(2);
    expect(exitCodeOf(new BihaError('not_confirmed', 'x'))).toBe(2);
    expect(exitCodeOf(new BihaError('is_leader', 'x'))).toBe(3);
    expect(exitCodeOf(new BihaError('unreachable', 'x'))).toBe(4);
    expect(exitCodeOf(new BihaError('auth', 'x'))).toBe(4);
    expect(exitCodeOf(new BihaError('timeout', 'x'))).toBe(5);
    expect(exitCodeOf(new BihaError('unauthorized', 'x'))).toBe(6);
    expect(exitCodeOf(new BihaError('remote_management_off', 'x'))).toBe(6);
    expect(exitCodeOf(new BihaError('switchover_failed', 'x'))).toBe(1);
    expect(exitCodeOf(new BihaError('no_such_code_anywhere', 'x'))).toBe(EXIT.FAILURE);
    expect(exitCodeOf(new Error('plain'))).toBe(EXIT.FAILURE);
    expect(exitCodeOf('a string')).toBe(EXIT.FAILURE);
  });

  it('never maps to 0, and only to documented exit codes', () => {
    const documented = new Set<number>(Object.values(EXIT));
    for (const [code, exit] of Object.entries(EXIT_CODES)) {
      expect(exit, code).not.toBe(0);
      expect(documented.has(exit), code).toBe(true);
    }
  });

  it('docs/commands.md lists every code under its exit code', () => {
    const doc = fs.readFileSync(path.join(ROOT, 'docs', 'commands.md'), 'utf8');
    const section = doc.slice(doc.indexOf('## Exit codes'));
    expect(section.length).toBeGreaterThan(0);
    const listed = new Map<string, number>();
    for (const row of section.split('\n')) {
      const m = /^\| (\d) \|.*\|(.*)\|\s*$/.exec(row);
      if (!m) continue;
      for (const c of m[2]!.matchAll(/`([a-z_]+)`/g)) listed.set(c[1]!, Number(m[1]));
    }
    for (const [code, exit] of Object.entries(EXIT_CODES)) expect(listed.get(code), code).toBe(exit);
    for (const code of listed.keys()) expect(isErrorCode(code), code).toBe(true);
  });
});
