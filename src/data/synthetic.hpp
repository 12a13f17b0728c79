// Synthetic superposition data with a known ground truth (METHODS.md §2).
// A dictionary G of m unit vectors in R^d; feature j fires with probability p_j (power law over j,
// scaled so that the expected L0 is mean_l0), with magnitude |N(1, magnitude_std²)|;
// x = Σ_j a_j G_j + ε, ε ~ N(0, noise_std² I). Token t is a pure function of (seed, t), so any
// sharding of the stream reads exactly the same tokens.
#pragma once

#include <cstdint>
#include <vector>

#include "config/config.hpp"

namespace universae::data {

// The held-out token range: training reads tokens from 0, evaluation and activation statistics from here.
inline constexpr int64_t kHeldOutTokenOffset = int64_t{1} << 50;

class SyntheticSource {
 public:
  explicit SyntheticSource(const config::SyntheticConfig& spec);

  int64_t d() const { return spec_.d; }
  int64_t n_features() const { return spec_.n_features; }
  // Row-major [n_features, d], unit rows.
  const std::vector<float>& dictionary() const { return dictionary_; }
  const std::vector<double>& probabilities() const { return probabilities_; }

  // Writes tokens [first, first + count) as row-major [count, d] into out.
  void tokens(int64_t first, int64_t count, float* out) const;

 private:
  config::SyntheticConfig spec_;
  std::vector<float> dictionary_;
  std::vector<double> probabilities_;
};

// p_j = min(1, c (j+1)^-alpha) with c chosen by bisection so that Σ p_j = mean_l0.
std::vector<double> power_law_probabilities(int64_t m, double alpha, double mean_l0);

}  // namespace universae::data
