// The log-level defaults: the generated postgresql.biha.conf and the controller's built-in defaults
// (used for a line that is missing) give every component the same level, and the levels are the
// documented ones (docs/architecture.md, "Decisions that differ": three categories differ from the
// reference's DEBUG4 on purpose).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { componentLevels } from '../../src/controller/logger.js';

const TEMPLATE = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..', 'conf-templates', 'postgresql.biha.conf.tmpl');

function templateLevels(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of fs.readFileSync(TEMPLATE, 'utf8').split('\n')) {
    const m = /^\s*(biha\.\w+_log_level)\s*=\s*(\w+)/.exec(line);
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

describe('log-level defaults', () => {
  it('the template lists every category of the reference, with the documented values', () => {
    expect(templateLevels()).toEqual({
      'biha.BihaLog_log_level': 'LOG',
      'biha.BcpTransportLog_log_level': 'DEBUG4',
      'biha.BcpTransportWarn_log_level': 'LOG',
      'biha.BcpTransportDetails_log_level': 'DEBUG4',
      'biha.BcpTransportDebug_log_level': 'DEBUG4',
      'biha.NodeControllerLog_log_level': 'LOG',
      'biha.NodeControllerWarn_log_level': 'LOG',
      'biha.NodeControllerDetails_log_level': 'DEBUG4',
      'biha.NodeControllerDebug_log_level': 'DEBUG4',
    });
  });

  it('the controller without any of these lines logs as the template says', () => {
    expect(componentLevels({})).toEqual(componentLevels(templateLevels()));
    expect(componentLevels({})).toMatchObject({ BCP: 'warn', NC: 'info', BIHA: 'info' });
  });

  it("the reference's defaults (every category DEBUG4 but BihaLog) can be set and leave only errors", () => {
    const ref = Object.fromEntries(Object.keys(templateLevels()).map((k) => [k, k === 'biha.BihaLog_log_level' ? 'LOG' : 'DEBUG4']));
    expect(componentLevels(ref)).toMatchObject({ BCP: 'error', NC: 'error', BIHA: 'info' });
  });
});
