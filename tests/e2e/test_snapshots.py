"""End to end: weight snapshots during training (train.snapshot_every) and the compare stage's
consistency-over-training curves (/training in results.h5).

1. Three seeds of a topk SAE on synthetic data, snapshots every 20 steps (tokens 0, 20480, ..., the
   last at the final step): the files are where the docs say, with their train_tokens; step 0 is each seed's
   initialisation; the final SAEs are bit-identical to a run without snapshots (snapshots do not
   touch the training); 1 rank and 2 ranks (two seed groups) write bit-identical snapshots.
2. /training/mean_cos_decoder and shared_fraction at every step equal scipy's linear_sum_assignment on
   the snapshot files' decoder (and encoder) cosines, and decoder_mcs numpy's row/column maxima: an
   independent reference of the matching statistics (the matched cosine is what Paulo & Belrose call
   the pairwise dictionary mean correlation coefficient).
3. A snapshot_every that is not a whole number of steps exits 2 naming the key, writing nothing.
"""
import os
import sys
import tempfile
import unittest

import h5py
import numpy as np
from scipy.optimize import linear_sum_assignment

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
from universae_test import SOURCE, set_args, universae  # noqa: E402

JOB = os.path.join(SOURCE, "jobs", "synthetic_ci.toml")
SETTINGS = ["sae.seeds=[0, 1, 2]", "sae.n_latents=128", "train.tokens=102400", "train.eval_tokens=4096",
            "compare.activations=\"\"", "compare.baseline_random=false", "compare.repsim=false"]


def run(out, ranks, *extra):
    return universae(["run", JOB, *set_args(SETTINGS + [f"run.output_dir={out}", *extra])], ranks, timeout=500)


def unit(w):
    return w / np.linalg.norm(w, axis=1, keepdims=True)


class Snapshots(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.out = {}
        for name, ranks, extra in (("np1", None, ["train.snapshot_every=20480"]),
                                   ("np2", 2, ["train.snapshot_every=20480", "train.seed_groups=2"]),
                                   ("plain", None, [])):
            cls.out[name] = os.path.join(cls.tmp.name, name)
            proc = run(cls.out[name], ranks, *extra)
            if proc.returncode != 0:
                raise AssertionError(f"{name} exited {proc.returncode}:\n{proc.stderr}")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def snapshot(self, run_name, seed, tokens):
        return os.path.join(self.out[run_name], "snapshots", f"seed{seed}", f"tokens{tokens}.h5")

    def test_files_steps_and_no_effect_on_training(self):
        steps = list(range(0, 102401, 20480))
        for seed in (0, 1, 2):
            names = sorted(os.listdir(os.path.join(self.out["np1"], "snapshots", f"seed{seed}")))
            self.assertEqual(names, sorted(f"tokens{t}.h5" for t in steps))
            for t in steps:
                with h5py.File(self.snapshot("np1", seed, t), "r") as a, h5py.File(self.snapshot("np2", seed, t), "r") as b:
                    self.assertEqual(a.attrs["train_tokens"], t)
                    self.assertTrue(a.attrs["complete"])
                    for name in ("W_enc", "W_dec", "b_enc", "b_dec"):
                        np.testing.assert_array_equal(a[name][()], b[name][()], f"seed {seed} at {t}: {name}, 1 vs 2 ranks")
            with h5py.File(self.snapshot("np1", seed, 0), "r") as s0:  # topk init: encoder rows = decoder rows
                np.testing.assert_allclose(s0["W_enc"][()], s0["W_dec"][()], rtol=0, atol=1e-6)
            final = os.path.join("saes", f"seed{seed}.h5")
            with h5py.File(os.path.join(self.out["np1"], final), "r") as a, \
                    h5py.File(os.path.join(self.out["plain"], final), "r") as b, \
                    h5py.File(self.snapshot("np1", seed, 102400), "r") as last:
                np.testing.assert_array_equal(a["W_dec"][()], b["W_dec"][()], "snapshots changed the training")
                np.testing.assert_array_equal(a["W_dec"][()], last["W_dec"][()], "the last snapshot is the final SAE")
        self.assertFalse(os.path.exists(os.path.join(self.out["plain"], "snapshots")))

    def test_curves_match_scipy(self):
        with h5py.File(os.path.join(self.out["np1"], "results.h5"), "r") as f:
            t = f["training"]
            tokens = t["tokens"][()].tolist()
            self.assertEqual(tokens, list(range(0, 102401, 20480)))
            pairs = [p.decode() if isinstance(p, bytes) else p for p in t["pairs"][()]]
            self.assertEqual(pairs, ["seed0--seed1", "seed0--seed2", "seed1--seed2"])
            tau = f["pairs/seed0--seed1/lap"].attrs["threshold"]
            for p, pair in enumerate(pairs):
                a, b = (int(s[4:]) for s in pair.split("--"))
                for s, step in enumerate(tokens):
                    with h5py.File(self.snapshot("np1", a, step), "r") as fa, h5py.File(self.snapshot("np1", b, step), "r") as fb:
                        dec = unit(fa["W_dec"][()].astype(np.float64)) @ unit(fb["W_dec"][()].astype(np.float64)).T
                        enc = unit(fa["W_enc"][()].astype(np.float64)) @ unit(fb["W_enc"][()].astype(np.float64)).T
                    rows, cols = linear_sum_assignment(-dec)
                    erows, ecols = linear_sum_assignment(-enc)
                    enc_match = dict(zip(erows, ecols))
                    shared = np.mean([dec[r, c] >= tau and enc[r, enc_match[r]] >= tau for r, c in zip(rows, cols)])
                    where = f"{pair} at {step} tokens"
                    self.assertAlmostEqual(t["mean_cos_decoder"][p, s], dec[rows, cols].mean(), delta=1e-5, msg=where)
                    self.assertAlmostEqual(t["shared_fraction"][p, s], shared, delta=1.5 / 128, msg=where)
                    mcs = 0.5 * (dec.max(axis=1).mean() + dec.max(axis=0).mean())
                    self.assertAlmostEqual(t["decoder_mcs"][p, s], mcs, delta=1e-5, msg=where)

    def test_snapshot_every_must_be_whole_steps(self):
        out = os.path.join(self.tmp.name, "bad")
        proc = run(out, None, "train.snapshot_every=1500")
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertIn("train.snapshot_every", proc.stderr)
        self.assertIn("multiple of train.batch_size", proc.stderr)
        self.assertFalse(os.path.exists(out))


if __name__ == "__main__":
    unittest.main()
