#include "core/similarity.hpp"

#include <ATen/Functions.h>

#include <algorithm>

namespace universae::core {

at::Tensor unit_rows(const at::Tensor& m, int64_t* zero_rows) {
  at::Tensor m32 = m.to(at::kFloat).contiguous();
  at::Tensor norms = at::sqrt(at::sum(at::mul(m32.to(at::kDouble), m32.to(at::kDouble)), {1}));
  at::Tensor is_zero = at::eq(norms, 0.0);
  if (zero_rows) *zero_rows = is_zero.sum().item<int64_t>();
  at::Tensor safe = at::where(is_zero, at::ones_like(norms), norms);
  return at::div(m32.to(at::kDouble), safe.unsqueeze(1)).to(at::kFloat).contiguous();
}

void max_cosine_tile(const at::Tensor& a_tile, int64_t a_row0, const at::Tensor& b, int64_t tile_cols,
                     float* row_max, int64_t* row_arg, float* col_max, int64_t* col_arg) {
  const int64_t ta = a_tile.size(0), nb = b.size(0);
  for (int64_t c0 = 0; c0 < nb; c0 += tile_cols) {
    const int64_t tb = std::min(tile_cols, nb - c0);
    const at::Tensor s = at::mm(a_tile, b.narrow(0, c0, tb).t()).contiguous();  // (ta, tb)
    const float* sim = s.data_ptr<float>();
    for (int64_t i = 0; i < ta; ++i) {
      const float* row = sim + i * tb;
      for (int64_t j = 0; j < tb; ++j) {
        if (row[j] > row_max[i]) row_max[i] = row[j], row_arg[i] = c0 + j;
        if (row[j] > col_max[c0 + j]) col_max[c0 + j] = row[j], col_arg[c0 + j] = a_row0 + i;
      }
    }
  }
}

}  // namespace universae::core
