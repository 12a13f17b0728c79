// Distributed max cosine: identical (bit for bit) to the same computation on one rank.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "compare/max_cosine.hpp"
#include "core/rng.hpp"
#include "core/screen.hpp"
#include "core/similarity.hpp"
#include "parallel/comm.hpp"

using namespace universae;

namespace {
// Same matrix on every rank: entries from the counter RNG.
at::Tensor matrix(int64_t rows, int64_t cols, uint64_t seed) {
  at::Tensor m = at::empty({rows, cols}, at::kFloat);
  core::normal_rows(m.data_ptr<float>(), rows, cols, seed, core::kStreamTesting, /*unit=*/false);
  return m;
}
}  // namespace

TEST(MaxCosine, DistributedEqualsSingleRankBitForBit) {
  const auto world = parallel::Environment::world();
  const auto self = world.split(world.rank(), 0);  // a one-rank communicator per process
  const int64_t n_a = 37, n_b = 29, d = 11;
  at::Tensor a = matrix(n_a, d, 1), b = matrix(n_b, d, 2);
  b[20].copy_(b[4]);  // tie in a row max
  a[30].zero_();      // zero row
  const compare::TileSizes tiles{4, 7};
  const core::Range mine = compare::a_rows_of_rank(n_a, tiles, world);
  const auto dist = compare::max_cosine(world, a.narrow(0, mine.begin, mine.size()), n_a, b, tiles);
  const auto single = compare::max_cosine(self, a, n_a, b, tiles);
  ASSERT_EQ(dist.max_cos_ab.size(), static_cast<size_t>(n_a));
  EXPECT_EQ(std::memcmp(dist.max_cos_ab.data(), single.max_cos_ab.data(), n_a * sizeof(float)), 0);
  EXPECT_EQ(std::memcmp(dist.max_cos_ba.data(), single.max_cos_ba.data(), n_b * sizeof(float)), 0);
  EXPECT_EQ(dist.argmax_ab, single.argmax_ab);
  EXPECT_EQ(dist.argmax_ba, single.argmax_ba);
  EXPECT_EQ(dist.mcs_ab, single.mcs_ab);
  EXPECT_EQ(dist.mcs_ba, single.mcs_ba);
  EXPECT_EQ(dist.zero_rows_a, 1);
  EXPECT_EQ(dist.max_cos_ab[30], 0.0f);

  // And against a float64 brute force.
  const at::Tensor an = a.to(at::kDouble), bn = b.to(at::kDouble);
  const at::Tensor s = at::mm(an / an.norm(2, 1, true).clamp_min(1e-300), (bn / bn.norm(2, 1, true)).t());
  for (int64_t i = 0; i < n_a; ++i) EXPECT_NEAR(dist.max_cos_ab[i], s[i].max().item<double>(), 1e-6);
  for (int64_t j = 0; j < n_b; ++j) EXPECT_NEAR(dist.max_cos_ba[j], s.select(1, j).max().item<double>(), 1e-6);
  for (int64_t i = 0; i < n_a; ++i)
    if (dist.argmax_ab[i] == 20) ADD_FAILURE() << "row " << i << " picked the later of two tied columns";
}

TEST(MaxCosine, MoreRanksThanTiles) {
  const auto world = parallel::Environment::world();
  const int64_t n_a = 3, n_b = 5, d = 4;
  const at::Tensor a = matrix(n_a, d, 3), b = matrix(n_b, d, 4);
  const compare::TileSizes tiles{8, 2};  // one tile: ranks > 0 own no rows
  const core::Range mine = compare::a_rows_of_rank(n_a, tiles, world);
  const auto r = compare::max_cosine(world, a.narrow(0, mine.begin, mine.size()), n_a, b, tiles);
  EXPECT_EQ(r.argmax_ab.size(), 3u);
  for (auto j : r.argmax_ba) EXPECT_TRUE(j >= 0 && j < n_a) << j;
}

// run.kernels = "generic": the tile stream's top-K lists kept as keys on a device (core::DeviceTopK,
// here the CPU) equal the CPU scan's bit for bit, at every rank count, with ties (duplicate columns and
// rows), a zero row (all cosines 0: the lowest index must win), K above the tile width and above n_b.
TEST(MaxCosine, DeviceScanEqualsCpuScanBitForBit) {
  const auto world = parallel::Environment::world();
  const int64_t n_a = 41, n_b = 23, d = 9;
  at::Tensor a = matrix(n_a, d, 5), b = matrix(n_b, d, 6);
  b[17].copy_(b[3]);
  b[9].copy_(b[3]);
  a[12].copy_(a[2]);
  a[30].zero_();
  const compare::TileSizes tiles{4, 7};
  const core::Range mine = compare::a_rows_of_rank(n_a, tiles, world);
  const at::Tensor a_local = a.narrow(0, mine.begin, mine.size());
  for (int64_t k : {1, 3, 8, 30}) {
    SCOPED_TRACE("K = " + std::to_string(k));
    // The plain float32 scan: the bfloat16 screen's exact products differ in their last bits (below).
    const compare::ScanDevice plain{at::kCPU, false, config::MatmulDtype::kFloat32, compare::Screen::kOff};
    const auto cpu = compare::similarity_pass(world, a_local, n_a, b, tiles, k, plain);
    const auto device = compare::similarity_pass(world, a_local, n_a, b, tiles, k, {at::kCPU, /*generic=*/true});
    for (const auto* lists : {&cpu.rows, &cpu.cols}) {
      const auto& other = lists == &cpu.rows ? device.rows : device.cols;
      ASSERT_EQ(lists->all_values().size(), other.all_values().size());
      EXPECT_EQ(std::memcmp(lists->all_values().data(), other.all_values().data(), lists->all_values().size() * sizeof(float)), 0);
      EXPECT_EQ(lists->all_indices(), other.all_indices());
    }
    const auto m_cpu = compare::max_cosine_from(world, cpu), m_device = compare::max_cosine_from(world, device);
    EXPECT_EQ(m_cpu.argmax_ab, m_device.argmax_ab);
    EXPECT_EQ(m_cpu.argmax_ba, m_device.argmax_ba);
    EXPECT_EQ(m_device.argmax_ab[30], 0) << "a zero row's cosines all tie at 0: the first column wins";
  }
}

// compare.screen: the float32 pass screened in bfloat16 keeps the lists of every pair's core::exact_dot,
// at every rank count, with ties, a zero row and K above n_b; float32 GEMM lists agree to rounding.
TEST(MaxCosine, ScreenedPassKeepsTheExactListsOnEveryRankCount) {
  const auto world = parallel::Environment::world();
  const int64_t n_a = 45, n_b = 301, d = 33;
  at::Tensor a = matrix(n_a, d, 7), b = matrix(n_b, d, 8);
  b[200].copy_(b[3]);
  a[12].copy_(a[2]);
  a[30].zero_();
  const compare::TileSizes tiles{4, 64};
  const core::Range mine = compare::a_rows_of_rank(n_a, tiles, world);
  const at::Tensor a_local = a.narrow(0, mine.begin, mine.size());
  const at::Tensor au = core::unit_rows(a, nullptr), bu = core::unit_rows(b, nullptr);
  for (int64_t k : {1, 16, 60}) {
    SCOPED_TRACE("K = " + std::to_string(k));
    const compare::ScanDevice screened{at::kCPU, false, config::MatmulDtype::kFloat32, compare::Screen::kOn};
    const auto p = compare::similarity_pass(world, a_local, n_a, b, tiles, k, screened);
    core::TopKLists rows(n_a, k), cols(n_b, k);  // every pair's exact_dot, offered in order
    for (int64_t i = 0; i < n_a; ++i)
      for (int64_t j = 0; j < n_b; ++j) {
        const float w = core::exact_dot(au[i].data_ptr<float>(), bu[j].data_ptr<float>(), d);
        rows.offer(i, w, j), cols.offer(j, w, i);
      }
    for (int64_t r = 0; r < mine.size(); ++r)
      for (int64_t c = 0; c < k; ++c) {
        EXPECT_EQ(p.rows.indices(r)[c], rows.indices(mine.begin + r)[c]) << r << " " << c;
        EXPECT_EQ(p.rows.values(r)[c], rows.values(mine.begin + r)[c]) << r << " " << c;
      }
    EXPECT_EQ(p.cols.all_indices(), cols.all_indices());
    EXPECT_EQ(p.cols.all_values(), cols.all_values());
    const compare::ScanDevice plain{at::kCPU, false, config::MatmulDtype::kFloat32, compare::Screen::kOff};
    const auto q = compare::similarity_pass(world, a_local, n_a, b, tiles, k, plain);
    for (size_t e = 0; e < q.cols.all_values().size(); ++e)
      if (std::isfinite(q.cols.all_values()[e])) {
        EXPECT_NEAR(q.cols.all_values()[e], p.cols.all_values()[e], 1e-6);
      }
  }
}
