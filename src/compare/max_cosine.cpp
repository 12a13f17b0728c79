#include "compare/max_cosine.hpp"

#include <limits>

#include "core/error.hpp"
#include "core/similarity.hpp"

namespace universae::compare {

double ordered_mean(const std::vector<float>& values) {
  double sum = 0;
  for (float v : values) sum += v;
  return values.empty() ? 0.0 : sum / static_cast<double>(values.size());
}

MaxCosine max_cosine(const parallel::Comm& comm, const at::Tensor& a_local, int64_t n_a, const at::Tensor& b,
                     const TileSizes& tiles) {
  const core::Range mine = a_rows_of_rank(n_a, tiles, comm);
  if (a_local.size(0) != mine.size())
    throw InternalError("max_cosine: rank holds " + std::to_string(a_local.size(0)) + " rows of A, expected " +
                        std::to_string(mine.size()));
  const int64_t n_b = b.size(0);
  MaxCosine out;
  int64_t zero_a = 0, zero_b = 0;
  const at::Tensor a_unit = core::unit_rows(a_local, &zero_a);
  const at::Tensor b_unit = core::unit_rows(b, &zero_b);

  const float lowest = -std::numeric_limits<float>::infinity();
  std::vector<float> row_max(static_cast<size_t>(mine.size()), lowest), col_max(static_cast<size_t>(n_b), lowest);
  std::vector<int64_t> row_arg(static_cast<size_t>(mine.size()), -1), col_arg(static_cast<size_t>(n_b), -1);
  for (int64_t r0 = 0; r0 < mine.size(); r0 += tiles.rows) {
    const int64_t tr = std::min(tiles.rows, mine.size() - r0);
    core::max_cosine_tile(a_unit.narrow(0, r0, tr), mine.begin + r0, b_unit, tiles.cols, row_max.data() + r0,
                          row_arg.data() + r0, col_max.data(), col_arg.data());
  }
  // A rank with no rows contributes (-inf, -1) columns; MAXLOC needs a valid index, and any real
  // value beats -inf, so map -1 to a sentinel above every real index.
  for (auto& i : col_arg)
    if (i < 0) i = std::numeric_limits<int>::max();
  comm.allreduce_maxloc(col_max.data(), col_arg.data(), n_b);

  out.max_cos_ab = comm.allgatherv(row_max);
  out.argmax_ab = comm.allgatherv(row_arg);
  out.max_cos_ba = std::move(col_max);
  out.argmax_ba = std::move(col_arg);
  out.mcs_ab = ordered_mean(out.max_cos_ab);
  out.mcs_ba = ordered_mean(out.max_cos_ba);
  out.zero_rows_a = comm.allreduce_sum(zero_a);
  out.zero_rows_b = zero_b;
  return out;
}

}  // namespace universae::compare
