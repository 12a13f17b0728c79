#include "core/repsim.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <iterator>
#include <limits>
#include <numeric>
#include <stdexcept>

#include "core/rng.hpp"
#include "core/similarity.hpp"

namespace universae::core {
namespace {

std::vector<int64_t> iota(int64_t n) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), int64_t{0});
  return v;
}

at::Tensor centred_columns(const at::Tensor& m) {
  const at::Tensor d = m.to(at::kDouble);
  return d - d.mean(0, /*keepdim=*/true);
}

at::Tensor rows_of(const at::Tensor& m, const std::vector<int64_t>& perm) {
  return m.index_select(0, at::tensor(perm, at::kLong));
}

void check_pairs(const at::Tensor& x, const at::Tensor& y, int64_t minimum) {
  if (x.dim() != 2 || y.dim() != 2 || x.size(0) != y.size(0))
    throw std::invalid_argument("representational similarity needs X and Y with the same number of rows");
  if (x.size(0) < minimum)
    throw std::invalid_argument("representational similarity needs at least " + std::to_string(minimum) + " pairs");
}

// SVD truncation to the leading directions, then an orthonormal basis of the projection.
at::Tensor reduced_basis(const at::Tensor& centred, const SvccaOptions& o) {
  auto [u, s, vh] = at::linalg_svd(centred, /*full_matrices=*/false);
  const at::Tensor var = s * s;
  const double total = var.sum().item<double>();
  int64_t k = 0;
  if (o.lan2024) {
    k = 1;
  } else if (o.dims > 0) {
    k = std::min(o.dims, s.size(0));
  } else {
    const at::Tensor cum = var.cumsum(0) / total;
    const double* c = cum.contiguous().data_ptr<double>();
    while (k < s.size(0) - 1 && c[k] < o.variance) ++k;
    ++k;  // the fewest directions explaining at least `variance`
  }
  const at::Tensor projected = centred.mm(vh.narrow(0, 0, k).t());  // (n, k)
  return std::get<0>(at::linalg_qr(projected, "reduced")).contiguous();
}

}  // namespace

std::vector<double> average_ranks(const std::vector<double>& values) {
  std::vector<size_t> order(values.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return values[a] < values[b]; });
  std::vector<double> ranks(values.size());
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j + 1 < order.size() && values[order[j + 1]] == values[order[i]]) ++j;
    const double mean_rank = 0.5 * static_cast<double>(i + j) + 1.0;
    for (size_t t = i; t <= j; ++t) ranks[order[t]] = mean_rank;
    i = j + 1;
  }
  return ranks;
}

std::vector<int64_t> permutation(int64_t n, uint64_t seed, uint64_t index) {
  std::vector<int64_t> p = iota(n);
  CounterRng rng(seed, kStreamTesting + 1, index);
  for (int64_t i = n - 1; i > 0; --i) {  // Fisher-Yates
    const auto j = static_cast<int64_t>(rng.next_u64() % static_cast<uint64_t>(i + 1));
    std::swap(p[i], p[j]);
  }
  return p;
}

Svcca::Svcca(const at::Tensor& x, const at::Tensor& y, const SvccaOptions& options)
    : identity_(iota(x.size(0))), lan2024_(options.lan2024) {
  check_pairs(x, y, 3);
  qx_ = reduced_basis(centred_columns(x), options);
  qy_ = reduced_basis(centred_columns(y), options);
}

double Svcca::score_with(const std::vector<int64_t>& perm) const {
  const at::Tensor m = qx_.t().mm(rows_of(qy_, perm));  // (k_x, k_y)
  const at::Tensor rho = at::clamp(at::linalg_svdvals(m), 0.0, 1.0);
  return rho.mean().item<double>();
}

Rsa::Rsa(const at::Tensor& x, const at::Tensor& y) : n_(x.size(0)), identity_(iota(x.size(0))) {
  check_pairs(x, y, 3);
  auto upper_ranks = [this](const at::Tensor& m) {
    const at::Tensor d = m.to(at::kDouble);
    // Centred, unit rows: their inner products are the Pearson correlations between rows.
    const at::Tensor rn = unit_rows(d - d.mean(1, /*keepdim=*/true), nullptr, at::kDouble);
    const at::Tensor s = rn.mm(rn.t()).contiguous();  // Pearson correlation between rows
    const double* p = s.data_ptr<double>();
    std::vector<double> upper;
    upper.reserve(static_cast<size_t>(n_ * (n_ - 1) / 2));
    for (int64_t i = 0; i < n_; ++i)
      for (int64_t j = i + 1; j < n_; ++j) upper.push_back(p[i * n_ + j]);
    std::vector<double> r = average_ranks(upper);
    const double mean = std::accumulate(r.begin(), r.end(), 0.0) / static_cast<double>(r.size());
    for (auto& v : r) v -= mean;
    return r;
  };
  rank_x_ = upper_ranks(x);
  const std::vector<double> ry = upper_ranks(y);
  norm_ = std::sqrt(std::inner_product(rank_x_.begin(), rank_x_.end(), rank_x_.begin(), 0.0) *
                    std::inner_product(ry.begin(), ry.end(), ry.begin(), 0.0));
  rank_y_.assign(static_cast<size_t>(n_ * n_), 0.0);
  int64_t e = 0;
  for (int64_t i = 0; i < n_; ++i)
    for (int64_t j = i + 1; j < n_; ++j, ++e) rank_y_[i * n_ + j] = rank_y_[j * n_ + i] = ry[e];
}

double Rsa::score_with(const std::vector<int64_t>& perm) const {
  double dot = 0;
  const double* rx = rank_x_.data();
  for (int64_t i = 0; i < n_; ++i) {
    const double* row = rank_y_.data() + perm[i] * n_;  // Y's ranks for the item paired with i
    for (int64_t j = i + 1; j < n_; ++j) dot += *rx++ * row[perm[j]];
  }
  return norm_ > 0 ? dot / norm_ : 0.0;
}

Cka::Cka(const at::Tensor& x, const at::Tensor& y) : identity_(iota(x.size(0))) {
  check_pairs(x, y, 2);
  xc_ = centred_columns(x);
  yc_ = centred_columns(y);
  denominator_ = xc_.t().mm(xc_).norm().item<double>() * yc_.t().mm(yc_).norm().item<double>();
}

double Cka::score_with(const std::vector<int64_t>& perm) const {
  const double cross = xc_.t().mm(rows_of(yc_, perm)).norm().item<double>();
  return denominator_ > 0 ? cross * cross / denominator_ : 0.0;
}

MutualKnn::MutualKnn(const at::Tensor& x, const at::Tensor& y, int64_t k)
    : n_(x.size(0)), k_(std::min<int64_t>(k, x.size(0) - 1)), identity_(iota(x.size(0))) {
  check_pairs(x, y, 2);
  auto neighbours = [this](const at::Tensor& m) {
    const at::Tensor unit = unit_rows(m, nullptr, at::kDouble);
    at::Tensor s = unit.mm(unit.t());
    s.fill_diagonal_(-std::numeric_limits<double>::infinity());  // self excluded
    const at::Tensor idx = std::get<1>(s.topk(k_, 1)).contiguous();
    return std::vector<int64_t>(idx.data_ptr<int64_t>(), idx.data_ptr<int64_t>() + idx.numel());
  };
  knn_x_ = neighbours(x);
  knn_y_ = neighbours(y);
}

double MutualKnn::score_with(const std::vector<int64_t>& perm) const {
  std::vector<int64_t> inverse(static_cast<size_t>(n_));
  for (int64_t r = 0; r < n_; ++r) inverse[perm[r]] = r;
  double total = 0;
  std::vector<int64_t> mine(static_cast<size_t>(k_)), theirs(static_cast<size_t>(k_));
  for (int64_t r = 0; r < n_; ++r) {
    std::copy(knn_x_.begin() + r * k_, knn_x_.begin() + (r + 1) * k_, mine.begin());
    for (int64_t c = 0; c < k_; ++c) theirs[c] = inverse[knn_y_[perm[r] * k_ + c]];  // Y's neighbours, in X's labels
    std::sort(mine.begin(), mine.end());
    std::sort(theirs.begin(), theirs.end());
    std::vector<int64_t> both;
    std::set_intersection(mine.begin(), mine.end(), theirs.begin(), theirs.end(), std::back_inserter(both));
    total += static_cast<double>(both.size()) / static_cast<double>(k_);
  }
  return total / static_cast<double>(n_);
}

}  // namespace universae::core
