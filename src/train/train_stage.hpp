// The training stage: an ensemble of SAEs (one per seed, any architecture of METHODS.md §1) trained
// as stacked tensors on one token stream, each batch read once for all seeds of a rank. Ranks are
// laid out as train.seed_groups × data-parallel × train.latent_shards (DESIGN.md §3).
//
// Determinism: each global batch is cut into fixed micro-batches (train.micro_batch tokens) that
// data-parallel ranks take whole; each micro-batch's gradient is added in exact fixed point
// (core/exact_sum.hpp) and all-reduced as integers, so the weights are bit-identical for any number
// of data-parallel ranks and seed groups (same build, same threads per rank). Latent sharding sums
// partial reconstructions in floating point: equal within rounding (1e-5), not bit for bit.
//
// Checkpoints (train/checkpoint.hpp) every train.checkpoint_every steps and on SIGTERM/SIGUSR1
// (then the stage throws Checkpointed: exit code 75). Re-running the same command resumes from
// <output_dir>/checkpoint.h5 and ends bit-identical to an uninterrupted run; --fresh ignores it.
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
  double ce_loss_score = 0;      // spliced into the store's model (train.splice_tokens); NaN when not
  double kl_div_score = 0;
  bool reused = false;           // an earlier run's complete output with the same configuration
};

// <run.output_dir>/saes/seed<S>.h5 for each seed.
std::vector<std::string> sae_output_paths(const config::Config& config);

// What decides whether an SAE file may be reused (io/fingerprint.hpp): the training's fingerprint (the
// data, sae and train keys, the identities of data.source and train.init_from) and the file's seed.
std::string train_fingerprint(const config::Config& config);
std::string sae_fingerprint(const std::string& train_fingerprint, int64_t seed);

// <run.output_dir>/snapshots/seed<S>/tokens<T>.h5: seed S's weights after T training tokens (train.snapshot_every).
std::string snapshot_path(const config::Config& config, int64_t seed, int64_t tokens);

// <run.output_dir>/checkpoint.h5 (removed once every SAE file is written).
std::string checkpoint_path(const config::Config& config);
// Trains (or, unless `fresh`, reuses complete outputs made with the same data/sae/train config).
std::vector<TrainedSae> run_train_stage(const parallel::Comm& comm, const config::Config& config, bool fresh);

}  // namespace universae::train
