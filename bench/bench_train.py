"""Benchmark: a topk SAE training step, universae (bench_train_step, C++) against a PyTorch
implementation of the same step (Debian python3-torch, same machine, same thread count), run side
by side. Prints one final JSON line.

    OMP_NUM_THREADS=2 /usr/bin/python3 bench/bench_train.py [build/bench/bench_train_step]

The PyTorch step is the usual one (as in sparsify/SAELens on CPU): encoder linear, relu, topk, the
decoder as a dense matmul of the scattered codes, AuxK, autograd, the parallel-gradient removal,
clip_grad_norm_, torch.optim.Adam and the renormalisation.
"""
import json
import os
import subprocess
import sys
import time

import torch

D, N, K, B, STEPS = 512, 16384, 32, 4096, 5


def torch_step_seconds():
    torch.manual_seed(0)
    W_dec = torch.randn(N, D)
    W_dec /= W_dec.norm(dim=1, keepdim=True)
    p = {"W_enc": W_dec.clone().requires_grad_(), "b_enc": torch.zeros(N, requires_grad=True),
         "W_dec": W_dec.requires_grad_(), "b_dec": torch.zeros(D, requires_grad=True)}
    opt = torch.optim.Adam(list(p.values()), lr=1e-4)
    x = torch.randn(B, D)
    best = float("inf")
    for r in range(STEPS + 1):
        t = time.perf_counter()
        opt.zero_grad()
        post = torch.relu((x - p["b_dec"]) @ p["W_enc"].T + p["b_enc"])
        values, indices = post.topk(K, dim=1)
        z = torch.zeros_like(post).scatter(1, indices, values)
        x_hat = z @ p["W_dec"] + p["b_dec"]
        loss = ((x - x_hat) ** 2).sum() / B  # no dead latents at step 0, as in the C++ run: no AuxK term
        loss.backward()
        with torch.no_grad():
            g = p["W_dec"].grad
            g -= (g * p["W_dec"]).sum(1, keepdim=True) * p["W_dec"]
        torch.nn.utils.clip_grad_norm_(list(p.values()), 1.0)
        opt.step()
        with torch.no_grad():
            p["W_dec"] /= p["W_dec"].norm(dim=1, keepdim=True)
        if r > 0:
            best = min(best, time.perf_counter() - t)
    return best


# The PyTorch side runs with glibc keeping freed memory for reuse, blocks up to 1 GiB included: its
# step allocates and frees several 256 MiB tensors, which with glibc's defaults are mapped afresh and
# page-faulted in every step (7.4-8.4 s against 2.65 s on a virtualised host, 2026-12-02). universae
# keeps its encoder output in a buffer and configures glibc itself (core/allocator.hpp; mallopt
# overrides this variable), so each side runs as well as its allocator lets it. Set before the
# interpreter starts, so the script runs itself again once.
ALLOCATOR = "glibc.malloc.mmap_threshold=1073741824:glibc.malloc.trim_threshold=4294967296:glibc.malloc.top_pad=67108864"


def main():
    if os.environ.get("GLIBC_TUNABLES") != ALLOCATOR:
        os.execve(sys.executable, [sys.executable] + sys.argv, dict(os.environ, GLIBC_TUNABLES=ALLOCATOR))
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join("build", "bench", "bench_train_step")
    threads = int(os.environ.get("OMP_NUM_THREADS", "2"))
    torch.set_num_threads(threads)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    out = subprocess.run([binary, str(D), str(N), str(K), str(B), str(STEPS)], capture_output=True, text=True,
                         check=True, env=env).stdout
    cpp = json.loads(out.strip().splitlines()[-1])
    py = torch_step_seconds()
    result = dict(cpp, torch_step_s=round(py, 4), torch_tokens_per_s=round(B / py, 1),
                  speedup_vs_torch=round(py / cpp["step_s"], 3), torch_version=torch.__version__)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
