// Component-tagged logging (pino). Components follow the reference: BCP (control channel), NC (node
// controller), BIHA (general). Levels per component come from the reference's parameters in
// postgresql.biha.conf (biha.BcpTransportLog_log_level, biha.NodeControllerWarn_log_level, ...): a
// category is shown when its level is LOG or more severe (the default log_min_messages), and the
// component logs at the most verbose shown category.
import { pino, destination, stdTimeFunctions } from 'pino';
import type { Logger } from 'pino';

export type Component = 'BCP' | 'NC' | 'BIHA' | 'HTTP' | 'WD';

const CATEGORY_TO_PINO = { Debug: 'trace', Details: 'debug', Log: 'info', Warn: 'warn' } as const;
const SHOWN = new Set(['LOG', 'INFO', 'NOTICE', 'WARNING', 'ERROR', 'FATAL', 'PANIC']);
const ORDER = ['trace', 'debug', 'info', 'warn', 'error'] as const;

/** Pino level for each component, from biha.* GUCs (missing ones use the reference defaults). */
export function componentLevels(gucs: Readonly<Record<string, string>>): Record<Component, string> {
  const pick = (prefix: string, defaults: Record<string, string>): string => {
    let best: (typeof ORDER)[number] = 'error';
    for (const cat of Object.keys(CATEGORY_TO_PINO) as Array<keyof typeof CATEGORY_TO_PINO>) {
      const key = `biha.${prefix}${cat}_log_level`;
      const v = (gucs[key] ?? defaults[cat] ?? 'DEBUG4').toUpperCase();
      if (!SHOWN.has(v)) continue;
      const lvl = CATEGORY_TO_PINO[cat];
      if (ORDER.indexOf(lvl) < ORDER.indexOf(best)) best = lvl;
    }
    return best;
  };
  const biha = (gucs['biha.BihaLog_log_level'] ?? 'LOG').toUpperCase();
  return {
    BCP: pick('BcpTransport', { Warn: 'LOG' }),
    NC: pick('NodeController', { Log: 'LOG', Warn: 'LOG' }),
    BIHA: SHOWN.has(biha) ? 'info' : 'warn',
    HTTP: 'info',
    WD: 'info',
  };
}

export interface Loggers {
  readonly root: Logger;
  get(c: Component): Logger;
  /** Reopen the log file (after it was replaced underneath, e.g. by pg_rewind, or rotated). */
  reopen(): void;
  /** Apply the levels of these biha.* GUCs to every component; returns the changes made. */
  setLevels(gucs: Readonly<Record<string, string>>): Array<{ component: Component; from: string; to: string }>;
}

export function createLoggers(opts: { file?: string; nodeId: number; gucs?: Readonly<Record<string, string>> }): Loggers {
  let levels = componentLevels(opts.gucs ?? {});
  const dest = opts.file ? destination({ dest: opts.file, mkdir: true, sync: true }) : destination(2);
  const root = pino(
    {
      level: 'trace',
      base: { node: opts.nodeId },
      timestamp: stdTimeFunctions.isoTime,
      redact: { paths: ['secret', 'secrets', '*.secret', '*.secrets', 'password', '*.password'], censor: '[redacted]' },
    },
    dest,
  );
  const cache = new Map<Component, Logger>();
  return {
    root,
    reopen(): void {
      const d = dest as { reopen?: () => void };
      if (opts.file && typeof d.reopen === 'function') d.reopen();
    },
    setLevels(gucs) {
      const next = componentLevels(gucs);
      const changed: Array<{ component: Component; from: string; to: string }> = [];
      for (const c of Object.keys(next) as Component[]) {
        if (next[c] === levels[c]) continue;
        changed.push({ component: c, from: levels[c], to: next[c] });
        const l = cache.get(c);
        if (l) l.level = next[c];
      }
      levels = next;
      return changed;
    },
    get(c: Component): Logger {
      let l = cache.get(c);
      if (!l) {
        l = root.child({ component: c }, { level: levels[c] });
        cache.set(c, l);
      }
      return l;
    },
  };
}
