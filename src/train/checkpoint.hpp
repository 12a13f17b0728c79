// A training checkpoint: everything a run needs to continue bit-identically (parameters, Adam
// moments and step, the dead-latent counters, batchtopk thresholds, the input scale, the metric
// history and the step = the data cursor; the token stream is a pure function of the step and no
// other random state exists). One file for all seed groups, <output_dir>/checkpoint.h5, written
// collectively and published atomically, so a kill at any moment leaves the previous checkpoint.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/sae_model.hpp"
#include "parallel/comm.hpp"
#include "train/layout.hpp"

namespace universae::train {

// This rank's share of the ensemble's training state.
struct EnsembleState {
  core::SaeStack params;
  core::AdamState adam;
  std::vector<int64_t> since_fired;             // (S · n_local) tokens since each latent last fired
  std::vector<double> threshold;                // batchtopk running threshold per seed (NaN: unset)
  std::vector<std::vector<double>> history;     // per seed: MetricsRow values, row after row
  int64_t step = 0;                             // completed steps
  double input_scale = 1.0;
};

// Collective over world. `all_seeds`: every seed of the job; `n_latents`, `d`: full shapes.
void write_checkpoint(const parallel::Comm& world, const Layout& layout, const std::string& path,
                      const std::string& fingerprint, const std::vector<int64_t>& all_seeds, int64_t n_latents,
                      int64_t d, const EnsembleState& state);
// Collective over world. Fills `state` (shaped like an initialised state of this rank) from the
// checkpoint; a checkpoint written for another configuration is a UsageError naming --fresh.
void read_checkpoint(const parallel::Comm& world, const Layout& layout, const std::string& path,
                     const std::string& fingerprint, const std::vector<int64_t>& all_seeds, EnsembleState& state);

}  // namespace universae::train
