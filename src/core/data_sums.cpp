#include "core/data_sums.hpp"

#include <ATen/ATen.h>

namespace universae::core {

void add_data_sums(const at::Tensor& x, double* sums) {
  const at::Tensor xs = x.to(at::kDouble);
  const at::Tensor col = xs.sum(0).contiguous();
  const double* c = col.data_ptr<double>();
  for (int64_t j = 0; j < col.numel(); ++j) sums[j] += c[j];
  sums[col.numel()] += xs.pow(2).sum().item<double>();
}

double total_variance(const double* sums, int64_t d, int64_t count) {
  double mean_sq = 0;
  for (int64_t j = 0; j < d; ++j) mean_sq += sums[j] * sums[j];
  return sums[d] - mean_sq / static_cast<double>(count);
}

}  // namespace universae::core
