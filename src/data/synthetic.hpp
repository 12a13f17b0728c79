// Synthetic superposition data with a known ground truth (METHODS.md §2), optionally with three
// structures of real activations (after SynthSAEBench; docs/training.md), each off by default:
//
//  - Firing probabilities p_j = min(1, c (j+1)^-power_law), c such that Σ p_j = mean_l0
//    (power_law = 1: Zipf; 0: every feature alike).
//  - Correlated firing (correlation_rank r > 0), a Gaussian copula: feature j has a unit loading
//    vector L_j in R^r (seeded Gaussian rows); token t draws u ~ N(0, I_r) and, per feature,
//    ε_j ~ N(0, 1); z_j = √s L_j·u + √(1−s) ε_j is N(0, 1), and j fires when z_j < Φ⁻¹(p_j), i.e.
//    Φ(z_j) < p_j, so its firing probability stays p_j while corr(z_j, z_k) = s L_j·L_k
//    (s = correlation_strength). Without it, j fires when a uniform draw is < p_j, independently.
//  - A hierarchy (hierarchy_parents P > 0 with hierarchy_children C > 0): features 0 .. P−1 are
//    parents; the children of parent q are features P + qC .. P + qC + C − 1. After the draws above,
//    a child whose parent did not fire is switched off, and when several children of one parent
//    remain, one of them, chosen uniformly, is kept. A child never fires without its parent and two
//    children of one parent never fire together; so children fire less often than their p_j and the
//    expected L0 is below mean_l0 (SynthSAEBench's hierarchy does the same).
//
// An active feature has magnitude a_j = |N(1, magnitude_std²)|; x = Σ_j a_j G_j + ε,
// ε ~ N(0, noise_std² I), G a dictionary of m unit vectors in R^d. Token t is a pure function of
// (seed, t), so any sharding of the stream reads exactly the same tokens; its draws come from one
// counter-based generator (seed, tokens stream, t) in this order: u (r normals, with a copula), then
// for j = 0 .. m−1 the firing draw (a uniform, or ε_j) followed, when j fires, by its magnitude; then
// one uniform per parent (ascending) with two or more surviving children; then the d noise values.
// With every option off this is exactly the generator before they existed (bit-identical tokens).
#pragma once

#include <cstdint>
#include <vector>

#include "config/config.hpp"
#include "core/rng.hpp"

namespace universae::data {

// The held-out token range: training reads tokens from 0, evaluation and activation statistics from here.
inline constexpr int64_t kHeldOutTokenOffset = int64_t{1} << 50;

// The true codes of a block of tokens (CSR): token i of the block has active features
// feature[offsets[i] .. offsets[i+1]), in ascending order, with magnitudes magnitude[...].
struct TrueCodes {
  std::vector<int64_t> offsets{0};
  std::vector<int64_t> feature;
  std::vector<float> magnitude;
  int64_t tokens() const { return static_cast<int64_t>(offsets.size()) - 1; }
};

class SyntheticSource {
 public:
  explicit SyntheticSource(const config::SyntheticConfig& spec);

  int64_t d() const { return spec_.d; }
  int64_t n_features() const { return spec_.n_features; }
  // Row-major [n_features, d], unit rows.
  const std::vector<float>& dictionary() const { return dictionary_; }
  // p_j: the probability of the firing draw (before the hierarchy switches children off).
  const std::vector<double>& probabilities() const { return probabilities_; }
  // Row-major [n_features, correlation_rank], unit rows L_j; empty without correlated firing.
  const std::vector<float>& loadings() const { return loadings_; }
  // The parent of feature j, or -1 (not a child, or no hierarchy).
  int64_t parent_of(int64_t j) const;

  // Writes tokens [first, first + count) as row-major [count, d] into out and, when `truth` is given,
  // appends their true codes to it.
  void tokens(int64_t first, int64_t count, float* out, TrueCodes* truth = nullptr) const;

 private:
  struct Firing {
    int64_t feature;
    double magnitude;
  };
  void draw_active(core::CounterRng& rng, std::vector<Firing>& active, std::vector<double>& u) const;
  void apply_hierarchy(core::CounterRng& rng, std::vector<Firing>& active) const;

  config::SyntheticConfig spec_;
  std::vector<float> dictionary_;
  std::vector<double> probabilities_;
  std::vector<float> loadings_;
  std::vector<double> scaled_loadings_;  // √s L, [m, r]
  std::vector<double> thresholds_;       // Φ⁻¹(p_j) (+inf for p_j = 1)
};

// p_j = min(1, c (j+1)^-alpha) with c chosen by bisection so that Σ p_j = mean_l0.
std::vector<double> power_law_probabilities(int64_t m, double alpha, double mean_l0);

// Φ⁻¹(p) for p in (0, 1] by bisection on Φ(z) = erfc(−z/√2)/2 (+inf for p >= 1).
double normal_quantile(double p);

}  // namespace universae::data
