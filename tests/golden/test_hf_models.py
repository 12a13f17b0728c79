"""Golden: every checkpoint format extraction reads, against references no part of universae wrote.

1. stories260K in three layouts -- the llama2.c file, the third-party GGUF (version 1) and a Hugging
   Face directory written from the llama2.c file with transformers' q/k row permutation
   (scripts/hf_models.py) -- gives the same store (<= 1e-5) and llama2.c's greedy text byte for byte.
2. A Q8_0 GGUF written by the script agrees with a numpy dequantize-then-forward reference.
3. Random-weight llama (grouped-query attention, llama3 rope scaling, untied), mistral (a sliding
   window shorter than the sequences), qwen2 (q/k/v biases, tied) and GPT-NeoX (Pythia-shaped:
   LayerNorm, partial rotary, parallel residual and sequential, fused qkv, old checkpoints' buffers)
   checkpoints: every hookpoint of every block and the loss against a float64 torch forward written
   from Hugging Face's modeling code (scripts/hf_models.py reference_forward).
4. Weights stored in bfloat16: float32 compute equals the reference on those weights; bfloat16
   compute stays close to it.
5. A GPT-NeoX checkpoint with the real GPT-NeoX tokenizer.json (50,277 tokens), extracted on 2 ranks.
"""
import json
import os
import sys
import tempfile
import unittest

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
from universae_test import SCRIPTS, SOURCE, set_args, universae  # noqa: E402

sys.path.insert(0, SCRIPTS)
import hf_models as hf  # noqa: E402

DATA = os.path.join(SOURCE, "..", "shared", "data")
STORIES = os.path.join(DATA, "stories260K.bin")
TOK512 = os.path.join(DATA, "tok512.bin")
TEXT = os.path.join(DATA, "tinystories_sample_cs336.txt")
WORST = {}  # case → the worst relative error over its hookpoints (printed at the end)
EVERY_HOOK = ["blocks.*.hook_resid_pre", "blocks.*.hook_resid_mid", "blocks.*.mlp.hook_post",
              "blocks.*.hook_mlp_out", "blocks.*.hook_resid_post"]


def extract(out, model, tokenizer=TOK512, ranks=None, *settings):
    os.makedirs(out, exist_ok=True)
    cfg = os.path.join(out, "extract.toml")
    with open(cfg, "w") as f:
        f.write(f'[extract]\nmodel = "{model}"\ntokenizer = "{tokenizer}"\ninputs = ["{TEXT}"]\n'
                f"hookpoints = {json.dumps(EVERY_HOOK)}\nseq_len = 160\nbatch_tokens = 400\n")
    universae(["extract", cfg, *set_args(list(settings) + [f"run.output_dir={out}"])], ranks=ranks, timeout=600,
              check=True)
    return h5py.File(os.path.join(out, "activations.h5"), "r")


def sequences(store):
    tokens, so = store["tokens"][()], store["seq_offsets"][()]
    return [tokens[so[i]:so[i + 1]].tolist() for i in range(len(so) - 1)]


def worst_relative(got, want):
    """max |got - want| / max(1, max |want|), and where."""
    err = np.abs(got.astype(np.float64) - want)
    return err.max() / max(1.0, np.abs(want).max()), np.unravel_index(err.argmax(), err.shape)


def reference_loss(logits, seqs):
    nll, count, at = 0.0, 0, 0
    for seq in seqs:
        lg = torch.from_numpy(np.asarray(logits[at:at + len(seq) - 1], dtype=np.float64))
        nll -= torch.log_softmax(lg, -1).gather(1, torch.tensor(seq[1:]).view(-1, 1)).sum().item()
        count, at = count + len(seq) - 1, at + len(seq)
    return nll / count


class StoreCase(unittest.TestCase):
    def assert_matches_reference(self, store, ref, tol, what):
        self.assertEqual(sorted(store["activations"]), sorted(k for k in ref if k.startswith("blocks.")))
        for hook in store["activations"]:
            err, where = worst_relative(store["activations"][hook][()], ref[hook])
            self.assertLess(err, tol, f"{what}: {hook} worst relative error {err:.2e} at row/column {where}")
            WORST[what] = max(WORST.get(what, 0.0), err)
        seqs = sequences(store)
        self.assertAlmostEqual(store.attrs["loss"], reference_loss(ref["logits"], seqs), delta=tol * 10,
                               msg=f"{what}: mean next-token loss")


class Stories260kLayouts(StoreCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        t = cls.tmp.name
        cls.hf_dir = os.path.join(t, "stories260K-hf")
        hf.write_hf_from_llama2c(STORIES, cls.hf_dir, dtype="F32", shards=2)
        cls.q8 = os.path.join(t, "stories260K_q8_0.gguf")
        hf.write_gguf_from_llama2c(STORIES, cls.q8, qtype="Q8_0", version=3)
        cls.models = {"llama2.c": STORIES, "gguf": os.path.join(DATA, "stories260K_f32.gguf"), "huggingface": cls.hf_dir}
        cls.stores = {name: extract(os.path.join(t, name), path) for name, path in cls.models.items()}

    @classmethod
    def tearDownClass(cls):
        for f in cls.stores.values():
            f.close()
        cls.tmp.cleanup()

    def test_three_layouts_give_the_same_store(self):
        base = self.stores["llama2.c"]
        self.assertGreater(len(base["seq_offsets"]) - 1, 5, "some story must be split into windows")
        for name in ("gguf", "huggingface"):
            other = self.stores[name]
            np.testing.assert_array_equal(other["tokens"][()], base["tokens"][()])
            # The same documents through the same tokenizer: the same token-sequence identity.
            self.assertEqual(other.attrs["token_sequence"], base.attrs["token_sequence"])
            self.assertEqual(other.attrs["tokenizer_identity"], base.attrs["tokenizer_identity"])
            for hook in base["activations"]:
                err, where = worst_relative(other["activations"][hook][()], base["activations"][hook][()])
                self.assertLessEqual(err, 1e-5, f"{name} {hook}: {err:.2e} at {where}")
            self.assertAlmostEqual(other.attrs["loss"], base.attrs["loss"], delta=1e-5)

    def test_greedy_text_is_llama2c_byte_for_byte_in_every_layout(self):
        with open(os.path.join(DATA, "expected_stdout.txt"), "rb") as f:
            expected = f.read()
        for name, path in self.models.items():
            proc = universae(["generate", "--model", path, "--tokenizer", TOK512, "--steps", "200"], timeout=300, text=False)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            self.assertEqual(proc.stdout, expected + b"\n", name)

    def test_print_ids_equals_the_reference_greedy_ids(self):
        want = hf.greedy(STORIES, [1, 403, 407], 40)[3:]
        for name, path in self.models.items():
            proc = universae(["generate", "--model", path, "--prompt-ids", "1,403,407", "--print-ids", "--steps", "40"],
                             timeout=120, check=True)
            self.assertEqual([int(x) for x in proc.stdout.split()], want, name)

    def test_q8_0_gguf_matches_numpy_dequantize_then_forward(self):
        with extract(os.path.join(self.tmp.name, "q8"), self.q8) as store:
            ref = hf.reference_forward_llama2c_layout(hf.gguf_dequantized_weights(self.q8), sequences(store))
            self.assertEqual(store.attrs["token_sequence"], self.stores["llama2.c"].attrs["token_sequence"])
            self.assert_matches_reference(store, ref, 1e-5, "Q8_0 GGUF")
            # Quantization moves the activations: the test would not pass against the F32 weights.
            f32 = self.stores["llama2.c"]["activations"]["blocks.4.hook_resid_post"][()]
            self.assertGreater(np.abs(store["activations"]["blocks.4.hook_resid_post"][()] - f32).max(), 1e-3)


class RandomArchitectures(StoreCase):
    CASES = {
        "llama-gqa-llama3-rope": ("llama", dict(num_key_value_heads=2, rope_scaling=hf.LLAMA3_ROPE_EXAMPLE)),
        "llama-linear-rope-tied": ("llama", dict(rope_scaling={"type": "linear", "factor": 2.0}, tie_word_embeddings=True)),
        "mistral-sliding-window": ("mistral", dict(sliding_window=24)),
        "qwen2-biases": ("qwen2", dict()),
        "gpt_neox-parallel": ("gpt_neox", dict()),
        "gpt_neox-sequential": ("gpt_neox", dict(use_parallel_residual=False, hidden_act="gelu_new")),
    }

    def test_every_hookpoint_and_the_loss_match_the_torch_reference(self):
        with tempfile.TemporaryDirectory() as t:
            for seed, (name, (model_type, config)) in enumerate(self.CASES.items()):
                with self.subTest(name):
                    model = os.path.join(t, name)
                    hf.write_random_hf(model, model_type, seed=seed, vocab_size=512, legacy_buffers=model_type == "gpt_neox",
                                       **config)
                    with extract(os.path.join(t, name + "-out"), model) as store:
                        ref = hf.reference_forward(model, sequences(store))
                        self.assert_matches_reference(store, ref, 1e-5, name)


class BFloat16Weights(StoreCase):
    def test_float32_and_bfloat16_compute(self):
        with tempfile.TemporaryDirectory() as t:
            model = os.path.join(t, "stories-bf16")
            hf.write_hf_from_llama2c(STORIES, model, dtype="BF16")
            with extract(os.path.join(t, "f32"), model) as f32, \
                    extract(os.path.join(t, "bf16"), model, TOK512, None, "extract.compute_dtype=bfloat16") as bf16:
                ref = hf.reference_forward(model, sequences(f32))
                self.assert_matches_reference(f32, ref, 1e-5, "BF16 weights, float32 compute")
                # bfloat16 keeps 8 bits of mantissa: each value within a few percent of the block's scale.
                for hook in ("blocks.0.hook_resid_post", "blocks.4.hook_resid_post"):
                    err, _ = worst_relative(bf16["activations"][hook][()], ref[hook])
                    self.assertLess(err, 0.1, f"bfloat16 compute {hook}")
                    self.assertGreater(err, 1e-4, "bfloat16 compute should differ from float32")
                self.assertAlmostEqual(bf16.attrs["loss"], f32.attrs["loss"], delta=0.05)


class PythiaWithItsTokenizer(StoreCase):
    def test_gpt_neox_tokenizer_json_on_two_ranks(self):
        with tempfile.TemporaryDirectory() as t, extract(os.path.join(t, "s"), STORIES) as stories:
            self.stories_sequence = stories.attrs["token_sequence"]
        tokenizer = os.path.join(DATA, "hf", "tokenizers", "gpt-neox", "tokenizer.json")
        with tempfile.TemporaryDirectory() as t:
            model = os.path.join(t, "pythia-like")
            hf.write_random_hf(model, "gpt_neox", seed=7, vocab_size=50304)
            with extract(os.path.join(t, "out"), model, tokenizer, 2) as store:
                seqs = sequences(store)
                self.assertTrue(all(s[0] == 0 for s in seqs), "every sequence starts with BOS = <|endoftext|> (0)")
                # Another tokenizer, another token sequence over the same text.
                self.assertNotEqual(store.attrs["token_sequence"], self.stories_sequence)
                self.assertNotEqual(store.attrs["tokenizer_identity"], "")
                self.assertEqual(len(store["vocab"]), 50277, "a large vocabulary is a dataset, not an attribute")
                ref = hf.reference_forward(model, seqs)
                self.assert_matches_reference(store, ref, 1e-5, "pythia-like, tokenizer.json, 2 ranks")
                # The stored ids are the tokenizer's: the first story's opening as `universae tokenize` gives it.
                with open(TEXT) as f:
                    first = f.read().split("<|endoftext|>")[0].strip()
                proc = universae(["tokenize", "--tokenizer", tokenizer, first], timeout=60, check=True)
                ids = [int(x) for x in proc.stdout.split()]
                self.assertEqual(seqs[0][1:], ids[:len(seqs[0]) - 1])


if __name__ == "__main__":
    try:
        unittest.main()
    finally:
        for case, err in WORST.items():
            print(f"worst relative error {err:.2e}: {case}")
