#!/usr/bin/env python3
"""Extraction from a Hugging Face-layout Llama: speed against plain PyTorch, rank scaling, memory per node.

Two measurements (bench/RESULTS.md):

  speed   A random-weight Llama with realistic proportions for this machine (d 512, 8 layers, 8
          heads, MLP 1376, the Llama 2 tokenizer's 32,000-token vocabulary; float32 safetensors) on
          the TinyStories validation text, tokenized by the real Llama 2 tokenizer.json. universae
          extract (loss on, one hookpoint) at 1 and 2 ranks, one thread per rank, against a plain
          PyTorch float32 forward of the same weights (Debian's python3-torch, Hugging Face's Llama
          forward written out: rotate_half RoPE, one document per call, logits, 1 thread) over the
          very sequences universae ran.
  memory  A random Llama of >= 1 GB (d 2048, 12 layers, MLP 5504, vocab 32,000; bfloat16 and float32
          safetensors), a short extraction at 1 and 2 ranks; every 0.1 s the proportional set size
          (PSS, /proc/PID/smaps_rollup: shared pages divided among the processes sharing them) and the
          resident set size of every rank is read. The sum of PSS over ranks is the node's memory.

    /usr/bin/python3 bench/bench_extract_hf.py [speed|memory|both] [--binary build/universae] [--documents 1000]
"""
import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

# One thread everywhere, set before numpy and torch load OpenBLAS: its own pool otherwise takes every
# core, whatever torch.set_num_threads says (the reference would run on 2 cores against 1).
os.environ.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
import numpy as np  # noqa: E402

SOURCE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(SOURCE, "..", "shared", "data")
TOKENIZER = os.path.join(DATA, "hf", "tokenizers", "llama2", "tokenizer.json")
sys.path.insert(0, os.path.join(SOURCE, "scripts"))
import hf_models as hf  # noqa: E402


def write_llama(out, hidden, layers, heads, mlp, vocab, dtype, seed=0):
    """A random Llama directory written tensor by tensor (never the whole model in memory)."""
    os.makedirs(out, exist_ok=True)
    cfg = dict(architectures=["LlamaForCausalLM"], model_type="llama", hidden_size=hidden, intermediate_size=mlp,
               num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads, vocab_size=vocab,
               max_position_embeddings=2048, hidden_act="silu", rms_norm_eps=1e-5, rope_theta=10000.0,
               tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
               torch_dtype="bfloat16" if dtype == "BF16" else "float32")
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    shapes = {"model.embed_tokens.weight": (vocab, hidden), "model.norm.weight": (hidden,), "lm_head.weight": (vocab, hidden)}
    for l in range(layers):
        p = f"model.layers.{l}."
        shapes.update({p + "input_layernorm.weight": (hidden,), p + "post_attention_layernorm.weight": (hidden,),
                       p + "self_attn.q_proj.weight": (hidden, hidden), p + "self_attn.k_proj.weight": (hidden, hidden),
                       p + "self_attn.v_proj.weight": (hidden, hidden), p + "self_attn.o_proj.weight": (hidden, hidden),
                       p + "mlp.gate_proj.weight": (mlp, hidden), p + "mlp.up_proj.weight": (mlp, hidden),
                       p + "mlp.down_proj.weight": (hidden, mlp)})
    size = 2 if dtype == "BF16" else 4
    header, offset = {}, 0
    for name, shape in shapes.items():
        n = math.prod(shape) * size
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    rng = np.random.default_rng(seed)
    with open(os.path.join(out, "model.safetensors"), "wb") as f:
        f.write(len(text).to_bytes(8, "little") + text)
        for name, shape in shapes.items():
            if len(shape) == 1:
                a = (1.0 + 0.1 * rng.standard_normal(shape, dtype=np.float32)).astype(np.float32)
            else:
                scale = 0.5 if "embed" in name else 1.0 / math.sqrt(shape[1])
                a = rng.standard_normal(shape, dtype=np.float32) * np.float32(scale)
            f.write(hf.f32_to_bf16_bits(a).tobytes() if dtype == "BF16" else a.tobytes())
    return offset


def extract(binary, model, ranks, out, settings, sample=None):
    sets = [f"extract.model={model}", f"extract.tokenizer={TOKENIZER}",
            'extract.inputs=["' + os.path.join(DATA, "tinystories_val_794k.txt") + '"]', f"run.output_dir={out}"] + settings
    cmd = (["mpirun", "--oversubscribe", "-n", str(ranks)] if ranks > 1 else []) + [binary, "extract", "--fresh",
                                                                                   os.path.join(SOURCE, "jobs", "quickstart.toml")]
    cmd += [a for s in sets for a in ("--set", s)]
    env = dict(os.environ, OMP_NUM_THREADS="1", OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=SOURCE)
    peak = {"pss": 0, "rss": 0}
    if sample:
        threading.Thread(target=sample_memory, args=(proc, peak), daemon=True).start()
    stdout, stderr = proc.communicate()
    if proc.returncode != 0:
        sys.exit(stderr)
    m = re.search(r"extract: (\d+) tokens in .*\(([\d.]+) tok/s; forward ([\d.]+) s", stderr)
    return dict(tokens=int(m[1]), rate=float(m[2]), forward=float(m[3]), peak=peak)


def universae_pids():
    pids = []
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() == "universae":
                    pids.append(pid)
        except OSError:
            pass
    return pids


def sample_memory(proc, peak):
    while proc.poll() is None:
        pss = rss = 0
        for pid in universae_pids():
            try:
                with open(f"/proc/{pid}/smaps_rollup") as f:
                    for line in f:
                        if line.startswith("Pss:"):
                            pss += int(line.split()[1]) * 1024
                        elif line.startswith("Rss:"):
                            rss += int(line.split()[1]) * 1024
            except OSError:
                pass
        peak["pss"], peak["rss"] = max(peak["pss"], pss), max(peak["rss"], rss)
        time.sleep(0.1)


def torch_rate(model, store):
    """Tokens/s of Hugging Face's Llama forward written out in plain PyTorch, one document per call."""
    import h5py
    import torch
    torch.set_num_threads(1)
    w = {k: torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in hf.read_hf_weights(model).items()}
    with open(os.path.join(model, "config.json")) as f:
        cfg = json.load(f)
    H, heads, L = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_hidden_layers"]
    hs = H // heads
    inv = 1.0 / (10000.0 ** (torch.arange(0, hs, 2, dtype=torch.float32) / hs))

    def rms(x, g):
        return g * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5))

    def rope(x, cos, sin):
        x1, x2 = x[..., :hs // 2], x[..., hs // 2:]
        return x * cos + torch.cat([-x2, x1], -1) * sin

    with h5py.File(store, "r") as f:
        tokens, so = f["tokens"][()], f["seq_offsets"][()]
    start = time.time()
    with torch.no_grad():
        for s in range(len(so) - 1):
            ids = torch.tensor(tokens[so[s]:so[s + 1]], dtype=torch.long)
            n = len(ids)
            ang = torch.arange(n, dtype=torch.float32)[:, None] * inv[None, :]
            emb = torch.cat([ang, ang], -1)
            cos, sin = emb.cos()[:, None, :], emb.sin()[:, None, :]
            mask = torch.ones(n, n, dtype=torch.bool).triu(1)
            x = w["model.embed_tokens.weight"][ids]
            for l in range(L):
                p = f"model.layers.{l}."
                a = rms(x, w[p + "input_layernorm.weight"])
                q = rope((a @ w[p + "self_attn.q_proj.weight"].T).view(n, heads, hs), cos, sin).transpose(0, 1)
                k = rope((a @ w[p + "self_attn.k_proj.weight"].T).view(n, heads, hs), cos, sin).transpose(0, 1)
                v = (a @ w[p + "self_attn.v_proj.weight"].T).view(n, heads, hs).transpose(0, 1)
                att = (q @ k.transpose(1, 2) / hs ** 0.5).masked_fill(mask, float("-inf")).softmax(-1)
                x = x + (att @ v).transpose(0, 1).reshape(n, H) @ w[p + "self_attn.o_proj.weight"].T
                h = rms(x, w[p + "post_attention_layernorm.weight"])
                g = torch.nn.functional.silu(h @ w[p + "mlp.gate_proj.weight"].T) * (h @ w[p + "mlp.up_proj.weight"].T)
                x = x + g @ w[p + "mlp.down_proj.weight"].T
            torch.log_softmax(rms(x, w["model.norm.weight"]) @ w["lm_head.weight"].T, -1)
    return len(tokens) / (time.time() - start)


def gemm_scaling():
    """This machine's own ceiling: GFLOP/s of one single-threaded sgemm process, and of two at once
    (on a VM whose two vCPUs are one core's hyperthreads, 2 ranks of GEMM-bound code could not scale)."""
    probe = ("import torch, time\ntorch.set_num_threads(1)\na, b = torch.randn(4096, 512), torch.randn(512, 1376)\n"
             "for _ in range(3): a @ b\nt, n = time.time(), 0\nwhile time.time() - t < 6:\n    a @ b; n += 1\n"
             "print(2 * 4096 * 512 * 1376 * n / (time.time() - t) / 1e9)")
    one = float(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout)
    pair = [subprocess.Popen([sys.executable, "-c", probe], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    two = sum(float(p.communicate()[0]) for p in pair)
    return one, two


def speed(args, tmp):
    one, two = gemm_scaling()
    print(f"sgemm [4096x512]·[512x1376], 1 thread: one process {one:.0f} GFLOP/s, two at once {two:.0f} GFLOP/s in all "
          f"(the machine's 2-process ceiling: {two / one:.2f}x)")
    model = os.path.join(tmp, "llama-d512")
    write_llama(model, 512, 8, 8, 1376, 32000, "F32")
    # 1,024-token batches: about 40 of them, so that 2 ranks get equal shares (rounds of whole batches).
    settings = ['extract.hookpoints=["blocks.4.hook_resid_post"]', f"extract.max_documents={args.documents}",
                "extract.batch_tokens=1024"]
    print(f"{'ranks':>5} {'tokens':>8} {'tok/s':>8} {'forward':>8}")
    rates = {}
    for ranks in (1, 2):
        r = extract(args.binary, model, ranks, os.path.join(tmp, f"out{ranks}"), settings)
        rates[ranks] = r["rate"]
        print(f"{ranks:>5} {r['tokens']:>8} {r['rate']:>8.0f} {r['forward']:>7.1f}s")
    bf16 = os.path.join(tmp, "llama-d512-bf16")
    write_llama(bf16, 512, 8, 8, 1376, 32000, "BF16")
    for compute in ("float32", "bfloat16"):
        r = extract(args.binary, bf16, 1, os.path.join(tmp, "outbf"), settings + [f"extract.compute_dtype={compute}"])
        print(f"    1 {r['tokens']:>8} {r['rate']:>8.0f} {r['forward']:>7.1f}s   (weights stored bfloat16, computed in {compute})")
    ref = torch_rate(model, os.path.join(tmp, "out1", "activations.h5"))
    print(f"PyTorch (same weights and sequences, one document per call, logits, 1 thread): {ref:.0f} tok/s")
    print(f"universae 1 rank / PyTorch = {rates[1] / ref:.2f}x; 2 ranks / 1 rank = {rates[2] / rates[1]:.2f}x "
          f"(the machine's sgemm ceiling {two / one:.2f}x)")


def memory(args, tmp):
    print(f"{'stored':>8} {'checkpoint':>11} {'ranks':>5} {'tokens':>7} {'node PSS':>9} {'Σ RSS':>8}")
    for dtype in ("BF16", "F32"):
        model = os.path.join(tmp, f"llama-1gb-{dtype}")
        size = write_llama(model, 2048, 12, 16, 5504, 32000, dtype)
        for ranks in (1, 2):
            r = extract(args.binary, model, ranks, os.path.join(tmp, "mem"),
                        ['extract.hookpoints=["blocks.11.hook_resid_post"]', "extract.max_tokens=1200", "extract.loss=true",
                         "extract.batch_tokens=512"], sample=True)
            gib = 1024 ** 3
            print(f"{dtype:>8} {size / gib:>9.2f} G {ranks:>5} {r['tokens']:>7} {r['peak']['pss'] / gib:>7.2f} G "
                  f"{r['peak']['rss'] / gib:>6.2f} G")
        subprocess.run(["rm", "-rf", model])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", nargs="?", default="both", choices=["speed", "memory", "both"])
    p.add_argument("--binary", default=os.path.join(SOURCE, "build", "universae"))
    p.add_argument("--documents", type=int, default=1000)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.what in ("speed", "both"):
            speed(args, tmp)
        if args.what in ("memory", "both"):
            memory(args, tmp)


if __name__ == "__main__":
    main()
