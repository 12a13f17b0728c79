"""Spliced evaluation (`universae evaluate`) against the clean forward it is compared with.

    /usr/bin/python3 bench/bench_sae_evaluation.py [--tokens 65536] [--n 4096] [--k 32] [--ranks 1]
                                                  [--hookpoints blocks.0.hook_resid_post,blocks.2.hook_resid_post]

stories260K on the first TinyStories validation documents within `tokens` tokens. For each hookpoint a
topk SAE (n latents, unit Gaussian decoder rows, encoder = decoder, b_dec = 0; a sparsify directory
written with numpy) is evaluated alone. `evaluate` times, summed over ranks:
  clean    the clean forward of every batch with its next-token loss (logits, log-softmax, gather);
  spliced  the SAE's forward from its hookpoint's block to the logits (encode, decode, the rest of the
           blocks) with its loss and its KL against the clean distribution (the clean logits recomputed);
  ablated  the same for the zeroed activation (once per hookpoint, shared by every SAE there).
Reported per hookpoint: spliced / clean (the issue's target: ≤ 1.5) and (clean + spliced + ablated) /
clean (what one SAE alone costs in all). Medians of `repeats` runs. Prints a final JSON line.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "scripts"))
import safetensors_np as st  # noqa: E402

DATA = os.path.join(HERE, "..", "..", "shared", "data")


def write_sae(path, n, d, k, rng):
    os.makedirs(path, exist_ok=True)
    w = rng.standard_normal((n, d)).astype(np.float32)
    w /= np.linalg.norm(w, axis=1, keepdims=True)
    st.save(os.path.join(path, "sae.safetensors"), {"encoder.weight": (w, "F32"), "encoder.bias": (np.zeros(n), "F32"),
                                                    "W_dec": (w, "F32"), "b_dec": (np.zeros(d), "F32")}, {"format": "pt"})
    with open(os.path.join(path, "cfg.json"), "w") as f:
        json.dump({"activation": "topk", "expansion_factor": n // d, "normalize_decoder": True, "num_latents": n, "k": k,
                   "multi_topk": False, "skip_connection": False, "transcode": False, "d_in": d}, f)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--tokens", type=int, default=65536)
    p.add_argument("--n", type=int, default=4096)
    p.add_argument("--k", type=int, default=32)
    p.add_argument("--ranks", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--hookpoints", default="blocks.0.hook_resid_post,blocks.2.hook_resid_post,blocks.4.hook_resid_post")
    p.add_argument("--binary", default=os.path.join(HERE, "..", "build", "universae"))
    a = p.parse_args()
    rng = np.random.default_rng(0)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for hook in a.hookpoints.split(","):
            layer = hook.split(".")[1]
            sae = os.path.join(tmp, f"layers.{layer}")
            write_sae(sae, a.n, 64, a.k, rng)
            ratios, totals = [], []
            for _ in range(a.repeats):
                out = os.path.join(tmp, "eval.json")
                cmd = ([] if a.ranks <= 1 else ["mpirun", "-n", str(a.ranks)]) + [
                    a.binary, "evaluate", "--sae", sae, "--hookpoint", hook, "--model", os.path.join(DATA, "stories260K.bin"),
                    "--tokenizer", os.path.join(DATA, "tok512.bin"), "--inputs", os.path.join(DATA, "tinystories_val_794k.txt"),
                    "--max-tokens", str(a.tokens), "--out", out]
                subprocess.run(cmd, check=True, capture_output=True)
                with open(out) as f:
                    r = json.load(f)[sae]
                s = r["seconds"]
                ratios.append(s["spliced"] / s["clean"])
                totals.append((s["clean"] + s["spliced"] + s["ablated"]) / s["clean"])
                n_tokens = r["n_tokens"]
            results[hook] = {"spliced_over_clean": statistics.median(ratios), "one_sae_total_over_clean": statistics.median(totals),
                             "ce_loss_score": r["ce_loss_score"], "n_tokens": n_tokens}
            print(f"{hook:28s} spliced/clean {results[hook]['spliced_over_clean']:.3f}   "
                  f"(clean + spliced + ablated)/clean {results[hook]['one_sae_total_over_clean']:.3f}   on {n_tokens} tokens")
    print(json.dumps({"bench": "sae_evaluation", "n": a.n, "k": a.k, "ranks": a.ranks, "results": results}))


if __name__ == "__main__":
    main()
