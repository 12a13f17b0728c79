// Drives Debian's Chromium (headless, through playwright-core) over a universae report from file://
// and prints what the rendered pages hold as JSON, for tests/e2e/test_report.py to check:
//
//   node report_dom.js SPEC.json
//
// SPEC: {"module": playwright-core's directory, "report": the report directory, "shots": where the
// screenshots go, "prefix": their file-name prefix, "search": a token to search for (or ""),
// "open": a latents.html hash to open directly (or "")}.
"use strict";
const fs = require("fs");
const path = require("path");

const spec = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const { chromium } = require(spec.module);
const url = (file, hash = "") => "file://" + path.resolve(spec.report, file) + (hash ? "#" + hash : "");

async function ready(page, since) {
  // The browser page sets body[data-ready] after each render (a timestamp, or "error").
  await page.waitForFunction((t) => document.body.dataset.ready && (document.body.dataset.ready === "error" ||
    +document.body.dataset.ready >= t), since, { timeout: 30000 });
  return page.evaluate(() => document.body.dataset.ready);
}

const cards = (page) => page.evaluate(() => [...document.querySelectorAll("#cards .card")].map((c) => ({
  sae: c.dataset.sae === undefined ? null : +c.dataset.sae, latent: c.dataset.latent === undefined ? null : +c.dataset.latent,
  title: c.querySelector("h2").textContent,
  examples: [...c.querySelectorAll(".example")].map((e) => ({
    value: +e.querySelector(".value").textContent, text: e.children[1].textContent,
    mark: e.querySelector("mark") ? e.querySelector("mark").textContent : null })) })));

const loadTime = (page) => page.evaluate(() => {
  const n = performance.getEntriesByType("navigation")[0];
  return n ? n.loadEventEnd - n.startTime : null;
});

async function indexPage(page, out) {
  await page.goto(url("index.html"), { waitUntil: "load" });
  out.index_load_ms = await loadTime(page);
  out.images = await page.evaluate(() => [...document.images].map((i) => ({ src: i.getAttribute("src"), ok: i.complete && i.naturalWidth > 0 })));
  out.points = await page.evaluate(() => [...document.querySelectorAll("a.pt")].map((a) => a.getAttribute("href")));
  out.browser_links = await page.evaluate(() => [...document.querySelectorAll("a[href^='latents.html']:not(.pt)")].map((a) => a.getAttribute("href")));
  await page.screenshot({ path: path.join(spec.shots, spec.prefix + "index.png"), fullPage: true });
}

async function followPoint(page, out) {
  if (!out.points.length) return;
  const point = page.locator("a.pt").first();
  await point.scrollIntoViewIfNeeded();
  const since = Date.now();
  await point.click();
  await page.waitForURL(/latents\.html/);
  out.point_ready = await ready(page, since - 1);
  out.point_url = page.url();
  out.latents_load_ms = await loadTime(page);
  out.point_cards = await cards(page);
  await page.screenshot({ path: path.join(spec.shots, spec.prefix + "latents_from_figure.png"), fullPage: false });
}

async function search(page, out) {
  if (!spec.search) return;
  const since = Date.now();
  await page.fill("#search", spec.search);
  await page.waitForSelector("#searchresults div", { timeout: 30000 });
  await ready(page, since);
  out.search = await page.evaluate(() => [...document.querySelectorAll("#searchresults > div")].map((d) => ({
    text: d.textContent, latents: [...d.querySelectorAll("a[data-latent]")].map((a) => ({ side: a.dataset.side, latent: +a.dataset.latent })) })));
  const first = page.locator("#searchresults a[data-latent]").first();
  if (await first.count()) {
    const t = Date.now();
    await first.click();
    await ready(page, t);
    out.search_cards = await cards(page);
  }
  await page.screenshot({ path: path.join(spec.shots, spec.prefix + "latents_search.png"), fullPage: false });
}

async function sortAndPage(page, out) {
  const column = (i) => page.evaluate((i) => [...document.querySelectorAll("#list tbody tr")].map((r) => r.children[i].textContent), i);
  const headers = await page.evaluate(() => [...document.querySelectorAll("#list thead th")].map((h) => h.textContent));
  out.headers = headers;
  const freq = headers.indexOf("frequency A");
  if (freq < 0) return;
  let t = Date.now();
  await page.click(`#list thead th:nth-child(${freq + 1})`);
  await ready(page, t);
  out.sorted_desc = await column(freq);
  t = Date.now();
  await page.click(`#list thead th:nth-child(${freq + 1})`);
  await ready(page, t);
  out.sorted_asc = await column(freq);
  t = Date.now();
  await page.click("#next");
  await ready(page, t);
  out.page_info = await page.textContent("#pageinfo");
  const row = page.locator("#list tbody tr").first();
  t = Date.now();
  await row.click();
  await ready(page, t);
  out.row_latent = +(await row.getAttribute("data-latent"));
  out.row_cards = await cards(page);
}

async function open(page, out) {
  if (!spec.open) return;
  const t = Date.now();
  await page.goto(url("latents.html", spec.open), { waitUntil: "load" });
  out.open_ready = await ready(page, t - 1);
  out.open_status = await page.textContent("#status");
  out.open_cards = await cards(page);
  out.pairs_listed = await page.evaluate(() => document.querySelectorAll("#pair option").length);
  await page.screenshot({ path: path.join(spec.shots, spec.prefix + "latents_opened.png"), fullPage: false });
}

(async () => {
  fs.mkdirSync(spec.shots, { recursive: true });
  const browser = await chromium.launch({
    executablePath: spec.chromium || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync"],
  });
  const out = { errors: [] };
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    page.on("pageerror", (e) => out.errors.push(String(e)));
    page.on("console", (m) => { if (m.type() === "error") out.errors.push(m.text()); });
    await indexPage(page, out);
    await followPoint(page, out);
    if (out.point_url) {
      await search(page, out);
      await sortAndPage(page, out);
    }
    await open(page, out);
  } finally {
    await browser.close();
  }
  console.log(JSON.stringify(out));
})().catch((e) => { console.error(e); process.exit(1); });
