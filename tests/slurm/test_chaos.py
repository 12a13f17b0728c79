"""A chaos sweep on the local Slurm cluster (label `slurm`; slurm/local-cluster.sh as in test_sweep.py).

tests/slurm/chaos_sweep.toml (8 tasks, each trained on 2 ranks and compared, then the summary with the
across-k comparisons) runs undisturbed with `universae sweep --local` into one folder, then is submitted
with `universae sweep --slurm` into another while a seeded driver (random.Random(SEED)) injects at most
MAX_FAULTS faults at random moments of the first FAULT_WINDOW seconds:

  kill      SIGKILL of one universae rank of a running step (found in /proc: argv[0] is the binary,
            with --step and this sweep's output folder); its job step fails.
  requeue   `scontrol requeue` of a running job (array element); Slurm stops it and runs it again.

Requeued jobs are released at once (Slurm holds them 120 s: `scontrol update starttime=now`, as
test_sweep.py does). Whenever the queue has drained and `universae sweep --status` says the sweep is not
complete with nothing queued (exit 4), the driver submits the same `universae sweep --slurm` command
again, as a user would (only the incomplete tasks run), at most MAX_ROUNDS times in all. Then:

  - `sweep --status` exits 0 and says complete;
  - every results.h5 and SAE file equals the undisturbed run's: every dataset bit for bit, every
    attribute except timings (`*seconds`) once the output folders' paths are swapped;
  - no *.partial and no checkpoint.h5 is left.

The faults injected and survived are printed (kind, target, job, moment) for the CI log. Also checked:
`sweep --status` on a missing or garbled folder exits 2 naming it. UNIVERSAE_CHAOS_SEED overrides SEED.
"""
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
import unittest

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tests/slurm/
from universae_test import BINARY, MPIEXEC, SOURCE, universae  # noqa: E402
import test_sweep  # noqa: E402  (the local cluster's setup, the queue helpers)
from test_sweep import ENV, NEVER, job_ids, queue, release_requeued  # noqa: E402

setUpModule = test_sweep.setUpModule
tearDownModule = test_sweep.tearDownModule

SWEEP = os.path.join(SOURCE, "tests", "slurm", "chaos_sweep.toml")
SEED = int(os.environ.get("UNIVERSAE_CHAOS_SEED", "23"))
MAX_FAULTS = 5
FAULT_WINDOW = 30.0   # seconds after the first submission in which the faults' moments are drawn
POSTPONE = 15.0       # a fault finding no target waits this long for one, then is skipped
MAX_ROUNDS = 4        # submissions in all
DEADLINE = 240.0      # seconds for the whole chaos run

STATUS_EXIT = {0: "complete", 3: "queued", 4: "incomplete", 5: "unknown"}


def run_local(sweep, out, env):
    """The undisturbed reference: the sweep's steps one after another here (--local, MPIEXEC)."""
    universae(["sweep", sweep, "--local", "--set", f"run.output_dir={out}",
               "--set", f"sweep.local_launcher={MPIEXEC} -n {{ranks}}"], env=env, timeout=600, check=True)


def status(scripts):
    return universae(["sweep", "--status", scripts], env=ENV, timeout=120)


def rank_processes(out):
    """[(pid, step, task, slurm job)] of this sweep's universae step processes, by pid."""
    found = []
    for pid in sorted(filter(str.isdigit, os.listdir("/proc")), key=int):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                args = [a.decode() for a in fh.read().split(b"\0") if a]
            if not args or args[0] != BINARY or "--step" not in args or f"run.output_dir={out}" not in args:
                continue
            with open(f"/proc/{pid}/stat") as fh:
                if fh.read().rsplit(")", 1)[1].split()[0] == "Z":
                    continue
            with open(f"/proc/{pid}/environ", "rb") as fh:
                env = dict(e.split(b"=", 1) for e in fh.read().split(b"\0") if b"=" in e)
            step = args[args.index("--step") + 1]
            task = args[args.index("--task") + 1] if "--task" in args else "-"
            job = env.get(b"SLURM_ARRAY_JOB_ID", env.get(b"SLURM_JOB_ID", b"?")).decode()
            if b"SLURM_ARRAY_TASK_ID" in env:
                job += "_" + env[b"SLURM_ARRAY_TASK_ID"].decode()
            found.append((int(pid), step, task, job))
        except (OSError, ValueError, IndexError):
            continue
    return found


# Attributes and training-history columns that differ between two runs of the same work: timings
# (`*seconds`, `tokens_per_s`). Paths are compared after the output folders' names are swapped.
VOLATILE = re.compile(r"(^|_)(seconds|per_s)$")


def normalised(value, swap):
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        for a, b in swap:
            value = value.replace(a, b)
        return value
    if isinstance(value, np.ndarray) and value.dtype.kind in "SUO":
        return [normalised(v, swap) for v in value.tolist()]
    return value


def differences(a_path, b_path, swap):
    """Every way file b differs from file a: datasets bit for bit, attributes but VOLATILE ones."""
    out = []
    with h5py.File(a_path, "r") as a, h5py.File(b_path, "r") as b:
        names_a, names_b = [], []
        a.visit(names_a.append)
        b.visit(names_b.append)
        if sorted(names_a) != sorted(names_b):
            out.append(f"objects differ: {sorted(set(names_a) ^ set(names_b))}")
        for name in ["/"] + sorted(set(names_a) & set(names_b)):
            oa, ob = a[name], b[name]
            if isinstance(oa, h5py.Dataset):
                va, vb = oa[()], ob[()]
                if name.endswith("train/metrics") and name[:-len("metrics")] + "columns" in a:  # all but the timings
                    columns = [c.decode() for c in a[name[:-len("metrics")] + "columns"][()]]
                    keep = [i for i, c in enumerate(columns) if not VOLATILE.search(c)]
                    assert len(keep) == len(columns) - 1, f"{name}: expected one timing column among {columns}"
                    va, vb = va[:, keep], vb[:, keep]
                if oa.dtype != ob.dtype or np.shape(va) != np.shape(vb) or np.asarray(va).tobytes() != np.asarray(vb).tobytes():
                    out.append(f"{name}: dataset differs")
            keys = sorted((set(oa.attrs) | set(ob.attrs)) - {k for k in set(oa.attrs) | set(ob.attrs) if VOLATILE.search(k)})
            for k in keys:
                if k not in oa.attrs or k not in ob.attrs:
                    out.append(f"{name}@{k}: only in one file")
                    continue
                x, y = normalised(oa.attrs[k], swap), normalised(ob.attrs[k], swap)
                same = (np.asarray(x).tobytes() == np.asarray(y).tobytes()) if isinstance(x, (np.ndarray, np.generic, float, int)) \
                    else x == y
                if not same:
                    out.append(f"{name}@{k}: {str(x)[:80]!r} != {str(y)[:80]!r}")
    return out


def outputs(root):
    """Relative paths of every results.h5 and SAE file under root."""
    found = []
    for d, _, files in os.walk(root):
        for f in files:
            rel = os.path.relpath(os.path.join(d, f), root)
            if f == "results.h5" or (os.path.basename(d) == "saes" and f.endswith(".h5")):
                found.append(rel)
    return sorted(found)


def leftovers(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, files in os.walk(root) for f in files
                  if f.endswith(".partial") or f == "checkpoint.h5" or ".partial." in f)


class ChaosSweep(unittest.TestCase):
    def test_status_of_a_missing_or_garbled_folder(self):
        with tempfile.TemporaryDirectory() as tmp:
            missing = os.path.join(tmp, "nowhere")
            r = status(missing)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn(f"{missing}: no such directory", r.stderr)
            r = status(tmp)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn("manifest.json: missing", r.stderr)
            with open(os.path.join(tmp, "manifest.json"), "w") as f:
                f.write('{"format": "universae-sweep", "tasks": [')
            r = status(tmp)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn("manifest.json: garbled", r.stderr)
            r = universae(["sweep", SWEEP, "--status", tmp], env=ENV)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn("give only DIR", r.stderr)

    def test_faults_until_complete_and_identical(self):
        t_start = time.time()
        with tempfile.TemporaryDirectory() as tmp:
            ref, out, scripts = (os.path.join(tmp, d) for d in ("ref", "out", "scripts"))
            # Undisturbed: the same steps one after another here.
            t0 = time.time()
            run_local(SWEEP, ref, ENV)
            t_ref = time.time() - t0
            local_status = status(os.path.join(ref, "sweep"))
            self.assertEqual(local_status.returncode, 0, local_status.stdout + local_status.stderr)

            rng = random.Random(SEED)
            plan = sorted((rng.uniform(1.0, FAULT_WINDOW), rng.choice(["kill", "requeue"])) for _ in range(MAX_FAULTS))
            # The same settings as the undisturbed run (the resolved config in every file must match).
            submit = ["sweep", SWEEP, "--slurm", scripts, "--set", f"run.output_dir={out}",
                      "--set", f"sweep.local_launcher={MPIEXEC} -n {{ranks}}"]
            t0 = time.time()
            universae(submit, env=ENV, check=True)
            rounds, jobs = 1, list(job_ids(scripts).values())
            first = status(scripts)
            self.assertEqual(first.returncode, 3, first.stdout + first.stderr)  # just submitted: queued
            self.assertIn("8 task(s)", first.stdout.splitlines()[-1])

            faults, skipped, statuses = [], [], []
            due_since = None
            while True:
                now = time.time() - t0
                self.assertLess(now, DEADLINE, f"not complete after {DEADLINE} s; faults {faults}")
                rows = queue(jobs)
                stuck = [r for r in rows if r[1] == "PENDING" and r[2] in NEVER]
                self.assertFalse(stuck, f"jobs that can never start: {stuck}")
                release_requeued(rows)
                if plan and now >= plan[0][0]:
                    moment, kind = plan[0]
                    due_since = due_since or now
                    if kind == "kill":
                        targets = rank_processes(out)
                        if targets:
                            pid, step, task, job = rng.choice(targets)
                            try:
                                os.kill(pid, signal.SIGKILL)
                                faults.append((kind, f"{step} task {task} rank pid {pid}", job, now))
                            except ProcessLookupError:
                                targets = []
                    else:
                        # Not a job whose rank was killed: its failure (and the resubmission) is that fault's test.
                        killed = {f[2] for f in faults if f[0] == "kill"}
                        targets = sorted(r[0] for r in rows if r[1] == "RUNNING" and r[0] not in killed)
                        if targets:
                            job = rng.choice(targets)
                            r = subprocess.run(["scontrol", "requeue", job], env=ENV, capture_output=True, text=True)
                            if r.returncode == 0:
                                faults.append((kind, "job", job, now))
                            else:
                                targets = []  # it ended meanwhile
                    if targets or now - due_since > POSTPONE:
                        if not targets:
                            skipped.append((kind, moment))
                        plan.pop(0)
                        due_since = None
                if not rows:
                    st = status(scripts)
                    statuses.append((round(now, 1), STATUS_EXIT.get(st.returncode, st.returncode)))
                    if st.returncode == 0:
                        break
                    self.assertIn(st.returncode, (3, 4), st.stdout + st.stderr)
                    if st.returncode == 4:
                        self.assertRegex(st.stdout, r"failed|incomplete", st.stdout)
                        self.assertRegex(st.stdout, r"log: .*/logs/\w+(-\d+)?\.log", st.stdout)
                        self.assertLess(rounds, MAX_ROUNDS, f"still not complete after {rounds} submissions:\n{st.stdout}")
                        print(f"[{now:6.1f} s] not complete, nothing queued; submitting again:\n{st.stdout}", flush=True)
                        universae(submit, env=ENV, check=True)
                        rounds += 1
                        jobs += list(job_ids(scripts).values())
                time.sleep(0.3)
            t_chaos = time.time() - t0

            final = status(scripts)
            print(final.stdout, flush=True)
            self.assertEqual(final.returncode, 0, final.stdout + final.stderr)
            self.assertIn("status: 8 of 8 task(s) done, summary done; complete (exit 0)", final.stdout)

            print(f"chaos sweep (seed {SEED}): {len(faults)} fault(s) injected and survived in {rounds} submission(s), "
                  f"{t_chaos:.0f} s (undisturbed --local: {t_ref:.0f} s); status after each drained queue: {statuses}",
                  flush=True)
            for kind, target, job, moment in faults:
                print(f"  {moment:6.1f} s  {kind:<8} job {job:<10} {target}", flush=True)
            for kind, moment in skipped:
                print(f"  {moment:6.1f} s  {kind:<8} skipped: nothing to hit for {POSTPONE:.0f} s", flush=True)
            self.assertTrue(faults, "no fault was injected: the sweep ended before the first fault's moment")

            self.assertEqual(leftovers(out), [])
            locks = [os.path.relpath(os.path.join(d, f), out) for d, _, fs in os.walk(out) for f in fs if f.startswith(".universae.lock")]
            if locks:  # a killed holder's lock is taken over by the next run there; one nobody writes to again stays
                print(f"lock files left by killed runs: {locks}", flush=True)
            files = outputs(ref)
            self.assertEqual(len(files), 8 * 3 + 4, files)  # 8 tasks × (2 SAEs + results), 4 across-k results
            self.assertEqual(outputs(out), files)
            swap = [(ref, out)]
            bad = {rel: d for rel in files if (d := differences(os.path.join(ref, rel), os.path.join(out, rel), swap))}
            self.maxDiff = None
            self.assertEqual(bad, {}, "outputs that differ from the undisturbed run's")
            with open(os.path.join(ref, "study_summary.csv")) as a, open(os.path.join(out, "study_summary.csv")) as b:
                self.assertEqual(a.read().replace(ref, out), b.read())
        print(f"test wall time {time.time() - t_start:.0f} s", flush=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
