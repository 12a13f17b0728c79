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
// Two ways to score permutations, the same numbers (tests/unit/test_repsim.cpp):
//  - score_with(perm): one permutation from the host, the CPU's loops (compare's fast kernels);
//  - scores(perms): a (P × n) tensor of permutations on the tensors' device, P scores back on that
//    device without a host read (ATen ops only: compare's generic kernels, and the GPU path).
// Every prepared tensor lives on the device of X. Preparation reads the device once, for SVCCA
// only: the spectrum's cumulative variance, to choose how many directions to keep.
// No MPI: compare/ shards the permutations over ranks.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace universae::core {

// scores() works through the permutations (RSA: through a permutation's rows) in chunks whose
// temporaries stay under about this many bytes (on the CPU at most 2 MiB, which stay in cache);
// tests pass small values to cross chunk edges.
constexpr int64_t kScoreChunkBytes = int64_t{256} << 20;

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
  at::Tensor scores(const at::Tensor& perms, int64_t chunk_bytes = kScoreChunkBytes) const;
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
  at::Tensor scores(const at::Tensor& perms, int64_t chunk_bytes = kScoreChunkBytes) const;

 private:
  int64_t n_;
  at::Tensor rank_x_;  // n × n: centred average ranks of X's upper triangle (i < j); zero on and below the diagonal
  at::Tensor rank_y_;  // the same for Y as a full symmetric n × n matrix, so that a permuted row is
                       // read from one row of memory, not n scattered places
  at::Tensor norm_;    // ‖rank_x‖ ‖rank_y‖ over the upper triangles (0-dim)
  std::vector<int64_t> identity_;
};

class Cka {
 public:
  Cka(const at::Tensor& x, const at::Tensor& y);
  double score() const { return score_with(identity_); }
  double score_with(const std::vector<int64_t>& perm) const;
  at::Tensor scores(const at::Tensor& perms, int64_t chunk_bytes = kScoreChunkBytes) const;

 private:
  at::Tensor xc_, yc_;
  at::Tensor denominator_;  // ‖X_cᵀX_c‖_F ‖Y_cᵀY_c‖_F (0-dim)
  std::vector<int64_t> identity_;
};

class MutualKnn {
 public:
  MutualKnn(const at::Tensor& x, const at::Tensor& y, int64_t k);
  double score() const { return score_with(identity_); }
  // The shared neighbours counted exactly, divided once by n k: both forms give the same bits.
  double score_with(const std::vector<int64_t>& perm) const;
  at::Tensor scores(const at::Tensor& perms, int64_t chunk_bytes = kScoreChunkBytes) const;

 private:
  int64_t n_, k_;
  at::Tensor knn_x_, knn_y_;  // n × k int64
  std::vector<int64_t> identity_;
};

// Average ranks (1-based; ties share their mean rank), as scipy.stats.rankdata.
std::vector<double> average_ranks(const std::vector<double>& values);
// The same for a 1-D float64 tensor on any device, bit for bit (both are exact: halves of integers).
at::Tensor average_ranks(const at::Tensor& values);

// The permutation of [0, n) for (seed, index): a pure function, so any rank can draw any of them.
std::vector<int64_t> permutation(int64_t n, uint64_t seed, uint64_t index);

}  // namespace universae::core
