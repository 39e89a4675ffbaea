// Drives the explorer page in headless Chromium (Debian's `chromium`, through the
// pinned `playwright-core`) for the Rust browser test. One JSON object per line
// on stdout; the Rust side answers on stdin.
//
//   argv[2]: {"base": "http://127.0.0.1:PORT", "market": "credential/0x…", "persona": "persona/0x…",
//             "screenshots": "/dir", "chromium": "/usr/bin/chromium"}
//   stdout:  {"step":"home", credentials, personas, price}
//            {"step":"market", candles, drawn, timeframes: {tf: [candles, drawn]}, proposals, bar_for,
//                              countdown, holders, staked}
//                      drawn: bars whose body's centre pixel on the chart's canvas has a candle colour
//            {"step":"trade", first, reloaded, chart_close, api_close}  (after a tx hash arrives on stdin)
//            {"step":"persona", linked, social}
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
  const [type, id] = options.market.split("/");
  print({
    step: "home",
    credentials: await count("#markets-credential tbody tr[data-id]"),
    personas: await count("#markets-persona tbody tr[data-id]"),
    price: await page.textContent(`#markets-${type} tbody tr[data-id="${id}"] td.price`),
  });
  await page.screenshot({ path: path.join(options.screenshots, "explorer-home.png"), fullPage: true });

  // A market's page, reached by clicking its row.
  await page.click(`#markets-${type} tbody tr[data-id="${id}"] a`);
  await page.waitForSelector('body[data-view="market"]');
  await page.waitForFunction(() => Number(document.getElementById("chart")?.dataset.candles) > 0);
  await page.waitForSelector("#trades tbody tr[data-tx]");
  await page.waitForSelector("#proposals .proposal");
  // Candles drawn: for every bar, the pixel at the centre of its body (where the
  // chart's own scales put it) has the up or down colour on the chart's canvas.
  const drawnBars = () => page.evaluate(() => {
    const box = document.getElementById("chart");
    const { chart, candles } = box.explorer;
    const boxRect = box.getBoundingClientRect();
    const near = (d, R, G, B) => Math.abs(d[0] - R) < 16 && Math.abs(d[1] - G) < 16 && Math.abs(d[2] - B) < 16 && d[3] > 200;
    let drawn = 0;
    for (const bar of candles.data()) {
      const x = chart.timeScale().timeToCoordinate(bar.time);
      const y = candles.priceToCoordinate((bar.open + bar.close) / 2);
      if (x === null || y === null) continue;
      const [px, py] = [boxRect.left + x, boxRect.top + y];
      for (const canvas of box.querySelectorAll("canvas")) {
        const r = canvas.getBoundingClientRect();
        if (px < r.left || px >= r.right || py < r.top || py >= r.bottom) continue;
        const pixel = canvas.getContext("2d").getImageData(
          Math.floor(((px - r.left) * canvas.width) / r.width), Math.floor(((py - r.top) * canvas.height) / r.height), 1, 1).data;
        if (near(pixel, 0x26, 0xa6, 0x9a) || near(pixel, 0xef, 0x53, 0x50)) { drawn++; break; }
      }
    }
    return drawn;
  });
  const paint = () => page.evaluate(() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done))));
  await paint();
  const drawn = await drawnBars();
  // The timeframe switch: every timeframe loads and draws its candles.
  const timeframes = {};
  for (const tf of ["5m", "15m", "1h", "4h", "1d", "1w", "1m"]) {
    await page.click(`.tabs button[data-timeframe="${tf}"]`);
    await page.waitForFunction((want) => document.getElementById("chart").dataset.timeframe === want, tf);
    await paint();
    timeframes[tf] = [Number(await page.getAttribute("#chart", "data-candles")), await drawnBars()];
  }
  const forWidth = await page.evaluate(() => document.querySelector("#proposals .proposal .bars .for")?.style.width ?? "");
  const countdown = await page.textContent("#proposals .countdown").catch(() => null);
  await page.evaluate(() => { window.__sameDocument = true; });
  await page.screenshot({ path: path.join(options.screenshots, "explorer-market.png"), fullPage: true });
  print({
    step: "market",
    candles: Number(await page.getAttribute("#chart", "data-candles")),
    drawn,
    timeframes,
    proposals: await count("#proposals .proposal"),
    bar_for: forWidth,
    countdown,
    holders: await count("#holders tbody tr"),
    staked: await page.textContent("#staked"),
  });

  // A trade sent on the chain now appears without a reload.
  const { value: hash } = await lines.next();
  await page.waitForSelector(`#trades tbody tr[data-tx="${hash.trim()}"]`, { timeout: 30_000 });
  const first = await page.getAttribute("#trades tbody tr:first-child", "data-tx");
  const reloaded = !(await page.evaluate(() => window.__sameDocument === true));
  // The chart moved with the trade, through the `candle` event (the page does not
  // refetch the chart on a trade): its newest bar closes where the API's does.
  const apiClose = async () => {
    const body = await (await fetch(`${options.base}/api/${type}s/${id}/chart?timeFrame=1m&limit=1`)).json();
    return Number(body.data.at(-1).close);
  };
  const chartClose = () => page.evaluate(() => document.getElementById("chart").explorer.candles.data().at(-1).close);
  const deadline = Date.now() + 10_000;
  let [chart, api] = [await chartClose(), await apiClose()];
  while (chart !== api && Date.now() < deadline) {
    await page.waitForTimeout(100);
    [chart, api] = [await chartClose(), await apiClose()];
  }
  print({ step: "trade", first: first === hash.trim(), reloaded, chart_close: chart, api_close: api });
  await page.screenshot({ path: path.join(options.screenshots, "explorer-live-trade.png"), fullPage: true });

  // A persona's page: its linked credentials and social accounts.
  await page.goto(`${options.base}/#/${options.persona}`);
  await page.waitForSelector('body[data-view="market"]');
  await page.waitForSelector("#links .chip");
  print({
    step: "persona",
    linked: await count("#links a.chip"),
    social: await count("#links span.chip"),
  });
  await page.screenshot({ path: path.join(options.screenshots, "explorer-persona.png"), fullPage: true });
  print({ step: "done", errors });
} catch (error) {
  print({ step: "failed", message: String(error?.stack ?? error), errors });
} finally {
  await browser.close();
  process.exit(0);
}
