"""Science check of the training engine (METHODS.md §2): on synthetic superposition data with 512
ground-truth features, how ground-truth recovery (MMCS) and cross-seed similarity (decoder MCS,
Hungarian shared fraction) change with the SAE's size and k. Runs `universae run` per setting (two
seeds each) and prints a Markdown table.

    /usr/bin/python3 scripts/recovery_sweep.py [--ranks 2] [--tokens 2000000] [--out runs/recovery_sweep]
"""
import argparse
import csv
import os
import subprocess

import h5py

SOURCE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETTINGS = [(256, 8), (512, 4), (512, 8), (512, 16), (1024, 8), (2048, 8)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=2_000_000)
    ap.add_argument("--out", default=os.path.join(SOURCE, "runs", "recovery_sweep"))
    ap.add_argument("--binary", default=os.path.join(SOURCE, "build", "universae"))
    args = ap.parse_args()
    rows = []
    for n, k in SETTINGS:
        out = os.path.join(args.out, f"n{n}_k{k}")
        cmd = ["mpirun", "-n", str(args.ranks), args.binary, "run", os.path.join(SOURCE, "jobs", "synthetic_ci.toml"),
               "--set", f"run.output_dir={out}", "--set", f"sae.n_latents={n}", "--set", f"sae.k={k}",
               "--set", f"train.tokens={args.tokens}", "--set", "train.log_every=500", "--set", "compare.activations=",
               "--set", "compare.baseline_random=false", "--set", "compare.repsim=false"]
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        mmcs = []
        for seed in (0, 1):
            with h5py.File(os.path.join(out, "saes", f"seed{seed}.h5"), "r") as f:
                mmcs.append((f.attrs["ground_truth_mmcs"], f.attrs["fvu"], f.attrs["l0"]))
        with open(os.path.join(out, "summary.csv")) as f:
            pair = next(csv.DictReader(f))
        rows.append((n, k, mmcs, pair))
        print(f"done n={n} k={k}", flush=True)
    print("| latents | k | GT MMCS (seed 0 / 1) | FVU | decoder MCS | mean Hungarian cos (dec) | shared fraction |")
    print("|---:|---:|---|---:|---:|---:|---:|")
    for n, k, mmcs, pair in rows:
        print(f"| {n} | {k} | {mmcs[0][0]:.4f} / {mmcs[1][0]:.4f} | {mmcs[0][1]:.4f} | {float(pair['decoder_mcs_ab']):.4f} | "
              f"{float(pair['mean_cos_decoder']):.4f} | {float(pair['shared_fraction']):.4f} |")


if __name__ == "__main__":
    main()
