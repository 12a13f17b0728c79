#!/usr/bin/env bash
# The one-shot GPU check (issue 21, docs/gpu.md): on a fresh GPU machine, build only what the GPU
# tests and benchmarks need, run the `gpu` test label (the training step of every architecture on
# cuda against the CPU kernels, bfloat16, the similarity pass's top-K lists, NCCL collectives) and
# the GPU benchmarks, run the quick-start job on the GPU and on the CPU and compare every output
# (tests/gpu/compare_runs.py), and write everything to one results file, gpu-check.json, beside its log.
#
#   scripts/gpu-check.sh [--out DIR] [--quick] [--dry-run] [--skip-build]
#
#   --out DIR     where gpu-check.json and gpu-check.log go, and nothing else (default: gpu-check/)
#   --quick       benchmarks at a tenth of the size (a first look, or a short lease)
#   --dry-run     here, without a GPU: the `nccl` preset against Debian's CPU LibTorch and the CUDA
#                 toolkit, the same targets, the gpu label (every test skips), the benchmarks on the CPU
#                 at a small size, the quick-start job with the fast and the generic kernels. Checks
#                 the script, the prefix build and the argument handling.
#   --skip-build  reuse the build directory (a rerun on a machine still warm)
#
# With the device tool (one call; .gpu-debs and .gpu-data from `scripts/gpu-build.sh fetch` here):
#   run(command="scripts/gpu-check.sh --out $OUT", carry=[".gpu-debs", ".gpu-data"], timeout_s=540)
# Exit status: 0 when every step passed, 1 when one failed (the file says which), 2 on bad usage.
set -uo pipefail
cd "$(dirname "$0")/.."

out=gpu-check quick=0 dry=0 build=1
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=${2:?--out needs a directory}; shift 2 ;;
    --quick) quick=1; shift ;;
    --dry-run) dry=1; shift ;;
    --skip-build) build=0; shift ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu-check.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
mkdir -p "$out" || { echo "gpu-check.sh: cannot create $out" >&2; exit 2; }
out=$(cd "$out" && pwd)
work=$(mktemp -d /tmp/gpu-check.XXXXXX)  # each step's output and the job runs; only the summary goes to --out
log="$out/gpu-check.log" steps="$work/steps.jsonl"
: > "$log"; : > "$steps"
failed=0

# step NAME COMMAND...: runs it, appends its output to the log (and to $out/NAME.out), records
# {"step", "seconds", "status", "output"} in steps.jsonl.
step() {
  local name=$1; shift
  local start end status
  echo "=== $name: $*" | tee -a "$log"
  start=$(date +%s.%N)
  "$@" > "$work/$name.out" 2>&1
  status=$?
  end=$(date +%s.%N)
  tee -a "$log" < "$work/$name.out" | tail -n 25
  local seconds
  seconds=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
  printf '{"step": "%s", "seconds": %s, "status": %d}\n' "$name" "$seconds" "$status" >> "$steps"
  echo "=== $name: exit $status after $seconds s" | tee -a "$log"
  [ "$status" -eq 0 ] || failed=1
  return "$status"
}

if [ "$dry" -eq 1 ]; then
  export PRESET=nccl GPU_BUILD_DIR=build-gpucheck GPU_PREFIX=/tmp/gpu-prefix-dry
  export TORCH_DIR=${TORCH_DIR:-$(dirname "$(find /usr/lib /usr/share -name TorchConfig.cmake -print -quit 2>/dev/null)")}
  train_args=(256 2048 16 512 2 cpu) cosine_args=(2048 2048 128 256 1024 cpu)
else
  export GPU_BUILD_DIR=${GPU_BUILD_DIR:-build-cuda}
  if [ "$quick" -eq 1 ]; then
    train_args=(4096 16384 64 4096 3 cuda) cosine_args=(16384 16384 4096 8192 16384 cuda)
  else
    train_args=(4096 131072 64 4096 3 cuda) cosine_args=(131072 131072 4096 8192 16384 cuda)
  fi
fi
dir=$GPU_BUILD_DIR
# A Python with h5py for the output comparison: the GPU image's python3; here, Debian's.
py=python3
python3 -c 'import h5py' 2>/dev/null || { [ -x /usr/bin/python3 ] && py=/usr/bin/python3; }

step machine sh -c 'uname -a; nproc; free -g | head -2; nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1 || echo "no nvidia-smi"; python3 -c "import torch; print(\"torch\", torch.__version__, \"cuda\", torch.version.cuda, \"gpus\", torch.cuda.device_count())" 2>&1; nvcc --version 2>&1 | tail -1; cmake --version | head -1'
if [ "$build" -eq 1 ]; then
  # Only what the checks run: the program, unit_tests (the DeviceStep cases), the NCCL tests, two benchmarks.
  step build env TARGETS="universae unit_tests gpu_tests bench_train_step bench_max_cosine" scripts/gpu-build.sh build || {
    echo "gpu-check.sh: the build failed; see $log" >&2
  }
fi
eval "$(scripts/gpu-build.sh env)"
if [ -x "$dir/universae" ]; then
  step tests ctest --test-dir "$dir" -L gpu --output-on-failure --timeout 300
  step unit_device_step "$dir/tests/unit_tests" --gtest_filter='DeviceStep.*:Kernels.*'
  for dtype in bfloat16 tf32; do
    step "train_step_$dtype" "$dir/bench/bench_train_step" "${train_args[@]}" "$dtype"
  done
  step max_cosine_tf32 "$dir/bench/bench_max_cosine" "${cosine_args[@]}" tf32
  # The quick-start job end to end (extract, train, compare) twice: on the GPU and on the CPU (the dry
  # run: the generic and the fast kernels on the CPU), every output compared.
  data=.gpu-data
  if [ -f "$data/stories260K.bin" ]; then
    if [ "$dry" -eq 1 ]; then runs=("fast:run.kernels=fast" "other:run.kernels=generic"); else runs=("fast:run.device=cpu" "other:run.device=cuda"); fi
    for r in "${runs[@]}"; do
      step "job_${r%%:*}" "$dir/universae" run jobs/quickstart_ci.toml --set "${r#*:}" --set "run.output_dir=$work/job-${r%%:*}" \
        --set "extract.model=$data/stories260K.bin" --set "extract.tokenizer=$data/tok512.bin" \
        --set "extract.inputs=[\"$data/tinystories_val_794k.txt\"]" --set extract.max_documents=200 --set train.tokens=102400
    done
    step job_compare "$py" tests/gpu/compare_runs.py "$work/job-fast" "$work/job-other"
  else
    echo "gpu-check.sh: no $data/ (scripts/gpu-build.sh fetch, and carry it): the end-to-end job is skipped" | tee -a "$log"
  fi
fi

# One file: the steps, and each benchmark's JSON line or summary.
python3 - "$out" "$dry" "$work" <<'EOF'
import json, os, sys
out, dry, work = sys.argv[1], sys.argv[2] == "1", sys.argv[3]
steps = [json.loads(line) for line in open(os.path.join(work, "steps.jsonl"))]
for s in steps:
    text = open(os.path.join(work, s["step"] + ".out"), errors="replace").read()
    s["output_tail"] = text[-4000:]
    for line in text.splitlines():
        if line.startswith("{") and line.endswith("}"):
            try:
                s["result"] = json.loads(line)
            except ValueError:
                pass
result = {"dry_run": dry, "passed": all(s["status"] == 0 for s in steps), "steps": steps}
json.dump(result, open(os.path.join(out, "gpu-check.json"), "w"), indent=1)
print(f"gpu-check: {'passed' if result['passed'] else 'FAILED'}; {len(steps)} steps; "
      f"{sum(s['seconds'] for s in steps):.0f} s; {os.path.join(out, 'gpu-check.json')}")
EOF
exit "$failed"
