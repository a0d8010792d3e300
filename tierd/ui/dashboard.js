/*
 * dashboard.js -- the dashboard's only script (docs/DASHBOARD.md).
 *
 * It polls tierd's JSON API every POLL_MS (GetStats, ListJobs failed,
 * ListWorkers, TopContents, LatestComments) and redraws.  Polling, not
 * server-sent events: tierd's HTTP server is nng's, which answers a request
 * with one complete response (rpc/tier_http.c replies once, with a body of
 * known length) and cannot stream one; a 2 s poll of a few small calls is
 * cheap, and works through any proxy.
 *
 * The token the user pastes is kept in sessionStorage (gone with the tab,
 * never in a cookie, so no other site can make the browser send it) and
 * sent as "Authorization: Bearer".  Without one the calls go bare, which is
 * what a --no-auth tierd wants.
 *
 * Every string from the API reaches the page as textContent (el() below),
 * never as markup: a filename or a comment body cannot inject anything.
 */
'use strict';

const POLL_MS = 2000;
const TOKEN_KEY = 'tier.token';
const TOP_N = 10; // rows of Top contents
const COMMENTS_N = 10; // latest comments shown
const INT64_MAX = '9223372036854775807'; // the top level's max_counts: no bound

const $ = (id) => document.getElementById(id);

/* An element with attributes and children; strings become text nodes. */
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, String(v));
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function token() {
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

class ApiError extends Error {
  constructor(status, body) {
    super(body && body.message ? body.message : 'HTTP ' + status);
    this.status = status;
    this.code = body && body.status;
  }
}

/* POST /v1/<method> with the request as JSON; the reply as an object. */
async function call(method, req) {
  const headers = { 'Content-Type': 'application/json' };
  if (token()) headers.Authorization = 'Bearer ' + token();
  const r = await fetch('/v1/' + method, {
    method: 'POST', headers, body: JSON.stringify(req || {}), cache: 'no-store',
  });
  let body = null;
  try { body = await r.json(); } catch (e) { body = null; }
  if (!r.ok) throw new ApiError(r.status, body);
  return body;
}

/* int64/uint64 arrive as strings (proto3 JSON): numbers for display. */
const num = (s) => Number(s || 0);

function fmtBytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return (i === 0 ? String(v) : v.toFixed(1)) + ' ' + units[i];
}

function fmtTime(ms) {
  if (!ms) return '–';
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
}

function fmtAge(ms, now) {
  if (!ms) return '–';
  const s = Math.max(0, Math.round((now - ms) / 1000));
  return s < 120 ? s + ' s ago' : Math.round(s / 60) + ' min ago';
}

function fillBody(table, rows) {
  const tb = table.tBodies[0];
  tb.replaceChildren(...rows);
}

/* A numeric cell: the shown text, and the raw value for tests and tooltips. */
function numCell(field, value, shown) {
  return el('td', { class: 'num', 'data-field': field, 'data-value': value, title: String(value) },
    shown === undefined ? String(value) : shown);
}

/* ---------------------------------------------------------------- panels */

function drawLevels(st) {
  const rows = (st.levels || []).map((l) => el('tr', { 'data-level': l.name },
    el('td', { 'data-field': 'name' }, l.name),
    el('td', {}, l.maxCounts === INT64_MAX ? '≥ ' + l.minCounts : l.minCounts + ' – ' + l.maxCounts),
    numCell('contents', l.contents),
    numCell('bytes', l.bytes, fmtBytes(num(l.bytes))),
    numCell('capacity', l.capacityBytes, num(l.capacityBytes) > 0
      ? fmtBytes(num(l.capacityBytes)) + ' (' + Math.round(100 * num(l.bytes) / num(l.capacityBytes)) + '% full)'
      : '–'),
    numCell('files', l.files),
    numCell('missing', l.missing)));
  fillBody($('levels'), rows);
  const asOf = num(st.bytesAsOfMs);
  $('levels-asof').textContent = asOf ? fmtTime(asOf) + ' (' + fmtAge(asOf, num(st.nowMs)) + ')' : 'no size pass yet';
}

function drawJobs(st) {
  $('jobs').replaceChildren(...(st.jobs || []).map((j) => el('div',
    { class: 'count state-' + j.state, 'data-state': j.state },
    el('span', { class: 'n', 'data-field': 'count', 'data-value': j.count }, String(j.count)),
    el('span', { class: 'label' }, j.state))));
  $('workers-alive').textContent = st.workersAlive + ' alive';
}

function say(msg, bad) {
  const m = $('failed-msg');
  m.textContent = msg;
  m.className = 'msg' + (bad ? ' bad' : '');
}

/* Retry / Cancel: admin only; a 403 says so rather than "HTTP 403". */
async function control(method, cid) {
  if (method === 'CancelJob' &&
      !window.confirm('Cancel the move of content ' + cid + '? It stays on its current level.')) return;
  try {
    const r = await call(method, { cid: String(cid) });
    say(method + ' ' + cid + ': ' + (r.outcome || 'ok'), false);
  } catch (e) {
    if (e.status === 403) say('admin token required', true);
    else if (e.status === 401) say('a token is required (paste one above)', true);
    else say(method + ' ' + cid + ': ' + e.message, true);
  }
  poll();
}

function drawFailed(jobs) {
  const rows = jobs.map((j) => el('tr', { 'data-cid': j.cid },
    el('td', { class: 'num', 'data-field': 'cid' }, j.cid),
    el('td', { 'data-field': 'filename' }, j.filename),
    el('td', {}, j.dbLevel + ' → ' + j.target),
    el('td', { 'data-field': 'reason', class: 'reason', title: j.reason }, j.reason),
    el('td', { class: 'num', 'data-field': 'attempts' }, String(j.attempts)),
    el('td', { title: fmtTime(num(j.updatedMs)) }, fmtAge(num(j.updatedMs), Date.now())),
    el('td', { class: 'actions' },
      el('button', { class: 'retry', type: 'button', onclick: () => control('RetryJob', j.cid) }, 'Retry'),
      el('button', { class: 'cancel', type: 'button', onclick: () => control('CancelJob', j.cid) }, 'Cancel'))));
  if (rows.length === 0) rows.push(el('tr', {}, el('td', { colspan: 7, class: 'none' }, 'none')));
  fillBody($('failed'), rows);
}

/* moves_done of each worker at the previous poll: throughput is the change. */
const lastDone = new Map();

function drawWorkers(rep, nowMs) {
  const rows = (rep.workers || []).map((w) => {
    const done = num(w.movesDone);
    const prev = lastDone.get(w.workerId);
    let rate = '–';
    if (prev && nowMs > prev.at && done >= prev.done) rate = ((done - prev.done) * 1000 / (nowMs - prev.at)).toFixed(2);
    lastDone.set(w.workerId, { done, at: nowMs });
    return el('tr', { 'data-worker': w.workerId, class: w.alive ? 'alive' : 'dead' },
      el('td', { 'data-field': 'id' }, w.workerId),
      el('td', {}, w.host),
      numCell('inFlight', w.movesInFlight),
      numCell('done', w.movesDone),
      numCell('failed', w.movesFailed),
      numCell('bytes', w.bytesMoved, fmtBytes(num(w.bytesMoved))),
      el('td', { class: 'num', 'data-field': 'rate' }, rate),
      el('td', { title: fmtTime(num(w.lastSeenMs)) }, fmtAge(num(w.lastSeenMs), nowMs)),
      el('td', { 'data-field': 'alive' }, w.alive ? 'yes' : 'no'));
  });
  if (rows.length === 0) rows.push(el('tr', {}, el('td', { colspan: 9, class: 'none' }, 'none')));
  fillBody($('workers'), rows);
}

let chart = null;

/* uPlot wants [xs, ys...] with x in seconds; counts per step -> per second.
 * The last step is still counting: it is left out until it ends, or the
 * line would always dive at the right edge. */
function drawChart(st) {
  const step = st.stepMs || 10000;
  const start = num(st.seriesStartMs);
  const n = Math.max(0, (st.moves || []).length - 1);
  const xs = [];
  for (let i = 0; i < n; i++) xs.push((start + i * step) / 1000);
  const rate = (v) => (v || []).slice(0, n).map((c) => num(c) * 1000 / step);
  const data = [xs, rate(st.moves), rate(st.reports), rate(st.comments)];
  const box = $('chart');
  box.dataset.points = String(n);
  box.dataset.moves = String((st.moves || []).reduce((a, c) => a + num(c), 0));
  box.dataset.reports = String((st.reports || []).reduce((a, c) => a + num(c), 0));
  if (typeof uPlot === 'undefined') return;
  if (chart === null) {
    chart = new uPlot({
      width: Math.max(320, box.clientWidth), height: 220,
      scales: { x: { time: true } },
      // UTC, like every other time on the page and in tierctl.
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), 'Etc/UTC'),
      series: [{}, { label: 'moves/s', stroke: '#d9822b', width: 2 },
        { label: 'reports/s', stroke: '#2b6cd9', width: 2 },
        { label: 'comments/s', stroke: '#3a9a5b', width: 1 }],
      axes: [{}, { label: 'per second' }],
    }, data, box);
  } else {
    chart.setData(data);
  }
}

/* The window ends at the end of the current minute (TopContents wants
 * minute bounds, to exclusive) and reaches back as far as chosen. */
async function pollTop(nowMs) {
  const to = Math.floor(nowMs / 60000) * 60000 + 60000;
  const from = to - Number($('top-window').value) * 1000;
  const req = { fromMs: String(from), toMs: String(to), limit: TOP_N, order: $('top-order').value };
  const svc = $('top-service').value.trim();
  if (svc) req.service = svc;
  const rep = await call('TopContents', req);
  const rows = (rep.rows || []).map((r) => el('tr', { 'data-cid': r.cid },
    el('td', {}, r.service), numCell('cid', r.cid), numCell('change', r.change),
    numCell('created', r.created), numCell('deleted', r.deleted), numCell('restored', r.restored)));
  if (rows.length === 0) rows.push(el('tr', {}, el('td', { colspan: 6, class: 'none' }, 'none')));
  fillBody($('top'), rows);
}

async function pollComments() {
  const cid = $('lc-cid').value.trim();
  const list = $('lc');
  if (!/^[1-9][0-9]{0,18}$/.test(cid)) { list.replaceChildren(); return; }
  const rep = await call('LatestComments', { cid, n: COMMENTS_N });
  const items = (rep.comments || []).map((c) => el('li', { 'data-id': c.id },
    el('span', { class: 'meta' }, fmtTime(num(c.createdMs)) + ' · ' + c.service + ' · ' + c.author +
      (num(c.modifiedMs) ? ' · edited' : '')),
    el('span', { class: 'body' }, c.body)));
  if (items.length === 0) items.push(el('li', { class: 'none' }, 'no comments'));
  list.replaceChildren(...items);
}

/* ---------------------------------------------------------------- polling */

let timer = null;
let busy = false;

async function poll() {
  if (busy) return;
  busy = true;
  clearTimeout(timer);
  const status = $('status');
  try {
    const st = await call('GetStats', {});
    const nowMs = num(st.nowMs);
    drawLevels(st);
    drawJobs(st);
    drawChart(st);
    const [failed, workers] = await Promise.all([
      call('ListJobs', { status: 'failed', limit: 100 }), call('ListWorkers', {})]);
    drawFailed(failed.jobs || []);
    drawWorkers(workers, nowMs);
    await Promise.all([pollTop(nowMs), pollComments()]);
    status.textContent = 'updated ' + fmtTime(nowMs);
    status.className = 'status ok';
    document.body.dataset.updated = String(nowMs);
  } catch (e) {
    if (e.status === 401) status.textContent = 'a token is required: paste one above';
    else if (e.status === 403) status.textContent = 'this token may not read (client or admin needed)';
    else status.textContent = 'error: ' + e.message;
    status.className = 'status bad';
  } finally {
    busy = false;
    timer = setTimeout(poll, POLL_MS);
  }
}

function init() {
  $('token').value = token();
  $('token-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $('token').value.trim());
    poll();
  });
  $('token-clear').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    $('token').value = '';
    poll();
  });
  for (const id of ['top-window', 'top-order']) $(id).addEventListener('change', () => poll());
  $('top-form').addEventListener('submit', (ev) => { ev.preventDefault(); poll(); });
  $('top-service').addEventListener('change', () => poll());
  $('lc-form').addEventListener('submit', (ev) => { ev.preventDefault(); poll(); });
  poll();
}

document.addEventListener('DOMContentLoaded', init);
