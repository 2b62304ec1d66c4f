// Hopline's UI in a real browser (Debian's Chromium, driven by playwright-core; no
// browser download). The Rust test `ui_browser` starts a collector with a known
// trace and logs, and tokens, and runs:
//   node browser.mjs <base-url> <trace-id> <screenshot-dir> <hydrated:0|1> <otlp-http-url> <query-token> <ingest-token>
// The browser signs in with the query token first, as a person would.
// Prints "N passed, N failed" and exits non-zero on a failure.
import { chromium } from 'playwright-core';
import { mkdirSync, readFileSync } from 'node:fs';

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
  const result = await page.textContent(`.result:has(a[href="/trace/${traceId}"])`);
  expect(result.includes('frontend: GET /checkout'), 'root service and operation missing');
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
  expect(JSON.stringify(edges) === JSON.stringify(['checkout->payments', 'frontend->checkout', 'frontend->inventory']), `edges ${edges}`);
  expect(await page.locator('g.edge.failing[data-child="payments"]').count() === 1, 'the failing call is not marked');
  expect((await page.textContent('g.edge.failing')).includes('1 call, 1 (100.0%) failed'), 'no error count on the failing edge');
  await page.screenshot({ path: `${shots}/service-map.png`, fullPage: true });
});

// The trace ids the Rust test sent beside the main one.
const slowId = '51'.repeat(16), orphanId = '54'.repeat(16), fastIds = ['52'.repeat(16), '53'.repeat(16)];
const resultIds = async () => (await page.$$eval('a.trace-link', (as) => as.map((a) => a.getAttribute('href'))))
  .map((href) => href.replace('/trace/', ''));

await check('sorting orders every matching trace, and says how many matched', async () => {
  await page.goto(`${base}/search?service=frontend&lookback=1h&limit=2`);
  await settle();
  let ids = await resultIds();
  expect(JSON.stringify(ids) === JSON.stringify([traceId, orphanId]), `newest: ${ids}`);
  expect((await page.textContent('.sorts .matched')).trim() === '2 of 5 traces', await page.textContent('.sorts .matched'));
  await page.click('.sorts a:has-text("Longest first")');
  await page.waitForURL('**sort=longest**');
  await settle();
  // In the hydrated page the new results replace the old after the URL moved:
  // wait for them (a wrong order still fails below, after the wait).
  await page.waitForFunction((slow) => document.querySelector('a.trace-link')?.getAttribute('href') === `/trace/${slow}`,
    slowId, { timeout: 10000 }).catch(() => {});
  ids = await resultIds();
  // The slow trace is the oldest: a sort of the newest page could not find it.
  expect(JSON.stringify(ids) === JSON.stringify([slowId, traceId]), `longest: ${ids}`);
  await page.goto(`${base}/search?service=frontend&lookback=1h&limit=2&sort=shortest`);
  await settle();
  ids = await resultIds();
  expect(JSON.stringify(ids) === JSON.stringify(fastIds), `shortest: ${ids}`);
});

await check('the next page follows the order from where the last ended, and "Download all" has every trace', async () => {
  await page.goto(`${base}/search?service=frontend&lookback=1h&limit=2&sort=longest`);
  await settle();
  const seen = await resultIds();
  expect(JSON.stringify(seen) === JSON.stringify([slowId, traceId]), `first page: ${seen}`);
  expect(!(await page.$('#first-page')), 'the first page has no link to itself');
  for (const range of ['traces 3–4 of 5', 'traces 5–5 of 5']) {
    await page.click('#next-page');
    await page.waitForURL('**cursor=**');
    await settle();
    await page.waitForFunction((r) => document.querySelector('#trace-range')?.textContent === r, range, { timeout: 10000 })
      .catch(() => {});
    const shown = (await page.textContent('#trace-range')).trim();
    expect(shown === range, `range: ${shown}`);
    seen.push(...await resultIds());
  }
  expect(!(await page.$('#next-page')), 'the last page has no next');
  expect(!!(await page.$('#first-page')), 'a later page links back to the first');
  expect(new Set(seen).size === 5, `every trace once over three pages: ${seen}`);
  await page.screenshot({ path: `${shots}/search-pages.png`, fullPage: true });
  const href = await page.getAttribute('#download-ndjson', 'href');
  expect(href.startsWith('/api/traces/export?') && href.includes('sort=longest') && !href.includes('cursor='), href);
  const lines = await page.evaluate(async (url) => (await (await fetch(url)).text()).trim().split('\n'), href);
  expect(lines.length === 5, `${lines.length} lines`);
  const first = JSON.parse(lines[0]).resourceSpans[0].scopeSpans[0].spans[0].traceId;
  expect(first === slowId, `the download is in the page's order: ${first}`);
});

await check('"Analyse these traces" compares the slowest with the fastest, path by path, with example traces', async () => {
  await page.goto(`${base}/search?service=frontend&lookback=1h`);
  await settle();
  await page.click('#analyse-link');
  // The analysis is of the window the search was pinned to.
  await page.waitForURL(/\/analyse\?service=frontend&lookback=1h&end=\d+$/);
  await settle();
  await page.waitForSelector('ol.findings li');
  const first = (await page.textContent('ol.findings li')).trim();
  expect(first === 'The slowest 5% spend 600 ms more in inventory GET /stock than the fastest 50%, '
    + 'where it appears once per trace instead of none', first);
  expect((await page.textContent('ol.findings li code')) === 'GET /stock', 'the operation is set as code');
  const groups = await page.$$eval('.analysis .group h2', (hs) => hs.map((h) => h.textContent.trim()));
  expect(JSON.stringify(groups) === JSON.stringify(['A: the fastest 50%', 'B: the slowest 5%']), `groups: ${groups}`);
  const top = (await page.textContent('table.paths tbody tr:first-child td.path .op')).trim();
  expect(top === 'inventory: GET /stock', `first row: ${top}`);
  await page.screenshot({ path: `${shots}/analysis.png`, fullPage: true });
  // Another split, from the page's own form: the slowest 40% are two traces.
  await page.fill('input[name=slowest]', '40');
  await page.click('#analyse');
  await page.waitForURL('**slowest=40**');
  await settle();
  await page.waitForFunction(() => document.querySelector('.analysis .group.b h2')?.textContent.includes('40%'),
    null, { timeout: 10000 }).catch(() => {});
  const slowest = (await page.textContent('.analysis .group.b')).trim();
  expect(slowest.startsWith('B: the slowest 40%2 traces'), `B: ${slowest}`);
  // A row's example of B opens the slow trace.
  await page.click('table.paths tbody tr:first-child td.examples a.example');
  await page.waitForURL(`**/trace/${slowId}`);
});

await check('the services page is the first page: requests, errors and p95 per service; a bar opens its traces', async () => {
  await page.goto(`${base}/`);
  await settle();
  const rows = await page.$$eval('table.health tbody tr', (trs) => trs.map((tr) => [
    tr.dataset.service, ...[...tr.querySelectorAll('td.figure')].map((td) => td.textContent.trim())]));
  const byService = Object.fromEntries(rows.map(([service, ...figures]) => [service, figures]));
  // Server spans only: payments has none (its one span is a client call).
  expect(JSON.stringify(Object.keys(byService).sort()) === JSON.stringify(['checkout', 'frontend', 'inventory']), `rows ${JSON.stringify(rows)}`);
  expect(byService.frontend[1] === '0.0%', `frontend errors ${byService.frontend}`);
  expect(byService.inventory[2] === '600ms' || byService.inventory[2] === '600 ms', `inventory p95 ${byService.inventory}`);
  expect(await page.locator('tr[data-service="frontend"] svg.bars.rate a').count() >= 1, 'no bar for the frontend\'s requests');
  await page.screenshot({ path: `${shots}/services.png`, fullPage: true });
  // The slow trace's bucket on the inventory's latency chart: its traces, slowest first.
  await page.click('tr[data-service="inventory"] svg.bars.latency a');
  await page.waitForURL(/\/search\?service=inventory.*sort=longest/);
  await settle();
  expect(JSON.stringify(await resultIds()) === JSON.stringify([slowId]), `inventory bucket: ${await resultIds()}`);
  await page.goto(`${base}/services?lookback=1h`);
  await settle();
  await page.click('tr[data-service="frontend"] th a');
  await page.waitForURL(/\/services\/frontend\?lookback=1h$/);
  await settle();
});

await check('a service\'s page charts it and lists its operations', async () => {
  await page.goto(`${base}/services/frontend?lookback=1h`);
  await settle();
  const captions = await page.$$eval('.charts figcaption', (fs) => fs.map((f) => f.textContent.trim()));
  expect(captions.length === 3 && captions[0].startsWith('requests') && captions[1] === 'errors 0.0%', `captions ${captions}`);
  expect(await page.locator('svg.quantiles polyline').count() === 3, 'no p50/p95/p99 lines');
  const operations = (await page.$$eval('table.health tbody tr', (trs) => trs.map((tr) => tr.dataset.operation))).sort();
  expect(JSON.stringify(operations) === JSON.stringify(['GET /checkout', 'GET /fast', 'GET /orphan', 'GET /slow']), `operations ${operations}`);
  await page.screenshot({ path: `${shots}/service.png`, fullPage: true });
  await page.click('tr[data-operation="GET /fast"] th a');
  await page.waitForURL(/\/search\?service=frontend&operation=GET%20%2Ffast/);
  await settle();
  // Hydrated, the results come after the URL moved: wait for them (wrong ones
  // still fail below).
  await page.waitForFunction((want) => JSON.stringify([...document.querySelectorAll('a.trace-link')]
    .map((a) => a.getAttribute('href').replace('/trace/', '')).sort()) === want,
  JSON.stringify(fastIds.slice().sort()), { timeout: 10000 }).catch(() => {});
  const fast = (await resultIds()).sort();
  expect(JSON.stringify(fast) === JSON.stringify(fastIds.slice().sort()), `fast: ${fast}`);
  const missing = await page.goto(`${base}/services?lookback=soon`);
  expect(missing.status() === 400, `a bad window answered ${missing.status()}`);
});

await check('search across all services finds every failing trace', async () => {
  await page.goto(`${base}/search?tags=${encodeURIComponent('error=true')}&lookback=1h`);
  await settle();
  const ids = (await resultIds()).sort();
  expect(JSON.stringify(ids) === JSON.stringify([slowId, traceId].sort()), `failing: ${ids}`);
  expect(await page.$eval('#service', (s) => s.value) === '', 'a service was chosen');
});

await check('services of one trace never share a colour, and none is red', async () => {
  await page.goto(`${base}/trace/${traceId}`);
  await settle();
  const colours = await page.$$eval('.waterfall .row', (rows) => Object.fromEntries(rows.map((r) => [
    r.querySelector('.svc').textContent, getComputedStyle(r.querySelector('.swatch')).backgroundColor])));
  const distinct = new Set(Object.values(colours));
  expect(Object.keys(colours).length === 3 && distinct.size === 3, `colours ${JSON.stringify(colours)}`);
  for (const colour of distinct) {
    const [r, g, b] = colour.match(/\d+/g).map(Number);
    expect(!(r > 180 && g < 110 && b < 110), `${colour} reads as an error`);
  }
  // An error is marked by more than colour.
  expect(await page.locator('.row.error .error-mark').count() === 1, 'the failing span has no error mark');
});

await check('error rows are laid out like the others', async () => {
  const layout = await page.$$eval('.waterfall .row', (rows) => rows.map((r) => {
    const style = getComputedStyle(r);
    return { error: r.classList.contains('error'), depth: r.dataset.depth, padding: style.paddingLeft + style.paddingTop,
      indent: getComputedStyle(r.querySelector('.name-col')).paddingLeft, height: r.getBoundingClientRect().height };
  }));
  const failing = layout.find((r) => r.error);
  const sibling = layout.find((r) => !r.error && r.depth === failing.depth);
  expect(failing.padding === sibling.padding && failing.indent === sibling.indent && failing.height === sibling.height,
    `error row ${JSON.stringify(failing)} vs ${JSON.stringify(sibling)}`);
});

await check('the critical path marks segments, not whole bars', async () => {
  const share = async (op) => page.$eval(`.row:has(.op:text-is("${op}"))`, (row) => {
    const lane = row.querySelector('.bar-col').getBoundingClientRect().width;
    const crit = [...row.querySelectorAll('.crit')].reduce((w, c) => w + c.getBoundingClientRect().width, 0);
    return { crit: crit / lane, bar: row.querySelector('.bar').getBoundingClientRect().width / lane };
  });
  const root = await share('GET /checkout');
  const charge = await share('charge card');
  // The root waits on its children for all but 20 of its 120 ms.
  expect(root.bar > 0.95 && root.crit < 0.25, `root ${JSON.stringify(root)}`);
  expect(Math.abs(charge.crit - 0.5) < 0.02, `charge card ${JSON.stringify(charge)}`);
});

await check('spans whose parent is missing are pointed out', async () => {
  await page.goto(`${base}/search?service=frontend&lookback=1h`);
  await settle();
  const text = await page.textContent(`.result:has(a[href="/trace/${orphanId}"])`);
  expect(text.includes('1 span has a parent that is not in this trace'), text);
  await page.goto(`${base}/trace/${orphanId}`);
  await settle();
  expect((await page.textContent('.notice.orphans')).includes('1 span has a parent that is not in this trace'), 'no notice on the trace');
});

await check('a trace id box on every page goes to the trace', async () => {
  await page.goto(`${base}/logs`);
  await settle();
  await page.fill('#trace-jump', traceId);
  await page.press('#trace-jump', 'Enter');
  await page.waitForURL(`**/trace/${traceId}`);
  await page.goto(`${base}/search?traceID=${slowId}`);
  await page.waitForURL(`**/trace/${slowId}`);
  expect((await page.textContent('h1')).includes('GET /slow'), 'not the slow trace');
});

await check('logs honour start and end; lookbacks that are no preset stay', async () => {
  const day = Date.parse('2020-01-01T00:00:00Z') * 1000;
  await page.goto(`${base}/logs?query=declined&start=${day}&end=${day + 86_400_000_000}`);
  await settle();
  expect((await page.textContent('section.logs-page')).includes('No log lines match'), 'lines found in 2020');
  expect(await page.$eval('select[name=lookback]', (s) => s.value) === 'custom', 'the range is not shown as custom');
  await page.goto(`${base}/logs?query=declined&start=${(Date.now() - 600_000) * 1000}&end=${(Date.now() + 60_000) * 1000}`);
  await settle();
  expect(await page.locator('.log-line').count() === 1, 'the line is missing from its range');
  await page.goto(`${base}/dependencies?lookback=30m`);
  await settle();
  expect(await page.$eval('select[name=lookback]', (s) => s.value) === '30m', 'a 30m window shows as another');
  await page.goto(`${base}/logs?lookback=30m`);
  await settle();
  expect(await page.$eval('select[name=lookback]', (s) => s.value) === '30m', 'a 30m lookback shows as another');
});

await check('unknown traces and pages are 404s, bad parameters 400s, in the site\'s frame', async () => {
  const cases = [
    ['/trace/0123456789abcdef0123456789abcdef', 404, 'is not here'],
    ['/no/such/page', 404, 'no page at this address'],
    ['/dependencies?lookback=bogus', 400, "'bogus' is not a time window"],
    ['/search?service=frontend&minDuration=soon', 400, "invalid minDuration 'soon'"],
  ];
  for (const [path, status, message] of cases) {
    const response = await page.goto(`${base}${path}`);
    await settle();
    expect(response.status() === status, `${path}: HTTP ${response.status()}`);
    const main = await page.textContent('main');
    expect(main.includes(message), `${path}: ${main}`);
    expect(!main.includes('server function') && !main.includes('{"'), `${path}: ${main}`);
    expect(await page.locator('header.top #trace-jump').count() === 1, `${path}: not in the site's frame`);
  }
  // Chromium logs each of those answers as a failed load.
  for (let i = consoleErrors.length - 1; i >= 0; i--) {
    if (/status of (404|400)/.test(consoleErrors[i])) consoleErrors.splice(i, 1);
  }
});

await check('log lines show their attributes inline, counted in the singular', async () => {
  await page.goto(`${base}/logs?query=declined&lookback=1h`);
  await settle();
  const chips = await page.$$eval('.log-line .chip', (cs) => cs.map((c) => c.textContent));
  expect(JSON.stringify(chips) === JSON.stringify(['component=test']), `chips ${chips}`);
  expect((await page.textContent('.log-line details.attributes summary')).trim() === '1 attribute', 'not "1 attribute"');
  await page.goto(`${base}/trace/${traceId}?tab=logs`);
  await settle();
  expect(await page.locator('table.logs .chip:has-text("component=test")').count() === 3, 'the trace\'s logs show no attributes');
  await page.goto(`${base}/trace/${traceId}?span=${'03'.repeat(8)}`);
  await settle();
  expect(await page.locator('#span-details .chip:has-text("component=test")').count() === 1, 'logs in the span show no attributes');
});

await check('a trace downloads as OTLP JSON and as Jaeger JSON', async () => {
  await page.goto(`${base}/trace/${traceId}`);
  await settle();
  for (const [link, check] of [
    ['#download-otlp', (json) => json.result.resourceSpans.flatMap((r) => r.scopeSpans).flatMap((s) => s.spans).length === 4],
    ['#download-jaeger', (json) => json.data[0].traceID === traceId && json.data[0].spans.length === 4],
  ]) {
    const [download] = await Promise.all([page.waitForEvent('download'), page.click(link)]);
    expect(download.suggestedFilename().startsWith(`trace-${traceId}`), download.suggestedFilename());
    const json = JSON.parse(readFileSync(await download.path(), 'utf8'));
    expect(check(json), `${link}: ${JSON.stringify(json).slice(0, 200)}`);
  }
});

await check('the flame graph and the statistics show the trace', async () => {
  await page.goto(`${base}/trace/${traceId}?tab=flame`);
  await settle();
  expect(await page.locator('svg.flame .frame').count() === 4, 'not 4 frames');
  expect(await page.locator('svg.flame .frame.error').count() === 1, 'the error is not marked');
  await page.click(`svg.flame .frame[data-span="${'03'.repeat(8)}"]`);
  await page.waitForURL(`**span=${'03'.repeat(8)}**`);
  await page.waitForSelector('#span-details');
  await page.goto(`${base}/trace/${traceId}?tab=stats`);
  await settle();
  const rows = await page.$$eval('table.stats tbody tr', (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent)));
  expect(rows.length === 4, `rows ${JSON.stringify(rows)}`);
  // POST /orders lasts 100 ms; its children cover 60 + 20 of it.
  const orders = rows.find((r) => r[1] === 'POST /orders');
  expect(orders[3] === '100ms' && orders[4] === '20ms', `POST /orders ${orders}`);
  expect(rows.find((r) => r[1] === 'charge card')[8].includes('1'), 'no error count');
});

await check('two results compare by ticking them; a missing one is named', async () => {
  await page.goto(`${base}/search?service=frontend&lookback=1h`);
  await settle();
  await page.check(`input.pick[value="${traceId}"]`);
  await page.check(`input.pick[value="${slowId}"]`);
  await page.click('#compare');
  await page.waitForURL(/\/trace\/[0-9a-f]+\.\.\.[0-9a-f]+/);
  await settle();
  const paths = await page.$$eval('table.diff tr', (trs) => trs.slice(1).map((tr) => tr.firstElementChild.textContent));
  // Tree order: each trace's paths under their parents, not sorted by name.
  expect(paths[0].endsWith('GET /checkout') || paths[0].endsWith('GET /slow'), `first ${paths[0]}`);
  expect(paths.length === 7, `paths ${JSON.stringify(paths)}`);
  expect(await page.locator('table.diff tr.errors-differ').count() >= 1, 'error differences not shown');
  const missing = '0123456789abcdef0123456789abcdef';
  const response = await page.goto(`${base}/trace/${traceId}...${missing}`);
  expect(response.status() === 404, `HTTP ${response.status()}`);
  expect((await page.textContent('main')).includes(`B (${missing})`), 'which trace is missing is not said');
  consoleErrors.splice(0, consoleErrors.length, ...consoleErrors.filter((e) => !/status of 404/.test(e)));
});

await check('the scatter plot has labelled axes, a log scale, and one tab stop', async () => {
  await page.goto(`${base}/search?service=frontend&lookback=1h`);
  await settle();
  const xticks = await page.$$eval('svg.scatter .xtick', (ts) => ts.map((t) => t.textContent));
  expect(xticks.length === 5 && xticks.every((t) => /^\d\d:\d\d:\d\d$/.test(t)), `time labels ${xticks}`);
  const yticks = await page.$$eval('svg.scatter .ytick', (ts) => ts.map((t) => t.textContent));
  expect(yticks.includes('10ms') && yticks.includes('100ms'), `duration labels ${yticks}`);
  // 2 ms to 800 ms: on a log scale the 120 ms trace sits in the upper half.
  const y = (id) => page.$eval(`svg.scatter a[data-trace="${id}"] circle`, (c) => Number(c.getAttribute('cy')));
  const [main, slow, fast] = [await y(traceId), await y(slowId), await y(fastIds[0])];
  expect(main < (slow + fast) / 2, `120 ms at ${main}, between ${slow} and ${fast}`);
  // Labels sit outside the plotting area, so no dot hides under one.
  const overlaps = await page.$$eval('svg.scatter', ([svg]) => {
    const boxes = (sel) => [...svg.querySelectorAll(sel)].map((e) => e.getBoundingClientRect());
    const hit = (a, b) => a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
    return boxes('.label').filter((l) => boxes('circle').some((c) => hit(l, c))).length;
  });
  expect(overlaps === 0, `${overlaps} labels over dots`);
  const stops = await page.$$eval('svg.scatter, svg.scatter *', (es) => es.filter((e) => e.tabIndex >= 0).length);
  expect(stops === 1, `${stops} tab stops in the plot`);
});

await check('no serious accessibility violations on any page (axe-core)', async () => {
  // axe runs as a script in the page: a context of its own that bypasses the
  // pages' Content-Security-Policy, signed in with the same cookie.
  const context = await browser.newContext({ bypassCSP: true, viewport: { width: 1400, height: 900 } });
  await context.addCookies(await page.context().cookies());
  const audit = await context.newPage();
  const axe = readFileSync(new URL('./node_modules/axe-core/axe.min.js', import.meta.url), 'utf8');
  const pages = [
    '/search?service=frontend&lookback=1h', `/trace/${traceId}`, `/trace/${traceId}?span=${'03'.repeat(8)}`,
    `/trace/${traceId}?tab=flame`, `/trace/${traceId}?tab=stats`, `/trace/${traceId}?tab=logs`,
    '/logs?query=declined&lookback=1h', '/dependencies', `/trace/${traceId}...${slowId}`, '/no/such/page',
    '/', '/services/frontend', '/analyse?service=frontend&lookback=1h', '/logs?view=patterns&lookback=1h',
    '/logs/context?service=checkout&time=1',
  ];
  const found = [];
  for (const theme of ['light', 'dark']) {
    await audit.emulateMedia({ colorScheme: theme });
    for (const path of pages) {
      await audit.goto(`${base}${path}`);
      await audit.waitForLoadState('networkidle');
      await audit.addScriptTag({ content: axe });
      const violations = await audit.evaluate(async () => (await window.axe.run(document, {
        resultTypes: ['violations'],
      })).violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
        .map((v) => `${v.id} (${v.nodes.length}): ${v.nodes.slice(0, 2).map((n) => n.target.join(' ')).join(', ')}`));
      for (const v of violations) found.push(`${theme} ${path}: ${v}`);
    }
  }
  await context.close();
  expect(found.length === 0, found.join(' | '));
});

await check('a dark theme follows the system, and the switch overrides it', async () => {
  const background = () => page.evaluate(() => {
    const [r, g, b] = getComputedStyle(document.body).backgroundColor.match(/\d+/g).map(Number);
    return (r + g + b) / 3;
  });
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.goto(`${base}/trace/${traceId}`);
  await settle();
  expect(await background() < 60, 'the system\'s dark setting is not followed');
  await page.click('#theme-light');
  await page.waitForURL(`**/trace/${traceId}`);
  await settle();
  expect(await page.$eval('html', (h) => h.dataset.theme) === 'light' && await background() > 200, 'light was not chosen');
  await page.screenshot({ path: `${shots}/trace-light.png`, fullPage: true });
  await page.click('#theme-dark');
  await page.waitForURL(`**/trace/${traceId}`);
  await settle();
  expect(await page.$eval('html', (h) => h.dataset.theme) === 'dark' && await background() < 60, 'dark was not chosen');
  await page.screenshot({ path: `${shots}/trace-dark.png`, fullPage: true });
  await page.goto(`${base}/search?service=frontend&lookback=1h`);
  await settle();
  await page.screenshot({ path: `${shots}/search-dark.png`, fullPage: true });
  await page.emulateMedia({ colorScheme: 'light' });
  await page.click('#theme-system');
  await page.waitForURL('**/search?service=frontend**');
  await settle();
  expect(await page.$eval('html', (h) => h.dataset.theme === undefined) && await background() > 200, 'back to the system\'s setting failed');
  // The way back is a path on this site only.
  await page.goto(`${base}/theme?set=light&back=${encodeURIComponent('//example.com/x')}`);
  expect(new URL(page.url()).pathname === '/search' && new URL(page.url()).host === new URL(base).host, page.url());
  await page.goto(`${base}/theme?set=system&back=/search`);
});

await check('collapse toggles say whether they are open', async () => {
  const orders = '02'.repeat(8);
  await page.goto(`${base}/trace/${traceId}`);
  await settle();
  expect(await page.$eval(`.row[data-span="${orders}"] .toggle`, (t) => t.getAttribute('aria-expanded')) === 'true', 'no aria-expanded');
  await page.goto(`${base}/trace/${traceId}?collapsed=${orders}`);
  await settle();
  expect(await page.$eval(`.row[data-span="${orders}"] .toggle`, (t) => t.getAttribute('aria-expanded')) === 'false', 'collapsed is not false');
  // The waterfall shows where the focus is.
  await page.focus(`.row[data-span="${orders}"] .span-link`);
  expect(await page.$eval(':focus', (e) => getComputedStyle(e).outlineStyle) !== 'none', 'no visible focus');
});

await check('duration labels neither overlap their bar nor run off the lane', async () => {
  for (const id of [traceId, slowId]) {
    await page.goto(`${base}/trace/${id}`);
    await settle();
    const bad = await page.$$eval('.waterfall .row', (rows) => rows.flatMap((row) => {
      const lane = row.querySelector('.bar-col').getBoundingClientRect();
      const bar = row.querySelector('.bar').getBoundingClientRect();
      const labelElement = row.querySelector('.bar-label');
      const label = labelElement.getBoundingClientRect();
      const within = label.left >= lane.left - 0.5 && label.right <= lane.right + 0.5;
      const inside = labelElement.classList.contains('inside');
      const clear = inside ? label.left >= bar.left && label.right <= bar.right : label.right <= bar.left + 0.5 || label.left >= bar.right - 0.5;
      return within && clear ? [] : [`${row.querySelector('.op').textContent}: ${JSON.stringify({ label, bar, lane, inside })}`];
    }));
    expect(bad.length === 0, bad.join(' | '));
  }
  const title = await page.$eval('.row .span-link', (a) => a.getAttribute('title'));
  expect(title === 'frontend: GET /slow', `no full name on hover: ${title}`);
});

await check('narrow windows: nothing runs off the page, the waterfall scrolls inside', async () => {
  const paths = ['/search?service=frontend&lookback=1h', `/trace/${traceId}`, `/trace/${traceId}?tab=stats`,
    '/logs?query=declined&lookback=1h', '/dependencies', `/trace/${traceId}...${slowId}`];
  for (const width of [900, 400]) {
    await page.setViewportSize({ width, height: 800 });
    for (const path of paths) {
      await page.goto(`${base}${path}`);
      await settle();
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
      const wide = overflow <= 1 ? [] : await page.evaluate(() => [...document.querySelectorAll('body *')]
        .filter((e) => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1)
        .filter((e) => !e.closest('.waterfall, table'))
        .slice(0, 4).map((e) => `${e.tagName.toLowerCase()}.${e.className}`));
      expect(overflow <= 1, `${width}px ${path}: the page is ${overflow}px too wide (${wide.join(', ')})`);
    }
    if (width === 400) {
      await page.goto(`${base}/trace/${traceId}`);
      await settle();
      const scrolls = await page.$eval('.waterfall', (w) => w.scrollWidth > w.clientWidth && getComputedStyle(w).overflowX === 'auto');
      expect(scrolls, 'the waterfall does not scroll sideways');
      await page.screenshot({ path: `${shots}/trace-400.png`, fullPage: true });
    }
  }
  await page.setViewportSize({ width: 1400, height: 900 });
});

await check('log pages go older and newer, with the total', async () => {
  await page.goto(`${base}/logs?traceID=${traceId}&lookback=1h&limit=1`);
  await settle();
  const body = async () => (await page.textContent('.log-line .body')).trim();
  const seen = [await body()];
  expect((await page.textContent('#log-range')).trim() === 'lines 1–1 of 3', await page.textContent('#log-range'));
  expect(await page.locator('#newer').count() === 0, 'a newer page before the first');
  for (const range of ['lines 2–2 of 3', 'lines 3–3 of 3']) {
    await page.click('#older');
    await page.waitForURL('**offset=**');
    await page.waitForFunction((r) => document.querySelector('#log-range')?.textContent.trim() === r, range);
    seen.push(await body());
  }
  expect(await page.locator('#older').count() === 0, 'an older page after the last');
  expect(JSON.stringify(seen) === JSON.stringify(['order stored', 'payment declined by issuer', 'checkout started']), `pages ${seen}`);
  await page.click('#newer');
  await page.waitForFunction(() => document.querySelector('#log-range')?.textContent.trim() === 'lines 2–2 of 3');
});

await check('the log volume stacks every matching line by level, and a bar zooms to its lines', async () => {
  await page.goto(`${base}/logs?lookback=1h`);
  await settle();
  const count = (await page.textContent('#log-count')).trim();
  const caption = (await page.textContent('#log-volume figcaption')).trim();
  expect(caption.startsWith(`${parseInt(count, 10)} lines per 1m`), `${caption} / ${count}`);
  expect(await page.$('#log-volume rect.vol-error') !== null, 'no error segment');
  const label = await page.getAttribute('#log-volume a', 'aria-label');
  const inBar = label.match(/: (\d+) lines? \(/);
  expect(inBar, `bar label: ${label}`);
  await page.click('#log-volume a');
  await page.waitForURL(/\/logs\?start=\d+&end=\d+/);
  await settle();
  await page.waitForFunction((n) => document.querySelector('#log-count')?.textContent.startsWith(`${n} matching line`),
    inBar[1], { timeout: 10000 }).catch(() => {});
  const zoomed = (await page.textContent('#log-count')).trim();
  expect(zoomed.startsWith(`${inBar[1]} matching line`), `zoomed: ${zoomed}, bar: ${label}`);
});

await check('the patterns of the lines count each template, and a pattern opens its lines', async () => {
  await page.goto(`${base}/logs?lookback=1h`);
  await settle();
  await page.click('#view-patterns');
  await page.waitForURL('**view=patterns**');
  await settle();
  await page.waitForSelector('#patterns tr.pattern');
  const summary = (await page.textContent('#pattern-count')).trim();
  const rows = await page.$$eval('#patterns tr.pattern', (rows) => rows.map((row) => ({
    count: parseInt(row.cells[0].textContent.replace(/,/g, ''), 10),
    template: row.querySelector('a.template').textContent,
    sample: row.querySelector('.sample .body')?.textContent,
  })));
  const lines = rows.reduce((sum, row) => sum + row.count, 0);
  expect(summary.startsWith(`${rows.length} pattern`) && summary.includes(` in ${lines} line`), `${summary} / ${JSON.stringify(rows)}`);
  expect(rows.every((row, i) => i === 0 || rows[i - 1].count >= row.count), `most frequent first: ${JSON.stringify(rows)}`);
  const declined = rows.find((row) => row.template === 'payment declined by issuer');
  expect(declined && declined.sample === 'payment declined by issuer', `patterns: ${JSON.stringify(rows)}`);
  await page.screenshot({ path: `${shots}/log-patterns.png`, fullPage: true });
  await page.locator('#patterns a.template', { hasText: 'payment declined by issuer' }).click();
  await page.waitForURL(/query=pattern%3A[0-9a-f]{16}/);
  await settle();
  await page.waitForFunction((n) => document.querySelector('#log-count')?.textContent.startsWith(`${n} matching line`),
    declined.count, { timeout: 10000 }).catch(() => {});
  const count = (await page.textContent('#log-count')).trim();
  expect(count.startsWith(`${declined.count} matching line`), `${count}, pattern of ${declined.count}`);
  const bodies = await page.$$eval('.log-line .body', (cells) => cells.map((c) => c.textContent.trim()));
  expect(bodies.length > 0 && bodies.every((b) => b === 'payment declined by issuer'), `lines: ${bodies}`);
});

await check('every matching line downloads as CSV and NDJSON', async () => {
  await page.goto(`${base}/logs?traceID=${traceId}&lookback=1h&limit=1`);
  await settle();
  const fetched = {};
  for (const format of ['csv', 'ndjson']) {
    const [download] = await Promise.all([page.waitForEvent('download'), page.click(`#download-${format}`)]);
    expect(download.suggestedFilename() === `hopline-logs.${format}`, `file name ${download.suggestedFilename()}`);
    fetched[format] = readFileSync(await download.path(), 'utf8');
  }
  const rows = fetched.csv.split('\r\n').filter((row) => row !== '');
  expect(rows.length === 4 && rows[0].startsWith('time,timeUnixNano,severity,service,body'), `CSV ${fetched.csv}`);
  expect(rows[2].includes('payment declined by issuer'), `CSV rows ${rows}`);
  const lines = fetched.ndjson.trim().split('\n').map((line) => JSON.parse(line).body);
  expect(JSON.stringify(lines) === JSON.stringify(['order stored', 'payment declined by issuer', 'checkout started']), `NDJSON ${lines}`);
});

await check('a line opens its context: the lines of its service just before and after it, the line marked', async () => {
  await page.goto(`${base}/logs?query=stored&lookback=1h`);
  await settle();
  await page.click('.log-line .context-link');
  await page.waitForURL('**/logs/context?service=checkout**');
  await settle();
  await page.waitForSelector('#context-at .log-line');
  const bodies = async (list) => page.$$eval(`#${list} .log-line .body`, (bs) => bs.map((b) => b.textContent.trim()));
  const at = await bodies('context-at');
  expect(JSON.stringify(at) === JSON.stringify(['order stored']), `at: ${at}`);
  const before = await bodies('context-before');
  expect(JSON.stringify(before) === JSON.stringify(['checkout started']), `before: ${before}`);
  const after = await bodies('context-after');
  expect(after.length === 0, `after: ${after}`);
  expect(await page.title() === 'checkout · Log context', await page.title());
  expect((await page.textContent('#context-count')).trim() === '1 line before, 0 lines after', await page.textContent('#context-count'));
  // The payments line is another service's: not in checkout's context.
  expect(!(await page.textContent('.context-page')).includes('declined'), 'only its own service');
  await page.screenshot({ path: `${shots}/log-context.png`, fullPage: true });
});

await check('spans are found by text, n of m, Enter to the next', async () => {
  await page.goto(`${base}/trace/${traceId}`);
  await settle();
  await page.fill('#find', 'checkout');
  await page.press('#find', 'Enter');
  await page.waitForURL('**find=checkout**');
  await settle();
  // GET /checkout (operation), POST /orders and INSERT orders (service checkout).
  expect(await page.locator('.waterfall .row.match').count() === 3, 'not 3 matches');
  expect((await page.textContent('#find-count')).trim() === '1 of 3', await page.textContent('#find-count'));
  expect((await page.textContent('.row.selected .op')) === 'GET /checkout', 'the first match is not selected');
  await page.press('#find', 'Enter');
  await page.waitForFunction(() => document.querySelector('#find-count')?.textContent.trim() === '2 of 3');
  expect((await page.textContent('.row.selected .op')) === 'POST /orders', 'Enter did not go to the next');
  // Tag values count too.
  await page.goto(`${base}/trace/${traceId}?find=acme`);
  await settle();
  expect((await page.textContent('.row.selected .op')) === 'charge card', 'a tag value is not found');
  expect((await page.textContent('#find-count')).trim() === '1 of 1', await page.textContent('#find-count'));
});

await check('the mini-map zooms the waterfall into a time range', async () => {
  await page.goto(`${base}/trace/${traceId}?view=0-50`);
  await settle();
  // INSERT orders runs from 75 to 95 ms of 120: outside the first half.
  expect(await page.locator('.row:has(.op:text-is("INSERT orders")) .bar').count() === 0, 'a bar outside the window is drawn');
  const ticks = await page.$$eval('.waterfall .ruler .tick', (ts) => ts.map((t) => t.textContent));
  expect(ticks[ticks.length - 1] === '60ms', `ticks ${ticks}`);
  const root = await page.$eval('.row:has(.op:text-is("GET /checkout"))', (r) =>
    r.querySelector('.bar').getBoundingClientRect().width / r.querySelector('.bar-col').getBoundingClientRect().width);
  expect(root > 0.99, `the root fills ${root} of the window`);
  expect(await page.locator('.minimap .window').count() === 1, 'the mini-map does not frame the window');
  await page.click('#zoom-reset');
  await page.waitForURL((url) => !url.search.includes('view='));
  await page.goto(`${base}/trace/${traceId}?span=${'04'.repeat(8)}`);
  await settle();
  await page.click('#zoom-span');
  await page.waitForURL('**view=**');
  await settle();
  expect(await page.locator('.row:has(.op:text-is("charge card")) .bar').count() === 0, 'zoomed to the span, another is still drawn');
});

await check('every page has a title of its own', async () => {
  const titles = [
    [`/trace/${traceId}`, `Trace ${traceId.slice(0, 7)}: frontend GET /checkout`],
    ['/logs?query=declined', 'Logs: declined'],
    ['/search?service=frontend', 'Search: frontend'],
    ['/dependencies', 'Service map'],
    ['/', 'Services'],
    ['/services/frontend', 'frontend · Services'],
    ['/analyse?service=frontend&operation=GET%20%2Fslow', 'Analysis: frontend GET /slow'],
  ];
  for (const [path, title] of titles) {
    await page.goto(`${base}${path}`);
    await settle();
    expect(await page.title() === title, `${path}: "${await page.title()}"`);
  }
});

await check('a selected span inside a collapsed subtree is shown', async () => {
  const orders = '02'.repeat(8), charge = '03'.repeat(8);
  await page.goto(`${base}/trace/${traceId}?collapsed=${orders}&span=${charge}`);
  await settle();
  expect(await page.locator(`.row[data-span="${charge}"].selected`).count() === 1, 'the selected span is hidden');
  await page.goto(`${base}/trace/${traceId}?collapsed=${orders}`);
  await settle();
  expect(await page.locator(`.row[data-span="${charge}"]`).count() === 0, 'collapsing hides nothing');
});

await check('without a script, the live tail says it does not stream', async () => {
  if (hydrated === '1') {
    await page.goto(`${base}/logs?query=inventory&lookback=1h&live=1`);
    await settle();
    await page.waitForTimeout(500);
    expect(await page.locator('#live-needs-js').count() === 0, 'the hydrated page says it cannot stream');
    return;
  }
  await page.goto(`${base}/logs?query=declined&lookback=1h&live=1`);
  await settle();
  expect(await page.locator('#live-needs-js').count() === 1, 'no word that nothing streams');
  expect(!(await page.textContent('#log-count')).includes('live'), 'the count claims to be live');
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
  await check('dragging across the log volume zooms to the range dragged over', async () => {
    await page.goto(`${base}/logs?lookback=1h`);
    await settle();
    await page.waitForTimeout(500);
    const box = await (await page.$('#log-volume svg')).boundingBox();
    const y = box.y + box.height / 3;
    // From the middle to the right end, where the lines are.
    await page.mouse.move(box.x + box.width * 0.5, y);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * 0.75, y, { steps: 5 });
    await page.mouse.move(box.x + box.width - 1, y, { steps: 5 });
    await page.mouse.up();
    await page.waitForURL(/\/logs\?.*start=\d+&end=\d+/, { timeout: 5000 });
    const url = new URL(page.url());
    const span = Number(url.searchParams.get('end')) - Number(url.searchParams.get('start'));
    // Half of the chart, which covers about the hour (µs).
    expect(span > 0.4 * 3600e6 && span < 0.6 * 3600e6, `zoomed to ${span} µs`);
    await settle();
    const caption = (await page.textContent('#log-volume figcaption')).trim();
    expect(caption.includes('dragging across zooms in'), caption);
  });
  await check('the scatter plot is driven by the keyboard', async () => {
    await page.goto(`${base}/search?service=frontend&lookback=1h`);
    await settle();
    await page.waitForTimeout(500);
    await page.focus('svg.scatter');
    await page.keyboard.press('Home');
    // The oldest trace first: the slow one.
    await page.waitForFunction(() => document.querySelector('.scatter-focus').textContent.includes('GET /slow'));
    await page.keyboard.press('Enter');
    await page.waitForURL(`**/trace/${slowId}`);
  });
  await check('the name column is resizable', async () => {
    await page.goto(`${base}/trace/${traceId}`);
    await settle();
    await page.waitForTimeout(300);
    const share = () => page.$eval('.waterfall .row', (r) => r.querySelector('.name-col').getBoundingClientRect().width / r.getBoundingClientRect().width);
    const before = await share();
    await page.$eval('#name-width', (input) => { input.value = '55'; input.dispatchEvent(new Event('input', { bubbles: true })); });
    await page.waitForFunction(() => {
      const r = document.querySelector('.waterfall .row');
      return r.querySelector('.name-col').getBoundingClientRect().width / r.getBoundingClientRect().width > 0.5;
    });
    expect(before < 0.4, `the column started at ${before}`);
  });
  await check('dragging across the mini-map zooms there', async () => {
    await page.goto(`${base}/trace/${traceId}`);
    await settle();
    await page.waitForTimeout(300);
    const box = await page.locator('.minimap .hit').boundingBox();
    await page.mouse.move(box.x + box.width * 0.6, box.y + box.height / 2);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * 0.8, box.y + box.height / 2, { steps: 5 });
    await page.mouse.up();
    await page.waitForURL('**view=**');
    const view = new URL(page.url()).searchParams.get('view').split('-').map(Number);
    expect(Math.abs(view[0] - 60) < 2 && Math.abs(view[1] - 80) < 2, `view ${view}`);
  });
  await check('stepping through spans adds no history entry per span', async () => {
    await page.goto(`${base}/search?service=frontend&lookback=1h`);
    await settle();
    await page.goto(`${base}/trace/${traceId}`);
    await settle();
    await page.waitForTimeout(500);
    const before = await page.evaluate(() => history.length);
    for (let i = 0; i < 3; i++) await page.keyboard.press('ArrowDown');
    await page.waitForFunction(() => document.querySelector('.row.selected .op')?.textContent === 'INSERT orders' ||
      document.querySelector('.row.selected .op')?.textContent === 'charge card');
    expect(await page.evaluate(() => history.length) === before, 'history grew');
    await page.goBack();
    await page.waitForURL('**/search?service=frontend**');
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
  await check('the live count follows the stream; pausing keeps the lines; a new query stays live', async () => {
    // The previous check streamed one line into this page, over 0 found by the search.
    expect((await page.textContent('#log-count')).startsWith('1 matching line,'), await page.textContent('#log-count'));
    await page.click('#live');
    await page.waitForURL('**live=0**');
    await page.waitForTimeout(300);
    expect(await page.locator('#live-lines >> text=inventory low for SKU-7').count() === 1, 'pausing dropped the lines');
    await page.click('#live');
    await page.waitForURL('**live=1**');
    await page.fill('#query', 'SKU-7');
    await page.click('#search-logs');
    await page.waitForURL('**query=SKU-7**');
    expect(page.url().includes('live=1'), `the new query is not live: ${page.url()}`);
  });
  await check('back from a trace shows the same results and place, not a window that moved on', async () => {
    await page.setViewportSize({ width: 1400, height: 500 });
    await page.goto(`${base}/search?service=frontend&lookback=1h`);
    await settle();
    // The page pins its address to the window the server searched.
    await page.waitForFunction(() => /[?&]end=\d+/.test(location.search), null, { timeout: 5000 }).catch(() => {});
    expect(/[?&]end=\d+/.test(new URL(page.url()).search), `the search is not pinned: ${page.url()}`);
    const before = await resultIds();
    // A newer frontend trace arrives while the results are read.
    const body = { resourceSpans: [{ resource: { attributes: [{ key: 'service.name', value: { stringValue: 'frontend' } }] },
      scopeSpans: [{ spans: [{ traceId: '59'.repeat(16), spanId: '01'.repeat(8), name: 'GET /late', kind: 2,
        startTimeUnixNano: `${Date.now()}000000`, endTimeUnixNano: `${Date.now() + 5}000000` }] }] }] };
    const response = await fetch(`${otlp}/v1/traces`, { method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${ingestToken}` }, body: JSON.stringify(body) });
    expect(response.status === 200, `OTLP answered ${response.status}`);
    await page.waitForTimeout(1500);
    await page.evaluate(() => window.scrollTo(0, document.body.scrollHeight));
    await page.waitForTimeout(200);
    const scrolled = await page.evaluate(() => window.scrollY);
    expect(scrolled > 100, `the results do not scroll (${scrolled})`);
    await page.click(`a.trace-link[href="/trace/${slowId}"]`);
    await page.waitForURL(`**/trace/${slowId}`);
    await settle();
    await page.goBack();
    await page.waitForURL('**/search?**');
    await page.waitForSelector(`a.trace-link[href="/trace/${slowId}"]`);
    await page.waitForTimeout(300);
    const after = await resultIds();
    expect(JSON.stringify(after) === JSON.stringify(before), `results moved on: ${before} -> ${after}`);
    const back = await page.evaluate(() => window.scrollY);
    expect(Math.abs(back - scrolled) < 40, `scrolled to ${back}, was ${scrolled}`);
    // A fresh search of the same words is a new window: the late trace is in it.
    await page.goto(`${base}/search?service=frontend&lookback=1h`);
    await settle();
    expect((await resultIds()).includes('59'.repeat(16)), `the late trace is not found by a new search: ${await resultIds()}`);
    await page.setViewportSize({ width: 1400, height: 900 });
  });
  await check('no errors in the browser console', async () => {
    expect(consoleErrors.length === 0, consoleErrors.join(' | '));
  });
}

await check('span names with ids are offered as one pattern, which finds all their traces', async () => {
  // Sent last: a service of its own, which no check before counts.
  const now = Date.now();
  const spans = [17, 42, 99].map((item, i) => ({
    traceId: `${(60 + i).toString(16)}`.repeat(16), spanId: '01'.repeat(8), name: `GET /items/${item}`, kind: 2,
    startTimeUnixNano: `${now - 1000 + i}000000`, endTimeUnixNano: `${now - 990 + i}000000`,
  }));
  const body = { resourceSpans: [{ resource: { attributes: [{ key: 'service.name', value: { stringValue: 'catalog' } }] },
    scopeSpans: [{ spans }] }] };
  const response = await fetch(`${otlp}/v1/traces`, { method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${ingestToken}` }, body: JSON.stringify(body) });
  expect(response.status === 200, `OTLP answered ${response.status}`);
  let option = null;
  for (let tries = 0; tries < 30 && !option; tries++) {
    await page.goto(`${base}/search?service=catalog&lookback=1h`);
    await settle();
    option = await page.$('#operation optgroup option');
    if (!option) await page.waitForTimeout(500);
  }
  expect(option, 'no pattern offered');
  const text = (await option.textContent()).trim();
  expect(text === 'GET /items/<num> (3 operations)', `option: ${text}`);
  await page.selectOption('#operation', await option.getAttribute('value'));
  await page.click('#find');
  await page.waitForURL('**operation=pattern**');
  await settle();
  await page.waitForFunction(() => document.querySelector('.sorts .matched')?.textContent.trim() === '3 traces', null,
    { timeout: 10000 }).catch(() => {});
  const matched = (await page.textContent('.sorts .matched')).trim();
  expect(matched === '3 traces', `matched: ${matched}`);
});

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
