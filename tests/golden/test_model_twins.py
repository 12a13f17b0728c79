"""Golden: known-answer twins of stories260K (scripts/model_twins.py), written into a temporary directory.

1. Rotated twin: RMSNorm gains folded into the matrices after them, the residual stream turned by a seeded
   random orthogonal Q, the classifier untied. Exact in real arithmetic: the logits are the original's and
   every residual-stream activation x becomes Q x.
   (a) float64 torch reference (scripts/hf_models.py reference_forward) on real TinyStories sequences:
       the twin's float64 weights give the original's logits to float64 rounding (<= 1e-12 relative), and
       the float32 weights the files hold to float32 rounding;
   (b) `universae extract` of the original and of the twin -- as a llama2.c legacy checkpoint with a negative
       vocab_size (untied classifier after freq_cis) and as a Hugging Face directory (lm_head.weight) --
       stores the same tokens, twin residual stream = original @ Q^T, the MLP hidden and the loss unchanged;
       `universae generate` gives the same greedy token ids.
2. Quantized twins: every blockable matrix round-tripped through Q8_0 and through Q4_0 (gguf-py's
   quantization ported in model_twins.py; the Q4_0 one also checked against ggml's C reference rounding),
   GGUF v3. universae's stores equal a numpy dequantize-then-forward reference of the same file (its Q4_0
   reader is right), and the logits (the final norm and classifier applied to universae's last residual)
   against the original's: mean KL and top-1 agreement, printed and held to loose bounds.
"""
import json
import os
import sys
import tempfile
import time
import unittest

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
from universae_test import SCRIPTS, SOURCE, set_args, universae  # noqa: E402

sys.path.insert(0, SCRIPTS)
import hf_models as hf  # noqa: E402
import model_twins as mt  # noqa: E402

DATA = os.path.join(SOURCE, "..", "shared", "data")
STORIES = os.path.join(DATA, "stories260K.bin")
TOK512 = os.path.join(DATA, "tok512.bin")
TEXT = os.path.join(DATA, "tinystories_val_794k.txt")
SEED = 20240611
LAST = 4  # stories260K's last block
ROTATED_HOOKS = ["blocks.1.hook_resid_post", "blocks.4.hook_resid_post"]  # x -> Q x
INVARIANT_HOOKS = ["blocks.2.mlp.hook_post"]  # unchanged
FIGURES = {}  # printed at the end


def extract(out, model):
    os.makedirs(out, exist_ok=True)
    cfg = os.path.join(out, "extract.toml")
    with open(cfg, "w") as f:
        f.write(f'[extract]\nmodel = "{model}"\ntokenizer = "{TOK512}"\ninputs = ["{TEXT}"]\n'
                f"hookpoints = {json.dumps(ROTATED_HOOKS + INVARIANT_HOOKS)}\n"
                "max_documents = 2\nseq_len = 64\nbatch_tokens = 512\n")
    universae(["extract", cfg, *set_args([f"run.output_dir={out}"])], timeout=300, check=True)
    return h5py.File(os.path.join(out, "activations.h5"), "r")


def sequences(store):
    tokens, so = store["tokens"][()], store["seq_offsets"][()]
    return [tokens[so[i]:so[i + 1]].tolist() for i in range(len(so) - 1)]


def worst_relative(got, want):
    """max |got - want| / max(1, max |want|)."""
    return float(np.abs(np.asarray(got, np.float64) - want).max() / max(1.0, np.abs(want).max()))


def greedy_ids(model, steps=200):
    proc = universae(["generate", "--model", model, "--prompt-ids", "1", "--print-ids", "--steps", str(steps)],
                     timeout=120, check=True)
    return [int(t) for t in proc.stdout.split()]


def logits_from_residual(x, weights, eps=float(np.float32(1e-5))):
    """The final RMSNorm and classifier of `weights` (hf.GGUFWeights, float64) on a residual [T, d]."""
    x = np.asarray(x, np.float64)
    xf = weights["output_norm.weight"] * x / np.sqrt((x * x).mean(-1, keepdims=True) + eps)
    return xf @ weights.get("output.weight", weights["token_embd.weight"]).T


def kl_top1(p_logits, q_logits):
    """Mean KL(P || Q) in nats over rows and the fraction of rows with the same argmax."""
    lp = torch.log_softmax(torch.from_numpy(p_logits), -1)
    lq = torch.log_softmax(torch.from_numpy(q_logits), -1)
    kl = (lp.exp() * (lp - lq)).sum(-1)
    return float(kl.mean()), float(kl.max()), float((lp.argmax(-1) == lq.argmax(-1)).double().mean())


class Twins(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.t0 = time.time()
        cls.tmp = tempfile.TemporaryDirectory()
        t = cls.tmp.name
        cls.rot_bin = os.path.join(t, "rotated.bin")
        cls.rot_hf = os.path.join(t, "rotated-hf")
        cls.q = mt.write_rotated_twin(STORIES, cls.rot_bin, SEED)
        q_hf = mt.write_rotated_twin(STORIES, cls.rot_hf, SEED)
        assert np.array_equal(cls.q, q_hf), "the seed fixes Q"
        cls.quant = {}
        for qtype in ("Q8_0", "Q4_0"):
            cls.quant[qtype] = os.path.join(t, f"stories260K_{qtype}.gguf")
            mt.write_quantized_twin(STORIES, cls.quant[qtype], qtype)
        cls.models = {"original": STORIES, "rotated llama2.c": cls.rot_bin, "rotated hf": cls.rot_hf,
                      **{qtype: p for qtype, p in cls.quant.items()}}
        cls.stores = {name: extract(os.path.join(t, name.replace(" ", "_")), path) for name, path in cls.models.items()}
        cls.seqs = sequences(cls.stores["original"])

    @classmethod
    def tearDownClass(cls):
        for f in cls.stores.values():
            f.close()
        cls.tmp.cleanup()
        FIGURES["setup + tests, seconds"] = round(time.time() - cls.t0, 1)

    # ---- 1. rotated twin ----------------------------------------------------------------------

    def test_rotation_is_orthogonal_and_seeded(self):
        d = self.q.shape[0]
        self.assertEqual(self.q.dtype, np.float64)
        self.assertLess(np.abs(self.q @ self.q.T - np.eye(d)).max(), 1e-14)
        self.assertFalse(np.array_equal(mt.random_orthogonal(d, SEED + 1), self.q))
        cfg, w = hf.read_llama2c(self.rot_bin)
        self.assertFalse(cfg["shared_classifier"], "the twin's classifier is its own array (vocab_size < 0)")
        for norm in ("rms_att", "rms_ffn", "rms_final"):
            np.testing.assert_array_equal(w[norm], 1.0)
        with open(os.path.join(self.rot_hf, "config.json")) as f:
            self.assertIs(json.load(f)["tie_word_embeddings"], False)

    def test_float64_reference_logits_are_the_originals(self):
        seqs = self.seqs
        self.assertEqual(max(len(s) for s in seqs), 64)
        q, orig, twin = mt.rotated_weights(STORIES, SEED)
        self.assertTrue(np.array_equal(q, self.q))
        config = mt.hf_config_of(STORIES)
        ref = hf.reference_forward(None, seqs, torch.float64, model=mt.hf_state_float64(orig, config))
        got = hf.reference_forward(None, seqs, torch.float64, model=mt.hf_state_float64(twin, config))
        scale = np.abs(ref["logits"]).max()
        err = np.abs(got["logits"] - ref["logits"]).max()
        FIGURES["rotated float64 weights: max |logit diff| (torch float64)"] = f"{err:.2e} (logits up to {scale:.1f})"
        self.assertLessEqual(err, 1e-12 * scale)
        for hook in ("blocks.0.hook_resid_pre", "blocks.2.hook_resid_mid", "blocks.4.hook_resid_post"):
            self.assertLessEqual(worst_relative(got[hook], ref[hook] @ q.T), 1e-12, hook)
        for hook in ("blocks.0.mlp.hook_post", "blocks.3.mlp.hook_post"):
            self.assertLessEqual(worst_relative(got[hook], ref[hook]), 1e-12, hook)
        # The files hold float32 weights: the same logits to float32 rounding (forward still in float64).
        for name in ("rotated llama2.c", "rotated hf"):
            f32 = hf.forward_any(self.models[name], seqs)
            err32 = np.abs(f32["logits"] - ref["logits"]).max()
            FIGURES[f"{name} file (float32 weights): max |logit diff| (float64 forward)"] = f"{err32:.2e}"
            self.assertLessEqual(err32, 1e-5 * scale, name)

    def test_universae_stores_the_rotated_residual_stream(self):
        base = self.stores["original"]
        for name in ("rotated llama2.c", "rotated hf"):
            store = self.stores[name]
            np.testing.assert_array_equal(store["tokens"][()], base["tokens"][()])
            np.testing.assert_array_equal(store["seq_offsets"][()], base["seq_offsets"][()])
            self.assertEqual(store.attrs["token_sequence"], base.attrs["token_sequence"])
            for hook in ROTATED_HOOKS:
                want = base["activations"][hook][()].astype(np.float64) @ self.q.T
                err = worst_relative(store["activations"][hook][()], want)
                FIGURES[f"{name}: {hook} vs original @ Q^T (universae float32, relative)"] = f"{err:.2e}"
                self.assertLessEqual(err, 2e-5, f"{name} {hook}")
            for hook in INVARIANT_HOOKS:
                err = worst_relative(store["activations"][hook][()], base["activations"][hook][()])
                FIGURES[f"{name}: {hook} vs original (relative)"] = f"{err:.2e}"
                self.assertLessEqual(err, 2e-5, f"{name} {hook}")
            FIGURES[f"{name}: |loss - original loss|"] = f"{abs(store.attrs['loss'] - base.attrs['loss']):.2e}"
            self.assertAlmostEqual(store.attrs["loss"], base.attrs["loss"], delta=1e-5)
        FIGURES["stored tokens / sequences"] = f"{len(base['tokens'])} / {len(self.seqs)}"

    def test_greedy_generation_gives_the_same_ids(self):
        want = greedy_ids(STORIES)
        self.assertGreater(len(want), 100)
        self.assertEqual(greedy_ids(self.rot_bin), want)
        # A Hugging Face model stops at EOS, not at llama2.c's BOS: compare while the original runs.
        self.assertEqual(greedy_ids(self.rot_hf)[:len(want)], want)

    # ---- 2. quantized twins -------------------------------------------------------------------

    def test_q4_0_port_agrees_with_ggml_c_reference_and_bounds(self):
        cfg, w = hf.read_llama2c(STORIES)
        mats = np.concatenate([w["tok_embeddings"].reshape(-1, 32), w["wq"].reshape(-1, 32), w["w1"].reshape(-1, 32)])
        raw = np.frombuffer(mt.quantize_q4_0(mats), dtype=np.uint8).reshape(-1, 18)
        # ggml-quants.c quantize_row_q4_0_ref in float32: d = max/-8, id = 1/d, MIN(15, (int8_t)(x*id + 8.5f))
        x = mats.astype(np.float32)
        mx = np.take_along_axis(x, np.abs(x).argmax(-1)[:, None], -1)
        d = (mx / np.float32(-8)).astype(np.float32)
        inv = np.where(d == 0, np.float32(0), np.float32(1) / d).astype(np.float32)
        c_q = np.minimum(15, np.trunc((x * inv).astype(np.float32) + np.float32(8.5))).astype(np.uint8)
        mine = np.concatenate([raw[:, 2:] & 0x0F, raw[:, 2:] >> 4], axis=1)
        mismatched = int((mine != c_q).sum())
        FIGURES["Q4_0 nibbles differing from ggml's float32 C rounding"] = f"{mismatched} of {mine.size}"
        self.assertLessEqual(mismatched, mine.size // 10000)
        np.testing.assert_array_equal(raw[:, :2].copy().view(np.float16)[:, 0], d[:, 0].astype(np.float16))
        back = mt.dequantize_q4_0(raw.tobytes(), x.size).reshape(x.shape)
        step = np.abs(raw[:, :2].copy().view(np.float16).astype(np.float32))
        self.assertTrue(np.all(np.abs(back - x) <= step * 1.0 + np.abs(x) * 1e-3 + 1e-12))
        # Q8_0 through the twin writer is byte for byte hf_models' Q8_0 writer.
        with tempfile.TemporaryDirectory() as t:
            ref = os.path.join(t, "ref.gguf")
            hf.write_gguf_from_llama2c(STORIES, ref, qtype="Q8_0", tokenizer=TOK512)
            with open(ref, "rb") as a, open(self.quant["Q8_0"], "rb") as b:
                self.assertEqual(a.read(), b.read())

    def test_quantized_twins_logits_against_the_original(self):
        base = self.stores["original"]
        original = hf.llama2c_weights(STORIES)
        last = f"blocks.{LAST}.hook_resid_post"
        p = logits_from_residual(base["activations"][last][()], original)
        seqs = self.seqs
        # mean KL <, top-1 >, worst |dw| / max |w| of a tensor: Q8_0 half a step of amax/127, Q4_0 a whole step
        # of amax/8 (the clipped top nibble), each + the f16 rounding of d (2^-11 relative) times the largest q
        bounds = {"Q8_0": (0.01, 0.95, 0.5 / 127 + 2 ** -11), "Q4_0": (0.3, 0.6, 1 / 8 + 2 ** -11)}
        for qtype, path in self.quant.items():
            store = self.stores[qtype]
            np.testing.assert_array_equal(store["tokens"][()], base["tokens"][()])
            self.assertEqual(store.attrs["token_sequence"], base.attrs["token_sequence"])
            wq = mt.quantized_weights(STORIES, qtype)
            werr = max(float(np.abs(wq[k] - original[k]).max() / np.abs(original[k]).max()) for k in wq)
            self.assertLess(werr, bounds[qtype][2], qtype)
            # universae reads the file as the numpy dequantize-then-forward reads the same values
            ref = hf.reference_forward_llama2c_layout(wq, seqs)
            for hook in ROTATED_HOOKS + INVARIANT_HOOKS:
                err = worst_relative(store["activations"][hook][()], ref[hook])
                FIGURES[f"{qtype}: universae vs numpy dequantize-then-forward, {hook}"] = f"{err:.2e}"
                self.assertLessEqual(err, 2e-5, f"{qtype} {hook}")
            q_logits = logits_from_residual(store["activations"][last][()], wq)
            self.assertLessEqual(worst_relative(q_logits, ref["logits"]), 2e-5)
            kl, kl_max, top1 = kl_top1(p, q_logits)
            dloss = store.attrs["loss"] - base.attrs["loss"]
            FIGURES[f"{qtype}: mean KL(original || twin) nats / max / top-1 agreement / loss change / max |dw|/max|w|"] = \
                f"{kl:.3e} / {kl_max:.3e} / {top1:.4f} / {dloss:+.4f} / {werr:.2e}"
            self.assertLess(kl, bounds[qtype][0], qtype)
            self.assertGreater(top1, bounds[qtype][1], qtype)
        self.assertLess(abs(self.stores["Q8_0"].attrs["loss"] - base.attrs["loss"]),
                        abs(self.stores["Q4_0"].attrs["loss"] - base.attrs["loss"]) + 1e-3)


if __name__ == "__main__":
    try:
        unittest.main()
    finally:
        for k, v in FIGURES.items():
            print(f"{k}: {v}")
