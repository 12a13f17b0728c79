# Project options, namespaced and validated. ccache is used when present.
option(UNIVERSAE_CUDA "Build against a CUDA LibTorch and run GEMMs on the GPU" OFF)
option(UNIVERSAE_NCCL "Use NCCL for collectives between GPUs (needs UNIVERSAE_CUDA)" OFF)
option(UNIVERSAE_BUILD_TESTS "Build the GoogleTest suites and register them with CTest" ON)
option(UNIVERSAE_SANITIZE "Build with AddressSanitizer and UndefinedBehaviorSanitizer" OFF)

if(UNIVERSAE_NCCL AND NOT UNIVERSAE_CUDA)
  message(FATAL_ERROR "UNIVERSAE_NCCL=ON needs UNIVERSAE_CUDA=ON")
endif()

if(NOT CMAKE_BUILD_TYPE AND NOT CMAKE_CONFIGURATION_TYPES)
  set(CMAKE_BUILD_TYPE Release CACHE STRING "Build type" FORCE)
endif()

find_program(UNIVERSAE_CCACHE ccache)
if(UNIVERSAE_CCACHE)
  set(CMAKE_C_COMPILER_LAUNCHER "${UNIVERSAE_CCACHE}")
  set(CMAKE_CXX_COMPILER_LAUNCHER "${UNIVERSAE_CCACHE}")
  set(CMAKE_CUDA_COMPILER_LAUNCHER "${UNIVERSAE_CCACHE}")
endif()
