// The latent shards of one SAE ensemble as a communicator (core::LatentPeers over parallel::Comm).
#pragma once

#include <utility>
#include <vector>

#include "core/sae_model.hpp"
#include "parallel/comm.hpp"

namespace universae::train {

class ShardPeers final : public core::LatentPeers {
 public:
  explicit ShardPeers(parallel::Comm comm) : comm_(std::move(comm)) {}
  using core::LatentPeers::allgather;  // the tensor forms: through these, host memory
  using core::LatentPeers::sum;
  int size() const override { return comm_.size(); }
  int rank() const override { return comm_.rank(); }
  void sum(float* v, int64_t n) const override {
    if (comm_.size() > 1) comm_.allreduce_sum(v, n);
  }
  void sum(double* v, int64_t n) const override {
    if (comm_.size() > 1) comm_.allreduce_sum(v, n);
  }
  std::vector<float> allgather(const std::vector<float>& local) const override { return comm_.allgatherv(local); }

 private:
  parallel::Comm comm_;
};

}  // namespace universae::train
