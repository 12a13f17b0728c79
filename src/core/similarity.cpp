#include "core/similarity.hpp"

#include <ATen/Functions.h>


namespace universae::core {

at::Tensor unit_rows(const at::Tensor& m, int64_t* zero_rows) {
  at::Tensor m32 = m.to(at::kFloat).contiguous();
  at::Tensor norms = at::sqrt(at::sum(at::mul(m32.to(at::kDouble), m32.to(at::kDouble)), {1}));
  at::Tensor is_zero = at::eq(norms, 0.0);
  if (zero_rows) *zero_rows = is_zero.sum().item<int64_t>();
  at::Tensor safe = at::where(is_zero, at::ones_like(norms), norms);
  return at::div(m32.to(at::kDouble), safe.unsqueeze(1)).to(at::kFloat).contiguous();
}

}  // namespace universae::core
