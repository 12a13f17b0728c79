"""The report's latent-pair browser: a static page (DIR/latents.html, no server: works from file://)
over every compared pair of the results files, with each latent's top activating contexts.

    write_browser(out, paths, labels) → {(results label, pair): pair id}

Data go to DIR/latents/ as JavaScript files the page loads on demand with <script> tags (browsers do
not let a file:// page fetch() files):

- index.js           the pairs and SAEs: names, sizes, which card files and vocabulary each uses;
- vocab<V>.js        each vocabulary's token strings (byte pieces decoded, ▁/Ġ as spaces);
- sae<S>.js          an SAE's firing frequency and its top examples' token ids (the token search);
- pair<P>.js         a pair's per-latent columns: Hungarian partners and cosines (decoder, encoder),
                     max decoder cosine and activation correlation both ways with their argmax;
- cards<S>_<C>.js    an SAE's top examples for latents [C·CHUNK, (C+1)·CHUNK): activation values and
                     the ±context token windows universae's compare stage kept (compare.top_examples,
                     compare.context_tokens).

Arrays are little-endian typed arrays in base64 (token ids as uint16 when the vocabulary allows, −1 as
65535), so a 131,072-latent SAE's list loads as a few MB and the page shows 100 rows at a time.
An SAE compared in several results files (a sweep's across-task pairs) gets one set of files.
"""
import base64
import hashlib
import json
import os
import shutil

import h5py
import numpy as np

CHUNK = 1024  # latents per card file
HERE = os.path.dirname(os.path.abspath(__file__))


def b64(values, dtype):
    return base64.b64encode(np.ascontiguousarray(values, dtype=dtype).tobytes()).decode("ascii")


def token_ids(values, vocab_size):
    """Token ids for the page: uint16 (−1 → 65535) when the vocabulary fits, else int32."""
    values = np.asarray(values)
    if vocab_size < 65535:
        return {"dtype": "u16", "data": b64(np.where(values < 0, 65535, values), "<u2")}
    return {"dtype": "i32", "data": b64(values, "<i4")}


def piece(text):
    """A vocabulary entry as text: byte-fallback pieces ("<0x0A>") as their byte, SentencePiece's ▁ and
    byte-level BPE's Ġ/Ċ as space and newline."""
    if len(text) == 6 and text.startswith("<0x") and text.endswith(">"):
        return chr(int(text[3:5], 16))
    if text.strip().startswith("<") and text.strip().endswith(">"):  # control tokens: llama2.c's "\n<s>\n"
        return text.strip()
    return text.replace("\u2581", " ").replace("\u0120", " ").replace("\u010a", "\n")


def emit(out, name, key, payload):
    """Writes DIR/latents/<name>.js registering `payload` under `key` (the page's universae.put)."""
    with open(os.path.join(out, "latents", name + ".js"), "w") as f:
        f.write(f"universae.put({json.dumps(key)}, {json.dumps(payload, separators=(',', ':'))});\n")


class Browser:
    """Collects the SAEs, vocabularies and pairs of every results file, then writes their files."""

    def __init__(self, out):
        self.out = out
        self.saes, self.sae_ids = [], {}       # SAE metadata; (path, activation source, name if no path) → id
        self.vocabs, self.vocab_ids = [], {}   # vocabulary digest → id
        self.pairs = []

    def vocab(self, f):
        if "activations/vocab" not in f:
            return -1
        words = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in f["activations/vocab"][()]]
        digest = hashlib.sha1("\0".join(words).encode()).hexdigest()
        if digest not in self.vocab_ids:
            self.vocab_ids[digest] = len(self.vocabs)
            self.vocabs.append(words)
        return self.vocab_ids[digest]

    def sae(self, f, label, name, vocab):
        """The id of /saes/<name> of results file f, writing its files the first time it is seen."""
        g = f["saes"][name]
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in g.attrs.items()}
        key = (attrs.get("path") or f"{label}/{name}", attrs.get("activations_source", ""))
        if key in self.sae_ids:
            return self.sae_ids[key]
        sid = len(self.saes)
        self.sae_ids[key] = sid
        n = int(attrs.get("n_latents", 0))
        has_cards = "top_windows" in g and "top_values" in g
        meta = {"id": sid, "name": name, "results": label, "path": attrs.get("path", ""), "n": n,
                "architecture": attrs.get("architecture", ""), "k": int(attrs.get("k", 0)),
                "hookpoint": attrs.get("hookpoint", ""), "baseline": bool(attrs.get("baseline", False)),
                "vocab": vocab if has_cards else -1, "examples": 0, "width": 0, "chunk": CHUNK}
        if has_cards:
            meta["examples"], meta["width"] = int(g["top_values"].shape[1]), int(g["top_windows"].shape[2])
        self.saes.append(meta)
        self.write_sae(g, meta)
        return sid

    def write_sae(self, g, meta):
        sid, vocab_size = meta["id"], len(self.vocabs[meta["vocab"]]) if meta["vocab"] >= 0 else 1 << 31
        freq = g["frequency"][()] if "frequency" in g else np.full(meta["n"], np.nan)
        payload = {"frequency": b64(freq, "<f4")}
        if meta["examples"]:
            payload["top_tokens"] = token_ids(g["top_tokens"][()], vocab_size)
        emit(self.out, f"sae{sid}", f"sae{sid}", payload)
        if not meta["examples"]:
            return
        values, windows = g["top_values"], g["top_windows"]
        for c, first in enumerate(range(0, meta["n"], CHUNK)):
            last = min(first + CHUNK, meta["n"])
            emit(self.out, f"cards{sid}_{c}", f"cards{sid}_{c}",
                 {"values": b64(values[first:last], "<f4"), "windows": token_ids(windows[first:last], vocab_size)})

    def add_results(self, path, label):
        with h5py.File(path, "r") as f:
            vocab = self.vocab(f)
            for pair, g in f.get("pairs", {}).items():
                a, b = g.attrs.get("a", pair.split("--")[0]), g.attrs.get("b", pair.split("--")[-1])
                a, b = (v.decode() if isinstance(v, bytes) else v for v in (a, b))
                if a not in f.get("saes", {}) or b not in f["saes"]:
                    continue
                pid = len(self.pairs)
                self.pairs.append({"id": pid, "results": label, "pair": pair, "a": self.sae(f, label, a, vocab),
                                   "b": self.sae(f, label, b, vocab), "baseline": bool(g.attrs.get("baseline", False)),
                                   "threshold": float(g["lap"].attrs["threshold"]) if "lap" in g else None})
                emit(self.out, f"pair{pid}", f"pair{pid}", pair_columns(g))

    def finish(self):
        for v, words in enumerate(self.vocabs):
            emit(self.out, f"vocab{v}", f"vocab{v}", [piece(w) for w in words])
        emit(self.out, "index", "index", {"pairs": self.pairs, "saes": self.saes})


# Per-latent columns of a pair: (file path below the pair's group, page name, dtype).
PAIR_COLUMNS = (("lap/decoder_match", "dec_match", "<i4"), ("lap/decoder_cos", "dec_cos", "<f4"),
                ("lap/encoder_match", "enc_match", "<i4"), ("lap/encoder_cos", "enc_cos", "<f4"),
                ("decoder/max_cos_ab", "max_cos_ab", "<f4"), ("decoder/argmax_ab", "argmax_cos_ab", "<i4"),
                ("decoder/max_cos_ba", "max_cos_ba", "<f4"), ("decoder/argmax_ba", "argmax_cos_ba", "<i4"),
                ("activation/max_corr_ab", "corr_ab", "<f4"), ("activation/argmax_ab", "argmax_corr_ab", "<i4"),
                ("activation/max_corr_ba", "corr_ba", "<f4"), ("activation/argmax_ba", "argmax_corr_ba", "<i4"))


def pair_columns(g):
    return {name: b64(g[path][()], dtype) for path, name, dtype in PAIR_COLUMNS if path in g}


def write_browser(out, paths, labels):
    """Writes DIR/latents.html and DIR/latents/ for the results files; → {(label, pair name): pair id}."""
    os.makedirs(os.path.join(out, "latents"), exist_ok=True)
    browser = Browser(out)
    for path, label in zip(paths, labels):
        browser.add_results(path, label)
    browser.pairs.sort(key=lambda p: (p["baseline"], p["results"], p["pair"]))  # seed pairs before baselines
    browser.finish()
    shutil.copyfile(os.path.join(HERE, "report_latents.js"), os.path.join(out, "latents", "browser.js"))
    shutil.copyfile(os.path.join(HERE, "report_latents.html"), os.path.join(out, "latents.html"))
    return {(p["results"], p["pair"]): p["id"] for p in browser.pairs}


def point_links(fig, ax, xs, ys, hrefs, titles):
    """HTML anchors over a drawn figure's points (position: absolute in %, so they follow the image as it
    is scaled): call after the figure's layout is final (save() calls tight_layout: call it first)."""
    fig.canvas.draw()
    width, height = fig.canvas.get_width_height()
    pixels = ax.transData.transform(np.column_stack([xs, ys]))
    inside = ax.bbox
    links = []
    for (x, y), href, title in zip(pixels, hrefs, titles):
        if not (inside.x0 <= x <= inside.x1 and inside.y0 <= y <= inside.y1):
            continue
        links.append(f"<a class=pt href='{href}' title='{title}' style='left:{100 * x / width:.3f}%;"
                     f"top:{100 * (1 - y / height):.3f}%'></a>")
    return "".join(links)
