#!/usr/bin/env bash
# Fresh machine → results: install, build, then run jobs/quickstart.toml on 2 MPI ranks
# (RANKS=n to change). Outputs land in runs/quickstart/ (SAE files, results.h5, summary.csv) and the
# HTML report in runs/quickstart/report/index.html.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
ranks="${RANKS:-2}"
cores=$(getconf _NPROCESSORS_ONLN)  # not nproc, which honours OMP_NUM_THREADS
# One OpenMP thread per rank unless told otherwise: ranks × threads must not exceed the cores.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
if [[ $(id -u) -eq 0 ]]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
oversubscribe=()
if (( ranks > cores )); then oversubscribe=(--oversubscribe); fi
mpirun -n "$ranks" "${oversubscribe[@]}" build/universae run jobs/quickstart.toml "$@"
if [[ $# -eq 0 ]]; then  # with --set overrides the outputs may be elsewhere: run `universae report` on them
  build/universae report runs/quickstart/results.h5
fi
