"""Sweeps on a real Slurm cluster (label `slurm`): slurm/local-cluster.sh starts a single-node cluster
on this machine (or reuses the one it already started) and stops it again at the end.

1. A three-task sweep (two layers of stories260K and one layer the extraction left out) submitted
   with `universae sweep --slurm`: extraction, a training array, a comparison array and the summary
   run with their dependencies; the bad task fails alone, with universae's message in its log, its
   comparison is cancelled and every other output is complete. `--local` runs the same tasks here to
   bit-identical SAEs and the same study table; a rerun plans only the failed task.
2. Preemption: a running training task gets USR1 twice, once through its job step (as a preemption
   does) and once through its batch shell (as --signal=B:USR1 before the time limit does); each time
   it checkpoints, requeues itself and resumes, and its SAEs equal an uninterrupted run's bit for bit.
3. A lost rank: one task of a training step killed; the sweep's launcher ends the step within 60 s.

Slurm delays a requeued job by 120 s (BeginTime); the test releases it at once with
`scontrol update starttime=now` so the suite stays fast. Nothing else is shortened.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import unittest

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
from universae_test import BINARY, MPIEXEC, PYTHON, SCRIPTS, SOURCE, set_args, universae  # noqa: E402

CLUSTER = os.path.join(SOURCE, "slurm", "local-cluster.sh")
STATE = os.environ.get("SLURM_LOCAL_DIR", os.path.join(SOURCE, ".slurm-local"))
SWEEP = os.path.join(SOURCE, "tests", "slurm", "tiny_sweep.toml")
ENV = dict(os.environ, SLURM_CONF=os.path.join(STATE, "slurm.conf"), SLURM_LOCAL_DIR=STATE, OMP_NUM_THREADS="1")
started_here = False


def setUpModule():
    global started_here
    status = subprocess.run(["bash", CLUSTER, "status"], env=ENV, capture_output=True, text=True)
    running = "slurmctld running" in status.stdout and "slurmd running" in status.stdout
    if not running:
        up = subprocess.run(["bash", CLUSTER, "start"], env=ENV, capture_output=True, text=True, timeout=120)
        if up.returncode != 0:
            raise RuntimeError(f"local-cluster.sh start failed:\n{up.stdout}\n{up.stderr}")
        started_here = True


def tearDownModule():
    if started_here:
        subprocess.run(["bash", CLUSTER, "stop"], env=ENV, capture_output=True, text=True, timeout=120)


def job_ids(scripts):
    with open(os.path.join(scripts, "jobs.txt")) as f:
        return dict(line.split() for line in f if line.strip())


def queue(ids):
    out = subprocess.run(["squeue", "-h", "-o", "%i %T %r", "-j", ",".join(ids)], env=ENV, capture_output=True, text=True)
    return [line.split() for line in out.stdout.splitlines() if line.strip()]


def release_requeued(rows):
    for job, state, reason in rows:
        if state == "PENDING" and reason == "BeginTime":
            subprocess.run(["scontrol", "update", f"jobid={job}", "starttime=now"], env=ENV, check=True)


NEVER = {"PartitionConfig", "ReqNodeNotAvail", "BadConstraints", "PartitionNodeLimit", "JobHeldAdmin"}


def wait_for(ids, timeout=600, until=None):
    """Polls the queue until none of `ids` is left (or `until()` is true), releasing requeued jobs."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        rows = queue(ids)
        stuck = [r for r in rows if r[1] == "PENDING" and r[2] in NEVER]
        if stuck:
            raise AssertionError(f"jobs that can never start: {stuck} (see scontrol show job)")
        release_requeued(rows)
        if until is not None and until():
            return
        if not rows:
            return
        time.sleep(0.5)
    raise AssertionError(f"jobs {ids} still queued after {timeout} s: {queue(ids)}")


def job_state(job):
    out = subprocess.run(["scontrol", "show", "job", job], env=ENV, capture_output=True, text=True).stdout
    return dict(re.findall(r"(JobState|Reason)=(\S+)", out))


def read(path):
    with open(path) as f:
        return f.read()


def weights(path):
    with h5py.File(path, "r") as f:
        assert f.attrs["complete"], path
        return {k: f[k][()] for k in ("W_enc", "b_enc", "W_dec", "b_dec")}


def assert_same_sae(test, a, b):
    wa, wb = weights(a), weights(b)
    for k in wa:
        np.testing.assert_array_equal(wa[k], wb[k], err_msg=f"{a} vs {b}: {k}")


LAYERS = ["blocks.1.hook_resid_post", "blocks.3.hook_resid_post"]
MISSING = "blocks.2.hook_resid_post"  # in the grid, not in the extraction


class SweepOnSlurm(unittest.TestCase):
    def test_sweep_failed_task_local_twin_and_rerun(self):
        with tempfile.TemporaryDirectory() as tmp:
            sweep = os.path.join(tmp, "sweep.toml")
            text = read(SWEEP).replace(f'"data.hookpoint" = {json.dumps(LAYERS)}'.replace('","', '", "'),
                                       f'"data.hookpoint" = {json.dumps(LAYERS + [MISSING])}'.replace('","', '", "'))
            self.assertIn(MISSING, text)
            with open(sweep, "w") as f:
                f.write(text)
            scripts, out = os.path.join(tmp, "scripts"), os.path.join(tmp, "slurm_out")
            submitted = universae(["sweep", sweep, "--slurm", scripts, "--set", f"run.output_dir={out}"],
                                  env=ENV, check=True)
            self.assertIn("3 task(s), 0 complete", submitted.stderr)
            jobs = job_ids(scripts)
            self.assertEqual(list(jobs), ["extract", "train", "compare", "summary"])
            wait_for(list(jobs.values()))

            manifest = json.load(open(os.path.join(scripts, "manifest.json")))
            self.assertEqual([t["id"] for t in manifest["tasks"]], [f"hookpoint={h}" for h in LAYERS + [MISSING]])
            self.assertEqual([s["name"] for s in manifest["steps"]], ["extract", "train", "compare", "summary"])

            # The bad task failed alone, saying why; its comparison never ran.
            bad_log = read(os.path.join(scripts, "logs", "train-2.log"))
            self.assertIn("universae: error:", bad_log)
            self.assertIn(f"no activations for hookpoint '{MISSING}'", bad_log)
            self.assertIn("exit 2", bad_log)
            self.assertEqual(job_state(f"{jobs['train']}_2")["JobState"], "FAILED")
            self.assertEqual(job_state(f"{jobs['compare']}_2")["JobState"], "CANCELLED")
            for step in ("extract", "summary"):
                self.assertEqual(job_state(jobs[step])["JobState"], "COMPLETED", step)
            for i in (0, 1):
                self.assertEqual(job_state(f"{jobs['train']}_{i}")["JobState"], "COMPLETED")
                self.assertEqual(job_state(f"{jobs['compare']}_{i}")["JobState"], "COMPLETED")
            summary_log = read(os.path.join(scripts, "logs", "summary.log"))
            self.assertIn("2 of 3 tasks complete", summary_log)
            self.assertIn(f"hookpoint={MISSING}", summary_log)

            table = read(os.path.join(out, "study_summary.csv")).splitlines()
            self.assertEqual(len(table), 4, table)  # header, two tasks, one across-layer pair
            self.assertTrue(table[3].startswith("across hookpoint: all," + ",".join(LAYERS)), table[3])
            for h in LAYERS:
                with h5py.File(os.path.join(out, f"hookpoint={h}", "results.h5"), "r") as f:
                    self.assertTrue(f.attrs["complete"])

            # --local runs the same tasks here: the same failure, identical SAEs and study table.
            local_out = os.path.join(tmp, "local_out")
            local = universae(["sweep", sweep, "--local", "--set", f"run.output_dir={local_out}",
                               "--set", f"sweep.local_launcher={MPIEXEC} -n {{ranks}}"], env=ENV)
            self.assertEqual(local.returncode, 1, local.stderr)
            self.assertIn(f"train task 3/3 (hookpoint={MISSING}) FAILED (exit 2)", local.stderr)
            self.assertIn(f"no activations for hookpoint '{MISSING}'", local.stderr)
            for h in LAYERS:
                for seed in (0, 1):
                    rel = os.path.join(f"hookpoint={h}", "saes", f"seed{seed}.h5")
                    assert_same_sae(self, os.path.join(out, rel), os.path.join(local_out, rel))
            self.assertEqual(read(os.path.join(local_out, "study_summary.csv")).splitlines(), table)

            # A rerun plans only what is incomplete: no extraction, the one failed task, the summary.
            again = universae(["sweep", sweep, "--slurm", scripts, "--no-submit", "--set", f"run.output_dir={out}"],
                              env=ENV, check=True)
            self.assertIn("3 task(s), 2 complete; steps: train[2] → compare[2] → summary", again.stderr)
            submit = read(os.path.join(scripts, "submit.sh"))
            self.assertNotIn("submit extract", submit)
            self.assertFalse(os.path.exists(os.path.join(scripts, "extract.sbatch")))  # not left to be resubmitted by hand
            self.assertIn("#SBATCH --array=2\n", read(os.path.join(scripts, "train.sbatch")))

    def test_two_models_extract_as_an_array_and_compare_across(self):
        """extract.model on the grid: one extraction per model as an array job that training waits for,
        each task on its model's store, and the across-model comparison on both stores."""
        with tempfile.TemporaryDirectory() as tmp:
            twin = os.path.join(tmp, "twins", "stories260K_rotated.bin")
            subprocess.run([PYTHON, os.path.join(SCRIPTS, "model_twins.py"), "rotated", twin, "--seed", "5"],
                           check=True, capture_output=True)
            text = read(SWEEP)
            text = text.replace('model = "../shared/data/stories260K.bin"\n', "")
            text = text.replace('compare_across = ["data.hookpoint"]', 'compare_across = ["extract.model"]')
            text = re.sub(r'"data.hookpoint" = \[[^\]]*\]',
                          f'"extract.model" = ["../shared/data/stories260K.bin", "{twin}"]', text)
            text = text.replace('source = "extract"', f'source = "extract"\nhookpoint = "{LAYERS[1]}"')
            sweep = os.path.join(tmp, "models.toml")
            with open(sweep, "w") as f:
                f.write(text)
            scripts, out = os.path.join(tmp, "scripts"), os.path.join(tmp, "out")
            submitted = universae(["sweep", sweep, "--slurm", scripts, "--set", f"run.output_dir={out}"], env=ENV, check=True)
            self.assertIn("2 task(s), 0 complete; steps: extract[0-1] → train[0-1] → compare[0-1] → summary", submitted.stderr)
            self.assertIn("#SBATCH --array=0-1\n", read(os.path.join(scripts, "extract.sbatch")))
            jobs = job_ids(scripts)
            wait_for(list(jobs.values()))
            for e in (0, 1):
                self.assertEqual(job_state(f"{jobs['extract']}_{e}")["JobState"], "COMPLETED")
            self.assertEqual(job_state(jobs["summary"])["JobState"], "COMPLETED")
            with open(os.path.join(scripts, "manifest.json")) as fh:
                manifest = json.load(fh)
            self.assertEqual([x["id"] for x in manifest["extractions"]], ["model=stories260K", "model=stories260K_rotated"])
            stores = [os.path.join(out, "extract", m, "activations.h5") for m in ("stories260K", "stories260K_rotated")]
            with h5py.File(stores[0], "r") as a, h5py.File(stores[1], "r") as b:
                self.assertEqual(a.attrs["token_sequence"], b.attrs["token_sequence"])
            results = os.path.join(out, "across_model", "all", "stories260K--stories260K_rotated", "results.h5")
            with h5py.File(results, "r") as f:
                self.assertEqual(sorted(f["saes"][s].attrs["activations_source"] for s in f["saes"]), sorted(stores))
                self.assertIn("weight_space_skipped", f["pairs/stories260K--stories260K_rotated"].attrs)
            table = read(os.path.join(out, "study_summary.csv")).splitlines()
            self.assertEqual(len(table), 4, table)  # header, two tasks, one across-model pair
            self.assertTrue(table[3].startswith("across model: all,stories260K,stories260K_rotated"), table[3])

    def test_preempted_training_checkpoints_requeues_and_matches(self):
        with tempfile.TemporaryDirectory() as tmp:
            scripts, out, ref = (os.path.join(tmp, d) for d in ("scripts", "out", "ref"))
            # ~1600 steps (about 20 s here), checkpoints only on a signal.
            sets = ["train.tokens=1638400", "train.checkpoint_every=0"]
            universae(["sweep", SWEEP, "--slurm", scripts, *set_args(sets + [f"run.output_dir={out}"])],
                      env=ENV, check=True)
            jobs = job_ids(scripts)
            element = f"{jobs['train']}_0"
            log = os.path.join(scripts, "logs", "train-0.log")
            metrics = os.path.join(out, f"hookpoint={LAYERS[0]}", "train_log.jsonl")

            def training(after):  # the task is past `after` metric lines, and Slurm lists it as running
                if not (os.path.exists(metrics) and len(read(metrics).splitlines()) > after):
                    return False
                rows = queue([element])  # empty for a moment while a requeued element changes state
                return bool(rows) and rows[0][1] == "RUNNING"

            # First through the job step (a preemption), then through the batch shell (the time-limit warning).
            for n, signal_args in enumerate((["--signal=USR1"], ["--batch", "--signal=USR1"])):
                wait_for(list(jobs.values()), timeout=300, until=lambda: training(5))
                self.assertEqual(queue([element])[0][1], "RUNNING", read(log) if os.path.exists(log) else "no log")
                subprocess.run(["scancel", *signal_args, element], env=ENV, check=True)
                wait_for([element], timeout=120, until=lambda: read(log).count("checkpointed: requeueing") > n)
                # Until it is running again (its metrics restart from the checkpoint's step).
                wait_for([element], timeout=300, until=lambda: read(log).count("resuming from") > n)
            wait_for(list(jobs.values()))

            text = read(log)
            self.assertEqual(text.count("checkpointed: requeueing"), 2, text)
            self.assertIn("signal: asking universae to checkpoint", text)  # the batch shell passed it on
            self.assertIn("start 3", text)
            steps = [int(s) for s in re.findall(r"resuming from .* at step (\d+) of 1600", text)]
            self.assertEqual(len(steps), 2, text)
            self.assertTrue(0 < steps[0] < steps[1] < 1600, steps)
            self.assertEqual(job_state(element)["JobState"], "COMPLETED")
            self.assertEqual(job_state(jobs["summary"])["JobState"], "COMPLETED")

            # The same task uninterrupted, on the same store.
            reference = universae(["sweep", SWEEP, "--step", "train", "--task", "0",
                                   *set_args(sets + [f"run.output_dir={ref}", f"extract.store={out}/activations.h5"])],
                                  1, env=ENV, timeout=600)
            self.assertEqual(reference.returncode, 0, reference.stderr)
            for seed in (0, 1):
                rel = os.path.join(f"hookpoint={LAYERS[0]}", "saes", f"seed{seed}.h5")
                assert_same_sae(self, os.path.join(out, rel), os.path.join(ref, rel))


class LostRank(unittest.TestCase):
    def test_a_killed_rank_ends_the_step(self):
        """The sweep's launcher (slurm/local/env.sh: srun --mpi=pmix): one rank killed mid-training ends the
        whole step within 60 s (PMIx aborts it), srun names the task, and no SAE file is published."""
        launch = subprocess.run(["bash", "-c", f"source {SOURCE}/slurm/local/env.sh; echo $UNIVERSAE_LAUNCH"],
                                capture_output=True, text=True, check=True).stdout.split()
        with tempfile.TemporaryDirectory() as out:
            cmd = [*launch, "-n", "2", BINARY, "train", os.path.join(SOURCE, "jobs", "synthetic_ci.toml"),
                   "--set", f"run.output_dir={out}", "--set", "train.tokens=50000000", "--set", "train.log_every=10"]
            proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=SOURCE)
            log = os.path.join(out, "train_log.jsonl")
            deadline = time.time() + 120
            ranks = {}
            while len(ranks) < 2 or not (os.path.exists(log) and os.path.getsize(log) > 0):
                self.assertIsNone(proc.poll(), "the step ended before training started")
                self.assertLess(time.time(), deadline, "training did not start within 120 s")
                ranks = task_pids(out)
                time.sleep(0.1)
            os.kill(ranks[1], 9)
            t0 = time.time()
            _, err = proc.communicate(timeout=60)
            while os.path.exists(f"/proc/{ranks[0]}") and time.time() - t0 < 60:
                time.sleep(0.05)
            print(f"task 1 killed: srun and every task gone {time.time() - t0:.1f} s later", flush=True)
            self.assertFalse(os.path.exists(f"/proc/{ranks[0]}"), "task 0 outlived the step by 60 s")
            self.assertNotEqual(proc.returncode, 0)
            self.assertRegex(err, r"task 1: Killed", err)
            self.assertFalse([f for f in os.listdir(os.path.join(out, "saes")) if f.endswith(".h5")])


def task_pids(out_dir):
    """{SLURM_PROCID: pid} of the universae processes writing to out_dir."""
    pids = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                args = fh.read().split(b"\0")
            if not args[0].endswith(b"universae") or f"run.output_dir={out_dir}".encode() not in args:
                continue
            with open(f"/proc/{pid}/environ", "rb") as fh:
                env = dict(e.split(b"=", 1) for e in fh.read().split(b"\0") if b"=" in e)
            pids[int(env[b"SLURM_PROCID"])] = int(pid)
        except (OSError, KeyError):
            continue
    return pids


if __name__ == "__main__":
    unittest.main(verbosity=2)
