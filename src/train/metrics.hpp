// Training metrics by name: what one logged step sums (StepSums), how those sums are reduced over the
// layout, and the row they become (MetricsRow) in train_log.jsonl, in the checkpoint's history and in
// each SAE file's /train/metrics. The columns are defined once, here.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "train/layout.hpp"

namespace universae::train {

// One logged step of one seed.
struct MetricsRow {
  int64_t step = 0, tokens = 0;
  double fvu = 0, l0 = 0, dead_fraction = 0, aux_loss = 0, sparsity_loss = 0, lr = 0, tokens_per_s = 0;

  // "step", "tokens", "fvu", "l0", "dead_fraction", "aux_loss", "sparsity_loss", "lr", "tokens_per_s"
  static const std::vector<std::string>& columns();
  std::vector<double> values() const;          // in columns() order (a history row)
  static MetricsRow from(const double* values);  // the inverse
  std::string jsonl(int64_t seed) const;       // one line of train_log.jsonl
};

// Per-seed sums of one step over this rank's tokens and latents (unnormalised).
struct StepSums {
  explicit StepSums(int64_t seeds) : sse(seeds), aux_sse(seeds), sparsity(seeds), active(seeds), dead(seeds) {}
  std::vector<double> sse, aux_sse, sparsity, active, dead;

  // Sums over the data-parallel ranks (every field) and the latent shards (sparsity, active and dead,
  // which each shard counts for its own latents). `dead` is replicated over the data-parallel ranks,
  // so each contributes dead / dp. Collective over the layout's dp and latent communicators.
  void reduce(const Layout& layout);
  // Seed s's row: fvu against the step's total variance `sst`, per-token means over `batch` tokens,
  // the dead fraction of `n_latents`, the sparsity penalty weighted by λ.
  MetricsRow row(int64_t s, int64_t step, int64_t batch, double sst, int64_t n_latents, double lambda, double lr,
                 double tokens_per_s) const;
};

}  // namespace universae::train
