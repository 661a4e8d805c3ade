// Debian's own way of running a cluster (postgresql-common: pg_ctlcluster, postgresql@N-NAME.service,
// start.conf) next to biha's: the controller starts PostgreSQL, so Debian's must not.
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { programOutput } from '../controller/exec.js';
import { debianCluster } from '../controller/pg/layout.js';
import type { PgLayout } from '../controller/pg/layout.js';

/** The first word of a start.conf (auto, manual or disabled), or null without one. */
export function startConfMode(text: string): string | null {
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    if (line !== '') return line.split(/\s+/)[0]!.toLowerCase();
  }
  return null;
}

/** Debian's unit for a cluster: postgresql@15-main. */
export function debianUnit(c: { version: string; name: string }): string {
  return `postgresql@${c.version}-${c.name}`;
}

/** How to stop PostgreSQL of this layout by hand. */
export function stopCommand(layout: PgLayout): string {
  const c = debianCluster(layout);
  return c ? `pg_ctlcluster ${c.version} ${c.name} stop` : `pg_ctl stop -D ${layout.dataDir}`;
}

/**
 * Warnings for a Debian cluster whose own start-up would race with biha's controller: its
 * start.conf says auto (postgresql.service starts it at boot), or its unit is enabled or active.
 */
export async function debianStartWarnings(layout: PgLayout): Promise<string[]> {
  const c = debianCluster(layout);
  if (!c) return [];
  const unit = debianUnit(c);
  const why: string[] = [];
  const mode = startConfMode(await fsp.readFile(path.join(layout.configDir, 'start.conf'), 'utf8').catch(() => ''));
  if (mode === 'auto') why.push(`${path.join(layout.configDir, 'start.conf')} says auto (postgresql.service starts the cluster at boot)`);
  const enabled = (await programOutput('systemctl', ['is-enabled', unit], { timeoutMs: 5000 }))?.trim();
  if (enabled === 'enabled') why.push(`${unit} is enabled`);
  const active = (await programOutput('systemctl', ['is-active', unit], { timeoutMs: 5000 }))?.trim();
  if (active === 'active') why.push(`${unit} is active`);
  if (why.length === 0) return [];
  return [
    `warning: biha's controller starts PostgreSQL of ${c.version}/${c.name}, and Debian would start it too (${why.join('; ')}): ` +
      `run systemctl disable --now ${unit} and set ${path.join(layout.configDir, 'start.conf')} to manual`,
  ];
}
