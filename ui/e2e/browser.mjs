// Hopline's UI in a real browser (Debian's Chromium, driven by playwright-core; no
// browser download). The Rust test `ui_browser` starts a collector with a known
// trace and logs, and tokens, and runs:
//   node browser.mjs <base-url> <trace-id> <screenshot-dir> <hydrated:0|1> <otlp-http-url> <query-token> <ingest-token>
// The browser signs in with the query token first, as a person would.
// Prints "N passed, N failed" and exits non-zero on a failure.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';

const [base, traceId, shots, hydrated, otlp, queryToken, ingestToken] = process.argv.slice(2);
mkdirSync(shots, { recursive: true });
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const browser = await chromium.launch({
  executablePath,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
const consoleErrors = [];
page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
page.on('pageerror', (e) => consoleErrors.push(String(e)));

let passed = 0, failed = 0;
async function check(name, body) {
  try {
    await body();
    passed++;
    console.log(`ok   ${name}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e.message}`);
  }
}
function expect(condition, message) { if (!condition) throw new Error(message); }
const settle = async () => { await page.waitForLoadState('networkidle'); };

await check('a page asks to sign in, and the query token signs in', async () => {
  await page.goto(`${base}/search?service=frontend&lookback=1h`);
  expect(new URL(page.url()).pathname === '/signin', `not sent to sign in: ${page.url()}`);
  await page.fill('input[name=token]', 'not-a-token-at-all-0000');
  await page.click('button[type=submit]');
  expect(await page.locator('.error').textContent() !== '', 'no error for a wrong token');
  // That answer was a deliberate 401, which Chromium logs as a failed load.
  const refused = consoleErrors.findIndex((e) => e.includes('status of 401'));
  expect(refused >= 0, 'the wrong token was not answered 401');
  consoleErrors.splice(refused, 1);
  await page.fill('input[name=token]', queryToken);
  await page.click('button[type=submit]');
  await page.waitForURL(/\/search\?service=frontend/);
  const cookies = await page.context().cookies();
  const cookie = cookies.find((c) => c.name === 'hopline_token');
  expect(cookie && cookie.httpOnly && cookie.sameSite === 'Strict', `cookie: ${JSON.stringify(cookie)}`);
  expect(await page.evaluate(() => document.cookie.includes('hopline_token')) === false, 'scripts can read the token');
});

await check('search finds the trace and plots it', async () => {
  await page.goto(`${base}/search?service=frontend&lookback=1h`);
  await settle();
  const links = await page.$$eval('a.trace-link', (as) => as.map((a) => a.getAttribute('href')));
  expect(links.includes(`/trace/${traceId}`), `no result for ${traceId}: ${links}`);
  expect(await page.locator('svg.scatter circle').count() >= 1, 'no dot in the scatter plot');
  expect((await page.textContent('.result')).includes('frontend: GET /checkout'), 'root service and operation missing');
  await page.screenshot({ path: `${shots}/search.png`, fullPage: true });
  await page.click(`a.trace-link[href="/trace/${traceId}"]`);
  await page.waitForURL(`**/trace/${traceId}`);
});

await check('an absolute time range finds the trace, and one before it does not', async () => {
  const micros = (ms) => `${ms}000`;
  const [start, end] = [micros(Date.now() - 10 * 60_000), micros(Date.now() + 60_000)];
  await page.goto(`${base}/search?service=frontend&lookback=custom&start=${start}&end=${end}`);
  await settle();
  expect(await page.locator(`a.trace-link[href="/trace/${traceId}"]`).count() === 1, 'the trace is missing from its range');
  expect((await page.inputValue('#from')) !== '', 'the range is not shown in the form');
  await page.fill('#from', '2020-01-01T00:00');
  await page.fill('#to', '2020-01-02T00:00');
  await page.selectOption('select[name="lookback"]', 'custom');
  await page.click('#find');
  await page.waitForURL('**from=2020-01-01**');
  await settle();
  expect(await page.locator('a.trace-link').count() === 0, 'traces found in 2020');
  expect((await page.textContent('section.search')).includes('No traces match'), 'no empty state');
});

await check('the trace view shows every span in order and nesting', async () => {
  await page.goto(`${base}/trace/${traceId}`);
  await settle();
  const rows = await page.$$eval('.waterfall .row', (rs) => rs.map((r) => `${r.querySelector('.svc').textContent}:${r.querySelector('.op').textContent}@${r.dataset.depth}`));
  const expected = ['frontend:GET /checkout@0', 'checkout:POST /orders@1', 'payments:charge card@2', 'checkout:INSERT orders@2'];
  expect(JSON.stringify(rows) === JSON.stringify(expected), `rows ${JSON.stringify(rows)}`);
  expect(await page.locator('.row.error').count() === 1, 'the failing span is not marked');
  expect(await page.locator('.row.critical').count() >= 2, 'no critical path');
  await page.screenshot({ path: `${shots}/trace.png`, fullPage: true });
});

await check('clicking a span shows its tags and its logs', async () => {
  await page.click('.row:has-text("charge card") a.span-link');
  await page.waitForSelector('#span-details');
  const details = await page.textContent('#span-details');
  expect(details.includes('payment.provider') && details.includes('acme-pay'), 'tags missing');
  expect(details.includes('payment declined by issuer'), 'the span\'s log line is missing');
  expect(details.includes('host.name'), 'process tags missing');
  expect(page.url().includes('span='), 'the selection is not in the URL');
  await page.screenshot({ path: `${shots}/span.png`, fullPage: true });
});

await check('the logs tab lists the trace\'s logs in time order', async () => {
  await page.click('#logs-tab');
  await page.waitForURL('**tab=logs**');
  const bodies = await page.$$eval('table.logs .body', (cells) => cells.map((c) => c.textContent));
  expect(bodies.length === 3, `expected 3 logs, got ${bodies.length}`);
  expect(bodies[0].includes('checkout started'), `first log: ${bodies[0]}`);
});

await check('log search finds a phrase and its link opens the trace', async () => {
  await page.goto(`${base}/logs?query=${encodeURIComponent('"declined by issuer"')}&lookback=1h`);
  await settle();
  expect((await page.locator('.log-line mark').count()) >= 1, 'the phrase is not highlighted');
  await page.screenshot({ path: `${shots}/logs.png`, fullPage: true });
  await page.click('.log-line a.trace-link');
  await page.waitForURL(`**/trace/${traceId}**`);
  await page.waitForSelector('#span-details');
});

await check('the service map shows the calls', async () => {
  await page.goto(`${base}/dependencies`);
  await settle();
  const edges = await page.$$eval('g.edge', (gs) => gs.map((g) => `${g.dataset.parent}->${g.dataset.child}`).sort());
  expect(JSON.stringify(edges) === JSON.stringify(['checkout->payments', 'frontend->checkout']), `edges ${edges}`);
  expect(await page.locator('g.edge.failing[data-child="payments"]').count() === 1, 'the failing call is not marked');
  expect((await page.textContent('g.edge.failing')).includes('1 call, 1 (100.0%) failed'), 'no error count on the failing edge');
  await page.screenshot({ path: `${shots}/service-map.png`, fullPage: true });
});

if (hydrated === '1') {
  await check('once hydrated, the keyboard moves through the waterfall', async () => {
    await page.goto(`${base}/trace/${traceId}`);
    await settle();
    await page.waitForTimeout(500);
    await page.keyboard.press('ArrowDown');
    await page.waitForURL('**span=**', { timeout: 5000 });
    await page.keyboard.press('ArrowDown');
    await page.waitForFunction(() => document.querySelectorAll('.row.selected').length === 1);
    const selected = await page.textContent('.row.selected .op');
    expect(selected === 'POST /orders', `selected ${selected}`);
  });
  await check('choosing a service refreshes the operations before searching', async () => {
    await page.goto(`${base}/search?service=frontend&lookback=1h`);
    await settle();
    await page.waitForTimeout(500);
    await page.selectOption('#service', 'payments');
    await page.waitForSelector('#operation option[value="charge card"]', { state: 'attached', timeout: 5000 });
    const options = await page.$$eval('#operation option', (os) => os.map((o) => o.value));
    expect(!options.includes('GET /checkout'), `frontend's operations still listed: ${options}`);
  });
  await check('live tail streams a new matching line', async () => {
    await page.goto(`${base}/logs?query=${encodeURIComponent('inventory')}&lookback=1h&live=1`);
    await settle();
    await page.waitForTimeout(1500);
    const now = `${Date.now()}000000`;
    const body = { resourceLogs: [{ resource: { attributes: [{ key: 'service.name', value: { stringValue: 'stock' } }] },
      scopeLogs: [{ logRecords: [{ timeUnixNano: now, severityNumber: 13, body: { stringValue: 'inventory low for SKU-7' } }] }] }] };
    const response = await fetch(`${otlp}/v1/logs`, { method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${ingestToken}` }, body: JSON.stringify(body) });
    expect(response.status === 200, `OTLP answered ${response.status}`);
    await page.waitForSelector('#live-lines >> text=inventory low for SKU-7', { timeout: 15000 });
  });
  await check('no errors in the browser console', async () => {
    expect(consoleErrors.length === 0, consoleErrors.join(' | '));
  });
}

await check('signing out ends the session', async () => {
  await page.goto(`${base}/search`);
  await page.click('form.signout button');
  await page.waitForURL(/\/signin/);
  await page.goto(`${base}/logs`);
  expect(new URL(page.url()).pathname === '/signin', `still signed in: ${page.url()}`);
});

await browser.close();
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
