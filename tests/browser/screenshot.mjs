// screenshot.mjs -- a picture of the dashboard, for docs/dashboard.png
// (scripts/dashboard_demo.sh runs it).  No checks: dashboard.mjs tests.
//
//   node screenshot.mjs URL OUT.png [TOKEN] [CID]
import { chromium } from 'playwright-core';

const [url, out, token, cid] = process.argv.slice(2);
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'], headless: true });
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  await page.goto(url + '/');
  if (token) {
    await page.fill('#token', token);
    await page.click('#token-save');
  }
  if (cid) {
    await page.fill('#lc-cid', cid);
    await page.press('#lc-cid', 'Enter');
  }
  await page.waitForFunction(() => document.body.dataset.updated, null, { timeout: 20000 });
  await page.waitForTimeout(4500); // two more polls: worker throughput is a difference
  await page.screenshot({ path: out, fullPage: true });
} finally {
  await browser.close();
}
