#!/usr/bin/env bash
# Installs the whole universae stack on Debian 12 (bookworm) from Debian's own packages.
# Idempotent: a second run checks what is installed and exits in well under a second.
#
#   scripts/install-deps.sh            everything (build, run, tests, Slurm for the cluster tests)
#   scripts/install-deps.sh --check    only report what is missing (exit 1 if anything is)
#
# Needs root (or sudo). Installs with --no-install-recommends; waits for a dpkg lock held by
# another apt process instead of failing.
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake ninja-build ccache pkg-config git ca-certificates
  # the asan preset: clang with ASan/UBSan, libFuzzer and the symbolizer (scripts/test-sanitizers.sh)
  clang llvm libclang-rt-14-dev
  # parallel stack
  libopenmpi-dev openmpi-bin libhdf5-openmpi-dev hdf5-tools libboost-mpi-dev libboost-serialization-dev
  # numerics
  libtorch-dev libopenblas-dev
  # C++ libraries
  libgtest-dev libgmock-dev libtomlplusplus-dev libcli11-dev nlohmann-json3-dev libfmt-dev libspdlog-dev libicu-dev libssl-dev
  # Python references for the tests and the plotting scripts (use /usr/bin/python3)
  python3 python3-numpy python3-scipy python3-h5py python3-matplotlib python3-pandas python3-torch
  # Hugging Face tokenizers (npm) for the tokenizer golden test; a headless browser for the report's test
  nodejs npm chromium
  # a real single-node Slurm for the sweep tests
  slurmctld slurmd slurm-client munge
  # the two-node test cluster (network namespaces, veth links)
  iproute2
)

# What installed packages provide counts as present: NodeSource's nodejs provides npm (and conflicts
# with Debian's npm, which apt could not install beside it).
provided=$(dpkg-query -W -f='${db:Status-Abbrev}|${Provides}\n' 2>/dev/null |
  awk -F'|' '$1 ~ /^ii/ {print $2}' | tr ',' '\n' | sed -E 's/\(.*\)//; s/^ +//; s/ +$//')

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" && ! grep -qxF "$p" <<<"$provided"; then
    missing+=("$p")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi
if [[ "${1:-}" == "--check" ]]; then
  echo "install-deps: missing: ${missing[*]}"
  exit 1
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "install-deps: run as root or install sudo" >&2; exit 2; }
  SUDO="sudo"
fi

echo "install-deps: installing ${#missing[@]} packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt_opts=(-o DPkg::Lock::Timeout=1200 -y --no-install-recommends)
$SUDO apt-get -o DPkg::Lock::Timeout=1200 update -q
$SUDO apt-get "${apt_opts[@]}" install "${missing[@]}"
echo "install-deps: done"
