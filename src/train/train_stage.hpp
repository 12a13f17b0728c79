// The training stage: an ensemble of SAEs (one per seed) trained on one activation stream, each
// batch read once for all seeds, data-parallel over the communicator's ranks.
//
// Determinism: each global batch is cut into fixed micro-batches (train.micro_batch tokens) that
// ranks take whole; each micro-batch's gradient is added in exact fixed point (core/exact_sum.hpp)
// and all-reduced as integers. The reduced gradient is therefore bit-identical for any rank count,
// and so are the trained weights (same build, same thread count per rank).
#pragma once

#include <string>
#include <vector>

#include "config/config.hpp"
#include "parallel/comm.hpp"

namespace universae::train {

struct TrainedSae {
  std::string path;
  int64_t seed = 0;
  double ground_truth_mmcs = 0;  // synthetic data only
  double fvu = 0;                // on the held-out evaluation tokens
  double l0 = 0;
  double dead_fraction = 0;      // latents that never fired on the evaluation tokens
  bool reused = false;           // an earlier run's complete output with the same configuration
};

// <run.output_dir>/saes/seed<S>.h5 for each seed.
std::vector<std::string> sae_output_paths(const config::Config& config);

// Trains (or, unless `fresh`, reuses complete outputs made with the same data/sae/train config).
std::vector<TrainedSae> run_train_stage(const parallel::Comm& comm, const config::Config& config, bool fresh);

}  // namespace universae::train
