// The latent shards of one SAE ensemble as a communicator (core::LatentPeers over parallel::Comm):
// host buffers through MPI, tensors through TensorComm (NCCL on a GPU).
#pragma once

#include <utility>
#include <vector>

#include "core/sae_model.hpp"
#include "parallel/comm.hpp"
#include "parallel/tensor_comm.hpp"

namespace universae::train {

class ShardPeers final : public core::LatentPeers {
 public:
  ShardPeers(parallel::Comm comm, at::Device device) : comm_(comm), tensors_(comm, device) {}
  int size() const override { return comm_.size(); }
  int rank() const override { return comm_.rank(); }
  void sum(float* v, int64_t n) const override {
    if (comm_.size() > 1) comm_.allreduce_sum(v, n);
  }
  void sum(double* v, int64_t n) const override {
    if (comm_.size() > 1) comm_.allreduce_sum(v, n);
  }
  std::vector<float> allgather(const std::vector<float>& local) const override { return comm_.allgatherv(local); }
  void sum(at::Tensor& values) const override { tensors_.sum(values); }
  at::Tensor allgather(const at::Tensor& local) const override { return tensors_.allgather(local); }

 private:
  parallel::Comm comm_;
  parallel::TensorComm tensors_;
};

}  // namespace universae::train
