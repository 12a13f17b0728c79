"""RSA permutation test: universae's Mantel fast path vs per-permutation scipy.stats.spearmanr.

    /usr/bin/python3 bench/bench_rsa.py [--n 4096] [--permutations 1000] [--naive 10] [--ranks 2] [--kernels fast|generic]

universae: `compare` on a pair of SAE-like SAEs with n latents; the RSA group's `seconds` covers
preparing the two Pearson matrices and their ranks, the score, and all permutations (over the ranks).
Reference: what the published approach does per permutation — re-pair Y, recompute np.corrcoef and
scipy.stats.spearmanr of the upper triangles — timed for --naive permutations and scaled linearly
to --permutations (stated in the output). Prints a final JSON line.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np
from scipy.stats import spearmanr

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "scripts"))
import universae_ref as ref  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=4096)
    p.add_argument("--d", type=int, default=64)
    p.add_argument("--permutations", type=int, default=1000)
    p.add_argument("--naive", type=int, default=10)
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--binary", default=os.path.join(HERE, "..", "build", "universae"))
    p.add_argument("--kernels", default="fast", choices=["fast", "generic"],
                   help="run.kernels: the CPU loops, or the device-generic scores() run on the CPU")
    a = p.parse_args()
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMP_NUM_THREADS="1")
    rng = np.random.default_rng(a.n)
    A = rng.standard_normal((a.n, a.d)).astype(np.float32)
    B = (A + 0.5 * rng.standard_normal((a.n, a.d))).astype(np.float32)  # same order: the matching is the identity
    with tempfile.TemporaryDirectory() as tmp:
        fa, fb, out = (os.path.join(tmp, f) for f in ("a.h5", "b.h5", "r.h5"))
        ref.write_sae(fa, A, np.zeros(a.n), A, np.zeros(a.d), k=8)
        ref.write_sae(fb, B, np.zeros(a.n), B, np.zeros(a.d), k=8)
        subprocess.run(["mpirun", "-n", str(a.ranks), a.binary, "compare", "--sae", fa, "--sae", fb, "--out", out,
                        "--set", f"compare.permutations={a.permutations}", "--set", f"compare.repsim_max_pairs={a.n}", "--set", f"run.kernels={a.kernels}"],
                       check=True, env=env, capture_output=True)
        with h5py.File(out) as f:
            g = f["pairs/a--b/rsa"]
            ours_s, score, match = g.attrs["seconds"], g.attrs["score"], f["pairs/a--b/lap/decoder_match"][()]
            metric_s = {m: round(float(f[f"pairs/a--b/{m}"].attrs["seconds"]), 3) for m in ("svcca", "rsa", "cka", "mutual_knn")}
    X, Y = A.astype(np.float64), B.astype(np.float64)[match]
    iu = np.triu_indices(a.n, k=1)
    sx = np.corrcoef(X)[iu]
    t0 = time.perf_counter()
    for i in range(a.naive):
        perm = rng.permutation(a.n)
        spearmanr(sx, np.corrcoef(Y[perm])[iu])
    naive_each = (time.perf_counter() - t0) / a.naive
    naive_total = naive_each * a.permutations
    ref_score = spearmanr(sx, np.corrcoef(Y)[iu]).correlation
    row = dict(benchmark="rsa_permutations", n=a.n, permutations=a.permutations, ranks=a.ranks, kernels=a.kernels,
               seconds_by_metric=metric_s,
               universae_s=round(ours_s, 3), naive_per_permutation_s=round(naive_each, 3),
               naive_total_s_extrapolated=round(naive_total, 1), speedup=round(naive_total / ours_s, 1),
               score=score, scipy_score=ref_score)
    print(f"n={a.n}, {a.permutations} permutations: universae {ours_s:.2f} s on {a.ranks} ranks; scipy "
          f"{naive_each:.2f} s per permutation (timed {a.naive}) -> {naive_total:.0f} s -> {naive_total / ours_s:.0f}x; "
          f"score {score:.9f} vs scipy {ref_score:.9f}")
    print(json.dumps(row))


if __name__ == "__main__":
    main()
