// The learning-rate schedule and the dead-latent rule of a training step, as pure functions of the
// train.* keys (shared by the trainer and tests/golden/train_step_harness.cpp).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "config/config.hpp"

namespace universae::train {

// The learning rate of optimiser step `step` (0-based) of `steps`.
//  - universae (METHODS.md §1): linear warm-up reaching base at step warmup_steps − 1, then a linear
//    decay to 0 over the last decay_fraction of the steps.
//  - train.preset = "sparsify": transformers' get_linear_schedule_with_warmup(warmup_steps, steps) as
//    a LambdaLR: base · t / max(1, W) while t < W (step 0 has lr 0), then base · max(0, (T − t) / max(1, T − W)).
inline double learning_rate(const config::TrainConfig& t, double base, int64_t step, int64_t steps) {
  if (t.preset == config::TrainPreset::kSparsify) {
    const auto W = static_cast<double>(t.warmup_steps), T = static_cast<double>(steps), s = static_cast<double>(step);
    if (step < t.warmup_steps) return base * (s / std::max(1.0, W));
    return base * std::max(0.0, (T - s) / std::max(1.0, T - W));
  }
  double factor = 1.0;
  if (t.warmup_steps > 0) factor = std::min(1.0, static_cast<double>(step + 1) / static_cast<double>(t.warmup_steps));
  const auto decay_start = static_cast<int64_t>(std::floor(static_cast<double>(steps) * (1.0 - t.decay_fraction)));
  if (step >= decay_start && steps > decay_start)
    factor *= static_cast<double>(steps - step) / static_cast<double>(steps - decay_start);
  return base * factor;
}

// A latent is dead after train.dead_tokens tokens without firing; sparsify's rule is strictly more
// (num_tokens_since_fired > dead_feature_threshold).
inline bool is_dead(const config::TrainConfig& t, int64_t tokens_since_fired) {
  return t.preset == config::TrainPreset::kSparsify ? tokens_since_fired > t.dead_tokens : tokens_since_fired >= t.dead_tokens;
}

}  // namespace universae::train
