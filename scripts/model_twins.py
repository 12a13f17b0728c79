#!/usr/bin/env python3
"""Known-answer twins of a llama2.c model (stories260K): models whose right answers follow from the original's.

Tests write these into a temporary directory; none is ever committed. Needs numpy and torch only; the
file formats and references are scripts/hf_models.py's (imported, not copied).

    python3 scripts/model_twins.py rotated OUT [--seed S] [--src stories260K.bin]
            OUT ending in .bin: a llama2.c legacy checkpoint with a negative vocab_size (untied
            classifier); any other OUT: a Hugging Face directory (tie_word_embeddings false).
            Writes OUT.Q.npy beside a .bin (the float64 rotation), or OUT/rotation.npy in a directory.
    python3 scripts/model_twins.py quantized OUT.gguf --qtype Q8_0|Q4_0 [--src ...] [--tokenizer tok512.bin]

Rotated twin (write_rotated_twin): every RMSNorm gain is folded into the matrices that read the norm's
output (wq, wk, wv after attention_norm; w1, w3 after ffn_norm; the classifier after the final norm) and
set to 1; then the residual stream is turned by a seeded Haar-random orthogonal Q (d x d: QR of a
Gaussian, columns' signs fixed by diag(R)):
    embedding rows                    E' = E Q^T         (so x' = Q x for every residual vector x)
    wq, wk, wv, w1, w3, classifier    W' = W diag(g) Q^T (g the gain of the norm before it; 1 for none)
    wo, w2 (write the residual)       W' = Q W
RMSNorm with unit gain commutes with Q (|Qx| = |x|), so every residual-stream hookpoint of the twin is
Q times the original's (hook_resid_pre/mid/post, hook_mlp_out), the MLP hidden (mlp.hook_post), the
attention pattern and the logits are the original's: exactly in real arithmetic, to float64 rounding
when computed from rotated_weights(), to float32 rounding of the stored weights in the written file.
The classifier is no longer the embedding (E' = E Q^T but W_cls' = E diag(g_final) Q^T), hence untied.

Quantized twins (write_quantized_twin): every weight matrix whose rows are whole 32-element blocks is
stored as Q8_0 or Q4_0 in a GGUF v3 file (llama2.c's q/k row order, as scripts/hf_models.py's
write_gguf_from_llama2c and the real stories260K_f32.gguf). stories260K's w2 (ffn_down, rows of 172) cannot
be blocked and stays F32, as do the norm gains (llama.cpp's quantize keeps 1-D tensors in F32 too).
token_embd.weight and output.weight (the same matrix, stories260K being tied) are both quantized.
Q8_0 is hf_models.quantize_q8_0; Q4_0 is ported from gguf-py (ggml-org/llama.cpp gguf-py/gguf/quants.py,
class Q4_0): per block of 32, max = the element of largest magnitude (first on ties, argmax), d = max / -8
(float32), id = 1/d (0 when d is 0), q = clip(uint8(trunc(float32(float64(x) * float64(id) + 8.5))), 0, 15),
elements 0..15 in the low nibbles of bytes 0..15 and 16..31 in the high nibbles, d stored as f16; dequantized
x = f16(d) * (q - 8). Unlike Q8_0's d = amax/127, Q4_0's d is signed, so the extreme element maps to q = 0
(-8 d = max) exactly, and the other end of the range has only 7 steps. The file's metadata and the
tokenizer.ggml.* vocabulary are write_gguf_from_llama2c's (general.file_type 2 = MOSTLY_Q4_0, 7 = MOSTLY_Q8_0).

Tokenizer: universae never reads a GGUF's vocabulary for encoding (extract.tokenizer is a tokenizer.json
or a llama2.c tokenizer.bin; the GGUF's tokenizer.ggml.bos/eos_token_id are only the model's BOS/EOS, used
by `universae generate` to stop at EOS), so every twin is used with the original's tok512.bin and the
token ids are identical by construction. The vocabulary is still embedded (from --tokenizer) so that
llama.cpp could run the file too.
"""
import argparse
import os
import struct
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_models as hf  # noqa: E402

DATA = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data"))
STORIES = os.path.join(DATA, "stories260K.bin")
TOK512 = os.path.join(DATA, "tok512.bin")

GGML_Q4_0 = 2
FILE_TYPE = {"F32": 0, "Q4_0": 2, "Q8_0": 7}  # llama_ftype: ALL_F32, MOSTLY_Q4_0, MOSTLY_Q8_0
_INPUT = {"wq": "rms_att", "wk": "rms_att", "wv": "rms_att", "w1": "rms_ffn", "w3": "rms_ffn"}

# ----------------------------------------------------------------------------------------------
# rotated twin
# ----------------------------------------------------------------------------------------------


def random_orthogonal(d, seed):
    """Haar-random orthogonal d x d (float64): QR of a standard Gaussian, columns' signs fixed by diag(R)."""
    a = np.random.default_rng(seed).standard_normal((d, d))
    q, r = np.linalg.qr(a)
    return q * np.where(np.diag(r) < 0, -1.0, 1.0)[None, :]


def rotate_llama2c(cfg, w, q):
    """llama2.c arrays (read_llama2c's names) -> the rotated, gain-folded arrays in float64 (classifier
    untied: 'wcls' is its own array)."""
    w = {k: np.asarray(v, dtype=np.float64) for k, v in w.items()}
    qt = q.T
    out = {"tok_embeddings": w["tok_embeddings"] @ qt}
    for name, norm in _INPUT.items():  # [L, out, in] * gain[L, 1, in], then @ Q^T
        out[name] = (w[name] * w[norm][:, None, :]) @ qt
    out["wo"] = q @ w["wo"]  # broadcast over layers: Q [d,d] @ [L, d, in]
    out["w2"] = q @ w["w2"]
    out["wcls"] = (w["wcls"] * w["rms_final"][None, :]) @ qt
    out["rms_att"] = np.ones_like(w["rms_att"])
    out["rms_ffn"] = np.ones_like(w["rms_ffn"])
    out["rms_final"] = np.ones_like(w["rms_final"])
    return out


def as_gguf_weights(cfg, w):
    """llama2.c-named arrays -> hf.GGUFWeights (GGUF names, float64, metadata as hf.llama2c_weights), the
    input of hf.reference_forward_llama2c_layout."""
    ref = hf.GGUFWeights()
    ref.metadata = dict(_metadata_of(cfg))
    ref.types = {}
    cfg = dict(cfg, shared_classifier=False)
    for name, a in hf._llama2c_gguf_tensors(cfg, w, include_output=True):
        ref[name] = np.asarray(a, dtype=np.float64)
        ref.types[name] = "F64"
    return ref


def _metadata_of(cfg):
    # hf.llama2c_weights' metadata (the same model sizes), without re-reading a file
    hs = cfg["dim"] // cfg["n_heads"]
    return {"general.architecture": "llama", "llama.embedding_length": cfg["dim"],
            "llama.block_count": cfg["n_layers"], "llama.feed_forward_length": cfg["hidden_dim"],
            "llama.attention.head_count": cfg["n_heads"], "llama.attention.head_count_kv": cfg["n_kv_heads"],
            "llama.rope.dimension_count": hs, "llama.context_length": cfg["seq_len"],
            "llama.attention.layer_norm_rms_epsilon": float(np.float32(1e-5)), "llama.rope.freq_base": 10000.0}


def rotated_weights(src_bin=STORIES, seed=0):
    """(Q, original hf.GGUFWeights, rotated-twin hf.GGUFWeights), all float64 (the twin before the float32
    rounding of its file), for hf.reference_forward_llama2c_layout."""
    cfg, w = hf.read_llama2c(src_bin)
    q = random_orthogonal(cfg["dim"], seed)
    return q, hf.llama2c_weights(src_bin), as_gguf_weights(cfg, rotate_llama2c(cfg, w, q))


def hf_state_float64(weights, cfg_hf):
    """GGUF-named float64 weights (llama2.c q/k order) -> a (config, torch float64 state dict) pair for
    hf.reference_forward(..., model=pair): q/k rows permuted as hf.llama2c_to_hf_tensors does (transformers'
    convert_llama_weights_to_hf.py permute), kept in float64."""
    import torch
    heads, kvh, dim = cfg_hf["num_attention_heads"], cfg_hf["num_key_value_heads"], cfg_hf["hidden_size"]

    def permute(m, n_heads):
        d1, d2 = m.shape
        return m.reshape(n_heads, d1 // n_heads // 2, 2, d2).transpose(0, 2, 1, 3).reshape(d1, d2)

    t = {"model.embed_tokens.weight": weights["token_embd.weight"], "model.norm.weight": weights["output_norm.weight"],
         "lm_head.weight": weights["output.weight"]}
    for l in range(cfg_hf["num_hidden_layers"]):
        p, b = f"model.layers.{l}.", f"blk.{l}."
        t[p + "input_layernorm.weight"] = weights[b + "attn_norm.weight"]
        t[p + "self_attn.q_proj.weight"] = permute(weights[b + "attn_q.weight"], heads)
        t[p + "self_attn.k_proj.weight"] = permute(weights[b + "attn_k.weight"], kvh)
        t[p + "self_attn.v_proj.weight"] = weights[b + "attn_v.weight"]
        t[p + "self_attn.o_proj.weight"] = weights[b + "attn_output.weight"]
        t[p + "post_attention_layernorm.weight"] = weights[b + "ffn_norm.weight"]
        t[p + "mlp.gate_proj.weight"] = weights[b + "ffn_gate.weight"]
        t[p + "mlp.down_proj.weight"] = weights[b + "ffn_down.weight"]
        t[p + "mlp.up_proj.weight"] = weights[b + "ffn_up.weight"]
    assert dim == t["model.embed_tokens.weight"].shape[1]
    cfg = dict(cfg_hf, tie_word_embeddings=False)
    return cfg, {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float64)) for k, v in t.items()}


def hf_config_of(src_bin):
    """config.json of hf.write_hf_from_llama2c for src_bin (written to a scratch directory, then read)."""
    import json
    cfg, _ = hf.read_llama2c(src_bin)
    with tempfile.TemporaryDirectory() as d:
        # write_hf_from_llama2c writes weights too; stories260K's are 1 MB, cheap
        hf.write_hf_from_llama2c(src_bin, d)
        with open(os.path.join(d, "config.json")) as f:
            return json.load(f)


def write_llama2c_untied(path, cfg, w, freq_cis):
    """A llama2.c legacy (v0) checkpoint with a negative vocab_size: the classifier 'wcls' stored after
    freq_cis (run.c's memory_map_weights with shared_weights = 0). Arrays are written as float32."""
    header = struct.pack("<7i", cfg["dim"], cfg["hidden_dim"], cfg["n_layers"], cfg["n_heads"], cfg["n_kv_heads"],
                         -cfg["vocab_size"], cfg["seq_len"])
    order = ["tok_embeddings", "rms_att", "wq", "wk", "wv", "wo", "rms_ffn", "w1", "w2", "w3", "rms_final"]
    with open(path, "wb") as f:
        f.write(header)
        for name in order:
            f.write(np.ascontiguousarray(w[name], dtype="<f4").tobytes())
        f.write(freq_cis)
        f.write(np.ascontiguousarray(w["wcls"], dtype="<f4").tobytes())


def _freq_cis_bytes(src_bin, cfg):
    """The source file's freq_cis_real/imag bytes (llama2.c writes them; readers recompute them)."""
    d, h, L, kv = cfg["dim"], cfg["hidden_dim"], cfg["n_layers"], cfg["dim"] // cfg["n_heads"] * cfg["n_kv_heads"]
    floats = cfg["vocab_size"] * d + L * d + L * d * d + 2 * L * kv * d + L * d * d + L * d + 3 * L * h * d + d
    n = cfg["seq_len"] * (d // cfg["n_heads"]) * 4
    with open(src_bin, "rb") as f:
        f.seek(28 + 4 * floats)
        return f.read(n)


def write_rotated_twin(src_bin, out, seed=0):
    """Write the rotated twin of the llama2.c checkpoint src_bin; returns Q (float64 d x d, x' = Q x).

    out ending in .bin: a llama2.c legacy checkpoint, vocab_size negative (untied classifier after
    freq_cis); otherwise a Hugging Face directory (hf.write_hf_from_llama2c of that checkpoint:
    tie_word_embeddings false, lm_head.weight). Weights are stored as float32.
    """
    cfg, w = hf.read_llama2c(src_bin)
    q = random_orthogonal(cfg["dim"], seed)
    rot = rotate_llama2c(cfg, w, q)
    if out.endswith(".bin"):
        write_llama2c_untied(out, cfg, rot, _freq_cis_bytes(src_bin, cfg))
    else:
        with tempfile.TemporaryDirectory() as d:
            tmp = os.path.join(d, "twin.bin")
            write_llama2c_untied(tmp, cfg, rot, _freq_cis_bytes(src_bin, cfg))
            hf.write_hf_from_llama2c(tmp, out)
    return q


# ----------------------------------------------------------------------------------------------
# quantized twins
# ----------------------------------------------------------------------------------------------


def quantize_q4_0(m):
    """Rows of m (row length a multiple of 32) -> Q4_0 bytes, per block f16 d then 16 bytes of nibbles;
    gguf-py's Q4_0.quantize_blocks (its float32 input, argmax of |x|, d = max / -8, the float64
    multiply-add then trunc as float32 noted there as the reference's FMA-dependent rounding)."""
    blocks = np.ascontiguousarray(m, dtype=np.float32).reshape(-1, 32)
    n_blocks = blocks.shape[0]
    imax = np.abs(blocks).argmax(axis=-1, keepdims=True)
    mx = np.take_along_axis(blocks, imax, axis=-1)
    d = mx / -8
    with np.errstate(divide="ignore"):
        inv = np.where(d == 0, 0, 1 / d)
    qs = np.trunc((np.float64(blocks) * np.float64(inv)) + np.float64(8.5), dtype=np.float32).astype(np.uint8).clip(0, 15)
    qs = qs.reshape((n_blocks, 2, 16))
    qs = qs[..., 0, :] | (qs[..., 1, :] << np.uint8(4))
    return np.concatenate([d.astype(np.float16).view(np.uint8), qs], axis=-1).tobytes()


def dequantize_q4_0(raw, n):
    """Q4_0 bytes -> n float32 values (gguf-py's Q4_0.dequantize_blocks)."""
    b = np.frombuffer(raw, dtype=np.uint8, count=n // 32 * 18).reshape(-1, 18)
    d = b[:, :2].copy().view(np.float16).astype(np.float32)
    qs = b[:, 2:]
    q = np.concatenate([qs & np.uint8(0x0F), qs >> np.uint8(4)], axis=1).astype(np.int8) - np.int8(8)
    return (d * q.astype(np.float32)).reshape(-1)


QUANT = {"Q8_0": (hf.GGML_Q8_0, hf.quantize_q8_0, hf.dequantize_q8_0),
         "Q4_0": (GGML_Q4_0, quantize_q4_0, dequantize_q4_0)}


def round_trip(m, qtype):
    """m (float32, rows a multiple of 32) quantized and dequantized: the values the twin's file holds."""
    _, quant, dequant = QUANT[qtype]
    m = np.ascontiguousarray(m, dtype=np.float32)
    return dequant(quant(m), m.size).reshape(m.shape)


def _blockable(dims):
    return len(dims) == 2 and dims[0] % 32 == 0  # ggml dims fastest first: dims[0] is the row length


def quantized_weights(src_bin=STORIES, qtype="Q8_0"):
    """hf.GGUFWeights (float64) the quantized twin's file holds, dequantized: the reference's input.
    .types says which tensors are quantized."""
    qtype = qtype.upper()
    ref = hf.llama2c_weights(src_bin)
    for name in list(ref):
        a = ref[name]
        if a.ndim == 2 and a.shape[1] % 32 == 0:
            ref[name] = round_trip(a.astype(np.float32), qtype).astype(np.float64)
            ref.types[name] = qtype
    return ref


def write_quantized_twin(src_bin, out_path, qtype="Q8_0", tokenizer=TOK512, version=3):
    """A GGUF of src_bin with every blockable matrix in qtype (Q8_0 or Q4_0; others F32).

    Written as hf.write_gguf_from_llama2c(qtype="F32", tokenizer=...) then re-encoded: the same metadata
    (general.file_type set to the qtype's, general.quantization_version 2 added after it, as that writer
    does for Q8_0) and tensor order. For Q8_0 the result is byte-identical to
    hf.write_gguf_from_llama2c(qtype="Q8_0"). Returns {tensor name: 'F32' or qtype}.
    """
    qtype = qtype.upper()
    if qtype not in QUANT:
        raise ValueError(f"qtype {qtype!r}: Q8_0 or Q4_0")
    gtype, quant, _ = QUANT[qtype]
    with tempfile.TemporaryDirectory() as d:
        f32 = os.path.join(d, "f32.gguf")
        hf.write_gguf_from_llama2c(src_bin, f32, qtype="F32", version=version, tokenizer=tokenizer)
        ver, meta, tensors = hf.read_gguf(f32, typed=True)
    new_meta = []
    for key, vt, value in meta:
        if key == "general.file_type":
            new_meta.append((key, vt, FILE_TYPE[qtype]))
            new_meta.append(("general.quantization_version", hf.GGUF_UINT32, 2))
        else:
            new_meta.append((key, vt, value))
    out, types = [], {}
    for name, dims, gt, raw in tensors:
        if gt == hf.GGML_F32 and _blockable(dims):
            a = np.frombuffer(raw, dtype="<f4").reshape(tuple(reversed(dims)))
            out.append((name, dims, gtype, quant(a)))
            types[name] = qtype
        else:
            out.append((name, dims, gt, raw))
            types[name] = hf._GGML_NAMES.get(gt, str(gt))
    align = next((v for k, _, v in meta if k == "general.alignment"), 32)
    hf.write_gguf(out_path, new_meta, out, version=ver, alignment=align)
    return types


# ----------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------


def _main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("rotated", help="rotated, gain-folded, untied twin (OUT.bin: llama2.c; else a HF directory)")
    a.add_argument("out")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--src", default=STORIES)
    a = sub.add_parser("quantized", help="Q8_0 / Q4_0 GGUF twin")
    a.add_argument("out")
    a.add_argument("--qtype", default="Q8_0", choices=sorted(QUANT))
    a.add_argument("--src", default=STORIES)
    a.add_argument("--tokenizer", default=TOK512, help="llama2.c tokenizer.bin embedded as tokenizer.ggml.*")
    a = sub.add_parser("all", help="every twin jobs/cross_model_study*.toml reads, into one folder "
                                   "(stories260K_rotated.bin, stories260K_q8_0.gguf, stories260K_q4_0.gguf)")
    a.add_argument("out_dir")
    a.add_argument("--seed", type=int, default=1)
    a.add_argument("--src", default=STORIES)
    a.add_argument("--tokenizer", default=TOK512)
    args = ap.parse_args(argv)
    parent = os.path.dirname(os.path.abspath(args.out_dir if args.cmd == "all" else args.out))
    os.makedirs(parent, exist_ok=True)
    if args.cmd == "all":
        os.makedirs(args.out_dir, exist_ok=True)
        _main(["rotated", os.path.join(args.out_dir, "stories260K_rotated.bin"), "--seed", str(args.seed), "--src", args.src])
        for q in ("Q8_0", "Q4_0"):
            _main(["quantized", os.path.join(args.out_dir, f"stories260K_{q.lower()}.gguf"), "--qtype", q,
                   "--src", args.src, "--tokenizer", args.tokenizer])
        return
    if args.cmd == "rotated":
        q = write_rotated_twin(args.src, args.out, args.seed)
        qpath = args.out + ".Q.npy" if args.out.endswith(".bin") else os.path.join(args.out, "rotation.npy")
        np.save(qpath, q)
        print(f"{args.out}: rotated twin (seed {args.seed}); Q (float64, x' = Q x) in {qpath}")
    else:
        types = write_quantized_twin(args.src, args.out, args.qtype, args.tokenizer)
        nq = sum(t == args.qtype for t in types.values())
        print(f"{args.out}: {nq} of {len(types)} tensors {args.qtype}, others "
              f"{sorted(set(types.values()) - {args.qtype})}: {sorted(k for k, t in types.items() if t != args.qtype)}")


if __name__ == "__main__":
    _main()
