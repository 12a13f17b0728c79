"""Golden: the llama2.c model, tokenizer and extraction against independent references.

1. Greedy generation from BOS for 200 steps is byte for byte llama2.c's own test
   (../shared/data/expected_stdout.txt; test_all.py drops run.c's final newline).
2. Stored activations at every kind of hookpoint equal a float64 numpy forward written from
   run.c's semantics (scripts/llama2c_ref.py: one position at a time with a KV cache), including
   documents split into windows that restart with BOS.
3. Token ids equal run.c's quadratic merge loop (the reference) on real TinyStories documents and on
   text that needs byte fallback; decoding the ids with the stored vocabulary gives the text back.
4. The mean next-token loss equals the reference's, and on whole stories it is close to the
   published 1.2968 nats.
"""
import json
import os
import sys
import tempfile
import unittest

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
from universae_test import SCRIPTS, SOURCE, set_args, universae  # noqa: E402

DATA = os.path.join(SOURCE, "..", "shared", "data")
sys.path.insert(0, SCRIPTS)
import llama2c_ref as ref  # noqa: E402

MODEL = os.path.join(DATA, "stories260K.bin")
TOKENIZER = os.path.join(DATA, "tok512.bin")


def extract(out, inputs, *settings):
    os.makedirs(out, exist_ok=True)
    cfg = os.path.join(out, "extract.toml")
    with open(cfg, "w") as f:
        f.write(f'[extract]\nmodel = "{MODEL}"\ntokenizer = "{TOKENIZER}"\ninputs = {json.dumps(inputs)}\n')
    universae(["extract", cfg, *set_args(list(settings) + [f"run.output_dir={out}"])], timeout=600, check=True)
    return h5py.File(os.path.join(out, "activations.h5"), "r")


def piece_bytes(vocab, token, previous):
    p = vocab[token]
    p = p.encode() if isinstance(p, str) else bytes(p)
    if previous == 1 and p.startswith(b" "):
        p = p[1:]
    if len(p) == 6 and p.startswith(b"<0x") and p.endswith(b">"):
        return bytes([int(p[3:5], 16)])
    return p


class Generation(unittest.TestCase):
    def test_greedy_200_steps_matches_llama2c(self):
        proc = universae(["generate", "--model", MODEL, "--tokenizer", TOKENIZER, "--steps", "200"],
                         timeout=120, cwd=None, text=False)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        with open(os.path.join(DATA, "expected_stdout.txt"), "rb") as f:
            expected = f.read()
        self.assertEqual(proc.stdout[-1:], b"\n")
        self.assertEqual(proc.stdout[:-1], expected)


class Store(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.model = ref.Model(MODEL)
        cls.tok = ref.Tokenizer(TOKENIZER, cls.model.vocab)
        cls.hooks = ["blocks.0.hook_resid_pre", "blocks.1.hook_resid_mid", "blocks.2.mlp.hook_post",
                     "blocks.3.hook_mlp_out", "blocks.4.hook_resid_post"]
        # Five whole stories; seq_len 160 splits the longer ones into windows.
        cls.f = extract(os.path.join(cls.tmp.name, "stories"), [os.path.join(DATA, "tinystories_sample_cs336.txt")],
                        "extract.seq_len=160", "extract.batch_tokens=400", f"extract.hookpoints={json.dumps(cls.hooks)}")
        with open(os.path.join(DATA, "tinystories_sample_cs336.txt")) as f:
            cls.docs = [d.strip() for d in f.read().split("<|endoftext|>") if d.strip()]

    @classmethod
    def tearDownClass(cls):
        cls.f.close()
        cls.tmp.cleanup()

    def sequences(self):
        """The reference's windows of every document: BOS + ids, then BOS + the next 159 ids, ..."""
        seqs = []
        for doc in self.docs:
            ids = self.tok.encode(doc)
            seqs.append(ids[:160])
            pos = 160
            while pos < len(ids):
                seqs.append([1] + ids[pos:pos + 159])
                pos += 159
        return seqs

    def test_layout(self):
        f = self.f
        self.assertTrue(f.attrs["complete"])
        self.assertEqual(f.attrs["format"], "universae-activations")
        seqs = self.sequences()
        self.assertGreater(len(seqs), len(self.docs), "some story must be split into windows")
        so = f["seq_offsets"][()]
        self.assertEqual(len(so) - 1, len(seqs))
        tokens = f["tokens"][()]
        self.assertEqual(tokens.dtype, np.int32)
        for s, seq in enumerate(seqs):
            self.assertEqual(tokens[so[s]:so[s + 1]].tolist(), seq)
        self.assertEqual(len(f["doc_offsets"]) - 1, len(self.docs))
        self.assertEqual(f["doc_offsets"][-1], len(tokens))
        self.assertEqual(sorted(f["activations"]), sorted(self.hooks))
        self.assertEqual(len(f.attrs["vocab"]), 512)

    def test_activations_match_float64_reference(self):
        so = self.f["seq_offsets"][()]
        for s, seq in enumerate(self.sequences()):
            hooks, _ = self.model.forward(seq)
            for h in self.hooks:
                got = self.f["activations"][h][so[s]:so[s + 1]]
                want = hooks[h]
                scale = max(1.0, np.abs(want).max())
                self.assertLess(np.abs(got - want).max() / scale, 2e-5, f"sequence {s}, {h}")

    def test_loss_matches_reference_and_published_value(self):
        nll, count = 0.0, 0
        for seq in self.sequences():
            _, logits = self.model.forward(seq)
            a, b = ref.next_token_nll(logits, np.array(seq))
            nll, count = nll + a, count + b
        self.assertEqual(self.f.attrs["loss_tokens"], count)
        self.assertAlmostEqual(self.f.attrs["loss"], nll / count, delta=1e-5)
        # llama2.c reports 1.2968 nats on TinyStories validation stories, each seen whole from BOS
        # (the windows above lose their context, so their loss is higher).
        with extract(os.path.join(self.tmp.name, "whole"), [os.path.join(DATA, "tinystories_sample_cs336.txt")],
                     'extract.hookpoints=["blocks.0.hook_resid_pre"]') as whole:
            self.assertEqual(len(whole["seq_offsets"]), len(self.docs) + 1, "every story fits one sequence")
            self.assertLess(abs(whole.attrs["loss"] - 1.2968), 0.1)


class Tokenizer(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.tok = ref.Tokenizer(TOKENIZER, 512)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def check(self, f, docs):
        tokens, offsets = f["tokens"][()], f["doc_offsets"][()]
        vocab = list(f.attrs["vocab"])
        self.assertEqual(len(offsets) - 1, len(docs))
        for d, doc in enumerate(docs):
            ids = tokens[offsets[d]:offsets[d + 1]].tolist()
            self.assertEqual(ids, self.tok.encode(doc), f"document {d}: {doc[:60]!r}")
            text = b"".join(piece_bytes(vocab, t, p) for p, t in zip(ids, ids[1:]))
            self.assertEqual(text.decode("utf-8"), doc, "decoding gives the text back")

    def test_real_documents(self):
        with open(os.path.join(DATA, "tinystories_val_794k.txt")) as f:
            text = f.read()
        paragraphs = [p.strip() for p in text.replace("\n \n", "\n\n").split("\n\n") if p.strip()][:300]
        f = extract(os.path.join(self.tmp.name, "val"), [os.path.join(DATA, "tinystories_val_794k.txt")],
                    "extract.max_documents=300", "extract.loss=false", 'extract.hookpoints=["blocks.0.hook_resid_pre"]')
        with f:
            self.check(f, paragraphs)

    def test_byte_fallback_and_jsonl(self):
        docs = ["naïve café — déjà vu", "你好, world 🙂!", "tabs\tand  spaces", "x", "Ω≈ç√∫˜µ≤≥÷ and ünïcödé"]
        path = os.path.join(self.tmp.name, "odd.jsonl")
        with open(path, "w") as f:
            for d in docs:
                f.write(json.dumps({"text": d}) + "\n")
        f = extract(os.path.join(self.tmp.name, "odd"), [path], 'extract.hookpoints=["blocks.0.hook_resid_pre"]')
        with f:
            self.check(f, docs)
            self.assertTrue(any(3 <= t < 259 for t in f["tokens"][()]), "some text needs byte-fallback tokens")


if __name__ == "__main__":
    unittest.main(verbosity=2)
