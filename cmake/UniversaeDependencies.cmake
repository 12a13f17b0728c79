# Every dependency through find_package: nothing is downloaded at configure time (compute nodes
# are offline). scripts/install-deps.sh installs all of them on Debian 12.
find_package(MPI REQUIRED COMPONENTS C CXX)

set(HDF5_PREFER_PARALLEL TRUE)
find_package(HDF5 REQUIRED COMPONENTS C)
if(NOT HDF5_IS_PARALLEL)
  message(FATAL_ERROR "universae needs a parallel (MPI) HDF5; found a serial one at ${HDF5_C_INCLUDE_DIRS}. "
                      "On Debian: apt-get install libhdf5-openmpi-dev")
endif()
add_library(universae_hdf5 INTERFACE)
target_include_directories(universae_hdf5 SYSTEM INTERFACE ${HDF5_C_INCLUDE_DIRS})
target_compile_definitions(universae_hdf5 INTERFACE ${HDF5_C_DEFINITIONS})
target_link_libraries(universae_hdf5 INTERFACE ${HDF5_C_LIBRARIES} MPI::MPI_C)

find_package(Boost 1.74 REQUIRED COMPONENTS mpi serialization)
find_package(tomlplusplus REQUIRED)
find_package(CLI11 REQUIRED)
find_package(fmt REQUIRED)
find_package(nlohmann_json 3 REQUIRED)
find_package(ICU REQUIRED COMPONENTS uc i18n)  # tokenizer.json: Unicode regexes and NFC
find_package(OpenSSL 1.1 REQUIRED COMPONENTS Crypto)  # SHA-256 of the models and files outputs record (io/provenance)

if(UNIVERSAE_CUDA)
  # A CUDA LibTorch must be named explicitly (Torch_DIR); never mix it with Debian's CPU one.
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
    set(CMAKE_CUDA_ARCHITECTURES 90)
  endif()
  set(CMAKE_CUDA_RUNTIME_LIBRARY Shared)
  enable_language(CUDA)
endif()
if(UNIVERSAE_CUDA OR UNIVERSAE_NCCL)
  find_package(CUDAToolkit REQUIRED)
endif()
find_package(Torch REQUIRED)
if(UNIVERSAE_CUDA AND NOT TORCH_CUDA_LIBRARIES)
  message(FATAL_ERROR "UNIVERSAE_CUDA=ON but the LibTorch at ${Torch_DIR} has no CUDA support")
endif()

# NCCL is an always-defined INTERFACE target: empty unless UNIVERSAE_NCCL is on.
add_library(universae_nccl INTERFACE)
if(UNIVERSAE_NCCL)
  find_path(NCCL_INCLUDE_DIR nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS} /usr/local/cuda/include REQUIRED)
  find_library(NCCL_LIBRARY nccl HINTS ${CUDAToolkit_LIBRARY_DIR} /usr/local/cuda/lib64 /usr/local/cuda/lib REQUIRED)
  target_include_directories(universae_nccl SYSTEM INTERFACE ${NCCL_INCLUDE_DIR})
  target_link_libraries(universae_nccl INTERFACE ${NCCL_LIBRARY} CUDA::cudart)
  target_compile_definitions(universae_nccl INTERFACE UNIVERSAE_WITH_NCCL=1)
endif()

find_package(Python3 COMPONENTS Interpreter)
# Tests import numpy/h5py: use Debian's interpreter, not a pyenv shim earlier on PATH.
if(EXISTS /usr/bin/python3)
  set(UNIVERSAE_PYTHON /usr/bin/python3 CACHE FILEPATH "Python with numpy, scipy and h5py")
else()
  set(UNIVERSAE_PYTHON ${Python3_EXECUTABLE} CACHE FILEPATH "Python with numpy, scipy and h5py")
endif()
