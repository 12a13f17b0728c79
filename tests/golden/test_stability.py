"""Golden: per-latent stability across seeds (/stability in results.h5) against numpy and scipy.

Three sparsify TopK SAEs (written with numpy) on a Gaussian store (h5py): a shared dictionary that every
seed carries with small noise, and latents each seed draws afresh, so some latents are shared by every
pair, some by none. universae compare --activations STORE (2 ranks) is checked against:
  - the matchings: scipy.optimize.linear_sum_assignment on decoder and on encoder cosines; a latent is
    shared with another seed when both its matched cosines exceed compare.shared_threshold;
  - the FVU increase of each latent by removing it from the reconstruction and recomputing the FVU
    (numpy, one latent at a time; the codes as sparsify encodes, test_convert.library_codes), its energy
    Σ z² ‖W‖², and the always/never shares;
  - the principal angles between the unshared latents' decoder spans: scipy.linalg.subspace_angles.
"""
import json
import os
import sys
import tempfile
import unittest

import h5py
import numpy as np
from scipy.linalg import subspace_angles
from scipy.optimize import linear_sum_assignment

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
from universae_test import SCRIPTS, universae  # noqa: E402

sys.path.insert(0, SCRIPTS)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_np as st  # noqa: E402
from test_convert import library_codes  # noqa: E402

D, N, K, T, TAU = 16, 12, 3, 3000, 0.7
HOOK = "blocks.0.hook_resid_post"


def unit(w):
    return w / np.linalg.norm(w, axis=1, keepdims=True)


def write_sparsify(path, W, b_enc, b_dec):
    os.makedirs(path)
    tensors = {"encoder.weight": (W, "F32"), "encoder.bias": (b_enc, "F32"), "W_dec": (W, "F32"), "b_dec": (b_dec, "F32")}
    st.save(os.path.join(path, "sae.safetensors"), tensors, {"format": "pt"})
    with open(os.path.join(path, "cfg.json"), "w") as f:
        json.dump({"activation": "topk", "expansion_factor": 1, "normalize_decoder": True, "num_latents": N, "k": K,
                   "multi_topk": False, "skip_connection": False, "transcode": False, "d_in": D}, f)
    return {k: st.round_to(v, "F32").astype(np.float64) for k, (v, _) in tensors.items()}


class Stability(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        rng = np.random.default_rng(3)
        cls.x = rng.standard_normal((T, D)).astype(np.float32) + 0.5
        store = os.path.join(cls.tmp.name, "store.h5")
        with h5py.File(store, "w") as f:
            f[f"activations/{HOOK}"] = cls.x
            f["tokens"] = np.zeros(T, dtype=np.int32)
            f["seq_offsets"] = np.array([0, T], dtype=np.int64)
            f["doc_offsets"] = np.array([0, T], dtype=np.int64)
            f.attrs["model"] = "gaussian"
            f.attrs["complete"] = True
        common = unit(rng.standard_normal((7, D)))  # 7 latents every seed carries; 5 drawn per seed
        cls.saes = []
        for s in range(3):
            W = unit(np.concatenate([common + 0.05 * rng.standard_normal(common.shape), rng.standard_normal((N - 7, D))]))
            W = W[rng.permutation(N)]
            w = write_sparsify(os.path.join(cls.tmp.name, f"seed{s}", "layers.0"), W, -0.1 + 0.02 * rng.standard_normal(N),
                               np.full(D, 0.5))
            cls.saes.append(w)
        cls.out = os.path.join(cls.tmp.name, "cmp", "results.h5")
        args = ["compare", "--activations", store, "--out", cls.out, "--set", f"compare.shared_threshold={TAU}",
                "--set", "compare.repsim=false", "--set", "compare.baseline_random=false"]
        for s in range(3):
            args += ["--sae", os.path.join(cls.tmp.name, f"seed{s}", "layers.0")]
        proc = universae(args, 2, timeout=300, cwd=None)
        if proc.returncode != 0:
            raise AssertionError(proc.stderr)
        cls.f = h5py.File(cls.out, "r")
        cls.names = sorted(cls.f["stability"].keys() - {"pairs"})

    @classmethod
    def tearDownClass(cls):
        cls.f.close()
        cls.tmp.cleanup()

    def shared(self, a, b):
        """Per latent of a and of b: shared in the pair (scipy's matchings on decoder and encoder)."""
        out = []
        for w1, w2 in ((self.saes[a], self.saes[b]), (self.saes[b], self.saes[a])):
            dec = unit(w1["W_dec"]) @ unit(w2["W_dec"]).T
            enc = unit(w1["encoder.weight"]) @ unit(w2["encoder.weight"]).T
            r, c = linear_sum_assignment(-dec)
            er, ec = linear_sum_assignment(-enc)
            out.append((dec[r, c] > TAU) & (enc[er, ec] > TAU))
        return out

    def test_stable_fraction(self):
        counts = [np.zeros(N) for _ in range(3)]
        for a in range(3):
            for b in range(a + 1, 3):
                sa, sb = self.shared(a, b)
                counts[a] += sa
                counts[b] += sb
        for s, name in enumerate(self.names):
            got = self.f[f"stability/{name}/stable_fraction"][()]
            np.testing.assert_allclose(got, counts[s] / 2, err_msg=name)
            self.assertGreater((got == 1).sum(), 0)
            self.assertGreater((got == 0).sum(), 0)

    def test_fvu_increase_by_explicit_ablation(self):
        x = self.x.astype(np.float64)
        total = ((x - x.mean(0)) ** 2).sum()
        for s, name in enumerate(self.names):
            w = self.saes[s]
            z = library_codes(self.x, "sparsify", {k: v.astype(np.float32) for k, v in w.items()}, {"k": K})
            x_hat = z @ w["W_dec"] + w["b_dec"]
            fvu = ((x_hat - x) ** 2).sum() / total
            want = np.array([(((x_hat - np.outer(z[:, i], w["W_dec"][i])) - x) ** 2).sum() / total - fvu for i in range(N)])
            energy = (z ** 2).sum(0) * (w["W_dec"] ** 2).sum(1)
            g = self.f[f"stability/{name}"]
            np.testing.assert_allclose(g["fvu_increase"][()], want, rtol=1e-4, atol=1e-6, err_msg=name)
            np.testing.assert_allclose(g["energy"][()], energy, rtol=1e-4, err_msg=name)
            self.assertAlmostEqual(g.attrs["fvu"], fvu, delta=1e-5)
            stable = g["stable_fraction"][()]
            self.assertAlmostEqual(g.attrs["always_energy"], energy[stable == 1].sum() / energy.sum(), delta=1e-6)
            self.assertAlmostEqual(g.attrs["never_fvu_increase"], want[stable == 0].sum(), delta=1e-5)

    def test_principal_angles_of_unshared_spans(self):
        for a in range(3):
            for b in range(a + 1, 3):
                sa, sb = self.shared(a, b)
                A, B = self.saes[a]["W_dec"][~sa], self.saes[b]["W_dec"][~sb]
                want = np.sort(np.cos(subspace_angles(A.T, B.T)))[::-1]
                g = self.f[f"stability/pairs/{self.names[a]}--{self.names[b]}"]
                np.testing.assert_allclose(g["angle_cosines"][()], want, atol=1e-6)
                self.assertEqual(g.attrs["n_unshared_a"], (~sa).sum())
                self.assertTrue(0 < g.attrs["random_mean_cos"] < 1)


if __name__ == "__main__":
    unittest.main()
