"""Certified Hungarian matching (universae) vs scipy.optimize.linear_sum_assignment, side by side.

    /usr/bin/python3 bench/bench_hungarian.py [n ...] [--ranks R] [--d D]
    /usr/bin/python3 bench/bench_hungarian.py 131072 --no-scipy --own-encoders   (the 131,072-latent record)

For each n: an SAE-like pair (B re-learns a shuffled, noisy copy of 70 % of A's latents, d = 256 by
default), written with h5py; `universae compare` on R ranks (decoder matching time from the results
file's lap/decoder_seconds attribute); scipy on the dense float64 cosine matrix (its own time, the
matrix not counted) against universae's matching alone and with its similarity pass (the GEMMs and
top-K lists, which also give the max cosine). Prints one line per n and a final JSON line; checks
the assignments agree. --no-scipy times universae alone (the dense float64 matrix of 131,072 latents
would need 137 GB) and reports the ranks' peak resident memory; --own-encoders draws the encoder pair
independently of the decoder pair (so equal_fraction is 0), as the 131,072-latent record does.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np
from scipy.optimize import linear_sum_assignment

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "scripts"))
import universae_ref as ref  # noqa: E402


def sae_like(rng, n, d, shared=0.7, noise=0.35):
    A = rng.standard_normal((n, d)).astype(np.float32)
    B = rng.standard_normal((n, d)).astype(np.float32)
    k = int(shared * n)
    B[rng.permutation(n)[:k]] = A[rng.permutation(n)[:k]] + noise * rng.standard_normal((k, d)).astype(np.float32)
    return A, B


def main():
    p = argparse.ArgumentParser()
    p.add_argument("sizes", nargs="*", type=int, default=[8192, 16384])
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--d", type=int, default=256)
    p.add_argument("--binary", default=os.path.join(HERE, "..", "build", "universae"))
    p.add_argument("--no-scipy", action="store_true", help="time universae only (decoder and encoder), no scipy reference")
    p.add_argument("--own-encoders", action="store_true", help="encoder pair drawn independently of the decoder pair")
    args = p.parse_args()
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMP_NUM_THREADS="1",
               OPENBLAS_NUM_THREADS="1")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            rng = np.random.default_rng(n)
            A, B = sae_like(rng, n, args.d)
            a, b, out = (os.path.join(tmp, f) for f in ("a.h5", "b.h5", "r.h5"))
            A_enc, B_enc = sae_like(rng, n, args.d) if args.own_encoders else (A, B)
            ref.write_sae(a, A_enc, np.zeros(n), A, np.zeros(args.d), k=32)
            ref.write_sae(b, B_enc, np.zeros(n), B, np.zeros(args.d), k=32)
            del A_enc, B_enc
            t0 = time.perf_counter()
            subprocess.run(["mpirun", "-n", str(args.ranks), args.binary, "compare", "--sae", a, "--sae", b, "--out", out,
                            "--set", "compare.repsim=false"],  # the paired-decoder SVCCA/RSA/CKA/kNN are not timed here
                           check=True, env=env, capture_output=True)
            total = time.perf_counter() - t0
            with h5py.File(out) as f:
                lap = f["pairs/a--b/lap"]
                ours, seconds, certified = lap["decoder_match"][()], lap.attrs["decoder_seconds"], bool(lap.attrs["certified"])
                pass_seconds = f["pairs/a--b/decoder"].attrs["seconds"]
                if args.no_scipy:
                    enc_seconds, enc_pass = lap.attrs["encoder_seconds"], f["pairs/a--b/encoder"].attrs["seconds"]
                    enc_certified = bool(lap.attrs["certified"])
            if args.no_scipy:
                # The largest rank's peak: mpirun waits for its ranks, so they count among this process's children.
                rank_peak_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
                row = dict(n=n, d=args.d, ranks=args.ranks, decoder_pass_s=round(pass_seconds, 3),
                           decoder_matching_s=round(seconds, 3), encoder_pass_s=round(enc_pass, 3),
                           encoder_matching_s=round(enc_seconds, 3), universae_compare_total_s=round(total, 3),
                           certified=certified and enc_certified, peak_rss_gib_largest_rank=round(rank_peak_gib, 2))
                rows.append(row)
                print(f"n={n}: decoder pass {pass_seconds:.1f} s + matching {seconds:.1f} s, encoder pass {enc_pass:.1f} s + "
                      f"matching {enc_seconds:.1f} s; whole compare {total:.1f} s on {args.ranks} ranks, certified "
                      f"{certified}, largest rank's peak {rank_peak_gib:.2f} GiB", flush=True)
                continue
            S = ref.unit_rows(A) @ ref.unit_rows(B).T
            t0 = time.perf_counter()
            r, c = linear_sum_assignment(S, maximize=True)
            scipy_s = time.perf_counter() - t0
            same = bool(np.array_equal(ours[r], c))
            obj_gap = float(S[r, c].sum() - S[np.arange(n), ours].sum())
            row = dict(n=n, d=args.d, ranks=args.ranks, universae_matching_s=round(seconds, 3),
                       universae_pass_s=round(pass_seconds, 3),
                       speedup_including_pass=round(scipy_s / (seconds + pass_seconds), 1),
                       universae_compare_total_s=round(total, 3), scipy_s=round(scipy_s, 3),
                       speedup=round(scipy_s / seconds, 1), identical_assignment=same, objective_gap=obj_gap,
                       certified=certified, scipy_matrix_gb=round(S.nbytes / 1e9, 2))
            rows.append(row)
            print(f"n={n}: universae matching {seconds:.2f} s + similarity pass {pass_seconds:.2f} s (whole compare "
                  f"{total:.1f} s, {args.ranks} ranks), scipy {scipy_s:.2f} s -> {scipy_s / seconds:.1f}x "
                  f"({scipy_s / (seconds + pass_seconds):.1f}x with the pass); identical {same}, certified {certified}",
                  flush=True)
            del S
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(json.dumps(dict(benchmark="hungarian_vs_scipy", python_peak_rss_gb=round(peak, 2), results=rows)))


if __name__ == "__main__":
    main()
