"""End to end: every group and dataset of every file a job writes carries a `description` attribute (and
`units` where it has any), from the one table in src/io/schema.cpp.

The quickstart's CI twin at 2 ranks, with three seeds (so /overlap and /stability exist) and snapshots
(so /training and the snapshot files exist). Walked with h5py: results.h5, the SAE files, the random-init
baseline, every snapshot and the activation store. A failure lists every object without a description:
add it to the table. Also: a few units, and the input scale folded into the saved weights as
docs/file-formats.md says (decoder rows of norm 1/input_scale; ×input_scale gives unit norm)."""
import glob
import os
import sys
import tempfile
import unittest

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
from universae_test import SOURCE, set_args, universae  # noqa: E402

JOB = os.path.join(SOURCE, "jobs", "quickstart_ci.toml")
SETTINGS = ["sae.seeds=[0, 1, 2]", "train.snapshot_every=102400", "compare.permutations=20"]


def text(value):
    return value.decode() if isinstance(value, bytes) else value


def undescribed(path):
    """The objects of the file at `path` (the root included) without a non-empty ASCII `description`."""
    missing = []
    with h5py.File(path, "r") as f:
        def check(name, obj):
            description = obj.attrs.get("description")
            if isinstance(description, np.ndarray):  # /summary_columns: its columns' descriptions
                ok = description.size > 0 and all(text(d) for d in description)
            else:
                ok = isinstance(text(description), str) and text(description).strip() != ""
                if ok and not text(description).isascii():  # h5dump prints other characters as octal escapes
                    name += " (not ASCII)"
                    ok = False
            if not ok:
                missing.append(name)
        check("/", f)
        f.visititems(lambda name, obj: check("/" + name, obj))
    return missing


class Descriptions(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.out = os.path.join(cls.tmp.name, "q")
        proc = universae(["run", JOB, *set_args(SETTINGS + [f"run.output_dir={cls.out}"])], 2, timeout=500)
        if proc.returncode != 0:
            raise AssertionError(f"universae run exited {proc.returncode}:\n{proc.stderr}")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def files(self, pattern):
        found = sorted(glob.glob(os.path.join(self.out, pattern), recursive=True))
        self.assertTrue(found, f"no {pattern} in {self.out}")
        return found

    def test_every_object_is_described(self):
        files = (self.files("results.h5") + self.files("saes/*.h5") + self.files("baselines/*.h5") +
                 self.files("snapshots/**/*.h5") + self.files("activations.h5"))
        self.assertEqual(len(self.files("snapshots/**/*.h5")), 9)  # 3 seeds × tokens 0, 102400, 204800
        missing = {os.path.relpath(p, self.out): m for p in files for m in [undescribed(p)] if m}
        report = "\n".join(f"{p}: {len(m)} objects, e.g. " + ", ".join(m[:8]) for p, m in missing.items())
        self.assertEqual(missing, {}, "objects without a description (add them to src/io/schema.cpp):\n" + report)

    def test_the_results_cover_the_whole_schema(self):
        with h5py.File(os.path.join(self.out, "results.h5"), "r") as f:
            for group in ("saes", "pairs", "overlap", "stability", "training", "activations", "summary_columns"):
                self.assertIn(group, f)
            self.assertIn("tokens102400", f["training"])

    def test_units(self):
        expected = {
            "results.h5": {"/pairs/seed0--seed1/decoder/max_cos_ab": "cosine", "/pairs/seed0--seed1/lap/decoder_cos": "cosine",
                           "/pairs/seed0--seed1/activation/max_corr_ab": "Pearson r", "/saes/seed0/frequency": "fraction",
                           "/overlap/histogram_mean": "fraction", "/training/tokens": "tokens",
                           "/training/tokens102400/seed0--seed1/lap/encoder_cos": "cosine"},
            "saes/seed0.h5": {"/frequency": "fraction"},
            "activations.h5": {"/batch_nll": "nats"},
        }
        for name, units in expected.items():
            with h5py.File(os.path.join(self.out, name), "r") as f:
                for obj, unit in units.items():
                    self.assertEqual(text(f[obj].attrs.get("units")), unit, f"{name}:{obj}")
                for dimensionless in ("/pairs/seed0--seed1/decoder/argmax_ab", "/W_enc", "/tokens"):
                    if dimensionless in f:
                        self.assertNotIn("units", f[dimensionless].attrs, f"{name}:{dimensionless}")

    def test_folded_input_scale(self):
        # topk trains unit-norm decoder rows on x·input_scale and saves W_dec / input_scale.
        for path in self.files("saes/seed*.h5") + self.files("snapshots/seed0/*.h5"):
            with h5py.File(path, "r") as f:
                scale = f.attrs["input_scale"]
                self.assertNotAlmostEqual(scale, 1.0, places=2, msg=path)
                norms = np.linalg.norm(f["W_dec"][()], axis=1)
                np.testing.assert_allclose(norms * scale, 1.0, rtol=0, atol=1e-4, err_msg=path)
                self.assertIn("input_scale", text(f["W_dec"].attrs["description"]))


if __name__ == "__main__":
    unittest.main()
