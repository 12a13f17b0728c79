"""End to end: `universae report` on the quickstart's results and on two studies' results (a seed ×
size × k grid and a cross-layer grid, the outputs a sweep writes): the page, its figures (valid PNGs,
each linked from index.html) and pairs.csv (one row per compared pair, the values of the results
files); bad inputs exit 2 and a failing plot script exits 1, leaving no report behind."""
import csv
import os
import re
import sys
import tempfile
import unittest

import h5py
import matplotlib.image as mpimg
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
from universae_test import SOURCE, universae  # noqa: E402

ALL_FIGURES = {"statistics.png", "sharing.png", "train_logs.png", "training.png", "stability.png", "overlap.png",
               "mcs_sizes.png", "layers.png", "frequency.png", "matched_vs_frequency.png"}


def run(args, ranks=None, env=None):
    """universae `args` (under MPIEXEC at `ranks` ranks if given) with `env` added to this process's environment."""
    return universae(args, ranks, timeout=600, env={**os.environ, **(env or {})})


def study(job, out, *settings):
    sets = [arg for s in settings for arg in ("--set", s)]
    proc = run(["run", os.path.join(SOURCE, "jobs", job), "--set", f"run.output_dir={out}", *sets], 2)
    assert proc.returncode == 0, proc.stderr
    return out


def results_pairs(path):
    """{pair: (decoder mcs_ab, shared_fraction, svcca p)} straight from a results file."""
    with h5py.File(path, "r") as f:
        return {p: (g["decoder"].attrs["mcs_ab"], g["lap"].attrs["shared_fraction"], g["svcca"].attrs["p_value"])
                for p, g in f["pairs"].items()}


class Report(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        t = cls.tmp.name
        cls.quick = study("quickstart_ci.toml", os.path.join(t, "quick"), "train.snapshot_every=51200")
        cls.seeds = study("seeds_study_ci.toml", os.path.join(t, "seeds"))
        cls.layers = study("cross_layer_study_ci.toml", os.path.join(t, "layers"))

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def check_page(self, out, expected_figures):
        with open(os.path.join(out, "index.html")) as f:
            page = f.read()
        linked = set(re.findall(r"<img src='([^']+)'", page))
        self.assertEqual(linked, expected_figures, page[-2000:])
        for png in linked:
            image = mpimg.imread(os.path.join(out, png))
            self.assertGreater(image.shape[0], 200)
            self.assertGreater(float(np.std(image)), 0.01, f"{png} is blank")
        for missing in ALL_FIGURES - expected_figures:
            self.assertFalse(os.path.exists(os.path.join(out, missing)))
        self.assertEqual(page.count("Not drawn:"), len(ALL_FIGURES - expected_figures))
        self.assertIn("<a href=\"pairs.csv\">", page)
        self.assertFalse(os.path.exists(out + ".partial"))
        with open(os.path.join(out, "pairs.csv")) as f:
            return page, list(csv.DictReader(f))

    def test_quickstart(self):
        proc = run(["report", os.path.join(self.quick, "results.h5")])
        self.assertEqual(proc.returncode, 0, proc.stderr)
        out = os.path.join(self.quick, "report")  # beside the results by default
        # One configuration: no sharing-vs-n/k figure (the statistics figure has the seed pair vs the baseline).
        page, rows = self.check_page(out, {"statistics.png", "train_logs.png", "training.png", "stability.png",
                                           "frequency.png", "matched_vs_frequency.png"})
        # The Run table names the SAEs' hookpoint and architecture; p at the permutation test's floor
        # (200 permutations: 1/201) reads "≤ 0.005", not 0.004975.
        run_table = page[page.index("<h2>Run</h2>"):page.index("<h2>Summary</h2>")]
        self.assertIn("blocks.2.hook_resid_post", run_table)
        self.assertIn("<td>topk</td>", run_table)
        self.assertIn("<td>≤ 0.005</td>", page)
        self.assertNotIn("0.00497", page)
        expected = results_pairs(os.path.join(self.quick, "results.h5"))
        self.assertEqual({r["pair"] for r in rows}, set(expected))
        for r in rows:
            mcs, shared, p = expected[r["pair"]]
            self.assertAlmostEqual(float(r["decoder_mcs_ab"]), mcs, places=12)
            self.assertAlmostEqual(float(r["shared_fraction"]), shared, places=12)
            self.assertAlmostEqual(float(r["svcca_p"]), p, places=12)

    def test_sweep_results(self):
        """Directories mean every results.h5 below them: the seeds grid's 4 tasks and the cross-layer
        grid's 3 tasks plus its across-hookpoint comparisons."""
        out = os.path.join(self.tmp.name, "sweep_report")
        proc = run(["report", self.seeds, self.layers, "--out", out], 2)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        # No snapshots there, and no pair of two sizes at one hookpoint.
        page, rows = self.check_page(out, ALL_FIGURES - {"training.png", "mcs_sizes.png"})
        files = [os.path.join(d, f) for root in (self.seeds, self.layers) for d, _, fs in os.walk(root) for f in fs
                 if f == "results.h5"]
        self.assertGreaterEqual(len(files), 8)
        expected = sum(len(results_pairs(p)) for p in files)
        self.assertEqual(len(rows), expected)
        # Every seed-grid task is labelled by its task id, and the cross-layer heatmap has every hookpoint.
        labels = {r["results"] for r in rows}
        for n in (256, 512):
            for k in (4, 8):
                self.assertIn(f"seeds/k={k},n_latents={n}", labels)
        hooks = {r["hookpoint_a"] for r in rows} | {r["hookpoint_b"] for r in rows}
        self.assertTrue({"blocks.0.hook_resid_post", "blocks.2.hook_resid_post", "blocks.4.hook_resid_post"} <= hooks)
        self.assertTrue(any(r["hookpoint_a"] != r["hookpoint_b"] for r in rows))

    def test_readme_pandas_example(self):
        """The schema's pandas example (docs/file-formats.md) runs as printed, on a real results file."""
        with open(os.path.join(SOURCE, "docs", "file-formats.md")) as f:
            readme = f.read()
        start = readme.index("Into pandas:")
        code = readme[readme.index("```python", start) + len("```python"):readme.index("```", readme.index("```python", start) + 9)]
        code = code.replace("runs/quickstart/results.h5", os.path.join(self.quick, "results.h5"))
        scope = {}
        exec(compile(code, "docs/file-formats.md", "exec"), scope)  # noqa: S102 (the documentation's own code)
        pairs, latents = scope["pairs"], scope["latents"]
        expected = results_pairs(os.path.join(self.quick, "results.h5"))
        self.assertEqual(set(pairs["pair"]), set(expected))
        for _, r in pairs.iterrows():
            self.assertEqual(r["decoder.mcs_ab"], expected[r["pair"]][0])
            self.assertEqual(r["svcca.p_value"], expected[r["pair"]][2])
        self.assertEqual(len(latents), 512)

    def test_bad_inputs_exit_2_without_output(self):
        out = os.path.join(self.tmp.name, "bad_report")
        incomplete = os.path.join(self.tmp.name, "incomplete.h5")
        with h5py.File(os.path.join(self.quick, "results.h5"), "r") as src, h5py.File(incomplete, "w") as dst:
            for k, v in src.attrs.items():
                dst.attrs[k] = v
            dst.attrs["complete"] = False
        empty = os.path.join(self.tmp.name, "empty_dir")
        os.makedirs(empty, exist_ok=True)
        cases = [
            ([os.path.join(self.tmp.name, "nope.h5")], "no such file or directory"),
            ([os.path.join(self.quick, "saes", "seed0.h5")], "not a universae results file"),
            ([incomplete], "incomplete results file"),
            ([empty], "no results.h5 below this directory"),
        ]
        for inputs, message in cases:
            with self.subTest(message):
                proc = run(["report", *inputs, "--out", out], 2)
                self.assertEqual(proc.returncode, 2, proc.stderr)
                self.assertEqual(proc.stderr.count(message), 1, proc.stderr)
                self.assertFalse(os.path.exists(out))
        # The plotting script failing (here: no usable Python) is an internal failure, and leaves nothing.
        proc = run(["report", os.path.join(self.quick, "results.h5"), "--out", out],
                   env={"UNIVERSAE_PYTHON": "/bin/false"})
        self.assertEqual(proc.returncode, 1, proc.stderr)
        self.assertIn("the report script failed", proc.stderr)
        self.assertFalse(os.path.exists(out))
        self.assertFalse(os.path.exists(out + ".partial"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
