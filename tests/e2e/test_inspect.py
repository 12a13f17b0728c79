"""End to end: `universae inspect` on every kind of file universae writes (issue 23, item 1).

The quick start's CI twin (2 ranks, snapshots at half and end) writes an activation store, two SAE
files, snapshots, a random-init baseline and results.h5; a training run on its store stopped by SIGUSR1
leaves a checkpoint; `universae convert` writes a sparsify and a SAELens directory. Each is inspected
(exit 0), and the facts the description states are checked against the files read with h5py: the
store's documents, sequences and tokens (from the datasets' shapes), hookpoint shape and dtype, mean
loss, special tokens, and the decoded sample (the vocabulary pieces of the first document's first 40
tokens, byte pieces decoded, escaped as a C string); the SAEs' sizes; the checkpoint's step, tokens,
seeds and shapes. A partial store says how far its extraction got. Damaged files (offsets past the
tokens, a truncated /tokens, ids outside the vocabulary, strings where ids belong, seeds of different
shapes) exit 2 on every rank with one message naming the file; each case is listed in
docs/troubleshooting.md.

Provenance (issue 23, item 6), on the same files: the store, every SAE and every /saes/<name> of
results.h5 name the model and tokenizer by absolute path, size and SHA-256 (hashlib computes the
reference digests), the SAEs and results name the store; a results file copied elsewhere and inspected
from another directory still says all of it; the sparsify and SAELens exports carry the model's name;
an SAE converted back from sparsify records the SHA-256 of the weights file it came from. A store
universae's extract wrote records that every value was verified finite, so training does not scan it
again; with that record removed, a NaN written into it is found (the scan every other store gets).
"""
import hashlib
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
import unittest

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
from universae_test import SOURCE, kill_job, set_args, start, universae, universae_command  # noqa: E402

JOB = os.path.join(SOURCE, "jobs", "quickstart_ci.toml")
SAMPLE_TOKENS = 40


def quoted(data):
    """bytes as universae prints them (io::quoted_text): a C string literal, UTF-8 kept."""
    out = []
    for ch in data.decode("utf-8", errors="surrogateescape"):
        code = ord(ch)
        if ch in '\\"':
            out.append("\\" + ch)
        elif ch in "\n\t\r":
            out.append({"\n": "\\n", "\t": "\\t", "\r": "\\r"}[ch])
        elif 0xDC80 <= code <= 0xDCFF:  # a byte that is not valid UTF-8
            out.append(f"\\x{code - 0xDC00:02X}")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def piece_bytes(piece):
    """A vocabulary piece as bytes, a byte-fallback piece ("<0x0A>") as its byte."""
    m = re.fullmatch(r"<0x([0-9A-Fa-f]{2})>", piece)
    return bytes([int(m.group(1), 16)]) if m else piece.encode()


def sha256(path):
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


class Inspect(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.out = os.path.join(cls.tmp.name, "quickstart")
        universae(["run", JOB, *set_args([f"run.output_dir={cls.out}", "train.snapshot_every=102400"])], 2, check=True)
        cls.store = os.path.join(cls.out, "activations.h5")
        cls.checkpoint = cls.make_checkpoint()
        for seed, library in ((0, "sparsify"), (1, "saelens")):
            universae(["convert", os.path.join(cls.out, "saes", f"seed{seed}.h5"), os.path.join(cls.tmp.name, library),
                       "--to", library], check=True)
        with open(os.path.join(SOURCE, "docs", "troubleshooting.md")) as fh:
            cls.troubleshooting = fh.read()

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    @classmethod
    def make_checkpoint(cls):
        """Training on the quick start's store, stopped by SIGUSR1 after its first checkpoint (exit 75)."""
        out = os.path.join(cls.tmp.name, "stopped")
        settings = [f"run.output_dir={out}", f"data.source={cls.store}", "train.checkpoint_every=10"]
        proc = start(universae_command(["train", JOB, *set_args(settings)], 2))
        path = os.path.join(out, "checkpoint.h5")
        deadline = time.time() + 300
        while not os.path.exists(path):
            if proc.poll() is not None or time.time() > deadline:
                raise AssertionError(f"no checkpoint: {kill_job(proc)}")
            time.sleep(0.02)
        proc.send_signal(signal.SIGUSR1)
        _, err = proc.communicate(timeout=300)
        if proc.returncode != 75:
            raise AssertionError(f"the stopped training exited {proc.returncode}, not 75:\n{err}")
        return path

    def inspect(self, path, ranks=None):
        proc = universae(["inspect", path], ranks)
        self.assertEqual(proc.returncode, 0, f"inspect {path}:\n{proc.stderr}")
        print(f"\n{proc.stdout}", end="", flush=True)
        return proc.stdout

    def refused(self, path, message, readme):
        """Exit 2 on every rank (2 ranks), one error line naming the file and saying `message`."""
        proc = universae(["inspect", path], 2)
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertNotIn("MPI_ABORT", proc.stderr)
        errors = [line for line in proc.stderr.splitlines() if line.startswith("universae: error:")]
        self.assertEqual(len(errors), 1, proc.stderr)
        self.assertIn(f"{path}: {message}", errors[0])
        self.assertIn(readme, self.troubleshooting, "the case is listed in docs/troubleshooting.md")
        print(f"\n  {errors[0]}", flush=True)

    def damaged_store(self, name, damage):
        path = os.path.join(self.tmp.name, f"{name}.h5")
        shutil.copy(self.store, path)
        with h5py.File(path, "r+") as f:
            damage(f)
        return path

    def test_store(self):
        out = self.inspect(self.store, 2)
        with h5py.File(self.store, "r") as f:
            tokens = f["tokens"].shape[0]
            docs, seqs = f["doc_offsets"].shape[0] - 1, f["seq_offsets"].shape[0] - 1
            vocab = [text(p) for p in f.attrs["vocab"]]
            first_doc = int(f["doc_offsets"][1])
            ids = f["tokens"][: min(SAMPLE_TOKENS, first_doc)]
            specials = [int(t) for t in f["special_tokens"][()]]
            hooks = {name: (ds.shape, text(ds.attrs["dtype"])) for name, ds in f["activations"].items()}
            loss, loss_tokens = float(f.attrs["loss"]), int(f.attrs["loss_tokens"])
        self.assertIn(f"{self.store}: universae activation store (format_version 1, complete)", out)
        self.assertIn(f"  {docs} documents, {seqs} sequences (seq_len 512), {tokens} tokens", out)
        for name, (shape, dtype) in hooks.items():
            self.assertIn(f"    {name} [{shape[0]}, {shape[1]}] {dtype}\n", out)
            self.assertEqual(shape[0], tokens)
        self.assertIn(f"mean next-token loss {loss:.6g} nats over {loss_tokens} tokens", out)
        listed = ", ".join(f"{t} {quoted(vocab[t].encode())}" for t in specials)
        self.assertIn(f"  vocabulary {len(vocab)} pieces; special tokens {listed}\n", out)
        sample = quoted(b"".join(piece_bytes(vocab[t]) for t in ids))
        self.assertIn(f"  sample: document 0, its first {len(ids)} of {first_doc} tokens:\n    {sample}\n", out)
        self.assertIn("Spot", sample, "the sample reads as the story it is")

    def test_sample_byte_pieces(self):
        """Byte pieces decode to their bytes: a newline, "é" from two pieces, and a lone 0xFF (not UTF-8)."""
        def bytes_in_sample(f):
            vocab = [text(p) for p in f.attrs["vocab"]]
            f["tokens"][1:5] = [vocab.index(p) for p in ("<0x0A>", "<0xC3>", "<0xA9>", "<0xFF>")]
        path = self.damaged_store("bytes", bytes_in_sample)
        with h5py.File(path, "r") as f:
            vocab = [text(p) for p in f.attrs["vocab"]]
            ids = f["tokens"][: min(SAMPLE_TOKENS, int(f["doc_offsets"][1]))]
        sample = quoted(b"".join(piece_bytes(vocab[t]) for t in ids))
        self.assertTrue(sample.startswith('"\\n<s>\\n\\n\u00e9\\xFF'), sample)
        self.assertIn(f"\n    {sample}\n", self.inspect(path))

    def test_partial_store(self):
        def stopped(f):
            for name in ("complete", "loss", "loss_tokens"):
                del f.attrs[name]
            f.attrs["batches_done"] = np.int64(5)
        path = self.damaged_store("partial", stopped)
        with h5py.File(path, "r") as f:
            batches = f["batch_nll"].shape[0]
        out = self.inspect(path)
        self.assertIn(f"(format_version 1, INCOMPLETE: 5 of {batches} batches written;", out)
        self.assertNotIn("mean next-token loss", out)

    def test_sae_files(self):
        snapshot = os.path.join(self.out, "snapshots", "seed0", "tokens102400.h5")
        baseline = os.path.join(self.out, "baselines", "random_init.h5")
        saes = [os.path.join(self.out, "saes", f"seed{s}.h5") for s in (0, 1)]
        for path in [*saes, snapshot, baseline]:
            out = self.inspect(path)
            with h5py.File(path, "r") as f:
                want = f"  architecture {text(f.attrs['architecture'])}  d_in {f['W_dec'].shape[1]}  " \
                       f"n_latents {f['W_dec'].shape[0]}  k {f.attrs['k']}  seed {f.attrs['seed']}\n"
            self.assertIn(f"{path}: universae SAE file (format_version 1, complete)\n{want}", out)
        self.assertIn(f"  snapshot of {saes[0]} after 102400 training tokens\n", self.inspect(snapshot))
        self.assertIn("  baseline 'random_init': an untrained SAE", self.inspect(baseline))

    def test_results(self):
        path = os.path.join(self.out, "results.h5")
        out = self.inspect(path)
        self.assertIn(f"{path}: universae results file (format_version 1, complete)", out)
        header = next(line for line in out.splitlines() if "statistic (/summary_columns)" in line)
        with h5py.File(path, "r") as f:
            for name in f["saes"]:
                self.assertRegex(out, rf"\n    {name} +topk n_latents 512 d_in 64 k 8 ")
            for pair in f["pairs"]:
                self.assertIn(pair, header.split(), "one column per pair")

    def test_checkpoint(self):
        out = self.inspect(self.checkpoint)
        with h5py.File(self.checkpoint, "r") as f:
            step, adam_step = int(f.attrs["step"]), int(f.attrs["adam_step"])
            seeds = sorted(int(name[4:]) for name in f if name.startswith("seed"))
            shapes = {name: f[f"seed0/{name}"].shape for name in ("W_dec", "W_enc", "b_dec", "b_enc", "since_fired")}
        self.assertIn(f"{self.checkpoint}: universae training checkpoint (complete)\n", out)
        self.assertIn(f"  step {step} of 200: {step * 1024} of 204800 training tokens (batch_size 1024); "
                      f"Adam step {adam_step};", out)
        self.assertIn("  SAE topk with 512 latents, k 8, at hookpoint 'blocks.2.hook_resid_post'", out)
        self.assertIn(f"  seeds {', '.join(map(str, seeds))}: each /seed<S> holds ", out)
        for name, shape in shapes.items():
            self.assertIn(f"{name} [{', '.join(map(str, shape))}]", out)
        self.assertRegex(out, r"\n  fingerprint [0-9a-f]{16} ")

    def test_foreign_sae_directories(self):
        for library in ("sparsify", "saelens"):
            path = os.path.join(self.tmp.name, library)
            out = self.inspect(path)
            self.assertIn(f"{path}: {library} SAE directory\n  architecture topk  d_in 64  n_latents 512  k 8", out)

    def test_provenance(self):
        model = os.path.normpath(os.path.join(SOURCE, "..", "shared", "data", "stories260K.bin"))
        tokenizer = os.path.normpath(os.path.join(SOURCE, "..", "shared", "data", "tok512.bin"))
        want = {"model": model, "model_name": "stories260K", "model_format": "llama2.c",
                "model_bytes": os.path.getsize(model), "model_sha256": sha256(model),
                "tokenizer": tokenizer, "tokenizer_sha256": sha256(tokenizer)}
        store = os.path.abspath(self.store)
        with h5py.File(self.store, "r") as f:
            self.assertEqual({k: f.attrs[k] for k in want}, want)
            self.assertTrue(f.attrs["activations_finite"])
        saes = {name: os.path.join(self.out, "saes", f"{name}.h5") for name in ("seed0", "seed1")}
        saes["random_init"] = os.path.join(self.out, "baselines", "random_init.h5")
        fingerprints = set()
        for name, path in saes.items():
            with h5py.File(path, "r") as f:
                self.assertEqual({k: f.attrs[k] for k in want}, want, path)
                self.assertEqual(f.attrs["store"], store)
                fingerprints.add(f.attrs["store_fingerprint"])
        self.assertEqual(len(fingerprints), 1)
        self.assertRegex(fingerprints.pop(), r"^[0-9a-f]{16}$")
        # A results file moved elsewhere, read from another directory, still says where it all came from.
        moved = os.path.join(self.tmp.name, "moved")
        os.makedirs(moved, exist_ok=True)
        shutil.copy(os.path.join(self.out, "results.h5"), moved)
        with h5py.File(os.path.join(moved, "results.h5"), "r") as f:
            for name, path in saes.items():
                g = f["saes"][name]
                self.assertEqual(g.attrs["path"], os.path.abspath(path))
                self.assertEqual({k: g.attrs[k] for k in want}, want, name)
                self.assertEqual(g.attrs["store"], store)
            self.assertEqual(f["activations"].attrs["source"], store)
        out = universae(["inspect", "results.h5"], None, cwd=moved, check=True).stdout
        self.assertIn(f"({os.path.abspath(saes['seed0'])})", out)
        self.assertIn(f"from stories260K (model sha256 {want['model_sha256'][:16]}...)", out)
        self.assertIn(f"  model stories260K: {model} (llama2.c, 1.1 MB, sha256 {want['model_sha256']})",
                      self.inspect(saes["seed0"]))

    def test_exports_name_the_model(self):
        with open(os.path.join(self.tmp.name, "sparsify", "cfg.json")) as fh:
            self.assertEqual(json.load(fh)["model_name"], "stories260K")
        with open(os.path.join(self.tmp.name, "saelens", "cfg.json")) as fh:
            self.assertEqual(json.load(fh)["metadata"]["model_name"], "stories260K")
        back = os.path.join(self.tmp.name, "from_sparsify.h5")
        universae(["convert", os.path.join(self.tmp.name, "sparsify"), back], check=True)
        weights = os.path.join(self.tmp.name, "sparsify", "sae.safetensors")
        with h5py.File(back, "r") as f:
            self.assertEqual(f.attrs["source"], os.path.abspath(weights))
            self.assertEqual(f.attrs["source_sha256"], sha256(weights))
            self.assertEqual(f.attrs["model"], "stories260K")

    def test_a_verified_store_is_not_scanned_again(self):
        tampered = os.path.join(self.tmp.name, "tampered.h5")
        shutil.copy(self.store, tampered)
        with h5py.File(tampered, "r+") as f:
            f["activations/blocks.2.hook_resid_post"][5, 3] = np.nan
        train = ["train", JOB, *set_args([f"data.source={tampered}", "train.tokens=2048", "train.eval_tokens=1024",
                                          "train.splice_tokens=0", "sae.seeds=[0]"])]
        verified = universae(train + ["--set", f"run.output_dir={os.path.join(self.tmp.name, 'verified')}"], None)
        self.assertEqual(verified.returncode, 0, verified.stderr)  # trusted: extract checked every value it wrote
        with h5py.File(tampered, "r+") as f:
            del f.attrs["activations_finite"]
        scanned = universae(train + ["--set", f"run.output_dir={os.path.join(self.tmp.name, 'scanned')}"], None)
        self.assertEqual(scanned.returncode, 2, scanned.stderr)
        self.assertIn("row 5 (sequence 0, position 5), column 3 is NaN", scanned.stderr)

    def test_other_hdf5_and_directories(self):
        path = os.path.join(self.tmp.name, "plain.h5")
        with h5py.File(path, "w") as f:
            f["x"] = np.arange(3)
        self.assertIn(f"{path}: HDF5 file\n", self.inspect(path))
        proc = universae(["inspect", self.out])
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertIn(f"{self.out}: a directory, but not a sparsify or SAELens SAE", proc.stderr)

    def test_damaged_files(self):
        def offsets_past_end(f):
            f["doc_offsets"][-1] = 10**9

        def truncated_tokens(f):
            kept = f["tokens"][:100]
            del f["tokens"]
            f["tokens"] = kept

        def id_outside(f):
            f["tokens"][3] = 9999

        def strings(f):
            n = f["tokens"].shape[0]
            del f["tokens"]
            f["tokens"] = np.array([b"x"] * n)

        with h5py.File(self.store, "r") as f:
            tokens, vocab = f["tokens"].shape[0], len(f.attrs["vocab"])
        self.refused(self.damaged_store("offsets", offsets_past_end),
                     f"/doc_offsets ends at 1000000000 but /tokens holds {tokens} tokens (a truncated or damaged store)",
                     "| store | `inspect`: offsets past the tokens |")
        self.refused(self.damaged_store("truncated", truncated_tokens),
                     f"/doc_offsets ends at {tokens} but /tokens holds 100 tokens (a truncated or damaged store)",
                     "| store | `inspect`: a truncated /tokens |")
        self.refused(self.damaged_store("outside", id_outside),
                     f"/tokens[3] = 9999 is not a token id of the store's vocabulary ({vocab} pieces)",
                     "| store | `inspect`: a token id outside the vocabulary |")
        self.refused(self.damaged_store("strings", strings), "cannot be read: read /tokens failed:",
                     "| any file | `inspect`: an object of a type universae does not write there |")
        path = os.path.join(self.tmp.name, "checkpoint.h5")
        shutil.copy(self.checkpoint, path)
        with h5py.File(path, "r+") as f:
            del f["seed1/W_dec"]
            f["seed1/W_dec"] = np.zeros((3, 3), np.float32)
        self.refused(path, "/seed1 holds other tensors than /seed0: W_dec [3, 3]",
                     "| checkpoint | `inspect`: seeds of different shapes |")


if __name__ == "__main__":
    unittest.main(verbosity=2)
