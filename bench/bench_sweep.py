#!/usr/bin/env python3
"""One study three ways: `universae run` (every task in one MPI job), `universae sweep --local` (each
step its own mpirun, one after another) and `universae sweep --slurm` on the local Slurm cluster
(array tasks side by side). Prints the wall time of each, the overhead per step, and whether the
three study tables are identical (they must be: results do not depend on the rank count).

    /usr/bin/python3 bench/bench_sweep.py [JOB.toml] [--ranks 2]

Starts slurm/local-cluster.sh if it is not running (root) and stops it again if it started it.
Run on an otherwise idle machine.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "build", "universae")
CLUSTER = os.path.join(ROOT, "slurm", "local-cluster.sh")
STATE = os.environ.get("SLURM_LOCAL_DIR", os.path.join(ROOT, ".slurm-local"))
ENV = dict(os.environ, OMP_NUM_THREADS="1", OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           SLURM_CONF=os.path.join(STATE, "slurm.conf"), SLURM_LOCAL_DIR=STATE)


def timed(args):
    t = time.time()
    proc = subprocess.run(args, env=ENV, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return time.time() - t, proc


def wait_for_jobs(scripts):
    with open(os.path.join(scripts, "jobs.txt")) as f:
        ids = [line.split()[1] for line in f if line.strip()]
    while subprocess.run(["squeue", "-h", "-j", ",".join(ids)], env=ENV, capture_output=True, text=True).stdout.strip():
        time.sleep(0.25)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("job", nargs="?", default=os.path.join(ROOT, "jobs", "seeds_study_ci.toml"))
    parser.add_argument("--ranks", type=int, default=2)
    a = parser.parse_args()
    status = subprocess.run(["bash", CLUSTER, "status"], env=ENV, capture_output=True, text=True).stdout
    started = "slurmctld running" not in status
    if started:
        subprocess.run(["bash", CLUSTER, "start"], env=ENV, check=True, capture_output=True)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out = {m: os.path.join(tmp, m) for m in ("run", "local", "slurm")}
            t_run, _ = timed(["mpirun", "-n", str(a.ranks), BINARY, "run", a.job, "--set", f"run.output_dir={out['run']}"])
            t_local, local = timed([BINARY, "sweep", a.job, "--local", "--set", f"run.output_dir={out['local']}"])
            steps = local.stderr.count(" done in ")
            scripts = os.path.join(tmp, "scripts")
            t = time.time()
            timed([BINARY, "sweep", a.job, "--slurm", scripts, "--set", f"run.output_dir={out['slurm']}"])
            wait_for_jobs(scripts)
            t_slurm = time.time() - t
            tables = {}
            for m, d in out.items():
                with open(os.path.join(d, "study_summary.csv")) as f:
                    tables[m] = f.read()
            same = tables["run"] == tables["local"] == tables["slurm"]
            print(f"{os.path.basename(a.job)}: {tables['run'].count(chr(10)) - 1} compared pairs, {steps} local steps")
            print(f"| way | wall | vs run |")
            print(f"|---|---:|---:|")
            print(f"| mpirun -n {a.ranks} universae run | {t_run:.1f} s | 1.00 |")
            print(f"| universae sweep --local | {t_local:.1f} s | {t_local / t_run:.2f} |")
            print(f"| universae sweep --slurm (local cluster, submit to last job done) | {t_slurm:.1f} s | {t_slurm / t_run:.2f} |")
            print(f"study tables identical: {same}")
            if not same:
                sys.exit(1)
    finally:
        if started:
            subprocess.run(["bash", CLUSTER, "stop"], env=ENV, capture_output=True)


if __name__ == "__main__":
    main()
