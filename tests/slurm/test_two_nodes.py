"""Two real nodes (label `slurm`): `SLURM_LOCAL_NODES=2 slurm/local-cluster.sh` gives this machine a
cluster of two nodes, each a network and UTS namespace with its own hostname (node1, node2) and slurmd,
joined to the controller and to each other by veth links on a bridge; they share the file system as a
cluster's nodes share theirs, and MPI between them goes over TCP.

1. tests/slurm/two_nodes.toml submitted with `universae sweep --slurm`: its extraction, its training
   (data-parallel in one task, latent-sharded in the other) and its comparisons each run one rank on
   each node (every step's log says "2 ranks on 2 nodes": node-local rank detection sees two nodes).
   While a training job runs, after its first checkpoint, node2's rank is SIGKILLed (a node's ranks
   lost mid-step); the job fails, the sweep is submitted again as a user would once `sweep --status`
   says nothing is queued (exit 4), and the training resumes from its checkpoint. Every results.h5 and
   SAE file then equals the same sweep's run on one node (`--local`: both ranks on this host) bit for
   bit (attributes but timings, once the two output folders' paths are swapped), and nothing partial
   is left.
2. The output lock held from the other node: a training on node1 holds its output folder; the same
   command on node2 exits 2 naming node1 and the Slurm job. Then node1's rank is SIGKILLed (the lock
   stays behind); once Slurm says that job is over, the run on node2 takes the lock over with a warning
   and resumes from the checkpoint.

The cluster runs on its own ports, so it does not disturb the single-node cluster of test_sweep.py.
"""
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tests/slurm/
from universae_test import BINARY, MPIEXEC, SOURCE, start, universae  # noqa: E402
from test_chaos import differences, leftovers, outputs, run_local  # noqa: E402  (the reference run, bit-for-bit comparison)

CLUSTER = os.path.join(SOURCE, "slurm", "local-cluster.sh")
STATE = os.environ.get("SLURM_LOCAL_2NODES_DIR", os.path.join(SOURCE, ".slurm-local-2nodes"))
SWEEP = os.path.join(SOURCE, "tests", "slurm", "two_nodes.toml")
SYNTHETIC = os.path.join(SOURCE, "jobs", "synthetic_ci.toml")
ENV = dict(os.environ, SLURM_LOCAL_NODES="2", SLURM_LOCAL_DIR=STATE, SLURM_CONF=os.path.join(STATE, "slurm.conf"),
           OMP_NUM_THREADS="1")


def setUpModule():
    if os.geteuid() != 0:
        raise unittest.SkipTest("the two-node cluster needs root (network namespaces, slurmd as root)")
    up = subprocess.run(["bash", CLUSTER, "start"], env=ENV, capture_output=True, text=True, timeout=120)
    if up.returncode != 0:
        raise RuntimeError(f"SLURM_LOCAL_NODES=2 local-cluster.sh start failed:\n{up.stdout}\n{up.stderr}")


def tearDownModule():
    subprocess.run(["bash", CLUSTER, "stop"], env=ENV, capture_output=True, text=True, timeout=120)


def slurm(*args, check=True):
    return subprocess.run(list(args), env=ENV, capture_output=True, text=True, timeout=60, check=check)


def queued():
    """{job id: state} of every job the controller still lists as pending or running."""
    rows = slurm("squeue", "-h", "-r", "-o", "%i %T").stdout.split("\n")
    return dict(r.split() for r in rows if r.strip())


def processes(on_node, *needles):
    """Pids of universae processes whose Slurm node is `on_node` and whose arguments hold every needle."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                args = [a.decode() for a in fh.read().split(b"\0") if a]
            with open(f"/proc/{pid}/stat") as fh:
                if fh.read().rsplit(")", 1)[1].split()[0] == "Z":
                    continue
            with open(f"/proc/{pid}/environ", "rb") as fh:
                env = dict(e.split(b"=", 1) for e in fh.read().split(b"\0") if b"=" in e)
        except OSError:
            continue
        if args and args[0] == BINARY and env.get(b"SLURMD_NODENAME") == on_node.encode() and \
                all(n in " ".join(args) for n in needles):
            found.append(int(pid))
    return found


def wait(predicate, what, timeout=180):
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            raise AssertionError(f"no {what} within {timeout} s; queue {queued()}")
        time.sleep(0.05)


class TwoNodes(unittest.TestCase):
    def test_sweep_spans_both_nodes_survives_a_lost_node_and_equals_one_node(self):
        with tempfile.TemporaryDirectory() as tmp:
            ref, out, scripts = (os.path.join(tmp, d) for d in ("ref", "out", "scripts"))
            t0 = time.time()
            run_local(SWEEP, ref, ENV)
            t_ref = time.time() - t0
            submit = ["sweep", SWEEP, "--slurm", scripts, "--set", f"run.output_dir={out}",
                      "--set", f"sweep.local_launcher={MPIEXEC} -n {{ranks}}"]
            t0 = time.time()
            universae(submit, env=ENV, check=True)
            with open(os.path.join(scripts, "train.sbatch")) as fh:
                self.assertIn("#SBATCH --nodes=2", fh.read())
            # A node's ranks lost mid-step: node2's rank of the first training, after its first checkpoint.
            task = os.path.join(out, "latent_shards=1")
            first = ("--step", "train", "--task 0", f"run.output_dir={out}")
            wait(lambda: os.path.exists(os.path.join(task, "checkpoint.h5")) and processes("node2", *first),
                 "training past its first checkpoint")
            victims = processes("node2", *first)
            for pid in victims:
                os.kill(pid, signal.SIGKILL)
            t_kill = time.time() - t0
            wait(lambda: not queued(), "drained queue")
            t_ended = time.time() - t0
            lost = universae(["sweep", "--status", scripts], env=ENV, timeout=120)
            self.assertEqual(lost.returncode, 4, lost.stdout + lost.stderr)
            self.assertRegex(lost.stdout, r"task 1/2 \(latent_shards=1\) +failed")
            universae(submit, env=ENV, check=True)  # as a user would: only the incomplete task runs
            wait(lambda: not queued(), "drained queue")
            done = universae(["sweep", "--status", scripts], env=ENV, timeout=120)
            self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
            t_done = time.time() - t0

            logs = os.path.join(scripts, "logs")
            for log in sorted(os.listdir(logs)):
                with open(os.path.join(logs, log)) as fh:
                    self.assertIn("2 ranks on 2 nodes", fh.read(), log)
            with open(os.path.join(logs, "train-0.log")) as fh:
                self.assertIn("resuming from", fh.read(), "the rerun resumes from the checkpoint")
            self.assertEqual(outputs(out), outputs(ref))
            self.assertEqual(len(outputs(ref)), 2 * 2 + 2)  # 2 tasks × 2 SAEs, 2 results files
            swap = [(out, ref)]
            for rel in outputs(ref):
                self.assertEqual(differences(os.path.join(ref, rel), os.path.join(out, rel), swap), [], rel)
            self.assertEqual(leftovers(out), [])
            print(f"two nodes: one-node reference {t_ref:.0f} s; submitted, node2's rank {victims} of the first "
                  f"training killed at {t_kill:.1f} s, its job over at {t_ended:.1f} s, resubmitted, complete at "
                  f"{t_done:.1f} s; {len(outputs(ref))} files equal the one-node run's", flush=True)

    def test_lock_held_from_the_other_node(self):
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "locked")
            train = [BINARY, "train", SYNTHETIC, "--set", f"run.output_dir={out}", "--set", "train.tokens=409600",
                     "--set", "train.checkpoint_every=20"]
            holder = start(["srun", "-N1", "-n1", "-w", "node1", *train], cwd=SOURCE, env=ENV)
            lock = os.path.join(out, ".universae.lock")
            try:
                wait(lambda: os.path.exists(os.path.join(out, "checkpoint.h5")), "checkpoint on node1")
                other = subprocess.run(["srun", "-N1", "-n1", "-w", "node2", *train], env=ENV, capture_output=True,
                                       text=True, timeout=120, cwd=SOURCE)
                self.assertEqual(other.returncode, 2, other.stderr)
                self.assertIn("another universae run is writing here (host node1", other.stderr)
                self.assertRegex(other.stderr, r"Slurm job \d+")
                with open(lock) as fh:
                    self.assertIn("host=node1\n", fh.read())
                # node1's rank dies without a word (its lock stays); Slurm ends the job.
                for pid in processes("node1", "train", out):
                    os.kill(pid, signal.SIGKILL)
                holder.communicate(timeout=120)
                self.assertTrue(os.path.exists(lock), "a killed run leaves its lock")
                wait(lambda: not queued(), "the killed job to end")
                taken = subprocess.run(["srun", "-N1", "-n1", "-w", "node2", *train], env=ENV, capture_output=True,
                                       text=True, timeout=300, cwd=SOURCE)
            finally:
                if holder.poll() is None:
                    holder.kill()
                    holder.communicate()
            self.assertEqual(taken.returncode, 0, taken.stderr)
            self.assertIn("taking over the lock of a run that is gone (its Slurm job", taken.stderr)
            self.assertIn("host node1", taken.stderr)
            self.assertIn("resuming from", taken.stderr)
            self.assertFalse(os.path.exists(lock), "the finished run removes its lock")


if __name__ == "__main__":
    unittest.main(verbosity=2)
