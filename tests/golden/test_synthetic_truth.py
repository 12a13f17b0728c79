"""Golden test: the ground-truth metrics of SAEs trained on the synthetic benchmark (Zipf firing, a
hierarchy and correlated firing all on) against numpy/scipy, at 1 and 2 ranks.

universae trains two small topk SAEs (fewer and more latents than true features) and writes
ground_truth_mcc, _uniqueness, _precision, _recall, _f1 and _shrinkage (compare/ground_truth.hpp,
docs/statistics.md). The references:
  - the dictionary, the held-out tokens and their true codes come from a numpy generator written here
    from the generator's documentation (src/data/synthetic.hpp: the counter-based RNG, the draw order,
    the copula and the hierarchy). No library provides it, so it is our own reference from the same
    description; it reproduces the tokens, which the SAE file's l0 and fvu confirm;
  - MCC: scipy.optimize.linear_sum_assignment on |cos| (maximize), as SAELens's synthetic evals do;
  - uniqueness, precision/recall/F1 of each latent as a detector of its best |cos| feature, and
    shrinkage: numpy, after SAELens's sae_lens/synthetic/evals.py definitions;
  - codes: scripts/universae_ref.py encode (float64).
Also: the attributes are identical at 1 and 2 ranks, and the generator's documented invariants hold in
the reference's true codes (no child without its parent, never two siblings together).
"""
import math
import os
import sys
import tempfile
import unittest

import h5py
import numpy as np
from scipy.optimize import linear_sum_assignment

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
from universae_test import SCRIPTS, universae  # noqa: E402

sys.path.insert(0, SCRIPTS)
import universae_ref as ref  # noqa: E402

SPEC = dict(d=16, n_features=48, mean_l0=5.0, power_law=1.0, magnitude_std=0.25, noise_std=0.01, seed=3,
            hierarchy_parents=4, hierarchy_children=3, correlation_rank=3, correlation_strength=0.5)
EVAL_TOKENS, MICRO_BATCH = 4096, 512
HELD_OUT = 1 << 50  # data::kHeldOutTokenOffset
GOLDEN, M64 = 0x9E3779B97F4A7C15, (1 << 64) - 1
STREAM_DICTIONARY, STREAM_TOKENS, STREAM_LOADINGS = 1, 2, 0x53594E434F525231


# ---- the generator in numpy (src/data/synthetic.hpp, src/core/rng.hpp) ---------------------------------

def u64(v):
    return np.asarray(v, dtype=np.uint64)


def mix64(z):
    with np.errstate(over="ignore"):
        z = z + u64(GOLDEN)
        z = (z ^ (z >> u64(30))) * u64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> u64(27))) * u64(0x94D049BB133111EB)
        return z ^ (z >> u64(31))


class CounterRng:
    """One SplitMix64 sequence per index, all advanced together (only where `where` is true)."""

    def __init__(self, seed, stream, index):
        self.state = mix64(mix64(mix64(u64(seed)) ^ u64(stream)) ^ u64(index))

    def uniform(self, where=None):
        with np.errstate(over="ignore"):
            advanced = self.state + u64(GOLDEN)
        self.state = advanced if where is None else np.where(where, advanced, self.state)
        return (mix64(self.state) >> u64(11)).astype(np.float64) * 2.0 ** -53

    def normal(self, where=None):
        u1 = np.maximum(self.uniform(where), 1e-300)
        u2 = self.uniform(where)
        return np.sqrt(-2.0 * np.log(u1)) * np.cos(6.283185307179586 * u2)


def normal_rows(rows, cols, seed, stream):
    """Unit rows, row i from (seed, stream, i), float32 as core::normal_rows stores them."""
    rng = CounterRng(seed, stream, np.arange(rows, dtype=np.uint64))
    v = np.stack([rng.normal() for _ in range(cols)], axis=1)
    norm2 = np.zeros((rows, 1))
    for c in range(cols):  # in order, as the C++ sums
        norm2 += v[:, c:c + 1] ** 2
    inv = 1.0 / np.sqrt(norm2)
    return (v.astype(np.float32).astype(np.float64) * inv).astype(np.float32)


def power_law(m, alpha, mean_l0):
    base = [float(j + 1) ** -alpha for j in range(m)]

    def total(c):
        s = 0.0
        for b in base:
            s += min(1.0, c * b)
        return s

    lo, hi = 0.0, 1.0
    while total(hi) < mean_l0 and hi < 1e300:
        hi *= 2
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if total(mid) < mean_l0:
            lo = mid
        else:
            hi = mid
    return np.array([min(1.0, hi * b) for b in base])


def normal_quantile(p):
    if p >= 1.0:
        return math.inf
    lo, hi = -40.0, 40.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if 0.5 * math.erfc(-mid / math.sqrt(2.0)) < p:
            lo = mid
        else:
            hi = mid
    return hi


class Generator:
    def __init__(self, s):
        self.s = s
        self.G = normal_rows(s["n_features"], s["d"], s["seed"], STREAM_DICTIONARY)
        self.p = power_law(s["n_features"], s["power_law"], s["mean_l0"])
        r = s["correlation_rank"]
        self.L = normal_rows(s["n_features"], r, s["seed"], STREAM_LOADINGS) if r else None
        self.tau = np.array([normal_quantile(p) for p in self.p])

    def parent(self, j):
        P, C = self.s["hierarchy_parents"], self.s["hierarchy_children"]
        return (j - P) // C if P <= j < P * (1 + C) else -1

    def draws(self, rng, T):
        """Firing (T, m) and magnitudes before the hierarchy, in the documented draw order."""
        s, r = self.s, self.s["correlation_rank"]
        u = np.stack([rng.normal() for _ in range(r)], axis=1) if r else None
        own, scale = math.sqrt(1.0 - s["correlation_strength"]), math.sqrt(s["correlation_strength"])
        fires = np.zeros((T, s["n_features"]), dtype=bool)
        mags = np.zeros((T, s["n_features"]))
        for j in range(s["n_features"]):
            if r == 0:
                f = rng.uniform() < self.p[j]
            else:
                z = own * rng.normal()
                for k in range(r):
                    z = z + scale * np.float64(self.L[j, k]) * u[:, k]
                f = z < self.tau[j]
            a = np.abs(1.0 + s["magnitude_std"] * rng.normal(where=f))
            fires[:, j], mags[:, j] = f, np.where(f, a, 0.0)
        return fires, mags

    def hierarchy(self, rng, fires):
        P, C = self.s["hierarchy_parents"], self.s["hierarchy_children"]
        for q in range(P):
            kids = np.arange(P + q * C, P + (q + 1) * C)
            alive = fires[:, kids] & fires[:, [q]]
            count = alive.sum(axis=1)
            draw = rng.uniform(where=count >= 2)
            pick = np.where(count >= 2, np.minimum(count - 1, np.floor(draw * count)).astype(int), 0)
            rank_in_alive = np.cumsum(alive, axis=1) - 1
            fires[:, kids] = alive & (rank_in_alive == pick[:, None])

    def tokens(self, first, count):
        """Tokens (count, d) float32 and true firing (count, m)."""
        s = self.s
        rng = CounterRng(s["seed"], STREAM_TOKENS, np.arange(first, first + count, dtype=np.uint64))
        fires, mags = self.draws(rng, count)
        if s["hierarchy_parents"]:
            self.hierarchy(rng, fires)
        x = np.zeros((count, s["d"]))
        for j in range(s["n_features"]):
            x += np.where(fires[:, j], mags[:, j], 0.0)[:, None] * self.G[j].astype(np.float64)
        noise = np.stack([s["noise_std"] * rng.normal() for _ in range(s["d"])], axis=1)
        return (x + noise).astype(np.float32), fires


# ---- the metrics (SAELens sae_lens/synthetic/evals.py definitions) --------------------------------------

def abs_cos(W, G):
    return np.abs(ref.unit_rows(W) @ ref.unit_rows(G).T)  # (n, m)


def reference_metrics(sae, G, x, fires):
    S = abs_cos(sae["W_dec"], G)
    r, c = linear_sum_assignment(S, maximize=True)
    best = S.argmax(axis=1)
    z = ref.encode(x.astype(np.float64), sae)
    on, target = z > 0, fires[:, best]
    tp, fired, active = (on & target).sum(0), on.sum(0), target.sum(0)
    precision = np.where(fired > 0, tp / np.maximum(fired, 1), 0.0)
    recall = np.where(active > 0, tp / np.maximum(active, 1), 0.0)
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-300), 0.0)
    x_hat = z @ sae["W_dec"] + sae["b_dec"]
    norms = np.linalg.norm(x.astype(np.float64), axis=1)
    valid = norms > 1e-6
    return dict(mcc=S[r, c].mean(), uniqueness=len(np.unique(best)) / len(best), precision=precision.mean(),
                recall=recall.mean(), f1=f1.mean(),
                shrinkage=(np.linalg.norm(x_hat, axis=1)[valid] / norms[valid]).mean(), l0=on.sum(1).mean(),
                fvu=((x - x_hat) ** 2).sum() / ((x - x.mean(0)) ** 2).sum(), codes=z)


def job_text(n_latents):
    synthetic = "\n".join(f"{k} = {v}" for k, v in SPEC.items())
    return f"""[run]
stages = ["train"]
[data]
source = "synthetic"
[data.synthetic]
{synthetic}
[sae]
architecture = "topk"
n_latents = {n_latents}
k = 6
seeds = [0]
[train]
tokens = 131072
batch_size = 1024
micro_batch = {MICRO_BATCH}
lr = 1e-2
warmup_steps = 10
eval_tokens = {EVAL_TOKENS}
"""


def read_sae(path):
    with h5py.File(path, "r") as f:
        sae = {k: f[k][()].astype(np.float64) for k in ("W_enc", "b_enc", "W_dec", "b_dec")}
        sae.update(architecture=f.attrs["architecture"], k=int(f.attrs["k"]),
                   apply_b_dec_to_input=bool(f.attrs["apply_b_dec_to_input"]))
        attrs = {k: float(v) for k, v in f.attrs.items() if k.startswith("ground_truth") or k in ("fvu", "l0")}
    return sae, attrs


METRICS = ("mcc", "uniqueness", "precision", "recall", "f1", "shrinkage")


class SyntheticGroundTruth(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.gen = Generator(SPEC)
        cls.x, cls.fires = cls.gen.tokens(HELD_OUT, EVAL_TOKENS)
        cls.runs = {}
        for n_latents, ranks in ((32, 1), (72, 1), (72, 2)):
            out = os.path.join(cls.tmp.name, f"n{n_latents}_np{ranks}")
            job = out + ".toml"
            with open(job, "w") as f:
                f.write(job_text(n_latents))
            proc = universae(["train", job, "--set", f"run.output_dir={out}"], ranks, timeout=250)
            if proc.returncode != 0:
                raise AssertionError(f"train n={n_latents} at {ranks} ranks exited {proc.returncode}:\n{proc.stderr}")
            cls.runs[n_latents, ranks] = read_sae(os.path.join(out, "saes", "seed0.h5"))

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_reference_generator_obeys_the_documented_structure(self):
        P, C = SPEC["hierarchy_parents"], SPEC["hierarchy_children"]
        for q in range(P):
            kids = self.fires[:, P + q * C: P + (q + 1) * C]
            self.assertTrue(np.all(kids.sum(axis=1) <= 1), f"two children of parent {q}")
            self.assertTrue(np.all(~kids.any(axis=1) | self.fires[:, q]), f"a child of {q} without it")
        self.assertGreater(self.fires[:, P:P * (1 + C)].sum(), EVAL_TOKENS // 4)

    def test_metrics_match_numpy_and_scipy(self):
        for n_latents in (32, 72):
            sae, attrs = self.runs[n_latents, 1]
            want = reference_metrics(sae, self.gen.G, self.x, self.fires)
            with self.subTest(n_latents=n_latents):
                # The tokens are the same (the file's L0 and FVU from universae's own pass agree), ...
                self.assertAlmostEqual(attrs["l0"], want["l0"], delta=1e-9)
                self.assertAlmostEqual(attrs["fvu"], want["fvu"], delta=1e-5 * want["fvu"])
                self.assertEqual(attrs["ground_truth_tokens"], EVAL_TOKENS)
                # ... so every metric agrees: integer counts exactly, MCC to rounding, shrinkage to float32.
                self.assertAlmostEqual(attrs["ground_truth_mcc"], want["mcc"], delta=1e-9)
                self.assertEqual(attrs["ground_truth_uniqueness"], want["uniqueness"])
                for key in ("precision", "recall", "f1"):
                    self.assertAlmostEqual(attrs[f"ground_truth_{key}"], want[key], delta=1e-12, msg=key)
                self.assertAlmostEqual(attrs["ground_truth_shrinkage"], want["shrinkage"], delta=1e-6)
                self.assertGreater(want["mcc"], 0.5)  # it learned something: the metrics are not vacuous
                print(f"n={n_latents}: " + ", ".join(f"{k} {want[k]:.4f}" for k in METRICS))
        self.assertLess(reference_metrics(self.runs[72, 1][0], self.gen.G, self.x, self.fires)["uniqueness"], 1.0)

    def test_identical_at_one_and_two_ranks(self):
        one, two = self.runs[72, 1][1], self.runs[72, 2][1]
        for key in METRICS:
            self.assertEqual(one[f"ground_truth_{key}"], two[f"ground_truth_{key}"], key)


if __name__ == "__main__":
    unittest.main()
