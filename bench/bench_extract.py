#!/usr/bin/env python3
"""Extraction throughput for stories260K on the TinyStories validation text (bench/RESULTS.md).

Runs `universae extract` (1 and 2 ranks; one hookpoint, and all 10 resid_post + mlp.hook_post
hookpoints with the loss) and reports tokens/s and where rank 0's time goes (forward, HDF5 writes waited
for, tokenization). One rank runs without mpirun, so it has a core its forward thread leaves free and its
writes run beside the forward; mpirun binds each of 2 ranks to a core, so theirs wait (docs/extraction.md).
Side by side, a plain PyTorch forward of the same model over the same documents (Debian's python3-torch,
one sequence per call, same thread count) is the reference.

    /usr/bin/python3 bench/bench_extract.py [--binary build/universae] [--documents 4302]
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

SOURCE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(SOURCE, "..", "shared", "data")
sys.path.insert(0, os.path.join(SOURCE, "scripts"))


def universae(binary, ranks, hookpoints, loss, documents, out):
    sets = ["extract.model=" + os.path.join(DATA, "stories260K.bin"), "extract.tokenizer=" + os.path.join(DATA, "tok512.bin"),
            'extract.inputs=["' + os.path.join(DATA, "tinystories_val_794k.txt") + '"]', f"extract.hookpoints={hookpoints}",
            f"extract.loss={'true' if loss else 'false'}", f"extract.max_documents={documents}", f"run.output_dir={out}"]
    cmd = (["mpirun", "-n", str(ranks)] if ranks > 1 else []) + [binary, "extract", "--fresh",
                                                                  os.path.join(SOURCE, "jobs", "quickstart.toml")]
    cmd += [a for s in sets for a in ("--set", s)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    start = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=SOURCE)
    wall = time.time() - start
    if proc.returncode != 0:
        sys.exit(proc.stderr)
    m = re.search(r"extract: (\d+) tokens in .*\(([\d.]+) tok/s; forward ([\d.]+) s, HDF5 writes ([\d.]+) s[^,]*, tokenize ([\d.]+) s\)",
                  proc.stderr)
    tokens, rate, fwd, write, tok = int(m[1]), float(m[2]), float(m[3]), float(m[4]), float(m[5])
    stage = tokens / rate
    return dict(tokens=tokens, rate=rate, wall=wall, forward=fwd / stage, write=write / stage, tokenize=tok / stage)


def torch_forward_rate(universae_tokens_path):
    """Tokens/s of a straightforward PyTorch forward, one document per call, on universae's own tokens."""
    import h5py
    import torch
    import llama2c_ref as ref
    torch.set_num_threads(1)
    m = ref.Model(os.path.join(DATA, "stories260K.bin"))
    T = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    emb, cls = T(m.emb), T(m.cls)
    L = [dict(att=T(m.rms_att[l]), ffn=T(m.rms_ffn[l]), wq=T(m.wq[l]), wk=T(m.wk[l]), wv=T(m.wv[l]), wo=T(m.wo[l]),
              w1=T(m.w1[l]), w2=T(m.w2[l]), w3=T(m.w3[l])) for l in range(m.layers)]
    final = T(m.rms_final)
    hs, kv_mul = m.dim // m.heads, m.heads // m.kv_heads
    freq = 1.0 / 10000.0 ** (torch.arange(0, hs, 2, dtype=torch.float32) / hs)

    def rms(x, w):
        return w * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5)

    def rope(x, pos):
        ang = pos[:, None] * freq[None, :]
        c, s = torch.cos(ang)[:, None, :], torch.sin(ang)[:, None, :]
        x0, x1 = x[..., 0::2], x[..., 1::2]
        return torch.stack([x0 * c - x1 * s, x0 * s + x1 * c], -1).flatten(-2)

    with h5py.File(universae_tokens_path, "r") as f:
        tokens, so = f["tokens"][()], f["seq_offsets"][()]
    start = time.time()
    with torch.no_grad():
        for s in range(len(so) - 1):
            ids = torch.tensor(tokens[so[s]:so[s + 1]], dtype=torch.long)
            n = len(ids)
            pos = torch.arange(n, dtype=torch.float32)
            x = emb[ids]
            mask = torch.ones(n, n, dtype=torch.bool).triu(1)
            for w in L:
                a = rms(x, w["att"])
                q = rope((a @ w["wq"].T).view(n, m.heads, hs), pos).transpose(0, 1)
                k = rope((a @ w["wk"].T).view(n, m.kv_heads, hs), pos).repeat_interleave(kv_mul, 1).transpose(0, 1)
                v = (a @ w["wv"].T).view(n, m.kv_heads, hs).repeat_interleave(kv_mul, 1).transpose(0, 1)
                att = (q @ k.transpose(1, 2) / hs ** 0.5).masked_fill(mask, float("-inf")).softmax(-1)
                x = x + (att @ v).transpose(0, 1).reshape(n, m.dim) @ w["wo"].T
                h = rms(x, w["ffn"])
                x = x + (torch.nn.functional.silu(h @ w["w1"].T) * (h @ w["w3"].T)) @ w["w2"].T
            torch.log_softmax(rms(x, final) @ cls.T, -1)
    return len(tokens) / (time.time() - start)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--binary", default=os.path.join(SOURCE, "build", "universae"))
    p.add_argument("--documents", type=int, default=4302)
    args = p.parse_args()
    one = '["blocks.2.hook_resid_post"]'
    every = '["blocks.*.hook_resid_post", "blocks.*.mlp.hook_post"]'
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{'ranks':>5} {'hookpoints':>10} {'loss':>5} {'tokens':>8} {'tok/s':>9} {'forward':>8} {'HDF5':>6} {'tokenize':>8}")
        for ranks, hooks, loss in [(1, one, False), (1, every, True), (2, one, False), (2, every, True)]:
            r = universae(args.binary, ranks, hooks, loss, args.documents, os.path.join(tmp, "x"))
            print(f"{ranks:>5} {1 if hooks == one else 10:>10} {str(loss):>5} {r['tokens']:>8} {r['rate']:>9.0f} "
                  f"{100 * r['forward']:>7.1f}% {100 * r['write']:>5.1f}% {100 * r['tokenize']:>7.1f}%")
        universae(args.binary, 1, every, True, args.documents, os.path.join(tmp, "ref"))
        rate = torch_forward_rate(os.path.join(tmp, "ref", "activations.h5"))
        print(f"PyTorch reference (full forward + logits, 1 thread, one document per call): {rate:.0f} tok/s")


if __name__ == "__main__":
    main()
