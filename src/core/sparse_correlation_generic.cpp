// correlation_row_maxima's twin from ATen operators (see sparse_correlation.hpp).
#include <ATen/ATen.h>

#include <algorithm>
#include <vector>

#include "core/sparse_correlation.hpp"

namespace universae::core {
namespace {

// A block's dense correlations may take this many float64 values (1 GiB).
constexpr int64_t kBlockElements = int64_t{1} << 27;

at::Tensor host_longs(std::vector<int64_t> v) { return at::tensor(v, at::kLong); }

// (rows × cols) sparse float64 on `device` from entry lists.
at::Tensor sparse(std::vector<int64_t> row, std::vector<int64_t> col, std::vector<double> value, int64_t rows, int64_t cols,
                  at::Device device) {
  const at::Tensor index = at::stack({host_longs(std::move(row)), host_longs(std::move(col))});
  return at::sparse_coo_tensor(index, at::tensor(value, at::kDouble), {rows, cols}).coalesce().to(device);
}

}  // namespace

void correlation_row_maxima_generic(const LatentColumns& a_cols, const LatentMoments& a, const SparseCodes& b,
                                    const LatentMoments& bm, Range rows, double* max_out, int64_t* argmax_out,
                                    at::Device device) {
  const int64_t T = b.n_tokens, n_b = b.n_latents;
  if (rows.size() == 0) return;
  const auto f64 = at::TensorOptions(device).dtype(at::kDouble);
  // B (T × n_b) from its token-major rows.
  const auto& br = b.rows;
  std::vector<int64_t> token(br.latents.size()), latent(br.latents.begin(), br.latents.end());
  for (int64_t t = 0; t < T; ++t)
    std::fill(token.begin() + br.offsets[static_cast<size_t>(t)], token.begin() + br.offsets[static_cast<size_t>(t) + 1], t);
  const at::Tensor B = sparse(std::move(token), std::move(latent), std::vector<double>(br.values.begin(), br.values.end()),
                              T, n_b, device);
  const at::Tensor mean_b = at::tensor(bm.mean, at::kDouble).to(device), sd_b = at::tensor(bm.sd, at::kDouble).to(device);
  const at::Tensor reversed = at::arange(n_b, 0, -1, f64.dtype(at::kLong));  // n_b − j: the lowest j scores highest
  const int64_t block = std::max<int64_t>(1, kBlockElements / std::max<int64_t>(1, n_b));
  for (int64_t i0 = rows.begin; i0 < rows.end; i0 += block) {
    const int64_t m = std::min(block, rows.end - i0);
    // A's rows [i0, i0 + m) as a sparse (m × T) matrix, from its latent-major columns.
    const auto first = a_cols.offsets[static_cast<size_t>(i0)], last = a_cols.offsets[static_cast<size_t>(i0 + m)];
    std::vector<int64_t> row(static_cast<size_t>(last - first));
    for (int64_t i = i0; i < i0 + m; ++i)
      std::fill(row.begin() + (a_cols.offsets[static_cast<size_t>(i)] - first),
                row.begin() + (a_cols.offsets[static_cast<size_t>(i) + 1] - first), i - i0);
    std::vector<int64_t> col(a_cols.tokens.begin() + first, a_cols.tokens.begin() + last);
    std::vector<double> value(a_cols.values.begin() + first, a_cols.values.begin() + last);
    const at::Tensor A = sparse(std::move(row), std::move(col), std::move(value), m, T, device);
    const at::Tensor S = at::mm(A, B).to_dense();  // (m × n_b) co-firing sums
    const at::Tensor mean_a = at::tensor(std::vector<double>(a.mean.begin() + i0, a.mean.begin() + i0 + m), at::kDouble).to(device);
    const at::Tensor sd_a = at::tensor(std::vector<double>(a.sd.begin() + i0, a.sd.begin() + i0 + m), at::kDouble).to(device);
    // The CPU's operations in its order: (s / T − μ_i μ_j) / (σ_i σ_j); σ_j = 0 gives 0.
    const at::Tensor corr = at::where(sd_b.eq(0).unsqueeze(0), at::zeros({}, f64),
                                      (S / static_cast<double>(T) - mean_a.unsqueeze(1) * mean_b.unsqueeze(0)) /
                                          (sd_a.unsqueeze(1) * sd_b.unsqueeze(0)));
    const at::Tensor best = corr.amax(1);
    const at::Tensor at_best = at::where(corr.eq(best.unsqueeze(1)), reversed.unsqueeze(0), at::zeros({}, f64.dtype(at::kLong)));
    const at::Tensor arg = at_best.amax(1).neg().add(n_b);
    // A latent constant over the tokens (σ_i = 0): every correlation is 0, the first j its argmax.
    const at::Tensor constant = sd_a.eq(0);
    const at::Tensor maxima = at::where(constant, at::zeros({}, f64), best).to(at::kCPU).contiguous();
    const at::Tensor argmax = at::where(constant, at::zeros({}, f64.dtype(at::kLong)), arg).to(at::kCPU).contiguous();
    std::copy_n(maxima.data_ptr<double>(), m, max_out + (i0 - rows.begin));
    std::copy_n(argmax.data_ptr<int64_t>(), m, argmax_out + (i0 - rows.begin));
  }
}

}  // namespace universae::core
