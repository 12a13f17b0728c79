// Representational similarity of paired rows (METHODS.md §6-7, Lan et al.): X (n × d_x) and
// Y (n × d_y), row r of X paired with row r of Y; datapoints are the n pairs. All in float64.
// Each metric has a "prepared" form that holds what a re-pairing of Y's rows cannot change, so a
// permutation test costs one small computation per permutation (the fast invariant paths):
//  - SVCCA: centring, SVD truncation and QR do not change; a permutation only permutes the rows of
//    Q_y, so the null is the mean singular value of Q_xᵀ P Q_y (k_x × k_y).
//  - RSA: the two Pearson matrices and their upper-triangle ranks do not change; a permutation
//    moves Y's ranks, so the null is one gather and one dot (a Mantel test).
//  - CKA: centring and the two normalisers do not change; the null needs ‖X_cᵀ P Y_c‖_F.
//  - mutual kNN: both neighbour lists do not change; a permutation relabels Y's.
// No MPI: compare/ shards the permutations over ranks.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace universae::core {

// Filled from compare.svcca_variance, compare.svcca_dims and compare.compat (compare/repsim.cpp).
struct SvccaOptions {
  double variance{};  // keep the fewest directions explaining at least this much variance
  int64_t dims{};     // > 0: keep exactly this many instead
  bool lan2024{};     // compat: one direction (the published threshold bug)
};

class Svcca {
 public:
  Svcca(const at::Tensor& x, const at::Tensor& y, const SvccaOptions& options);
  double score() const { return score_with(identity_); }
  // The score with Y's rows permuted: row r of X paired with row perm[r] of Y.
  double score_with(const std::vector<int64_t>& perm) const;
  int64_t dims_x() const { return qx_.size(1); }
  int64_t dims_y() const { return qy_.size(1); }

 private:
  at::Tensor qx_, qy_;
  std::vector<int64_t> identity_;
  bool lan2024_;
};

class Rsa {
 public:
  Rsa(const at::Tensor& x, const at::Tensor& y);
  double score() const { return score_with(identity_); }
  double score_with(const std::vector<int64_t>& perm) const;

 private:
  int64_t n_;
  std::vector<double> rank_x_;  // centred average ranks of X's upper triangle (i < j), row by row
  std::vector<double> rank_y_;  // the same for Y, stored as a full symmetric n × n matrix so that a
                                // permuted row is read from one row of memory, not n scattered places
  double norm_ = 0;             // ‖rank_x‖ ‖rank_y‖
  std::vector<int64_t> identity_;
};

class Cka {
 public:
  Cka(const at::Tensor& x, const at::Tensor& y);
  double score() const { return score_with(identity_); }
  double score_with(const std::vector<int64_t>& perm) const;

 private:
  at::Tensor xc_, yc_;
  double denominator_ = 0;
  std::vector<int64_t> identity_;
};

class MutualKnn {
 public:
  MutualKnn(const at::Tensor& x, const at::Tensor& y, int64_t k);
  double score() const { return score_with(identity_); }
  double score_with(const std::vector<int64_t>& perm) const;

 private:
  int64_t n_, k_;
  std::vector<int64_t> knn_x_, knn_y_;  // [n × k]
  std::vector<int64_t> identity_;
};

// Average ranks (1-based; ties share their mean rank), as scipy.stats.rankdata.
std::vector<double> average_ranks(const std::vector<double>& values);

// The permutation of [0, n) for (seed, index): a pure function, so any rank can draw any of them.
std::vector<int64_t> permutation(int64_t n, uint64_t seed, uint64_t index);

}  // namespace universae::core
