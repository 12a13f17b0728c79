// Where a rank's tensors live (run.device) and which implementation computes on them (run.kernels),
// for every stage that computes on a device. No CUDA headers: a CUDA build's LibTorch answers
// through ATen's hooks, and a CPU LibTorch says it has no GPU.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>

#include "core/device_choice.hpp"
#include "parallel/comm.hpp"

namespace universae::parallel {

struct DevicePlan {
  at::Device device = at::kCPU;
  core::Kernels kernels = core::Kernels::kFast;
  bool generic() const { return kernels == core::Kernels::kGeneric; }
  std::string describe() const;  // "cpu, fast CPU kernels", "cuda:1, generic kernels"
};

// Collective over `world`: every rank resolves its own device (cuda: its rank among the ranks of its
// node, modulo the GPUs it sees) and all agree on errors. A UsageError (exit 2 on every rank) for
// run.device = "cuda" without a CUDA build or visible GPU, and for run.kernels = "fast" off the CPU.
DevicePlan resolve_device(const Comm& world, core::DeviceChoice device, core::KernelChoice kernels);

// Number of CUDA devices this process sees through LibTorch (0 for a CPU LibTorch).
int cuda_device_count();

}  // namespace universae::parallel
