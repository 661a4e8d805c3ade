// The dashboard in a real browser (Debian's chromium through playwright-core) on a real 3-node
// cluster, ports 26500-26522: a follower's page shows the three nodes and the leader, follows a
// failover by itself, and says in its banner when its node stops answering or is cut off from the
// majority. The delay between the election and the page showing it is printed (the 2-second goal
// is measured in bench/dashboard.ts).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium } from 'playwright-core';
import type { Browser, Page } from 'playwright-core';
import { TestCluster } from '../helpers/cluster.js';
import { DASHBOARD_BROWSER, leaderOnPage, recordLeaderChange, waitForPage } from '../helpers/dashboard.js';

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');
const SHOTS = path.join(ROOT, 'test-results');
const c = new TestCluster({ nodes: 3, basePort: 26500 });
let browser: Browser;
let page: Page;
/** The node whose page is open, and the leader killed by the first test. */
let pageNode = 0;
let killed = 0;
const problems: string[] = [];

describe('the dashboard in a browser', () => {
  beforeAll(async () => {
    await c.create();
    await c.waitLeader();
    browser = await chromium.launch(DASHBOARD_BROWSER);
  }, 300_000);
  afterAll(async () => {
    await browser?.close();
    await c.destroy();
  }, 120_000);

  it('a follower\'s page shows the cluster, then the new leader after kill -9 of the leader, with the failover in its history', async () => {
    const leader = await c.waitLeader();
    const follower = c.ids().find((i) => i !== leader)!;
    pageNode = follower;
    killed = leader;
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(m.text());
    });
    page.on('pageerror', (e) => problems.push(e.message));
    page.on('response', (res) => {
      if (res.status() >= 400) problems.push(`${res.status()} ${res.url()}`);
    });
    const r = await page.goto(`http://127.0.0.1:${c.httpPort(follower)}/dashboard`);
    expect(r?.status()).toBe(200);
    await waitForPage(page, `document.querySelectorAll('[data-node-id]').length === 3 && document.querySelectorAll('[data-leader="true"]').length === 1`);
    expect(await leaderOnPage(page)).toBe(leader);
    const nodes = await page.$$eval('[data-node-id]', (els) => els.map((e) => [e.getAttribute('data-node-id'), e.getAttribute('data-state')]));
    expect(nodes.map(([id]) => id)).toEqual(['1', '2', '3']);
    expect(nodes.find(([id]) => id === String(leader))?.[1]).toBe('LEADER_RW');
    await waitForPage(page, `document.getElementById('feed').dataset.feed === 'live'`);
    expect(await page.$eval('#banner', (e) => (e as { hidden: boolean }).hidden)).toBe(true);

    await recordLeaderChange(page, leader);
    c.kill9(leader, 'both');
    const next = await c.waitLeader({ not: leader, timeoutMs: 120_000 });
    const electedAt = Date.now();
    await waitForPage(page, `(() => { const l = document.querySelector('[data-leader="true"]'); return l !== null && l.getAttribute('data-node-id') !== '${leader}'; })()`);
    const shownAt = (await page.evaluate('window.__bihaLeaderShownAt')) as number;
    process.stdout.write(`dashboard: node ${next} elected (c.waitLeader returned); the page of node ${follower} showed it ${shownAt - electedAt} ms later (negative: before c.waitLeader returned)\n`);
    expect(await leaderOnPage(page)).toBe(next);
    await waitForPage(page, `document.querySelector('#events [data-kind="failover"]') !== null`);
    expect(await page.textContent('#events [data-kind="failover"]')).toContain(`node ${leader} → node ${next}`);
    await waitForPage(page, `document.querySelector('[data-node-id="${leader}"]').getAttribute('data-state') === 'UNKNOWN'`);
    await waitForPage(page, `document.getElementById('banner').hidden`);
    fs.mkdirSync(SHOTS, { recursive: true });
    await page.screenshot({ path: path.join(SHOTS, 'dashboard.png'), fullPage: true });
  }, 300_000);

  it('says so when its node stops answering, and recovers when it answers again', async () => {
    const follower = pageNode;
    const pids = c.freeze(follower);
    try {
      await waitForPage(page, `document.getElementById('banner').dataset.reasons.split(' ').includes('unreachable')`);
      expect(await page.textContent('#banner')).toContain(`cannot reach node ${follower}`);
    } finally {
      c.thaw(pids);
    }
    await waitForPage(page, `document.getElementById('feed').dataset.feed === 'live' && document.getElementById('banner').hidden`);
  }, 300_000);

  it('says so when its node is cut off from the majority and knows no leader', async () => {
    // The page's node (which may have become the leader) is left alone: one voter of three.
    const other = c.ids().find((i) => i !== pageNode && i !== killed)!;
    c.kill9(other, 'both');
    await waitForPage(page, `(() => { const r = document.getElementById('banner').dataset.reasons.split(' '); return r.includes('minority') && r.includes('no-leader'); })()`);
    expect(await page.textContent('#banner')).toContain('cut off from the majority');
    expect(await page.$$eval('[data-leader="true"]', (els) => els.length)).toBe(0);
    // Every asset obeyed the Content-Security-Policy and the page threw nothing.
    expect(problems).toEqual([]);
  }, 300_000);
});
