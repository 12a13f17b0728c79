"""Cross-model activation correlation (each SAE on its own model's store) vs today's same-model one.

    /usr/bin/python3 bench/bench_cross_model.py [--n 16384] [--tokens 200000] [--k 32] [--d-a 64] [--d-b 96]
                                                [--ranks 2] [--repeats 3] [--keep DIR]

Two activation stores written with h5py over the same /tokens and /seq_offsets: store A holds `tokens`
Gaussian rows of width d_a (model "bench-a"); store B holds the same rows through a fixed linear map
M (d_b x d_a, orthonormal columns) plus noise 0.1 (model "bench-b"). Three topk SAEs: A (n latents on
d_a, unit Gaussian encoder rows), A2 (a second SAE on store A, like bench_correlation's B: A's rows
permuted plus noise 0.3) and B (n latents on d_b, encoder rows M·w_a, so that B's latent i fires where
A's latent i does). Two configurations, both `compare` with the activation statistics only
(compare.hungarian=false, compare.repsim=false) on `ranks` ranks:
  same:  compare --sae A --sae A2 --activations storeA                     (today's same-model correlation)
  cross: compare --sae A --activations storeA --sae B --activations storeB (the cross-model one)
Measured: the activation group's `seconds` (/pairs/<a>--<b>/activation @seconds: moments, latent-major
views and the exact correlation maxima both ways) and the whole command's wall time (which includes
encoding each SAE on its store: T·d·n per SAE, so B's encoding costs d_b/d_a of A's). `repeats`
runs of each, alternating same/cross so that background load hits both alike; medians. The cross
run's maxima are checked: B's latents correspond to A's, so mean_max_corr must be high and argmax_ab
mostly the identity. Prints a final JSON line.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "scripts"))
import universae_ref as ref  # noqa: E402

HOOKPOINT = "bench"


def write_store(path, x, tokens, seq_offsets, model):
    with h5py.File(path, "w") as f:
        f[f"activations/{HOOKPOINT}"] = x
        f["tokens"] = tokens
        f["seq_offsets"] = seq_offsets
        f["doc_offsets"] = seq_offsets
        f.attrs["model"] = model
        f.attrs["complete"] = True


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=16384)
    p.add_argument("--tokens", type=int, default=200000)
    p.add_argument("--k", type=int, default=32)
    p.add_argument("--d-a", type=int, default=64)
    p.add_argument("--d-b", type=int, default=96)
    p.add_argument("--seq-len", type=int, default=250)
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--keep", default=None, help="keep the stores, SAEs, results and logs in this folder")
    p.add_argument("--binary", default=os.path.join(HERE, "..", "build", "universae"))
    a = p.parse_args()
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMP_NUM_THREADS="1",
               OPENBLAS_NUM_THREADS="1")
    rng = np.random.default_rng(7)
    W_a = rng.standard_normal((a.n, a.d_a))
    W_a /= np.linalg.norm(W_a, axis=1, keepdims=True)
    W_a2 = W_a[rng.permutation(a.n)] + 0.3 * rng.standard_normal((a.n, a.d_a))
    W_a2 /= np.linalg.norm(W_a2, axis=1, keepdims=True)
    M, _ = np.linalg.qr(rng.standard_normal((a.d_b, a.d_a)))  # d_b x d_a, orthonormal columns
    W_b = W_a @ M.T  # unit rows again; (M w_a) · (M x) = w_a · x
    x = rng.standard_normal((a.tokens, a.d_a)).astype(np.float32)
    x_b = (x @ M.T + 0.1 * rng.standard_normal((a.tokens, a.d_b))).astype(np.float32)
    tokens = rng.integers(0, 1000, a.tokens).astype(np.int32)
    seq_offsets = np.append(np.arange(0, a.tokens, a.seq_len), a.tokens).astype(np.int64)

    tmp = a.keep or tempfile.mkdtemp()
    os.makedirs(tmp, exist_ok=True)
    try:
        path = {name: os.path.join(tmp, name + ".h5") for name in ("a", "a2", "b", "store_a", "store_b")}
        for name, W in (("a", W_a), ("a2", W_a2), ("b", W_b)):
            W = W.astype(np.float32)
            ref.write_sae(path[name], W, np.zeros(a.n), W, np.zeros(W.shape[1]), k=a.k, apply_b_dec_to_input=False,
                          hookpoint=HOOKPOINT)
        write_store(path["store_a"], x, tokens, seq_offsets, "bench-a")
        write_store(path["store_b"], x_b, tokens, seq_offsets, "bench-b")
        del x_b

        common = ["--set", f"data.hookpoint={HOOKPOINT}", "--set", "compare.hungarian=false", "--set", "compare.repsim=false"]
        configs = {
            "same": (["--sae", path["a"], "--sae", path["a2"], "--activations", path["store_a"]], "a--a2"),
            "cross": (["--sae", path["a"], "--activations", path["store_a"], "--sae", path["b"], "--activations",
                       path["store_b"]], "a--b"),
        }

        def run(config, rep):
            args, pair = configs[config]
            out = os.path.join(tmp, f"{config}_{rep}.h5")
            cmd = ["mpirun", "-n", str(a.ranks), a.binary, "compare", *args, "--out", out, "--fresh", *common]
            for attempt in range(10):
                t0 = time.perf_counter()
                r = subprocess.run(cmd, env=env, capture_output=True, text=True)
                wall = time.perf_counter() - t0
                if r.returncode == 0:
                    break
                busy = "Text file busy" in r.stderr + r.stdout or "Permission denied" in r.stderr + r.stdout
                if not busy or attempt == 9:
                    sys.exit(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
                time.sleep(30)  # the binary is being rebuilt
            with open(os.path.join(tmp, f"{config}_{rep}.log"), "w") as f:
                f.write(r.stdout + r.stderr)
            with h5py.File(out) as f:
                g = f[f"pairs/{pair}/activation"]
                res = dict(seconds=float(g.attrs["seconds"]), wall=wall,
                           mean_ab=float(g.attrs["mean_max_corr_ab"]), mean_ba=float(g.attrs["mean_max_corr_ba"]),
                           argmax_ab=g["argmax_ab"][()], argmax_ba=g["argmax_ba"][()])
            if not a.keep:
                os.remove(out)
            return res

        results = {"same": [], "cross": []}
        for rep in range(a.repeats):
            for config in ("same", "cross"):
                r = run(config, rep)
                results[config].append(r)
                print(f"  rep {rep} {config:5s}: correlation {r['seconds']:6.2f} s, command {r['wall']:6.1f} s, "
                      f"mean max corr a->b {r['mean_ab']:.4f}, b->a {r['mean_ba']:.4f}", flush=True)

        med = {c: dict(seconds=statistics.median(r["seconds"] for r in rs), wall=statistics.median(r["wall"] for r in rs))
               for c, rs in results.items()}
        cross = results["cross"][-1]
        identity_ab = float(np.mean(cross["argmax_ab"] == np.arange(a.n)))
        identity_ba = float(np.mean(cross["argmax_ba"] == np.arange(a.n)))
        ratio_s = med["cross"]["seconds"] / med["same"]["seconds"]
        ratio_wall = med["cross"]["wall"] / med["same"]["wall"]
        print(f"activation correlation, n = {a.n} x {a.n}, T = {a.tokens:,}, k = {a.k}, d_a = {a.d_a}, d_b = {a.d_b}, "
              f"{a.ranks} rank(s), medians of {a.repeats}")
        print(f"  same model  (A, A2 on store A)       correlation {med['same']['seconds']:6.2f} s   command {med['same']['wall']:6.1f} s")
        print(f"  cross model (A on A, B on B)         correlation {med['cross']['seconds']:6.2f} s   command {med['cross']['wall']:6.1f} s")
        print(f"  cross / same: correlation {ratio_s:.3f}x (target <= 1.2x), command {ratio_wall:.3f}x")
        print(f"  cross maxima: mean max corr a->b {cross['mean_ab']:.4f}, b->a {cross['mean_ba']:.4f}; "
              f"argmax is the corresponding latent for {identity_ab:.4f} (a->b), {identity_ba:.4f} (b->a)")
        print(json.dumps(dict(bench="cross_model", n=a.n, tokens=a.tokens, k=a.k, d_a=a.d_a, d_b=a.d_b, ranks=a.ranks,
                              repeats=a.repeats,
                              same=dict(correlation_s=med["same"]["seconds"], command_s=med["same"]["wall"],
                                        runs=[dict(correlation_s=r["seconds"], command_s=r["wall"]) for r in results["same"]]),
                              cross=dict(correlation_s=med["cross"]["seconds"], command_s=med["cross"]["wall"],
                                         runs=[dict(correlation_s=r["seconds"], command_s=r["wall"]) for r in results["cross"]]),
                              ratio_correlation=ratio_s, ratio_command=ratio_wall, target_ratio=1.2,
                              met=ratio_s <= 1.2, cross_mean_max_corr_ab=cross["mean_ab"],
                              cross_mean_max_corr_ba=cross["mean_ba"], cross_argmax_identity_ab=identity_ab,
                              cross_argmax_identity_ba=identity_ba)))
    finally:
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
