"""Golden test: activation statistics (METHODS.md §5) against numpy references at 1, 2 and 3 ranks.

An activation store written with h5py (tokens, sequences, a vocabulary with non-concept tokens,
byte-fallback pieces and category keywords) and four SAEs (topk, topk, jumprelu, gated) whose latents
follow token identities. Checked against scripts/universae_ref.py: firing frequency, correlation
maxima and argmax both ways (sparse codes and dense relu(pre)), the four mappings, top-5 positions and
token windows, the non-concept filter, semantic-subspace membership, the activation-paired SVCCA/RSA/CKA/
kNN scores, p-values from the stored nulls, and identical results at every rank count. Also the
random-initialisation and --baseline baselines, and bad stores (exit 2, no results file)."""
import os
import sys
import tempfile
import unittest

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
from universae_test import SCRIPTS, SOURCE, universae  # noqa: E402

sys.path.insert(0, SCRIPTS)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tests/golden: lan2024_reference
import universae_ref as ref  # noqa: E402

HOOK = "blocks.0.hook_resid_post"
HOOK2 = "blocks.2.hook_resid_post"
VOCAB = ["<unk>", "<s>", "</s>", " ", ".", ",", "<0x0A>", "!", "day", " Day", "king", " King", " rain", "rain",
         "joy", " joy", "tree", " May", "cell", " brain", " the", " a", " cat", " dog", " ran", " sat", "ing",
         " big", " small", " red", " blue", " happy", " sad", " went", " home", " park", " ball", " said", " mom",
         " friend"]
GAP = 2e-5  # the reference data keeps every decision (top-k, thresholds, argmax) at least this far from a tie


def make_data(rng, T=1500, d=12):
    V = len(VOCAB)
    E = rng.standard_normal((V, d))
    lengths = rng.integers(20, 120, size=60)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    offsets = offsets[offsets < T]
    offsets = np.append(offsets, T)
    tokens = rng.integers(3, V, size=T)
    tokens[offsets[:-1]] = 1  # BOS at every sequence start
    prev = np.roll(tokens, 1)
    x = E[tokens] + 0.4 * E[prev] + 0.3 * rng.standard_normal((T, d))
    return E, tokens, offsets, x.astype(np.float32)


def sae_arrays(rng, E, n, architecture, d=12):
    rows = E[rng.integers(0, len(E), size=n)] + 0.5 * rng.standard_normal((n, d))
    W_dec = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    sae = dict(W_enc=W_dec * 0.8, b_enc=-0.3 * np.ones(n), W_dec=W_dec, b_dec=0.05 * rng.standard_normal(d),
               architecture=architecture, k=3 if architecture == "topk" else None)
    if architecture == "jumprelu":
        sae["threshold"] = 0.5 + 0.5 * rng.random(n)
    if architecture == "gated":
        sae["r_mag"] = 0.2 * rng.standard_normal(n)
        sae["b_mag"] = 0.1 * rng.standard_normal(n)
    # The references see what universae reads: float32 values.
    for key in ("W_enc", "b_enc", "W_dec", "b_dec", "threshold", "r_mag", "b_mag"):
        if key in sae:
            sae[key] = np.asarray(sae[key], dtype=np.float32).astype(np.float64)
    return sae


def write(path, sae):
    extra = {k: sae[k] for k in ("threshold", "r_mag", "b_mag") if k in sae}
    ref.write_sae(path, sae["W_enc"], sae["b_enc"], sae["W_dec"], sae["b_dec"], architecture=sae["architecture"],
                  k=sae["k"])
    with h5py.File(path, "a") as f:
        for key, value in extra.items():
            f[key] = np.asarray(value, dtype=np.float32)


def write_store(path, tokens, offsets, x, hook=HOOK):
    with h5py.File(path, "w") as f:
        f["tokens"] = tokens.astype(np.int32)
        f["doc_offsets"] = offsets.astype(np.int64)
        f["seq_offsets"] = offsets.astype(np.int64)
        f[f"activations/{hook}"] = x
        f.attrs["model"] = "golden"
        f.attrs["tokenizer"] = "golden"
        f.attrs["vocab"] = VOCAB
        f.attrs["complete"] = True


def gap_ok(values, axis):
    """True when the top two entries along `axis` are equal (an exact tie both sides break the same
    way) or at least GAP apart."""
    s = -np.sort(-values, axis=axis)
    top2 = np.take(s, [0, 1], axis=axis)
    gap = np.abs(np.take(top2, 0, axis=axis) - np.take(top2, 1, axis=axis))
    return bool(np.all((gap == 0) | (gap > GAP)))


def run(args, ranks):
    return universae(args, ranks, timeout=300, cwd=None)


class ActivationStatistics(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        rng = np.random.default_rng(44)  # a seed whose data keeps GAP from every tie (test_data_has_no_near_ties)
        cls.tmp = tempfile.TemporaryDirectory()
        tmp = cls.tmp.name
        E, cls.tokens, cls.offsets, cls.x = make_data(rng)
        cls.store = os.path.join(tmp, "store.h5")
        write_store(cls.store, cls.tokens, cls.offsets, cls.x)
        cls.names = ["a", "b", "c", "d"]
        archs = ["topk", "topk", "jumprelu", "gated"]
        sizes = [48, 40, 30, 36]
        cls.saes, cls.paths = {}, []
        for name, arch, n in zip(cls.names, archs, sizes):
            cls.saes[name] = sae_arrays(rng, E, n, arch)
            cls.paths.append(os.path.join(tmp, f"{name}.h5"))
            write(cls.paths[-1], cls.saes[name])
        x64 = cls.x.astype(np.float64)
        cls.z = {n: ref.encode(x64, s) for n, s in cls.saes.items()}
        cls.pre = {n: ref.dense_pre(x64, s) for n, s in cls.saes.items()}

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def compare(self, ranks, out, *extra):
        args = ["compare", "--activations", self.store, "--out", out,
                "--set", "data.hookpoint=layers.0", "--set", "compare.permutations=40", "--set", "compare.tile_rows=7",
                "--set", "compare.chunk_tokens=256", *extra]
        for p in self.paths:
            args += ["--sae", p]
        proc = run(args, ranks)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        return out

    def test_data_has_no_near_ties(self):
        """The precondition of exact comparison: every decision is GAP away from a tie."""
        x64 = self.x.astype(np.float64)
        for name, sae in self.saes.items():
            pre = ref.dense_pre(x64, sae)
            if sae["architecture"] == "topk":
                s = -np.sort(-pre, axis=1)
                self.assertTrue(np.all((s[:, 2] - s[:, 3] > GAP) | (s[:, 2] == 0)), name)  # 0: an exact tie of non-firing latents
            if sae["architecture"] == "jumprelu":
                raw = (x64 - sae["b_dec"]) @ sae["W_enc"].T + sae["b_enc"]
                self.assertTrue(np.all(np.abs(raw - sae["threshold"]) > GAP), name)
            if sae["architecture"] == "gated":
                gate = (x64 - sae["b_dec"]) @ sae["W_enc"].T + sae["b_enc"]
                self.assertTrue(np.all(np.abs(gate) > GAP), name)
            for values in (pre, self.z[name]):  # relu boundaries: a value is 0 or clearly positive
                self.assertFalse(np.any((values > 0) & (values < GAP)), name)

    def check_pair(self, f, a, b, za, zb, exact_reference=True):
        g = f[f"pairs/{a}--{b}/activation"]
        with np.errstate(divide="ignore", invalid="ignore"):
            c = np.corrcoef(za.T, zb.T)[: za.shape[1], za.shape[1]:]  # numpy.corrcoef itself
        c[np.isnan(c)] = 0  # σ = 0 (a latent that never fires) gives corr 0 (METHODS.md §5)
        np.testing.assert_allclose(c, ref.correlation(za, zb), atol=1e-12)
        np.testing.assert_allclose(g["max_corr_ab"][()], c.max(1), atol=1e-5, err_msg=f"{a}--{b}")
        np.testing.assert_allclose(g["max_corr_ba"][()], c.max(0), atol=1e-5, err_msg=f"{a}--{b}")
        self.assertTrue(gap_ok(c, 1) and gap_ok(c, 0), f"{a}--{b}: reference has near-tied maxima")
        np.testing.assert_array_equal(g["argmax_ab"][()], c.argmax(1))
        np.testing.assert_array_equal(g["argmax_ba"][()], c.argmax(0))
        self.assertAlmostEqual(g.attrs["mean_max_corr_ab"], c.max(1).mean(), delta=1e-6)
        self.assertAlmostEqual(g.attrs["mean_max_corr_ba"], c.max(0).mean(), delta=1e-6)
        self.assertEqual(g.attrs["n_tokens"], len(self.x))
        want = ref.mappings(c)
        for name, pairs in want.items():
            m = g[f"mappings/{name}"]
            got = list(zip(m["a"][()].tolist(), m["b"][()].tolist()))
            self.assertEqual(sorted(got), sorted(pairs), f"{a}--{b} {name}")
        return c, want

    def test_sparse_codes_at_1_2_3_ranks(self):
        outputs = []
        for ranks in (1, 2, 3):
            out = self.compare(ranks, os.path.join(self.tmp.name, f"np{ranks}", "results.h5"))
            outputs.append(out)
            scored = 0
            with h5py.File(out, "r") as f:
                vocab = [v.decode() if isinstance(v, bytes) else v for v in f["activations/vocab"][()]]
                self.assertEqual(vocab, VOCAB)
                self.assertEqual(f["activations"].attrs["hookpoint"], HOOK)
                strings = {}
                for name in self.names:
                    z = self.z[name]
                    s = f[f"saes/{name}"]
                    np.testing.assert_array_equal(s["frequency"][()], (z > 0).mean(0), err_msg=name)
                    # compare.top_examples (20) examples with ±compare.context_tokens (10) windows by default
                    top = ref.top_positions(z, 20)
                    np.testing.assert_array_equal(s["top_positions"][()], top, err_msg=name)
                    toks = np.where(top >= 0, self.tokens[np.maximum(top, 0)], -1)
                    np.testing.assert_array_equal(s["top_tokens"][()], toks, err_msg=name)
                    # ±10 windows inside the position's sequence
                    win = s["top_windows"][()]
                    self.assertEqual(s.attrs["context_tokens"], 10)
                    self.assertEqual(win.shape, (len(top), 20, 21))
                    for i, r in [(0, 0), (3, 1), (len(top) - 1, 4), (1, 19), (2, 12)]:
                        p = top[i, r]
                        if p < 0:
                            self.assertTrue(np.all(win[i, r] == -1))
                            continue
                        seq = np.searchsorted(self.offsets, p, side="right") - 1
                        lo, hi = self.offsets[seq], self.offsets[seq + 1]
                        want = [self.tokens[p + w] if lo <= p + w < hi else -1 for w in range(-10, 11)]
                        np.testing.assert_array_equal(win[i, r], want)
                    # the non-concept filter reads the top 5
                    strings[name] = [[ref.piece(VOCAB, t) for t in row if t >= 0] for row in toks[:, :5]]
                for i, a in enumerate(self.names):
                    for b in self.names[i + 1:]:
                        _, maps = self.check_pair(f, a, b, self.z[a], self.z[b])
                        kept = ref.non_concept_filter(maps["one_to_one_best"], strings[a], strings[b])
                        p = f[f"pairs/{a}--{b}/activation/paired"]
                        self.assertEqual(p.attrs["mapping"], "one_to_one_best")
                        self.assertEqual(list(zip(p["a"][()].tolist(), p["b"][()].tolist())), kept, f"{a}--{b}")
                        self.assertEqual(p.attrs["n_pairs_before_filter"], len(maps["one_to_one_best"]))
                        scored += self.check_paired_similarity(f, a, b, kept, strings) or 0
            self.assertGreater(scored, 0, "no semantic subspace was scored: the check would mean nothing")
        # Identical at every rank count.
        with h5py.File(outputs[0], "r") as f1:
            for out in outputs[1:]:
                with h5py.File(out, "r") as fn:
                    for key in ("max_corr_ab", "max_corr_ba", "argmax_ab", "argmax_ba"):
                        np.testing.assert_array_equal(f1[f"pairs/a--b/activation/{key}"][()],
                                                      fn[f"pairs/a--b/activation/{key}"][()])
                    np.testing.assert_array_equal(f1["pairs/a--b/activation/svcca/null"][()],
                                                  fn["pairs/a--b/activation/svcca/null"][()])

    def check_paired_similarity(self, f, a, b, kept, strings):
        g = f[f"pairs/{a}--{b}/activation"]
        if len(kept) < 3:
            self.assertNotIn("svcca", g)
            return
        X = self.saes[a]["W_dec"][[p for p, _ in kept]]
        Y = self.saes[b]["W_dec"][[q for _, q in kept]]
        want = dict(svcca=ref.svcca(X, Y), rsa=ref.rsa(X, Y), cka=ref.linear_cka(X, Y), mutual_knn=ref.mutual_knn(X, Y))
        for metric, value in want.items():
            m = g[metric]
            self.assertAlmostEqual(m.attrs["score"], value, delta=1e-4 if metric == "svcca" else 1e-9, msg=f"{a}--{b} {metric}")
            null = m["null"][()]
            self.assertEqual(len(null), 40)
            self.assertAlmostEqual(m.attrs["p_value"], (1 + np.sum(null >= m.attrs["score"])) / 41, delta=1e-15)
            self.assertEqual(m.attrs["pairing"], "activation_one_to_one_best_filtered")
        # Semantic subspaces (Lan et al.): keyword latents found in A and in B independently, with the
        # matching rule of their code (tests/golden/lan2024_reference.py) applied to the ±2-token windows
        # universae stored (checked against the tokens above); pairs: each B of the subset takes its most
        # correlated A of the subset (numpy corrcoef on the codes), each A its first B.
        import tomllib  # noqa: F401  (Python >= 3.11 on Debian 12)
        import lan2024_reference as lan
        with open(os.path.join(SOURCE, "configs", "concepts.toml"), "rb") as fh:
            categories = tomllib.load(fh)["categories"]
        self.assertEqual(sorted(g["subspaces"].keys()), sorted(categories))

        def seqs(name):  # per latent, (window text, top token) of each example, escaped as their code does
            esc = lambda t: ref.piece(VOCAB, t).replace("\n", "\\n")  # noqa: E731
            s_ = f[f"saes/{name}"]
            # what the keyword search reads: the top 5 examples, ±2 tokens around each
            c = int(s_.attrs["context_tokens"])
            return [[("".join(esc(t) for t in win if t >= 0), esc(top)) for top, win in zip(tops, wins) if top >= 0]
                    for tops, wins in zip(s_["top_tokens"][:, :5], s_["top_windows"][:, :5, c - 2:c + 3])]

        seqs_a, seqs_b = seqs(a), seqs(b)
        scored = 0
        for cat, words in categories.items():
            want_a, want_b = lan.lan_semantic_latents(seqs_a, seqs_b, [w.lower() for w in words], order="sorted")
            sg = g[f"subspaces/{cat}"]
            self.assertEqual(sg["latents_a"][()].tolist(), want_a, f"{a}--{b} {cat}")
            self.assertEqual(sg["latents_b"][()].tolist(), want_b, f"{a}--{b} {cat}")
            pairs = None
            if len(want_a) >= 3 and len(want_b) >= 3:
                with np.errstate(divide="ignore", invalid="ignore"):
                    c = np.corrcoef(self.z[a][:, want_a].T, self.z[b][:, want_b].T)[: len(want_a), len(want_a):]
                c[np.isnan(c)] = 0
                pairs, seen = [], set()
                for j, i in enumerate(c.argmax(0)):
                    if i not in seen:
                        seen.add(i)
                        pairs.append((want_a[i], want_b[j]))
            got = list(zip(sg["pairs_a"][()].tolist(), sg["pairs_b"][()].tolist()))
            self.assertEqual(got, pairs or [], f"{a}--{b} {cat}")
            if pairs and len(pairs) >= 3:
                Xs = self.saes[a]["W_dec"][[p for p, _ in pairs]]
                Ys = self.saes[b]["W_dec"][[q for _, q in pairs]]
                self.assertAlmostEqual(sg["rsa"].attrs["score"], ref.rsa(Xs, Ys), delta=1e-9)
                self.assertAlmostEqual(sg["cka"].attrs["score"], ref.linear_cka(Xs, Ys), delta=1e-9)
                for test in ("subset", "mapping_subset"):
                    sub = sg[f"svcca/{test}_null"][()]
                    self.assertEqual(len(sub), 40)
                    ok = sub[~np.isnan(sub)]
                    self.assertAlmostEqual(sg["svcca"].attrs[f"{test}_p_value"],
                                           (1 + np.sum(ok >= sg["svcca"].attrs["score"])) / (len(ok) + 1), delta=1e-15)
                scored += 1
        return scored

    def test_dense_pre_correlation(self):
        for ranks in (1, 3):
            out = self.compare(ranks, os.path.join(self.tmp.name, f"pre{ranks}", "results.h5"),
                               "--set", "compare.correlation_input=pre", "--set", "compare.repsim=false")
            with h5py.File(out, "r") as f:
                self.assertEqual(f["pairs/a--b/activation"].attrs["input"], "pre")
                for i, a in enumerate(self.names):
                    for b in self.names[i + 1:]:
                        self.check_pair(f, a, b, self.pre[a], self.pre[b])

    def second_layer(self):
        """Activations of a second hookpoint on the same tokens (a mixed, noisier copy of x), from the
        first seed whose every decision keeps GAP from a tie: SAE b's top-k on it, its relu
        boundaries, and the correlation maxima against SAE a both ways."""
        for seed in range(100):
            rng = np.random.default_rng(seed)
            mix = rng.standard_normal((12, 12)) / np.sqrt(12)
            x2 = (self.x @ mix + 0.2 * rng.standard_normal(self.x.shape)).astype(np.float32)
            x2_64 = x2.astype(np.float64)
            z_b, pre_b = ref.encode(x2_64, self.saes["b"]), ref.dense_pre(x2_64, self.saes["b"])
            top = -np.sort(-pre_b, axis=1)
            ok = np.all((top[:, 2] - top[:, 3] > GAP) | (top[:, 2] == 0)) and not np.any((pre_b > 0) & (pre_b < GAP))
            for za, zb in ((self.z["a"], z_b), (self.pre["a"], pre_b)):
                c = ref.correlation(za, zb)
                ok = ok and gap_ok(c, 0) and gap_ok(c, 1)
            if ok:
                return x2, z_b, pre_b
        self.fail("no second-layer data without near ties in 100 seeds")

    def test_cross_hookpoint(self):
        """SAEs of different layers: each encodes its own hookpoint's activations of the same tokens
        (codes and dense pre), against numpy.corrcoef of the two encodings."""
        x2, z_b, pre_b = self.second_layer()
        store = os.path.join(self.tmp.name, "two_layers.h5")
        write_store(store, self.tokens, self.offsets, self.x)
        with h5py.File(store, "a") as f:
            f[f"activations/{HOOK2}"] = x2
        paths = []
        for name, hook in (("a", HOOK), ("b", HOOK2)):
            os.makedirs(os.path.join(self.tmp.name, hook), exist_ok=True)
            paths.append(os.path.join(self.tmp.name, hook, f"{name}.h5"))
            write(paths[-1], self.saes[name])
            with h5py.File(paths[-1], "a") as f:
                f.attrs["hookpoint"] = hook
        for correlation_input, za, zb in (("codes", self.z["a"], z_b), ("pre", self.pre["a"], pre_b)):
            out = os.path.join(self.tmp.name, f"cross_{correlation_input}", "results.h5")
            proc = run(["compare", "--activations", store, "--out", out, "--sae", paths[0],
                        "--sae", paths[1], "--set", f"compare.correlation_input={correlation_input}",
                        "--set", "compare.repsim=false", "--set", "compare.tile_rows=7",
                        "--set", "compare.chunk_tokens=256"], 2)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            with h5py.File(out, "r") as f:
                self.assertEqual(f["activations"].attrs["hookpoint"], HOOK)
                np.testing.assert_array_equal(f["saes/b/frequency"][()], (z_b > 0).mean(0))
                self.check_pair(f, "a", "b", za, zb)

    def test_baselines(self):
        out = self.compare(2, os.path.join(self.tmp.name, "base", "results.h5"), "--set", "compare.baseline_random=true",
                           "--baseline", self.paths[2], "--set", "compare.repsim=false")
        rnd = os.path.join(self.tmp.name, "base", "baselines", "random_init.h5")
        with h5py.File(rnd, "r") as f:
            W_enc, W_dec = f["W_enc"][()], f["W_dec"][()]
            np.testing.assert_array_equal(W_enc, W_dec)
            np.testing.assert_allclose(np.linalg.norm(W_dec, axis=1), 1, atol=1e-6)
            self.assertEqual(W_dec.shape, (48, 12))
            self.assertFalse(np.any(f["b_enc"][()]) or np.any(f["b_dec"][()]))
            self.assertEqual(f.attrs["architecture"], "topk")
            self.assertEqual(f.attrs["k"], 3)
        with h5py.File(out, "r") as f:
            pairs = sorted(f["pairs"].keys())
            self.assertIn("a--random_init", pairs)
            self.assertIn("a--c_1", pairs)
            self.assertEqual(len(pairs), 6 + 2)
            self.assertTrue(f["pairs/a--random_init"].attrs["baseline"])
            self.assertFalse(f["pairs/a--b"].attrs["baseline"])
            # MCS with an untrained SAE is the max cosine of random directions (METHODS.md §3 on W_dec).
            want = ref.max_cosine(self.saes["a"]["W_dec"], W_dec.astype(np.float64))
            self.assertAlmostEqual(f["pairs/a--random_init/decoder"].attrs["mcs_ab"], want["mcs_ab"], delta=1e-6)
            self.assertEqual(list(f["overlap"]["histogram_mean"].shape), [4])  # the four SAEs, not the baselines
        with open(os.path.join(self.tmp.name, "base", "summary.csv")) as fh:
            rows = fh.read().splitlines()
        self.assertEqual(len(rows), 1 + 8)
        self.assertIn("baseline", rows[0].split(","))

    def test_bad_stores_exit_2_without_output(self):
        tmp = self.tmp.name
        cases = []
        cases.append(("wrong hookpoint", self.store, ["--set", "data.hookpoint=blocks.3.hook_resid_post"], HOOK))
        narrow = os.path.join(tmp, "narrow.h5")
        write_store(narrow, self.tokens, self.offsets, self.x[:, :8])
        cases.append(("wrong width", narrow, ["--set", f"data.hookpoint={HOOK}"], "d = 8"))
        partial = os.path.join(tmp, "partial.h5")
        write_store(partial, self.tokens, self.offsets, self.x)
        with h5py.File(partial, "a") as f:
            f.attrs["complete"] = False
        cases.append(("incomplete", partial, ["--set", f"data.hookpoint={HOOK}"], "incomplete"))
        cases.append(("missing", os.path.join(tmp, "nope.h5"), [], "nope.h5"))
        for what, store, extra, needle in cases:
            out = os.path.join(tmp, "bad", what.replace(" ", "_"), "results.h5")
            args = ["compare", "--activations", store, "--out", out, *extra]
            for p in self.paths[:2]:
                args += ["--sae", p]
            proc = run(args, 2)
            self.assertEqual(proc.returncode, 2, f"{what}: {proc.stderr}")
            self.assertIn(needle, proc.stderr, what)
            self.assertFalse(os.path.exists(os.path.dirname(out)), f"{what}: nothing may be created")


if __name__ == "__main__":
    unittest.main()
