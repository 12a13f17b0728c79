#!/usr/bin/env bash
# The hardening half of the test suite (run by scripts/test.sh): builds the asan preset (clang,
# AddressSanitizer + UndefinedBehaviorSanitizer, libFuzzer) and runs the unit and MPI suites under
# the sanitizers, then every fuzz target over its committed corpus and regressions and for
# UNIVERSAE_FUZZ_SECONDS (default 30) of fuzzing. Any sanitizer finding fails the run; a crash's
# input is left in build-asan/fuzz/crashes/ (copy it to fuzz/regressions/<target>/ once fixed).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake --preset asan -DUNIVERSAE_FUZZ_SECONDS="${UNIVERSAE_FUZZ_SECONDS:-30}" >/dev/null
targets=(unit_tests mpi_tests fuzz_config fuzz_safetensors fuzz_foreign_sae fuzz_llama2c fuzz_tokenizer fuzz_documents fuzz_hdf5
         fuzz_gguf fuzz_hf_tokenizer fuzz_hf_config fuzz_inspect)
cmake --build --preset asan -j "$(getconf _NPROCESSORS_ONLN)" --target "${targets[@]}"
ctest --preset asan -L 'unit|mpi|fuzz' "$@"
