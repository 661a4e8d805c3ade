// Golden interaction scripts: every testdata/*.txt is run and its output compared with the
// matching .golden file (regenerate with UPDATE_GOLDEN=1, then review the diff). Scripts also
// assert their key facts with `check` / `assert-before`, which fail whatever the golden says.
import { readFileSync, readdirSync, writeFileSync, existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runScenario } from './scenario.js';

const dir = join(dirname(fileURLToPath(import.meta.url)), 'testdata');
const update = process.env.UPDATE_GOLDEN === '1';

describe('raft golden scenarios', () => {
  const files = readdirSync(dir).filter((f) => f.endsWith('.txt')).sort();
  it('has scenarios', () => {
    expect(files.length).toBeGreaterThanOrEqual(10);
  });
  for (const f of files) {
    it(f.replace(/\.txt$/, ''), () => {
      const output = runScenario(readFileSync(join(dir, f), 'utf8'));
      const goldenPath = join(dir, f.replace(/\.txt$/, '.golden'));
      if (update || !existsSync(goldenPath)) {
        if (!update) throw new Error(`${goldenPath} is missing; run with UPDATE_GOLDEN=1 and review it`);
        writeFileSync(goldenPath, output);
      }
      expect(output).toBe(readFileSync(goldenPath, 'utf8'));
    });
  }
});
