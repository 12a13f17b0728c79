#!/usr/bin/env python3
"""Hugging Face / GGUF fixture writers and independent float64 references (tests only).

Needs only numpy and torch (no transformers, safetensors or gguf packages: both file formats are
written and parsed here by hand). Importable by the golden tests and runnable as a CLI:

    python3 scripts/hf_models.py hf-from-llama2c SRC.bin OUT_DIR [--dtype F32|F16|BF16] [--shards N]
    python3 scripts/hf_models.py random {llama,mistral,qwen2,gpt_neox} OUT_DIR [--seed S] [--dtype ..]
                                      [--shards N] [--set key=JSON ...]   (config overrides, e.g.
                                      --set num_key_value_heads=2 --set 'rope_scaling={"rope_type":"llama3",...}')
    python3 scripts/hf_models.py gguf-from-llama2c SRC.bin OUT.gguf [--qtype Q8_0|F32] [--version 3]
                                      [--tokenizer tok512.bin] [--no-output]
    python3 scripts/hf_models.py reference MODEL --tokens 1,2,3 [--tokens ...] --out ref.npz [--float32]
                                      (MODEL: a Hugging Face directory, a .gguf file or a llama2.c .bin)
    python3 scripts/hf_models.py greedy MODEL --steps 200 --tokenizer tok512.bin
    python3 scripts/hf_models.py selftest      (the validations below; a few seconds)

Hook dict returned by every reference (sequences run alone from position 0, causal, results
concatenated over sequences in order): for every layer L
  blocks.L.hook_resid_pre   residual entering block L (L=0: the token embeddings)
  blocks.L.hook_resid_mid   resid_pre + attention output (o_proj / dense incl. its bias)
  blocks.L.mlp.hook_post    the MLP hidden entering the down projection (act(gate x) * up x; neox: act(h_to_4h x))
  blocks.L.hook_mlp_out     MLP output incl. bias
  blocks.L.hook_resid_post  block output (sequential: resid_mid + mlp_out; neox parallel residual:
                            resid_pre + attn_out + mlp(ln2(resid_pre)))
  logits                    [sum T, vocab]

Provenance (behaviour ported, code written here):
  * huggingface/transformers src/transformers/models/llama/modeling_llama.py (LlamaRMSNorm, rotate_half /
    apply_rotary_pos_emb, repeat_kv, LlamaAttention with head_dim and attention_bias, LlamaMLP with
    mlp_bias), read at commit 002272831fba584eb30dca9729c1be456836960a; mistral / qwen2 modeling files
    (same decoder; qwen2 q/k/v biases, o_proj without; sliding windows as masking_utils'
    sliding_window_overlay: kv > q - window; Qwen2Config: window only when use_sliding_window, on
    layers >= max_window_layers).
  * src/transformers/modeling_rope_utils.py @ 0044e3b3facff1a1ad60b235c69d5b45beae75a4:
    _compute_default_rope_parameters, _compute_linear_scaling_rope_parameters (inv_freq / factor),
    _compute_llama3_parameters (low/high_freq_factor, original_max_position_embeddings). As there,
    inv_freq is computed in float32 (then widened); everything after it runs in the reference dtype.
  * src/transformers/models/gpt_neox/modeling_gpt_neox.py @ 006bd23dd0ce18d54e1cf260b09b15fa943a731d:
    fused query_key_value viewed as [heads, 3*head_size] (per head q, k, v), rotary on the first
    int(head_size*rotary_pct) dims with rotate_half, norm_factor head_size**-0.5, LayerNorm with bias,
    use_parallel_residual, ACT2FN names ('gelu' = erf form).
  * src/transformers/models/llama/convert_llama_weights_to_hf.py: permute(w, n_heads, dim1, dim2) =
    w.view(n_heads, dim1//n_heads//2, 2, dim2).transpose(1, 2).reshape(dim1, dim2), applied to wq
    (n_heads) and wk (num_key_value_heads, dim1 = kv dim); llama2.c's wq/wk are in Meta's
    adjacent-pair rotary order, the layout that permutation expects.
  * safetensors: 8-byte little-endian header length, JSON {name: {dtype, shape, data_offsets}} with
    "__metadata__": {"format": "pt"}, padded with spaces to 8 bytes, data ordered by descending element
    size then name (safetensors' serialize(); rewriting the real tiny-random-llama-2 file reproduces
    it byte for byte); sharded: model-0000i-of-0000N.safetensors +
    model.safetensors.index.json {"metadata": {"total_size"}, "weight_map"}.
  * GGUF: ggerganov/ggml docs/gguf.md and llama.cpp's gguf.c (v1: uint32 counts, string lengths and
    dims; v2/v3: uint64), metadata value types 0..12, ggml types F32=0 F16=1 Q8_0=8 BF16=30, tensor data
    aligned to general.alignment (32). Q8_0 as gguf-py/gguf/quants.py: blocks of 32, d = max|x|/127 in
    float32 stored as f16, q = round-half-away-from-zero(x / d) as int8; dequantized x = d * q.
    BF16 rounding as gguf-py's quantize_bf16 (round to nearest even, NaN kept quiet).
  * llama2.c (karpathy/llama2.c run.c): legacy checkpoint layout, adjacent-pair RoPE, tokenizer format.

Validation (`selftest`, ~5 s; numbers as measured when written):
  * tiny-random-llama-2 (real HF checkpoint, BF16): logits at the published ids for [1], [1,42],
    [1,42,99] match transformers 4.53.2's within 4.9e-8 (float64; float32 run 6.0e-8; tolerance 1e-5),
    argmax = greedy_token and the 4-token greedy continuations equal. Its model.safetensors read and
    rewritten by write_safetensors is byte-identical; BF16 rounding equals torch's on 85k values incl.
    every tie pattern.
  * stories260K.bin -> write_hf_from_llama2c (F32) -> reference_forward: greedy 200 steps from BOS decodes
    with tok512.bin to ../shared/data/expected_stdout.txt byte for byte (proves the q/k permutation).
    HF layout (rotate_half, permuted rows) vs llama2.c layout (adjacent pairs) hooks: 2.5e-11 (1.7e-8
    with HF's float32 inv_freq); BF16 2-shard copy vs bf16-rounded weights: 2.5e-11; llama2.c layout vs
    scripts/llama2c_ref.py (per-position loop): 2.5e-11 (eps 1e-5f vs 1e-5).
  * GGUF: the real stories260K_f32.gguf (v1) parsed and rewritten by write_gguf is byte-identical; its
    forward, and that of this writer's F32 v1/v3 files (tensors bit-identical to the real file's,
    vocabulary equal), equal the llama2.c-file weights' forward exactly (0.0; that forward itself is
    checked against scripts/llama2c_ref.py above). Q8_0: every dequantized weight
    within half a step (+ f16 rounding of d) of the original; logits move by <= 0.21 (greedy text
    diverges from the F32 text after ~300 characters).
  * llama3 inv_freq vs Meta's apply_scaling: 6.4e-8 relative (float32 as HF); mistral sliding_window=3:
    layer 0 at position t equals the window run alone (RoPE is relative) to 2e-15; sequences run alone
    equal their slice of a multi-sequence call exactly; random models float32 vs float64 <= 6.5e-6.
"""
import argparse
import json
import math
import os
import struct
import sys

import numpy as np
import torch

HOOKS = ("hook_resid_pre", "hook_resid_mid", "mlp.hook_post", "hook_mlp_out", "hook_resid_post")

# ----------------------------------------------------------------------------------------------
# float formats
# ----------------------------------------------------------------------------------------------


def f32_to_bf16_bits(a):
    """float32 -> bfloat16 bit patterns (uint16), round to nearest even, NaN stays a quiet NaN."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    nan = (u & 0x7FFFFFFF) > 0x7F800000
    r = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    r = np.where(nan, ((u & 0xFFFF0000) >> 16) | 0x40, r)
    return r.astype(np.uint16)


def bf16_bits_to_f32(bits):
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def round_bf16(a):
    """float32 values rounded to bfloat16 and widened back (what a BF16 file stores)."""
    return bf16_bits_to_f32(f32_to_bf16_bits(a)).reshape(np.shape(a))


# ----------------------------------------------------------------------------------------------
# safetensors
# ----------------------------------------------------------------------------------------------

_ST_NUMPY = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
             "I8": "i1", "U8": "u1", "BOOL": "?"}


_ST_SIZE = {"F64": 8, "I64": 8, "F32": 4, "I32": 4, "F16": 2, "BF16": 2, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


def _encode(a, dtype):
    """(safetensors dtype, raw bytes) for one array. Floating arrays take `dtype` (a value given as
    (array, "F32") keeps that dtype instead); other arrays keep their own."""
    if isinstance(a, tuple):
        a, dtype = a
    a = np.asarray(a)
    if a.dtype.kind == "f":
        dtype = dtype.upper()
        if dtype == "BF16":
            return "BF16", f32_to_bf16_bits(a.astype(np.float32)).tobytes()
        if dtype not in ("F32", "F16", "F64"):
            raise ValueError(f"unsupported safetensors dtype {dtype}")
        return dtype, np.ascontiguousarray(a.astype(_ST_NUMPY[dtype])).tobytes()
    kinds = {np.dtype(np.bool_): "BOOL", np.dtype(np.int64): "I64", np.dtype(np.int32): "I32",
             np.dtype(np.int16): "I16", np.dtype(np.int8): "I8", np.dtype(np.uint8): "U8"}
    if a.dtype not in kinds:
        raise ValueError(f"unsupported array dtype {a.dtype}")
    st = kinds[a.dtype]
    return st, np.ascontiguousarray(a.astype(_ST_NUMPY[st])).tobytes()


def write_safetensors(path, tensors, dtype="F32", metadata=None):
    """Write {name: ndarray} as one safetensors file; floating arrays stored as dtype (F32/F16/BF16/F64).

    Tensors are laid out by descending element size, then name (safetensors' serialize() order); the
    JSON header is padded with spaces to a multiple of 8 bytes. Returns the number of tensor data bytes.
    """
    header = {"__metadata__": dict(metadata or {"format": "pt"})}
    blobs, off = [], 0
    encoded = {name: _encode(tensors[name], dtype) for name in tensors}
    for name in sorted(tensors, key=lambda n: (-_ST_SIZE[encoded[n][0]], n)):
        st, raw = encoded[name]
        shape = np.shape(tensors[name][0] if isinstance(tensors[name], tuple) else tensors[name])
        header[name] = {"dtype": st, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    return off


def read_safetensors_header(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n)), 8 + n


def read_safetensors(path):
    """{name: ndarray}: F32/F16/F64/ints/BOOL in their own numpy dtype, BF16 widened exactly to float32."""
    header, start = read_safetensors_header(path)
    with open(path, "rb") as f:
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        raw = data[start + a:start + b]
        shape = tuple(info["shape"])
        if info["dtype"] == "BF16":
            out[name] = bf16_bits_to_f32(np.frombuffer(raw, dtype="<u2")).reshape(shape)
        else:
            out[name] = np.frombuffer(raw, dtype=_ST_NUMPY[info["dtype"]]).reshape(shape).copy()
    return out


def _torch_dtype_name(dtype):
    return {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "F64": "float64"}[dtype.upper()]


def write_hf_weights(out_dir, tensors, dtype="F32", shards=1):
    """model.safetensors, or model-0000i-of-0000N.safetensors + model.safetensors.index.json."""
    os.makedirs(out_dir, exist_ok=True)
    for old in os.listdir(out_dir):
        if old.endswith(".safetensors") or old == "model.safetensors.index.json":
            os.remove(os.path.join(out_dir, old))
    if shards <= 1:
        write_safetensors(os.path.join(out_dir, "model.safetensors"), tensors, dtype)
        return
    names = sorted(tensors)
    if shards > len(names):
        raise ValueError(f"{shards} shards for {len(names)} tensors")
    sizes = [len(_encode(tensors[n], dtype)[1]) for n in names]
    total = sum(sizes)
    # contiguous groups in name order, cut near k/shards of the total bytes; every shard non-empty
    groups, prev, acc = [[] for _ in range(shards)], 0, 0
    for i, (n, s) in enumerate(zip(names, sizes)):
        k = min(shards - 1, int(acc * shards // max(total, 1)))
        k = max(k, shards - (len(names) - i), prev)
        k = min(k, prev + 1)
        groups[k].append(n)
        prev, acc = k, acc + s
    assert all(groups), "empty shard"
    weight_map = {}
    for k, g in enumerate(groups):
        fname = f"model-{k + 1:05d}-of-{shards:05d}.safetensors"
        write_safetensors(os.path.join(out_dir, fname), {n: tensors[n] for n in g}, dtype)
        for n in g:
            weight_map[n] = fname
    with open(os.path.join(out_dir, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": int(total)}, "weight_map": dict(sorted(weight_map.items()))},
                  f, indent=2)
        f.write("\n")


def read_hf_weights(model_dir):
    """All tensors of a Hugging Face directory (single file or sharded through the index)."""
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    out = {}
    for fn in files:
        out.update(read_safetensors(os.path.join(model_dir, fn)))
    return out


def _write_config(out_dir, config):
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")


# ----------------------------------------------------------------------------------------------
# llama2.c checkpoint and tokenizer
# ----------------------------------------------------------------------------------------------


def read_llama2c(path):
    """llama2.c legacy checkpoint -> (config dict, {llama2.c name: float32 ndarray})."""
    with open(path, "rb") as f:
        data = f.read()
    dim, hidden, layers, heads, kv_heads, vocab, seq_len = struct.unpack_from("<7i", data, 0)
    shared = vocab > 0
    vocab = abs(vocab)
    hs = dim // heads
    kv = kv_heads * hs
    flat = np.frombuffer(data, dtype="<f4", offset=28)
    at = 0

    def take(*shape):
        nonlocal at
        n = int(np.prod(shape))
        a = flat[at:at + n].reshape(shape).copy()
        at += n
        return a

    w = {}
    w["tok_embeddings"] = take(vocab, dim)
    w["rms_att"] = take(layers, dim)
    w["wq"] = take(layers, dim, dim)
    w["wk"] = take(layers, kv, dim)
    w["wv"] = take(layers, kv, dim)
    w["wo"] = take(layers, dim, dim)
    w["rms_ffn"] = take(layers, dim)
    w["w1"] = take(layers, hidden, dim)
    w["w2"] = take(layers, dim, hidden)
    w["w3"] = take(layers, hidden, dim)
    w["rms_final"] = take(dim)
    at += seq_len * hs  # freq_cis_real, freq_cis_imag
    w["wcls"] = w["tok_embeddings"] if shared else take(vocab, dim)
    cfg = dict(dim=dim, hidden_dim=hidden, n_layers=layers, n_heads=heads, n_kv_heads=kv_heads,
               vocab_size=vocab, seq_len=seq_len, shared_classifier=shared)
    return cfg, w


def read_llama2c_vocab(path, vocab_size):
    """llama2.c tokenizer.bin -> (pieces as bytes, scores)."""
    with open(path, "rb") as f:
        data = f.read()
    off = 4
    pieces, scores = [], []
    for _ in range(vocab_size):
        score, n = struct.unpack_from("<fi", data, off)
        off += 8
        pieces.append(data[off:off + n])
        scores.append(score)
        off += n
    return pieces, scores


def decode_llama2c(tokens, pieces):
    """Bytes run.c prints for tokens[1:] (each piece after its predecessor, as generate() does)."""
    out = b""
    for prev, tok in zip(tokens[:-1], tokens[1:]):
        p = pieces[tok]
        if prev == 1 and p.startswith(b" "):
            p = p[1:]
        if len(p) == 6 and p.startswith(b"<0x") and p.endswith(b">"):
            p = bytes([int(p[3:5], 16)])
        out += p
    return out


def llama2c_to_hf_tensors(cfg, w):
    """Hugging Face LlamaForCausalLM state dict (float32 numpy) from llama2.c arrays."""
    dim, heads, kvh = cfg["dim"], cfg["n_heads"], cfg["n_kv_heads"]
    kv_dim = dim // heads * kvh

    def permute(m, n_heads, dim1, dim2):  # convert_llama_weights_to_hf.py
        return m.reshape(n_heads, dim1 // n_heads // 2, 2, dim2).transpose(0, 2, 1, 3).reshape(dim1, dim2)

    t = {"model.embed_tokens.weight": w["tok_embeddings"], "model.norm.weight": w["rms_final"]}
    for l in range(cfg["n_layers"]):
        p = f"model.layers.{l}."
        t[p + "input_layernorm.weight"] = w["rms_att"][l]
        t[p + "self_attn.q_proj.weight"] = permute(w["wq"][l], heads, dim, dim)
        t[p + "self_attn.k_proj.weight"] = permute(w["wk"][l], kvh, kv_dim, dim)
        t[p + "self_attn.v_proj.weight"] = w["wv"][l]
        t[p + "self_attn.o_proj.weight"] = w["wo"][l]
        t[p + "post_attention_layernorm.weight"] = w["rms_ffn"][l]
        t[p + "mlp.gate_proj.weight"] = w["w1"][l]
        t[p + "mlp.down_proj.weight"] = w["w2"][l]
        t[p + "mlp.up_proj.weight"] = w["w3"][l]
    if not cfg["shared_classifier"]:
        t["lm_head.weight"] = w["wcls"]
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in t.items()}


def write_hf_from_llama2c(src_bin, out_dir, dtype="F32", shards=1):
    """A Hugging Face LlamaForCausalLM directory (config.json + safetensors) from a llama2.c checkpoint."""
    cfg, w = read_llama2c(src_bin)
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": cfg["dim"],
        "intermediate_size": cfg["hidden_dim"],
        "num_hidden_layers": cfg["n_layers"],
        "num_attention_heads": cfg["n_heads"],
        "num_key_value_heads": cfg["n_kv_heads"],
        "vocab_size": cfg["vocab_size"],
        "max_position_embeddings": cfg["seq_len"],
        "hidden_act": "silu",
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "rope_scaling": None,
        "attention_bias": False,
        "attention_dropout": 0.0,
        "mlp_bias": False,
        "pretraining_tp": 1,
        "initializer_range": 0.02,
        "tie_word_embeddings": bool(cfg["shared_classifier"]),
        "bos_token_id": 1,
        "eos_token_id": 2,
        "use_cache": True,
        "torch_dtype": _torch_dtype_name(dtype),
    }
    _write_config(out_dir, config)
    write_hf_weights(out_dir, llama2c_to_hf_tensors(cfg, w), dtype, shards)
    return config


# ----------------------------------------------------------------------------------------------
# random Hugging Face checkpoints
# ----------------------------------------------------------------------------------------------

_DEFAULTS = {
    "llama": dict(architectures=["LlamaForCausalLM"], hidden_size=64, intermediate_size=172,
                  num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4, vocab_size=300,
                  max_position_embeddings=256, hidden_act="silu", rms_norm_eps=1e-5, rope_theta=10000.0,
                  rope_scaling=None, attention_bias=False, mlp_bias=False, tie_word_embeddings=False,
                  bos_token_id=1, eos_token_id=2, pretraining_tp=1, initializer_range=0.02,
                  attention_dropout=0.0, use_cache=True),
    "mistral": dict(architectures=["MistralForCausalLM"], hidden_size=64, intermediate_size=160,
                    num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, vocab_size=300,
                    max_position_embeddings=256, hidden_act="silu", rms_norm_eps=1e-5, rope_theta=10000.0,
                    sliding_window=4096, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
                    initializer_range=0.02, attention_dropout=0.0, use_cache=True),
    "qwen2": dict(architectures=["Qwen2ForCausalLM"], hidden_size=64, intermediate_size=176,
                  num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2, vocab_size=300,
                  max_position_embeddings=256, hidden_act="silu", rms_norm_eps=1e-6, rope_theta=1000000.0,
                  rope_scaling=None, use_sliding_window=False, sliding_window=4096, max_window_layers=3,
                  tie_word_embeddings=True, bos_token_id=0, eos_token_id=1, initializer_range=0.02,
                  attention_dropout=0.0, use_cache=True),
    "gpt_neox": dict(architectures=["GPTNeoXForCausalLM"], hidden_size=64, intermediate_size=256,
                     num_hidden_layers=2, num_attention_heads=4, vocab_size=300, max_position_embeddings=256,
                     hidden_act="gelu", rotary_pct=0.25, rotary_emb_base=10000, layer_norm_eps=1e-5,
                     use_parallel_residual=True, attention_bias=True, tie_word_embeddings=False,
                     bos_token_id=0, eos_token_id=0, initializer_range=0.02, attention_dropout=0.0,
                     hidden_dropout=0.0, classifier_dropout=0.1, rope_scaling=None, use_cache=True),
}

LLAMA3_ROPE_EXAMPLE = {"rope_type": "llama3", "factor": 4.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                       "original_max_position_embeddings": 64}
"""With head_dim 16 and rope_theta 10000 this puts frequency 0 in the kept band, 1-2 in the smoothed band
and 3-7 in the divided band, so every branch of _compute_llama3_parameters matters at short lengths."""


def write_random_hf(out_dir, model_type, seed=0, dtype="F32", shards=1, legacy_buffers=False, **config):
    """Random-weight checkpoint of model_type llama / mistral / qwen2 / gpt_neox; config overrides kwargs.

    Scales: embeddings N(0, 0.5^2) (neox: 1.0), projections N(0, 1/fan_in), norm weights 1 + N(0, 0.1^2),
    biases N(0, 0.05^2): after a norm, activations are O(1) and attention logits are O(1) (not
    degenerate). legacy_buffers (gpt_neox): also write the buffers old Pythia checkpoints carry
    (attention.bias BOOL [1,1,P,P], attention.masked_bias F32 scalar, attention.rotary_emb.inv_freq)
    which a loader must ignore. Returns the config dict.
    """
    if model_type not in _DEFAULTS:
        raise ValueError(f"model_type {model_type!r}: one of {sorted(_DEFAULTS)}")
    cfg = dict(_DEFAULTS[model_type])
    cfg.update(config)
    cfg["model_type"] = model_type
    cfg["torch_dtype"] = _torch_dtype_name(dtype)
    if isinstance(cfg.get("rope_scaling"), dict) and "rope_type" not in cfg["rope_scaling"] \
            and "type" not in cfg["rope_scaling"]:
        raise ValueError("rope_scaling needs rope_type (or legacy type)")
    rng = np.random.default_rng(seed)
    H, V = cfg["hidden_size"], cfg["vocab_size"]

    def lin(out_f, in_f):
        return rng.normal(0.0, 1.0 / math.sqrt(in_f), (out_f, in_f))

    def norm_w(n):
        return 1.0 + 0.1 * rng.normal(size=n)

    def bias(n):
        return 0.05 * rng.normal(size=n)

    t = {}
    if model_type == "gpt_neox":
        heads = cfg["num_attention_heads"]
        hs = H // heads
        I = cfg["intermediate_size"]
        t["gpt_neox.embed_in.weight"] = rng.normal(0.0, 1.0, (V, H))
        for l in range(cfg["num_hidden_layers"]):
            p = f"gpt_neox.layers.{l}."
            t[p + "input_layernorm.weight"] = norm_w(H)
            t[p + "input_layernorm.bias"] = bias(H)
            t[p + "post_attention_layernorm.weight"] = norm_w(H)
            t[p + "post_attention_layernorm.bias"] = bias(H)
            t[p + "attention.query_key_value.weight"] = lin(3 * H, H)   # rows: per head [q(hs), k(hs), v(hs)]
            t[p + "attention.dense.weight"] = lin(H, H)
            if cfg.get("attention_bias", True):
                t[p + "attention.query_key_value.bias"] = bias(3 * H)
                t[p + "attention.dense.bias"] = bias(H)
            t[p + "mlp.dense_h_to_4h.weight"] = lin(I, H)
            t[p + "mlp.dense_h_to_4h.bias"] = bias(I)
            t[p + "mlp.dense_4h_to_h.weight"] = lin(H, I)
            t[p + "mlp.dense_4h_to_h.bias"] = bias(H)
            if legacy_buffers:
                P = cfg["max_position_embeddings"]
                rot = int(hs * cfg["rotary_pct"])
                t[p + "attention.bias"] = np.tril(np.ones((P, P), dtype=np.bool_)).reshape(1, 1, P, P)
                t[p + "attention.masked_bias"] = (np.array(-1e9, dtype=np.float32), "F32")  # buffers stay F32
                t[p + "attention.rotary_emb.inv_freq"] = (
                    (1.0 / cfg["rotary_emb_base"] ** (np.arange(0, rot, 2, dtype=np.float32) / rot)).astype(np.float32),
                    "F32")
        t["gpt_neox.final_layer_norm.weight"] = norm_w(H)
        t["gpt_neox.final_layer_norm.bias"] = bias(H)
        if cfg.get("tie_word_embeddings", False):
            pass
        else:
            t["embed_out.weight"] = lin(V, H)
    else:
        heads, kvh = cfg["num_attention_heads"], cfg.get("num_key_value_heads") or cfg["num_attention_heads"]
        hd = cfg.get("head_dim") or H // heads
        I = cfg["intermediate_size"]
        qkv_bias = model_type == "qwen2" or cfg.get("attention_bias", False)
        o_bias = model_type != "qwen2" and cfg.get("attention_bias", False)
        mlp_bias = model_type == "llama" and cfg.get("mlp_bias", False)
        t["model.embed_tokens.weight"] = rng.normal(0.0, 0.5, (V, H))
        for l in range(cfg["num_hidden_layers"]):
            p = f"model.layers.{l}."
            t[p + "input_layernorm.weight"] = norm_w(H)
            t[p + "post_attention_layernorm.weight"] = norm_w(H)
            t[p + "self_attn.q_proj.weight"] = lin(heads * hd, H)
            t[p + "self_attn.k_proj.weight"] = lin(kvh * hd, H)
            t[p + "self_attn.v_proj.weight"] = lin(kvh * hd, H)
            t[p + "self_attn.o_proj.weight"] = lin(H, heads * hd)
            if qkv_bias:
                t[p + "self_attn.q_proj.bias"] = bias(heads * hd)
                t[p + "self_attn.k_proj.bias"] = bias(kvh * hd)
                t[p + "self_attn.v_proj.bias"] = bias(kvh * hd)
            if o_bias:
                t[p + "self_attn.o_proj.bias"] = bias(H)
            t[p + "mlp.gate_proj.weight"] = lin(I, H)
            t[p + "mlp.up_proj.weight"] = lin(I, H)
            t[p + "mlp.down_proj.weight"] = lin(H, I)
            if mlp_bias:
                t[p + "mlp.gate_proj.bias"] = bias(I)
                t[p + "mlp.up_proj.bias"] = bias(I)
                t[p + "mlp.down_proj.bias"] = bias(H)
        t["model.norm.weight"] = norm_w(H)
        if not cfg.get("tie_word_embeddings", False):
            t["lm_head.weight"] = lin(V, H)
    t = {k: (v.astype(np.float32) if not isinstance(v, tuple) and v.dtype.kind == "f" else v) for k, v in t.items()}
    _write_config(out_dir, cfg)
    write_hf_weights(out_dir, t, dtype, shards)
    return cfg


# ----------------------------------------------------------------------------------------------
# the Hugging Face reference forward
# ----------------------------------------------------------------------------------------------


def _act(name):
    name = name.lower()
    if name in ("silu", "swish"):
        return lambda x: x * torch.sigmoid(x)
    if name == "gelu":  # GELUActivation: erf form
        return lambda x: 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))
    if name in ("gelu_new", "gelu_pytorch_tanh", "gelu_fast"):
        return lambda x: 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))
    if name == "relu":
        return torch.relu
    raise ValueError(f"hidden_act {name!r} not supported by the reference")


def _rope_settings(cfg, model_type, head_dim):
    """(rotary dim, base, rope_scaling dict or None) from a config, old and new spellings."""
    params = cfg.get("rope_parameters") or {}
    scaling = cfg.get("rope_scaling") or None
    if params and not scaling and params.get("rope_type", "default") != "default":
        scaling = params
    if model_type == "gpt_neox":
        base = params.get("rope_theta", cfg.get("rotary_emb_base", cfg.get("rope_theta", 10000)))
        pct = cfg.get("rotary_pct", cfg.get("partial_rotary_factor", 0.25))
    else:
        base = params.get("rope_theta", cfg.get("rope_theta", 10000.0))
        pct = cfg.get("partial_rotary_factor", params.get("partial_rotary_factor", 1.0))
    return int(head_dim * pct), float(base), scaling


def rope_inv_freq(dim, base, scaling=None, float32=True):
    """inv_freq as modeling_rope_utils computes it (in float32 unless float32=False), as float64 numpy."""
    ar = torch.arange(0, dim, 2, dtype=torch.int64)
    inv = 1.0 / (base ** ((ar.float() if float32 else ar.double()) / dim))
    if scaling:
        kind = scaling.get("rope_type", scaling.get("type", "default"))
        if kind == "default":
            pass
        elif kind == "linear":
            inv = inv / scaling["factor"]
        elif kind == "llama3":
            factor = scaling["factor"]
            low_f, high_f = scaling["low_freq_factor"], scaling["high_freq_factor"]
            old = scaling["original_max_position_embeddings"]
            low_wl, high_wl = old / low_f, old / high_f
            wavelen = 2 * math.pi / inv
            inv_l = torch.where(wavelen > low_wl, inv / factor, inv)
            smooth = (old / wavelen - low_f) / (high_f - low_f)
            smoothed = (1 - smooth) * inv_l / factor + smooth * inv_l
            medium = ~(wavelen < high_wl) * ~(wavelen > low_wl)
            inv = torch.where(medium, smoothed, inv_l)
        else:
            raise ValueError(f"rope type {kind!r} not supported by the reference")
    return inv.double().numpy()


def _rotate(x, cos, sin, rot):
    """rotate_half RoPE on the first rot dims of x [heads, T, d] (partial rotary keeps the rest)."""
    xr, xp = x[..., :rot], x[..., rot:]
    x1, x2 = xr[..., :rot // 2], xr[..., rot // 2:]
    rotated = torch.cat((-x2, x1), dim=-1)
    return torch.cat((xr * cos + rotated * sin, xp), dim=-1)


def _attend(q, k, v, scale, window=None):
    """q [H, T, d], k/v [H, T, d] (already repeated for GQA) -> [T, H*d]; causal (+ sliding window)."""
    T = q.shape[1]
    s = torch.matmul(q, k.transpose(1, 2)) * scale
    i = torch.arange(T)[:, None]
    j = torch.arange(T)[None, :]
    allowed = j <= i
    if window is not None:
        allowed = allowed & (j > i - window)
    s = s.masked_fill(~allowed, float("-inf"))
    p = torch.softmax(s, dim=-1)
    return torch.matmul(p, v).transpose(0, 1).reshape(T, -1)


def _linear(x, w, b=None):
    y = x @ w.T
    return y + b if b is not None else y


def _rms(x, w, eps):
    return w * (x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps))


def _ln(x, w, b, eps):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def load_hf(model_dir, dtype=torch.float64):
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    w = {k: torch.from_numpy(np.asarray(v)).to(dtype) if np.asarray(v).dtype.kind == "f" else v
         for k, v in read_hf_weights(model_dir).items()}
    return cfg, w


def reference_forward(model_dir, sequences, dtype=torch.float64, model=None, inv_freq_float32=True):
    """Hook dict (see module docstring) for a Hugging Face llama / mistral / qwen2 / gpt_neox directory.

    Every sequence runs alone from position 0. Returns {name: float64 numpy [sum T, width]} (computed in
    `dtype`). `model` may be a (config, weights) pair from load_hf to skip re-reading the files.
    inv_freq_float32: compute RoPE's inv_freq in float32 as transformers does (default); False
    computes it in float64 (differences ~1e-8 on stories260K's logits).
    """
    cfg, w = model if model is not None else load_hf(model_dir, dtype)
    mt = cfg["model_type"]
    L = cfg["num_hidden_layers"]
    H = cfg["hidden_size"]
    heads = cfg["num_attention_heads"]
    neox = mt == "gpt_neox"
    if mt not in ("llama", "mistral", "qwen2", "gpt_neox"):
        raise ValueError(f"model_type {mt!r} not supported by the reference")
    kvh = heads if neox else (cfg.get("num_key_value_heads") or heads)
    hd = H // heads if neox else (cfg.get("head_dim") or H // heads)
    rot, base, scaling = _rope_settings(cfg, mt, hd)
    inv = torch.from_numpy(rope_inv_freq(rot, base, scaling, inv_freq_float32)).to(dtype)
    act = _act(cfg.get("hidden_act", "gelu" if neox else "silu"))
    eps = cfg.get("layer_norm_eps", 1e-5) if neox else cfg.get("rms_norm_eps", 1e-6)
    tie = cfg.get("tie_word_embeddings", False)
    windows = [None] * L
    if mt == "mistral" and cfg.get("sliding_window"):
        windows = [cfg["sliding_window"]] * L
    if mt == "qwen2" and cfg.get("use_sliding_window") and cfg.get("sliding_window"):
        types = cfg.get("layer_types") or ["sliding_attention" if i >= cfg.get("max_window_layers", 28)
                                           else "full_attention" for i in range(L)]
        windows = [cfg["sliding_window"] if t == "sliding_attention" else None for t in types]

    def g(name):
        return w.get(name)

    out = {f"blocks.{l}.{h}": [] for l in range(L) for h in HOOKS}
    out["logits"] = []
    for seq in sequences:
        ids = torch.tensor(list(seq), dtype=torch.long)
        T = len(ids)
        pos = torch.arange(T, dtype=dtype)
        freqs = pos[:, None] * inv[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos(), emb.sin()
        if neox:
            x = g("gpt_neox.embed_in.weight")[ids]
        else:
            x = g("model.embed_tokens.weight")[ids]
        for l in range(L):
            out[f"blocks.{l}.hook_resid_pre"].append(x)
            if neox:
                p = f"gpt_neox.layers.{l}."
                h = _ln(x, g(p + "input_layernorm.weight"), g(p + "input_layernorm.bias"), eps)
                qkv = _linear(h, g(p + "attention.query_key_value.weight"), g(p + "attention.query_key_value.bias"))
                qkv = qkv.view(T, heads, 3 * hd).transpose(0, 1)
                q, k, v = qkv[..., :hd], qkv[..., hd:2 * hd], qkv[..., 2 * hd:]
                q, k = _rotate(q, cos, sin, rot), _rotate(k, cos, sin, rot)
                a = _attend(q, k, v, hd ** -0.5)
                attn = _linear(a, g(p + "attention.dense.weight"), g(p + "attention.dense.bias"))
                mid = x + attn
                mlp_in = _ln(x if cfg.get("use_parallel_residual", True) else mid,
                             g(p + "post_attention_layernorm.weight"), g(p + "post_attention_layernorm.bias"), eps)
                post = act(_linear(mlp_in, g(p + "mlp.dense_h_to_4h.weight"), g(p + "mlp.dense_h_to_4h.bias")))
                mlp = _linear(post, g(p + "mlp.dense_4h_to_h.weight"), g(p + "mlp.dense_4h_to_h.bias"))
                new = (x + attn + mlp) if cfg.get("use_parallel_residual", True) else (mid + mlp)
            else:
                p = f"model.layers.{l}."
                h = _rms(x, g(p + "input_layernorm.weight"), eps)
                q = _linear(h, g(p + "self_attn.q_proj.weight"), g(p + "self_attn.q_proj.bias"))
                k = _linear(h, g(p + "self_attn.k_proj.weight"), g(p + "self_attn.k_proj.bias"))
                v = _linear(h, g(p + "self_attn.v_proj.weight"), g(p + "self_attn.v_proj.bias"))
                q = q.view(T, heads, hd).transpose(0, 1)
                k = k.view(T, kvh, hd).transpose(0, 1)
                v = v.view(T, kvh, hd).transpose(0, 1)
                q, k = _rotate(q, cos, sin, rot), _rotate(k, cos, sin, rot)
                rep = heads // kvh  # repeat_kv: query head i reads kv head i // rep
                k = k.repeat_interleave(rep, dim=0)
                v = v.repeat_interleave(rep, dim=0)
                a = _attend(q, k, v, hd ** -0.5, windows[l])
                attn = _linear(a, g(p + "self_attn.o_proj.weight"), g(p + "self_attn.o_proj.bias"))
                mid = x + attn
                h2 = _rms(mid, g(p + "post_attention_layernorm.weight"), eps)
                gate = _linear(h2, g(p + "mlp.gate_proj.weight"), g(p + "mlp.gate_proj.bias"))
                up = _linear(h2, g(p + "mlp.up_proj.weight"), g(p + "mlp.up_proj.bias"))
                post = act(gate) * up
                mlp = _linear(post, g(p + "mlp.down_proj.weight"), g(p + "mlp.down_proj.bias"))
                new = mid + mlp
            out[f"blocks.{l}.hook_resid_mid"].append(mid)
            out[f"blocks.{l}.mlp.hook_post"].append(post)
            out[f"blocks.{l}.hook_mlp_out"].append(mlp)
            out[f"blocks.{l}.hook_resid_post"].append(new)
            x = new
        if neox:
            xf = _ln(x, g("gpt_neox.final_layer_norm.weight"), g("gpt_neox.final_layer_norm.bias"), eps)
            head = g("gpt_neox.embed_in.weight") if tie else g("embed_out.weight")
        else:
            xf = _rms(x, g("model.norm.weight"), eps)
            head = g("model.embed_tokens.weight") if tie else g("lm_head.weight")
        if head is None:
            raise ValueError("untied config but no output matrix in the checkpoint")
        out["logits"].append(xf @ head.T)
    return {k: torch.cat(v).double().numpy() for k, v in out.items()}


# ----------------------------------------------------------------------------------------------
# GGUF
# ----------------------------------------------------------------------------------------------

GGUF_UINT8, GGUF_INT8, GGUF_UINT16, GGUF_INT16, GGUF_UINT32, GGUF_INT32, GGUF_FLOAT32, GGUF_BOOL, \
    GGUF_STRING, GGUF_ARRAY, GGUF_UINT64, GGUF_INT64, GGUF_FLOAT64 = range(13)
_GGUF_FMT = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
GGML_F32, GGML_F16, GGML_Q8_0, GGML_BF16 = 0, 1, 8, 30
_GGML_NAMES = {GGML_F32: "F32", GGML_F16: "F16", GGML_Q8_0: "Q8_0", GGML_BF16: "BF16"}
TOKEN_NORMAL, TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_USER_DEFINED, TOKEN_UNUSED, TOKEN_BYTE = 1, 2, 3, 4, 5, 6


def _roundf(x):
    """Round half away from zero (C roundf), as gguf-py's np_roundf."""
    a = np.abs(x)
    f = np.floor(a)
    return np.sign(x) * (f + np.floor(2 * (a - f)))


def quantize_q8_0(m):
    """Rows of m (row length a multiple of 32) -> Q8_0 bytes: per block f16 d then 32 int8."""
    m = np.ascontiguousarray(m, dtype=np.float32)
    blocks = m.reshape(-1, 32)
    d = np.abs(blocks).max(axis=1, keepdims=True) / np.float32(127)
    with np.errstate(divide="ignore"):
        inv = np.where(d == 0, np.float32(0), np.float32(1) / d).astype(np.float32)
    q = _roundf(blocks * inv).astype(np.int8)
    return np.concatenate([d.astype(np.float16).view(np.uint8), q.view(np.uint8)], axis=1).tobytes()


def dequantize_q8_0(raw, n):
    b = np.frombuffer(raw, dtype=np.uint8, count=n // 32 * 34).reshape(-1, 34)
    d = b[:, :2].copy().view(np.float16).astype(np.float32)
    q = b[:, 2:].copy().view(np.int8).astype(np.float32)
    return (d * q).reshape(-1)


def _gguf_pack_value(vtype, value, version):
    lenfmt = "<I" if version == 1 else "<Q"
    if vtype == GGUF_STRING:
        b = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        return struct.pack(lenfmt, len(b)) + b
    if vtype == GGUF_ARRAY:
        etype, items = value
        return struct.pack("<I", etype) + struct.pack(lenfmt, len(items)) + \
            b"".join(_gguf_pack_value(etype, v, version) for v in items)
    return struct.pack("<" + _GGUF_FMT[vtype], value)


def write_gguf(path, metadata, tensors, version=3, alignment=32):
    """metadata: list of (key, type, value) (arrays: value = (elem_type, list)); tensors: list of
    (name, ggml dims fastest-first, ggml type, raw bytes). Tensor data aligned to `alignment`."""
    lenfmt = "<I" if version == 1 else "<Q"

    def s(x):
        b = x.encode("utf-8")
        return struct.pack(lenfmt, len(b)) + b

    out = bytearray(b"GGUF" + struct.pack("<I", version))
    out += struct.pack("<II" if version == 1 else "<QQ", len(tensors), len(metadata))
    for key, vtype, value in metadata:
        out += s(key) + struct.pack("<I", vtype) + _gguf_pack_value(vtype, value, version)
    off = 0
    offsets = []
    for name, dims, gtype, raw in tensors:
        offsets.append(off)
        out += s(name) + struct.pack("<I", len(dims))
        out += struct.pack("<%d%s" % (len(dims), "I" if version == 1 else "Q"), *dims)
        out += struct.pack("<IQ", gtype, off)
        off += len(raw) + (-len(raw) % alignment)
    out += b"\0" * (-len(out) % alignment)
    for (name, dims, gtype, raw), o in zip(tensors, offsets):
        out += raw + b"\0" * (-len(raw) % alignment)
    with open(path, "wb") as f:
        f.write(out)


def read_gguf(path, typed=False):
    """(version, metadata {key: value}, tensors [(name, ggml dims, ggml type, raw bytes)]).
    typed=True: metadata as a list of (key, type, value) with arrays as (elem_type, list), write_gguf's form."""
    with open(path, "rb") as f:
        d = f.read()
    if d[:4] != b"GGUF":
        raise ValueError(f"{path}: not GGUF")
    (version,) = struct.unpack_from("<I", d, 4)
    wide = version >= 2
    off = 8
    nfmt, nsize = ("<Q", 8) if wide else ("<I", 4)

    def n():
        nonlocal off
        (v,) = struct.unpack_from(nfmt, d, off)
        off += nsize
        return v

    def string():
        nonlocal off
        ln = n()
        v = d[off:off + ln].decode("utf-8")
        off += ln
        return v

    def value(t):
        nonlocal off
        if t == GGUF_STRING:
            return string()
        if t == GGUF_ARRAY:
            (et,) = struct.unpack_from("<I", d, off)
            off += 4
            cnt = n()
            items = [value(et) for _ in range(cnt)]
            return (et, items) if typed else items
        fmt = "<" + _GGUF_FMT[t]
        (v,) = struct.unpack_from(fmt, d, off)
        off += struct.calcsize(fmt)
        return v

    n_tensors, n_kv = n(), n()
    meta, typed_meta = {}, []
    for _ in range(n_kv):
        key = string()
        (t,) = struct.unpack_from("<I", d, off)
        off += 4
        meta[key] = value(t)
        typed_meta.append((key, t, meta[key]))
        if typed and t == GGUF_ARRAY:
            meta[key] = meta[key][1]
    infos = []
    for _ in range(n_tensors):
        name = string()
        (nd,) = struct.unpack_from("<I", d, off)
        off += 4
        dims = [n() for _ in range(nd)]
        gtype, toff = struct.unpack_from("<IQ", d, off)
        off += 12
        infos.append((name, dims, gtype, toff))
    align = int(meta.get("general.alignment", 32))
    start = off + (-off % align)
    tensors = []
    for name, dims, gtype, toff in infos:
        count = int(np.prod(dims))
        nbytes = {GGML_F32: 4 * count, GGML_F16: 2 * count, GGML_BF16: 2 * count,
                  GGML_Q8_0: count // 32 * 34}.get(gtype)
        if nbytes is None:
            raise ValueError(f"{name}: ggml type {gtype} not supported here")
        tensors.append((name, dims, gtype, d[start + toff:start + toff + nbytes]))
    return version, (typed_meta if typed else meta), tensors


class GGUFWeights(dict):
    """{GGUF tensor name: float64 ndarray in numpy order (ggml dims reversed)} with .metadata and
    .types ({name: 'F32'/'Q8_0'/...})."""
    metadata = None
    types = None


def gguf_dequantized_weights(path):
    """Parse a GGUF (v1/v2/v3) with numpy and dequantize every tensor to float64 (numpy shapes)."""
    version, meta, tensors = read_gguf(path)
    out = GGUFWeights()
    out.metadata = dict(meta, **{"gguf.version": version})
    out.types = {}
    for name, dims, gtype, raw in tensors:
        count = int(np.prod(dims))
        if gtype == GGML_F32:
            a = np.frombuffer(raw, dtype="<f4", count=count)
        elif gtype == GGML_F16:
            a = np.frombuffer(raw, dtype="<f2", count=count).astype(np.float32)
        elif gtype == GGML_BF16:
            a = bf16_bits_to_f32(np.frombuffer(raw, dtype="<u2", count=count))
        else:
            a = dequantize_q8_0(raw, count)
        out[name] = a.astype(np.float64).reshape(tuple(reversed(dims)))
        out.types[name] = _GGML_NAMES[gtype]
    return out


def llama2c_weights(src_bin):
    """The llama2.c checkpoint as GGUFWeights (GGUF names, llama2.c q/k order, float64)."""
    cfg, w = read_llama2c(src_bin)
    out = GGUFWeights()
    hs = cfg["dim"] // cfg["n_heads"]
    out.metadata = {"general.architecture": "llama", "llama.embedding_length": cfg["dim"],
                    "llama.block_count": cfg["n_layers"], "llama.feed_forward_length": cfg["hidden_dim"],
                    "llama.attention.head_count": cfg["n_heads"], "llama.attention.head_count_kv": cfg["n_kv_heads"],
                    "llama.rope.dimension_count": hs, "llama.context_length": cfg["seq_len"],
                    "llama.attention.layer_norm_rms_epsilon": float(np.float32(1e-5)),  # run.c: 1e-5f
                    "llama.rope.freq_base": 10000.0}
    out.types = {}
    for name, a in _llama2c_gguf_tensors(cfg, w, include_output=True):
        out[name] = a.astype(np.float64)
        out.types[name] = "F32"
    return out


def _llama2c_gguf_tensors(cfg, w, include_output):
    t = [("token_embd.weight", w["tok_embeddings"])]
    for l in range(cfg["n_layers"]):
        p = f"blk.{l}."
        t += [(p + "attn_q.weight", w["wq"][l]), (p + "attn_k.weight", w["wk"][l]),
              (p + "attn_v.weight", w["wv"][l]), (p + "attn_output.weight", w["wo"][l]),
              (p + "ffn_gate.weight", w["w1"][l]), (p + "ffn_down.weight", w["w2"][l]),
              (p + "ffn_up.weight", w["w3"][l]), (p + "attn_norm.weight", w["rms_att"][l]),
              (p + "ffn_norm.weight", w["rms_ffn"][l])]
    t.append(("output_norm.weight", w["rms_final"]))
    if include_output or not cfg["shared_classifier"]:
        t.append(("output.weight", w["wcls"]))
    return t


def _gguf_vocab(tokenizer, vocab_size):
    pieces, scores = read_llama2c_vocab(tokenizer, vocab_size)
    tokens, types = [], []
    for i, p in enumerate(pieces):
        s = p.decode("utf-8", errors="replace")
        if i == 0:
            types.append(TOKEN_UNKNOWN)
        elif i in (1, 2):
            types.append(TOKEN_CONTROL)
            s = s.strip()  # llama2.c's export wrote "\n<s>\n", "\n</s>\n"; the vocabulary has "<s>", "</s>"
        elif len(p) == 6 and p.startswith(b"<0x") and p.endswith(b">"):
            types.append(TOKEN_BYTE)
        else:
            types.append(TOKEN_NORMAL)
            s = s.replace(" ", "\u2581")
        tokens.append(s)
    return tokens, [float(x) for x in scores], types


def write_gguf_from_llama2c(src_bin, out_path, qtype="Q8_0", version=3, tokenizer=None, include_output=True):
    """GGUF (llama architecture) from a llama2.c checkpoint.

    2-D weights in qtype (Q8_0 where the row length is a multiple of 32, else F32; or all F32), norms F32;
    q/k rows in llama2.c order (no permutation), as the real stories260K_f32.gguf. include_output writes
    `output.weight` even when the classifier is the embedding (as that file does); False leaves it out
    (the tied case llama.cpp falls back on). tokenizer: a llama2.c tokenizer.bin for tokenizer.ggml.*.
    """
    qtype = qtype.upper()
    if qtype not in ("Q8_0", "F32"):
        raise ValueError("qtype: Q8_0 or F32")
    cfg, w = read_llama2c(src_bin)
    hs = cfg["dim"] // cfg["n_heads"]
    tensors = []
    any_q = False
    for name, a in _llama2c_gguf_tensors(cfg, w, include_output):
        a = np.ascontiguousarray(a, dtype=np.float32)
        dims = list(reversed(a.shape))
        if qtype == "Q8_0" and a.ndim == 2 and a.shape[1] % 32 == 0:
            tensors.append((name, dims, GGML_Q8_0, quantize_q8_0(a)))
            any_q = True
        else:
            tensors.append((name, dims, GGML_F32, a.tobytes()))
    meta = [("general.architecture", GGUF_STRING, "llama"),
            ("general.name", GGUF_STRING, os.path.splitext(os.path.basename(src_bin))[0]),
            ("general.alignment", GGUF_UINT32, 32),
            ("general.file_type", GGUF_UINT32, 7 if any_q else 0)]
    if any_q:
        meta.append(("general.quantization_version", GGUF_UINT32, 2))
    meta += [("llama.context_length", GGUF_UINT32, cfg["seq_len"]),
             ("llama.embedding_length", GGUF_UINT32, cfg["dim"]),
             ("llama.block_count", GGUF_UINT32, cfg["n_layers"]),
             ("llama.feed_forward_length", GGUF_UINT32, cfg["hidden_dim"]),
             ("llama.rope.dimension_count", GGUF_UINT32, hs),
             ("llama.rope.freq_base", GGUF_FLOAT32, 10000.0),
             ("llama.attention.head_count", GGUF_UINT32, cfg["n_heads"]),
             ("llama.attention.head_count_kv", GGUF_UINT32, cfg["n_kv_heads"]),
             ("llama.attention.layer_norm_rms_epsilon", GGUF_FLOAT32, 1e-5),
             ("llama.vocab_size", GGUF_UINT32, cfg["vocab_size"])]
    if tokenizer:
        toks, scores, types = _gguf_vocab(tokenizer, cfg["vocab_size"])
        meta += [("tokenizer.ggml.model", GGUF_STRING, "llama"),
                 ("tokenizer.ggml.tokens", GGUF_ARRAY, (GGUF_STRING, toks)),
                 ("tokenizer.ggml.scores", GGUF_ARRAY, (GGUF_FLOAT32, scores)),
                 ("tokenizer.ggml.token_type", GGUF_ARRAY, (GGUF_INT32, types)),
                 ("tokenizer.ggml.bos_token_id", GGUF_UINT32, 1),
                 ("tokenizer.ggml.eos_token_id", GGUF_UINT32, 2),
                 ("tokenizer.ggml.unknown_token_id", GGUF_UINT32, 0)]
    write_gguf(out_path, meta, tensors, version=version, alignment=32)


def reference_forward_llama2c_layout(weights, sequences, n_heads=None, n_kv_heads=None, eps=None,
                                     rope_base=None, rope_dim=None):
    """Dequantize-then-forward reference: numpy float64, GGUF tensor names, adjacent-pair RoPE as llama2.c
    (pair (2j, 2j+1) of each head turns at rope_base^(-2j/rope_dim)). Settings default to weights.metadata
    (llama.* keys). Returns the hook dict."""
    meta = getattr(weights, "metadata", None) or {}
    n_heads = n_heads or meta["llama.attention.head_count"]
    n_kv_heads = n_kv_heads or meta.get("llama.attention.head_count_kv", n_heads)
    eps = eps if eps is not None else meta.get("llama.attention.layer_norm_rms_epsilon", 1e-5)
    rope_base = rope_base or meta.get("llama.rope.freq_base", 10000.0)
    emb = weights["token_embd.weight"]
    dim = emb.shape[1]
    hs = dim // n_heads
    rope_dim = rope_dim or meta.get("llama.rope.dimension_count", hs)
    L = 0
    while f"blk.{L}.attn_q.weight" in weights:
        L += 1
    cls = weights.get("output.weight", emb)
    j = np.arange(0, rope_dim, 2)
    freq = 1.0 / rope_base ** (j / rope_dim)

    def rms(x, wt):
        return wt * (x / np.sqrt((x * x).mean(-1, keepdims=True) + eps))

    def rope(x, T):  # x [T, heads, hs]
        ang = np.arange(T)[:, None] * freq[None, :]
        c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        y = x.copy()
        a, b = x[..., 0:rope_dim:2], x[..., 1:rope_dim:2]
        y[..., 0:rope_dim:2] = a * c - b * s
        y[..., 1:rope_dim:2] = a * s + b * c
        return y

    out = {f"blocks.{l}.{h}": [] for l in range(L) for h in HOOKS}
    out["logits"] = []
    for seq in sequences:
        ids = np.asarray(list(seq))
        T = len(ids)
        x = emb[ids]
        mask = np.tril(np.ones((T, T), dtype=bool))
        for l in range(L):
            p = f"blk.{l}."
            out[f"blocks.{l}.hook_resid_pre"].append(x)
            a = rms(x, weights[p + "attn_norm.weight"])
            q = rope((a @ weights[p + "attn_q.weight"].T).reshape(T, n_heads, hs), T)
            k = rope((a @ weights[p + "attn_k.weight"].T).reshape(T, n_kv_heads, hs), T)
            v = (a @ weights[p + "attn_v.weight"].T).reshape(T, n_kv_heads, hs)
            o = np.empty((T, n_heads, hs))
            for h in range(n_heads):
                g = h // (n_heads // n_kv_heads)
                s = q[:, h] @ k[:, g].T / math.sqrt(hs)
                s = np.where(mask, s, -np.inf)
                s = np.exp(s - s.max(-1, keepdims=True))
                o[:, h] = (s / s.sum(-1, keepdims=True)) @ v[:, g]
            mid = x + o.reshape(T, dim) @ weights[p + "attn_output.weight"].T
            m = rms(mid, weights[p + "ffn_norm.weight"])
            gate = m @ weights[p + "ffn_gate.weight"].T
            post = gate / (1.0 + np.exp(-gate)) * (m @ weights[p + "ffn_up.weight"].T)
            mlp = post @ weights[p + "ffn_down.weight"].T
            out[f"blocks.{l}.hook_resid_mid"].append(mid)
            out[f"blocks.{l}.mlp.hook_post"].append(post)
            out[f"blocks.{l}.hook_mlp_out"].append(mlp)
            x = mid + mlp
            out[f"blocks.{l}.hook_resid_post"].append(x)
        out["logits"].append(rms(x, weights["output_norm.weight"]) @ cls.T)
    return {k: np.concatenate(v) for k, v in out.items()}


# ----------------------------------------------------------------------------------------------
# convenience: any model path -> hooks; greedy decoding
# ----------------------------------------------------------------------------------------------


def forward_any(model, sequences, dtype=torch.float64):
    """Hook dict for a Hugging Face directory, a .gguf file or a llama2.c .bin checkpoint."""
    if os.path.isdir(model):
        return reference_forward(model, sequences, dtype)
    if model.endswith(".gguf"):
        return reference_forward_llama2c_layout(gguf_dequantized_weights(model), sequences)
    return reference_forward_llama2c_layout(llama2c_weights(model), sequences)


def greedy(model, prompt, steps, dtype=torch.float64):
    """run.c's greedy loop (temperature 0): `steps` forward positions, so up to steps + 1 token ids
    (the prompt, then argmax continuations), stopping before a BOS. Recomputes the whole prefix each
    step (positions from 0; the same numbers as run.c's cached forward)."""
    if os.path.isdir(model):
        loaded = load_hf(model, dtype)

        def fwd(seq):
            return reference_forward(model, [seq], dtype, model=loaded)["logits"]
    else:
        wts = gguf_dequantized_weights(model) if model.endswith(".gguf") else llama2c_weights(model)

        def fwd(seq):
            return reference_forward_llama2c_layout(wts, [seq])["logits"]
    toks = list(prompt)
    while len(toks) < steps + 1:
        nxt = int(np.argmax(fwd(toks)[-1]))
        if nxt == 1:
            break
        toks.append(nxt)
    return toks


# ----------------------------------------------------------------------------------------------
# selftest
# ----------------------------------------------------------------------------------------------


def _worst(a, b):
    return max(float(np.max(np.abs(a[k] - b[k]))) for k in a)


def selftest(data_dir=None, tmp=None, quick=False):
    import tempfile
    data_dir = data_dir or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                        "shared", "data")
    tdir = tempfile.TemporaryDirectory() if tmp is None else None
    tmp = tmp or tdir.name
    report = {}
    tiny = os.path.join(data_dir, "hf", "tiny-random-llama-2")
    # 0. formats: the real BF16 file read and rewritten is byte-identical; BF16 rounding = torch's
    real_st = os.path.join(tiny, "model.safetensors")
    write_safetensors(os.path.join(tmp, "rewrite.safetensors"), read_safetensors(real_st), "BF16")
    with open(real_st, "rb") as f1, open(os.path.join(tmp, "rewrite.safetensors"), "rb") as f2:
        report["tiny-random-llama-2 safetensors rewritten byte-identical"] = f1.read() == f2.read()
    assert report["tiny-random-llama-2 safetensors rewritten byte-identical"]
    x = np.concatenate([np.random.default_rng(0).normal(size=20000).astype(np.float32),
                        ((np.arange(1 << 16, dtype=np.uint32) << 16) | 0x8000).view(np.float32)])  # ties
    x = x[~np.isnan(x)]
    tb = torch.from_numpy(x).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    assert np.array_equal(f32_to_bf16_bits(x), tb)
    report["BF16 rounding equals torch's on values incl. every tie"] = int(x.size)
    # 1. real HF checkpoint with published logits
    with open(os.path.join(tiny, "corpus.json")) as f:
        corpus = json.load(f)
    worst = worst_rel = 0.0
    for case in corpus["model_cases"]:
        for dt in (torch.float64, torch.float32):
            lg = reference_forward(tiny, [case["input_ids"]], dt)["logits"][-1]
            for tok, val in case["sampled_logits"].items():
                err = abs(lg[int(tok)] - val)
                if dt == torch.float64:
                    worst = max(worst, err)
                    worst_rel = max(worst_rel, err / max(abs(val), 1e-12))
                assert err <= 1e-5 + 1e-5 * abs(val), (case["input_ids"], tok, lg[int(tok)], val, dt)
            assert int(np.argmax(lg)) == case["greedy_token"]
        cont = greedy(tiny, case["input_ids"], len(case["input_ids"]) + len(case["greedy_continuation"]) - 1)
        assert cont[len(case["input_ids"]):] == case["greedy_continuation"], cont
    report["tiny-random-llama-2 worst |logit err| (float64)"] = worst
    report["tiny-random-llama-2 worst relative err"] = worst_rel
    # 2. stories260K -> HF -> greedy 200 steps == llama2.c's expected output
    src = os.path.join(data_dir, "stories260K.bin")
    cfg, _ = read_llama2c(src)
    pieces, _ = read_llama2c_vocab(os.path.join(data_dir, "tok512.bin"), cfg["vocab_size"])
    with open(os.path.join(data_dir, "expected_stdout.txt"), "rb") as f:
        expected = f.read()
    hf = os.path.join(tmp, "stories_hf")
    write_hf_from_llama2c(src, hf)
    text = decode_llama2c(greedy(hf, [1], 200), pieces)
    assert text == expected, text
    report["stories260K HF F32 greedy 200 == expected_stdout.txt"] = True
    hf_bf = os.path.join(tmp, "stories_hf_bf16")
    write_hf_from_llama2c(src, hf_bf, dtype="BF16", shards=2)
    with open(os.path.join(hf_bf, "model.safetensors.index.json")) as f:
        index = json.load(f)
    files = sorted(set(index["weight_map"].values()))
    assert files == ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"], files
    got = {}
    for fn in files:
        part = read_safetensors(os.path.join(hf_bf, fn))
        assert all(index["weight_map"][k] == fn for k in part)
        got.update(part)
    assert set(got) == set(index["weight_map"]) and "lm_head.weight" not in got
    assert index["metadata"]["total_size"] == sum(2 * v.size for v in got.values())
    f32 = read_hf_weights(hf)
    assert all(np.array_equal(got[k], round_bf16(f32[k])) for k in f32)
    scripts = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts")
    if os.path.exists(os.path.join(scripts, "safetensors_np.py")):  # the project's own numpy reader agrees
        sys.path.insert(0, scripts)
        import safetensors_np
        for fn in files:
            arrays, dtypes, meta_st, _ = safetensors_np.load(os.path.join(hf_bf, fn))
            assert meta_st == {"format": "pt"} and set(dtypes.values()) == {"BF16"}
            assert all(np.array_equal(arrays[k], got[k]) for k in arrays)
        report["BF16 shards read back by scripts/safetensors_np.py"] = True
    # 3. hooks: HF (rotate_half, permuted) vs llama2.c layout (adjacent pairs) vs scripts/llama2c_ref.py
    seqs = [[1, 403, 407, 261, 378], [1, 68, 301, 2, 7, 9, 300, 511, 40]]
    ref_bin = reference_forward_llama2c_layout(llama2c_weights(src), seqs)
    report["stories260K HF-layout (HF float32 inv_freq) vs llama2c-layout worst abs"] = _worst(
        reference_forward(hf, seqs), ref_bin)
    ref_hf = reference_forward(hf, seqs, inv_freq_float32=False)
    report["stories260K HF-layout (float64 inv_freq) vs llama2c-layout worst abs"] = _worst(ref_hf, ref_bin)
    assert report["stories260K HF-layout (float64 inv_freq) vs llama2c-layout worst abs"] < 1e-9
    ref_bf = reference_forward(hf_bf, seqs, inv_freq_float32=False)
    w_bf = llama2c_weights(src)
    for k in w_bf:
        w_bf[k] = round_bf16(w_bf[k].astype(np.float32)).astype(np.float64)
    report["stories260K BF16 2-shard HF vs bf16-rounded llama2c-layout worst abs"] = _worst(
        ref_bf, reference_forward_llama2c_layout(w_bf, seqs))
    assert report["stories260K BF16 2-shard HF vs bf16-rounded llama2c-layout worst abs"] < 1e-9
    report["stories260K BF16 vs F32 worst |logit| diff"] = float(np.max(np.abs(ref_bf["logits"] - ref_hf["logits"])))
    if os.path.exists(os.path.join(scripts, "llama2c_ref.py")):
        sys.path.insert(0, scripts)
        import llama2c_ref
        mdl = llama2c_ref.Model(src)
        hs, lg = zip(*[mdl.forward(s) for s in seqs])
        ext = {k: np.concatenate([h[k] for h in hs]) for k in hs[0]}
        ext["logits"] = np.concatenate(lg)
        report["llama2c-layout vs scripts/llama2c_ref.py worst abs"] = _worst(ref_bin, ext)
        assert report["llama2c-layout vs scripts/llama2c_ref.py worst abs"] < 1e-9
    # 4. GGUF: this writer (F32 v3, Q8_0 v3, F32 v1) and the real v1 file
    real_path = os.path.join(data_dir, "stories260K_f32.gguf")
    ver, tmeta, ttensors = read_gguf(real_path, typed=True)
    write_gguf(os.path.join(tmp, "real_rewritten.gguf"), tmeta, ttensors, version=ver, alignment=32)
    with open(real_path, "rb") as f1, open(os.path.join(tmp, "real_rewritten.gguf"), "rb") as f2:
        report["real stories260K_f32.gguf (v1) parsed and rewritten byte-identical"] = f1.read() == f2.read()
    assert report["real stories260K_f32.gguf (v1) parsed and rewritten byte-identical"]
    real = gguf_dequantized_weights(real_path)
    report["real stories260K_f32.gguf vs llama2c forward worst abs"] = _worst(
        reference_forward_llama2c_layout(real, seqs), ref_bin)
    assert report["real stories260K_f32.gguf vs llama2c forward worst abs"] <= 1e-6
    for qt, ver in (("F32", 3), ("F32", 1), ("Q8_0", 3)):
        path = os.path.join(tmp, f"stories_{qt}_v{ver}.gguf")
        write_gguf_from_llama2c(src, path, qtype=qt, version=ver, tokenizer=os.path.join(data_dir, "tok512.bin"))
        wts = gguf_dequantized_weights(path)
        r = reference_forward_llama2c_layout(wts, seqs)
        key = f"GGUF {qt} v{ver} (this writer) vs llama2c forward worst abs"
        report[key] = _worst(r, ref_bin)
        if qt == "F32":
            assert report[key] <= 1e-6
            assert all(t == "F32" for t in wts.types.values())
            for name in real:
                assert np.array_equal(real[name], wts[name]), name
        else:
            exact = llama2c_weights(src)
            n_q = 0
            for name, t in wts.types.items():
                a = exact[name]
                if t == "F32":
                    assert np.array_equal(wts[name], a) and (a.ndim == 1 or a.shape[1] % 32), name
                    continue
                n_q += 1
                blocks = a.reshape(-1, 32)
                d = np.abs(blocks).max(1, keepdims=True) / 127
                err = np.abs(wts[name].reshape(-1, 32) - blocks)
                # half a step, plus 127 times the f16 rounding of d
                assert np.all(err <= d * (0.5 + 127 * 2.0 ** -11) * (1 + 1e-6) + 1e-12), name
            report["GGUF Q8_0 tensors (ffn_down rows of 172 stay F32)"] = n_q
            report["GGUF Q8_0 worst |logit| diff vs exact"] = float(np.max(np.abs(r["logits"] - ref_bin["logits"])))
    report["GGUF tokens equal the real file's"] = (
        read_gguf(os.path.join(tmp, "stories_F32_v3.gguf"))[1]["tokenizer.ggml.tokens"]
        == real.metadata["tokenizer.ggml.tokens"])
    # 5. RoPE scaling and masks, checked by other routes
    inv = rope_inv_freq(16, 10000.0, LLAMA3_ROPE_EXAMPLE)
    sc = LLAMA3_ROPE_EXAMPLE
    meta = []  # Meta's apply_scaling (llama-models), the formulation HF's _compute_llama3_parameters ports
    for fr in 1.0 / 10000.0 ** (np.arange(0, 16, 2) / 16):
        wl = 2 * math.pi / fr
        if wl < sc["original_max_position_embeddings"] / sc["high_freq_factor"]:
            meta.append(fr)
        elif wl > sc["original_max_position_embeddings"] / sc["low_freq_factor"]:
            meta.append(fr / sc["factor"])
        else:
            sm = (sc["original_max_position_embeddings"] / wl - sc["low_freq_factor"]) / (
                sc["high_freq_factor"] - sc["low_freq_factor"])
            meta.append((1 - sm) * fr / sc["factor"] + sm * fr)
    report["llama3 inv_freq vs Meta apply_scaling worst rel"] = float(np.max(np.abs(inv / np.array(meta) - 1)))
    assert report["llama3 inv_freq vs Meta apply_scaling worst rel"] < 1e-6
    assert np.allclose(rope_inv_freq(16, 10000.0, {"type": "linear", "factor": 2.5}),
                       rope_inv_freq(16, 10000.0) / 2.5, rtol=1e-7, atol=0)
    # sliding window (kv > q - W): with RoPE relative, layer 0 at position t equals the last position
    # of the window s[t-W+1..t] run alone
    d = os.path.join(tmp, "rand_mistral_window")
    write_random_hf(d, "mistral", seed=3, sliding_window=3)
    seq = [1, 20, 37, 250, 4, 99, 180, 7]
    full = reference_forward(d, [seq])
    worst_w = 0.0
    for t in range(2, len(seq)):
        alone = reference_forward(d, [seq[t - 2:t + 1]])
        worst_w = max(worst_w, float(np.max(np.abs(full["blocks.0.hook_resid_post"][t] -
                                                   alone["blocks.0.hook_resid_post"][-1]))))
    report["mistral sliding_window=3 vs windows run alone (layer 0) worst abs"] = worst_w
    assert worst_w < 1e-12
    nowin = os.path.join(tmp, "rand_mistral_nowindow")
    write_random_hf(nowin, "mistral", seed=3, sliding_window=None)
    assert np.max(np.abs(reference_forward(nowin, [seq])["logits"][3:] - full["logits"][3:])) > 1e-3
    # 6. random checkpoints: sequences independent, float32 close, BF16 = rounded F32, legacy buffers ignored
    if not quick:
        rseqs = [[1, 20, 37, 250, 4, 99, 180, 7, 7, 64, 2], [5, 6, 7]]
        for mt, extra in (("llama", {}), ("llama", dict(num_key_value_heads=2, rope_scaling=LLAMA3_ROPE_EXAMPLE,
                                                          tie_word_embeddings=True)),
                          ("mistral", dict(head_dim=32)), ("qwen2", {}), ("gpt_neox", {}),
                          ("gpt_neox", dict(use_parallel_residual=False))):
            d = os.path.join(tmp, f"rand_{mt}")
            write_random_hf(d, mt, seed=1, **extra)
            r = reference_forward(d, rseqs)
            r32 = reference_forward(d, rseqs, torch.float32)
            tag = f"random {mt} {json.dumps(extra, sort_keys=True)}"
            report[f"{tag} float32-vs-float64 worst abs"] = _worst(r, r32)
            one = reference_forward(d, rseqs[1:])
            assert all(np.array_equal(one[k], r[k][len(rseqs[0]):]) for k in r)
            report[f"{tag} logits std / resid_post std (last layer)"] = (
                round(float(r["logits"].std()), 3),
                round(float(r[f"blocks.{max(int(k.split('.')[1]) for k in r if k != 'logits')}.hook_resid_post"].std()), 3))
            db = d + "_bf16"
            write_random_hf(db, mt, seed=1, dtype="BF16", shards=2, legacy_buffers=(mt == "gpt_neox"), **extra)
            wb = read_hf_weights(db)
            wf = read_hf_weights(d)
            assert all(np.array_equal(wb[k], round_bf16(wf[k])) for k in wf)
            rb = reference_forward(db, rseqs)
            report[f"{tag} BF16-vs-F32 worst |logit| diff"] = float(np.max(np.abs(rb["logits"] - r["logits"])))
    if tdir:
        tdir.cleanup()
    return report


# ----------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------


def _main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("hf-from-llama2c")
    a.add_argument("src")
    a.add_argument("out")
    a.add_argument("--dtype", default="F32", choices=["F32", "F16", "BF16"])
    a.add_argument("--shards", type=int, default=1)
    a = sub.add_parser("random")
    a.add_argument("model_type", choices=sorted(_DEFAULTS))
    a.add_argument("out")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--dtype", default="F32", choices=["F32", "F16", "BF16"])
    a.add_argument("--shards", type=int, default=1)
    a.add_argument("--legacy-buffers", action="store_true")
    a.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                   help="config override, value parsed as JSON when it parses (e.g. head_dim=32)")
    a = sub.add_parser("gguf-from-llama2c")
    a.add_argument("src")
    a.add_argument("out")
    a.add_argument("--qtype", default="Q8_0", choices=["Q8_0", "F32"])
    a.add_argument("--version", type=int, default=3, choices=[1, 2, 3])
    a.add_argument("--tokenizer", default=None, help="llama2.c tokenizer.bin for tokenizer.ggml.* keys")
    a.add_argument("--no-output", action="store_true", help="omit output.weight when the classifier is shared")
    a = sub.add_parser("reference")
    a.add_argument("model")
    a.add_argument("--tokens", action="append", required=True, help="comma-separated ids; repeat per sequence")
    a.add_argument("--out", required=True)
    a.add_argument("--float32", action="store_true", help="store float32 (computation is float64)")
    a = sub.add_parser("greedy")
    a.add_argument("model")
    a.add_argument("--steps", type=int, default=200)
    a.add_argument("--prompt", default="1")
    a.add_argument("--tokenizer", default=None)
    a = sub.add_parser("selftest")
    a.add_argument("--data", default=None)
    a.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)

    if args.cmd == "hf-from-llama2c":
        write_hf_from_llama2c(args.src, args.out, args.dtype, args.shards)
    elif args.cmd == "random":
        over = {}
        for kv in args.set:
            k, _, v = kv.partition("=")
            try:
                over[k] = json.loads(v)
            except json.JSONDecodeError:
                over[k] = v
        write_random_hf(args.out, args.model_type, args.seed, args.dtype, args.shards, args.legacy_buffers, **over)
    elif args.cmd == "gguf-from-llama2c":
        write_gguf_from_llama2c(args.src, args.out, args.qtype, args.version, args.tokenizer,
                                include_output=not args.no_output)
    elif args.cmd == "reference":
        seqs = [[int(t) for t in s.split(",") if t.strip()] for s in args.tokens]
        r = forward_any(args.model, seqs)
        dt = np.float32 if args.float32 else np.float64
        np.savez(args.out, **{k: v.astype(dt) for k, v in r.items()},
                 tokens=np.concatenate([np.asarray(s, dtype=np.int64) for s in seqs]),
                 lengths=np.asarray([len(s) for s in seqs], dtype=np.int64))
    elif args.cmd == "greedy":
        toks = greedy(args.model, [int(t) for t in args.prompt.split(",")], args.steps)
        if args.tokenizer:
            pieces, _ = read_llama2c_vocab(args.tokenizer, _vocab_size(args.model))
            sys.stdout.buffer.write(decode_llama2c(toks, pieces) + b"\n")
        else:
            print(",".join(map(str, toks)))
    elif args.cmd == "selftest":
        for k, v in selftest(args.data, quick=args.quick).items():
            print(f"{k}: {v}")


def _vocab_size(model):
    if os.path.isdir(model):
        with open(os.path.join(model, "config.json")) as f:
            return json.load(f)["vocab_size"]
    if model.endswith(".gguf"):
        return gguf_dequantized_weights(model)["token_embd.weight"].shape[0]
    return read_llama2c(model)[0]["vocab_size"]


if __name__ == "__main__":
    _main()
