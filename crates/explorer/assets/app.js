// The Animoca Trade explorer: a hash-routed page over the REST API (/api) and
// Socket.IO of its own origin. Amounts arrive as exact decimal strings; they are
// formatted as strings (numbers only feed the chart, which draws pixels).
// Every value from the API is put in the page as text, never as HTML.

import { createChart, CandlestickSeries, HistogramSeries } from "./vendor/lightweight-charts-5.3.0.mjs";
import { io } from "./vendor/socket.io-client-4.8.3.esm.min.js";

const KINDS = {
  credential: { path: "credentials", idField: "credential_id", creatorField: "issuer_address", title: "Credentials", creator: "Issuer" },
  persona: { path: "personas", idField: "persona_id", creatorField: "owner_address", title: "Personas", creator: "Owner" },
};
const TIMEFRAMES = ["1m", "5m", "15m", "1h", "4h", "1d", "1w"];
const TRADES_SHOWN = 40;
const UP = "#26a69a";
const DOWN = "#ef5350";

// ---------------------------------------------------------------- helpers

/** Builds an element: `h("td", { class: "up" }, "text", child)`. Strings become text nodes. */
function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "style") Object.assign(el.style, value);
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** An exact decimal string shortened for reading: thousands separators, at most
 * `places` decimals, and for values below 1 four significant digits. */
export function formatDecimal(text, places = 2) {
  if (text === undefined || text === null) return "–";
  let s = String(text);
  const negative = s.startsWith("-");
  if (negative) s = s.slice(1);
  let [whole, fraction = ""] = s.split(".");
  whole = whole.replace(/^0+(?=\d)/, "");
  if (whole === "0") {
    const firstDigit = fraction.search(/[1-9]/);
    if (firstDigit === -1) return "0";
    fraction = fraction.slice(0, Math.max(places, firstDigit + 4));
  } else {
    fraction = fraction.slice(0, places);
  }
  fraction = fraction.replace(/0+$/, "");
  const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return (negative ? "-" : "") + grouped + (fraction ? "." + fraction : "");
}

/** A decimal string as an integer of `decimals` units (exact). */
function units(text, decimals) {
  const [whole, fraction = ""] = String(text ?? "0").split(".");
  return BigInt(whole || "0") * 10n ** BigInt(decimals) + BigInt((fraction + "0".repeat(decimals)).slice(0, decimals) || "0");
}

/** `part / total` in percent with two decimals, exact until the last digit. */
function percent(part, total) {
  if (total === 0n) return 0;
  return Number((part * 10000n) / total) / 100;
}

const usdc = (text) => formatDecimal(text, 2) + " USDC";
const shortHex = (hex) => (hex && hex.length > 14 ? `${hex.slice(0, 6)}…${hex.slice(-4)}` : hex ?? "–");
const toDate = (value) => (typeof value === "number" ? new Date(value * 1000) : new Date(value));
const unixSeconds = (value) => (typeof value === "number" ? value : Math.floor(Date.parse(value) / 1000));

function ago(value) {
  const seconds = Math.max(0, Math.round((Date.now() - toDate(value).getTime()) / 1000));
  if (seconds < 60) return `${seconds}s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h ago`;
  return `${Math.floor(seconds / 86400)}d ago`;
}

function countdown(endsAt) {
  let left = Math.floor((Date.parse(endsAt) - Date.now()) / 1000);
  if (left <= 0) return "voting ended";
  const d = Math.floor(left / 86400);
  left %= 86400;
  const hh = String(Math.floor(left / 3600)).padStart(2, "0");
  const mm = String(Math.floor((left % 3600) / 60)).padStart(2, "0");
  const ss = String(left % 60).padStart(2, "0");
  return `${d > 0 ? d + "d " : ""}${hh}:${mm}:${ss} left`;
}

function change(value) {
  const n = Number(value ?? 0);
  return h("span", { class: n > 0 ? "up" : n < 0 ? "down" : "muted" }, `${n > 0 ? "+" : ""}${n.toFixed(2)}%`);
}

const badge = (status) => h("span", { class: `badge ${status}` }, status);
const marketName = (m) => m.display_name || m.token_name;
const marketHref = (type, id) => `#/${type}/${id}`;

/** Calls the REST API; the error names the route and the API's message. */
async function api(path, signal) {
  const response = await fetch(`/api${path}`, { signal, headers: { accept: "application/json" } });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(`${path}: ${response.status} ${body?.error?.message ?? response.statusText}`);
  return body;
}

/** Runs `task` at most once per `ms`, the last call winning (refetches after bursts of events). */
function throttle(ms, task) {
  let timer = null;
  let again = false;
  return () => {
    if (timer) { again = true; return; }
    task();
    timer = setTimeout(function tick() {
      timer = null;
      if (again) { again = false; task(); timer = setTimeout(tick, ms); }
    }, ms);
  };
}

const banner = document.getElementById("banner");
function showError(error) {
  if (error?.name === "AbortError") return;
  banner.hidden = false;
  banner.textContent = String(error?.message ?? error);
  console.error(error);
}
function clearError() { banner.hidden = true; }

// ---------------------------------------------------------------- live updates

// WebSocket first; long-polling if WebSocket cannot connect (behind some proxies).
const socket = io({ transports: ["websocket", "polling"], tryAllTransports: true });
const liveBadge = document.getElementById("live");
let view = null; // the current view: { channels, on: {event: handler}, reload(), destroy() }

async function subscribe(channels) {
  if (!socket.connected || channels.length === 0) return;
  const ack = await socket.timeout(10_000).emitWithAck("subscribe", channels);
  if (!ack?.success) showError(new Error(`subscribe: ${ack?.error?.message ?? "refused"}`));
}

socket.on("connect", async () => {
  liveBadge.dataset.state = "live";
  liveBadge.textContent = "live";
  if (view) {
    subscribe(view.channels).catch(showError);
    view.reload(); // events sent while away are not replayed: refetch
  }
});
socket.on("disconnect", () => { liveBadge.dataset.state = "offline"; liveBadge.textContent = "reconnecting…"; });
socket.on("connect_error", () => { liveBadge.dataset.state = "offline"; liveBadge.textContent = "offline"; });
for (const event of ["trade", "price", "candle", "proposal", "vote", "backfill"]) {
  socket.on(event, (payload) => view?.on[event]?.(payload));
}
// The chain reorganised or the tables were rebuilt: refetch what is shown.
socket.on("reorg", (payload) => { view?.on.reorg?.(payload); view?.reload(); });
socket.on("refresh", () => view?.reload());

// One clock for every countdown and "… ago" on the page.
setInterval(() => {
  for (const el of document.querySelectorAll("[data-ends]")) el.textContent = countdown(el.dataset.ends);
  for (const el of document.querySelectorAll("[data-at]")) el.textContent = ago(Number(el.dataset.at));
}, 1000);

// ---------------------------------------------------------------- views

function stat(label, value, id) {
  return h("div", { class: "stat" }, h("div", { class: "label" }, label), h("div", { class: "value", id }, value));
}

function proposalsPanel(list) {
  if (list.length === 0) return h("p", { class: "muted" }, "No proposals.");
  return list.map((p) => {
    // As SPEC §5 counts them: the total is for + against; abstain is shown apart.
    const votes = { for: units(p.votes_for, 18), against: units(p.votes_against, 18) };
    const total = votes.for + votes.against;
    const quorum = units(p.quorum_required, 18);
    const kind = p.entity_type;
    const marketId = p[KINDS[kind]?.idField];
    const bar = (side) => h("div", { class: side, style: { width: `${percent(votes[side], total)}%` }, title: `${side} ${formatDecimal(p[`votes_${side}`], 2)}` });
    return h(
      "div",
      { class: "proposal", dataset: { proposal: p.proposal_id } },
      h("div", {}, badge(p.status), " ", h("span", { class: "title" }, p.title || `Proposal #${p.proposal_id}`),
        " ", h("a", { href: marketHref(kind, marketId), class: "muted" }, `${kind} ${shortHex(marketId)}`)),
      h("div", { class: "muted" }, `slash ${usdc(p.slash_amount)} · ${p.voter_count} voters · quorum ${formatDecimal(p.quorum_required, 2)} tokens`,
        total >= quorum ? " (reached)" : ""),
      h("div", { class: "bars" }, bar("for"), bar("against")),
      h("div", { class: "legend" },
        h("span", { class: "up" }, `for ${percent(votes.for, total).toFixed(2)}%`),
        h("span", { class: "down" }, `against ${percent(votes.against, total).toFixed(2)}%`),
        h("span", {}, `abstain ${formatDecimal(p.votes_abstain, 2)} tokens`),
        p.status === "active" ? h("span", { class: "countdown", dataset: { ends: p.voting_ends_at } }, countdown(p.voting_ends_at)) : h("span", {}, `ended ${ago(p.voting_ends_at)}`)),
    );
  });
}

/** The home page: both markets, the totals and the open proposals. */
function homeView() {
  const controller = new AbortController();
  const root = h("div");
  const lists = {};
  const rowsById = new Map();

  function marketTable(type, markets) {
    const rows = markets.map((m) => {
      const id = m[KINDS[type].idField];
      const price = h("td", { class: "price" }, formatDecimal(m.price, 6));
      rowsById.set(`${type}:${id}`, price);
      return h("tr", { class: "link", dataset: { id }, onclick: () => { location.hash = marketHref(type, id); } },
        h("td", {}, h("a", { href: marketHref(type, id) }, marketName(m)), h("span", { class: "symbol" }, m.token_symbol), " ", badge(m.verification_status)),
        price, h("td", {}, change(m.price_change_24h)), h("td", {}, formatDecimal(m.volume_24h, 2)), h("td", {}, String(m.holders)), h("td", {}, formatDecimal(m.total_staked, 2)));
    });
    return h("table", { id: `markets-${type}` },
      h("thead", {}, h("tr", {}, ["Market", "Price", "24h", "24h volume", "Holders", "Staked"].map((c) => h("th", {}, c)))),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No markets yet."))));
  }

  async function load() {
    try {
      const [overview, credentials, personas, proposals] = await Promise.all([
        api("/analytics/overview", controller.signal),
        api("/credentials?status=all&sortBy=volume&limit=100", controller.signal),
        api("/personas?status=all&sortBy=volume&limit=100", controller.signal),
        api("/proposals?status=active&limit=10", controller.signal),
      ]);
      clearError();
      const o = overview.data;
      rowsById.clear();
      lists.credential = marketTable("credential", credentials.data);
      lists.persona = marketTable("persona", personas.data);
      root.replaceChildren(
        h("div", { class: "stats" },
          stat("Markets", `${o.credential_markets} credentials · ${o.persona_markets} personas`),
          stat("TVL", usdc(o.tvl)), stat("24h volume", usdc(o.volume_24h)),
          stat("24h trades", String(o.trades_24h)), stat("Staked", usdc(o.total_staked))),
        h("div", { class: "grid" },
          h("section", { class: "panel" }, h("h2", {}, "Credentials"), lists.credential),
          h("section", { class: "panel" }, h("h2", {}, "Personas"), lists.persona)),
        h("p", { class: "muted" }, "Prices, volumes and stakes in USDC."),
        h("section", { class: "panel", id: "proposals", style: { marginTop: "16px" } }, h("h2", {}, "Open proposals"), proposalsPanel(proposals.data)),
      );
    } catch (error) {
      showError(error);
    }
  }
  const reloadSoon = throttle(5000, load);

  return {
    root,
    channels: ["markets", "proposals"],
    reload: load,
    on: {
      price(p) {
        const cell = rowsById.get(`${p.market.market_type}:${p.market.market_id}`);
        if (cell) cell.textContent = formatDecimal(p.price, 6);
        reloadSoon(); // 24h change, volume and holders move with the price
      },
      proposal: reloadSoon,
      vote: reloadSoon,
      backfill: reloadSoon,
    },
    destroy() { controller.abort(); },
  };
}

/** A market's page: chart, trades, holders, stake, links and proposals. */
function marketView(type, id) {
  const kind = KINDS[type];
  const controller = new AbortController();
  let timeframe = "1m"; // chosen
  let shownTimeframe = null; // whose bars the chart holds
  let chartRequest = 0;
  let chart = null;
  let candles = null;
  let volumes = null;
  // Trades received live, by `tx_hash:log_index`, kept over reloads while newer
  // than what the API answered (its cache may be a second behind).
  const liveTrades = new Map();
  const header = h("div");
  const stakePanel = h("section", { class: "panel", id: "stake" });
  const tradesBody = h("tbody");
  const holdersPanel = h("section", { class: "panel", id: "holders" });
  const linksPanel = h("section", { class: "panel", id: "links" });
  const proposalsBody = h("div");
  const chartBox = h("div", { class: "chart", id: "chart", dataset: { candles: "0" } });
  const tabs = h("div", { class: "tabs" }, TIMEFRAMES.map((tf) =>
    h("button", { type: "button", dataset: { timeframe: tf }, "aria-pressed": String(tf === timeframe), onclick: () => switchTimeframe(tf) }, tf)));

  const root = h("div", {},
    header,
    h("div", { class: "grid" },
      h("section", { class: "panel full" }, h("h2", {}, "Price"), tabs, chartBox),
      h("section", { class: "panel wide" }, h("h2", {}, "Trades"),
        h("table", { id: "trades" }, h("thead", {}, h("tr", {}, ["Time", "Side", "Tokens", "USDC", "Price", "Trader"].map((c) => h("th", {}, c)))), tradesBody)),
      holdersPanel, stakePanel, linksPanel,
      h("section", { class: "panel", id: "proposals" }, h("h2", {}, "Proposals"), proposalsBody)));

  const emptyRow = () => h("tr", { class: "empty" }, h("td", { colspan: 6, class: "muted" }, "No trades yet."));

  function tradeRow(t, fresh) {
    return h("tr", { class: fresh ? "fresh" : undefined, dataset: { tx: t.tx_hash, log: String(t.log_index) } },
      h("td", { title: toDate(t.block_timestamp).toISOString(), dataset: { at: String(unixSeconds(t.block_timestamp)) } }, ago(t.block_timestamp)),
      h("td", { class: t.swap_type === "buy" ? "up" : "down" }, t.swap_type),
      h("td", {}, formatDecimal(t.token_amount, 4)), h("td", {}, formatDecimal(t.usdc_amount, 2)),
      h("td", {}, formatDecimal(t.price, 6)), h("td", { class: "mono", title: t.trader_address }, shortHex(t.trader_address)));
  }

  function renderHeader(m) {
    header.replaceChildren(
      h("h1", {}, marketName(m), h("span", { class: "symbol" }, m.token_symbol), " ", badge(m.verification_status)),
      m.description ? h("p", { class: "muted" }, m.description) : null,
      h("div", { class: "stats" },
        stat("Price", `${formatDecimal(m.price, 6)} USDC`, "price"), stat("24h change", change(m.price_change_24h)),
        stat("24h volume", usdc(m.volume_24h)), stat("24h trades", String(m.trades_24h)),
        stat("Holders", String(m.holders)), stat("Market cap", usdc(m.market_cap)),
        m.reputation_score !== null ? stat("Reputation", String(m.reputation_score)) : null));
    stakePanel.replaceChildren(h("h2", {}, "Stake & pool"), h("dl", { class: "kv" },
      h("dt", {}, "Staked by the creator"), h("dd", { id: "staked" }, usdc(m.total_staked)),
      h("dt", {}, "Pool USDC"), h("dd", { id: "reserve-usdc" }, usdc(m.pool?.usdc_reserves)),
      h("dt", {}, "Pool tokens"), h("dd", { id: "reserve-tokens" }, formatDecimal(m.pool?.token_reserves, 2)),
      h("dt", {}, "Fee"), h("dd", {}, `${(m.pool?.fee_bps ?? 0) / 100}%`),
      h("dt", {}, kind.creator), h("dd", { class: "mono", title: m[kind.creatorField] }, shortHex(m[kind.creatorField])),
      h("dt", {}, "Token"), h("dd", { class: "mono", title: m.token_address }, shortHex(m.token_address))));
    const links = [];
    if (type === "persona") {
      links.push(h("h2", {}, "Linked credentials"), (m.linked_credentials ?? []).length
        ? h("div", { class: "chips" }, m.linked_credentials.map((c) =>
          h("a", { class: "chip", href: marketHref("credential", c.credential_id) }, c.token_name ?? shortHex(c.credential_id), c.token_symbol ? h("span", { class: "symbol" }, c.token_symbol) : null)))
        : h("p", { class: "muted" }, "No linked credentials."));
      if ((m.social_links ?? []).length) {
        links.push(h("h2", { style: { marginTop: "14px" } }, "Social"), h("div", { class: "chips" },
          m.social_links.map((s) => h("span", { class: "chip" }, `${s.platform}: ${s.handle}`))));
      }
    } else {
      links.push(h("h2", {}, "About"), h("dl", { class: "kv" },
        h("dt", {}, "Category"), h("dd", {}, m.category ?? "–"),
        h("dt", {}, "Created"), h("dd", {}, toDate(m.created_at).toLocaleString())));
    }
    linksPanel.replaceChildren(...links);
  }

  const loadDetail = async () => {
    const detail = await api(`/${kind.path}/${id}`, controller.signal);
    renderHeader(detail.data);
  };
  const loadHolders = async () => {
    const holders = await api(`/${kind.path}/${id}/holders?limit=15`, controller.signal);
    holdersPanel.replaceChildren(h("h2", {}, `Holders (${holders.pagination?.total ?? holders.data.length})`),
      h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Address"), h("th", {}, "Balance"))),
        h("tbody", {}, holders.data.map((x) => h("tr", {}, h("td", { class: "mono", title: x.address }, shortHex(x.address)), h("td", {}, formatDecimal(x.balance, 4)))))));
  };
  const loadTrades = async () => {
    const trades = await api(`/${kind.path}/${id}/trades?limit=${TRADES_SHOWN}`, controller.signal);
    const newest = Math.max(0, ...trades.data.map((t) => t.block_number));
    for (const [key, t] of liveTrades) if (t.block_number <= newest) liveTrades.delete(key);
    const rows = [...liveTrades.values()].reverse().map((t) => tradeRow(t, false));
    const seen = new Set(liveTrades.keys());
    for (const t of trades.data) if (!seen.has(`${t.tx_hash}:${t.log_index}`)) rows.push(tradeRow(t, false));
    tradesBody.replaceChildren(...(rows.length ? rows.slice(0, TRADES_SHOWN) : [emptyRow()]));
  };
  const loadProposals = async () => {
    const list = await api(`/proposals?marketType=${type}&marketId=${id}&limit=10`, controller.signal);
    proposalsBody.replaceChildren(...[proposalsPanel(list.data)].flat());
  };
  const loadChart = async () => {
    const request = ++chartRequest;
    const wanted = timeframe;
    const body = await api(`/${kind.path}/${id}/chart?timeFrame=${wanted}&limit=300`, controller.signal);
    if (request !== chartRequest) return; // a newer request (another timeframe) wins
    if (!chart) {
      chart = createChart(chartBox, {
        autoSize: true,
        layout: { background: { color: "#161d2a" }, textColor: "#8a96ab" },
        grid: { vertLines: { color: "#1f2837" }, horzLines: { color: "#1f2837" } },
        timeScale: { timeVisible: true, secondsVisible: false, borderColor: "#263043" },
        rightPriceScale: { borderColor: "#263043" },
      });
      // Volume first, so the candles are drawn over it.
      volumes = chart.addSeries(HistogramSeries, { priceScaleId: "volume", priceFormat: { type: "volume" }, lastValueVisible: false, priceLineVisible: false });
      chart.priceScale("volume").applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
      candles = chart.addSeries(CandlestickSeries, {
        upColor: UP, downColor: DOWN, borderVisible: false, wickUpColor: UP, wickDownColor: DOWN,
        priceFormat: { type: "price", precision: 6, minMove: 0.000001 },
      });
      chartBox.explorer = { chart, candles }; // read by the browser test
    }
    const bars = body.data.map(bar);
    candles.setData(bars);
    volumes.setData(body.data.map(volumeBar));
    shownTimeframe = wanted;
    chartBox.dataset.candles = String(bars.length);
    chartBox.dataset.timeframe = wanted;
    chart.timeScale().fitContent();
  };
  const bar = (c) => ({ time: unixSeconds(c.time), open: Number(c.open), high: Number(c.high), low: Number(c.low), close: Number(c.close) });
  const volumeBar = (c) => ({ time: unixSeconds(c.time), value: Number(c.volume_usdc), color: Number(c.close) >= Number(c.open) ? "#26a69a66" : "#ef535066" });

  async function switchTimeframe(tf) {
    timeframe = tf;
    for (const b of tabs.children) b.setAttribute("aria-pressed", String(b.dataset.timeframe === tf));
    try { await loadChart(); } catch (error) { showError(error); }
  }

  async function load() {
    try {
      await Promise.all([loadDetail(), loadChart(), loadTrades(), loadHolders(), loadProposals()]);
      clearError();
    } catch (error) {
      showError(error);
    }
  }
  const guarded = (task) => () => task().catch(showError);
  const refreshMarket = throttle(3000, guarded(async () => { await Promise.all([loadDetail(), loadHolders()]); }));
  const refreshProposals = throttle(2000, guarded(loadProposals));
  const mine = (p) => p.market?.market_id === id;

  return {
    root,
    channels: [`market:${id}`, "proposals"],
    reload: load,
    on: {
      trade(t) {
        if (!mine(t)) return;
        const key = `${t.tx_hash}:${t.log_index}`;
        if (liveTrades.has(key) || tradesBody.querySelector(`tr[data-tx="${CSS.escape(t.tx_hash)}"][data-log="${t.log_index}"]`)) return;
        liveTrades.set(key, t);
        if (liveTrades.size > 4 * TRADES_SHOWN) liveTrades.delete(liveTrades.keys().next().value);
        tradesBody.querySelector("tr.empty")?.remove();
        tradesBody.prepend(tradeRow(t, true));
        while (tradesBody.children.length > TRADES_SHOWN) tradesBody.lastElementChild.remove();
        refreshMarket();
      },
      price(p) {
        if (!mine(p)) return;
        const price = document.getElementById("price");
        if (price) price.textContent = `${formatDecimal(p.price, 6)} USDC`;
        const reserveUsdc = document.getElementById("reserve-usdc");
        if (reserveUsdc) reserveUsdc.textContent = usdc(p.usdc_reserves);
        const reserveTokens = document.getElementById("reserve-tokens");
        if (reserveTokens) reserveTokens.textContent = formatDecimal(p.token_reserves, 2);
      },
      candle(c) {
        if (!mine(c) || !candles) return;
        const newest = c.candles.find((x) => x.timeframe === shownTimeframe);
        if (!newest) return;
        try {
          candles.update(bar(newest));
          volumes.update(volumeBar(newest));
          chartBox.dataset.candles = String(candles.data().length);
        } catch {
          guarded(loadChart)(); // older than the last bar (a late event): refetch instead
        }
      },
      proposal(p) { if (!p.market || mine(p)) refreshProposals(); },
      vote(v) { if (proposalsBody.querySelector(`[data-proposal="${CSS.escape(String(v.proposal_id))}"]`)) refreshProposals(); },
      backfill: load,
      reorg(r) {
        for (const [key, t] of liveTrades) if (t.block_number >= r.from_block) liveTrades.delete(key);
      },
    },
    destroy() {
      controller.abort();
      chart?.remove();
    },
  };
}

function notFoundView(path) {
  return { root: h("p", {}, `Nothing at ${path}. `, h("a", { href: "#/" }, "Back to the markets")), channels: [], on: {}, reload() {}, destroy() {} };
}

// ---------------------------------------------------------------- routing

async function route() {
  const path = location.hash.replace(/^#/, "") || "/";
  const match = path.match(/^\/(credential|persona)\/(0x[0-9a-fA-F]{64})$/);
  const next = path === "/" ? homeView() : match ? marketView(match[1], match[2].toLowerCase()) : notFoundView(path);
  const previous = view;
  view = next;
  if (previous) {
    previous.destroy();
    const stale = previous.channels.filter((c) => !next.channels.includes(c));
    if (socket.connected && stale.length) socket.emit("unsubscribe", stale);
  }
  clearError();
  document.getElementById("view").replaceChildren(next.root);
  window.scrollTo(0, 0);
  subscribe(next.channels).catch(showError);
  await next.reload();
  if (view === next) document.body.dataset.view = match ? "market" : path === "/" ? "home" : "none";
}

window.addEventListener("hashchange", route);
route();
