#!/usr/bin/env python3
"""Independent numpy reference for llama2.c checkpoints and tokenizers (tests only).

Written from llama2.c's run.c semantics and ../shared/data/README.md, in float64, one sequence at
a time, with a token-by-token loop over positions (a KV cache, as run.c does), so it shares no
structure with universae's batched LibTorch forward:
  - encode(): run.c's quadratic merge loop (rescan every pair, merge the best, leftmost on ties);
  - forward(): RMSNorm (eps 1e-5), GQA attention with RoPE on adjacent pairs, SwiGLU MLP, final
    RMSNorm, logits = classifier · x; returns every hookpoint and the logits. `splice` {hookpoint:
    fn} replaces the activation there by fn(activation) at every position (an SAE's reconstruction,
    or zeros), as SAELens' run_with_hooks does; the hookpoint records the activation before it.
"""
import struct
import numpy as np


class Tokenizer:
    def __init__(self, path, vocab_size):
        with open(path, "rb") as f:
            data = f.read()
        (self.max_token_length,) = struct.unpack_from("<i", data, 0)
        off = 4
        self.pieces, self.scores = [], []
        for _ in range(vocab_size):
            score, n = struct.unpack_from("<fi", data, off)
            off += 8
            self.pieces.append(data[off:off + n])
            self.scores.append(score)
            off += n
        self.lookup = {}
        for i, p in enumerate(self.pieces):
            self.lookup.setdefault(p, i)

    def encode(self, text, bos=True, eos=False):
        raw = text.encode("utf-8")
        tokens = [1] if bos else []
        if raw:
            tokens.append(self.lookup.get(b" ", ord(" ") + 3))
        i = 0
        while i < len(raw):
            n = 1
            while i + n < len(raw) and n < 4 and (raw[i + n] & 0xC0) == 0x80:
                n += 1
            cp = raw[i:i + n]
            if cp in self.lookup:
                tokens.append(self.lookup[cp])
            else:
                tokens.extend(b + 3 for b in cp)
            i += n
        while True:
            best, best_id, best_i = -1e10, -1, -1
            for i in range(len(tokens) - 1):
                j = self.lookup.get(self.pieces[tokens[i]] + self.pieces[tokens[i + 1]], -1)
                if j != -1 and self.scores[j] > best:
                    best, best_id, best_i = self.scores[j], j, i
            if best_i == -1:
                break
            tokens[best_i:best_i + 2] = [best_id]
        if eos:
            tokens.append(2)
        return tokens


class Model:
    def __init__(self, path):
        with open(path, "rb") as f:
            data = f.read()
        dim, hidden, layers, heads, kv_heads, vocab, seq_len = struct.unpack_from("<7i", data, 0)
        self.shared = vocab > 0
        vocab = abs(vocab)
        self.dim, self.hidden, self.layers, self.heads, self.kv_heads, self.vocab, self.seq_len = (
            dim, hidden, layers, heads, kv_heads, vocab, seq_len)
        hs = dim // heads
        kv = kv_heads * hs
        f = np.frombuffer(data, dtype="<f4", offset=28).astype(np.float64)
        at = 0

        def take(*shape):
            nonlocal at
            n = int(np.prod(shape))
            a = f[at:at + n].reshape(shape)
            at += n
            return a

        self.emb = take(vocab, dim)
        self.rms_att = take(layers, dim)
        self.wq = take(layers, dim, dim)
        self.wk = take(layers, kv, dim)
        self.wv = take(layers, kv, dim)
        self.wo = take(layers, dim, dim)
        self.rms_ffn = take(layers, dim)
        self.w1 = take(layers, hidden, dim)
        self.w2 = take(layers, dim, hidden)
        self.w3 = take(layers, hidden, dim)
        self.rms_final = take(dim)
        at += seq_len * hs  # freq_cis_real and freq_cis_imag
        self.cls = self.emb if self.shared else take(vocab, dim)

    @staticmethod
    def rms(x, w):
        return w * (x / np.sqrt(np.mean(x * x) + 1e-5))

    def rope(self, v, pos):
        hs = self.dim // self.heads
        out = v.copy()
        for i in range(0, len(v), 2):
            freq = 1.0 / 10000.0 ** ((i % hs) / hs)
            c, s = np.cos(pos * freq), np.sin(pos * freq)
            out[i], out[i + 1] = v[i] * c - v[i + 1] * s, v[i] * s + v[i + 1] * c
        return out

    def forward(self, tokens, splice=None):
        """Hookpoints {name: [n, width]} and logits [n, vocab] for one sequence from position 0."""
        splice = splice or {}

        def at(name, v):
            hooks[name].append(v.copy())
            return splice[name](v) if name in splice else v

        hs = self.dim // self.heads
        kv_mul = self.heads // self.kv_heads
        n = len(tokens)
        hooks = {}
        names = ["hook_resid_pre", "hook_resid_mid", "mlp.hook_post", "hook_mlp_out", "hook_resid_post"]
        for l in range(self.layers):
            for name in names:
                hooks[f"blocks.{l}.{name}"] = []
        keys = [[] for _ in range(self.layers)]
        values = [[] for _ in range(self.layers)]
        logits = []
        for pos, tok in enumerate(tokens):
            x = self.emb[tok].copy()
            for l in range(self.layers):
                x = at(f"blocks.{l}.hook_resid_pre", x)
                a = self.rms(x, self.rms_att[l])
                q = self.rope(self.wq[l] @ a, pos)
                keys[l].append(self.rope(self.wk[l] @ a, pos))
                values[l].append(self.wv[l] @ a)
                K, V = np.array(keys[l]), np.array(values[l])
                out = np.zeros(self.dim)
                for h in range(self.heads):
                    g = h // kv_mul
                    qh = q[h * hs:(h + 1) * hs]
                    scores = K[:, g * hs:(g + 1) * hs] @ qh / np.sqrt(hs)
                    p = np.exp(scores - scores.max())
                    p /= p.sum()
                    out[h * hs:(h + 1) * hs] = p @ V[:, g * hs:(g + 1) * hs]
                x = at(f"blocks.{l}.hook_resid_mid", x + self.wo[l] @ out)
                m = self.rms(x, self.rms_ffn[l])
                h1 = self.w1[l] @ m
                post = at(f"blocks.{l}.mlp.hook_post", h1 / (1 + np.exp(-h1)) * (self.w3[l] @ m))
                mlp = at(f"blocks.{l}.hook_mlp_out", self.w2[l] @ post)
                x = at(f"blocks.{l}.hook_resid_post", x + mlp)
            logits.append(self.cls @ self.rms(x, self.rms_final))
        return {k: np.array(v) for k, v in hooks.items()}, np.array(logits)


def next_token_nll(logits, tokens):
    """Σ −log p(tokens[t+1] | ≤ t) and the count, in float64."""
    z = logits[:-1]
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(tokens) - 1), tokens[1:]].sum()), len(tokens) - 1
