// Drives the explorer page in headless Chromium (Debian's `chromium`, through the
// pinned `playwright-core`) for the Rust browser test. One JSON object per line
// on stdout; the Rust side answers on stdin.
//
//   argv[2]: {"base": "http://127.0.0.1:PORT", "market": "credential/0x…", "screenshots": "/dir",
//             "chromium": "/usr/bin/chromium"}
//   stdout:  {"step":"home", credentials, personas}
//            {"step":"market", candles, candle_pixels, timeframes: {tf: candles}, proposals, bar_for, countdown, holders, links}
//            {"step":"trade", shown: true, reloaded: false}        (after a tx hash arrives on stdin)
//            {"step":"done", errors: [...]}                       errors: console errors, page errors,
//                                                                 failed requests, HTTP >= 400
//   stdin:   the hash of a trade sent on the chain, once the "market" step is printed
import { chromium } from "playwright-core";
import readline from "node:readline";
import path from "node:path";

const options = JSON.parse(process.argv[2]);
const print = (line) => process.stdout.write(JSON.stringify(line) + "\n");
const errors = [];
const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();

const browser = await chromium.launch({
  executablePath: options.chromium,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1100 } });
  page.on("console", (message) => {
    if (message.type() === "error") errors.push(`console: ${message.text()}`);
  });
  page.on("pageerror", (error) => errors.push(`page: ${error.message}`));
  page.on("requestfailed", (request) => {
    // Navigating away aborts the previous view's fetches on purpose.
    if (request.failure()?.errorText !== "net::ERR_ABORTED") errors.push(`request: ${request.url()} ${request.failure()?.errorText}`);
  });
  page.on("response", (response) => {
    if (response.status() >= 400) errors.push(`http: ${response.status()} ${response.url()}`);
  });

  // The home page: both lists, live.
  await page.goto(`${options.base}/`);
  await page.waitForSelector('body[data-view="home"]');
  await page.waitForSelector('#live[data-state="live"]');
  await page.waitForSelector("#markets-credential tbody tr[data-id]");
  const count = (selector) => page.locator(selector).count();
  print({
    step: "home",
    credentials: await count("#markets-credential tbody tr[data-id]"),
    personas: await count("#markets-persona tbody tr[data-id]"),
  });
  await page.screenshot({ path: path.join(options.screenshots, "explorer-home.png"), fullPage: true });

  // A market's page, reached by clicking its row.
  const [type, id] = options.market.split("/");
  await page.click(`#markets-${type} tbody tr[data-id="${id}"] a`);
  await page.waitForSelector('body[data-view="market"]');
  await page.waitForFunction(() => Number(document.getElementById("chart")?.dataset.candles) > 0);
  await page.waitForSelector("#trades tbody tr[data-tx]");
  await page.waitForSelector("#proposals .proposal");
  await page.waitForTimeout(300); // the chart paints on the next animation frame
  // Pixels of the candle colours on the chart's canvases: candles were drawn.
  const candlePixels = () => page.evaluate(() => {
    let hits = 0;
    for (const canvas of document.querySelectorAll("#chart canvas")) {
      const context = canvas.getContext("2d");
      if (!context || canvas.width === 0 || canvas.height === 0) continue;
      const { data } = context.getImageData(0, 0, canvas.width, canvas.height);
      for (let i = 0; i < data.length; i += 4) {
        const [r, g, b, a] = [data[i], data[i + 1], data[i + 2], data[i + 3]];
        const near = (R, G, B) => Math.abs(r - R) < 12 && Math.abs(g - G) < 12 && Math.abs(b - B) < 12 && a > 200;
        if (near(0x26, 0xa6, 0x9a) || near(0xef, 0x53, 0x50)) hits++;
      }
    }
    return hits;
  });
  const pixels = await candlePixels();
  // The timeframe switch: every timeframe loads its candles.
  const timeframes = {};
  for (const tf of ["5m", "1h", "1d", "1m"]) {
    await page.click(`.tabs button[data-timeframe="${tf}"]`);
    await page.waitForFunction((want) => document.getElementById("chart").dataset.timeframe === want, tf);
    timeframes[tf] = Number(await page.getAttribute("#chart", "data-candles"));
  }
  const forWidth = await page.evaluate(() => document.querySelector("#proposals .proposal .bars .for")?.style.width ?? "");
  const countdown = await page.textContent("#proposals .countdown").catch(() => null);
  await page.evaluate(() => { window.__sameDocument = true; });
  await page.screenshot({ path: path.join(options.screenshots, "explorer-market.png"), fullPage: true });
  print({
    step: "market",
    candles: Number(await page.getAttribute("#chart", "data-candles")),
    candle_pixels: pixels,
    timeframes,
    proposals: await count("#proposals .proposal"),
    bar_for: forWidth,
    countdown,
    holders: await count("#holders tbody tr"),
    links: await page.textContent("#links"),
    staked: await page.textContent("#staked"),
  });

  // A trade sent on the chain now appears without a reload.
  const { value: hash } = await lines.next();
  await page.waitForSelector(`#trades tbody tr[data-tx="${hash.trim()}"]`, { timeout: 30_000 });
  const first = await page.getAttribute("#trades tbody tr:first-child", "data-tx");
  const reloaded = !(await page.evaluate(() => window.__sameDocument === true));
  await page.waitForTimeout(500);
  print({ step: "trade", shown: true, first: first === hash.trim(), reloaded });
  await page.screenshot({ path: path.join(options.screenshots, "explorer-live-trade.png"), fullPage: true });
  print({ step: "done", errors });
} catch (error) {
  print({ step: "failed", message: String(error?.stack ?? error), errors });
} finally {
  await browser.close();
  process.exit(0);
}
