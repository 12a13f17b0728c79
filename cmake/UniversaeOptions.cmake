# Project options, namespaced and validated. ccache is used when present.
option(UNIVERSAE_CUDA "Build against a CUDA LibTorch and run GEMMs on the GPU" OFF)
option(UNIVERSAE_NCCL "Build the NCCL collectives layer (parallel/nccl) and its gpu tests against the CUDA toolkit" OFF)
option(UNIVERSAE_BUILD_TESTS "Build the GoogleTest suites and register them with CTest" ON)
option(UNIVERSAE_SANITIZE "Build with AddressSanitizer and UndefinedBehaviorSanitizer" OFF)
option(UNIVERSAE_FUZZ "Build the libFuzzer targets in fuzz/ (clang only; the library gets -fsanitize=fuzzer-no-link)" OFF)

# UNIVERSAE_NCCL without UNIVERSAE_CUDA builds the collectives against the toolkit alone (no CUDA
# LibTorch needed): the `nccl` preset, a compile-and-skip check on a machine without a GPU.

if(NOT CMAKE_BUILD_TYPE AND NOT CMAKE_CONFIGURATION_TYPES)
  set(CMAKE_BUILD_TYPE Release CACHE STRING "Build type" FORCE)
endif()

find_program(UNIVERSAE_CCACHE ccache)
if(UNIVERSAE_CCACHE)
  set(CMAKE_C_COMPILER_LAUNCHER "${UNIVERSAE_CCACHE}")
  set(CMAKE_CXX_COMPILER_LAUNCHER "${UNIVERSAE_CCACHE}")
  set(CMAKE_CUDA_COMPILER_LAUNCHER "${UNIVERSAE_CCACHE}")
endif()
