#!/usr/bin/env bash
# Installs the dependencies (scripts/install-deps.sh) and builds build/universae with the default
# CMake preset (Release, CPU). Idempotent: a second run only rebuilds what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake --preset default
cmake --build --preset default -j "$(getconf _NPROCESSORS_ONLN)"  # not nproc: it honours OMP_NUM_THREADS
