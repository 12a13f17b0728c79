#!/usr/bin/env bash
# Fresh machine → tested: install, build, then run the whole test suite with CTest
# (unit, MPI at 1/2/3 ranks, golden vs numpy, end to end, Slurm), then the same unit and MPI suites
# under ASan/UBSan and the fuzz targets (scripts/test-sanitizers.sh). Extra arguments go to the
# first ctest only and skip the sanitizer half, e.g. scripts/test.sh -L mpi.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
ctest --preset default "$@"
if [[ $# -eq 0 ]]; then
  scripts/test-sanitizers.sh
fi
