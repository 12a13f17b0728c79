#!/usr/bin/env python3
"""The same quick-start job run with run.device = "cpu" and "cuda" (scripts/gpu-check.sh): every output
compared, printed as one JSON line, exit 1 when one is beyond its tolerance.

  compare_runs.py CPU_DIR CUDA_DIR

- the store's activations: the forward pass on the GPU against the CPU's, within 1e-4 of their scale
  (cuBLAS and the CPU's BLAS sum in other orders);
- each SAE after training: held-out FVU and L0 within 2 % (the float differences of the forward pass
  and of the step grow over a few hundred Adam steps; the seeds must train alike, not bit for bit);
- the comparison: each pair's mean max cosine (both ways), Hungarian mean cosine and mean max
  activation correlation within 0.01.
"""
import json
import os
import sys

import h5py
import numpy as np


def main(cpu, cuda):
    report, failures = {}, []

    def check(name, got, want, tol):
        err = float(np.max(np.abs(np.asarray(got, dtype=np.float64) - np.asarray(want, dtype=np.float64))))
        report[name] = err
        if not err <= tol:
            failures.append(f"{name}: {err:.3g} > {tol:.3g}")

    with h5py.File(os.path.join(cpu, "activations.h5"), "r") as a, h5py.File(os.path.join(cuda, "activations.h5"), "r") as b:
        for hook in a["activations"]:
            x, y = a["activations"][hook][()].astype(np.float64), b["activations"][hook][()].astype(np.float64)
            check(f"activations/{hook}", y / np.abs(x).max(), x / np.abs(x).max(), 1e-4)
    for name in sorted(os.listdir(os.path.join(cpu, "saes"))):
        with h5py.File(os.path.join(cpu, "saes", name), "r") as a, h5py.File(os.path.join(cuda, "saes", name), "r") as b:
            for attr in ("fvu", "l0"):
                want = float(a.attrs[attr])
                check(f"{name}/{attr} (relative)", float(b.attrs[attr]) / want, 1.0, 0.02)
    with h5py.File(os.path.join(cpu, "results.h5"), "r") as a, h5py.File(os.path.join(cuda, "results.h5"), "r") as b:
        for pair in a["pairs"]:
            for group, attr in (("decoder", "mcs_ab"), ("decoder", "mcs_ba"), ("lap", "mean_cos_decoder"),
                                ("activation", "mean_max_corr_ab")):
                if attr in a["pairs"][pair][group].attrs:
                    check(f"{pair}/{group}@{attr}", b["pairs"][pair][group].attrs[attr], a["pairs"][pair][group].attrs[attr], 0.01)
    print(json.dumps({"compared": report, "failures": failures}))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
