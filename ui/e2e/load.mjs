// Page load figures: first contentful paint and interactive (the wasm bundle
// instantiated and the page hydrated), as Chromium's Performance API reports them,
// on loopback and throttled (150 ms round trips, 1.6 Mbit/s down, CPU 4x slower).
//   node load.mjs <base-url> <path>...
// Prints one line per path and condition: the median of the runs, in ms. Not a
// test: a benchmark (docs/benchmarks.md has the figures).
import { chromium } from 'playwright-core';

const [base, ...paths] = process.argv.slice(2);
const runs = Number(process.env.RUNS || 5);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});

// Hydration runs synchronously in the promise chain that instantiating the wasm
// module resolves; a task queued at that point runs after it.
const markInteractive = () => {
  for (const name of ['instantiate', 'instantiateStreaming']) {
    const original = WebAssembly[name];
    WebAssembly[name] = (...args) => original.apply(WebAssembly, args).then((result) => {
      setTimeout(() => { window.__interactive = performance.now(); }, 0);
      return result;
    });
  }
};

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
};

async function measure(path, throttled) {
  const fcp = [], interactive = [];
  for (let i = 0; i < runs; i++) {
    const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    const page = await context.newPage();
    await page.addInitScript(markInteractive);
    const cdp = await context.newCDPSession(page);
    await cdp.send('Network.enable');
    await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
    if (throttled) {
      await cdp.send('Network.emulateNetworkConditions', {
        offline: false, latency: 150, downloadThroughput: 1.6e6 / 8, uploadThroughput: 750e3 / 8,
      });
      await cdp.send('Emulation.setCPUThrottlingRate', { rate: 4 });
    }
    await page.goto(`${base}${path}`);
    await page.waitForFunction(() => window.__interactive !== undefined
      && performance.getEntriesByName('first-contentful-paint').length > 0, null, { timeout: 120000 });
    const [paint, ready] = await page.evaluate(() => [
      performance.getEntriesByName('first-contentful-paint')[0].startTime, window.__interactive]);
    fcp.push(paint);
    interactive.push(ready);
    await context.close();
  }
  return [median(fcp), median(interactive)];
}

for (const path of paths) {
  for (const throttled of [false, true]) {
    const [fcp, ready] = await measure(path, throttled);
    console.log(`${throttled ? 'throttled' : 'local    '}  first paint ${fcp.toFixed(0).padStart(5)} ms  interactive ${ready.toFixed(0).padStart(5)} ms  ${path}`);
  }
}
await browser.close();
