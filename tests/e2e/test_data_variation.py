"""End to end: a data-variation study (jobs/data_variation_ci.toml): extract.inputs on the grid.

Each text is extracted once into its own store (named by the file), each task trains on its text's
store, and run.compare_across = ["extract.inputs"] compares seed 0 of each text with seed 1 of every
other by weight statistics (one model's stream: they apply) and by activation statistics with both
SAEs encoding the first text's store. The stores hold different token sequences, so encoding each SAE
on its own store would be refused (the cross-model rule); here they share one.
"""
import csv
import os
import sys
import tempfile
import unittest

import h5py

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
from universae_test import SOURCE, universae  # noqa: E402

JOB = os.path.join(SOURCE, "jobs", "data_variation_ci.toml")
TEXTS = ["tinystories_train_head_197k", "tinystories_val_794k", "tinyshakespeare"]


class DataVariation(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.out = os.path.join(cls.tmp.name, "study")
        cls.proc = universae(["run", JOB, "--set", f"run.output_dir={cls.out}"], 2, timeout=600)
        if cls.proc.returncode != 0:
            raise AssertionError(f"data_variation_ci exited {cls.proc.returncode}:\n{cls.proc.stderr}")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def store(self, text):
        return os.path.join(self.out, "extract", text, "activations.h5")

    def test_one_store_per_text_and_tasks_train_on_their_own(self):
        sequences = set()
        for text in TEXTS:
            with h5py.File(self.store(text), "r") as f:
                self.assertTrue(f.attrs["complete"])
                inputs = [v.decode() if isinstance(v, bytes) else v for v in f.attrs["inputs"]]
                self.assertEqual([os.path.basename(p) for p in inputs], [text + ".txt"])
                self.assertLessEqual(len(f["tokens"]), 12000)
                sequences.add(f.attrs["token_sequence"])
            with h5py.File(os.path.join(self.out, f"inputs={text}", "saes", "seed0.h5"), "r") as sae:
                self.assertEqual(sae.attrs["store"], os.path.normpath(os.path.abspath(self.store(text))))
                self.assertIn("ce_loss_score", sae.attrs)
        self.assertEqual(len(sequences), 3, "the three texts give three token sequences")

    def test_across_texts_by_weights_and_on_the_first_texts_store(self):
        with open(os.path.join(self.out, "study_summary.csv")) as f:
            rows = [r for r in csv.DictReader(f) if r["scope"].startswith("across inputs")]
        for r in rows:
            r["pair"] = f"{r['a']}--{r['b']}"
        pairs = sorted(r["pair"] for r in rows)
        self.assertEqual(pairs, sorted(f"{a}--{b}" for i, a in enumerate(TEXTS) for b in TEXTS[i + 1:]))
        for r in rows:
            for column in ("decoder_mcs_ab", "mean_cos_decoder", "shared_fraction", "mean_max_corr_ab"):
                self.assertNotEqual(r[column], "", f"{r['pair']}: {column}")
            a, b = r["pair"].split("--")
            results = os.path.join(self.out, "across_inputs", "all", r["pair"], "results.h5")
            with h5py.File(results, "r") as f:
                self.assertNotIn("weight_space_skipped", f[f"pairs/{r['pair']}"].attrs)
                for name in (a, b):
                    source = f[f"saes/{name}"].attrs["activations_source"]
                    self.assertEqual(os.path.normpath(source), os.path.normpath(self.store(a)), f"{r['pair']}: {name}")


if __name__ == "__main__":
    unittest.main()
