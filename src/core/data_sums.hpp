// The FVU denominator Σ_t ‖x_t − x̄‖², accumulated chunk by chunk (and reduced over ranks as plain sums).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace universae::core {

// sums[0..d) += Σ_t x_t, sums[d] += Σ_t ‖x_t‖² over the rows of x (B, d), in float64.
void add_data_sums(const at::Tensor& x, double* sums);

// Σ_t ‖x_t − x̄‖² over `count` tokens from add_data_sums sums.
double total_variance(const double* sums, int64_t d, int64_t count);

}  // namespace universae::core
