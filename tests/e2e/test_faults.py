"""Fault injection (issue: hardening). What a batch job must survive without a researcher losing days:

1. A rank killed mid-training or mid-comparison: every rank exits within 60 s, the launcher's message
   names the lost rank, and nothing is published (no SAE file, no results file).
2. SIGKILL of the whole job at random moments of `universae run` (extract → train → compare), twice in a
   row, then a rerun of the same command: the final SAEs and results equal an uninterrupted run's.
3. An output directory that cannot be written, or a file system without room for the outputs: a clear
   error (exit 2, the directory named) before any long computation. A disk that fills up during the
   run: the write error says so, the partial file stays, and the same command resumes once there is room.
4. NaN or Inf in an activation store: refused by train and by compare with the first bad position.
"""
import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
from universae_test import BINARY, SOURCE, kill_job, run_command, set_args, start, universae, universae_command  # noqa: E402

QUICKSTART = os.path.join(SOURCE, "jobs", "quickstart_ci.toml")
SYNTHETIC = os.path.join(SOURCE, "jobs", "synthetic_ci.toml")


def command(sub, job, out, settings=(), ranks=2):
    return universae_command([sub, job, *set_args(list(settings) + [f"run.output_dir={out}"])], ranks)


def run(sub, job, out, settings=(), ranks=2, check=True):
    return run_command(command(sub, job, out, settings, ranks), timeout=600, check=check)


def rank_pids(launcher_pid):
    """{rank: pid} of the universae processes below the launcher (read from their environment)."""
    ranks = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if not fh.read().startswith(BINARY.encode()):
                    continue
            with open(f"/proc/{pid}/environ", "rb") as fh:
                env = dict(e.split(b"=", 1) for e in fh.read().split(b"\0") if b"=" in e)
            with open(f"/proc/{pid}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        if ppid == launcher_pid and b"OMPI_COMM_WORLD_RANK" in env:
            ranks[int(env[b"OMPI_COMM_WORLD_RANK"])] = int(pid)
    return ranks


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_for(predicate, proc, what, timeout=120):
    deadline = time.time() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"the job ended before {what}:\n{proc.stderr.read()}")
        if time.time() > deadline:
            raise AssertionError(f"no {what} within {timeout} s")
        time.sleep(0.05)


def assert_usage_error(test, proc, *needles):
    """Exit 2 and one `universae: error:` line (rank 0's) holding every needle."""
    test.assertEqual(proc.returncode, 2, proc.stderr)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("universae: error:")]
    test.assertEqual(len(errors), 1, proc.stderr)
    for needle in needles:
        test.assertIn(needle, errors[0])


def arrays_and_attrs(path, out_dir):
    """Every dataset and attribute of an HDF5 file, timings left out and the output directory blanked."""
    items = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            for key, value in obj.attrs.items():
                if "seconds" in key or key in ("created", "host", "command", "git_sha"):
                    continue
                if isinstance(value, (str, bytes)):
                    value = (value.decode() if isinstance(value, bytes) else value).replace(out_dir, "OUT")
                items[(name, "@" + key)] = value
            if isinstance(obj, h5py.Dataset):
                items[(name, "")] = obj[()]
                if name == "train/metrics":  # its tokens_per_s column is a speed, not a result
                    columns = [c.decode() for c in f["train/columns"][()]]
                    items[(name, "")] = np.delete(obj[()], columns.index("tokens_per_s"), axis=1)
        visit("/", f)
        f.visititems(visit)
    return items


class RankLost(unittest.TestCase):
    """mpirun ends the job when one rank dies; the survivors must not sit in a collective."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()

    def tearDown(self):
        self.tmp.cleanup()

    def kill_rank_and_watch(self, cmd, started, published):
        proc = start(cmd)
        try:
            wait_for(started, proc, "the stage started")
            ranks = {}
            wait_for(lambda: len(ranks.update(rank_pids(proc.pid)) or ranks) == 2, proc, "both ranks")
            os.kill(ranks[1], signal.SIGKILL)
            t0 = time.time()
            _, err = proc.communicate(timeout=60)
            while alive(ranks[0]) and time.time() - t0 < 60:
                time.sleep(0.05)
            elapsed = time.time() - t0
        finally:
            if proc.poll() is None:
                kill_job(proc)
        self.assertNotEqual(proc.returncode, 0)
        self.assertFalse(alive(ranks[0]), "rank 0 outlived the job by 60 s")
        self.assertRegex(err, r"rank 1\b.*(signal 9|Killed)", "the launcher names the lost rank")
        for path in published:
            self.assertFalse(os.path.exists(path), f"{path} was published by a job that lost a rank")
        print(f"rank 1 killed: launcher and every rank gone {elapsed:.1f} s later", flush=True)

    def test_rank_killed_mid_training(self):
        out = os.path.join(self.tmp.name, "train")
        log = os.path.join(out, "train_log.jsonl")
        self.kill_rank_and_watch(
            command("train", SYNTHETIC, out, ["train.tokens=50000000", "train.log_every=10"]),
            lambda: os.path.exists(log) and os.path.getsize(log) > 0,
            [os.path.join(out, "saes", "seed0.h5"), os.path.join(out, "saes", "seed1.h5")])

    def test_rank_killed_mid_comparison(self):
        saes = os.path.join(self.tmp.name, "saes")
        run("train", SYNTHETIC, saes, ["train.tokens=20480"])
        out = os.path.join(self.tmp.name, "compare")
        results = os.path.join(out, "results.h5")
        # Enough permutations that the comparison runs for minutes, not seconds.
        cmd = universae_command(["compare", "--sae", os.path.join(saes, "saes", "seed0.h5"),
                                 "--sae", os.path.join(saes, "saes", "seed1.h5"), "--out", results,
                                 "--set", "compare.permutations=2000000"], 2)
        self.kill_rank_and_watch(cmd, lambda: os.path.exists(results + ".partial"), [results])


class KillAndRerun(unittest.TestCase):
    """SIGKILL at random moments of every stage, then the same command: the same final results."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.reference = os.path.join(cls.tmp.name, "reference")
        t0 = time.time()
        run("run", QUICKSTART, cls.reference)
        cls.duration = time.time() - t0
        cls.want = cls.outputs(cls.reference)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    @staticmethod
    def outputs(out):
        files = {"results.h5": os.path.join(out, "results.h5"), "activations.h5": os.path.join(out, "activations.h5")}
        for name in sorted(os.listdir(os.path.join(out, "saes"))):
            files["saes/" + name] = os.path.join(out, "saes", name)
        return {name: arrays_and_attrs(path, out) for name, path in files.items()}

    def test_sigkill_twice_at_random_moments_then_rerun(self):
        rng = random.Random(20261122)
        for trial in range(3):
            out = os.path.join(self.tmp.name, f"killed{trial}")
            moments = []
            for _ in range(2):  # killed, then the rerun killed again somewhere else
                proc = start(command("run", QUICKSTART, out))
                moments.append(rng.uniform(0.5, self.duration))
                time.sleep(moments[-1])
                kill_job(proc)
            run("run", QUICKSTART, out)
            got = self.outputs(out)
            with self.subTest(trial=trial, killed_at=moments):
                self.assertEqual(sorted(got), sorted(self.want))
                for name, want in self.want.items():
                    self.assertEqual(sorted(got[name]), sorted(want), name)
                    for key, value in want.items():
                        np.testing.assert_array_equal(got[name][key], value, err_msg=f"{name} {key}")
                leftovers = [f for f in os.listdir(out) if f.endswith(".partial") or f == "checkpoint.h5"]
                self.assertEqual(leftovers, [], "the finished rerun leaves no partial file or checkpoint")


class Unwritable(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()

    def tearDown(self):
        self.tmp.cleanup()

    def assert_refused_fast(self, proc, elapsed, *needles):
        assert_usage_error(self, proc, *needles)
        self.assertLess(elapsed, 30.0, "refused before the long computation")

    def test_read_only_output_directory(self):
        # Root writes anywhere, so the job runs as `nobody` in a directory only root may write.
        if os.geteuid() == 0:
            prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "env", "HOME=/tmp"]
        else:
            prefix = []
        locked = os.path.join(self.tmp.name, "locked")
        os.mkdir(locked)
        os.chmod(self.tmp.name, 0o755)
        os.chmod(locked, 0o555)
        out = os.path.join(locked, "out")
        t0 = time.time()
        proc = run_command(prefix + command("run", SYNTHETIC, out, ["train.tokens=100000000"]), timeout=120, cwd="/tmp")
        self.assert_refused_fast(proc, time.time() - t0, out)
        self.assertFalse(os.path.exists(out))

    @contextlib.contextmanager
    def tmpfs(self, name, size):
        """A small file system of its own (root only: elsewhere the test is skipped)."""
        mnt = os.path.join(self.tmp.name, name)
        os.mkdir(mnt)
        if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", mnt], capture_output=True).returncode:
            self.skipTest("cannot mount a tmpfs here (needs root); test_no_room_for_the_saes covers the space check")
        try:
            yield mnt
        finally:
            subprocess.run(["umount", mnt], check=True)

    def test_full_file_system(self):
        # A 4 MB tmpfs: the quickstart store needs about 15 MB. Refused once the token count is known,
        # before the model runs, with the need and the room.
        with self.tmpfs("small", "4m") as mnt:
            with open(os.path.join(mnt, "filler"), "wb") as fh:
                fh.write(b"\0" * (1 << 20))
            out = os.path.join(mnt, "out")
            t0 = time.time()
            proc = run("run", QUICKSTART, out, check=False)
            self.assert_refused_fast(proc, time.time() - t0, out, "not enough free space", "activation store",
                                     "GB free")
            self.assertEqual(sorted(os.listdir(mnt)), ["filler"], "nothing is left behind")

    def test_disk_fills_during_extraction(self):
        # Room at the start (the check passes), none a moment later: the write fails with the reason,
        # the partial store stays, and once there is room again the same command resumes and finishes.
        with self.tmpfs("filling", "40m") as mnt:
            out = os.path.join(mnt, "out")
            settings = ["extract.max_documents=1300"]  # a 30 MB store
            proc = start(command("extract", QUICKSTART, out, settings))
            partial = os.path.join(out, "activations.h5.partial")
            wait_for(lambda: os.path.exists(partial), proc, "the partial store")
            filler = os.path.join(mnt, "filler")
            with open(filler, "wb", buffering=0) as fh:  # unbuffered: ENOSPC surfaces in write()
                try:
                    while True:
                        fh.write(b"\0" * (1 << 20))
                except OSError:
                    pass
            _, err = proc.communicate(timeout=300)
            self.assertEqual(proc.returncode, 1, err)
            self.assertIn("the file system holding it is full", err)
            self.assertIn(partial, err)
            self.assertTrue(os.path.exists(partial))
            self.assertFalse(os.path.exists(os.path.join(out, "activations.h5")), "nothing is published")
            os.remove(filler)
            resumed = run("extract", QUICKSTART, out, settings)
            self.assertIn("resuming", resumed.stderr)
            with h5py.File(os.path.join(out, "activations.h5"), "r") as f:
                self.assertTrue(f.attrs["complete"])
                self.assertEqual(f["activations/blocks.2.hook_resid_post"].shape[0], f.attrs["n_tokens"])

    def test_no_room_for_the_saes(self):
        # Two SAEs of 2^32 latents (4 TB each with their checkpoint) fit on no disk this test runs on.
        out = os.path.join(self.tmp.name, "out")
        t0 = time.time()
        proc = run("train", SYNTHETIC, out, ["sae.n_latents=4294967296"], check=False)
        self.assert_refused_fast(proc, time.time() - t0, os.path.join(out, "saes"), "not enough free space",
                                 "2 SAE files")
        self.assertFalse(os.path.exists(out), "nothing is left behind")


class NonFinite(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.base = os.path.join(cls.tmp.name, "base")
        run("run", QUICKSTART, cls.base, ["run.stages=[\"extract\", \"train\"]", "train.tokens=8192"])

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def poisoned_store(self, name, cells):
        path = os.path.join(self.tmp.name, name)
        shutil.copy(os.path.join(self.base, "activations.h5"), path)
        with h5py.File(path, "r+") as f:
            ds = f["activations/blocks.2.hook_resid_post"]
            for (row, col), value in cells.items():
                ds[row, col] = value
            f.attrs["activations_finite"] = False  # as extract records a store it found non-finite values in
        return path

    def assert_refused(self, proc, out, *needles):
        assert_usage_error(self, proc, *needles)
        self.assertFalse(os.path.exists(out), "nothing is left behind")

    def test_train_names_the_first_nan(self):
        # Rows on both ranks' shares; the first in the file is reported whichever rank finds it.
        store = self.poisoned_store("nan.h5", {(50000, 3): np.nan, (1234, 60): np.nan, (40000, 0): np.inf})
        with h5py.File(store, "r") as f:
            offsets = f["seq_offsets"][()]
        seq = int(np.searchsorted(offsets, 1234, side="right") - 1)
        out = os.path.join(self.tmp.name, "train_nan")
        proc = run("train", QUICKSTART, out, [f"data.source={store}"], check=False)
        self.assert_refused(proc, out, store, "row 1234", f"sequence {seq}, position {1234 - offsets[seq]}",
                            "column 60", "NaN")

    def test_compare_names_the_first_inf(self):
        store = self.poisoned_store("inf.h5", {(59000, 7): -np.inf})
        out = os.path.join(self.tmp.name, "compare_inf")
        saes = [os.path.join(self.base, "saes", f"seed{s}.h5") for s in (0, 1)]
        proc = universae(["compare", "--sae", saes[0], "--sae", saes[1], "--out", os.path.join(out, "results.h5"),
                          "--set", f"compare.activations={store}"], 2, timeout=300)
        self.assert_refused(proc, out, store, "row 59000", "column 7", "-Inf")

    def test_compare_names_a_nan_at_another_saes_hookpoint(self):
        # A cross-layer comparison reads each SAE's own hookpoint: a NaN there is refused too, not
        # taken for a hookpoint the store lacks (which would silently read another layer instead).
        store = self.poisoned_store("cross.h5", {})
        with h5py.File(store, "r+") as f:
            other = f["activations/blocks.2.hook_resid_post"][()]
            other[4321, 9] = np.nan
            f.create_dataset("activations/blocks.1.hook_resid_post", data=other)
        sae1 = os.path.join(self.tmp.name, "seed1_block1.h5")
        shutil.copy(os.path.join(self.base, "saes", "seed1.h5"), sae1)
        with h5py.File(sae1, "r+") as f:
            f.attrs.modify("hookpoint", "blocks.1.hook_resid_post")
        out = os.path.join(self.tmp.name, "compare_cross")
        proc = universae(["compare", "--sae", os.path.join(self.base, "saes", "seed0.h5"), "--sae", sae1,
                          "--out", os.path.join(out, "results.h5"), "--set", f"compare.activations={store}"],
                         2, timeout=300)
        self.assert_refused(proc, out, store, "blocks.1.hook_resid_post row 4321", "column 9", "NaN")


if __name__ == "__main__":
    unittest.main(verbosity=2)
