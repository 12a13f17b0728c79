"""Golden test: `universae compare` on SAE files written by h5py equals numpy (METHODS.md §3).

Two SAEs (different sizes; one zero row; B's encoder stored as float64) are written by
scripts/universae_ref.py; universae compares them at 1, 2 and 3 ranks; every array must match
numpy within 1e-5, argmaxes must match wherever the maximum is unambiguous, and the three rank
counts must agree bit for bit.
"""
import csv
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


def run(args, ranks):
    return universae(args, ranks, timeout=240, cwd=None)


class CompareAgainstNumpy(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        rng = np.random.default_rng(20261121)
        d, n_a, n_b = 48, 300, 257
        cls.A = {name: rng.standard_normal((n_a, d)) for name in ("W_enc", "W_dec")}
        cls.B = {name: rng.standard_normal((n_b, d)) for name in ("W_enc", "W_dec")}
        cls.A["W_dec"][17] = 0.0                              # a zero row: cosine 0 with everything
        cls.B["W_dec"][100] = 2.5 * cls.A["W_dec"][3]         # an exact match
        cls.a = os.path.join(cls.tmp.name, "a.h5")
        cls.b = os.path.join(cls.tmp.name, "b.h5")
        ref.write_sae(cls.a, cls.A["W_enc"], np.zeros(n_a), cls.A["W_dec"], np.zeros(d), k=8, seed=1)
        # B is stored as float64: universae converts on read.
        ref.write_sae(cls.b, cls.B["W_enc"], np.zeros(n_b), cls.B["W_dec"], np.zeros(d), k=8, seed=2,
                      dtype=np.float64)
        cls.results = {}
        for ranks in (1, 2, 3):
            out = os.path.join(cls.tmp.name, f"np{ranks}", "r.h5")
            proc = run(["compare", "--sae", cls.a, "--sae", cls.b, "--out", out,
                        "--set", "compare.tile_rows=64", "--set", "compare.tile_cols=100"], ranks)
            if proc.returncode != 0:
                raise AssertionError(f"compare at {ranks} ranks exited {proc.returncode}:\n{proc.stderr}")
            cls.results[ranks] = out

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_matches_numpy(self):
        with h5py.File(self.results[2], "r") as f:
            self.assertEqual(f.attrs["format"], "universae-results")
            self.assertTrue(f.attrs["complete"])
            self.assertEqual(f.attrs["n_ranks"], 2)
            for part, name in (("decoder", "W_dec"), ("encoder", "W_enc")):
                want = ref.max_cosine(self.A[name], self.B[name])
                g = f[f"pairs/a--b/{part}"]
                for key in ("max_cos_ab", "max_cos_ba"):
                    got = g[key][()]
                    self.assertEqual(got.dtype, np.float32)
                    np.testing.assert_allclose(got, want[key], atol=1e-5, err_msg=f"{part}/{key}")
                for key, axis in (("argmax_ab", 1), ("argmax_ba", 0)):
                    mask = ref.unambiguous(want["S"], axis)
                    self.assertGreater(mask.sum(), 0.9 * mask.size)
                    np.testing.assert_array_equal(g[key][()][mask], want[key][mask], err_msg=f"{part}/{key}")
                self.assertAlmostEqual(g.attrs["mcs_ab"], want["mcs_ab"], delta=1e-5)
                self.assertAlmostEqual(g.attrs["mcs_ba"], want["mcs_ba"], delta=1e-5)
            dec = f["pairs/a--b/decoder"]
            self.assertEqual(dec.attrs["zero_rows_a"], 1)
            self.assertEqual(dec["max_cos_ab"][17], 0.0)
            self.assertEqual(dec["argmax_ab"][3], 100)
            self.assertAlmostEqual(float(dec["max_cos_ab"][3]), 1.0, delta=1e-6)

    def test_rank_count_does_not_change_any_bit(self):
        def arrays(path):
            with h5py.File(path, "r") as f:
                return {f"{p}/{k}": f[f"pairs/a--b/{p}/{k}"][()] for p in ("decoder", "encoder")
                        for k in ("max_cos_ab", "argmax_ab", "max_cos_ba", "argmax_ba")}
        base = arrays(self.results[1])
        for ranks in (2, 3):
            for key, value in arrays(self.results[ranks]).items():
                np.testing.assert_array_equal(value, base[key], err_msg=f"{key} at {ranks} ranks")

    def test_summary_csv_matches_attributes(self):
        path = os.path.join(os.path.dirname(self.results[3]), "summary.csv")
        with open(path) as fh:
            rows = list(csv.DictReader(fh))
        self.assertEqual(len(rows), 1)
        with h5py.File(self.results[3], "r") as f:
            self.assertAlmostEqual(float(rows[0]["decoder_mcs_ab"]), f["pairs/a--b/decoder"].attrs["mcs_ab"], places=7)
            self.assertAlmostEqual(float(rows[0]["encoder_mcs_ba"]), f["pairs/a--b/encoder"].attrs["mcs_ba"], places=7)
        self.assertEqual(rows[0]["pair"], "a--b")
        # Every column the file's /summary_columns declares (the statistics registry's) is in the CSV, in
        # its order after pair,a,b,baseline, with the value of the attribute it names.
        with h5py.File(self.results[3], "r") as f:
            c = f["summary_columns"].attrs
            declared = [[v.decode() if isinstance(v, bytes) else v for v in c[k]] for k in ("name", "object", "attribute")]
            self.assertIn("shared_fraction", declared[0])
            self.assertEqual(list(rows[0].keys()), ["pair", "a", "b", "baseline"] + declared[0])
            pair = f["pairs/a--b"]
            for name, obj, attribute in zip(*declared):
                if not obj or obj in pair:
                    holder = pair[obj] if obj else pair
                    self.assertAlmostEqual(float(rows[0][name]), float(holder.attrs[attribute]), places=7, msg=name)
                else:
                    self.assertEqual(rows[0][name], "", name)  # a statistic this comparison did not compute

    def test_inspect_describes_both_kinds(self):
        sae = run(["inspect", self.a], 1)
        self.assertEqual(sae.returncode, 0, sae.stderr)
        self.assertIn("universae SAE file", sae.stdout)
        self.assertIn("n_latents 300", sae.stdout)
        res = run(["inspect", self.results[1]], 1)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("universae results file", res.stdout)
        self.assertIn("a--b", res.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
