// The report's latent-pair browser (latents.html). Data files (latents/*.js, written by
// scripts/report_browser.py) call universae.put(key, value); the page loads them on demand with
// <script> tags, which work from file://. State lives in the URL hash:
//   #pair=P&view=matched|a|b&sort=COLUMN&asc=1&page=N&side=a|b&latent=I&q=TOKEN
"use strict";

const universae = (() => {
  const store = {}, waiting = {};
  function put(key, value) {
    store[key] = value;
    for (const [resolve] of waiting[key] || []) resolve(value);
    delete waiting[key];
  }
  function load(key) {
    if (key in store) return Promise.resolve(store[key]);
    return new Promise((resolve, reject) => {
      const first = !(key in waiting);
      (waiting[key] = waiting[key] || []).push([resolve, reject]);
      if (!first) return;
      const s = document.createElement("script");
      s.src = "latents/" + key + ".js";
      s.onerror = () => {
        for (const [, fail] of waiting[key] || []) fail(new Error("cannot load latents/" + key + ".js"));
        delete waiting[key];
      };
      document.head.appendChild(s);
    });
  }
  return { put, load };
})();

// ---- typed arrays from base64 -------------------------------------------------------------------
function buffer(text) {
  const s = atob(text), u = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) u[i] = s.charCodeAt(i);
  return u.buffer;
}
const floats = (text) => new Float32Array(buffer(text));
const ints = (text) => new Int32Array(buffer(text));
function tokenIds(t) {
  if (t.dtype !== "u16") return ints(t.data);
  const u = new Uint16Array(buffer(t.data)), out = new Int32Array(u.length);
  for (let i = 0; i < u.length; i++) out[i] = u[i] === 65535 ? -1 : u[i];
  return out;
}

// Decoded data, once per key.
const decoded = {};
function data(key, decode) {
  if (!(key in decoded)) decoded[key] = universae.load(key).then(decode);
  return decoded[key];
}
const indexData = () => data("index", (x) => x);
const vocab = (v) => data("vocab" + v, (x) => x);
const saeData = (s) => data("sae" + s, (x) => ({
  frequency: floats(x.frequency), topTokens: x.top_tokens ? tokenIds(x.top_tokens) : null }));
const cardData = (s, c) => data("cards" + s + "_" + c, (x) => ({ values: floats(x.values), windows: tokenIds(x.windows) }));
function pairData(p) {
  return data("pair" + p, (x) => {
    const out = {};
    for (const [k, v] of Object.entries(x)) out[k] = /match|argmax/.test(k) ? ints(v) : floats(v);
    return out;
  });
}

// ---- a pair's rows ------------------------------------------------------------------------------
// Shared as universae counts it (Paulo & Belrose): the decoder and the encoder Hungarian matchings
// both give a cosine above τ.
function pairModel(meta, cols, freqA, freqB) {
  const tau = meta.threshold;
  const hasLap = !!cols.dec_match;
  const shared = (i) => hasLap && cols.dec_match[i] >= 0 && cols.enc_match[i] >= 0 &&
    cols.dec_cos[i] > tau && cols.enc_cos[i] > tau;
  const partnerA = (i) => hasLap ? cols.dec_match[i] : cols.argmax_corr_ab ? cols.argmax_corr_ab[i] :
    cols.argmax_cos_ab ? cols.argmax_cos_ab[i] : -1;
  const matchedB = new Int32Array(freqB.length).fill(-1), sharedB = new Uint8Array(freqB.length);
  if (hasLap) {
    for (let i = 0; i < cols.dec_match.length; i++) {
      const j = cols.dec_match[i];
      if (j >= 0) { matchedB[j] = i; if (shared(i)) sharedB[j] = 1; }
    }
  }
  const partnerB = (j) => matchedB[j] >= 0 ? matchedB[j] : cols.argmax_corr_ba ? cols.argmax_corr_ba[j] :
    cols.argmax_cos_ba ? cols.argmax_cos_ba[j] : -1;
  const value = (arr, i) => (arr && i >= 0 && i < arr.length ? arr[i] : NaN);
  const a = [
    { key: "latent", title: "A latent", get: (i) => i, fmt: "int" },
    { key: "partner", title: hasLap ? "B partner (Hungarian)" : "B partner (best)", get: partnerA, fmt: "int" },
    cols.dec_cos && { key: "dec_cos", title: "decoder cos (matched)", get: (i) => cols.dec_cos[i] },
    cols.enc_cos && { key: "enc_cos", title: "encoder cos (matched)", get: (i) => cols.enc_cos[i] },
    cols.max_cos_ab && { key: "max_cos", title: "max decoder cos", get: (i) => cols.max_cos_ab[i] },
    cols.corr_ab && { key: "corr", title: "max activation corr", get: (i) => cols.corr_ab[i] },
    { key: "freq_a", title: "frequency A", get: (i) => freqA[i], fmt: "freq" },
    { key: "freq_b", title: "frequency B (partner)", get: (i) => value(freqB, partnerA(i)), fmt: "freq" },
    hasLap && { key: "shared", title: "shared", get: (i) => (shared(i) ? 1 : 0), fmt: "yes" },
  ].filter(Boolean);
  const b = [
    { key: "latent", title: "B latent", get: (j) => j, fmt: "int" },
    { key: "partner", title: hasLap ? "A partner (Hungarian)" : "A partner (best)", get: partnerB, fmt: "int" },
    cols.max_cos_ba && { key: "max_cos", title: "max decoder cos", get: (j) => cols.max_cos_ba[j] },
    cols.corr_ba && { key: "corr", title: "max activation corr", get: (j) => cols.corr_ba[j] },
    { key: "freq_b", title: "frequency B", get: (j) => freqB[j], fmt: "freq" },
    { key: "freq_a", title: "frequency A (partner)", get: (j) => value(freqA, partnerB(j)), fmt: "freq" },
  ].filter(Boolean);
  const range = (n, keep) => { const r = []; for (let i = 0; i < n; i++) if (keep(i)) r.push(i); return r; };
  const views = {
    matched: { side: "a", columns: a, rows: range(freqA.length, (i) => partnerA(i) >= 0), sort: cols.dec_cos ? "dec_cos" : "corr" },
    a: { side: "a", columns: a, rows: range(freqA.length, (i) => !shared(i)), sort: "freq_a" },
    b: { side: "b", columns: b, rows: range(freqB.length, (j) => !sharedB[j]), sort: "freq_b" },
  };
  let nShared = 0;
  for (let i = 0; i < freqA.length; i++) nShared += shared(i);
  return { views, partnerA, partnerB, shared, hasLap, nShared, cols };
}

// ---- rendering ----------------------------------------------------------------------------------
const PAGE = 100;
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
function number(v, fmt) {
  if (v === undefined || v === null || Number.isNaN(v)) return "";
  if (fmt === "int") return v < 0 ? "" : String(v);
  if (fmt === "yes") return v ? "yes" : "no";
  if (fmt === "freq") return v === 0 ? "0" : v < 1e-3 ? v.toExponential(1) : (100 * v).toFixed(2) + "%";
  return v.toFixed(3);
}
function showToken(text) {
  return esc(text).replace(/\n/g, "<span class=nl>\u21b5</span>\n");
}

function state() {
  const p = new URLSearchParams(location.hash.slice(1));
  return { pair: p.has("pair") ? +p.get("pair") : -1, view: p.get("view") || "matched", sort: p.get("sort") || "", asc: p.get("asc") === "1",
    page: +(p.get("page") || 0), side: p.get("side") || "", latent: p.has("latent") ? +p.get("latent") : -1, q: p.get("q") || "" };
}
function go(changes) {
  const s = { ...state(), ...changes }, p = new URLSearchParams();
  for (const [k, v] of Object.entries(s)) if (v !== "" && v !== -1 && v !== false && !(k === "page" && v === 0)) p.set(k, v === true ? "1" : v);
  location.hash = p.toString();
}

// The view's rows sorted by a column (NaN last, ties by latent), cached per view, column and order.
function sortedRows(view, key, asc) {
  const column = view.columns.find((c) => c.key === key) || view.columns[0];
  const cacheKey = column.key + (asc ? "+" : "-");
  view.sorted = view.sorted || {};
  if (!view.sorted[cacheKey]) {
    const rows = view.rows.slice(), sign = asc ? 1 : -1, v = new Map(rows.map((r) => [r, column.get(r)]));
    rows.sort((x, y) => {
      const a = v.get(x), b = v.get(y);
      if (Number.isNaN(a) || Number.isNaN(b)) return Number.isNaN(a) - Number.isNaN(b) || x - y;
      return a === b ? x - y : sign * (a - b);
    });
    view.sorted[cacheKey] = rows;
  }
  return { rows: view.sorted[cacheKey], column };
}

function renderTable(model, s) {
  const view = model.views[s.view] || model.views.matched;
  const key = s.sort || view.sort;
  const { rows, column } = sortedRows(view, key, s.asc);
  const pages = Math.max(1, Math.ceil(rows.length / PAGE)), page = Math.min(Math.max(0, s.page), pages - 1);
  $("list").tHead.innerHTML = "<tr>" + view.columns.map((c) =>
    `<th data-key="${c.key}" class="${c === column ? "sorted" + (s.asc ? " asc" : "") : ""}">${esc(c.title)}</th>`).join("") + "</tr>";
  $("list").tBodies[0].innerHTML = rows.slice(page * PAGE, (page + 1) * PAGE).map((r) => {
    const chosen = s.side === view.side && s.latent === r ? " class=chosen" : "";
    return `<tr data-side="${view.side}" data-latent="${r}"${chosen}>` + view.columns.map((c) => {
      const v = c.get(r), cls = c.fmt === "yes" ? ` class=${v ? "yes" : "no"}` : "";
      return `<td${cls}>${number(v, c.fmt)}</td>`;
    }).join("") + "</tr>";
  }).join("");
  $("pageinfo").textContent = rows.length ? `rows ${page * PAGE + 1}–${Math.min(rows.length, (page + 1) * PAGE)} of ${rows.length}, page ${page + 1} of ${pages}` : "no rows";
  $("prev").disabled = page === 0;
  $("next").disabled = page >= pages - 1;
  for (const b of document.querySelectorAll("#views button")) b.classList.toggle("on", b.dataset.view === s.view);
}

async function card(meta, latent, about) {
  if (latent < 0 || latent >= meta.n) return `<div class=card><h2>${esc(meta.name)}</h2><div class=about>no partner</div></div>`;
  const sae = await saeData(meta.id);
  const f = sae.frequency[latent];
  let html = `<div class=card data-sae="${meta.id}" data-latent="${latent}"><h2>${esc(meta.name)} · latent ${latent}</h2>` +
    `<div class=about>${esc(meta.results)} · ${esc(meta.hookpoint)} · fires on ${number(f, "freq")} of the compared tokens` +
    (about ? "<br>" + about : "") + "</div>";
  if (!meta.examples) return html + "<div class=about>No contexts: compare ran without activations or token ids.</div></div>";
  const [chunk, words] = await Promise.all([cardData(meta.id, Math.floor(latent / meta.chunk)), vocab(meta.vocab)]);
  const local = latent % meta.chunk, E = meta.examples, W = meta.width, centre = (W - 1) / 2;
  let shown = 0;
  for (let e = 0; e < E; e++) {
    const base = (local * E + e) * W;
    if (chunk.windows[base + centre] < 0) continue;
    let text = "";
    for (let w = 0; w < W; w++) {
      const id = chunk.windows[base + w];
      if (id < 0) continue;
      text += w === centre ? `<mark>${showToken(words[id])}</mark>` : showToken(words[id]);
    }
    html += `<div class=example><span class=value>${chunk.values[local * E + e].toFixed(2)}</span><span>${text}</span></div>`;
    shown++;
  }
  if (!shown) html += "<div class=about>Never fired on the compared tokens.</div>";
  return html + "</div>";
}

async function renderCards(index, meta, model, s) {
  if (s.latent < 0 || (s.side !== "a" && s.side !== "b")) { $("cards").innerHTML = ""; return; }
  const A = index.saes[meta.a], B = index.saes[meta.b], c = model.cols;
  const i = s.side === "a" ? s.latent : model.partnerB(s.latent), j = s.side === "b" ? s.latent : model.partnerA(s.latent);
  const rel = [];
  if (model.hasLap && i >= 0) {
    rel.push(`Hungarian partner B ${c.dec_match[i]}: decoder cos ${number(c.dec_cos[i])}, encoder cos ${number(c.enc_cos[i])}` +
      (c.enc_match[i] !== c.dec_match[i] ? ` (encoder matching pairs it with B ${c.enc_match[i]})` : "") +
      ` — ${model.shared(i) ? "shared" : "not shared"} at τ = ${meta.threshold}`);
  }
  if (c.corr_ab && i >= 0) rel.push(`max activation corr ${number(c.corr_ab[i])} with B ${c.argmax_corr_ab[i]}`);
  const relB = [];
  if (c.max_cos_ba && j >= 0) relB.push(`max decoder cos ${number(c.max_cos_ba[j])} with A ${c.argmax_cos_ba[j]}`);
  if (c.corr_ba && j >= 0) relB.push(`max activation corr ${number(c.corr_ba[j])} with A ${c.argmax_corr_ba[j]}`);
  const html = await Promise.all([card(A, i, rel.join("<br>")), card(B, j, relB.join("<br>"))]);
  $("cards").innerHTML = html.join("");
}

async function renderSearch(index, meta, q) {
  const box = $("searchresults");
  if (!q.trim()) { box.innerHTML = ""; return; }
  const want = q.trim().toLowerCase(), parts = [];
  for (const [side, id] of [["a", meta.a], ["b", meta.b]]) {
    const s = index.saes[id];
    if (!s.examples) { parts.push(`<div>${esc(s.name)}: no contexts kept</div>`); continue; }
    const [words, sae] = await Promise.all([vocab(s.vocab), saeData(id)]);
    let ids = new Set();
    words.forEach((w, t) => { if (w.trim().toLowerCase() === want) ids.add(t); });
    const exact = ids.size > 0;
    if (!exact) words.forEach((w, t) => { if (w.toLowerCase().includes(want)) ids.add(t); });
    const counts = new Map();
    for (let e = 0; e < sae.topTokens.length; e++) {
      if (ids.has(sae.topTokens[e])) {
        const l = Math.floor(e / s.examples);
        counts.set(l, (counts.get(l) || 0) + 1);
      }
    }
    const found = [...counts.entries()].sort((x, y) => y[1] - x[1] || x[0] - y[0]);
    parts.push(`<div><b>${esc(s.name)}</b>: ${found.length} latent(s) whose top examples fire on ` +
      `${exact ? "the token" : "tokens containing"} “${esc(q.trim())}”` + (found.length > 50 ? " (first 50)" : "") + ": " +
      found.slice(0, 50).map(([l, n]) => `<a href="#" data-side="${side}" data-latent="${l}">${l}</a> (${n}/${s.examples})`).join(" ") + "</div>");
  }
  box.innerHTML = parts.join("");
}

let current = null;  // {pair, model}
async function render() {
  const s = state();
  try {
    const index = await indexData();
    if (!index.pairs.length) { $("status").textContent = "No compared pairs in these results."; return; }
    const select = $("pair");
    if (!select.options.length) {
      select.innerHTML = index.pairs.map((p) => `<option value="${p.id}">${esc(p.results)}: ${esc(p.pair)}</option>`).join("");
    }
    const meta = index.pairs.find((p) => p.id === s.pair) || index.pairs[0];  // listed seed pairs first
    select.value = String(meta.id);
    if (!current || current.pair !== meta.id) {
      const [cols, sa, sb] = await Promise.all([pairData(meta.id), saeData(meta.a), saeData(meta.b)]);
      current = { pair: meta.id, model: pairModel(meta, cols, sa.frequency, sb.frequency) };
    }
    const model = current.model, A = index.saes[meta.a], B = index.saes[meta.b];
    $("status").innerHTML = `<b>${esc(meta.pair)}</b> (${esc(meta.results)}): A = ${esc(A.name)} (${A.n} latents, ${esc(A.hookpoint)}), ` +
      `B = ${esc(B.name)} (${B.n} latents, ${esc(B.hookpoint)})` +
      (model.hasLap ? `; ${model.nShared} of A's latents shared at τ = ${meta.threshold} (decoder and encoder Hungarian cosines both above τ)` : "") +
      ". Frequencies are over the compared tokens; click a row for the latents' top contexts.";
    if ($("search").value !== s.q && document.activeElement !== $("search")) $("search").value = s.q;
    renderTable(model, s);
    await Promise.all([renderCards(index, meta, model, s), renderSearch(index, meta, s.q)]);
    document.body.dataset.ready = String(Date.now());
  } catch (err) {
    $("status").innerHTML = `<span class=error>${esc(err.message)}</span>`;
    document.body.dataset.ready = "error";
  }
}

function wire() {
  $("pair").addEventListener("change", (e) => go({ pair: +e.target.value, page: 0, side: "", latent: -1, sort: "" }));
  for (const b of document.querySelectorAll("#views button")) b.addEventListener("click", () => go({ view: b.dataset.view, page: 0, sort: "" }));
  $("list").addEventListener("click", (e) => {
    const th = e.target.closest("th");
    if (th) { const s = state(); go({ sort: th.dataset.key, asc: s.sort === th.dataset.key ? !s.asc : false, page: 0 }); return; }
    const tr = e.target.closest("tr[data-latent]");
    if (tr) { go({ side: tr.dataset.side, latent: +tr.dataset.latent }); $("cards").scrollIntoView(); }
  });
  $("searchresults").addEventListener("click", (e) => {
    const a = e.target.closest("a[data-latent]");
    if (a) { e.preventDefault(); go({ side: a.dataset.side, latent: +a.dataset.latent }); }
  });
  let timer = null;
  $("search").addEventListener("input", (e) => { clearTimeout(timer); timer = setTimeout(() => go({ q: e.target.value }), 250); });
  $("prev").addEventListener("click", () => go({ page: state().page - 1 }));
  $("next").addEventListener("click", () => go({ page: state().page + 1 }));
  window.addEventListener("hashchange", render);
}

wire();
render();
