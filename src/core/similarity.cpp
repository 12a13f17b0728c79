#include "core/similarity.hpp"

#include <ATen/Functions.h>

namespace universae::core {

at::Tensor unit_rows(const at::Tensor& m, int64_t* zero_rows, at::ScalarType dtype) {
  const at::Tensor d = m.to(at::kDouble);
  const at::Tensor norms = at::sqrt(at::sum(at::mul(d, d), {1}));
  const at::Tensor is_zero = at::eq(norms, 0.0);
  if (zero_rows) *zero_rows = is_zero.sum().item<int64_t>();
  const at::Tensor safe = at::where(is_zero, at::ones_like(norms), norms);
  return at::div(d, safe.unsqueeze(1)).to(dtype).contiguous();
}

}  // namespace universae::core
