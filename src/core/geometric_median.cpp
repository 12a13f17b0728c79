#include "core/geometric_median.hpp"

#include <algorithm>
#include <cmath>

namespace universae::core {

std::vector<double> mean_point(const float* points, int64_t n, int64_t d) {
  std::vector<double> mean(static_cast<size_t>(d), 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < d; ++j) mean[j] += points[i * d + j];
  for (auto& v : mean) v /= static_cast<double>(n);
  return mean;
}

std::vector<double> geometric_median(const float* points, int64_t n, int64_t d, int max_iter, double tol) {
  std::vector<double> y = mean_point(points, n, d), next(static_cast<size_t>(d));
  for (int it = 0; it < max_iter; ++it) {
    std::fill(next.begin(), next.end(), 0.0);
    double weight_sum = 0;
    for (int64_t i = 0; i < n; ++i) {
      double dist2 = 0;
      for (int64_t j = 0; j < d; ++j) {
        const double diff = points[i * d + j] - y[j];
        dist2 += diff * diff;
      }
      const double w = 1.0 / std::max(std::sqrt(dist2), 1e-12);  // a point on the median gets a large finite weight
      weight_sum += w;
      for (int64_t j = 0; j < d; ++j) next[j] += w * points[i * d + j];
    }
    double step2 = 0, norm2 = 0;
    for (int64_t j = 0; j < d; ++j) {
      next[j] /= weight_sum;
      step2 += (next[j] - y[j]) * (next[j] - y[j]);
      norm2 += next[j] * next[j];
    }
    y.swap(next);
    if (std::sqrt(step2) <= tol * std::max(std::sqrt(norm2), 1e-12)) break;
  }
  return y;
}

}  // namespace universae::core
