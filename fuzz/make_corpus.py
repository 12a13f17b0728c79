"""Writes the fuzz targets' seed corpora (fuzz/corpus/<target>/): small valid inputs of every parser, so
that fuzzing starts from files that get past the first checks. Run with Debian's python3 (numpy, and
torch for scripts/hf_models.py's GGUF writer):

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
import hf_models as hf  # noqa: E402
import safetensors_np as st  # noqa: E402

SHARED = os.path.join(HERE, "..", "..", "shared", "data")


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


def gguf_llama(path, version, dim=32, hidden=64, layers=1, heads=4, kv_heads=2, vocab=64, tied=False, all_f32=False):
    """A tiny llama GGUF that lm::LanguageModel loads: matrices in Q8_0, F16, F32 and BF16 (all F32 when
    all_f32), norms F32, the llama.* keys, a vocabulary in tokenizer.ggml.*; the untied output unless tied."""
    rng = np.random.default_rng(version)
    hs, kv = dim // heads, dim // heads * kv_heads

    def raw(a, gtype):
        a = np.ascontiguousarray(a, dtype=np.float32)
        if gtype == hf.GGML_Q8_0:
            return hf.quantize_q8_0(a)
        if gtype == hf.GGML_F16:
            return a.astype("<f2").tobytes()
        if gtype == hf.GGML_BF16:
            return hf.f32_to_bf16_bits(a).tobytes()
        return a.astype("<f4").tobytes()

    shapes = [("token_embd.weight", (vocab, dim), hf.GGML_Q8_0)]
    for l in range(layers):
        p = f"blk.{l}."
        shapes += [(p + "attn_norm.weight", (dim,), hf.GGML_F32), (p + "ffn_norm.weight", (dim,), hf.GGML_F32),
                   (p + "attn_q.weight", (dim, dim), hf.GGML_Q8_0), (p + "attn_k.weight", (kv, dim), hf.GGML_F16),
                   (p + "attn_v.weight", (kv, dim), hf.GGML_F16), (p + "attn_output.weight", (dim, dim), hf.GGML_F32),
                   (p + "ffn_gate.weight", (hidden, dim), hf.GGML_Q8_0), (p + "ffn_up.weight", (hidden, dim), hf.GGML_F16),
                   (p + "ffn_down.weight", (dim, hidden), hf.GGML_BF16)]
    shapes.append(("output_norm.weight", (dim,), hf.GGML_F32))
    if not tied:
        shapes.append(("output.weight", (vocab, dim), hf.GGML_Q8_0))
    tensors = [(name, list(reversed(shape)), hf.GGML_F32 if all_f32 else gtype,
                raw(rng.standard_normal(shape) * 0.1, hf.GGML_F32 if all_f32 else gtype)) for name, shape, gtype in shapes]
    meta = [("general.architecture", hf.GGUF_STRING, "llama"), ("general.alignment", hf.GGUF_UINT32, 32),
            ("llama.context_length", hf.GGUF_UINT32, 16), ("llama.embedding_length", hf.GGUF_UINT32, dim),
            ("llama.block_count", hf.GGUF_UINT32, layers), ("llama.feed_forward_length", hf.GGUF_UINT32, hidden),
            ("llama.rope.dimension_count", hf.GGUF_UINT32, hs), ("llama.rope.freq_base", hf.GGUF_FLOAT32, 10000.0),
            ("llama.attention.head_count", hf.GGUF_UINT32, heads), ("llama.attention.head_count_kv", hf.GGUF_UINT32, kv_heads),
            ("llama.attention.layer_norm_rms_epsilon", hf.GGUF_FLOAT32, 1e-5),
            ("tokenizer.ggml.model", hf.GGUF_STRING, "llama"),
            ("tokenizer.ggml.tokens", hf.GGUF_ARRAY, (hf.GGUF_STRING, ["<unk>", "<s>", "</s>"] + [chr(97 + i % 26) * (1 + i // 26) for i in range(vocab - 3)])),
            ("tokenizer.ggml.scores", hf.GGUF_ARRAY, (hf.GGUF_FLOAT32, [-float(i) for i in range(vocab)])),
            ("tokenizer.ggml.bos_token_id", hf.GGUF_UINT32, 1), ("tokenizer.ggml.eos_token_id", hf.GGUF_UINT32, 2)]
    if version >= 2:
        meta.append(("llama.rope.scaling.type", hf.GGUF_STRING, "linear"))
        meta.append(("llama.rope.scaling.factor", hf.GGUF_FLOAT32, 2.0))
        tensors.append(("rope_freqs.weight", [hs // 2], hf.GGML_F32, np.ones(hs // 2, dtype="<f4").tobytes()))
    hf.write_gguf(path, meta, tensors, version=version)


def gguf_every_type(path):
    """A GGUF for the reader alone (no model): every metadata value type, nested arrays, and a tensor of
    each type it dequantizes (Q4_0, Q4_K, Q6_K: random blocks with small scales) and one it only lists."""
    rng = np.random.default_rng(7)

    def blocks(n_blocks, block_bytes, scale_at):
        b = rng.integers(0, 256, (n_blocks, block_bytes), dtype=np.uint8)
        for at in scale_at:  # f16 scales of 0.01, not random bits (NaN, inf)
            b[:, at:at + 2] = np.frombuffer(np.float16(0.01).tobytes(), dtype=np.uint8)
        return b.tobytes()

    meta = [("general.architecture", hf.GGUF_STRING, "test"), ("u8", hf.GGUF_UINT8, 255), ("i8", hf.GGUF_INT8, -1),
            ("u16", hf.GGUF_UINT16, 65535), ("i16", hf.GGUF_INT16, -2), ("u32", hf.GGUF_UINT32, 7), ("i32", hf.GGUF_INT32, -3),
            ("f32", hf.GGUF_FLOAT32, 0.5), ("bool", hf.GGUF_BOOL, True), ("u64", hf.GGUF_UINT64, 2**64 - 1),
            ("i64", hf.GGUF_INT64, -2**63), ("f64", hf.GGUF_FLOAT64, 1e300),
            ("strings", hf.GGUF_ARRAY, (hf.GGUF_STRING, ["a", "b" * 70, "\x1b[31m"])),
            ("ints", hf.GGUF_ARRAY, (hf.GGUF_INT32, list(range(10)))),
            ("nested", hf.GGUF_ARRAY, (hf.GGUF_ARRAY, [(hf.GGUF_UINT8, [1, 2]), (hf.GGUF_ARRAY, [(hf.GGUF_BOOL, [False])])]))]
    tensors = [("q4_0", [32, 2], 2, blocks(2, 18, [0])), ("q4_k", [256], 12, blocks(1, 144, [0, 2])),
               ("q6_k", [256], 14, blocks(1, 210, [208])), ("q5_1", [32], 7, bytes(24)),
               ("bf16", [3, 1, 1, 1], hf.GGML_BF16, hf.f32_to_bf16_bits(np.array([1, -2, 3], dtype=np.float32)).tobytes()),
               ("empty", [0, 5], hf.GGML_F32, b"")]
    hf.write_gguf(path, meta, tensors, version=3, alignment=64)


def bytes_to_unicode():
    """GPT-2's byte-level alphabet: byte b -> one printable character."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + list(range(ord("\xae"), ord("\xff") + 1))
    cs = bs[:]
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + len(cs) - 188)  # the 68 other bytes take 256, 257, ... in byte order
    return dict(zip(bs, map(chr, cs)))


def bpe(vocab, merges, **model):
    """model.vocab and model.merges with every merge's result added to the vocabulary."""
    vocab = dict(vocab)
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    return dict({"type": "BPE", "dropout": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False},
                vocab=vocab, merges=[f"{a} {b}" for a, b in merges], **model)


def added(content, id, normalized, **flags):
    return dict({"id": id, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
                 "normalized": normalized, "special": True}, **flags)


def hf_tokenizers():
    """Small hand-made tokenizer.json files (256 byte pieces, a few merges, added tokens): GPT-2 style,
    Llama 3 style and sentencepiece style (Llama 2's normalizer, or the Metaspace pre-tokenizer)."""
    byte_char = bytes_to_unicode()
    byte_vocab = {byte_char[b]: b for b in range(256)}
    g = "\u0120"  # "Ġ", the byte-level space
    merges = [(g, "t"), ("h", "e"), (g + "t", "he"), ("i", "n"), (g, "a"), ("o", "n"), ("c", "e"), ("in", "g"),
              ("\u00c3", "\u00a9"), (g, g)]
    level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    gpt2 = bpe(byte_vocab, merges, unk_token=None, continuing_subword_prefix="", end_of_word_suffix="")
    n = len(gpt2["vocab"])
    yield "gpt2", {"version": "1.0", "added_tokens": [added("<|endoftext|>", n, True)], "normalizer": {"type": "NFC"},
                   "pre_tokenizer": level, "post_processor": None, "decoder": level, "model": gpt2}
    llama3 = bpe(byte_vocab, merges, ignore_merges=True)
    n = len(llama3["vocab"])
    split = {"type": "Split", "pattern": {"Regex": "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?"
                                                   "[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
             "behavior": "Isolated", "invert": False}
    yield "llama3", {"version": "1.0", "added_tokens": [added("<|begin_of_text|>", n, False), added("<|eot_id|>", n + 1, False, lstrip=True),
                                                        added("  ", n + 2, True, special=False, single_word=True)],
                     "normalizer": None, "pre_tokenizer": {"type": "Sequence", "pretokenizers": [split, dict(level, use_regex=False)]},
                     "post_processor": None, "decoder": level, "model": llama3}
    s = "\u2581"  # "▁", sentencepiece's space
    pieces = {"<unk>": 0, "<s>": 1, "</s>": 2}
    pieces.update({"<0x%02X>" % b: 3 + b for b in range(256)})
    for ch in s + "theaoncigrl":
        pieces[ch] = len(pieces)
    spm_merges = [(s, "t"), ("h", "e"), (s + "t", "he"), ("o", "n"), (s, "a"), ("i", "n"), ("in", "g"), (s, s)]
    spm = bpe(pieces, spm_merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True)
    specials = [added("<unk>", 0, False), added("<s>", 1, False), added("</s>", 2, False)]
    yield "llama2", {"version": "1.0", "added_tokens": specials,
                     "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": s},
                                                                        {"type": "Replace", "pattern": {"String": " "}, "content": s}]},
                     "pre_tokenizer": None, "post_processor": None,
                     "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": s}, "content": " "},
                                                                  {"type": "ByteFallback"}, {"type": "Fuse"},
                                                                  {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
                     "model": spm}
    metaspace = {"type": "Metaspace", "replacement": s, "prepend_scheme": "first", "split": False}
    yield "metaspace", {"version": "1.0", "added_tokens": specials, "normalizer": None, "pre_tokenizer": metaspace,
                        "post_processor": None, "decoder": metaspace, "model": spm}


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

    gguf = os.path.join(HERE, "corpus", "gguf")
    os.makedirs(gguf, exist_ok=True)
    gguf_llama(os.path.join(gguf, "tiny_llama_v3.gguf"), 3)
    gguf_llama(os.path.join(gguf, "tiny_llama_v1_f32_tied.gguf"), 1, dim=16, hidden=32, heads=2, kv_heads=2, vocab=16,
               tied=True, all_f32=True)
    gguf_every_type(os.path.join(gguf, "every_type.gguf"))

    # hf_tokenizer: bytes 0-1 = len(tokenizer.json), tokenizer.json, then the text to encode.
    text = "Hello  the thing\n\tcaf\u00e9 \u2581x 1234 it's <s>ok</s><|endoftext|> <|eot_id|>\U0001F999".encode() + b" \xff\xe2\x82"
    for name, spec in hf_tokenizers():
        data = json.dumps(spec, ensure_ascii=False).encode()
        put("hf_tokenizer", name, struct.pack("<H", len(data)) + data + text)

    # hf_config: config.json beside tiny-random-llama-2's model.safetensors.
    with open(os.path.join(SHARED, "hf", "tiny-random-llama-2", "config.json"), "rb") as fh:
        config = fh.read()
    put("hf_config", "tiny_random_llama_2.json", config)
    llama = json.loads(config)
    put("hf_config", "llama3_rope.json", json.dumps(dict(llama, head_dim=4, rope_scaling={
        "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 64}, eos_token_id=[2, 1], mlp_bias=False)))
    put("hf_config", "mistral.json", json.dumps(dict(llama, model_type="mistral", sliding_window=4, hidden_act="gelu",
                                                     rope_scaling={"type": "linear", "factor": 2.0})))
    put("hf_config", "gpt_neox.json", json.dumps({"model_type": "gpt_neox", "hidden_size": 16, "intermediate_size": 64,
                                                  "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 3000,
                                                  "max_position_embeddings": 256, "rotary_pct": 0.5, "hidden_act": "gelu_new",
                                                  "use_parallel_residual": False, "tie_word_embeddings": True}))

    # inspect: FuzzedDataProvider takes integers from the end, so the last byte picks the kind of file
    # (store, SAE, results, checkpoint, other); the rest decides its objects. Its own generator keeps the
    # corpora above unchanged.
    kinds = np.random.default_rng(23)
    for kind, name in enumerate(("store", "sae", "results", "checkpoint", "other")):
        for i in range(2):
            data = bytearray(kinds.integers(0, 256, 384, dtype=np.uint8).tobytes())
            data[-1] = kind
            put("inspect", f"{name}{i}", bytes(data))


if __name__ == "__main__":
    main()
