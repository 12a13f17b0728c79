#include "data/synthetic.hpp"

#include <algorithm>
#include <cmath>

#include "core/rng.hpp"

namespace universae::data {

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

SyntheticSource::SyntheticSource(const config::SyntheticConfig& spec)
    : spec_(spec),
      dictionary_(static_cast<size_t>(spec.n_features * spec.d)),
      probabilities_(power_law_probabilities(spec.n_features, spec.power_law, spec.mean_l0)) {
  core::normal_rows(dictionary_.data(), spec.n_features, spec.d, static_cast<uint64_t>(spec.seed),
                    core::kStreamDictionary, /*unit=*/true);
}

void SyntheticSource::tokens(int64_t first, int64_t count, float* out) const {
  const int64_t d = spec_.d, m = spec_.n_features;
  const auto seed = static_cast<uint64_t>(spec_.seed);
  std::vector<double> x(static_cast<size_t>(d));
  for (int64_t t = 0; t < count; ++t) {
    core::CounterRng rng(seed, core::kStreamTokens, static_cast<uint64_t>(first + t));
    std::fill(x.begin(), x.end(), 0.0);
    for (int64_t j = 0; j < m; ++j) {
      if (rng.uniform() >= probabilities_[j]) continue;
      const double a = std::fabs(1.0 + spec_.magnitude_std * rng.normal());
      const float* g = dictionary_.data() + j * d;
      for (int64_t i = 0; i < d; ++i) x[i] += a * g[i];
    }
    float* row = out + t * d;
    for (int64_t i = 0; i < d; ++i) row[i] = static_cast<float>(x[i] + spec_.noise_std * rng.normal());
  }
}

}  // namespace universae::data
