// Where a rank's training tensors live (run.device) and which implementation of the step runs on
// them (run.kernels). No CUDA headers: the CUDA build's LibTorch answers through ATen's hooks.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>

#include "config/config.hpp"
#include "core/sae_model.hpp"
#include "parallel/comm.hpp"

namespace universae::train {

struct DevicePlan {
  at::Device device = at::kCPU;
  core::Kernels kernels = core::Kernels::kFast;
  std::string describe() const;  // "cpu, fast kernels", "cuda:1, generic kernels"
};

// Collective over `world`: every rank resolves its own device (cuda: its rank among the ranks of its
// node, modulo the GPUs it sees) and all agree on errors. A UsageError (exit 2 on every rank) for
// run.device = "cuda" without a CUDA build or visible GPU, and for run.kernels = "fast" off the CPU.
DevicePlan resolve_device(const parallel::Comm& world, config::Device device, config::Kernels kernels);

// Number of CUDA devices this process sees through LibTorch (0 for a CPU LibTorch).
int cuda_device_count();

}  // namespace universae::train
