"""Golden test: training steps of every architecture (src/core/sae_model.cpp, stacked seeds, hand-
written gradients) against the PyTorch autograd reference scripts/sae_train_ref.py (METHODS.md §1).

For each architecture, two seeds with different initial weights and a shared batch sequence: the
first step's loss terms and raw gradients, and the weights after three optimiser steps (decoder
projection, gradient clipping, Adam, renormalisation), must match within 1e-5 (relative to the
tensor's scale). Adam's ε is set to 1e-3 here so that an update is a smooth function of the gradient
(with ε = 1e-8 a gradient entry that is 0 up to rounding could move a weight by ±lr either way).
"""
import os
import sys
import tempfile
import unittest
import zlib

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
from universae_test import SCRIPTS, run_command  # noqa: E402

sys.path.insert(0, SCRIPTS)
import sae_train_ref as ref  # noqa: E402

HARNESS = os.environ["UNIVERSAE_TRAIN_STEP_HARNESS"]
TOL = 1e-5
S, D, N, B, STEPS = 2, 16, 48, 64, 3


def make_params(arch, rng):
    seeds = []
    for _ in range(S):
        W_dec = rng.standard_normal((N, D)).astype(np.float32)
        if arch in ref.UNIT_NORM:
            W_dec /= np.linalg.norm(W_dec, axis=1, keepdims=True)
        else:
            W_dec *= rng.uniform(0.5, 1.5, (N, 1)).astype(np.float32) / np.sqrt(D)
        p = {
            "W_enc": (W_dec + 0.3 * rng.standard_normal((N, D))).astype(np.float32),
            "b_enc": (0.1 * rng.standard_normal(N)).astype(np.float32),
            "W_dec": W_dec,
            "b_dec": (0.1 * rng.standard_normal(D)).astype(np.float32),
        }
        if arch == "jumprelu":
            p["log_threshold"] = np.log(rng.uniform(0.05, 1.0, N)).astype(np.float32)
        if arch == "gated":
            p["r_mag"] = (0.2 * rng.standard_normal(N)).astype(np.float32)
            p["b_mag"] = (0.1 * rng.standard_normal(N)).astype(np.float32)
        seeds.append(p)
    return seeds


def hyper(arch):
    return {"k": 4, "k_aux": 8, "aux_alpha": 1.0 / 32.0, "bandwidth": 0.05,
            "sparsity": {"relu": 0.1, "jumprelu": 0.5, "gated": 0.3}.get(arch, 0.0),
            "apply_b_dec": 1, "lr": 1e-2, "grad_clip": 1.0 if arch != "relu" else 0.0,
            "beta1": 0.9, "beta2": 0.999, "eps": 1e-3}


def close(test, got, want, what):
    scale = max(1.0, float(np.abs(want).max()))
    err = float(np.abs(got - want).max())
    test.assertLessEqual(err, TOL * scale, f"{what}: max |diff| {err:.3g} (scale {scale:.3g})")


class TrainStepAgainstTorch(unittest.TestCase):
    def check(self, arch):
        # A fixed seed per architecture (CRC-32 of its name): the same inputs on every run, so a failure
        # reproduces. Python's hash() of a str is salted per process and gave new inputs each run.
        rng = np.random.default_rng(zlib.crc32(arch.encode()))
        seeds = make_params(arch, rng)
        hp = hyper(arch)
        x = rng.standard_normal((STEPS, B, D)).astype(np.float32)
        dead = (rng.uniform(size=(N,)) < 0.5).astype(np.float32)  # same dead set for both seeds
        with tempfile.TemporaryDirectory() as tmp:
            inp, out = os.path.join(tmp, "in.h5"), os.path.join(tmp, "out.h5")
            with h5py.File(inp, "w") as f:
                f["x"] = x
                for name in seeds[0]:
                    f[name] = np.stack([p[name] for p in seeds])
                if arch in ("topk", "batchtopk"):
                    f["dead"] = np.stack([dead] * S)
                f.attrs["architecture"] = arch
                for key, value in hp.items():
                    f.attrs[key] = value
            # Both implementations of the step (run.kernels): the CPU kernels and the ATen-only twin.
            got = {}
            for kernels in ("fast", "generic"):
                r = run_command([HARNESS, inp, out] + ([kernels] if kernels == "generic" else []), timeout=120, cwd=None)
                self.assertEqual(r.returncode, 0, r.stderr)
                with h5py.File(out, "r") as f:
                    got[kernels] = ({k: f["loss"][k][()] for k in ("sse", "aux_sse", "sparsity")},
                                    {k: f["grad"][k][()] for k in f["grad"]}, {k: f["param"][k][()] for k in f["param"]})
        for s, p in enumerate(seeds):
            terms, grads, final = ref.train(arch, {k: torch.from_numpy(v) for k, v in p.items()},
                                            [torch.from_numpy(b) for b in x],
                                            torch.from_numpy(dead).bool(), hp)
            for kernels, (got_loss, got_grad, got_param) in got.items():
                with self.subTest(kernels=kernels, seed=s):
                    self.compare(arch, s, p, (terms, grads, final), got_loss, got_grad, got_param)

    def compare(self, arch, s, p, reference, got_loss, got_grad, got_param):
        """One implementation's seed `s` against the autograd reference: loss terms, gradients, weights."""
        terms, grads, final = reference
        for name, value in zip(("sse", "aux_sse", "sparsity"), terms):
            self.assertAlmostEqual(got_loss[name][s], value, delta=TOL * max(1.0, abs(value)),
                                   msg=f"{arch} seed {s} {name}")
        if arch in ("topk", "batchtopk"):
            self.assertGreater(terms[1], 0, "the test must exercise AuxK")
        for name, g in grads.items():
            close(self, got_grad[name][s], g.numpy(), f"{arch} seed {s} grad {name}")
            self.assertGreater(float(np.abs(g.numpy()).max()), 0, f"{arch} grad {name} is all zero")
        for name, w in final.items():
            close(self, got_param[name][s], w.numpy(), f"{arch} seed {s} {name} after {STEPS} steps")
            moved = float(np.abs(w.numpy() - p[name]).max())
            self.assertGreater(moved, 1e-3, f"{arch} {name} did not move")

    def test_relu(self):
        self.check("relu")

    def test_topk(self):
        self.check("topk")

    def test_batchtopk(self):
        self.check("batchtopk")

    def test_jumprelu(self):
        self.check("jumprelu")

    def test_gated(self):
        self.check("gated")


if __name__ == "__main__":
    unittest.main(verbosity=2)
