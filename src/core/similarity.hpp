// Row normalisation for cosine similarity (METHODS.md §3). No MPI: compare/ distributes the work.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace universae::core {

// Rows scaled to unit L2 norm, computed in float64 and returned as `dtype`. A zero row stays zero,
// so its cosine with everything is 0; their number is returned in *zero_rows (when given).
at::Tensor unit_rows(const at::Tensor& m, int64_t* zero_rows, at::ScalarType dtype = at::kFloat);

}  // namespace universae::core
