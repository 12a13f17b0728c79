"""End to end: bad input exits 2 on every rank, names the key or file once, and leaves no output;
--help works for the program and every subcommand."""
import os
import subprocess
import tempfile
import unittest

SOURCE = os.environ["UNIVERSAE_SOURCE_DIR"]
BINARY = os.environ["UNIVERSAE_BINARY"]
MPIEXEC = os.environ.get("UNIVERSAE_MPIEXEC", "mpiexec")
JOB = os.path.join(SOURCE, "jobs", "synthetic_ci.toml")


def run(args, ranks=2):
    return subprocess.run([MPIEXEC, "-n", str(ranks), BINARY] + args, capture_output=True, text=True,
                          timeout=120, cwd=SOURCE)


class BadInput(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.out = os.path.join(self.tmp.name, "out")

    def tearDown(self):
        self.tmp.cleanup()

    def job(self, text):
        path = os.path.join(self.tmp.name, "job.toml")
        with open(path, "w") as fh:
            fh.write(text)
        return path

    def assert_refused(self, proc, *needles):
        self.assertEqual(proc.returncode, 2, f"exit {proc.returncode}\n{proc.stderr}")
        errors = [line for line in proc.stderr.splitlines() if line.startswith("universae: error:")]
        self.assertEqual(len(errors), 1, f"the error must be printed once (rank 0):\n{proc.stderr}")
        for needle in needles:
            self.assertIn(needle, errors[0])
        self.assertFalse(os.path.exists(self.out), "no output may be left behind")
        self.assertNotIn("MPI_ABORT", proc.stderr)

    def test_unknown_key(self):
        path = self.job(f'[run]\noutput_dir = "{self.out}"\n[train]\nbatchsize = 64\n')
        self.assert_refused(run(["run", path]), path, "'train.batchsize'", "did you mean 'train.batch_size'")

    def test_wrong_type(self):
        path = self.job(f'[run]\noutput_dir = "{self.out}"\n[sae]\nn_latents = "many"\n')
        self.assert_refused(run(["run", path]), path, "'sae.n_latents'", "integer")

    def test_missing_job_file(self):
        missing = os.path.join(self.tmp.name, "nope.toml")
        self.assert_refused(run(["run", missing]), missing, "not found")

    def test_unknown_key_in_override(self):
        self.assert_refused(run(["run", JOB, "--set", f"run.output_dir={self.out}", "--set", "sae.kk=3"]),
                            "'sae.kk'", "did you mean 'sae.k'")

    def test_missing_data_source(self):
        self.assert_refused(run(["run", JOB, "--set", f"run.output_dir={self.out}", "--set",
                                 "data.source=/no/such/store.h5"]), "data.source", "/no/such/store.h5")

    def test_missing_sae_file(self):
        missing = os.path.join(self.tmp.name, "missing.h5")
        self.assert_refused(run(["compare", "--sae", missing, "--sae", missing, "--out",
                                 os.path.join(self.out, "r.h5")]), missing, "not found")

    def test_sae_file_that_is_not_hdf5(self):
        text = os.path.join(self.tmp.name, "notes.h5")
        with open(text, "w") as fh:
            fh.write("not hdf5\n")
        self.assert_refused(run(["compare", "--sae", text, "--sae", text, "--out", os.path.join(self.out, "r.h5")]),
                            text, "not an HDF5 file")

    def test_unwritable_output_directory(self):
        blocker = os.path.join(self.tmp.name, "a_file")
        open(blocker, "w").close()
        self.out = os.path.join(blocker, "out")  # a directory below a regular file cannot exist
        self.assert_refused(run(["run", JOB, "--set", f"run.output_dir={self.out}"]), self.out)

    def test_unknown_option(self):
        proc = run(["run", JOB, "--frobnicate"])
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertIn("frobnicate", proc.stderr)


class Help(unittest.TestCase):
    def test_every_command_describes_its_options(self):
        top = run(["--help"], ranks=1)
        self.assertEqual(top.returncode, 0)
        for command in ("run", "train", "compare", "inspect"):
            self.assertIn(command, top.stdout)
        expected = {"run": ["--set", "--fresh", "train.batch_size"], "train": ["--set", "--fresh", "sae.seeds"],
                    "compare": ["--sae", "--out", "--set"], "inspect": ["file"]}
        for command, needles in expected.items():
            proc = run([command, "--help"], ranks=2)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            for needle in needles:
                self.assertIn(needle, proc.stdout, f"{command} --help")
            self.assertEqual(proc.stdout.count("Usage:"), 1, "help is printed once, by rank 0")


if __name__ == "__main__":
    unittest.main(verbosity=2)
