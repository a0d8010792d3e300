// dashboard.mjs -- drives a real headless Chromium (Debian's) against
// tierd's dashboard, for tests/test_dashboard.c.
//
//   node dashboard.mjs URL ADMIN_TOKEN SCREENSHOT [CLIENT_TOKEN]
//
// URL is tierd's HTTP port (http://127.0.0.1:PORT); tokens may be "" for a
// --no-auth tierd.  The test has made contents on two levels, a moved one,
// comments and a FAILED job whose file is missing.  This script:
//   1. loads the page (with the client token when given, else the admin's)
//      and waits for its first update;
//   2. checks that the numbers shown (levels, job counts, workers, failed
//      jobs, top contents, latest comments) equal what the API answers --
//      asked by this script itself over /v1, retrying for a while because
//      the page and the script read at slightly different moments;
//   3. checks the chart has its 359 points (the hour but the step still
//      counting) and counted the moves/reports;
//   4. with a client token: Retry says "admin token required";
//   5. with the admin token: puts the failed job's file back, clicks Retry,
//      and checks through the API that the job ran again (the content
//      reaches its target level);
//   6. saves a screenshot to SCREENSHOT.
// Exit 0 when all holds; 1 with the reason on stderr otherwise.  It never
// talks to anything but URL: the browser is started with no network beyond
// what the page asks of tierd.
import { chromium } from 'playwright-core';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const [url, adminToken, shot, clientToken] = process.argv.slice(2);
if (!url || adminToken === undefined || !shot) {
  console.error('usage: node dashboard.mjs URL ADMIN_TOKEN SCREENSHOT [CLIENT_TOKEN]');
  process.exit(2);
}

function fail(msg) {
  throw new Error(msg);
}

async function api(method, req, token) {
  const headers = { 'Content-Type': 'application/json' };
  if (token) headers.Authorization = 'Bearer ' + token;
  const r = await fetch(url + '/v1/' + method, { method: 'POST', headers, body: JSON.stringify(req || {}) });
  const body = await r.json();
  if (!r.ok) fail(`${method}: HTTP ${r.status} ${JSON.stringify(body)}`);
  return body;
}

const sleep = (ms) => new Promise((res) => setTimeout(res, ms));

/* Retries check() (which throws on a mismatch) until it passes or the time is up. */
async function eventually(what, check, ms = 20000) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    try {
      return await check();
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) fail(`${what}: ${last && last.message}`);
    await sleep(300);
  }
}

function same(what, shown, want) {
  const a = JSON.stringify(shown);
  const b = JSON.stringify(want);
  if (a !== b) fail(`${what}: page shows ${a}, API says ${b}`);
}

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-dev-shm-usage'],
  headless: true,
});
const errors = [];
let code = 0;
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1100 } });
  page.on('pageerror', (e) => errors.push('page error: ' + e.message));
  page.on('console', (m) => {
    // HTTP errors the test provokes (401 before the token, 403 for the
    // client's Retry) are logged as "Failed to load resource"; anything
    // else (a CSP violation, an exception) is a failure.
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) errors.push('console: ' + m.text());
  });
  const first = clientToken || adminToken;

  // 1. Load, paste the token, wait for an update.
  const resp = await page.goto(url + '/', { waitUntil: 'load' });
  if (resp.status() !== 200) fail('GET / -> ' + resp.status());
  const csp = resp.headers()['content-security-policy'] || '';
  if (!csp.includes("script-src 'self'")) fail('no strict CSP on /: ' + csp);
  if (first) {
    await page.fill('#token', first);
    await page.click('#token-save');
  }
  await page.waitForFunction(() => document.body.dataset.updated && document.querySelector('#levels tbody tr'),
    null, { timeout: 20000 });

  // 2. Numbers equal the API's.
  await eventually('levels', async () => {
    const st = await api('GetStats', {}, first);
    const shown = await page.$$eval('#levels tbody tr', (rows) => rows.map((r) => [
      r.dataset.level,
      r.querySelector('[data-field=contents]').textContent,
      r.querySelector('[data-field=bytes]').dataset.value,
      r.querySelector('[data-field=files]').textContent]));
    same('levels', shown, st.levels.map((l) => [l.name, l.contents, l.bytes, l.files]));
    if (!st.levels.some((l) => Number(l.contents) > 0)) fail('no contents counted');
    if (!(Number(st.bytesAsOfMs) > 0) || !st.levels.some((l) => Number(l.bytes) > 0)) fail('no size pass yet');
    const jobs = await page.$$eval('#jobs [data-state]', (ds) => ds.map((d) =>
      [d.dataset.state, d.querySelector('[data-field=count]').textContent]));
    same('job counts', jobs, st.jobs.map((j) => [j.state, j.count]));
  });
  let failedJob;
  await eventually('failed jobs', async () => {
    const rep = await api('ListJobs', { status: 'failed', limit: 100 }, first);
    if (!rep.jobs.length) fail('the API lists no failed job');
    const shown = await page.$$eval('#failed tbody tr[data-cid]', (rows) => rows.map((r) => [
      r.dataset.cid, r.querySelector('[data-field=reason]').textContent,
      r.querySelector('[data-field=attempts]').textContent]));
    same('failed jobs', shown, rep.jobs.map((j) => [j.cid, j.reason, String(j.attempts)]));
    failedJob = rep.jobs[0];
  });
  await eventually('workers', async () => {
    const rep = await api('ListWorkers', {}, first);
    if (!rep.workers.length) fail('no worker listed');
    const shown = await page.$$eval('#workers tbody tr[data-worker]', (rows) => rows.map((r) => [
      r.dataset.worker, r.querySelector('[data-field=done]').textContent,
      r.querySelector('[data-field=failed]').textContent,
      r.querySelector('[data-field=alive]').textContent]));
    same('workers', shown, rep.workers.map((w) => [w.workerId, w.movesDone, w.movesFailed, w.alive ? 'yes' : 'no']));
  });
  await eventually('top contents', async () => {
    const now = Date.now();
    const to = Math.floor(now / 60000) * 60000 + 60000;
    const rep = await api('TopContents', { fromMs: String(to - 3600000), toMs: String(to), limit: 10 }, first);
    if (!rep.rows.length) fail('the API has no top contents');
    const shown = await page.$$eval('#top tbody tr[data-cid]', (rows) => rows.map((r) => [
      r.dataset.cid, r.querySelector('[data-field=change]').textContent]));
    same('top contents', shown, rep.rows.map((r) => [r.cid, r.change]));
  });
  const topCid = await page.$eval('#top tbody tr[data-cid]', (r) => r.dataset.cid);
  await page.fill('#lc-cid', topCid);
  await page.press('#lc-cid', 'Enter');
  await eventually('latest comments', async () => {
    const rep = await api('LatestComments', { cid: topCid, n: 10 }, first);
    const shown = await page.$$eval('#lc li[data-id]', (li) => li.map((l) => [l.dataset.id,
      l.querySelector('.body').textContent]));
    same('latest comments', shown, rep.comments.map((c) => [c.id, c.body]));
    if (!shown.length) fail('no comment shown');
  });

  // 3. The chart.
  await eventually('chart', async () => {
    const d = await page.$eval('#chart', (c) => ({ ...c.dataset, canvas: !!c.querySelector('canvas') }));
    if (d.points !== '359' || !d.canvas) fail('chart: ' + JSON.stringify(d));
    if (!(Number(d.moves) >= 1 && Number(d.reports) >= 1)) fail('chart counted nothing: ' + JSON.stringify(d));
  });

  const row = `#failed tbody tr[data-cid="${failedJob.cid}"]`;
  // 4. A client may not retry.
  if (clientToken) {
    await page.click(`${row} button.retry`);
    await page.waitForFunction(() => document.getElementById('failed-msg').textContent === 'admin token required',
      null, { timeout: 10000 });
    const j = await api('GetJob', { cid: failedJob.cid }, adminToken);
    if (j.job.status !== 'failed') fail('a client retry changed the job: ' + j.job.status);
    await page.fill('#token', adminToken);
    await page.click('#token-save');
  }

  // 5. The admin retries: the file is back, so the job now completes.
  writeFileSync(join(failedJob.srcDir, failedJob.filename), 'back again\n');
  await page.click(`${row} button.retry`);
  await page.waitForFunction(() => /^RetryJob \d+: retried$/.test(document.getElementById('failed-msg').textContent),
    null, { timeout: 10000 });
  await eventually('retried job moved', async () => {
    const c = await api('GetContent', { cid: failedJob.cid }, adminToken);
    if (c.content.level !== failedJob.target) fail(`content ${failedJob.cid} is on ${c.content.level}, not ${failedJob.target}`);
  }, 30000);
  await eventually('failed list empties', async () => {
    const n = await page.$$eval('#failed tbody tr[data-cid]', (r) => r.length);
    if (n !== 0) fail(n + ' failed rows still shown');
  });

  // 6. The picture.
  await page.screenshot({ path: shot, fullPage: true });
  if (errors.length) fail(errors.join('\n'));
  console.log('dashboard: ok');
} catch (e) {
  console.error('dashboard: ' + (e && e.stack ? e.stack : e));
  code = 1;
} finally {
  await browser.close();
}
process.exit(code);
