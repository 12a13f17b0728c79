"""End to end: SAEs of different models compared token by token, against a known answer.

stories260K's rotated twin (scripts/model_twins.py: RMSNorm gains folded in, the residual stream
rotated by a seeded random orthogonal matrix) computes the same function with rotated activations.
So SAEs trained on the twin must be as universal with SAEs of the original, by every
activation-based statistic, as two seeds on the original are (within the seed pairs' spread), while
their decoder directions live in another basis: compared in weight space anyway, their max cosine
falls to the level of an untrained SAE. A job with extract.model on its [grid] runs the whole study
(`universae run`: one store per model, compare_across = ["extract.model"]); each comparison of SAEs
of different models carries the reason it has no weight-space statistics.
"""
import csv
import os
import subprocess
import sys
import tempfile
import unittest

import h5py

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
from universae_test import PYTHON, SCRIPTS, SOURCE, universae  # noqa: E402

DATA = os.path.join(SOURCE, "..", "shared", "data")
HOOK = "blocks.3.hook_resid_post"

JOB = """
[run]
stages = ["extract", "train", "compare"]
compare_across = ["extract.model"]
output_dir = "{out}"

[extract]
tokenizer = "{data}/tok512.bin"
inputs = ["{data}/tinystories_val_794k.txt"]
max_documents = 600
hookpoints = ["{hook}"]

[data]
source = "extract"
hookpoint = "{hook}"

[grid]
"extract.model" = ["{data}/stories260K.bin", "{twins}/stories260K_rotated.bin"]

[sae]
architecture = "topk"
n_latents = 256
k = 8
seeds = 2

[train]
tokens = 102_400
batch_size = 1024
micro_batch = 512
lr = 4e-3
warmup_steps = 10
log_every = 20
eval_tokens = 4096
normalize_input = true

[compare]
activations = "extract"
correlation_input = "pre"
permutations = 100
"""

ACTIVATION = ["mean_max_corr_ab", "mean_max_corr_ba", "activation_svcca", "activation_rsa", "activation_cka"]


class CrossModel(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        tmp = cls.tmp.name
        twins = os.path.join(tmp, "twins")
        subprocess.run([PYTHON, os.path.join(SCRIPTS, "model_twins.py"), "rotated",
                        os.path.join(twins, "stories260K_rotated.bin"), "--seed", "3"], check=True, capture_output=True)
        cls.out = os.path.join(tmp, "study")
        job = os.path.join(tmp, "job.toml")
        with open(job, "w") as fh:
            fh.write(JOB.format(out=cls.out, data=DATA, twins=twins, hook=HOOK))
        cls.proc = universae(["run", job], 2, timeout=600, cwd=tmp)
        with open(os.path.join(cls.out, "study_summary.csv")) as fh:
            cls.rows = list(csv.DictReader(fh))

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def row(self, scope):
        rows = [r for r in self.rows if r["scope"] == scope or (scope == "across model" and r["scope"].startswith(scope))]
        self.assertEqual(len(rows), 1, [r["scope"] for r in self.rows])
        return {k: float(v) if v not in ("", None) and k not in ("scope", "a", "b") else v for k, v in rows[0].items()}

    def test_one_store_per_model_same_tokens(self):
        self.assertEqual(self.proc.returncode, 0, self.proc.stderr)
        stores = [os.path.join(self.out, "extract", m, "activations.h5") for m in ("stories260K", "stories260K_rotated")]
        with h5py.File(stores[0], "r") as a, h5py.File(stores[1], "r") as b:
            self.assertEqual(a.attrs["token_sequence"], b.attrs["token_sequence"])
            self.assertNotEqual(a.attrs["model"], b.attrs["model"])
            self.assertEqual(list(a["special_tokens"][()]), [0, 1, 2])  # llama2.c: <unk>, BOS, EOS

    def test_twin_as_universal_as_seeds_by_activations(self):
        seeds = [self.row("model=stories260K"), self.row("model=stories260K_rotated")]
        across = self.row("across model")
        self.assertTrue(across["a"].startswith("stories260K") and across["b"].startswith("stories260K_rotated"))
        for column in ACTIVATION:
            values = [s[column] for s in seeds]
            spread = max(values) - min(values)
            tolerance = max(2 * spread, 0.05 * max(abs(v) for v in values))
            print(f"\n  {column}: seed pairs {values}, original vs rotated twin {across[column]:.4f}", flush=True)
            self.assertGreater(across[column], min(values) - tolerance, column)
            self.assertLess(across[column], max(values) + tolerance, column)
        # p-values: far from chance, as the seed pairs are
        for column in ("activation_svcca_p", "activation_rsa_p"):
            self.assertLess(across[column], 0.05)

    def test_no_weight_space_statistics_across_models(self):
        across = self.row("across model")
        for column in ("decoder_mcs_ab", "mean_cos_decoder", "shared_fraction", "svcca"):
            self.assertEqual(across[column], "", column)
        results = os.path.join(self.out, "across_model", "all", "stories260K--stories260K_rotated", "results.h5")
        with h5py.File(results, "r") as f:
            reason = f["pairs/stories260K--stories260K_rotated"].attrs["weight_space_skipped"]
            self.assertIn("different models' streams", reason)
        inspect = universae(["inspect", results], None, timeout=60)
        self.assertIn("no weight-space statistics: different models' streams", inspect.stdout)

    def test_decoder_cosine_across_the_rotation_is_chance(self):
        """Compared in weight space anyway (no activations), the twin's decoders look untrained."""
        saes = {m: os.path.join(self.out, f"model={m}", "saes") for m in ("stories260K", "stories260K_rotated")}
        out = os.path.join(self.tmp.name, "weights", "results.h5")
        proc = universae(["compare", "--sae", os.path.join(saes["stories260K"], "seed0.h5"),
                          "--sae", os.path.join(saes["stories260K_rotated"], "seed1.h5"),
                          "--set", "compare.baseline_random=true", "--set", "compare.permutations=0", "--out", out], 2,
                         timeout=300)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        with h5py.File(out, "r") as f:
            pairs = list(f["pairs"])
            twin = [p for p in pairs if "rotated" in p or p.endswith("seed1")][0]
            base = [p for p in pairs if "random_init" in p][0]
            cross = f[f"pairs/{twin}/decoder"].attrs["mcs_ab"]
            chance = f[f"pairs/{base}/decoder"].attrs["mcs_ab"]
        seed = self.row("model=stories260K")["decoder_mcs_ab"]
        print(f"\n  decoder max cosine: seed pair {seed:.4f}, original vs rotated {cross:.4f}, untrained {chance:.4f}",
              flush=True)
        self.assertLess(abs(cross - chance), 0.05)
        self.assertGreater(seed, chance + 0.15)


if __name__ == "__main__":
    unittest.main(verbosity=2)
