// Representational similarity: the fast permutation paths equal a naive recomputation on the
// re-paired data (to 1e-9), and the scores have their defining properties.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

#include "core/repsim.hpp"

using namespace universae::core;

namespace {
at::Tensor permuted(const at::Tensor& m, const std::vector<int64_t>& p) {
  return m.index_select(0, at::tensor(p, at::kLong));
}
}  // namespace

TEST(RepSim, FastPermutationPathsEqualNaiveRecomputation) {
  at::manual_seed(3);
  const int64_t n = 60;
  const at::Tensor x = at::randn({n, 12}, at::kDouble);
  const at::Tensor y = at::mm(x, at::randn({12, 9}, at::kDouble)) + 0.5 * at::randn({n, 9}, at::kDouble);
  const Svcca svcca(x, y, {});
  const Svcca svcca_dims(x, y, {0.99, 4, false});
  const Rsa rsa(x, y);
  const Cka cka(x, y);
  const MutualKnn knn(x, y, 5);
  for (uint64_t i = 0; i < 5; ++i) {
    const auto p = permutation(n, 17, i);
    const at::Tensor yp = permuted(y, p);
    EXPECT_NEAR(svcca.score_with(p), Svcca(x, yp, {}).score(), 1e-9);
    EXPECT_NEAR(svcca_dims.score_with(p), Svcca(x, yp, {0.99, 4, false}).score(), 1e-9);
    EXPECT_NEAR(rsa.score_with(p), Rsa(x, yp).score(), 1e-9);
    EXPECT_NEAR(cka.score_with(p), Cka(x, yp).score(), 1e-9);
    EXPECT_NEAR(knn.score_with(p), MutualKnn(x, yp, 5).score(), 1e-9);
  }
}

TEST(RepSim, DefiningProperties) {
  at::manual_seed(4);
  const at::Tensor x = at::randn({40, 8}, at::kDouble);
  // Identical representations score 1 (SVCCA, CKA, RSA) and share every neighbour.
  EXPECT_NEAR(Svcca(x, x, {}).score(), 1.0, 1e-9);
  EXPECT_NEAR(Cka(x, x).score(), 1.0, 1e-12);
  EXPECT_NEAR(Rsa(x, x).score(), 1.0, 1e-12);
  EXPECT_NEAR(MutualKnn(x, x, 5).score(), 1.0, 1e-12);
  // CKA and SVCCA are invariant to an orthogonal transform and isotropic scaling of one side.
  const at::Tensor q = std::get<0>(at::linalg_qr(at::randn({8, 8}, at::kDouble)));
  EXPECT_NEAR(Cka(x, 3.0 * at::mm(x, q)).score(), 1.0, 1e-9);
  EXPECT_NEAR(Svcca(x, at::mm(x, q), {}).score(), 1.0, 1e-9);
  // compat lan2024 keeps one direction: |Pearson| of the first principal-component scores.
  const at::Tensor y = x + 0.3 * at::randn({40, 8}, at::kDouble);
  const Svcca one(x, y, {0.99, 0, true});
  EXPECT_EQ(one.dims_x(), 1);
  auto first_pc = [](const at::Tensor& m) {
    const at::Tensor c = m - m.mean(0, true);
    const at::Tensor v = std::get<2>(at::linalg_svd(c, false));
    return at::mv(c, v[0]);
  };
  const at::Tensor a = first_pc(x), b = first_pc(y);
  const double pearson = (at::dot(a - a.mean(), b - b.mean()) / ((a - a.mean()).norm() * (b - b.mean()).norm())).item<double>();
  EXPECT_NEAR(one.score(), std::fabs(pearson), 1e-9);
}

TEST(RepSim, AverageRanksAndPermutations) {
  EXPECT_EQ(average_ranks({3.0, 1.0, 3.0, 2.0}), (std::vector<double>{3.5, 1.0, 3.5, 2.0}));
  const auto p = permutation(50, 9, 2);
  std::vector<int64_t> sorted = p;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 50; ++i) EXPECT_EQ(sorted[i], i);
  EXPECT_EQ(p, permutation(50, 9, 2));
  EXPECT_NE(p, permutation(50, 9, 3));
}

// The generic twins (scores(): ATen ops on the data's device, compare's run.kernels = "generic" and
// the GPU path) against the CPU loops (score_with) on the same prepared data: the shared-neighbour
// fraction bit for bit (both count exactly), the others to 1e-12 relative (float64 sums in another
// order). Small chunk sizes make every metric cross chunk edges (RSA: within one permutation's rows).
TEST(RepSim, GenericScoresEqualTheCpuLoops) {
  at::manual_seed(5);
  const int64_t n = 70;
  const at::Tensor x = at::randn({n, 10}, at::kDouble);
  const at::Tensor y = at::mm(x, at::randn({10, 7}, at::kDouble)) + 0.7 * at::randn({n, 7}, at::kDouble);
  std::vector<std::vector<int64_t>> perms;
  std::vector<int64_t> flat;
  for (uint64_t i = 0; i < 9; ++i) {
    perms.push_back(i == 0 ? permutation(n, 1, 0) : permutation(n, 23, i));
    if (i == 0) std::iota(perms[0].begin(), perms[0].end(), int64_t{0});  // row 0: the identity
    flat.insert(flat.end(), perms.back().begin(), perms.back().end());
  }
  const at::Tensor p = at::tensor(flat, at::kLong).view({static_cast<int64_t>(perms.size()), n});
  auto check = [&](const auto& prepared, const char* name, bool exact) {
    for (int64_t chunk : {kScoreChunkBytes, int64_t{8} * n * 9}) {  // one chunk; chunks of a few permutations or rows
      const at::Tensor s = prepared.scores(p, chunk);
      ASSERT_EQ(s.numel(), static_cast<int64_t>(perms.size()));
      for (size_t i = 0; i < perms.size(); ++i) {
        const double want = prepared.score_with(perms[i]), got = s[static_cast<int64_t>(i)].template item<double>();
        if (exact)
          EXPECT_EQ(got, want) << name << " permutation " << i << " chunk " << chunk;
        else
          EXPECT_NEAR(got, want, 1e-12 * std::fabs(want) + 1e-15) << name << " permutation " << i << " chunk " << chunk;
      }
    }
  };
  check(Svcca(x, y, {}), "svcca", false);
  check(Svcca(x, y, {0.99, 3, false}), "svcca dims", false);
  check(Rsa(x, y), "rsa", false);
  check(Cka(x, y), "cka", false);
  check(MutualKnn(x, y, 6), "mutual_knn", true);
  // RSA's average ranks of tied values (rounded Pearson correlations tie often) match the host's.
  const at::Tensor v = at::round(at::randn({5000}, at::kDouble) * 8) / 8;
  const std::vector<double> host(v.data_ptr<double>(), v.data_ptr<double>() + v.numel());
  const at::Tensor ranks = average_ranks(v);
  EXPECT_EQ(std::vector<double>(ranks.data_ptr<double>(), ranks.data_ptr<double>() + ranks.numel()), average_ranks(host));
}
