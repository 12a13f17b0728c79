#!/usr/bin/env bash
# Fresh machine → tested: install, build, then run the whole test suite with CTest
# (unit, MPI at 1/2/3 ranks, golden vs numpy, end to end). Extra arguments go to ctest,
# e.g. scripts/test.sh -L mpi.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
ctest --preset default "$@"
