// The dashboard in a real browser (playwright-core driving Debian's chromium) over test data
// served by the API: search a pk, see its figures and the charts drawn, at desktop and phone width.
// Saves test/screenshots/dashboard.png and dashboard-phone.png (used by the README).
import t from 'tap';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { startApi } from '../../../lib/read/api.js';
import { viewHash } from '../../../lib/cluster/card.js';
import { memberIndexKey, nodeKey } from '../../../lib/shared/keys.js';
import { loadConfig } from '../../../lib/ops/config.js';
import { createLogger } from '../../../lib/shared/log.js';
import { loadLayout } from '../../../lib/storage/format/layout.js';
import { TimelineReader } from '../../../lib/storage/read/reader.js';
import { collections, type Sample } from '../../../lib/storage/format/documents.js';
import { storeSuspicious } from '../../../lib/polling/suspicious.js';
import { Totals } from '../../../lib/storage/state/totals.js';
import { connected } from '../../kit/servers.js';
import { sampleStore, startTotals, takeRankings } from '../../helpers/storage.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const SHOTS = fileURLToPath(new URL('../../screenshots', import.meta.url));
const MIN = 60_000;
const PKS = 30;
const PK = 1_000_007;
const log = createLogger('silent');

/**
 * `layoutFaults` with every figure replaced by the widest a deployment of a million pks shows (then
 * the page is reloaded): counts in the millions with decimals, a stale member, 333,334 owned pks.
 */
async function widestFaults(page: Page): Promise<string[]> {
  await page.evaluate(() => {
    const widest: Record<string, string> = {
      followers: '12,345,678',
      following: '7,500',
      ratio: '12,345.67',
      rank: '#1,000,000',
      average: '12,345,678.9',
      growth: '+1,234,567',
      tracked: '1,000,000',
      'all-average': '1,234,567.89',
    };
    for (const [id, text] of Object.entries(widest)) document.getElementById(id)!.textContent = text;
    for (const tr of document.querySelectorAll('#members tr')) {
      ['demo-3', 'active (stale)', '33.33%', '333,334', '99.97%'].forEach((text, i) => {
        tr.children[i]!.textContent = text;
      });
    }
  });
  const faults = await layoutFaults(page);
  await page.reload();
  await page.waitForFunction(
    () => document.body.dataset.state === 'ready' && document.querySelectorAll('#members tr').length > 0,
  );
  return faults;
}

/**
 * What a reader would see as broken: a figure (a figure box's value, a table cell, a top-list value)
 * taller than one line, and a panel, table or scroll box whose content is wider than the box.
 */
function layoutFaults(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    const faults: string[] = [];
    const name = (el: Element): string =>
      `${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ''}${el.className ? `.${String(el.className).trim().split(/\s+/).join('.')}` : ''} "${(el.textContent ?? '').trim().slice(0, 30)}"`;
    for (const el of document.querySelectorAll(
      '.figures dd, .members th, .members td, .top-list .value, .badge, .range button',
    )) {
      const style = getComputedStyle(el);
      const line = parseFloat(style.lineHeight) || parseFloat(style.fontSize) * 1.2;
      const height = el.getBoundingClientRect().height - parseFloat(style.paddingTop) - parseFloat(style.paddingBottom);
      if (height > line * 1.5)
        faults.push(`${name(el)} wraps: ${Math.round(height)} px high for ${Math.round(line)} px lines`);
    }
    for (const el of document.querySelectorAll('.card, .scroll, .members, .figures, .figures div, .chart-head, .top')) {
      if (el.scrollWidth > el.clientWidth + 1)
        faults.push(`${name(el)} overflows: ${el.scrollWidth} px of content in ${el.clientWidth} px`);
    }
    return faults;
  });
}

t.test(
  'dashboard',
  { skip: existsSync(CHROMIUM) ? false : `no browser at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)` },
  async (t) => {
    const { redis, db, ...svc } = await connected(t, 'dashboard-test');
    const config = loadConfig(
      {},
      { CLUSTER: svc.cluster, MONGO_DB: svc.mongoDb, PK_MIN: '1000000', PK_MAX: String(1_000_000 + PKS - 1) },
    );
    const layout = await loadLayout(db, config, Date.now() - 3 * 3_600_000);
    await startTotals(redis, db, layout, svc.cluster);

    // two hours of one-minute random walks for 30 influencers
    const now = Math.floor(Date.now() / MIN) * MIN;
    let seed = 7;
    const rand = (): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const samples: Sample[] = [];
    for (let i = 0; i < PKS; i++) {
      const pk = 1_000_000 + i;
      let f = 60_000 + Math.round(rand() * 250_000);
      let g = 400 + Math.round(rand() * 1500);
      for (let m = 120; m >= 0; m--) {
        f = Math.max(5000, Math.round(f + (rand() - 0.45) * f * 0.01));
        g = Math.max(50, Math.round(g + (rand() - 0.5) * 6));
        samples.push({ pk, at: now - m * MIN, username: `influencer-${pk}`, followerCount: f, followingCount: g });
      }
    }
    const totals = new Totals(redis, svc.cluster, layout.slices);
    await sampleStore(db, totals, layout)(samples);
    await storeSuspicious({ answers: collections(db).answers, totals }, PK, true, now - 3 * 3_600_000, 0);
    await takeRankings(redis, svc.cluster, totals);
    // three member cards as `demo` nodes publish them (figures as wide as a demo's: thousands owned, on-time to 0.01 %)
    const members = ['demo-1', 'demo-2', 'demo-3'].map((id) => ({ id, weight: 1 }));
    for (const [i, m] of members.entries()) {
      const card = {
        format: 1,
        id: m.id,
        host: 'vm',
        pid: 4100 + i,
        version: '0.1.0',
        weight: 1,
        state: 'active',
        started: now - 3_600_000,
        heartbeat: Date.now(),
        ttlMs: 10_000,
        view: viewHash(members),
        stats: {
          owned: [3334, 3333, 3333][i],
          onTimePct: [99.97, 100, 99.95][i],
          samplesLastInterval: [3334, 3333, 3333][i],
        },
      };
      // as a node does: its card, and its id in the member index
      await redis.set(nodeKey(svc.cluster, m.id), JSON.stringify(card), 'PX', 120_000);
      await redis.sadd(memberIndexKey(svc.cluster), m.id);
    }

    const api = await startApi(
      { config, redis, reader: new TimelineReader(redis, db, layout, svc.cluster), log },
      { host: '127.0.0.1', port: 0 },
    );
    const profile = mkdtempSync(join(tmpdir(), 'inode-chromium-'));
    const browser: BrowserContext = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
      viewport: { width: 1280, height: 800 },
    });
    t.teardown(async () => {
      await browser.close();
      rmSync(profile, { recursive: true, force: true });
      await api.stop();
    });
    mkdirSync(SHOTS, { recursive: true });
    const errors: string[] = [];
    const open = async (width: number, height: number, hash = ''): Promise<Page> => {
      const page = await browser.newPage();
      page.on('pageerror', (err) => errors.push(err.message));
      // the 400s asked for below are logged as failed loads: expected, not script errors
      page.on('console', (msg) => {
        if (msg.type() === 'error' && !/status of 400/.test(msg.text())) errors.push(msg.text());
      });
      await page.setViewportSize({ width, height });
      await page.goto(`${api.url}/${hash}`);
      return page;
    };
    /** The chart's point count once drawn, and the count the API gives for the same range. */
    const drawn = async (page: Page, pk: number): Promise<{ points: number; expected: number; pixels: number }> => {
      await page.waitForFunction(
        (pk) =>
          document.body.dataset.state === 'ready' && document.getElementById('pk-label')?.textContent === `pk ${pk}`,
        pk,
        { timeout: 20_000 },
      );
      const chart = page.locator('#chart-followers');
      const [points, from, to] = await Promise.all(
        ['data-points', 'data-from', 'data-to'].map((a) => chart.getAttribute(a)),
      );
      const res = await fetch(`${api.url}/api/influencers/${pk}/timeline?from=${from}&to=${to}`);
      const expected = ((await res.json()) as { points: unknown[] }).points.length;
      // pixels of the followers line colour (#2563eb) on the chart's canvas: the line is really drawn
      const pixels = await page.evaluate(() => {
        const canvas = document.querySelector('#chart-followers canvas') as HTMLCanvasElement | null;
        if (!canvas) return -1;
        const data = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
        let n = 0;
        for (let i = 0; i < data.length; i += 4)
          if (
            Math.abs(data[i] - 37) < 30 &&
            Math.abs(data[i + 1] - 99) < 30 &&
            Math.abs(data[i + 2] - 235) < 30 &&
            data[i + 3] > 200
          )
            n++;
        return n;
      });
      return { points: Number(points), expected, pixels };
    };

    await t.test('desktop 1280×800: search a pk, see figures, flag, charts, cluster', async (t) => {
      const page = await open(1280, 800);
      // with no pk asked for, the page shows the top influencer
      await page.waitForSelector('#top-list li a');
      await page.fill('#pk-input', String(PK));
      await page.press('#pk-input', 'Enter');
      const d = await drawn(page, PK);
      t.ok(d.expected >= 59, `the API returned ${d.expected} points for the last hour`);
      t.equal(d.points, d.expected, 'the chart holds every point the API returned');
      t.ok(d.pixels > 100, `the followers line is drawn (${d.pixels} pixels of its colour)`);
      t.equal(await page.locator('#chart-followers canvas').count(), 1, 'a uPlot canvas for followers');
      t.equal(await page.locator('#chart-ratio canvas').count(), 1, 'and one for the ratio');
      t.match(
        await page.locator('#chart-followers .u-legend').innerText(),
        /Followers[\s\S]*Average/,
        'followers and their average',
      );
      const summary = (await (await fetch(`${api.url}/api/influencers/${PK}`)).json()) as {
        followerCount: number;
        rank: number;
      };
      t.equal(await page.locator('#username').innerText(), `influencer-${PK}`);
      t.equal(await page.locator('#followers').innerText(), summary.followerCount.toLocaleString('en-US'));
      t.equal(await page.locator('#rank').innerText(), `#${summary.rank}`);
      t.equal(await page.locator('#flag').innerText(), 'suspicious');
      t.equal(await page.locator('#members tr').count(), 3, 'three cluster members');
      t.match(await page.locator('#members').innerText(), /demo-1\s+active\s+[\d.]+%\s+3,334\s+99.97%/);
      t.match(await page.locator('#all-average').innerText(), /^[\d,.]+$/, 'the all-influencer average');
      t.equal(await page.locator('#tracked').innerText(), String(PKS));
      t.match(page.url(), new RegExp(`#pk=${PK}&range=hour$`), 'the URL names the pk and range');
      t.same(await layoutFaults(page), [], 'no figure breaks onto two lines, no panel or table is cut off');
      await page.screenshot({ path: join(SHOTS, 'dashboard.png'), fullPage: true });
      t.same(await widestFaults(page), [], 'nor with the widest figures a cluster of a million pks shows');

      await page.click('button[data-range="week"]');
      await page.waitForFunction(() => /hourly/.test(document.getElementById('resolution')?.textContent ?? ''));
      const week = await drawn(page, PK);
      t.equal(week.points, week.expected, 'a week is drawn from hourly aggregates');
      t.ok(week.points >= 2 && week.points <= 3, `two hours of data make ${week.points} hourly points`);

      const top = (await (await fetch(`${api.url}/api/influencers?sort=growth&limit=1`)).json()) as {
        influencers: Array<{ pk: number }>;
      };
      await page.click('button[data-sort="growth"]');
      // the list by growth itself, not the list by followers it replaces (its 10 links are there until the answer comes)
      await page.waitForFunction(
        (pk) => (document.querySelector('#top-list li a') as HTMLElement | null)?.dataset.pk === String(pk),
        top.influencers[0].pk,
      );
      await page.locator('#top-list li a').first().click();
      await drawn(page, top.influencers[0].pk);
      t.pass('a click in the top list shows that influencer');

      await page.fill('#pk-input', String(1_000_000 + PKS - 1 + 1));
      await page.press('#pk-input', 'Enter');
      await page.waitForFunction(() => !document.getElementById('message')?.hidden);
      t.match(
        await page.locator('#message').innerText(),
        /is not valid: expected an integer from 1000000 to 1000029/,
        "an out-of-range pk: the API's message",
      );
      await page.fill('#pk-input', 'abc');
      await page.press('#pk-input', 'Enter');
      t.match(await page.locator('#message').innerText(), /"abc" is not a pk/);
      await page.close();
    });

    await t.test('phone 375×812: one column, no sideways scrolling', async (t) => {
      const page = await open(375, 812, `#pk=${PK}&range=day`);
      const d = await drawn(page, PK);
      t.equal(d.points, d.expected, `the chart holds the ${d.expected} points of the day`);
      t.ok(d.pixels > 50, 'the line is drawn');
      const widths = await page.evaluate(() => ({
        page: document.documentElement.scrollWidth,
        chart: document.querySelector('#chart-followers canvas')!.getBoundingClientRect().right,
      }));
      t.ok(widths.page <= 375, `nothing wider than the screen (${widths.page} px)`);
      t.ok(widths.chart <= 375, `the chart fits (${Math.round(widths.chart)} px)`);
      t.same(await layoutFaults(page), [], 'no figure breaks onto two lines, no panel or table is cut off');
      await page.screenshot({ path: join(SHOTS, 'dashboard-phone.png'), fullPage: true });
      t.same(await widestFaults(page), [], 'nor with the widest figures');
      await page.close();
    });

    t.same(errors, [], 'no script errors in the page');
  },
);
