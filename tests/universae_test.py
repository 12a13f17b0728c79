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
  start(cmd, cwd, env)               starts a command line in a session of its own, to signal or kill it
  kill_job(proc)                     SIGKILLs the launcher and every rank of a start()ed job (a node lost),
                                     reaps the launcher and waits until no rank is left running
  npm_package(node_dir, name, ver)   installs an npm package into node_dir (the build tree) once: None, or why not

Importing this module launches nothing and changes nothing.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

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


def start(cmd, cwd=SOURCE, env=None):
    """Starts cmd in a session of its own (env: a whole environment, None: this one's), stdout discarded,
    stderr piped as text; the Popen.

    The launcher and its ranks share that session, not a process group: OpenMPI puts each rank in a
    process group of its own, so os.killpg(proc.pid, ...) reaches the launcher alone and leaves the ranks
    running as orphans. kill_job() reaches them all."""
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=cwd, env=env,
                            start_new_session=True)


def _session_members(sid):
    """{pid: state} of the processes in session sid (zombies included)."""
    members = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:
            members[int(entry)] = fields[0]
    return members


def kill_job(proc, timeout=60):
    """For a job started with start() (its own session, whose id is proc.pid): SIGKILLs every process of proc's session (the launcher and its ranks, as a lost node loses them),
    waits until none is left running (a zombie awaiting its reaper counts as gone) and reaps the
    launcher; its stderr."""
    deadline = time.time() + timeout
    while True:
        running = [pid for pid, state in _session_members(proc.pid).items() if state != "Z"]
        if not running:
            break
        if time.time() > deadline:
            raise AssertionError(f"processes of the killed job outlived it by {timeout} s: {running}")
        for pid in running:  # again each round: a launcher not yet killed may have started another rank
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.02)
    _, err = proc.communicate()
    return err
