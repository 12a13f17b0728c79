"""One run per output directory (issue 23, item 3): every stage that writes a directory holds
`<dir>/.universae.lock` naming its holder.

- Two `universae run` on one run.output_dir: the second exits 2 naming the first's host and pid, the
  first finishes, and no lock is left.
- A lock whose holder is gone is taken over with a warning: a dead pid on this host; a Slurm job that
  `squeue` calls invalid or lists in a final state (a stand-in squeue on PATH); this very job's earlier
  run (SLURM_JOB_ID equal, a lower SLURM_RESTART_COUNT: a requeue). A holder that may be alive is not:
  another host without a job, a job squeue lists as RUNNING, another step of the same allocation, a
  live process holding a directory above. Refused runs exit 2 and write nothing.
"""
import os
import socket
import stat
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
from universae_test import SOURCE, run_command, set_args, start, universae_command  # noqa: E402

SYNTHETIC = os.path.join(SOURCE, "jobs", "synthetic_ci.toml")
LOCK = ".universae.lock"


def command(out, ranks=2, extra=()):
    return universae_command(["run", SYNTHETIC, *set_args([f"run.output_dir={out}", *extra])], ranks)


def write_lock(directory, host, pid, job="", restart=""):
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, LOCK), "w") as f:
        f.write(f"host={host}\npid={pid}\njob={job}\nrestart={restart}\nsince=2026-01-01 00:00:00\n"
                "command=universae run other.toml\n")


def dead_pid():
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def fake_squeue(directory, output, code):
    """A stand-in squeue printing `output` and exiting `code`; → a PATH that finds it first."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "squeue")
    with open(path, "w") as f:
        f.write(f"#!/bin/sh\necho '{output}'\nexit {code}\n")
    os.chmod(path, os.stat(path).st_mode | stat.S_IEXEC)
    return directory + os.pathsep + os.environ["PATH"]


class OutputLock(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.out = os.path.join(self.tmp.name, "run")

    def tearDown(self):
        self.tmp.cleanup()

    def run_job(self, env=None):
        """One process without a launcher: mpiexec called by its absolute path (as CTest gives it) puts its
        own bin directory first on the ranks' PATH, before a stand-in squeue. A short training only: the
        lock is the run's, whatever its stages."""
        short = ['run.stages=["train"]', "train.tokens=8192", "sae.seeds=[0]"]
        return run_command(command(self.out, None, short), timeout=600, env={**os.environ, **(env or {})})

    def assert_refused(self, proc, *words):
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertIn("another universae run is writing here", proc.stderr)
        for w in words:
            self.assertIn(w, proc.stderr)
        self.assertEqual(sorted(os.listdir(self.out)), [LOCK], "a refused run writes nothing")

    def assert_taken_over(self, proc, why):
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn("taking over the lock of a run that is gone", proc.stderr)
        self.assertIn(why, proc.stderr)
        self.assertTrue(os.path.exists(os.path.join(self.out, "saes", "seed0.h5")))
        self.assertFalse(os.path.exists(os.path.join(self.out, LOCK)), "the lock goes with the run")

    def test_second_run_on_one_directory_exits_2_naming_the_first(self):
        first = start(command(self.out))
        lock = os.path.join(self.out, LOCK)
        deadline = time.time() + 120
        while not os.path.exists(lock) and first.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        self.assertTrue(os.path.exists(lock), "the first run holds the lock while it runs")
        with open(lock) as f:
            holder = dict(line.split("=", 1) for line in f.read().splitlines())
        second = run_command(command(self.out), timeout=600)
        self.assertEqual(second.returncode, 2, second.stderr)
        self.assertIn("another universae run is writing here", second.stderr)
        self.assertIn(f"host {socket.gethostname()}, pid {holder['pid']}", second.stderr)
        self.assertIn(os.path.join(self.out, LOCK), second.stderr)
        _, err = first.communicate(timeout=600)
        self.assertEqual(first.returncode, 0, err)
        self.assertFalse(os.path.exists(lock))

    def test_dead_process_on_this_host_is_taken_over(self):
        pid = dead_pid()
        write_lock(self.out, socket.gethostname(), pid)
        self.assert_taken_over(self.run_job(), f"its process {pid} is not running on this host")

    def test_other_host_without_a_job_is_refused(self):
        write_lock(self.out, "node-elsewhere", 4242)
        self.assert_refused(self.run_job(), "host node-elsewhere, pid 4242", "remove " + os.path.join(self.out, LOCK))

    def test_finished_slurm_job_is_taken_over(self):
        write_lock(self.out, "node-elsewhere", 4242, job="777")
        path = fake_squeue(os.path.join(self.tmp.name, "bin"), "slurm_load_jobs error: Invalid job id specified", 1)
        self.assert_taken_over(self.run_job({"PATH": path}), "its Slurm job 777 is over")

    def test_running_slurm_job_is_refused(self):
        write_lock(self.out, "node-elsewhere", 4242, job="778")
        path = fake_squeue(os.path.join(self.tmp.name, "bin"), "RUNNING", 0)
        self.assert_refused(self.run_job({"PATH": path}), "Slurm job 778")

    def test_job_squeue_lists_as_ended_is_taken_over(self):
        write_lock(self.out, "node-elsewhere", 4242, job="780")
        path = fake_squeue(os.path.join(self.tmp.name, "bin"), "TIMEOUT", 0)  # listed for MinJobAge after its end
        self.assert_taken_over(self.run_job({"PATH": path}), "its Slurm job 780 is over")

    def test_requeued_job_takes_over_its_own_lock(self):
        write_lock(self.out, "node-elsewhere", 4242, job="779")  # written before the requeue: restart count 0
        self.assert_taken_over(self.run_job({"SLURM_JOB_ID": "779", "SLURM_RESTART_COUNT": "1"}),
                               "this Slurm job's earlier run (requeued)")

    def test_another_step_of_the_same_job_is_refused(self):
        write_lock(self.out, "node-elsewhere", 4242, job="781")  # a live step of this allocation elsewhere
        path = fake_squeue(os.path.join(self.tmp.name, "bin"), "RUNNING", 0)
        self.assert_refused(self.run_job({"SLURM_JOB_ID": "781", "PATH": path}), "Slurm job 781")

    def test_live_lock_above_is_refused(self):
        write_lock(self.tmp.name, socket.gethostname(), os.getpid())  # this test process: alive
        os.makedirs(self.out)
        proc = self.run_job()
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertIn(os.path.join(self.tmp.name, LOCK), proc.stderr)
        self.assertEqual(os.listdir(self.out), [])


if __name__ == "__main__":
    unittest.main()
