"""End to end: `universae extract` and the real-data jobs (issue: real model activations).

1. Rank independence: the same extraction at 1, 2 and 3 ranks writes identical stores (tokens,
   offsets, every activation bit, vocabulary, loss).
2. Interruption: SIGUSR1 through mpirun flushes the partial store and exits 75; SIGKILL leaves a
   partial store; either way the same command resumes and the result equals an uninterrupted run.
3. Bad input: exit 2 on every rank with a message naming the key or file, and no store left behind.
4. The CI twins of the quickstart, of the stories260K seeds study and of the own-Hugging-Face-model
   job (on stories260K converted to Hugging Face's layout) run end to end.
"""
import csv
import hashlib
import os
import signal
import sys
import tempfile
import time
import unittest

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
from universae_test import PYTHON, SOURCE, kill_job, run_command, set_args, start, universae_command  # noqa: E402

JOB = os.path.join(SOURCE, "jobs", "quickstart_ci.toml")
SMALL = ["extract.max_documents=240", "extract.batch_tokens=1024",
         'extract.hookpoints=["blocks.*.hook_resid_post", "blocks.1.mlp.hook_post"]']
# Long enough (~240k tokens, 10 hookpoints: ~10 s on a fast 2-core machine) that a signal sent 1 s after the
# partial store appears lands mid-extraction on any machine this runs on.
LONG = ["extract.max_documents=2400", "extract.batch_tokens=512", 'extract.hookpoints=["blocks.*.hook_resid_post", "blocks.*.mlp.hook_post"]']


def command(out, ranks, settings, sub="extract", job=JOB, launcher=()):
    oversubscribe = ["--oversubscribe"] if ranks and ranks > 2 else []
    return universae_command([sub, job, *set_args(settings + [f"run.output_dir={out}"])], ranks, oversubscribe + list(launcher))


def run(out, ranks, settings, sub="extract", job=JOB, check=True, launcher=()):
    return run_command(command(out, ranks, settings, sub, job, launcher), timeout=900, check=check)


# The store writes run beside the forward only where a rank has a core its forward threads leave free
# (lm/extract_stage.cpp). OpenMPI binds each of 2 ranks to a core of its own; unbound, each rank may use
# every core of the machine (CI's has 2) for its one forward thread.
BESIDE = ["--bind-to", "none", "-x", "OMP_NUM_THREADS=1"]
WAIT = ["--bind-to", "core", "-x", "OMP_NUM_THREADS=1"]


def store(out):
    with h5py.File(os.path.join(out, "activations.h5"), "r") as f:
        arrays = {name: f[name][()] for name in ("tokens", "doc_offsets", "seq_offsets")}
        for h in f["activations"]:
            arrays[h] = f["activations"][h][()]
        arrays["vocab"] = np.array(list(f.attrs["vocab"]))
        arrays["loss"] = np.array(f.attrs["loss"])
        assert f.attrs["complete"]
    return arrays


def assert_same(test, got, want):
    test.assertEqual(sorted(got), sorted(want))
    for key, value in want.items():
        np.testing.assert_array_equal(got[key], value, err_msg=key)


class RankIndependence(unittest.TestCase):
    def test_one_two_three_ranks_write_identical_stores(self):
        with tempfile.TemporaryDirectory() as tmp:
            want = None
            for ranks in (1, 2, 3):
                out = os.path.join(tmp, f"n{ranks}")
                run(out, ranks, SMALL)
                got = store(out)
                if want is None:
                    want = got
                    self.assertEqual(len(got["blocks.1.mlp.hook_post"][0]), 172)
                    self.assertGreater(len(got["seq_offsets"]), 200)
                else:
                    assert_same(self, got, want)

    def test_writes_beside_the_forward_store_the_same_bits(self):
        with tempfile.TemporaryDirectory() as tmp:
            stores = {}
            for name, launcher, log in (("beside", BESIDE, "store writes run beside the forward"),
                                        ("wait", WAIT, "store writes wait for the forward")):
                out = os.path.join(tmp, name)
                proc = run(out, 2, SMALL, launcher=launcher)
                self.assertIn(log, proc.stderr)
                stores[name] = store(out)
            assert_same(self, stores["beside"], stores["wait"])


class Interruption(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.want = None

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def reference(self):
        if Interruption.want is None:
            out = os.path.join(self.tmp.name, "reference")
            run(out, 2, LONG, launcher=WAIT)
            Interruption.want = store(out)
        return Interruption.want

    def interrupt(self, name, signum):
        want = self.reference()  # written while waiting for each round's writes
        out = os.path.join(self.tmp.name, name)
        proc = start(command(out, 2, LONG, launcher=BESIDE))  # a round's writes pending when the signal lands
        partial = os.path.join(out, "activations.h5.partial")
        deadline = time.time() + 120
        while not os.path.exists(partial):
            self.assertIsNone(proc.poll(), "the extraction ended before its store appeared")
            self.assertLess(time.time(), deadline)
            time.sleep(0.02)
        time.sleep(1.0)
        self.assertIsNone(proc.poll(), "the extraction ended before the signal: make LONG longer")
        if signum == signal.SIGKILL:
            err = kill_job(proc)
        else:
            proc.send_signal(signum)
            _, err = proc.communicate(timeout=120)
        if signum != signal.SIGKILL:
            self.assertEqual(proc.returncode, 75, err)
            self.assertIn("run the same command to resume", err)
        self.assertTrue(os.path.exists(partial))
        self.assertFalse(os.path.exists(os.path.join(out, "activations.h5")))
        resumed = run(out, 2, LONG)
        if signum != signal.SIGKILL:
            self.assertIn("resuming", resumed.stderr)
        self.assertFalse(os.path.exists(partial))
        assert_same(self, store(out), want)

    def test_sigusr1_then_resume(self):
        self.interrupt("usr1", signal.SIGUSR1)

    def test_sigkill_then_rerun(self):
        self.interrupt("kill", signal.SIGKILL)


class BadInput(unittest.TestCase):
    def check(self, settings, needle):
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "out")
            proc = run(out, 2, settings, check=False)
            self.assertEqual(proc.returncode, 2, proc.stderr)
            self.assertIn(needle, proc.stderr)
            self.assertEqual(proc.stderr.count("universae: error:"), 1, proc.stderr)
            leftovers = [f for f in os.listdir(out)] if os.path.exists(out) else []
            self.assertEqual(leftovers, [], "nothing is left behind")

    def test_missing_model(self):
        self.check(["extract.model=/nonexistent/model.bin"], "/nonexistent/model.bin")

    def test_not_a_model(self):
        self.check([f"extract.model={os.path.join(SOURCE, 'README.md')}"], "README.md")

    def test_unknown_hookpoint(self):
        self.check(['extract.hookpoints=["blocks.9.hook_resid_post"]'], "blocks.9.hook_resid_post")
        self.check(['extract.hookpoints=["blocks.0.attn_out"]'], "unknown hookpoint")

    def test_seq_len_beyond_the_model(self):
        self.check(["extract.seq_len=4096"], "extract.seq_len")

    def test_missing_input(self):
        self.check(['extract.inputs=["/nonexistent/text.txt"]'], "/nonexistent/text.txt")

    def test_bad_jsonl(self):
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
            f.write('{"text": "fine"}\n{"txt": "no text field"}\n')
        try:
            self.check([f'extract.inputs=["{f.name}"]'], f.name + ":2")
        finally:
            os.unlink(f.name)


class Jobs(unittest.TestCase):
    def test_quickstart_ci_same_at_one_and_two_ranks(self):
        with tempfile.TemporaryDirectory() as tmp:
            results = []
            for ranks in (1, 2):
                out = os.path.join(tmp, f"n{ranks}")
                run(out, ranks, [], sub="run")
                with h5py.File(os.path.join(out, "results.h5"), "r") as f:
                    pair = f["pairs/seed0--seed1"]
                    results.append((pair["decoder"].attrs["mcs_ab"], pair["lap"].attrs["shared_fraction"],
                                    pair["lap/decoder_match"][()], f["saes/seed0/top_tokens"][()],
                                    f["saes/seed0/top_windows"][()]))
                    self.assertTrue(pair["lap"].attrs["certified"])
            self.assertEqual(results[0][0], results[1][0])
            self.assertEqual(results[0][1], results[1][1])
            np.testing.assert_array_equal(results[0][2], results[1][2])
            np.testing.assert_array_equal(results[0][3], results[1][3])
            np.testing.assert_array_equal(results[0][4], results[1][4])  # each rank writes its latents' windows

    def test_hf_model_ci_on_stories260k_in_hugging_face_layout(self):
        job = os.path.join(SOURCE, "jobs", "hf_model_ci.toml")
        with tempfile.TemporaryDirectory() as tmp:
            model = os.path.join(tmp, "stories260K-hf")
            run_command([PYTHON, os.path.join(SOURCE, "scripts", "hf_models.py"), "hf-from-llama2c",
                         os.path.join(SOURCE, "..", "shared", "data", "stories260K.bin"), model], check=True)
            out = os.path.join(tmp, "out")
            run(out, 2, [f"extract.model={model}"], sub="run", job=job)
            with h5py.File(os.path.join(out, "results.h5"), "r") as f:
                pair, chance = f["pairs/seed0--seed1"], f["pairs/seed0--random_init"]
                self.assertTrue(pair["lap"].attrs["certified"])
                self.assertGreater(pair["decoder"].attrs["mcs_ab"], chance["decoder"].attrs["mcs_ab"] + 0.1)
            with h5py.File(os.path.join(out, "activations.h5"), "r") as f:
                self.assertEqual(f.attrs["model"], os.path.normpath(os.path.abspath(model)))
                self.assertEqual(len(f["doc_offsets"]) - 1, 600)
                # A directory model is named by its files (hashlib is the reference): one line each,
                # "<sha256>  <bytes>  <name>", and model_sha256 is the SHA-256 of those lines.
                counted = sorted(n for n in os.listdir(model) if n == "config.json" or n.endswith(".safetensors")
                                 or n in ("tokenizer.json", "tokenizer_config.json", "model.safetensors.index.json"))
                lines = []
                for name in counted:
                    with open(os.path.join(model, name), "rb") as fh:
                        data = fh.read()
                    lines.append(f"{hashlib.sha256(data).hexdigest()}  {len(data)}  {name}")
                self.assertIn("model.safetensors", counted)
                self.assertEqual([v.decode() if isinstance(v, bytes) else v for v in f.attrs["model_files"]], lines)
                self.assertEqual(f.attrs["model_sha256"], hashlib.sha256("".join(l + "\n" for l in lines).encode()).hexdigest())
                self.assertEqual(f.attrs["model_bytes"], sum(os.path.getsize(os.path.join(model, n)) for n in counted))
                self.assertEqual(f.attrs["model_name"], "stories260K-hf")
                self.assertEqual(f.attrs["model_format"], "huggingface")
                self.assertTrue(f.attrs["activations_finite"])

    def test_stories260k_seeds_ci_study(self):
        job = os.path.join(SOURCE, "jobs", "stories260k_seeds_ci.toml")
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "study")
            proc = run(out, 2, [], sub="run", job=job)
            with open(os.path.join(out, "study_summary.csv")) as f:
                rows = list(csv.DictReader(f))
            seeds = [r for r in rows if not r["scope"].startswith("across") and r["b"] != "random_init"]
            chance = [r for r in rows if r["b"] == "random_init"]
            across = [r for r in rows if r["scope"].startswith("across")]
            self.assertEqual(len(seeds), 5 * 2 * 3, proc.stdout)  # 5 layers × 2 sizes × 3 seed pairs
            self.assertEqual(len(chance), 10)
            self.assertEqual(len(across), 2 * 10)  # 2 sizes × 10 layer pairs
            for r in seeds + across:
                self.assertEqual(r["certified"], "1")
                self.assertLessEqual(float(r["svcca_p"]), 0.05)
            # Trained seeds agree more than a trained SAE with an untrained one, on every layer and size.
            for c in chance:
                same = [float(r["decoder_mcs_ab"]) for r in seeds if r["scope"] == c["scope"]]
                self.assertGreater(min(same), float(c["decoder_mcs_ab"]), c["scope"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
