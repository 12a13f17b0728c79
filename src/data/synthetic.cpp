#include "data/synthetic.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace universae::data {
namespace {

// The loadings' stream, apart from core::RngStream's small ids ("SYNCORR1").
constexpr uint64_t kStreamCorrelationLoadings = 0x53594E434F525231ull;

}  // namespace

std::vector<double> power_law_probabilities(int64_t m, double alpha, double mean_l0) {
  std::vector<double> base(static_cast<size_t>(m));
  for (int64_t j = 0; j < m; ++j) base[j] = std::pow(static_cast<double>(j + 1), -alpha);
  auto total = [&](double c) {
    double s = 0;
    for (double b : base) s += std::min(1.0, c * b);
    return s;
  };
  double lo = 0, hi = 1;
  while (total(hi) < mean_l0 && hi < 1e300) hi *= 2;
  for (int i = 0; i < 200; ++i) {
    const double mid = 0.5 * (lo + hi);
    (total(mid) < mean_l0 ? lo : hi) = mid;
  }
  std::vector<double> p(base.size());
  for (size_t j = 0; j < base.size(); ++j) p[j] = std::min(1.0, hi * base[j]);
  return p;
}

double normal_quantile(double p) {
  if (p >= 1.0) return std::numeric_limits<double>::infinity();
  double lo = -40, hi = 40;  // Φ(-40) ≈ 4e-350 underflows to 0: below any p > 0
  for (int i = 0; i < 200 && lo < hi; ++i) {
    const double mid = 0.5 * (lo + hi);
    if (mid == lo || mid == hi) break;
    (0.5 * std::erfc(-mid / std::sqrt(2.0)) < p ? lo : hi) = mid;
  }
  return hi;
}

SyntheticSource::SyntheticSource(const config::SyntheticConfig& spec)
    : spec_(spec),
      dictionary_(static_cast<size_t>(spec.n_features * spec.d)),
      probabilities_(power_law_probabilities(spec.n_features, spec.power_law, spec.mean_l0)) {
  const auto seed = static_cast<uint64_t>(spec.seed);
  core::normal_rows(dictionary_.data(), spec.n_features, spec.d, seed, core::kStreamDictionary, /*unit=*/true);
  const int64_t r = spec.correlation_rank;
  if (r == 0) return;
  loadings_.resize(static_cast<size_t>(spec.n_features * r));
  core::normal_rows(loadings_.data(), spec.n_features, r, seed, kStreamCorrelationLoadings, /*unit=*/true);
  const double scale = std::sqrt(spec.correlation_strength);
  for (float l : loadings_) scaled_loadings_.push_back(scale * l);
  for (double p : probabilities_) thresholds_.push_back(normal_quantile(p));
}

int64_t SyntheticSource::parent_of(int64_t j) const {
  const int64_t parents = spec_.hierarchy_parents, children = spec_.hierarchy_children;
  if (j < parents || j >= parents * (1 + children)) return -1;
  return (j - parents) / children;
}

// The features token t fires before the noise, in ascending order (the draw order in synthetic.hpp).
void SyntheticSource::draw_active(core::CounterRng& rng, std::vector<Firing>& active, std::vector<double>& u) const {
  const int64_t m = spec_.n_features, r = spec_.correlation_rank;
  const double own = std::sqrt(1.0 - spec_.correlation_strength);
  active.clear();
  for (double& v : u) v = rng.normal();
  for (int64_t j = 0; j < m; ++j) {
    bool fires;
    if (r == 0) {
      fires = rng.uniform() < probabilities_[j];
    } else {
      double z = own * rng.normal();
      for (int64_t k = 0; k < r; ++k) z += scaled_loadings_[j * r + k] * u[k];
      fires = z < thresholds_[j];
    }
    if (fires) active.push_back({j, std::fabs(1.0 + spec_.magnitude_std * rng.normal())});
  }
  if (spec_.hierarchy_parents > 0) apply_hierarchy(rng, active);
}

// In place on the ascending list: parents (features < P) precede every child, and the active children
// of one parent are adjacent, so each run of siblings is resolved against the parents already kept.
void SyntheticSource::apply_hierarchy(core::CounterRng& rng, std::vector<Firing>& active) const {
  size_t kept = 0;
  for (size_t i = 0; i < active.size();) {
    const int64_t parent = parent_of(active[i].feature);
    if (parent < 0) {
      active[kept++] = active[i++];
      continue;
    }
    size_t end = i + 1;
    while (end < active.size() && parent_of(active[end].feature) == parent) ++end;
    const auto parent_fired = std::binary_search(active.begin(), active.begin() + static_cast<std::ptrdiff_t>(kept), Firing{parent, 0.0},
                                                 [](const Firing& a, const Firing& b) { return a.feature < b.feature; });
    if (parent_fired) {
      const auto siblings = static_cast<double>(end - i);
      const size_t pick = end - i == 1 ? 0 : std::min(end - i - 1, static_cast<size_t>(rng.uniform() * siblings));
      active[kept++] = active[i + pick];
    }
    i = end;
  }
  active.resize(kept);
}

void SyntheticSource::tokens(int64_t first, int64_t count, float* out, TrueCodes* truth) const {
  const int64_t d = spec_.d;
  const auto seed = static_cast<uint64_t>(spec_.seed);
  std::vector<double> x(static_cast<size_t>(d)), u(static_cast<size_t>(spec_.correlation_rank));
  std::vector<Firing> active;
  for (int64_t t = 0; t < count; ++t) {
    core::CounterRng rng(seed, core::kStreamTokens, static_cast<uint64_t>(first + t));
    draw_active(rng, active, u);
    std::fill(x.begin(), x.end(), 0.0);
    for (const Firing& f : active) {
      const float* g = dictionary_.data() + f.feature * d;
      for (int64_t i = 0; i < d; ++i) x[i] += f.magnitude * g[i];
    }
    float* row = out + t * d;
    for (int64_t i = 0; i < d; ++i) row[i] = static_cast<float>(x[i] + spec_.noise_std * rng.normal());
    if (!truth) continue;
    for (const Firing& f : active) {
      truth->feature.push_back(f.feature);
      truth->magnitude.push_back(static_cast<float>(f.magnitude));
    }
    truth->offsets.push_back(static_cast<int64_t>(truth->feature.size()));
  }
}

}  // namespace universae::data
