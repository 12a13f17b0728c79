"""End to end: the training engine's parallel layouts and kill-and-resume (issue: training engine).

1. Layout invariance, every architecture: the same job on 1 rank, 2 data-parallel ranks, 2 seed
   groups and 2 latent shards. Data parallelism and seed groups give bit-identical weights (exact
   fixed-point gradient sums); latent sharding sums partial reconstructions in floating point and
   must agree within 1e-5 (jumprelu: but for the few weights a discontinuity flip touched, see check()).
   The same with run.kernels = "generic" (the ATen-only step a GPU runs, here on the CPU): its data-
   parallel runs are bit-identical to its one-rank run, and it agrees with the CPU kernels within 1e-5.
   train.exact_sum = false (a float all-reduce): within 1e-5 of the exact sum on 1 and 2 ranks.
   Deferred gradient rows (topk, batchtopk; one micro-batch per rank, 1 rank and 2 latent shards): the
   dense step's SAEs bit for bit.
2. Kill and resume: a run killed with SIGKILL at a random moment after its first checkpoint, then
   re-run with the same command, ends with SAE files bit-identical to an uninterrupted run.
3. SIGUSR1 (forwarded by mpirun) and SIGTERM (a single process, as Slurm signals each task): the
   run writes a checkpoint and exits 75; re-running resumes and ends bit-identical.
"""
import json
import os
import random
import signal
import sys
import tempfile
import time
import unittest

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
from universae_test import SOURCE, kill_job, run_command, set_args, start, universae_command  # noqa: E402

JOB = os.path.join(SOURCE, "jobs", "synthetic_ci.toml")  # the base; every setting below overrides it

SMALL = ["data.synthetic.d=16", "data.synthetic.n_features=96", "data.synthetic.mean_l0=4", "sae.n_latents=64",
         "sae.k=4", "sae.seeds=[0,1]", "train.tokens=1024", "train.batch_size=256", "train.micro_batch=64",
         "train.lr=0.01", "train.warmup_steps=2", "train.log_every=1", "train.eval_tokens=1024",
         "train.dead_tokens=256", "train.k_aux=8", "train.checkpoint_every=0"]
LONG = ["data.synthetic.d=64", "sae.n_latents=512", "sae.k=8", "sae.seeds=[0,1]", "train.tokens=163840",
        "train.batch_size=1024", "train.micro_batch=512", "train.lr=0.01", "train.warmup_steps=20",
        "train.log_every=10", "train.eval_tokens=4096", "train.checkpoint_every=10"]


def command(out, ranks, settings):
    # ranks = 0: a single process, no launcher
    return universae_command(["train", JOB, *set_args(settings + [f"run.output_dir={out}"])], ranks)


def run(out, ranks, settings, check=True, env=None):
    return run_command(command(out, ranks, settings), timeout=300, check=check, env=env)


def sae_arrays(out, seeds=(0, 1)):
    arrays = {}
    for seed in seeds:
        with h5py.File(os.path.join(out, "saes", f"seed{seed}.h5"), "r") as f:
            for name in ("W_enc", "b_enc", "W_dec", "b_dec", "threshold", "r_mag", "b_mag", "frequency"):
                if name in f:
                    arrays[(seed, name)] = f[name][()]
            metrics = f["train/metrics"][()]
            cols = [c.decode() if isinstance(c, bytes) else c for c in f["train/columns"][()]]
            arrays[(seed, "train/metrics")] = np.delete(metrics, cols.index("tokens_per_s"), axis=1)
    return arrays


class Layouts(unittest.TestCase):
    def check(self, arch):
        with tempfile.TemporaryDirectory() as tmp:
            settings = SMALL + [f"sae.architecture={arch}"]
            outs = {}
            for name, ranks, extra in (("one", 1, []), ("dp2", 2, []), ("groups2", 2, ["train.seed_groups=2"]),
                                       ("shards2", 2, ["train.latent_shards=2"])):
                outs[name] = os.path.join(tmp, name)
                run(outs[name], ranks, settings + extra)
            base = sae_arrays(outs["one"])
            for name in ("dp2", "groups2"):
                other = sae_arrays(outs[name])
                for key, value in base.items():
                    if key[1] == "train/metrics":  # float64 sums over ranks: equal up to their rounding
                        np.testing.assert_allclose(other[key], value, rtol=1e-12, err_msg=f"{arch} {name} {key}")
                    else:
                        np.testing.assert_array_equal(other[key], value, err_msg=f"{arch} {name} {key}")
            sharded = sae_arrays(outs["shards2"])
            for key, value in base.items():
                if key[1] in ("frequency", "train/metrics"):
                    continue  # counts of activations that sit within rounding of a top-k boundary may differ
                diff = np.abs(sharded[key] - value)
                if arch == "jumprelu":
                    # jumprelu's loss is discontinuous in the weights (the step at θ and the straight-through
                    # window of width ε around it): a rounding-level difference can move one token's
                    # pre-activation across an edge, and the few weights that token's gradient touches then
                    # differ by a fraction of one update (seen: one element of 1,024 by 3e-5, on AVX-512
                    # hardware). Every other element must agree within rounding, those few within 1e-3.
                    self.assertLessEqual(int((diff > 1e-5).sum()), max(1, diff.size // 200), f"{arch} latent shards {key}")
                    self.assertLessEqual(float(diff.max()), 1e-3, f"{arch} latent shards {key}: max |diff| {diff.max():.3g}")
                    continue
                err = float(diff.max())
                self.assertLessEqual(err, 1e-5, f"{arch} latent shards {key}: max |diff| {err:.3g}")
            moved = float(np.abs(base[(0, "W_dec")] - base[(1, "W_dec")]).max())
            self.assertGreater(moved, 0.1, "the two seeds must differ")

    def check_deferred(self, arch):
        """A rank that runs the whole batch alone may make the W_enc and W_dec gradient rows inside the
        optimiser step instead of holding them (UNIVERSAE_DEFER_GRADIENTS forces either way, here at a
        size the size rule leaves dense): on one rank and on 2 latent shards, the SAEs must be the dense
        step's bit for bit."""
        with tempfile.TemporaryDirectory() as tmp:
            settings = SMALL + [f"sae.architecture={arch}", "train.micro_batch=256"]  # one micro-batch per step
            got = {}
            for ranks, extra in ((1, []), (2, ["train.latent_shards=2"])):
                for mode in ("always", "never"):
                    out = os.path.join(tmp, f"{ranks}-{mode}")
                    r = run(out, ranks, settings + extra, env=dict(os.environ, UNIVERSAE_DEFER_GRADIENTS=mode))
                    self.assertEqual("made row by row in the optimiser step" in r.stderr + r.stdout, mode == "always",
                                     f"{arch} {ranks} rank(s) {mode}: the log must say whether the rows were deferred")
                    got[(ranks, mode)] = sae_arrays(out)
                for key, value in got[(ranks, "never")].items():
                    if key[1] == "train/metrics":
                        np.testing.assert_allclose(got[(ranks, "always")][key], value, rtol=1e-12,
                                                   err_msg=f"{arch} {ranks} rank(s) {key}")
                    else:
                        np.testing.assert_array_equal(got[(ranks, "always")][key], value,
                                                      err_msg=f"{arch} {ranks} rank(s) deferred {key}")

    def test_topk_deferred_gradients(self):
        self.check_deferred("topk")

    def test_batchtopk_deferred_gradients(self):
        self.check_deferred("batchtopk")

    def test_relu(self):
        self.check("relu")

    def test_topk(self):
        self.check("topk")

    def test_batchtopk(self):
        self.check("batchtopk")

    def test_jumprelu(self):
        self.check("jumprelu")

    def test_gated(self):
        self.check("gated")


class GenericKernels(unittest.TestCase):
    """run.kernels = "generic" through the whole trainer (device-resident counters, thresholds and
    statistics; the tensors stay on the CPU here) and train.exact_sum = false."""

    def check(self, arch):
        with tempfile.TemporaryDirectory() as tmp:
            settings = SMALL + [f"sae.architecture={arch}"]
            outs = {}
            for name, ranks, extra in (("fast", 1, []), ("one", 1, ["run.kernels=generic"]),
                                       ("dp2", 2, ["run.kernels=generic"]),
                                       ("shards2", 2, ["run.kernels=generic", "train.latent_shards=2"]),
                                       ("float1", 1, ["run.kernels=generic", "train.exact_sum=false"]),
                                       ("float2", 2, ["run.kernels=generic", "train.exact_sum=false"])):
                outs[name] = os.path.join(tmp, name)
                r = run(outs[name], ranks, settings + extra)
                if name != "fast":
                    self.assertIn("generic kernels", r.stderr + r.stdout)
            fast, one = sae_arrays(outs["fast"]), sae_arrays(outs["one"])
            dp2 = sae_arrays(outs["dp2"])
            for key, value in one.items():  # the exact sum: the rank count changes no bit
                if key[1] == "train/metrics":
                    np.testing.assert_allclose(dp2[key], value, rtol=1e-12, err_msg=f"{arch} generic dp2 {key}")
                else:
                    np.testing.assert_array_equal(dp2[key], value, err_msg=f"{arch} generic dp2 {key}")
            worst = {}
            for name, other in (("fast", fast), ("shards2", sae_arrays(outs["shards2"])),
                                ("float1", sae_arrays(outs["float1"])), ("float2", sae_arrays(outs["float2"]))):
                for key, value in one.items():
                    if key[1] in ("frequency", "train/metrics"):
                        continue  # counts at a top-k boundary may differ within rounding
                    err = float(np.abs(other[key] - value).max())
                    worst[name] = max(worst.get(name, 0.0), err)
                    self.assertLessEqual(err, 1e-5, f"{arch} generic vs {name} {key}: max |diff| {err:.3g}")
            bits = all(np.array_equal(sae_arrays(outs["float1"])[k], v) for k, v in sae_arrays(outs["float2"]).items())
            print(f"\n  {arch}: max |generic − x|: " + ", ".join(f"{k} {v:.2g}" for k, v in worst.items()) +
                  f"; float sum on 1 and 2 ranks bit-identical: {bits}", flush=True)

    def test_topk(self):
        self.check("topk")

    def test_batchtopk(self):
        self.check("batchtopk")

    def test_gated(self):
        self.check("gated")

    def test_compare_on_the_device_scan(self):
        # compare with run.kernels = "generic" (core::DeviceTopK for the similarity passes,
        # correlation_row_maxima_generic for the activation correlation of codes, the dense correlation of
        # relu(pre) on the device, the representational similarities' scores() twins) writes the same max
        # cosines, argmaxes, certified matchings, correlation maxima and mutual-kNN scores and nulls, bit
        # for bit, as the CPU kernels, on 1 and 2 ranks (the correlation's float64 sums could differ in the
        # last bit; here they do not). SVCCA, RSA and CKA sum float64 in another order: 1e-12 relative.
        with tempfile.TemporaryDirectory() as tmp:
            train_out = os.path.join(tmp, "train")
            run(train_out, 1, SMALL + ["sae.architecture=topk"])
            saes = [os.path.join(train_out, "saes", f"seed{s}.h5") for s in (0, 1)]
            datasets = {}
            pre = ['compare.correlation_input="pre"']  # the dense correlation of relu(pre), on the device too
            # The CPU kernels without compare.screen: its float64 products differ from float32 GEMMs' in the
            # last bits (tests/mpi/test_max_cosine.cpp checks the screened lists).
            plain = ["compare.screen=false"]
            for name, ranks, extra in (("fast", 1, plain), ("generic", 1, ["run.kernels=generic"]),
                                       ("generic2", 2, ["run.kernels=generic"]), ("fast_pre", 1, pre + plain),
                                       ("generic_pre", 2, pre + ["run.kernels=generic"])):
                out = os.path.join(tmp, name + ".h5")
                args = ["compare", JOB, "--sae", saes[0], "--sae", saes[1], "--out", out,
                        *set_args([s for s in SMALL if s.startswith("data.")] + ["compare.permutations=20"] + extra)]
                r = run_command(universae_command(args, ranks), timeout=300)
                self.assertIn("generic kernels" if "run.kernels=generic" in extra else "fast CPU kernels", r.stderr + r.stdout)
                found = {}

                def record(key, v):
                    if isinstance(v, h5py.Dataset):
                        found[key] = v[()]
                    elif "score" in v.attrs:  # a representational similarity's group
                        found[key + "@score"] = v.attrs["score"]
                with h5py.File(out, "r") as f:
                    f["pairs"].visititems(record)
                datasets[name] = found
            self.assertTrue(any("max_cos" in k for k in datasets["fast"]), sorted(datasets["fast"]))
            self.assertTrue(any("corr" in k for k in datasets["fast"]), sorted(datasets["fast"]))  # the correlation twin
            for name, reference in (("generic", "fast"), ("generic2", "fast"), ("generic_pre", "fast_pre")):
                self.assertEqual(sorted(datasets[name]), sorted(datasets[reference]))
                for key, value in datasets[reference].items():
                    if any(f"{m}/" in key or key.endswith(f"{m}@score") for m in ("svcca", "rsa", "cka")):
                        np.testing.assert_allclose(datasets[name][key], value, rtol=1e-12, atol=1e-15, err_msg=f"{name} {key}")
                    else:
                        np.testing.assert_array_equal(datasets[name][key], value, err_msg=f"{name} {key}")
            self.assertTrue(any(k.endswith("mutual_knn/null") and len(v) == 20 for k, v in datasets["fast"].items()))
            self.assertTrue(any(k.endswith("rsa@score") for k in datasets["fast"]), sorted(datasets["fast"]))


class StoreTraining(unittest.TestCase):
    """Every architecture trains on an activation store (several epochs through the seeded shuffle),
    and a data-parallel run over the store equals the single-rank run bit for bit."""

    HOOK = "blocks.0.hook_resid_post"

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        rng = np.random.default_rng(7)
        T, d, m = 6000, 16, 48
        G = rng.standard_normal((m, d))
        G /= np.linalg.norm(G, axis=1, keepdims=True)
        codes = (rng.uniform(size=(T, m)) < 4 / m) * np.abs(rng.normal(1, 0.25, (T, m)))
        cls.store = os.path.join(cls.tmp.name, "store.h5")
        with h5py.File(cls.store, "w") as f:
            f[f"activations/{cls.HOOK}"] = (codes @ G + 0.01 * rng.standard_normal((T, d))).astype(np.float16)
            f[f"activations/{cls.HOOK}"].attrs["dtype"] = "float16"
            f["tokens"] = rng.integers(0, 100, T).astype(np.int32)
            f["seq_offsets"] = np.array([0, T], dtype=np.int64)
            f.attrs["model"] = "synthetic-store"
            f.attrs["complete"] = True
        cls.settings = SMALL + [f"data.source={cls.store}", f"data.hookpoint={cls.HOOK}", "data.shuffle_chunk=64",
                                "data.shuffle_buffer=512", "train.tokens=12288", "train.eval_tokens=1000",
                                "train.normalize_input=true"]

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_every_architecture_trains_on_the_store(self):
        for arch in ("relu", "topk", "batchtopk", "jumprelu", "gated"):
            out = os.path.join(self.tmp.name, arch)
            run(out, 1, self.settings + [f"sae.architecture={arch}"])
            with h5py.File(os.path.join(out, "saes", "seed0.h5"), "r") as f:
                self.assertTrue(f.attrs["complete"])
                self.assertEqual(f.attrs["model"], "synthetic-store")  # what the store names; it records no hashes
                self.assertEqual(f.attrs["store"], os.path.abspath(self.store))
                self.assertNotIn("model_sha256", f.attrs)
                self.assertEqual(f.attrs["hookpoint"], self.HOOK)
                self.assertEqual(f.attrs["architecture"], arch)
                self.assertTrue(np.isfinite(f.attrs["fvu"]), arch)
                self.assertLess(f.attrs["fvu"], 1.0, f"{arch} learned nothing")
                self.assertGreater(f.attrs["input_scale"], 1.0)  # E|x|^2 ~ 4 < d = 16
                self.assertEqual(f["train/metrics"].shape[0], 48)  # 12288 / 256 steps, logged every step

    def test_data_parallel_store_run_is_bit_identical(self):
        outs = []
        for ranks in (1, 2):
            outs.append(os.path.join(self.tmp.name, f"dp{ranks}"))
            run(outs[-1], ranks, self.settings + ["sae.architecture=topk"])
        want, got = sae_arrays(outs[0]), sae_arrays(outs[1])
        for key, value in want.items():
            if key[1] == "train/metrics":
                np.testing.assert_allclose(got[key], value, rtol=1e-12, err_msg=str(key))
            else:
                np.testing.assert_array_equal(got[key], value, err_msg=str(key))


class KillAndResume(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.reference = os.path.join(cls.tmp.name, "reference")
        run(cls.reference, 2, LONG)
        cls.want = sae_arrays(cls.reference)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def assert_same_as_reference(self, out):
        got = sae_arrays(out)
        self.assertEqual(sorted(got), sorted(self.want))
        for key, value in self.want.items():
            np.testing.assert_array_equal(got[key], value, err_msg=str(key))
        self.assertFalse(os.path.exists(os.path.join(out, "checkpoint.h5")), "the checkpoint is removed at the end")
        with open(os.path.join(out, "train_log.jsonl")) as log:
            steps = [json.loads(line)["step"] for line in log]
        self.assertEqual(steps, sorted(steps), "the resumed metrics log has no repeated steps")

    def start(self, out, ranks):
        return start(command(out, ranks, LONG))

    def wait_for_checkpoint(self, proc, out):
        ckpt = os.path.join(out, "checkpoint.h5")
        deadline = time.time() + 120
        while not os.path.exists(ckpt):
            self.assertIsNone(proc.poll(), "the run ended before its first checkpoint")
            self.assertLess(time.time(), deadline, "no checkpoint within 120 s")
            time.sleep(0.02)

    def test_sigkill_at_random_moments(self):
        rng = random.Random(20261121)
        for trial in range(2):
            out = os.path.join(self.tmp.name, f"killed{trial}")
            proc = self.start(out, 2)
            self.wait_for_checkpoint(proc, out)
            time.sleep(rng.uniform(0.0, 1.5))
            kill_job(proc)
            resumed = run(out, 2, LONG)
            self.assertIn("resuming from", resumed.stderr)
            self.assert_same_as_reference(out)

    def stop_and_resume(self, name, ranks, signum):
        out = os.path.join(self.tmp.name, name)
        proc = self.start(out, ranks)
        self.wait_for_checkpoint(proc, out)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=120)
        self.assertEqual(proc.returncode, 75, err)
        self.assertIn("checkpoint", err)
        run(out, ranks, LONG)
        self.assert_same_as_reference(out)

    def test_sigusr1_through_mpirun(self):
        self.stop_and_resume("usr1", 2, signal.SIGUSR1)

    def test_sigterm_single_process(self):
        # Data parallelism is bit-identical, so one process must equal the 2-rank reference.
        self.stop_and_resume("term", 0, signal.SIGTERM)

if __name__ == "__main__":
    unittest.main(verbosity=2)
