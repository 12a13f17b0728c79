"""Comparisons resume (issue 23, item 4). Four seeds of the synthetic job (6 seed pairs and the random
baseline's pair) are compared once straight through and once stopped with SIGTERM while pairs are
being compared (SIGUSR1 through mpirun): the stopped run exits 75 keeping its finished pairs in results.h5.partial, the same
command continues at the next pair (it says how many it kept), and the final results.h5 holds what the
uninterrupted run's holds: every dataset and every attribute but wall times. An input refused (exit 2)
leaves nothing.
"""
import os
import signal
import sys
import tempfile
import time
import unittest

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
from universae_test import SOURCE, run_command, set_args, start, universae_command  # noqa: E402

SYNTHETIC = os.path.join(SOURCE, "jobs", "synthetic_ci.toml")
SEEDS = 4
# Enough permutations that each pair takes a while (so a stop lands between pairs), as few as allow that.
SLOW = ["compare.permutations=3000"]


def compare_command(saes, out, extra=()):
    args = ["compare", SYNTHETIC, *[a for s in saes for a in ("--sae", s)], "--out", out, *set_args(SLOW + list(extra))]
    return universae_command(args, 2)


def timeless(name):
    return "seconds" in name or name in ("n_ranks",)


def contents(path):
    """{object path: value} of every dataset and attribute (wall times left out; the results' own
    directory in a string reads <out>: the two runs write to different directories)."""
    out = {}
    here = os.path.dirname(path)

    def value(v):
        if isinstance(v, bytes):
            v = v.decode()
        return v.replace(here, "<out>") if isinstance(v, str) else v

    with h5py.File(path, "r") as f:
        def visit(name, obj):
            for k, v in obj.attrs.items():
                if not timeless(k):
                    out[f"{name}@{k}"] = value(v)
            if isinstance(obj, h5py.Dataset):
                out[name] = obj[()]
        for k, v in f.attrs.items():
            if not timeless(k):
                out[f"@{k}"] = value(v)
        f.visititems(visit)
    return out


class CompareResume(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        train = os.path.join(cls.tmp.name, "train")
        cmd = universae_command(["run", SYNTHETIC, *set_args([f"run.output_dir={train}", 'run.stages=["train"]',
                                                              f"sae.seeds={list(range(SEEDS))}"])], 2)
        run_command(cmd, timeout=600, check=True)
        cls.saes = [os.path.join(train, "saes", f"seed{s}.h5") for s in range(SEEDS)]
        cls.straight = os.path.join(cls.tmp.name, "straight", "results.h5")
        start_time = time.time()
        run_command(compare_command(cls.saes, cls.straight), timeout=900, check=True)
        cls.compare_seconds = time.time() - start_time

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def stop_midway(self, out):
        """Starts the comparison and sends SIGUSR1 through mpirun (which forwards it to every rank; Slurm sends
        SIGTERM to each task, the same handler) once its partial file holds a finished pair: → (rc, stderr)."""
        proc = start(compare_command(self.saes, out))
        partial = out + ".partial"
        deadline = time.time() + self.compare_seconds * 3 + 60
        while proc.poll() is None and time.time() < deadline:
            if os.path.exists(partial) and self.finished_pairs(partial) >= 1:
                break
            time.sleep(0.2)
        proc.send_signal(signal.SIGUSR1)
        _, err = proc.communicate(timeout=600)
        return proc.returncode, err

    @staticmethod
    def finished_pairs(partial):
        try:
            with h5py.File(partial, "r", locking=False) as f:
                return sum(1 for g in f.get("pairs", {}).values() if g.attrs.get("pair_complete", False))
        except Exception:  # noqa: BLE001 (a file being written reads as anything)
            return 0

    def test_stopped_comparison_resumes_to_the_same_results(self):
        out = os.path.join(self.tmp.name, "stopped", "results.h5")
        rc, err = self.stop_midway(out)
        self.assertEqual(rc, 75, err)
        self.assertIn("compare stopped by a signal after", err)
        self.assertFalse(os.path.exists(out))
        kept = self.finished_pairs(out + ".partial")
        self.assertGreaterEqual(kept, 1)
        again = run_command(compare_command(self.saes, out), timeout=900)
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertIn(f"complete pairs kept", again.stderr)
        self.assertFalse(os.path.exists(out + ".partial"))
        want, got = contents(self.straight), contents(out)
        self.assertEqual(sorted(want), sorted(got))
        for key, value in want.items():
            if isinstance(value, np.ndarray):
                np.testing.assert_array_equal(got[key], value, err_msg=key)
            else:
                self.assertEqual(got[key], value, key)

    def test_refused_input_leaves_nothing(self):
        out = os.path.join(self.tmp.name, "refused", "results.h5")
        bad = os.path.join(self.tmp.name, "not_an_sae.h5")
        with h5py.File(bad, "w") as f:
            f.attrs["format"] = "something else"
        proc = run_command(compare_command([self.saes[0], bad], out), timeout=600)
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertFalse(os.path.exists(out + ".partial"))
        self.assertFalse(os.path.exists(os.path.dirname(out)))


if __name__ == "__main__":
    unittest.main()
