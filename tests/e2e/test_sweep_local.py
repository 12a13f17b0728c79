"""End to end: `universae sweep --local` on the seed papers' CI sweeps, and the sweep's bad inputs.

1. jobs/{seeds_study,expansion_study,cross_layer_study}_ci.toml run to completion here; their study
   tables have a row for every seed pair, baseline and across-task pair; trained seeds agree more than
   an untrained SAE does, and (Gerovitch & Parker-Sartori) a small SAE's latents are found in a larger
   one better than the other way round. A rerun has nothing left to do but the summary; after a change of
   a compare key, every task's comparison runs again in its own compare step and the summary reuses them.
2. Bad input: exit 2 with a message naming the key, task or option, and nothing written.
3. A failed submission fails: with an sbatch (a stand-in on PATH) that accepts the first job and then
   cannot reach the controller, `sweep --slurm` exits 1 with sbatch's message, submits nothing after the
   failure, and cancels the job it already submitted.
"""
import csv
import itertools
import os
import sys
import tempfile
import unittest

import h5py

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
from universae_test import MPIEXEC, SOURCE, universae  # noqa: E402

ENV = dict(os.environ, OMP_NUM_THREADS="1")
LAUNCHER = f"sweep.local_launcher={MPIEXEC} -n {{ranks}}"
TINY = os.path.join(SOURCE, "tests", "slurm", "tiny_sweep.toml")
SEEDS_CI = os.path.join(SOURCE, "jobs", "seeds_study_ci.toml")


def sweep(job, *args, check=True):
    return universae(["sweep", job, *args], env=ENV, timeout=900, check=check)


def table(out):
    with open(os.path.join(out, "study_summary.csv")) as f:
        return list(csv.DictReader(f))


def mcs(row):
    return (float(row["decoder_mcs_ab"]) + float(row["decoder_mcs_ba"])) / 2


class PaperSweeps(unittest.TestCase):
    def run_sweep(self, name, tmp):
        out = os.path.join(tmp, name)
        proc = sweep(os.path.join(SOURCE, "jobs", f"{name}.toml"), "--local", "--set", f"run.output_dir={out}",
                     "--set", LAUNCHER)
        self.assertIn("complete; outputs in", proc.stderr)
        return out, table(out)

    def check_seeds_beat_chance(self, rows):
        by_task = {}
        for r in rows:
            if not r["scope"].startswith("across"):
                by_task.setdefault(r["scope"], []).append(r)
        for scope, task_rows in by_task.items():
            chance = [mcs(r) for r in task_rows if r["b"] == "random_init"]
            seeds = [mcs(r) for r in task_rows if r["b"] != "random_init"]
            self.assertEqual(len(chance), 1, scope)
            self.assertGreater(min(seeds), chance[0] + 0.05, scope)
        return by_task

    def test_seeds_study_ci(self):
        with tempfile.TemporaryDirectory() as tmp:
            out, rows = self.run_sweep("seeds_study_ci", tmp)
            by_task = self.check_seeds_beat_chance(rows)
            # 2 sizes × 2 k; 3 seeds: 3 pairs + the baseline each.
            self.assertEqual(sorted(by_task), sorted(f"k={k},n_latents={n}" for n in (256, 512) for k in (4, 8)))
            self.assertTrue(all(len(v) == 4 for v in by_task.values()))
            again = sweep(os.path.join(SOURCE, "jobs", "seeds_study_ci.toml"), "--local", "--set", f"run.output_dir={out}",
                          "--set", LAUNCHER)
            self.assertIn("4 task(s), 4 complete; steps: summary", again.stderr)
            self.assertEqual(table(out), rows)
            # `universae run` does the same study in one MPI job: the same table, row for row.
            one_job = os.path.join(tmp, "run")
            proc = universae(["run", os.path.join(SOURCE, "jobs", "seeds_study_ci.toml"),
                              "--set", f"run.output_dir={one_job}"], 2, env=ENV, timeout=900)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            self.assertEqual(table(one_job), rows)
            # A changed compare key invalidates every task's comparison: each runs in its own compare step
            # (a per-task job on Slurm), and the summary step only reuses them.
            changed = sweep(os.path.join(SOURCE, "jobs", "seeds_study_ci.toml"), "--local", "--set", f"run.output_dir={out}",
                            "--set", LAUNCHER, "--set", "compare.permutations=50")
            self.assertIn("4 task(s), 0 complete; steps: train[0-3] → compare[0-3] → summary", changed.stderr)
            logs = os.path.join(out, "sweep", "logs")

            def last_run(name):  # a step's log gathers every run of it, each after a "== <time> ..." line
                with open(os.path.join(logs, name)) as f:
                    return f.read().rsplit("\n== ", 1)[-1]

            for task in range(4):
                self.assertIn("(made with other settings)", last_run(f"compare-{task}.log"), f"task {task} recomputes")
            summary = last_run("summary.log")
            self.assertEqual(summary.count("compare: reusing complete"), 4, summary)  # the 4 tasks (no compare_across)
            self.assertNotIn("recomputing", summary)
            for r in table(out):
                if r["svcca_p"]:
                    self.assertGreaterEqual(float(r["svcca_p"]), 1 / 51 - 1e-9, r)  # 50 permutations now

    def test_expansion_study_ci(self):
        with tempfile.TemporaryDirectory() as tmp:
            _, rows = self.run_sweep("expansion_study_ci", tmp)
            self.check_seeds_beat_chance(rows)
            sizes = [r for r in rows if r["scope"].startswith("across n_latents")]
            layers = [r for r in rows if r["scope"].startswith("across hookpoint")]
            self.assertEqual(len(sizes), 2 * 3)   # per layer, every pair of the 3 sizes
            self.assertEqual(len(layers), 3)      # per size, the one pair of layers
            for r in sizes:  # a is the smaller SAE: its latents have closer matches in b than b's in a
                self.assertLess(int(r["a"]), int(r["b"]))
                self.assertGreater(float(r["decoder_mcs_ab"]), float(r["decoder_mcs_ba"]) + 0.05, r["scope"])

    def test_cross_layer_study_ci(self):
        with tempfile.TemporaryDirectory() as tmp:
            out, rows = self.run_sweep("cross_layer_study_ci", tmp)
            self.check_seeds_beat_chance(rows)
            across = [(r["a"], r["b"]) for r in rows if r["scope"].startswith("across hookpoint")]
            layers = [f"blocks.{i}.hook_resid_post" for i in (0, 2, 4)]
            self.assertEqual(across, list(itertools.combinations(layers, 2)))
            for r in rows:  # every pair, across layers too, has its pre-TopK activation correlation
                self.assertGreater(float(r["mean_max_corr_ab"]), 0.1, r)
            with h5py.File(os.path.join(out, "across_hookpoint", "all", "--".join(layers[:2]), "results.h5"), "r") as f:
                pair = f["pairs"][list(f["pairs"])[0]]["activation"]
                self.assertEqual(pair.attrs["input"], "pre")
                self.assertEqual(pair["paired"].attrs["mapping"], "many_to_one")


class FailedSubmission(unittest.TestCase):
    def test_sbatch_failure_fails_the_sweep_and_cancels_what_was_submitted(self):
        with tempfile.TemporaryDirectory() as tmp:
            bin_dir, scripts = os.path.join(tmp, "bin"), os.path.join(tmp, "scripts")
            os.mkdir(bin_dir)
            calls = os.path.join(tmp, "calls.txt")
            fakes = {
                # The first submission succeeds (job 1001); every later one fails as sbatch does without a controller.
                "sbatch": f'echo "sbatch $*" >> {calls}\n'
                          f'if [ "$(grep -c ^sbatch {calls})" -eq 1 ]; then echo 1001; exit 0; fi\n'
                          'echo "sbatch: error: Batch job submission failed: Unable to contact slurm controller" >&2; exit 1\n',
                "scancel": f'echo "scancel $*" >> {calls}\n',
            }
            for name, body in fakes.items():
                path = os.path.join(bin_dir, name)
                with open(path, "w") as f:
                    f.write("#!/bin/bash\n" + body)
                os.chmod(path, 0o755)
            env = dict(ENV, PATH=bin_dir + os.pathsep + os.environ["PATH"])
            proc = universae(["sweep", TINY, "--slurm", scripts, "--set", f"run.output_dir={os.path.join(tmp, 'out')}"],
                             env=env, timeout=300)
            self.assertEqual(proc.returncode, 1, proc.stderr)
            self.assertIn("Unable to contact slurm controller", proc.stderr)
            self.assertIn("cancelled the jobs already submitted: 1001", proc.stderr)
            self.assertNotIn("sweep: submitted", proc.stderr)
            with open(calls) as f:
                lines = f.read().splitlines()
            self.assertEqual([line.split()[0] for line in lines], ["sbatch", "sbatch", "scancel"], lines)
            self.assertEqual(lines[-1], "scancel 1001")
            with open(os.path.join(scripts, "jobs.txt")) as f:
                self.assertEqual(f.read().split(), [lines[0].split()[-1].removesuffix(".sbatch"), "1001"])


class BadInput(unittest.TestCase):
    def check(self, args, needle, job=TINY):
        with tempfile.TemporaryDirectory() as tmp:
            out, scripts = os.path.join(tmp, "out"), os.path.join(tmp, "scripts")
            proc = sweep(job, *[a.replace("SCRIPTS", scripts) for a in args], "--set", f"run.output_dir={out}", check=False)
            self.assertEqual(proc.returncode, 2, proc.stderr)
            self.assertIn(needle, proc.stderr)
            self.assertEqual(os.listdir(tmp), [], "nothing is written")

    def test_neither_slurm_nor_local(self):
        self.check([], "choose --slurm DIR or --local")

    def test_unknown_cluster(self):
        self.check(["--slurm", "SCRIPTS", "--no-submit", "--set", "sweep.cluster=atlantis"], "slurm/atlantis/env.sh not found")

    def test_bad_time_limit(self):
        self.check(["--slurm", "SCRIPTS", "--no-submit", "--set", "sweep.train.time=2h"], "sweep.train.time")

    def test_more_nodes_than_ranks(self):
        self.check(["--slurm", "SCRIPTS", "--no-submit", "--set", "sweep.compare.nodes=2"],
                   "config key 'sweep.compare.nodes': 2 nodes for 1 ranks")

    def test_ranks_that_do_not_fit_the_layout(self):
        self.check(["--local", "--set", "sweep.train.ranks=3", "--set", "train.seed_groups=2"], "sweep.train.ranks")

    def test_a_bad_task_is_named_before_anything_runs(self):
        # 40 latent shards need n_latents >= 40 k: true of every task but k = 8 with 256 latents.
        self.check(["--local", "--set", "train.latent_shards=40", "--set", "sweep.train.ranks=40"],
                   "task 3/4 (k=8,n_latents=256): config key 'train.latent_shards'", job=SEEDS_CI)

    def test_step_without_task(self):
        self.check(["--step", "train"], "--step train needs --task I with 0 <= I < 2")

    def test_step_task_out_of_range(self):
        self.check(["--step", "compare", "--task", "2"], "--step compare needs --task I")

    def test_launcher_under_mpirun(self):
        with tempfile.TemporaryDirectory() as tmp:
            proc = universae(["sweep", TINY, "--local", "--set", f"run.output_dir={tmp}/out"], 2, env=ENV, timeout=120)
            self.assertEqual(proc.returncode, 2, proc.stderr)
            self.assertIn("not under mpirun", proc.stderr)
            self.assertEqual(os.listdir(tmp), [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
