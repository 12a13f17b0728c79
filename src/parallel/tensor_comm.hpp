// Collectives on the training device's tensors over one MPI communicator (DESIGN.md §3, §6). On a GPU
// of a build with NCCL they are NCCL's, on LibTorch's default stream (where every training kernel
// runs), so the host never waits for them: one NCCL communicator per MPI communicator (the layout's
// data-parallel, latent-shard and group communicators each get their own). Otherwise MPI, through a
// host copy when the tensor is off the CPU (deliberate: MPI reduces host memory). Nothing happens on
// a communicator of one rank.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>

#include "parallel/comm.hpp"

namespace universae::parallel {

class NcclComm;

class TensorComm {
 public:
  // Collective over `comm` when NCCL is used (device CUDA, a build with NCCL, more than one rank).
  TensorComm(const Comm& comm, at::Device device);

  int size() const { return comm_.size(); }
  int rank() const { return comm_.rank(); }
  bool nccl() const { return nccl_ != nullptr; }
  // In place: float32, float64 or int64 (sum; int64 through float64 on NCCL, exact below 2^53).
  void sum(at::Tensor& t) const;
  // In place: float64 (min).
  void min(at::Tensor& t) const;
  // (size(), local's shape) float32: every rank's `local`, in rank order.
  at::Tensor allgather(const at::Tensor& local) const;

 private:
  Comm comm_;
  std::shared_ptr<NcclComm> nccl_;  // shared_ptr: NcclComm is a complete type only in NCCL builds
};

}  // namespace universae::parallel
