"""Writes the fuzz targets' seed corpora (fuzz/corpus/<target>/): small valid inputs of every parser, so
that fuzzing starts from files that get past the first checks. Run with Debian's python3 (numpy):

    /usr/bin/python3 fuzz/make_corpus.py

Deterministic; the outputs are committed. Crash inputs found later go to fuzz/regressions/<target>/.
"""
import json
import os
import struct
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "scripts"))
import safetensors_np as st  # noqa: E402


def put(target, name, data):
    path = os.path.join(HERE, "corpus", target, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(data if isinstance(data, bytes) else data.encode())


def llama2c(dim=8, hidden=16, layers=1, heads=2, kv_heads=2, vocab=16, seq_len=8, shared=True):
    """A legacy (v0) llama2.c checkpoint in export.py's order (random weights)."""
    rng = np.random.default_rng(0)
    kv_dim = dim * kv_heads // heads
    head = struct.pack("<7i", dim, hidden, layers, heads, kv_heads, vocab if shared else -vocab, seq_len)
    shapes = [(vocab, dim), (layers, dim), (layers, dim, dim), (layers, dim, kv_dim), (layers, dim, kv_dim),
              (layers, dim, dim), (layers, dim), (layers, hidden, dim), (layers, dim, hidden), (layers, hidden, dim),
              (dim,), (seq_len, dim // heads // 2), (seq_len, dim // heads // 2)]
    if not shared:
        shapes.append((vocab, dim))
    return head + b"".join(rng.standard_normal(s).astype("<f4").tobytes() for s in shapes)


def tokenizer(pieces):
    """llama2.c tokenizer.bin: max_token_length, then (score f32, length i32, bytes) per token."""
    out = struct.pack("<i", max(len(p) for p in pieces))
    for i, p in enumerate(pieces):
        out += struct.pack("<fi", -float(i), len(p)) + p
    return out


def main():
    for name in ("quickstart_ci.toml", "synthetic_ci.toml", "stories260k_seeds_ci.toml", "seeds_study_ci.toml"):
        with open(os.path.join(HERE, "..", "jobs", name)) as fh:
            put("config", name, fh.read())
    put("config", "grid.toml", '[sae]\nk = 4\n[grid]\n"sae.n_latents" = [64, 128]\n"train.lr" = [1e-3]\n')

    put("llama2c", "tiny_shared.bin", llama2c())
    put("llama2c", "tiny_gqa_unshared.bin", llama2c(heads=4, kv_heads=2, shared=False))

    pieces = [b"<unk>", b"\n<s>\n", b"\n</s>\n"] + [b"<0x%02X>" % b for b in range(256)]
    pieces += [b" ", b"O", b"n", b"e", b"On", b"ce", b" a", b"\xc3\xa9", b"ti", b"me", b"time"]
    put("tokenizer", "tiny", bytes([len(pieces) - 256]) + tokenizer(pieces))  # first byte: vocab size - 256

    put("documents", "text", b"\x00Once upon a time.\n\nThe end.\n\n\n  Another story.  \n")
    put("documents", "endoftext", b"\x01One.<|endoftext|>Two.\n<|endoftext|><|endoftext|>Three")
    put("documents", "jsonl", b'\x02{"text": "Once upon a time"}\n\n{"text": "caf\\u00e9", "id": 3}\n')

    rng = np.random.default_rng(0)
    for i in range(4):
        put("hdf5", f"random{i}", rng.integers(0, 256, 256, dtype=np.uint8).tobytes())

    n, d = 4, 3
    tensors = {"encoder.weight": (rng.standard_normal((n, d)), "BF16"), "encoder.bias": (rng.standard_normal(n), "F32"),
               "W_dec": (rng.standard_normal((n, d)), "F16"), "b_dec": (rng.standard_normal(d), "F32")}
    path = os.path.join(HERE, "corpus", "safetensors", "sparsify.safetensors")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    st.save(path, tensors, {"format": "pt"})
    # foreign_sae: byte 0 = library (0 sparsify, 1 SAELens), bytes 1-2 = len(cfg.json), cfg.json, safetensors.
    def foreign(name, library, cfg, weights_path):
        with open(weights_path, "rb") as fh:
            weights = fh.read()
        text = json.dumps(cfg).encode()
        put("foreign_sae", name, bytes([library]) + struct.pack("<H", len(text)) + text + weights)

    foreign("sparsify", 0, {"activation": "topk", "expansion_factor": 4, "normalize_decoder": True, "num_latents": n,
                            "k": 2, "multi_topk": False, "skip_connection": False, "transcode": False, "d_in": d}, path)
    saelens = os.path.join(HERE, "corpus", "safetensors", "saelens_jumprelu.safetensors")
    W_dec = rng.standard_normal((n, d))
    st.save(saelens, {"W_enc": (W_dec.T.copy(), "F32"), "W_dec": (W_dec, "F32"), "b_dec": (rng.standard_normal(d), "F32"),
                      "b_enc": (rng.standard_normal(n), "F32"), "threshold": (rng.random(n), "F32")})
    foreign("saelens_jumprelu", 1, {"d_in": d, "d_sae": n, "dtype": "float32", "device": "cpu", "apply_b_dec_to_input": False,
                                    "normalize_activations": "none", "reshape_activations": "none",
                                    "architecture": "jumprelu", "metadata": {"model_name": "stories260K",
                                                                             "hook_name": "blocks.0.hook_resid_post"}},
            saelens)
    foreign("saelens_flat_topk", 1, {"architecture": "standard", "d_in": d, "d_sae": n, "dtype": "float32",
                                     "hook_point": "blocks.0.hook_resid_post", "activation_fn_str": "topk",
                                     "activation_fn_kwargs": {"k": 2}, "apply_b_dec_to_input": True,
                                     "normalize_activations": False, "finetuning_scaling_factor": False}, saelens)
    put("safetensors", "saelens_empty_metadata.safetensors",
        struct.pack("<Q", 64) + json.dumps({"W_enc": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}})
        .encode().ljust(64) + bytes(16))


if __name__ == "__main__":
    main()
