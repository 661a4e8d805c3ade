// Reading the dashboard page in a browser, for the dashboard test and benchmark. The page exposes
// its state through data-* attributes; these helpers read those only. Expressions are passed to
// the page as strings (this code is compiled without the DOM's types).
import type { LaunchOptions, Page } from 'playwright-core';

/** Debian's chromium, headless; as root it needs --no-sandbox. */
export const DASHBOARD_BROWSER: LaunchOptions = {
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: process.getuid?.() === 0 ? ['--no-sandbox'] : [],
};

/**
 * Waits (generously: machines are slow) until the expression is true in the page. Evaluated from
 * outside every 50 ms: page.waitForFunction would eval() inside the page, which its
 * Content-Security-Policy forbids.
 */
export async function waitForPage(page: Page, expression: string, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown = null;
  while (Date.now() < deadline) {
    try {
      if ((await page.evaluate(expression)) === true) return;
      last = null;
    } catch (e) {
      last = e instanceof Error ? e.message : e;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for the page: ${expression}${last ? ` (last error: ${String(last)})` : ''}`);
}

/** The node the page shows as the leader (null: none). */
export async function leaderOnPage(page: Page): Promise<number | null> {
  const id = await page.getAttribute('[data-leader="true"]', 'data-node-id', { timeout: 1000 }).catch(() => null);
  return id === null ? null : Number(id);
}

/**
 * Records in the page (window.__bihaLeaderShownAt, epoch ms) the first moment it shows a leader
 * other than `old`, as the DOM changes.
 */
export async function recordLeaderChange(page: Page, old: number): Promise<void> {
  await page.evaluate(`(() => {
    window.__bihaLeaderShownAt = null;
    const check = () => {
      const l = document.querySelector('[data-leader="true"]');
      if (window.__bihaLeaderShownAt === null && l !== null && l.getAttribute('data-node-id') !== '${old}') window.__bihaLeaderShownAt = Date.now();
    };
    new MutationObserver(check).observe(document.body, { subtree: true, childList: true, attributes: true });
  })()`);
}
