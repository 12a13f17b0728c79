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
  return m.index_select(0, at::tensor(perm, at::kLong).to(m.device()));
}

// On the CPU, temporaries of at most 2 MiB stay in cache. Measured at n 4,096 (Debian's torch 1.13,
// one thread): an RSA permutation takes 0.034 s in 64-row blocks against 1.6 s in one 128 MiB block;
// 64 SVCCA permutations 0.06 s one at a time against 0.94 s in one batch; mutual kNN 0.4 s against
// 3.5 s for 232. A GPU takes the big chunks.
constexpr int64_t kCpuBlockBytes = int64_t{2} << 20;

int64_t block_bytes(const at::Device& device, int64_t chunk_bytes) {
  return device.is_cpu() ? std::min(chunk_bytes, kCpuBlockBytes) : chunk_bytes;
}

// Calls fn(chunk) over the rows of perms in chunks of temporaries of about chunk_bytes (CPU: 2 MiB),
// after checking that perms is (P × n) int64 on `device`; returns the P scores (float64, on device).
template <typename Fn>
at::Tensor by_chunks(const at::Tensor& perms, int64_t n, const at::Device& device, int64_t bytes_per_permutation,
                     int64_t chunk_bytes, Fn&& fn) {
  if (perms.dim() != 2 || perms.size(1) != n || perms.scalar_type() != at::kLong || perms.device() != device)
    throw std::invalid_argument("representational similarity: permutations must be a (P x n) int64 tensor on the data's device");
  at::Tensor out = at::empty({perms.size(0)}, at::TensorOptions().dtype(at::kDouble).device(device));
  const int64_t step = std::max<int64_t>(1, block_bytes(device, chunk_bytes) / std::max<int64_t>(1, bytes_per_permutation));
  for (int64_t b = 0; b < perms.size(0); b += step) {
    const int64_t c = std::min(step, perms.size(0) - b);
    out.narrow(0, b, c).copy_(fn(perms.narrow(0, b, c)));
  }
  return out;
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
  int64_t k = 0;
  if (o.lan2024) {
    k = 1;
  } else if (o.dims > 0) {
    k = std::min(o.dims, s.size(0));
  } else {
    // Host read (the one in preparation): the cumulative variance decides how many directions to keep.
    const at::Tensor cum = (var.cumsum(0) / var.sum()).to(at::kCPU).contiguous();
    const double* c = cum.data_ptr<double>();
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

at::Tensor average_ranks(const at::Tensor& values) {
  const auto [sorted, order] = at::sort(values, /*stable=*/true, 0, /*descending=*/false);
  const auto [unique, group, counts] = at::unique_consecutive(sorted, /*return_inverse=*/true, /*return_counts=*/true);
  // A group of `count` equal values starting at 0-based position `start` shares the 1-based rank
  // start + (count + 1) / 2: the mean of start + 1 ... start + count, as average_ranks(vector) computes it.
  const at::Tensor start = (counts.cumsum(0) - counts).to(at::kDouble);
  const at::Tensor mean_rank = start + (counts.to(at::kDouble) + 1.0) * 0.5;
  return at::empty_like(values).scatter_(0, order, mean_rank.index_select(0, group.reshape({-1})));
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

at::Tensor Svcca::scores(const at::Tensor& perms, int64_t chunk_bytes) const {
  const int64_t n = qx_.size(0), kx = qx_.size(1), ky = qy_.size(1);
  return by_chunks(perms, n, qx_.device(), 8 * (n * ky + 2 * kx * ky), chunk_bytes, [&](const at::Tensor& p) {
    const at::Tensor qy = qy_.index_select(0, p.reshape({-1})).view({p.size(0), n, ky});  // Q_y's rows re-paired
    return at::clamp(at::linalg_svdvals(at::matmul(qx_.t(), qy)), 0.0, 1.0).mean(1);
  });
}

Rsa::Rsa(const at::Tensor& x, const at::Tensor& y) : n_(x.size(0)), identity_(iota(x.size(0))) {
  check_pairs(x, y, 3);
  const auto options = at::TensorOptions().dtype(at::kLong).device(x.device());
  const at::Tensor upper = at::triu_indices(n_, n_, 1, options);  // (2, n(n-1)/2), row by row
  const at::Tensor at_ij = upper[0] * n_ + upper[1], at_ji = upper[1] * n_ + upper[0];
  auto upper_ranks = [&](const at::Tensor& m) {
    const at::Tensor d = m.to(at::kDouble);
    // Centred, unit rows: their inner products are the Pearson correlations between rows.
    const at::Tensor rn = unit_rows(d - d.mean(1, /*keepdim=*/true), nullptr, at::kDouble);
    const at::Tensor r = average_ranks(rn.mm(rn.t()).reshape({-1}).index_select(0, at_ij));
    return r - r.mean();
  };
  const at::Tensor rx = upper_ranks(x), ry = upper_ranks(y);
  norm_ = (rx.dot(rx) * ry.dot(ry)).sqrt();
  rank_x_ = at::zeros({n_ * n_}, rx.options()).index_copy_(0, at_ij, rx).view({n_, n_});
  rank_y_ = at::zeros({n_ * n_}, ry.options()).index_copy_(0, at_ij, ry).index_copy_(0, at_ji, ry).view({n_, n_});
}

double Rsa::score_with(const std::vector<int64_t>& perm) const {
  if (!rank_x_.is_cpu()) throw std::logic_error("Rsa::score_with reads the ranks on the host: use scores() on a device");
  double dot = 0;
  const double* rx = rank_x_.data_ptr<double>();
  const double* ry = rank_y_.data_ptr<double>();
  for (int64_t i = 0; i < n_; ++i) {
    const double* row = ry + perm[i] * n_;  // Y's ranks for the item paired with i
    for (int64_t j = i + 1; j < n_; ++j) dot += rx[i * n_ + j] * row[perm[j]];
  }
  const double norm = norm_.item<double>();
  return norm > 0 ? dot / norm : 0.0;
}

at::Tensor Rsa::scores(const at::Tensor& perms, int64_t chunk_bytes) const {
  // One permutation at a time, in blocks of rows of about chunk_bytes: the upper triangle of X's
  // ranks against Y's ranks gathered at (perm[i], perm[j]) for the block's rows i and columns j > i.
  const int64_t rows = std::max<int64_t>(1, block_bytes(rank_x_.device(), chunk_bytes) / (8 * n_));
  const at::Tensor safe_norm = at::where(norm_ > 0, norm_, at::ones_like(norm_));
  return by_chunks(perms, n_, rank_x_.device(), chunk_bytes, chunk_bytes, [&](const at::Tensor& p) {  // one permutation per chunk
    const at::Tensor perm = p[0];
    at::Tensor dot = at::zeros({}, rank_x_.options());
    for (int64_t r = 0; r < n_ - 1; r += rows) {
      const int64_t c = std::min(rows, n_ - 1 - r), w = n_ - 1 - r;  // rows r..r+c-1, columns r+1..n-1
      const at::Tensor gathered = rank_y_.index_select(0, perm.narrow(0, r, c)).index_select(1, perm.narrow(0, r + 1, w));
      dot += (rank_x_.narrow(0, r, c).narrow(1, r + 1, w) * gathered).sum();
    }
    return at::where(norm_ > 0, dot / safe_norm, at::zeros_like(dot)).reshape({1});
  });
}

Cka::Cka(const at::Tensor& x, const at::Tensor& y) : identity_(iota(x.size(0))) {
  check_pairs(x, y, 2);
  xc_ = centred_columns(x);
  yc_ = centred_columns(y);
  denominator_ = xc_.t().mm(xc_).norm() * yc_.t().mm(yc_).norm();
}

double Cka::score_with(const std::vector<int64_t>& perm) const {
  const double cross = xc_.t().mm(rows_of(yc_, perm)).norm().item<double>();
  const double denominator = denominator_.item<double>();
  return denominator > 0 ? cross * cross / denominator : 0.0;
}

at::Tensor Cka::scores(const at::Tensor& perms, int64_t chunk_bytes) const {
  const int64_t n = xc_.size(0), dx = xc_.size(1), dy = yc_.size(1);
  const at::Tensor safe = at::where(denominator_ > 0, denominator_, at::ones_like(denominator_));
  return by_chunks(perms, n, xc_.device(), 8 * (n * dy + 2 * dx * dy), chunk_bytes, [&](const at::Tensor& p) {
    const at::Tensor yc = yc_.index_select(0, p.reshape({-1})).view({p.size(0), n, dy});
    const at::Tensor cross = at::matmul(xc_.t(), yc).flatten(1).norm(2, {1});  // ‖X_cᵀ P Y_c‖_F
    return at::where(denominator_ > 0, cross * cross / safe, at::zeros_like(cross));
  });
}

MutualKnn::MutualKnn(const at::Tensor& x, const at::Tensor& y, int64_t k)
    : n_(x.size(0)), k_(std::min<int64_t>(k, x.size(0) - 1)), identity_(iota(x.size(0))) {
  check_pairs(x, y, 2);
  auto neighbours = [this](const at::Tensor& m) {
    const at::Tensor unit = unit_rows(m, nullptr, at::kDouble);
    at::Tensor s = unit.mm(unit.t());
    s.fill_diagonal_(-std::numeric_limits<double>::infinity());  // self excluded
    return std::get<1>(s.topk(k_, 1)).contiguous();
  };
  knn_x_ = neighbours(x);
  knn_y_ = neighbours(y);
}

double MutualKnn::score_with(const std::vector<int64_t>& perm) const {
  if (!knn_x_.is_cpu()) throw std::logic_error("MutualKnn::score_with reads the lists on the host: use scores() on a device");
  std::vector<int64_t> inverse(static_cast<size_t>(n_));
  for (int64_t r = 0; r < n_; ++r) inverse[perm[r]] = r;
  const int64_t* knn_x = knn_x_.data_ptr<int64_t>();
  const int64_t* knn_y = knn_y_.data_ptr<int64_t>();
  int64_t shared = 0;
  std::vector<int64_t> mine(static_cast<size_t>(k_)), theirs(static_cast<size_t>(k_));
  for (int64_t r = 0; r < n_; ++r) {
    std::copy(knn_x + r * k_, knn_x + (r + 1) * k_, mine.begin());
    for (int64_t c = 0; c < k_; ++c) theirs[c] = inverse[knn_y[perm[r] * k_ + c]];  // Y's neighbours, in X's labels
    std::sort(mine.begin(), mine.end());
    std::sort(theirs.begin(), theirs.end());
    std::vector<int64_t> both;
    std::set_intersection(mine.begin(), mine.end(), theirs.begin(), theirs.end(), std::back_inserter(both));
    shared += static_cast<int64_t>(both.size());
  }
  return static_cast<double>(shared) / static_cast<double>(n_ * k_);
}

at::Tensor MutualKnn::scores(const at::Tensor& perms, int64_t chunk_bytes) const {
  return by_chunks(perms, n_, knn_x_.device(), 8 * n_ * (2 + 2 * k_) + n_ * k_ * k_, chunk_bytes, [&](const at::Tensor& p) {
    const int64_t c = p.size(0);
    const at::Tensor labels = at::arange(n_, p.options()).expand({c, n_});
    const at::Tensor inverse = at::empty_like(p).scatter_(1, p, labels);  // inverse[perm[r]] = r
    const at::Tensor knn_y = knn_y_.index_select(0, p.reshape({-1})).view({c, n_ * k_});
    const at::Tensor theirs = inverse.gather(1, knn_y).view({c, n_, 1, k_});  // Y's neighbours, in X's labels
    // The lists hold distinct labels, so equal pairs count the intersection exactly.
    const at::Tensor shared = (knn_x_.view({1, n_, k_, 1}) == theirs).sum({1, 2, 3});
    return shared.to(at::kDouble) / static_cast<double>(n_ * k_);
  });
}

}  // namespace universae::core
