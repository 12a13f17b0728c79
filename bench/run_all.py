"""Every benchmark at a small size, one table of ratios: a regression shows in one command (about 7.5 minutes
on the 2-core CPU machine).

    /usr/bin/python3 bench/run_all.py [--only NAME,...] [--quick] [--binary build/universae] [--json OUT]

Runs each benchmark as its own subprocess with its own flags (ranks x threads <= 2), parses its final JSON
line (or its printed figures where it has none) and prints one table: benchmark, what is measured, the ratio
or figure, the reference it is against, and the wall time of each benchmark; then the total. Each ratio is
against a reference measured in the same run, so it can be compared with the last run's table in
bench/RESULTS.md (taken at these sizes, not the full ones recorded above it). A benchmark that fails (exit
status, unparsable output, or a broken correctness check) shows as FAILED with the tail of its output; the
others still run, and the exit status is 1. Run it on an otherwise idle machine: two cores leave no room for
anything else. Sizes (--quick: the bracketed ones, a 3-minute smoke test whose ratios fixed costs dominate):

  max_cosine      mpirun -n 2 build/bench/bench_max_cosine 16384 16384 512      [4096 4096 256]
  train           bench_train.py, its fixed size (d 512, n 16,384, batch 4,096), 1 rank x 2 threads
  hungarian       bench_hungarian.py 4096                                        [2048]
  rsa             bench_rsa.py --n 2048 --permutations 500 --naive 3             [--n 512 --permutations 100 --naive 2]
  correlation     bench_correlation.py --n 8192 --tokens 100000                  [--n 2048 --tokens 20000 --dense-tokens 1000]
  cross_model     bench_cross_model.py --n 4096 --tokens 50000 --repeats 3       [--n 2048 --tokens 20000 --repeats 1]
  sae_evaluation  bench_sae_evaluation.py --tokens 32768 --n 512 --k 8           [--tokens 8192 --repeats 1]
  attention       build/bench/bench_attention 4096 5                             [2048 2]
  extract         bench_extract.py --documents 1500                              [200]
  extract_hf      bench_extract_hf.py speed --documents 300                      [100]

Not run: bench_sweep.py (needs the local Slurm cluster, which it starts as root), bench_report.py (needs a
real results file, e.g. the quick start's, and Chromium for its page loads), and bench_extract_hf.py's memory
mode (writes 1.4 and 2.8 GB random Llamas and runs each through 4 extractions: minutes, and GBs of disk).
"""
import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PY = "/usr/bin/python3"
TIMEOUT_S = 1200  # per benchmark


def last_json(out):
    return json.loads(next(line for line in reversed(out.splitlines()) if line.startswith("{")))


def number(pattern, out):
    return float(re.search(pattern, out, re.M)[1])


def row(measured, figure, reference, ok=True):
    return dict(measured=measured, figure=figure, reference=reference, ok=ok)


# Each parser returns (rows, raw): the table rows and what was read from the output.
def parse_max_cosine(out):
    tiled, gemm, dense = (number(rf"^\s*{w}\s+([\d.]+) s", out) for w in ("universae tiled", "bare GEMM, same FLOPs", "dense, 1 rank"))
    diff = number(r"max \|dense - tiled\| over max_cos_ab = (\S+)", out)
    raw = dict(tiled_s=tiled, gemm_s=gemm, dense_s=dense, max_abs_diff=diff, size=re.search(r"max cosine (.*?),", out)[1])
    return [row(f"tiled max cosine both ways, {raw['size']}, 2 ranks", f"{gemm / tiled:.2f} ({tiled:.3f} s)",
                f"bare GEMM, same FLOPs and ranks ({gemm:.3f} s)"),
            row("same, speed-up", f"{dense / tiled:.2f}x", f"dense matrix + max/argmax, 1 rank ({dense:.3f} s)"),
            row("max abs difference to dense", f"{diff:.1e}", "< 1e-5", diff < 1e-5)], raw


def parse_train(out):
    r = last_json(out)
    return [row(f"topk training step, d {r['d']}, n {r['n']}, batch {r['batch']}, {r['threads']} threads",
                f"{r['fraction_of_peak']:.3f} ({r['step_s']:.3f} s)",
                f"sgemm of the encoder's shape, same process ({r['sgemm_peak_flops_per_s'] / 1e9:.0f} GFLOP/s)"),
            row("same step, speed-up", f"{r['speedup_vs_torch']:.2f}x", f"PyTorch {r['torch_version']} step ({r['torch_step_s']:.3f} s)")], r


def parse_hungarian(out):
    r = last_json(out)
    rows = []
    for x in r["results"]:
        rows += [row(f"certified decoder matching, n {x['n']}, d {x['d']}, {x['ranks']} ranks",
                     f"{x['speedup']:.1f}x ({x['universae_matching_s']:.2f} s)", f"scipy linear_sum_assignment ({x['scipy_s']:.2f} s)"),
                 row("matching + similarity pass", f"{x['speedup_including_pass']:.1f}x", "scipy"),
                 row("assignment", "identical, certified" if x["identical_assignment"] and x["certified"] else
                     f"identical {x['identical_assignment']}, certified {x['certified']}", "scipy's",
                     x["identical_assignment"] and x["certified"])]
    return rows, r


def parse_rsa(out):
    r = last_json(out)
    ok = abs(r["score"] - r["scipy_score"]) < 1e-6
    return [row(f"RSA Mantel test, n {r['n']}, {r['permutations']} permutations, {r['ranks']} ranks",
                f"{r['speedup']:.0f}x ({r['universae_s']:.2f} s)",
                f"scipy spearmanr per permutation ({r['naive_per_permutation_s']:.3f} s each, extrapolated)"),
            row("score", f"{r['score']:.9f}", f"scipy {r['scipy_score']:.9f}", ok)], r


def parse_correlation(out):
    r = last_json(out)
    ok = r["max_abs_diff"] < 1e-5 and r["argmax_agreement"] > 0.999
    return [row(f"exact correlation maxima both ways, n {r['n']}, T {r['tokens']:,}, k {r['k']}, {r['ranks']} ranks",
                f"{r['speedup']:.0f}x ({r['universae_s']:.2f} s)",
                f"numpy dense codes + GEMM (T {r['numpy_dense_s_at']['tokens']:,}, scaled linearly)"),
            row("max abs diff, argmax agreement", f"{r['max_abs_diff']:.1e}, {r['argmax_agreement']:.4f}",
                "float64 numpy (< 1e-5, > 0.999)", ok)], r


def parse_cross_model(out):
    r = last_json(out)
    ok = min(r["cross_argmax_identity_ab"], r["cross_argmax_identity_ba"]) > 0.99
    return [row(f"cross-model correlation, n {r['n']}, T {r['tokens']:,}, medians of {r['repeats']}",
                f"{r['ratio_correlation']:.2f}x ({r['cross']['correlation_s']:.2f} s)",
                f"same-model correlation ({r['same']['correlation_s']:.2f} s; target <= {r['target_ratio']})"),
            row("whole compare command", f"{r['ratio_command']:.2f}x", "same-model command"),
            row("cross argmax = corresponding latent",
                f"{r['cross_argmax_identity_ab']:.4f} / {r['cross_argmax_identity_ba']:.4f}", "> 0.99", ok)], r


def parse_sae_evaluation(out):
    r = last_json(out)
    hooks = list(r["results"])
    layers = ", ".join(h.split(".")[1] for h in hooks)
    fig = lambda key: " / ".join(f"{r['results'][h][key]:.2f}" for h in hooks)  # noqa: E731
    tokens = r["results"][hooks[0]]["n_tokens"]
    return [row(f"spliced eval, {r['n']} latents, k {r['k']}, blocks {layers}, {tokens:,} tokens", fig("spliced_over_clean"),
                "clean forward with loss (target <= 1.5)"),
            row("clean + spliced + ablated", fig("one_sae_total_over_clean"), "clean forward with loss")], r


def parse_attention(out):
    shapes = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    small = next(r for r in shapes if r["head_dim"] == 8 and r["length"] < 128)
    # Informational: which shapes the automatic choice (fused up to kFusedMaxHeadDim) got wrong in this run.
    wrong = [f"{r['heads']}x{r['head_dim']}" for r in shapes if (r["auto"] == "fused") != (r["aten_over_fused"] > 1)]
    return [row(f"fused CPU attention, {small['heads']} heads x {small['head_dim']} dims, {small['length']}-token sequences, 1 thread",
                f"{small['aten_over_fused']:.2f}x ({small['fused_s'] * 1e3:.1f} ms)", f"ATen per-sequence ops ({small['aten_s'] * 1e3:.1f} ms)"),
            row("automatic choice slower than the other kernel", ", ".join(wrong) or "in no shape",
                f"{len(shapes)} shapes, head dims 8-128")], dict(shapes=shapes)


def parse_extract(out):
    runs = {}  # "ranks x hookpoints" -> figures
    for m in re.finditer(r"^\s*(\d)\s+(\d+)\s+(True|False)\s+(\d+)\s+(\d+)\s+([\d.]+)%\s+([\d.]+)%\s+([\d.]+)%", out, re.M):
        runs[f"{m[1]}x{m[2]}"] = dict(tokens=int(m[4]), rate=float(m[5]), forward=float(m[6]), write=float(m[7]))
    torch_rate = number(r"PyTorch reference .*: (\d+) tok/s", out)
    one, every = runs["1x10"], runs["2x10"]
    return [row(f"stories260K extract, 10 hookpoints + loss, 1 rank, {one['tokens']:,} tokens",
                f"{one['rate'] / torch_rate:.2f}x ({one['rate']:,.0f} tok/s)", f"PyTorch forward + logits ({torch_rate:,.0f} tok/s)"),
            row("2 ranks, 1 hookpoint", f"{runs['2x1']['rate'] / runs['1x1']['rate']:.2f}x", "1 rank"),
            row("2 ranks, 10 hookpoints + loss", f"{every['rate'] / one['rate']:.2f}x", "1 rank"),
            row("HDF5 writes waited for, 1 rank, 10 hookpoints", f"{one['write']:.1f} %", "its time (writes beside the forward)"),
            row("HDF5 writes, 2 ranks, 10 hookpoints", f"{every['write']:.1f} %", "rank 0's time (no core free)")], dict(runs=runs, torch=torch_rate)


def parse_extract_hf(out):
    m = re.search(r"1 rank / PyTorch = ([\d.]+)x; 2 ranks / 1 rank = ([\d.]+)x \(the machine's sgemm ceiling ([\d.]+)x", out)
    torch_rate = number(r"^PyTorch .*: (\d+) tok/s", out)
    runs = {(m2[3] or "f32"): dict(tokens=int(m2[1]), rate=float(m2[2]))
            for m2 in re.finditer(r"^\s*1\s+(\d+)\s+(\d+)\s+[\d.]+s(?:\s+\(weights stored bfloat16, computed in (\w+)\))?$", out, re.M)}
    raw = dict(vs_torch=float(m[1]), two_over_one=float(m[2]), sgemm_ceiling=float(m[3]), torch=torch_rate, runs=runs)
    return [row(f"HF Llama d 512 extract + loss, 1 rank, {runs['f32']['tokens']:,} tokens", f"{raw['vs_torch']:.2f}x",
                f"PyTorch HF Llama forward ({torch_rate:,.0f} tok/s)"),
            row("2 ranks", f"{raw['two_over_one']:.2f}x", f"1 rank (sgemm 2-process ceiling {raw['sgemm_ceiling']:.2f}x)"),
            row("bfloat16 weights, bfloat16 compute", f"{runs['bfloat16']['rate'] / runs['f32']['rate']:.2f}x", "float32")], raw


def benchmarks(a):
    """name -> (argv, threads, parser); sizes as in the docstring."""
    q = a.quick
    script = lambda name, *args: [PY, os.path.join(HERE, name), *args, "--binary", a.binary]  # noqa: E731
    bench_bin = os.path.join(os.path.dirname(os.path.abspath(a.binary)), "bench")
    size = ["4096", "4096", "256"] if q else ["16384", "16384", "512"]
    return {
        "max_cosine": (["mpirun", "-n", "2", os.path.join(bench_bin, "bench_max_cosine"), *size], 1, parse_max_cosine),
        "train": ([PY, os.path.join(HERE, "bench_train.py"), os.path.join(bench_bin, "bench_train_step")], 2, parse_train),
        "hungarian": (script("bench_hungarian.py", "2048" if q else "4096"), 1, parse_hungarian),
        "rsa": (script("bench_rsa.py", *(["--n", "512", "--permutations", "100", "--naive", "2"] if q else
                                         ["--n", "2048", "--permutations", "500", "--naive", "3"])), 1, parse_rsa),
        "correlation": (script("bench_correlation.py", *(["--n", "2048", "--tokens", "20000", "--dense-tokens", "1000"] if q else
                                                         ["--n", "8192", "--tokens", "100000"])), 1, parse_correlation),
        "cross_model": (script("bench_cross_model.py", *(["--n", "2048", "--tokens", "20000", "--repeats", "1"] if q else
                                                         ["--n", "4096", "--tokens", "50000", "--repeats", "3"])), 1, parse_cross_model),
        "sae_evaluation": (script("bench_sae_evaluation.py", "--tokens", "8192" if q else "32768", "--n", "512", "--k", "8",
                                  "--repeats", "1" if q else "3"), 1, parse_sae_evaluation),
        "attention": ([os.path.join(bench_bin, "bench_attention"), *(["2048", "2"] if q else ["4096", "5"])], 1, parse_attention),
        "extract": (script("bench_extract.py", "--documents", "200" if q else "1500"), 1, parse_extract),
        "extract_hf": (script("bench_extract_hf.py", "speed", "--documents", "100" if q else "300"), 1, parse_extract_hf),
    }


def run(argv, threads):
    """(exit status or 'timeout', combined output, seconds); mpirun's ranks die with it on a timeout."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
               OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    t0 = time.perf_counter()
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                cwd=ROOT, start_new_session=True)
    except OSError as e:
        return str(e), "", 0.0
    try:
        out, _ = proc.communicate(timeout=TIMEOUT_S)
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, rc = proc.communicate()[0], f"timeout after {TIMEOUT_S} s"
    return rc, out, time.perf_counter() - t0


def print_table(results):
    lines = [("benchmark", "measured", "ratio / figure", "reference", "wall")]
    for r in results:
        wall = f"{r['wall_s']:.0f} s"
        if r["status"] != "ok" and not r["rows"]:
            lines.append((r["name"], r["status"], "", "", wall))
        for i, x in enumerate(r["rows"]):
            figure = x["figure"] if x["ok"] else f"{x['figure']} CHECK FAILED"
            lines.append((r["name"] if i == 0 else "", x["measured"], figure, x["reference"], wall if i == 0 else ""))
    widths = [max(len(line[c]) for line in lines) for c in range(5)]
    fmt = lambda line: "| " + " | ".join(f"{v:>{w}}" if c in (2, 4) else f"{v:<{w}}"  # noqa: E731
                                         for c, (v, w) in enumerate(zip(line, widths))) + " |"
    print(fmt(lines[0]))
    print("|" + "|".join("-" * (w + 1) + (":" if c in (2, 4) else "-") for c, w in enumerate(widths)) + "|")
    for line in lines[1:]:
        print(fmt(line))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", help="comma-separated benchmark names (default: all)")
    p.add_argument("--quick", action="store_true", help="about half of each size: a smoke test")
    p.add_argument("--binary", default=os.path.join(ROOT, "build", "universae"),
                   help="the universae binary; bench_max_cosine and bench_train_step are taken from bench/ beside it")
    p.add_argument("--json", metavar="OUT", help="write every benchmark's rows, raw figures and wall time here")
    a = p.parse_args()
    todo = benchmarks(a)
    names = a.only.split(",") if a.only else list(todo)
    unknown = [n for n in names if n not in todo]
    if unknown:
        p.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(todo)}")
    results, start = [], time.perf_counter()
    for i, name in enumerate(names, 1):
        argv, threads, parse = todo[name]
        print(f"[{i}/{len(names)}] {name}: {' '.join(os.path.relpath(x, ROOT) if x.startswith(ROOT) else x for x in argv)}",
              flush=True)
        rc, out, wall = run(argv, threads)
        r = dict(name=name, command=argv, wall_s=round(wall, 1), rows=[], raw=None)
        if rc == 0:
            try:
                r["rows"], r["raw"] = parse(out)
            except Exception as e:  # noqa: BLE001 (any parse error is this benchmark's failure)
                rc = f"output not understood ({type(e).__name__}: {e})"
        checks_ok = all(x["ok"] for x in r["rows"])
        r["status"] = "ok" if rc == 0 and checks_ok else "FAILED" + ("" if rc == 0 else f" ({rc})")
        print(f"    {r['status']} in {wall:.1f} s", flush=True)
        if r["status"] != "ok":
            r["output_tail"] = out.rstrip().splitlines()[-25:]
            print("    " + "\n    ".join(r["output_tail"]), flush=True)
        results.append(r)
    total = time.perf_counter() - start
    print()
    print_table(results)
    failed = [r["name"] for r in results if r["status"] != "ok"]
    print(f"\ntotal wall time {total:.0f} s ({total / 60:.1f} min); "
          + (f"FAILED: {', '.join(failed)}" if failed else f"all {len(results)} benchmarks ok"))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(dict(quick=a.quick, total_s=round(total, 1), benchmarks=results), f, indent=1, default=str)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
