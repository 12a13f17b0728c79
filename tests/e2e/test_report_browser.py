"""End to end in a real browser: Debian's Chromium (headless, driven by playwright-core from npm,
installed into the build tree) renders `universae report` of the quick start's results and of a small
sweep's, from file://, and the rendered DOM is checked against the results and the activation store:

- every figure of index.html loaded; the figure's points link to the latent browser;
- following a point opens that latent's card beside its Hungarian partner's, each with its top
  contexts: the firing token (highlighted) and ±context tokens read here from the store's own token
  sequence at the example positions, and the activation values of the results file;
- the search box finds every latent whose top examples fire on a token (checked against the results'
  top tokens); sorting by a column and paging work; a sweep's report lists every compared pair.

Screenshots stay in BUILD/test-artefacts/report_browser/ (look at them). The page load times are
printed, not asserted (speed is measured in bench/, never by tests).

playwright-core (PLAYWRIGHT_VERSION) is installed with npm into BUILD/playwright_node the first time;
Chromium comes from Debian (scripts/install-deps.sh). Where either is missing the test fails and says
why, unless UNIVERSAE_SKIP_BROWSER=1 is set: then it is skipped.
"""
import json
import os
import sys
import tempfile
import unittest
import urllib.parse

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
from universae_test import BINARY, SOURCE, npm_package, run_command, universae  # noqa: E402

PLAYWRIGHT_VERSION = "1.64.1"
NODE_DIR = os.path.join(os.path.dirname(BINARY), "playwright_node")
SHOTS = os.path.join(os.path.dirname(BINARY), "test-artefacts", "report_browser")
CHROMIUM = "/usr/bin/chromium"
DRIVER = os.path.join(SOURCE, "tests", "e2e", "report_dom.js")


def install_playwright():
    """None when playwright-core is ready under NODE_DIR and Chromium is installed, else why not."""
    if not os.path.exists(CHROMIUM):
        return f"{CHROMIUM} is missing (scripts/install-deps.sh installs Debian's chromium)"
    return npm_package(NODE_DIR, "playwright-core", PLAYWRIGHT_VERSION)


def study(job, out):
    proc = universae(["run", os.path.join(SOURCE, "jobs", job), "--set", f"run.output_dir={out}"], 2, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return out


def render(report, prefix, search="", open_hash=""):
    """What report_dom.js reads from the rendered pages (JSON)."""
    spec = {"module": os.path.join(NODE_DIR, "node_modules", "playwright-core"), "report": report, "shots": SHOTS,
            "prefix": prefix, "search": search, "open": open_hash, "chromium": CHROMIUM}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(spec, f)
    try:
        proc = run_command(["node", DRIVER, f.name], timeout=300, cwd=None)
    finally:
        os.unlink(f.name)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def piece(text):
    """A vocabulary entry as the page shows it (byte pieces as their byte, control tokens trimmed)."""
    if len(text) == 6 and text.startswith("<0x") and text.endswith(">"):
        return chr(int(text[3:5], 16))
    if text.strip().startswith("<") and text.strip().endswith(">"):
        return text.strip()
    return text.replace("\u2581", " ")


class StoreContexts:
    """Top contexts recomputed from the activation store's own tokens and sequence offsets."""

    def __init__(self, results, store):
        with h5py.File(results, "r") as f:
            self.vocab = [piece(v.decode()) for v in f["activations/vocab"][()]]
            self.top = {name: (g["top_positions"][()], g["top_values"][()], int(g.attrs["context_tokens"]))
                        for name, g in f["saes"].items() if "top_positions" in g}
            self.top_tokens = {name: g["top_tokens"][()] for name, g in f["saes"].items() if "top_tokens" in g}
        with h5py.File(store, "r") as s:
            self.tokens, self.offsets = s["tokens"][()], s["seq_offsets"][()]

    def examples(self, sae, latent):
        """[(value, text, firing token text)] of the latent's examples, as a card should show them."""
        positions, values, c = self.top[sae]
        out = []
        for p, v in zip(positions[latent], values[latent]):
            if p < 0:
                continue
            seq = np.searchsorted(self.offsets, p, side="right") - 1
            lo, hi = max(self.offsets[seq], p - c), min(self.offsets[seq + 1], p + c + 1)
            out.append((float(v), "".join(self.vocab[t] for t in self.tokens[lo:hi]), self.vocab[self.tokens[p]]))
        return out

    def search(self, sae, token_text):
        """Latents whose top examples fire on the token whose text is token_text: [(latent, count)] by count."""
        ids = {i for i, w in enumerate(self.vocab) if w.strip().lower() == token_text.strip().lower()}
        counts = np.isin(self.top_tokens[sae], list(ids)).sum(1)
        found = [(int(l), int(counts[l])) for l in np.flatnonzero(counts)]
        return sorted(found, key=lambda x: (-x[1], x[0]))


@unittest.skipIf(os.environ.get("UNIVERSAE_SKIP_BROWSER") == "1", "UNIVERSAE_SKIP_BROWSER=1")
class ReportInBrowser(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        why = install_playwright()
        if why:
            raise AssertionError(why + " (UNIVERSAE_SKIP_BROWSER=1 skips this test)")
        cls.tmp = tempfile.TemporaryDirectory()
        cls.quick = study("quickstart_ci.toml", os.path.join(cls.tmp.name, "quick"))
        cls.sweep = study("seeds_study_ci.toml", os.path.join(cls.tmp.name, "seeds"))

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def check_card(self, card, contexts, sae, latent):
        self.assertEqual(card["latent"], latent)
        want = contexts.examples(sae, latent)
        self.assertEqual(len(card["examples"]), len(want), card["title"])
        self.assertGreater(len(want), 0)
        for got, (value, text, mark) in zip(card["examples"], want):
            self.assertAlmostEqual(got["value"], value, delta=0.0051)
            self.assertEqual(got["text"].replace("\u21b5", ""), text)
            self.assertEqual(got["mark"].replace("\u21b5", ""), mark)

    def test_quickstart_report(self):
        results = os.path.join(self.quick, "results.h5")
        proc = universae(["report", results], timeout=600)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        contexts = StoreContexts(results, os.path.join(self.quick, "activations.h5"))
        # A word (3+ letters) some latent's top example fires on.
        word = next(w for w in (contexts.vocab[int(t)] for t in contexts.top_tokens["seed0"][:, 0])
                    if w.strip().isalpha() and len(w.strip()) >= 3)
        dom = render(os.path.join(self.quick, "report"), "quickstart_", search=word)
        print(f"first page load: index.html {dom['index_load_ms']:.0f} ms, latents.html {dom['latents_load_ms']:.0f} ms",
              file=sys.stderr)
        self.assertEqual(dom["errors"], [])
        self.assertGreaterEqual(len(dom["images"]), 4)
        self.assertTrue(all(i["ok"] for i in dom["images"]), dom["images"])
        self.assertTrue(dom["browser_links"], "index.html links the latent browser")
        # A figure point → that latent's card (A) and its Hungarian partner's (B).
        self.assertGreater(len(dom["points"]), 100)
        hash_ = urllib.parse.parse_qs(urllib.parse.urlparse(dom["point_url"]).fragment)
        latent = int(hash_["latent"][0])
        self.assertNotEqual(dom["point_ready"], "error")
        a, b = dom["point_cards"]
        self.assertTrue(a["title"].startswith("seed0 "), a["title"])
        self.check_card(a, contexts, "seed0", latent)
        with h5py.File(results, "r") as f:
            partner = int(f["pairs/seed0--seed1/lap/decoder_match"][latent])
        self.check_card(b, contexts, "seed1", partner)
        # The search box: every latent whose top examples fire on the word, most examples first.
        for side, sae, found in zip("ab", ("seed0", "seed1"), dom["search"]):
            want = contexts.search(sae, word)[:50]
            self.assertGreater(len(want), 0)
            self.assertEqual([x["latent"] for x in found["latents"]], [l for l, _ in want], found["text"])
        first = dom["search"][0]["latents"][0]["latent"]
        self.check_card(dom["search_cards"][0], contexts, "seed0", first)
        # Sorting by frequency (descending, then ascending) and the second page.
        desc = [float(v.rstrip("%")) / (100 if v.endswith("%") else 1) for v in dom["sorted_desc"] if v]
        self.assertEqual(desc, sorted(desc, reverse=True))
        asc = [float(v.rstrip("%")) / (100 if v.endswith("%") else 1) for v in dom["sorted_asc"] if v]
        self.assertEqual(asc, sorted(asc))
        self.assertIn("rows 101–200", dom["page_info"])
        self.check_card(dom["row_cards"][0], contexts, "seed0", dom["row_latent"])
        for shot in ("index.png", "latents_from_figure.png", "latents_search.png"):
            self.assertGreater(os.path.getsize(os.path.join(SHOTS, "quickstart_" + shot)), 10000)

    def test_sweep_report(self):
        out = os.path.join(self.tmp.name, "sweep_report")
        proc = universae(["report", self.sweep, "--out", out], timeout=600)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        with open(os.path.join(out, "latents", "index.js")) as f:
            index = json.loads(f.read()[len('universae.put("index", '):-3])
        files = [os.path.join(d, "results.h5") for d, _, fs in os.walk(self.sweep) if "results.h5" in fs]
        pairs = sum(len(h5py.File(p, "r")["pairs"]) for p in files)
        self.assertEqual(len(index["pairs"]), pairs)
        # The last listed pair (another task than the first), latent 3 of its A.
        pair = index["pairs"][-1]
        dom = render(out, "sweep_", open_hash=f"pair={pair['id']}&side=a&latent=3")
        self.assertEqual(dom["errors"], [])
        self.assertTrue(all(i["ok"] for i in dom["images"]), dom["images"])
        self.assertEqual(dom["pairs_listed"], pairs)
        self.assertIn(pair["pair"], dom["open_status"])
        results = next(p for p in files if os.path.relpath(os.path.dirname(p), self.sweep) == pair["results"]
                       or pair["results"] in p)
        a = index["saes"][pair["a"]]["name"]
        with h5py.File(results, "r") as f:
            store = f[f"saes/{a}"].attrs["activations_source"]
            store = store.decode() if isinstance(store, bytes) else store
        contexts = StoreContexts(results, store)
        self.check_card(dom["open_cards"][0], contexts, a, 3)


if __name__ == "__main__":
    unittest.main()
