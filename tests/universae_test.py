"""What the Python test drivers (tests/e2e, tests/golden, tests/slurm) share: the environment CTest gives
them and the launching of universae.

Every driver starts the same way; the prologue does not depend on the working directory (under CTest,
the build directory):

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
    from universae_test import SOURCE, universae  # noqa: E402

Constants (cmake/UniversaeTesting.cmake and tests/CMakeLists.txt set the variables; the first two are
required):
  SOURCE    $UNIVERSAE_SOURCE_DIR, the source tree
  BINARY    $UNIVERSAE_BINARY, the universae executable
  MPIEXEC   $UNIVERSAE_MPIEXEC, else "mpiexec"
  PYTHON    $UNIVERSAE_PYTHON (the Python the drivers run under), else this interpreter
  SCRIPTS   SOURCE/scripts, the numpy/torch references; a driver that imports one puts it on sys.path

Launching (output captured as text; the working directory is SOURCE unless cwd says otherwise):
  set_args(settings)                 ["--set", s, ...] for each setting "key=value"
  universae_command(args, ranks)     the command line: under MPIEXEC -n ranks, or alone when ranks is None/0
  universae(args, ranks, ...)        runs that command line and returns the CompletedProcess
  run_command(cmd, ...)              the same for any command line (a driver's own, a wrapped one)
  start(cmd)                         starts a command line in a session of its own, to signal or kill it
  npm_package(node_dir, name, ver)   installs an npm package into node_dir (the build tree) once: None, or why not

Importing this module launches nothing and changes nothing.
"""
import json
import os
import shutil
import subprocess
import sys

SOURCE = os.environ["UNIVERSAE_SOURCE_DIR"]
BINARY = os.environ["UNIVERSAE_BINARY"]
MPIEXEC = os.environ.get("UNIVERSAE_MPIEXEC", "mpiexec")
PYTHON = os.environ.get("UNIVERSAE_PYTHON", sys.executable)
SCRIPTS = os.path.join(SOURCE, "scripts")


def set_args(settings):
    """["a=1", "b=2"] -> ["--set", "a=1", "--set", "b=2"]."""
    return [arg for setting in settings for arg in ("--set", setting)]


def universae_command(args, ranks=None, launcher_args=()):
    """[MPIEXEC, "-n", ranks, *launcher_args, BINARY, *args], or [BINARY, *args] when ranks is None or 0.

    launcher_args go between the rank count and the binary: launcher options (--oversubscribe) or a
    command that each rank runs the binary through."""
    launcher = [MPIEXEC, "-n", str(ranks), *launcher_args] if ranks else []
    return launcher + [BINARY, *args]


def run_command(cmd, *, timeout=600, cwd=SOURCE, env=None, check=False, text=True):
    """subprocess.run(cmd) with stdout and stderr captured (as text unless text=False); the CompletedProcess.

    cwd=None and env=None mean this process's (env is a whole environment, not additions). check=True
    raises AssertionError with the command line and its stderr when it exits non-zero."""
    proc = subprocess.run(cmd, capture_output=True, text=text, timeout=timeout, cwd=cwd, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr}")
    return proc


def universae(args, ranks=None, *, launcher_args=(), timeout=600, cwd=SOURCE, env=None, check=False, text=True):
    """Runs universae_command(args, ranks, launcher_args) as run_command does."""
    return run_command(universae_command(args, ranks, launcher_args), timeout=timeout, cwd=cwd, env=env, check=check,
                       text=text)


def npm_package(node_dir, name, version):
    """None when npm package `name`@`version` is ready under node_dir (installed there the first time;
    it needs node, npm and the registry once), else why it cannot be."""
    package = os.path.join(node_dir, "node_modules", name, "package.json")
    if os.path.exists(package):
        with open(package) as f:
            if json.load(f).get("version") == version:
                return None
    if not shutil.which("node") or not shutil.which("npm"):
        return "node and npm are not installed (scripts/install-deps.sh installs them)"
    proc = run_command(["npm", "install", "--prefix", node_dir, "--no-audit", "--no-fund", f"{name}@{version}"],
                       timeout=300, cwd=None)
    if proc.returncode != 0:
        return f"npm install {name}@{version} failed (offline?):\n{proc.stderr[-2000:]}"
    return None


def start(cmd, cwd=SOURCE):
    """Starts cmd in a session of its own (os.killpg(proc.pid, ...) reaches the launcher and every rank),
    stdout discarded, stderr piped as text; the Popen."""
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=cwd,
                            start_new_session=True)
