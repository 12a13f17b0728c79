"""Golden test: compare.compat = "lan2024" against a numpy port of Lan et al.'s own scoring code.

tests/golden/lan2024_reference.py ports wlg1/univ_feat_geom (the notebooks behind the paper: the
correlation mapping of every B latent to its most correlated A latent, the non-concept filter on
top-token strings, the 1-1 step that keeps the first B of every A, the cut at correlation 0.1,
SVCCA with their PCA cut, RSA, and p = mean(null >= score)). Both sides read the same activation
store and SAEs (written here with h5py; the data of test_activation_stats.py): universae through
`universae compare`, the port through numpy on the SAEs' codes, the activations their Gemma
pipeline correlates (sae.encode). Checked: the identical set of pairs, SVCCA and RSA within 1e-6,
and p-values recomputed from the stored nulls with their formula.

CrossWidth: SAEs of two "models" of different widths, each encoding its own store, against numpy's
corrcoef of each SAE's own codes and the references of scripts/universae_ref.py.

One deliberate difference: universae refuses control tokens by id (the store's /special_tokens,
else the pieces that name one), where their code compares decoded strings ("<bos>", "<|endoftext|>"):
the port is given their list plus the control tokens' strings, which is what comparing ids means.
"""
import os
import sys
import tempfile
import unittest

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))  # tests/
import lan2024_reference as lan  # noqa: E402
import test_activation_stats as stats  # noqa: E402  (its store, SAEs and references)
from universae_test import universae  # noqa: E402

ref = stats.ref


SEQ = 100  # their code reads [batch, seq] arrays: sequences of one length
# Categories over the test vocabulary, wide enough that each has at least 3 keyword latents on both sides.
CONCEPTS = {"nouns": ["day", "may", "king", "rain", "joy"], "verbs": ["cat", "dog", "sat", "ran", "went"],
            "adjectives": ["red", "blue", "big", "small", "happy", "sad"],
            "places": ["home", "park", "ball", "said", "mom", "friend", "the"], "none": ["zebra"]}


def make_data(rng, T=3000, d=12):
    """test_activation_stats' data (latents follow token identities) with sequences of SEQ tokens."""
    V = len(stats.VOCAB)
    E = rng.standard_normal((V, d))
    offsets = np.arange(0, T + 1, SEQ)
    tokens = rng.integers(3, V, size=T)
    tokens[offsets[:-1]] = 1  # BOS at every sequence start
    prev = np.roll(tokens, 1)
    x = E[tokens] + 0.4 * E[prev] + 0.3 * rng.standard_normal((T, d))
    return E, tokens, offsets, x.astype(np.float32)


def decoded(vocab, tokens):
    return [ref.piece(vocab, int(t)) for t in tokens]


class Lan2024(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        tmp = cls.tmp.name
        rng = np.random.default_rng(7)
        E, cls.tokens, cls.offsets, cls.x = make_data(rng)
        cls.store = os.path.join(tmp, "store.h5")
        stats.write_store(cls.store, cls.tokens, cls.offsets, cls.x)
        cls.concepts = os.path.join(tmp, "concepts.toml")
        with open(cls.concepts, "w") as fh:
            fh.write("[categories]\n" + "".join(f"{name} = {words!r}\n".replace("'", '"') for name, words in CONCEPTS.items()))
        cls.saes, cls.paths = {}, []
        for name, n in (("a", 40), ("b", 32)):
            cls.saes[name] = stats.sae_arrays(rng, E, n, "topk")
            cls.paths.append(os.path.join(tmp, f"{name}.h5"))
            stats.write(cls.paths[-1], cls.saes[name])
        x64 = cls.x.astype(np.float64)
        cls.z = {n: ref.encode(x64, s) for n, s in cls.saes.items()}
        cls.out = os.path.join(tmp, "out", "results.h5")
        args = ["compare", "--activations", cls.store, "--out", cls.out, "--set", "data.hookpoint=" + stats.HOOK,
                "--set", "compare.compat=lan2024", "--set", "compare.correlation_input=codes",
                "--set", "compare.activation_mapping=one_to_one", "--set", "compare.permutations=60",
                "--set", "compare.hungarian=false", "--set", f"compare.concepts={cls.concepts}"]
        for p in cls.paths:
            args += ["--sae", p]
        cls.proc = universae(args, 2, timeout=300, cwd=None)
        # Their Pythia path: the dense relu(pre) activations, correlated and read for top tokens.
        cls.pre = {n: ref.dense_pre(x64, s) for n, s in cls.saes.items()}
        cls.out_pre = os.path.join(tmp, "pre", "results.h5")
        pre_args = [a if a != cls.out else cls.out_pre for a in args]
        pre_args[pre_args.index("compare.correlation_input=codes")] = "compare.correlation_input=pre"
        cls.proc_pre = universae(pre_args, 3, timeout=300, cwd=None)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_preconditions(self):
        """Every latent fires on 0 or at least 6 tokens with distinct 5th and 6th values, so the top 5
        are the same whichever way ties among zeros are broken (their torch.topk is unspecified)."""
        for name, z in self.z.items():
            fires = (z > 0).sum(0)
            self.assertTrue(np.all((fires == 0) | (fires >= 6)), f"{name}: {fires}")
            s = -np.sort(-z, axis=0)
            live = fires > 0
            self.assertTrue(np.all(s[4, live] - s[5, live] > stats.GAP), name)

    def test_same_pairs_and_scores(self):
        self.check_whole_space(self.proc, self.out, self.z)

    def test_same_pairs_and_scores_on_pre_activations(self):
        """Their Pythia path: pre-activations correlated, top tokens read from them too (3 ranks)."""
        for name, pre in self.pre.items():
            s = -np.sort(-pre, axis=0)
            self.assertTrue(np.all(s[4] - s[5] > stats.GAP), f"{name}: near-tied 5th and 6th pre-activations")
        self.check_whole_space(self.proc_pre, self.out_pre, self.pre)
        with h5py.File(self.out_pre, "r") as f:
            self.assertEqual(f["saes/a"].attrs["top_examples_of"], "pre")
            for name in ("a", "b"):
                got = f[f"saes/{name}/top_positions"][:, :5]  # the filter reads the top 5 of 20
                want = lan.lan_top_positions(self.pre[name])
                for i in range(len(got)):
                    self.assertEqual(set(got[i].tolist()), set(want[i].tolist()), f"{name} latent {i}")

    def check_whole_space(self, proc, out, acts):
        self.assertEqual(proc.returncode, 0, proc.stderr)
        vocab = stats.VOCAB
        strings = [decoded(vocab, self.tokens)]  # one "batch row" of T tokens: flat positions index it
        # (the filter reads top tokens only, never windows, so sequence cuts do not matter here)
        za, zb = acts["a"], acts["b"]
        inds, vals = lan.lan_batched_correlation(za, zb)
        top_a = lan.lan_top_token_labels(za, strings)
        top_b = lan.lan_top_token_labels(zb, strings)
        control = [ref.piece(vocab, t) for t in range(len(vocab)) if vocab[t].strip() in ("<unk>", "<s>", "</s>")]
        words = tuple(lan.NONCONCEPT_WORDS_PYTHIA) + tuple(control)
        want = lan.lan_pair_latents(inds, vals, top_a, top_b, one_to_one=True, nonconcept_words=words)
        self.assertGreater(want["num_feat_kept"], 5, "too few pairs for a meaningful check")
        self.assertLess(want["num_feat_kept"], len(inds), "the filter and cut should drop something")
        print(f"\n  {out}: {len(inds)} B latents, {want['num_feat_after_rmv_kw']} after the filter, "
              f"{want['num_feat_1_to_1']} after 1-1, {want['num_feat_kept']} after the 0.1 cut", flush=True)
        with h5py.File(out, "r") as f:
            g = f["pairs/a--b/activation"]
            paired = g["paired"]
            self.assertEqual(paired.attrs["mapping"], "lan2024")
            got = sorted(zip(paired["a"][()].tolist(), paired["b"][()].tolist()))
            self.assertEqual(got, sorted(zip(want["pairs_a"], want["pairs_b"])))
            W_a, W_b = self.saes["a"]["W_dec"], self.saes["b"]["W_dec"]
            X, Y = W_a[want["pairs_a"]], W_b[want["pairs_b"]]
            svcca, rsa = g["svcca"], g["rsa"]
            self.assertAlmostEqual(svcca.attrs["score"], lan.lan_svcca(X, Y), delta=1e-6)
            self.assertAlmostEqual(rsa.attrs["score"], lan.lan_rsa(X, Y), delta=1e-6)
            for metric in (svcca, rsa):
                null = metric["null"][()]
                self.assertEqual(len(null), 60)
                self.assertAlmostEqual(metric.attrs["p_value"], lan.lan_pvalue(null, metric.attrs["score"]), delta=1e-12)
                self.assertAlmostEqual(metric.attrs["excess"], metric.attrs["score"] - null.mean(), delta=1e-9)

    def test_semantic_subspaces(self):
        """Keyword latents found in A and in B independently (the top token is the keyword, a whole
        word of its s−2 … s+1 window), correlation recomputed within the subsets, first B per A; Test 1
        and p as their code; Test 2 as their paper defines it, draw by draw (the draws are stored)."""
        self.assertEqual(self.proc.returncode, 0, self.proc.stderr)
        vocab = stats.VOCAB
        rows = [decoded(vocab, self.tokens[s:s + SEQ]) for s in range(0, len(self.tokens), SEQ)]
        za, zb = self.z["a"], self.z["b"]
        W_a, W_b = self.saes["a"]["W_dec"], self.saes["b"]["W_dec"]
        seqs_a, seqs_b = lan.lan_top_seqs_all(za, rows), lan.lan_top_seqs_all(zb, rows)
        scored = 0
        with h5py.File(self.out, "r") as f:
            for name, keywords in CONCEPTS.items():
                g = f[f"pairs/a--b/activation/subspaces/{name}"]
                want_a, want_b = lan.lan_semantic_latents(seqs_a, seqs_b, keywords, order="sorted")
                self.assertEqual(g["latents_a"][()].tolist(), want_a, name)
                self.assertEqual(g["latents_b"][()].tolist(), want_b, name)
                pairs = lan.lan_subset_pairs(za, zb, want_a, want_b)
                if pairs is None:
                    self.assertLess(g.attrs["n_pairs"], 3, name)
                    continue
                self.assertEqual(sorted(zip(g["pairs_a"][()].tolist(), g["pairs_b"][()].tolist())),
                                 sorted(zip(*pairs)), name)
                X, Y = W_a[pairs[0]], W_b[pairs[1]]
                draws = list(zip(g["subset_draws_a"][()], g["subset_draws_b"][()]))
                self.assertEqual(len(draws), 60)
                for metric, fn in (("svcca", lan.lan_svcca), ("rsa", lan.lan_rsa)):
                    m = g[metric]
                    self.assertAlmostEqual(m.attrs["score"], fn(X, Y), delta=1e-6, msg=f"{name} {metric}")
                    self.assertAlmostEqual(m.attrs["p_value"], lan.lan_pvalue(m["null"][()], m.attrs["score"]), delta=1e-12)
                    want_null = lan.paper_test2_random_subsets(za, zb, W_a, W_b, len(want_a), len(want_b), fn,
                                                               subsets=draws)
                    np.testing.assert_allclose(m["subset_null"][()], want_null, atol=1e-6, err_msg=f"{name} {metric}")
                    null = np.asarray(want_null)
                    self.assertAlmostEqual(m.attrs["subset_p_value"], lan.lan_pvalue(null[~np.isnan(null)], m.attrs["score"]),
                                           delta=1e-12)
                    self.assertEqual(len(m["mapping_subset_null"][()]), 60)
                scored += 1
        self.assertGreaterEqual(scored, 2, "at least two categories must be scored for the check to mean something")

    def test_top_tokens_are_theirs(self):
        """The top-5 positions both sides read the filter's strings from (as sets: order is by value)."""
        with h5py.File(self.out, "r") as f:
            for name in ("a", "b"):
                got = f[f"saes/{name}/top_positions"][:, :5]  # the filter reads the top 5 of 20
                want = lan.lan_top_positions(self.z[name])
                fires = (self.z[name] > 0).sum(0)
                for i in np.flatnonzero(fires > 0):
                    self.assertEqual(set(got[i].tolist()), set(want[i].tolist()), f"{name} latent {i}")


class CrossWidth(unittest.TestCase):
    """Two models of different widths over the same tokens: SAE a on the d = 12 store, SAE w on a d = 20
    store (the same rows through a fixed linear map, plus noise), each given its own store. Everything
    activation-based against numpy on each SAE's own codes: correlation maxima both ways, the mappings,
    SVCCA/RSA/CKA of the activation-paired decoder rows (12 against 20 columns); weight-space statistics
    are left out with the reason written."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        tmp = cls.tmp.name
        rng = np.random.default_rng(11)
        E, cls.tokens, cls.offsets, cls.x = make_data(rng)
        M = rng.standard_normal((20, 12)) / np.sqrt(12)
        cls.x_w = (cls.x.astype(np.float64) @ M.T + 0.05 * rng.standard_normal((len(cls.x), 20))).astype(np.float32)
        cls.stores = [os.path.join(tmp, "a.h5"), os.path.join(tmp, "w.h5")]
        stats.write_store(cls.stores[0], cls.tokens, cls.offsets, cls.x)
        stats.write_store(cls.stores[1], cls.tokens, cls.offsets, cls.x_w)
        cls.sae_a = stats.sae_arrays(rng, E, 40, "topk")
        cls.sae_w = stats.sae_arrays(rng, E @ M.T, 36, "topk", d=20)
        cls.paths = [os.path.join(tmp, "a_sae.h5"), os.path.join(tmp, "w_sae.h5")]
        for path, sae in zip(cls.paths, (cls.sae_a, cls.sae_w)):
            stats.write(path, sae)
            with h5py.File(path, "a") as f:  # each SAE names the hookpoint its own store holds
                f.attrs["hookpoint"] = stats.HOOK
        cls.z_a = ref.encode(cls.x.astype(np.float64), cls.sae_a)
        cls.z_w = ref.encode(cls.x_w.astype(np.float64), cls.sae_w)
        cls.out = os.path.join(tmp, "out", "results.h5")
        cls.proc = universae(["compare", "--sae", cls.paths[0], "--activations", cls.stores[0], "--sae", cls.paths[1],
                              "--activations", cls.stores[1], "--out", cls.out, "--set", "data.hookpoint=" + stats.HOOK,
                              "--set", "compare.permutations=30"], 2, timeout=300, cwd=None)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_activation_statistics_across_widths(self):
        self.assertEqual(self.proc.returncode, 0, self.proc.stderr)
        with np.errstate(divide="ignore", invalid="ignore"):
            c = np.corrcoef(self.z_a.T, self.z_w.T)[:40, 40:]
        c[np.isnan(c)] = 0
        self.assertTrue(stats.gap_ok(c, 0) and stats.gap_ok(c, 1), "near-tied maxima in the reference")
        with h5py.File(self.out, "r") as f:
            pair = f["pairs/a_sae--w_sae"]
            self.assertIn("different input widths (d_in 12 and 20)", pair.attrs["weight_space_skipped"])
            for group in ("decoder", "encoder", "lap", "svcca"):
                self.assertNotIn(group, pair)
            g = pair["activation"]
            np.testing.assert_allclose(g["max_corr_ab"][()], c.max(1), atol=1e-5)
            np.testing.assert_allclose(g["max_corr_ba"][()], c.max(0), atol=1e-5)
            np.testing.assert_array_equal(g["argmax_ab"][()], c.argmax(1))
            np.testing.assert_array_equal(g["argmax_ba"][()], c.argmax(0))
            self.assertGreater(g.attrs["mean_max_corr_ab"], 0.5)  # the map keeps what the latents follow
            want = ref.mappings(c)
            for name, pairs in want.items():
                m = g[f"mappings/{name}"]
                self.assertEqual(sorted(zip(m["a"][()].tolist(), m["b"][()].tolist())), sorted(pairs), name)
            paired = g["paired"]
            kept = list(zip(paired["a"][()].tolist(), paired["b"][()].tolist()))
            self.assertGreaterEqual(len(kept), 3)
            X = self.sae_a["W_dec"][[p for p, _ in kept]]
            Y = self.sae_w["W_dec"][[q for _, q in kept]]
            self.assertEqual((X.shape[1], Y.shape[1]), (12, 20))
            self.assertAlmostEqual(g["svcca"].attrs["score"], ref.svcca(X, Y), delta=1e-4)
            self.assertAlmostEqual(g["rsa"].attrs["score"], ref.rsa(X, Y), delta=1e-9)
            self.assertAlmostEqual(g["cka"].attrs["score"], ref.linear_cka(X, Y), delta=1e-9)
            self.assertEqual(f["saes/w_sae"].attrs["activations_source"], self.stores[1])


if __name__ == "__main__":
    unittest.main(verbosity=2)
