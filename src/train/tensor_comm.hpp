// MPI collectives on tensors of any device. A tensor off the CPU goes through a host copy: deliberate,
// since MPI reduces host memory (NCCL, parallel/nccl.hpp, is what a GPU run uses instead). Nothing
// happens on a communicator of one rank, so a one-GPU step never waits for a copy.
#pragma once

#include <ATen/ATen.h>

#include "core/error.hpp"
#include "parallel/comm.hpp"

namespace universae::train {

// In place over `comm`: float32, float64 or int64 (sum), float64 or int64 (min).
inline void allreduce_sum(const parallel::Comm& comm, at::Tensor& t) {
  if (comm.size() == 1) return;
  at::Tensor host = t.is_cpu() ? t.contiguous() : t.to(at::kCPU).contiguous();
  switch (host.scalar_type()) {
    case at::kFloat: comm.allreduce_sum(host.data_ptr<float>(), host.numel()); break;
    case at::kDouble: comm.allreduce_sum(host.data_ptr<double>(), host.numel()); break;
    case at::kLong: comm.allreduce_sum(host.data_ptr<int64_t>(), host.numel()); break;
    default: throw InternalError("allreduce_sum: unsupported tensor type");
  }
  if (!host.is_same(t)) t.copy_(host);
}

inline void allreduce_min(const parallel::Comm& comm, at::Tensor& t) {
  if (comm.size() == 1) return;
  at::Tensor host = t.is_cpu() ? t.contiguous() : t.to(at::kCPU).contiguous();
  switch (host.scalar_type()) {
    case at::kDouble: comm.allreduce_min(host.data_ptr<double>(), host.numel()); break;
    case at::kLong: comm.allreduce_min(host.data_ptr<int64_t>(), host.numel()); break;
    default: throw InternalError("allreduce_min: unsupported tensor type");
  }
  if (!host.is_same(t)) t.copy_(host);
}

}  // namespace universae::train
