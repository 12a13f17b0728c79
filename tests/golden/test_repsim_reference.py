"""Golden test: SVCCA, RSA, CKA and mutual kNN of the Hungarian-paired decoder rows equal numpy/scipy
references (SVCCA: google/svcca's covariance-whitening CCA; RSA: scipy.stats.spearmanr), the stored
p-values follow p = (1 + #{null >= score}) / (N + 1) from the stored nulls, and the nulls are the same
at 1, 2 and 3 ranks."""
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


class RepresentationalSimilarity(unittest.TestCase):
    def test_against_references_at_1_2_3_ranks(self):
        rng = np.random.default_rng(21)
        n, d = 240, 20
        A = rng.standard_normal((n, d))
        # B: a rotated, noisy copy of A's latents in shuffled order, so the matching pairs them up.
        rot = np.linalg.qr(rng.standard_normal((d, d)))[0]
        B = (A @ rot + 0.8 * rng.standard_normal((n, d)))[rng.permutation(n)]
        with tempfile.TemporaryDirectory() as tmp:
            a, b = os.path.join(tmp, "a.h5"), os.path.join(tmp, "b.h5")
            ref.write_sae(a, A, np.zeros(n), A, np.zeros(d), k=8)
            ref.write_sae(b, B, np.zeros(n), B, np.zeros(d), k=8)
            # The references see exactly what universae reads: the float32 values in the files.
            A32, B32 = (np.asarray(M, dtype=np.float32).astype(np.float64) for M in (A, B))
            match = ref.hungarian(A32, B32)["decoder"][0]
            X, Y = A32, B32[match]
            want = dict(svcca=ref.svcca(X, Y), rsa=ref.rsa(X, Y), cka=ref.linear_cka(X, Y), mutual_knn=ref.mutual_knn(X, Y))
            nulls = {}
            for ranks in (1, 2, 3):
                out = os.path.join(tmp, f"np{ranks}", "r.h5")
                proc = universae(["compare", "--sae", a, "--sae", b, "--out", out, "--set", "compare.permutations=200"],
                                 ranks, timeout=240, cwd=None)
                self.assertEqual(proc.returncode, 0, proc.stderr)
                with h5py.File(out, "r") as f:
                    np.testing.assert_array_equal(f["pairs/a--b/lap/decoder_match"][()], match)
                    for metric, value in want.items():
                        g = f[f"pairs/a--b/{metric}"]
                        tol = 1e-4 if metric == "svcca" else 1e-9
                        self.assertAlmostEqual(g.attrs["score"], value, delta=tol, msg=f"{metric} np{ranks}")
                        null = g["null"][()]
                        self.assertEqual(len(null), 200)
                        self.assertEqual(g.attrs["permutations"], 200)
                        self.assertEqual(g.attrs["n_pairs"], n)
                        self.assertAlmostEqual(g.attrs["p_value"], (1 + np.sum(null >= g.attrs["score"])) / 201, delta=1e-15)
                        self.assertAlmostEqual(g.attrs["null_mean"], null.mean(), delta=1e-12)
                        self.assertLess(g.attrs["null_mean"], g.attrs["score"], metric)
                        if metric in nulls:
                            np.testing.assert_array_equal(null, nulls[metric], err_msg=f"{metric} null np{ranks}")
                        nulls[metric] = null
            self.assertGreater(want["svcca"], 0.3)


if __name__ == "__main__":
    unittest.main(verbosity=2)
