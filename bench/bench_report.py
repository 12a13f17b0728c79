#!/usr/bin/python3
"""How long `universae report` takes on a sweep of TASKS tasks with N-latent SAEs, how large the report
is, and how long Chromium takes to show its first pages from file://.

    /usr/bin/python3 bench/bench_report.py RESULTS.h5 [--tasks 20] [--latents 16384] [--binary build/universae]

Training and comparing 20 pairs of 16,384-latent SAEs is hours of work on 2 cores, so the sweep is built
from one real results file (the quick start's, 512 latents): each task's results.h5 holds the same
groups and datasets, every per-latent array (frequencies, top examples and windows, max cosines,
matchings, correlations, stability) tiled to N latents (index arrays shifted into their block) and the
rest as they are, with train_log.jsonl beside it. The report reads, draws and writes the same amount as
for a real sweep of that shape (the values repeat; the work does not depend on them).

Prints the report's wall time, its size (the latent browser's files separately) and, when playwright-core
is installed in BUILD/playwright_node (tests/e2e/test_report_browser.py installs it), the load times of
index.html and latents.html (first page of the first pair's list, with a card open).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def tile(values, n, n0, index):
    """values with first dimension n0 → n rows (n a multiple of n0); index arrays point into their block."""
    blocks = n // n0
    out = np.concatenate([values] * blocks)
    if index:
        shift = np.repeat(np.arange(blocks) * n0, n0).reshape((-1,) + (1,) * (values.ndim - 1))
        out = np.where(out >= 0, out + shift, out)
    return out


def copy_scaled(src, dst, n, n0):
    """Every group, dataset and attribute of src into dst, per-latent datasets tiled from n0 to n rows."""
    def visit(name, obj):
        if isinstance(obj, h5py.Group):
            g = dst.require_group(name)
        else:
            data = obj[()]
            per_latent = (data.ndim >= 1 and data.shape[0] == n0 and not name.endswith("/null")
                          and not name.startswith("activations"))  # the vocabulary is not per latent
            if per_latent:
                index = any(k in name.rsplit("/", 1)[-1] for k in ("argmax", "match")) or name.endswith(("/a", "/b"))
                data = tile(data, n, n0, index and np.issubdtype(data.dtype, np.integer))
            g = dst.create_dataset(name, data=data)
        for k, v in obj.attrs.items():
            g.attrs[k] = n if k in ("n_latents", "n_a", "n_b") and v == n0 else v
    for k, v in src.attrs.items():
        dst.attrs[k] = v
    src.visititems(visit)


def build_sweep(results, root, tasks, n):
    with h5py.File(results, "r") as src:
        n0 = int(next(iter(src["saes"].values())).attrs["n_latents"])
        if n % n0:
            sys.exit(f"--latents must be a multiple of the results' {n0} latents")
        first = os.path.join(root, "task0", "results.h5")
        os.makedirs(os.path.dirname(first))
        with h5py.File(first, "w") as dst:
            copy_scaled(src, dst, n, n0)
    log = os.path.join(os.path.dirname(results), "train_log.jsonl")
    for t in range(tasks):
        d = os.path.join(root, f"task{t}")
        os.makedirs(d, exist_ok=True)
        if t:
            shutil.copyfile(first, os.path.join(d, "results.h5"))
        with h5py.File(os.path.join(d, "results.h5"), "r+") as f:  # each task's own SAE files, as in a sweep
            for name, g in f["saes"].items():
                g.attrs["path"] = os.path.join(d, "saes", name + ".h5")
        if os.path.exists(log):
            shutil.copyfile(log, os.path.join(d, "train_log.jsonl"))


def size_mb(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs) / 1e6


def page_loads(binary, report):
    """(index.html ms, latents.html ms) in headless Chromium, or None without playwright-core."""
    module = os.path.join(os.path.dirname(os.path.abspath(binary)), "playwright_node", "node_modules", "playwright-core")
    if not os.path.isdir(module):
        return None
    script = f"""
const {{ chromium }} = require({json.dumps(module)});
(async () => {{
  const b = await chromium.launch({{ executablePath: "/usr/bin/chromium", args: ["--no-sandbox", "--disable-gpu",
    "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"] }});
  const p = await b.newPage({{ viewport: {{ width: 1400, height: 1000 }} }});
  const out = {{}};
  let t = Date.now();
  await p.goto("file://{report}/index.html", {{ waitUntil: "load" }});
  out.index = Date.now() - t;
  t = Date.now();
  await p.goto("file://{report}/latents.html#side=a&latent=1", {{ waitUntil: "load" }});
  await p.waitForFunction(() => document.body.dataset.ready && document.querySelectorAll("#cards .example").length > 0,
                          null, {{ timeout: 60000 }});
  out.latents = Date.now() - t;
  await b.close();
  console.log(JSON.stringify(out));
}})();
"""
    proc = subprocess.run(["node", "-e", script], capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        return f"failed: {proc.stderr[-500:]}"
    return json.loads(proc.stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results")
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--latents", type=int, default=16384)
    parser.add_argument("--binary", default=os.path.join(HERE, "..", "build", "universae"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sweep = os.path.join(tmp, "sweep")
        t = time.time()
        build_sweep(args.results, sweep, args.tasks, args.latents)
        print(f"sweep of {args.tasks} tasks with {args.latents}-latent SAEs built in {time.time() - t:.1f} s "
              f"({size_mb(sweep):.0f} MB of results files)")
        report = os.path.join(tmp, "report")
        t = time.time()
        proc = subprocess.run([args.binary, "report", sweep, "--out", report], capture_output=True, text=True)
        seconds = time.time() - t
        if proc.returncode != 0:
            sys.exit(proc.stderr)
        browser = size_mb(os.path.join(report, "latents"))
        print(f"universae report: {seconds:.1f} s; report {size_mb(report):.0f} MB, of which the latent browser "
              f"{browser:.0f} MB")
        print(f"first page loads (headless Chromium, file://): {page_loads(args.binary, report)}")


if __name__ == "__main__":
    main()
