// The console in headless Chromium against the stack run.sh started (two klingqd
// instances, klingq-sim, PostgreSQL). Each step waits for its condition with a
// deadline, then checks it against the database (psql). Screenshots go to $ARTIFACTS.
'use strict';
const puppeteer = require('puppeteer-core');
const { execFileSync } = require('child_process');
const path = require('path');
const assert = require('assert');

const A = 'http://' + process.env.CONSOLE_A;
const B = 'http://' + process.env.CONSOLE_B;
const artifacts = process.env.ARTIFACTS;

function sql(query) {
  return execFileSync('psql', process.env.PSQL_ARGS.split(' ').concat(['-c', query]), { encoding: 'utf8' }).trim();
}
async function until(what, condition, ms = 20000) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    try { last = await condition(); if (last) return last; } catch (e) { last = e; }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('timed out waiting for ' + what + ' (last: ' + last + ')');
}
async function shot(page, name) {
  await page.screenshot({ path: path.join(artifacts, name + '.png'), fullPage: true });
  console.log('screenshot ' + name + '.png');
}
async function text(page, selector) {
  return page.$eval(selector, (e) => e.textContent);
}
async function login(page, base, token) {
  await page.goto(base + '/', { waitUntil: 'load' });
  await page.waitForSelector('#login:not([hidden])');
  await page.type('#login-token', token);
  await click(page, '#login-button');
  await until('logged in', async () => (await text(page, '#who')).includes('#1'));
}
// The page re-renders every second: a node found a moment ago may be replaced before
// the click lands, so a click is retried (within a deadline) until it reaches a node.
async function click(page, selector) {
  await until('a click on ' + selector, async () => { await page.click(selector); return true; }, 10000);
}
function step(name) { console.log('-- ' + name); }

(async () => {
  const browser = await puppeteer.launch({
    executablePath: '/usr/bin/chromium', headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--window-size=1400,1000'],
    defaultViewport: { width: 1400, height: 1000 },
  });
  const failures = [];
  const pageErrors = [];
  try {
    // ---- a viewer sees the overview the database describes, and cannot act ----
    step('viewer: the overview shows what the database says');
    const viewerContext = await browser.createBrowserContext();
    const viewer = await viewerContext.newPage();
    viewer.on('pageerror', (e) => pageErrors.push(String(e)));
    await viewer.goto(A + '/', { waitUntil: 'load' });
    await until('the login form', async () => (await text(viewer, '#who')).includes('log in'));
    await shot(viewer, '01-login');
    await login(viewer, A, process.env.VIEWER_TOKEN);
    await viewer.waitForSelector('[data-testid=states]');
    // Let the queue settle a moment into a state where counts move slowly, then compare
    // the page's counts with the database's through the same refresh.
    await until('both instances listed', async () => (await viewer.$$('[data-testid=instances] tr')).length === 3);
    const limits = sql("SELECT rpm_limit || ' ' || parallel_limit || ' ' || day_limit FROM klingq.account").split(' ');
    const parallelCard = await text(viewer, '[data-testid=limit-parallel]');
    assert.ok(parallelCard.includes('/ ' + Number(limits[1]).toLocaleString('en-US')), 'parallel limit ' + limits[1] + ' in: ' + parallelCard);
    const dailyCard = await text(viewer, '[data-testid=limit-daily]');
    assert.ok(dailyCard.includes('/ ' + Number(limits[2]).toLocaleString('en-US')), 'daily limit in: ' + dailyCard);
    // The finished jobs of the "later" batch do not move: the page shows the database's.
    await until('the later batch row', async () => {
      const row = await viewer.$('tr[data-batch=later]');
      if (!row) return false;
      const cells = await row.$$eval('td', (tds) => tds.map((t) => t.textContent));
      return cells[1] === sql("SELECT count(*) FROM klingq.jobs WHERE batch = 'later' AND state = 'queued'") &&
             cells[4] === sql("SELECT count(*) FROM klingq.jobs WHERE batch = 'later' AND state = 'failed'");
    });
    const storm = await until('the storm batch with an ETA', async () => {
      const row = await viewer.$('tr[data-batch=storm] [data-testid=eta]');
      return row && (await row.evaluate((e) => e.textContent));
    });
    console.log('storm ETA: ' + storm);
    // The later batch is half done (1 failed of 2): its progress bar is half full.
    const fill = await viewer.$eval('tr[data-batch=later] .bar', (bar) => bar.firstChild.offsetWidth / bar.offsetWidth);
    assert.ok(Math.abs(fill - 0.5) < 0.05, 'the later batch bar is half full, not ' + fill);
    assert.ok(await viewer.$eval('[data-testid=pause]', (b) => b.disabled), 'a viewer sees a disabled Pause');
    await shot(viewer, '02-overview-viewer');

    step('viewer: the API refuses the viewer an action even with its CSRF token');
    const refused = await viewer.evaluate(async () => {
      const s = await (await fetch('/api/session')).json();
      const r = await fetch('/api/pause', { method: 'POST', headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': s.csrf }, body: '{}' });
      return { status: r.status, role: s.role };
    });
    assert.deepStrictEqual(refused, { status: 403, role: 'viewer' });
    assert.strictEqual(sql('SELECT paused FROM klingq.account'), 'f');

    // ---- an operator pauses from the page: every instance holds ----
    step('operator: pause from the page pauses every instance');
    const opContext = await browser.createBrowserContext();
    const op = await opContext.newPage();
    op.on('pageerror', (e) => pageErrors.push(String(e)));
    await login(op, B, process.env.OP_TOKEN);
    await op.waitForSelector('[data-testid=pause]:not([disabled])');
    await op.type('[data-testid=pause-reason]', 'browser test pause');
    await click(op, '[data-testid=pause]');
    await until('the paused banner', async () => (await text(op, '[data-testid=hold-text]')).includes('Dispatch paused: browser test pause'));
    assert.strictEqual(sql('SELECT paused FROM klingq.account'), 't');
    assert.strictEqual(sql("SELECT actor || ' ' || reason FROM klingq.operator_events WHERE action = 'pause'"),
                       'console:operator#1 browser test pause');
    // Both instances report the pause as what holds them (their heartbeats).
    await until('both instances held by the pause', async () => {
      const holds = await op.$$eval('[data-testid=instances] tr td:nth-child(4)', (tds) => tds.map((t) => t.textContent));
      return holds.length === 2 && holds.every((h) => h === 'paused');
    }, 30000);
    // Nothing is charged while paused: the balance on the page is the database's.
    await until('the balance on the page', async () =>
      (await text(op, '[data-testid=balance]')).replace(/,/g, '') === sql('SELECT balance FROM klingq.account'));
    const before = sql("SELECT count(*) FROM klingq.job_events WHERE to_state = 'dispatching'");
    await new Promise((r) => setTimeout(r, 1500));  // a window in which nothing may be claimed
    assert.strictEqual(sql("SELECT count(*) FROM klingq.job_events WHERE to_state = 'dispatching'"), before, 'nothing claimed while paused');
    // The viewer's page (on the other instance) shows it too.
    await until('the viewer sees the pause', async () => (await text(viewer, '[data-testid=hold-text]')).includes('paused'));
    await shot(op, '03-overview-paused');
    await click(op, '[data-testid=resume]');
    await until('resumed', async () => sql('SELECT paused FROM klingq.account') === 'f');
    await until('the banner after resume', async () => !(await text(op, '[data-testid=hold-text]')).includes('paused'));

    // ---- the unlabelled batch's row acts on the jobs without a batch ----
    step('operator: the unlabelled batch\'s row pauses, resumes and retries its failed jobs');
    const unlabelled = 'tr[data-batch="(unlabelled)"]';
    await click(op, unlabelled + ' [data-testid=pause-batch]');
    await until('the unlabelled batch paused in the database', async () => sql('SELECT paused FROM klingq.batches WHERE batch IS NULL') === 't');
    await until('the unlabelled batch paused on the page', async () => !!(await op.$(unlabelled + ' [data-testid=batch-paused]')));
    await shot(op, '03b-unlabelled-paused');
    await click(op, unlabelled + ' [data-testid=resume-batch]');
    await until('the unlabelled batch resumed', async () => sql('SELECT paused FROM klingq.batches WHERE batch IS NULL') === 'f');
    await until('its Pause button again', async () => !!(await op.$(unlabelled + ' [data-testid=pause-batch]')));
    await click(op, unlabelled + ' [data-testid=retry-failed]');
    await until('the unlabelled failed job retried', async () => sql("SELECT state FROM klingq.jobs WHERE prompt = 'an unlabelled failed job'") !== 'failed');
    assert.strictEqual(sql("SELECT string_agg(action, ',' ORDER BY id) FROM klingq.operator_events WHERE batch IS NULL AND action <> 'pause' AND action <> 'resume'"),
                       'batch_pause,batch_resume,retry_failed');
    assert.strictEqual(sql("SELECT state FROM klingq.jobs WHERE prompt = 'a failed job for the retry button'"), 'failed', 'a labelled batch is untouched');

    // ---- retry and cancel from a job's page ----
    step('operator: retry from a failed job\'s page');
    const failedId = sql("SELECT id FROM klingq.jobs WHERE prompt = 'a failed job for the retry button'");
    await op.goto(B + '/#/job/' + failedId, { waitUntil: 'load' });
    await until('the failed job page', async () => (await text(op, 'main h2')) === 'Job #' + failedId);
    assert.strictEqual(await text(op, '[data-testid=job-state]'), 'failed');
    await shot(op, '04-job-failed');
    await op.type('[data-testid=job-reason]', 'prompt fixed');
    await click(op, '[data-testid=retry]');
    await until('the job queued again', async () => sql('SELECT state FROM klingq.jobs WHERE id = ' + failedId) !== 'failed');
    await until('the retry on the timeline', async () => (await text(op, '[data-testid=timeline]')).includes('retry by console:operator#1: prompt fixed'));
    await shot(op, '05-job-retried');

    step('operator: cancel from a queued job\'s page');
    const queuedId = sql("SELECT id FROM klingq.jobs WHERE prompt = 'a queued job for the cancel button'");
    await op.goto(B + '/#/job/' + queuedId, { waitUntil: 'load' });
    // The retried job is queued too: wait for this job's page, not just a queued state.
    await until('the queued job page', async () => (await text(op, 'main h2')) === 'Job #' + queuedId &&
                                                  (await text(op, '[data-testid=job-state]')) === 'queued');
    await click(op, '[data-testid=cancel]');
    await until('cancelled in the database', async () => sql('SELECT state FROM klingq.jobs WHERE id = ' + queuedId) === 'cancelled');
    await until('cancelled on the page', async () => (await text(op, '[data-testid=job-state]')) === 'cancelled');
    await shot(op, '06-job-cancelled');

    step('viewer: a job page has no usable buttons; the jobs list filters');
    await viewer.goto(A + '/#/job/' + queuedId, { waitUntil: 'load' });
    await until('the job page for the viewer', async () => (await text(viewer, 'main h2')) === 'Job #' + queuedId);
    assert.ok(await viewer.$eval('[data-testid=cancel]', (b) => b.disabled));
    await viewer.goto(A + '/#/jobs?state=cancelled', { waitUntil: 'load' });
    await until('the cancelled job listed', async () => !!(await viewer.$('tr[data-job="' + queuedId + '"]')));
    const listed = await viewer.$$eval('[data-testid=jobs] tr[data-job]', (rows) => rows.length);
    assert.strictEqual(String(listed), sql("SELECT count(*) FROM klingq.jobs WHERE state = 'cancelled'"));
    await shot(viewer, '07-jobs-cancelled');
    // A text search says which ids it read (a bounded range per request; here all of them).
    await viewer.goto(A + '/#/jobs?q=lighthouse', { waitUntil: 'load' });
    const searched = await until('the searched range', async () => {
      const e = await viewer.$('[data-testid=search-range]');
      return e && (await e.evaluate((n) => n.textContent));
    });
    assert.ok(searched.includes('down to the oldest'), 'searched: ' + searched);
    const found = await viewer.$$eval('[data-testid=jobs] tr[data-job]', (rows) => rows.length);
    assert.strictEqual(String(found), sql("SELECT count(*) FROM klingq.jobs WHERE prompt ILIKE '%lighthouse%'"));
    await shot(viewer, '07b-jobs-search');
    await viewer.goto(A + '/#/', { waitUntil: 'load' });
    await until('the overview again', async () => !!(await viewer.$('[data-testid=batches]')));
    await shot(viewer, '08-overview-end');
    assert.deepStrictEqual(pageErrors, [], 'no script errors on the page');
  } catch (e) {
    failures.push(e);
  } finally {
    await browser.close();
  }
  if (failures.length) {
    console.error('FAILED: ' + (failures[0].stack || failures[0]));
    process.exit(1);
  }
  console.log('browser test passed');
})();
