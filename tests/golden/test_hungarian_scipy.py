"""Golden test: universae's certified Hungarian matching equals scipy.optimize.linear_sum_assignment
(METHODS.md §4) on random and SAE-like pairs, square and rectangular, at 1, 2 and 3 ranks.

The objective must equal scipy's; the assignment must equal it except on exact ties (checked by
re-evaluating ours in float64); `certified` must be true; the three rank counts must agree exactly.
One case keeps only 2 candidates per row and column, so the certificate's pricing rounds must find
the optimum on their own.
"""
import os
import sys
import tempfile
import unittest

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
from universae_test import SCRIPTS, universae  # noqa: E402

sys.path.insert(0, SCRIPTS)
import universae_ref as ref  # noqa: E402


def sae_like(rng, n_a, n_b, d, shared=0.7, noise=0.35):
    """B re-learns a shuffled, noisy copy of `shared` of A's latents; the rest are its own."""
    A = rng.standard_normal((n_a, d))
    B = rng.standard_normal((n_b, d))
    k = int(shared * min(n_a, n_b))
    src = rng.permutation(n_a)[:k]
    dst = rng.permutation(n_b)[:k]
    B[dst] = A[src] + noise * rng.standard_normal((k, d))
    return A, B


CASES = {
    # name: (n_a, n_b, d, structured, candidates)
    "square_random": (400, 400, 32, False, 16),
    "a_smaller": (300, 420, 32, False, 16),
    "a_larger": (420, 300, 32, False, 16),
    "sae_like": (600, 600, 48, True, 16),
    "two_candidates": (250, 250, 24, False, 2),
}


class HungarianAgainstScipy(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        rng = np.random.default_rng(7)
        cls.cases = {}
        for name, (n_a, n_b, d, structured, k) in CASES.items():
            dec = sae_like(rng, n_a, n_b, d) if structured else (rng.standard_normal((n_a, d)), rng.standard_normal((n_b, d)))
            enc = sae_like(rng, n_a, n_b, d) if structured else (rng.standard_normal((n_a, d)), rng.standard_normal((n_b, d)))
            a, b = (os.path.join(cls.tmp.name, f"{name}_{s}.h5") for s in ("a", "b"))
            ref.write_sae(a, enc[0], np.zeros(n_a), dec[0], np.zeros(d), k=8)
            ref.write_sae(b, enc[1], np.zeros(n_b), dec[1], np.zeros(d), k=8)
            outs = {}
            # 1, 2 and 3 ranks with the CPU kernels, and 2 with the generic ones (the pass's lists and the
            # certificate's exact blocks through ATen, as on a GPU): every matching the same, scipy's.
            # And compare.dtype = "bfloat16" (a bfloat16 pass: candidates rescored, bounds widened): the same.
            # compare.deep_factor = 4 (recomputed rows also keep their best pairs), on the host and generic.
            deep = "compare.deep_factor=4"
            for ranks, extra in ((1, []), (2, []), (3, []), (2, ["run.kernels=generic"]), (1, ["compare.dtype=\"bfloat16\""]),
                                 (2, [deep]), (2, ["run.kernels=generic", deep])):
                label = f"np{ranks}" + ("_generic" if "run.kernels=generic" in extra else "_bf16" if "bfloat16" in str(extra) else "")
                label += "_deep" if deep in extra else ""
                out = os.path.join(cls.tmp.name, f"{name}_{label}", "r.h5")
                proc = universae(["compare", "--sae", a, "--sae", b, "--out", out, "--set", f"compare.candidates={k}",
                                  "--set", "compare.tile_rows=64", "--set", "compare.tile_cols=128"] +
                                 [arg for e in extra for arg in ("--set", e)],
                                 ranks, timeout=240, cwd=None)
                if proc.returncode != 0:
                    raise AssertionError(f"{name} at {label} exited {proc.returncode}:\n{proc.stderr}")
                outs[label] = out
            cls.cases[name] = (dec, enc, outs)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def check_case(self, name):
        dec, enc, outs = self.cases[name]
        want = ref.hungarian(dec[0], dec[1], A_enc=enc[0], B_enc=enc[1])
        base = None
        for ranks, out in outs.items():
            with h5py.File(out, "r") as f:
                lap = f[f"pairs/{name}_a--{name}_b/lap"]
                self.assertTrue(lap.attrs["certified"], f"{name} {ranks}")
                got = {part: lap[f"{part}_match"][()] for part in ("decoder", "encoder")}
                for part in ("decoder", "encoder"):
                    m_ref, _, obj_ref, S = want[part]
                    m = got[part]
                    rows = m >= 0
                    self.assertEqual(rows.sum(), min(S.shape))
                    self.assertEqual(len(set(m[rows])), rows.sum(), "one-to-one")
                    obj = S[np.nonzero(rows)[0], m[rows]].sum()
                    self.assertAlmostEqual(obj, obj_ref, delta=1e-9, msg=f"{name} {part} {ranks} objective")
                    self.assertAlmostEqual(lap.attrs[f"mean_cos_{part}"], obj_ref / min(S.shape), delta=1e-9)
                    if not np.array_equal(m, m_ref):  # allowed only on exact ties, which the objective shows
                        self.assertAlmostEqual(obj, obj_ref, delta=1e-12)
                    np.testing.assert_allclose(lap[f"{part}_cos"][()][rows], S[np.nonzero(rows)[0], m[rows]], atol=1e-6)
                self.assertAlmostEqual(lap.attrs["shared_fraction"], want["shared_fraction"], delta=1e-12)
                self.assertAlmostEqual(lap.attrs["equal_fraction"], want["equal_fraction"], delta=1e-12)
                if ranks == "np1_bf16":  # the pass's max cosines within its stated error of float32's
                    with h5py.File(outs["np1"], "r") as g:
                        group = f"pairs/{name}_a--{name}_b/decoder"
                        bound = f[group].attrs["error_bound"]
                        self.assertEqual(bound, 2.0 ** -7 + 2.0 ** -9)
                        diff = np.abs(f[group + "/max_cos_ab"][()] - g[group + "/max_cos_ab"][()]).max()
                        self.assertLessEqual(diff, bound, f"{name}: bfloat16 max cosines")
                        self.assertGreater(diff, 0, f"{name}: the bfloat16 pass must differ from float32")
                if base is None:
                    base = got
                else:
                    for part in got:
                        np.testing.assert_array_equal(got[part], base[part], err_msg=f"{name} {part} {ranks}")
        return outs

    def test_square_random(self):
        self.check_case("square_random")

    def test_rectangular_a_smaller(self):
        self.check_case("a_smaller")

    def test_rectangular_a_larger(self):
        outs = self.check_case("a_larger")
        with h5py.File(outs["np1"], "r") as f:
            cos = f["pairs/a_larger_a--a_larger_b/lap/decoder_cos"][()]
            self.assertEqual(np.isnan(cos).sum(), 120, "unmatched latents of the larger SAE are NaN")

    def test_sae_like(self):
        outs = self.check_case("sae_like")
        with h5py.File(outs["np2"], "r") as f:
            self.assertGreater(f["pairs/sae_like_a--sae_like_b/lap"].attrs["shared_fraction"], 0.5)

    def test_pricing_rounds_find_the_optimum_from_two_candidates(self):
        outs = self.check_case("two_candidates")
        for label in ("np3", "np2_generic"):
            with h5py.File(outs[label], "r") as f:
                lap = f["pairs/two_candidates_a--two_candidates_b/lap"]
                self.assertGreater(lap.attrs["pairs_checked"], 0, f"the certificate had to recompute pairs ({label})")


class NSeedOverlap(unittest.TestCase):
    """/overlap of a 4-SAE ensemble equals the scipy reference at 1, 2 and 3 ranks."""

    def test_matches_reference(self):
        rng = np.random.default_rng(11)
        n, d, S = 160, 24, 4
        truth_dec, truth_enc = rng.standard_normal((n, d)), rng.standard_normal((n, d))
        decoders, encoders, paths = [], [], []
        with tempfile.TemporaryDirectory() as tmp:
            for s in range(S):
                # Each SAE re-learns a different, partly overlapping half of the truth, with varying noise.
                keep = rng.random(n) < 0.6
                dec = np.where(keep[:, None], truth_dec + 0.3 * rng.standard_normal((n, d)), rng.standard_normal((n, d)))
                enc = np.where(keep[:, None], truth_enc + 0.3 * rng.standard_normal((n, d)), rng.standard_normal((n, d)))
                order = rng.permutation(n)
                decoders.append(dec[order])
                encoders.append(enc[order])
                paths.append(os.path.join(tmp, f"seed{s}.h5"))
                ref.write_sae(paths[-1], encoders[-1], np.zeros(n), decoders[-1], np.zeros(d), k=8, seed=s)
            hist, mean, unique = ref.n_seed_overlap(decoders, encoders)
            self.assertTrue(0 < hist[:, 0].sum() < S * n and hist[:, S - 1].sum() > 0, "a non-trivial case")
            for ranks in (1, 2, 3):
                out = os.path.join(tmp, f"np{ranks}", "r.h5")
                saes = sum((["--sae", p] for p in paths), [])
                proc = universae(["compare", "--out", out, *saes, "--set", "compare.tile_rows=32"], ranks,
                                 timeout=240, cwd=None)
                self.assertEqual(proc.returncode, 0, proc.stderr)
                with h5py.File(out, "r") as f:
                    self.assertEqual(len(f["pairs"]), 6)
                    o = f["overlap"]
                    self.assertEqual(o.attrs["n_saes"], S)
                    for s in range(S):
                        np.testing.assert_array_equal(o[f"seed{s}/histogram"][()], hist[s], err_msg=f"seed{s} np{ranks}")
                    np.testing.assert_allclose(o["histogram_mean"][()], mean, atol=1e-12)
                    np.testing.assert_allclose(o["unique_fraction"][()], unique, atol=1e-12)
                    self.assertTrue(np.all(np.diff(o["unique_fraction"][()]) <= 1e-12), "non-increasing with more seeds")


if __name__ == "__main__":
    unittest.main(verbosity=2)
