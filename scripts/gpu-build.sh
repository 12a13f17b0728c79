#!/usr/bin/env bash
# The CUDA build on a GPU machine whose image has CUDA, CMake, ninja and a Python torch 2.x but none of
# universae's C++ stack (MPI, parallel HDF5, Boost.MPI, ...): the Debian 12 packages of that stack,
# fetched here, unpacked there into a prefix. scripts/gpu-check.sh drives it; docs/gpu.md explains.
#
#   here:   scripts/gpu-build.sh fetch       # the .debs → .gpu-debs/, and the quick-start job's model, tokenizer
#                                            # and text (../shared/data) → .gpu-data/ (both git-ignored through
#                                            # .git/info/exclude)
#   there:  scripts/gpu-build.sh build       # unpack into /tmp/gpu-prefix, configure the `cuda` preset
#                                            # against torch's LibTorch, build TARGETS (default: all)
#           scripts/gpu-build.sh env         # the environment lines the build used (to `eval`)
#
# The device tool carries .gpu-debs (name it in `carry`; at most 64 MiB travel per call).
# Environment: GPU_PREFIX (/tmp/gpu-prefix), GPU_BUILD_DIR (build-cuda), TARGETS, JOBS,
# TORCH_DIR (default: python3's torch.utils.cmake_prefix_path), PRESET (cuda; `nccl` for the dry run).
set -euo pipefail
cd "$(dirname "$0")/.."
debs=.gpu-debs
prefix=${GPU_PREFIX:-/tmp/gpu-prefix}
# Headers and link-time files of what CMakeLists.txt finds, and every shared library those link to
# (the closure of `ldd` over them on Debian 12), less the C and C++ runtimes every image has.
dev_packages=(libopenmpi-dev libhdf5-openmpi-dev libboost1.74-dev libboost-mpi1.74-dev libboost-serialization1.74-dev
              libgtest-dev libtomlplusplus-dev libcli11-dev nlohmann-json3-dev libfmt-dev libicu-dev libssl-dev libaec-dev)
runtime_packages=(openmpi-bin openmpi-common libopenmpi3 libhdf5-openmpi-103-1 libboost-mpi1.74.0 libboost-serialization1.74.0
                  libfmt9 libicu72 libssl3 libtomlplusplus3 libsz2 libaec0 libhwloc15 libpmix2 libevent-core-2.1-7
                  libevent-pthreads-2.1-7 libfabric1 libucx0 libibverbs1 ibverbs-providers librdmacm1 libnl-3-200
                  libnl-route-3-200 libnuma1 libpsm2-2 libpsm-infinipath1 libmunge2 libcurl4 libnghttp2-14 libidn2-0
                  libunistring2 libpsl5 librtmp1 libssh2-1 libgnutls30 libhogweed6 libnettle8 libgmp10 libp11-kit0
                  libtasn1-6 libffi8 libgssapi-krb5-2 libkrb5-3 libk5crypto3 libkrb5support0 libldap-2.5-0 libsasl2-2
                  libbrotli1 libzstd1 libudev1 libuuid1 libatomic1)

env_lines() {
  local lib="$prefix/usr/lib/x86_64-linux-gnu"
  echo "export PATH=\"$prefix/usr/bin:\$PATH\""
  echo "export LD_LIBRARY_PATH=\"$lib:$lib/openmpi/lib:$lib/hdf5/openmpi:\${LD_LIBRARY_PATH:-}\""
  echo "export OPAL_PREFIX=\"$prefix/usr\""  # a relocated OpenMPI finds its help files and components here
  echo "export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1"
  echo "export OMPI_MCA_plm_rsh_agent=/bin/false"  # one node, no ssh: mpiexec needs no remote agent
}

case "${1:-}" in
  fetch)
    mkdir -p "$debs"
    exclude="$(git rev-parse --git-dir)/info/exclude"
    mkdir -p "$(dirname "$exclude")"
    grep -qx "/$debs/" "$exclude" 2>/dev/null || echo "/$debs/" >> "$exclude"
    grep -qx "/.gpu-data/" "$exclude" 2>/dev/null || echo "/.gpu-data/" >> "$exclude"
    (cd "$debs" && apt-get download "${dev_packages[@]}" "${runtime_packages[@]}")
    mkdir -p .gpu-data  # the device machine gets the repository only: ../shared/data does not travel
    cp ../shared/data/stories260K.bin ../shared/data/tok512.bin ../shared/data/tinystories_val_794k.txt .gpu-data/
    du -sh "$debs" .gpu-data
    ;;
  env)
    env_lines
    ;;
  build)
    [ -d "$debs" ] || { echo "gpu-build.sh: no $debs/ (run 'scripts/gpu-build.sh fetch' where apt works, and carry it)" >&2; exit 2; }
    mkdir -p "$prefix"
    for f in "$debs"/*.deb; do dpkg -x "$f" "$prefix"; done
    # Debian's alternatives are not set up by dpkg -x: the generic names point at the OpenMPI flavour.
    lib="$prefix/usr/lib/x86_64-linux-gnu"
    ln -sf mpicxx.openmpi "$prefix/usr/bin/mpicxx"; ln -sf mpicc.openmpi "$prefix/usr/bin/mpicc"
    ln -sf mpirun.openmpi "$prefix/usr/bin/mpiexec"; ln -sf mpirun.openmpi "$prefix/usr/bin/mpirun"
    ln -sf libmpi.so "$lib/openmpi/lib/libmpi.so" 2>/dev/null || true
    # HDF5's compiler wrapper names its install prefix (/usr); point it at the unpacked one.
    sed -i "s|^prefix=\"/usr\"|prefix=\"$prefix/usr\"|" "$prefix/usr/bin/h5pcc.openmpi"
    ln -sf h5pcc.openmpi "$prefix/usr/bin/h5pcc"
    eval "$(env_lines)"
    torch_dir=${TORCH_DIR:-$(python3 -c 'import torch, os; print(os.path.join(torch.utils.cmake_prefix_path, "Torch"))')}
    args=(-DTorch_DIR="$torch_dir" -DCMAKE_PREFIX_PATH="$prefix/usr" -DMPI_HOME="$lib/openmpi"
          -DHDF5_ROOT="$lib/hdf5/openmpi" -DOPENSSL_ROOT_DIR="$prefix/usr" -DICU_ROOT="$prefix/usr")
    # NCCL from the CUDA toolkit (CMakeLists.txt looks there), else from pip's nvidia-nccl wheel beside torch.
    nccl_root=$(python3 -c 'import nvidia.nccl; print(list(nvidia.nccl.__path__)[0])' 2>/dev/null || true)
    nccl_lib=$(ls "${nccl_root:-/nonexistent}"/lib/libnccl.so* 2>/dev/null | head -1 || true)
    if [ -n "$nccl_lib" ] && [ ! -e /usr/local/cuda/include/nccl.h ]; then
      args+=(-DNCCL_INCLUDE_DIR="$nccl_root/include" -DNCCL_LIBRARY="$nccl_lib")
    fi
    cmake --preset "${PRESET:-cuda}" -B "${GPU_BUILD_DIR:-build-cuda}" "${args[@]}"
    # shellcheck disable=SC2086
    cmake --build "${GPU_BUILD_DIR:-build-cuda}" -j "${JOBS:-$(getconf _NPROCESSORS_ONLN)}" ${TARGETS:+--target $TARGETS}
    ;;
  *)
    echo "usage: scripts/gpu-build.sh fetch|build|env" >&2
    exit 2
    ;;
esac
