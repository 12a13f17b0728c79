// Pure numerics: exact sums, counter RNG, synthetic data, geometric median, max-cosine tiles.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>

#include "core/exact_sum.hpp"
#include "core/geometric_median.hpp"
#include "core/rng.hpp"
#include "core/screen.hpp"
#include "core/similarity.hpp"
#include "core/topk.hpp"
#include "data/synthetic.hpp"

using namespace universae;

TEST(ExactSum, IsExactWhereFloatSummationIsNot) {
  const float values[3] = {1073741824.0f, 1.0f, -1073741824.0f};  // 2^30 + 1 - 2^30
  EXPECT_EQ((values[0] + values[1]) + values[2], 0.0f);            // float loses the 1
  core::wide_int acc[1] = {0};
  for (float v : values) ASSERT_TRUE(core::accumulate_fixed(&v, 1, acc));
  EXPECT_EQ(core::fixed_to_float(acc[0]), 1.0f);
}

TEST(ExactSum, GroupingDoesNotChangeTheBits) {
  core::CounterRng rng(7, 0, 0);
  std::vector<float> v(1000);
  for (auto& x : v) x = static_cast<float>(rng.normal() * std::pow(10.0, 6 * rng.uniform() - 3));
  // One accumulator over everything vs. three partial accumulators added as integers.
  core::wide_int whole = 0, parts[3] = {0, 0, 0};
  ASSERT_TRUE(core::accumulate_fixed(v.data(), 1, &whole));
  for (size_t i = 1; i < v.size(); ++i) ASSERT_TRUE(core::accumulate_fixed(&v[i], 1, &whole));
  for (size_t i = 0; i < v.size(); ++i) ASSERT_TRUE(core::accumulate_fixed(&v[i], 1, &parts[i % 3]));
  const float a = core::fixed_to_float(whole), b = core::fixed_to_float(parts[2] + parts[0] + parts[1]);
  EXPECT_EQ(std::memcmp(&a, &b, sizeof a), 0);
  long double reference = 0;
  for (float x : v) reference += x;
  EXPECT_NEAR(a, static_cast<double>(reference), 1e-6 * std::fabs(static_cast<double>(reference)) + 1e-9);
}

TEST(ExactSum, RejectsNonFiniteAndHuge) {
  core::wide_int acc[1] = {0};
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  const float huge = 2e12f;
  EXPECT_FALSE(core::accumulate_fixed(&nan, 1, acc));
  EXPECT_FALSE(core::accumulate_fixed(&inf, 1, acc));
  EXPECT_FALSE(core::accumulate_fixed(&huge, 1, acc));
}

// The one-rank shortcut round_trip_fixed must give, value by value, what a fixed-point sum of that one
// value gives (accumulate_fixed then fixed_to_float), tiny values (truncated) and zeros included, and
// refuse what accumulate_fixed refuses, wherever in the row it sits.
TEST(ExactSum, RoundTripEqualsTheFixedPointSumOfOneValue) {
  core::CounterRng rng(11, 0, 0);
  std::vector<float> v(1037);
  for (auto& x : v) x = static_cast<float>(rng.normal() * std::pow(2.0, 100 * rng.uniform() - 75));  // 2^-75 … 2^25
  v[3] = 0.0f, v[4] = -0.0f, v[5] = 0x1p-57f, v[6] = -0x1.fffffep-58f, v[7] = 0x1p-149f, v[8] = 0x1.fffffep39f;
  std::vector<float> expected(v.size());
  int tiny = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    core::wide_int acc = 0;
    ASSERT_TRUE(core::accumulate_fixed(&v[i], 1, &acc));
    expected[i] = core::fixed_to_float(acc);
    tiny += expected[i] != v[i];
  }
  EXPECT_GT(tiny, 100);  // values the rounding changes are exercised
  std::vector<float> r = v;
  ASSERT_TRUE(core::round_trip_fixed(r.data(), static_cast<int64_t>(r.size())));
  EXPECT_EQ(std::memcmp(r.data(), expected.data(), r.size() * sizeof(float)), 0);
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::infinity(), 0x1p40f}) {
    std::vector<float> w = v;
    w[500] = bad;
    EXPECT_FALSE(core::round_trip_fixed(w.data(), static_cast<int64_t>(w.size()))) << bad;
  }
}

TEST(CounterRng, DeterministicAndRoughlyStandard) {
  core::CounterRng a(1, 2, 3), b(1, 2, 3), c(1, 2, 4);
  EXPECT_EQ(a.next_u64(), b.next_u64());
  EXPECT_NE(b.next_u64(), c.next_u64());
  core::CounterRng r(42, 0, 0);
  double sum = 0, sum2 = 0, usum = 0;
  const int n = 200000;
  for (int i = 0; i < n; ++i) {
    const double z = r.normal();
    sum += z, sum2 += z * z, usum += r.uniform();
  }
  EXPECT_NEAR(sum / n, 0.0, 0.01);
  EXPECT_NEAR(sum2 / n, 1.0, 0.02);
  EXPECT_NEAR(usum / n, 0.5, 0.005);
}

TEST(Synthetic, StreamIsAPureFunctionOfTokenIndex) {
  config::SyntheticConfig spec = config::Config().data.synthetic;  // the defaults of the key table
  spec.d = 16;
  spec.n_features = 64;
  spec.mean_l0 = 4;
  const data::SyntheticSource source(spec);
  std::vector<float> whole(100 * 16), pieces(100 * 16);
  source.tokens(1000, 100, whole.data());
  source.tokens(1000, 37, pieces.data());  // as rank 0 of an uneven split would
  source.tokens(1037, 63, pieces.data() + 37 * 16);
  EXPECT_EQ(whole, pieces);
  for (int64_t j = 0; j < spec.n_features; ++j) {
    double norm = 0;
    for (int64_t i = 0; i < spec.d; ++i) norm += std::pow(source.dictionary()[j * spec.d + i], 2);
    EXPECT_NEAR(norm, 1.0, 1e-5);
  }
}

TEST(Synthetic, PowerLawProbabilitiesHitTheMeanL0) {
  const auto p = data::power_law_probabilities(512, 0.5, 8.0);
  EXPECT_NEAR(std::accumulate(p.begin(), p.end(), 0.0), 8.0, 1e-9);
  for (size_t j = 1; j < p.size(); ++j) EXPECT_LE(p[j], p[j - 1]);
  // Empirical L0: recover the firing count from a noise-free token's support.
  config::SyntheticConfig spec = config::Config().data.synthetic;  // the defaults of the key table
  spec.d = 512;  // d = m and noise 0: count firings through the mean energy instead
  spec.n_features = 512;
  spec.mean_l0 = 8;
  spec.noise_std = 0;
  spec.magnitude_std = 0;
  const data::SyntheticSource source(spec);
  std::vector<float> x(4000 * 512);
  source.tokens(0, 4000, x.data());
  // With unit magnitudes E‖x‖² = E[L0] + Σ_{j≠l} p_j p_l <G_j, G_l>; the cross terms average ~0.
  double energy = 0;
  for (float v : x) energy += static_cast<double>(v) * v;
  EXPECT_NEAR(energy / 4000, 8.0, 0.4);
}

TEST(GeometricMedian, CollinearPointsGiveTheOneDimensionalMedian) {
  // Points on the x-axis of R^2: the geometric median is the ordinary median, 2 (the mean is 21.2).
  const std::vector<float> pts = {0, 0, 1, 0, 2, 0, 3, 0, 100, 0};
  const auto m = core::geometric_median(pts.data(), 5, 2, 1000, 1e-12);
  EXPECT_NEAR(m[0], 2.0, 1e-3);
  EXPECT_NEAR(m[1], 0.0, 1e-9);
  EXPECT_NEAR(core::mean_point(pts.data(), 5, 2)[0], 21.2, 1e-12);
}

// offer_block skips 8 entries at a time that beat neither bound: the lists must be exactly those of
// offering every entry one by one (ties, a NaN and column counts that are not multiples of 8 included).
TEST(TopK, BlockScanSkipsOnlyWhatNoListTakes) {
  const int64_t na = 40, nb = 3003, k = 16;
  at::manual_seed(116);
  at::Tensor s = at::rand({na, nb}, at::kDouble).to(at::kFloat);
  s.narrow(1, 1000, 8).fill_(0.999f);  // ties across rows and columns, inside one 8-entry block
  s[3][2000] = std::numeric_limits<float>::quiet_NaN();
  s[7].narrow(0, 500, 3).fill_(2.0f);  // late winners for one row
  const float* v = s.data_ptr<float>();
  for (int64_t tile_cols : {int64_t{8}, int64_t{13}, int64_t{1024}, nb}) {
    core::TopKLists rows(na, k), cols(nb, k), rows_ref(na, k), cols_ref(nb, k);
    for (int64_t c0 = 0; c0 < nb; c0 += tile_cols) {
      const int64_t tc = std::min(tile_cols, nb - c0);
      const at::Tensor block = s.narrow(1, c0, tc).contiguous();
      core::offer_block(block.data_ptr<float>(), na, tc, 0, 0, c0, rows, cols);
      for (int64_t r = 0; r < na; ++r)
        for (int64_t c = c0; c < c0 + tc; ++c) rows_ref.offer(r, v[r * nb + c], c), cols_ref.offer(c, v[r * nb + c], r);
    }
    EXPECT_EQ(rows.all_values(), rows_ref.all_values()) << tile_cols;
    EXPECT_EQ(rows.all_indices(), rows_ref.all_indices()) << tile_cols;
    EXPECT_EQ(cols.all_values(), cols_ref.all_values()) << tile_cols;
    EXPECT_EQ(cols.all_indices(), cols_ref.all_indices()) << tile_cols;
  }
}

// KthValues keeps the K-th value that TopKLists keeps, over a stream with ties, -inf, NaN and values that
// arrive in increasing and decreasing runs, for K below, at and past the stream's length.
TEST(TopK, KthValuesFollowTheListsKth) {
  at::manual_seed(120);
  const int64_t count = 7, n = 300;
  at::Tensor stream = at::randint(0, 40, {count, n}, at::kLong).to(at::kFloat) / 8;  // many ties
  stream[1] = at::arange(n, at::kFloat);
  stream[2] = -at::arange(n, at::kFloat);
  stream[3].narrow(0, 0, 50).fill_(-std::numeric_limits<float>::infinity());
  stream[4][10] = std::numeric_limits<float>::quiet_NaN();
  const float* v = stream.data_ptr<float>();
  for (int64_t k : {1, 3, 16, 299, 300, 400}) {
    core::TopKLists lists(count, k);
    core::KthValues kth(count, k);
    for (int64_t c = 0; c < n; ++c)
      for (int64_t e = 0; e < count; ++e) {
        lists.offer(e, v[e * n + c], c);
        kth.offer(e, v[e * n + c]);
        ASSERT_EQ(std::memcmp(kth.kths() + e, lists.kths() + e, sizeof(float)), 0) << "K " << k << " list " << e << " at " << c;
      }
  }
}

// exact_dot: within float32 rounding of a float64 dot (torch's), for widths below, at and past 16 lanes;
// the AVX-512 version (where the CPU has it) gives the same bits.
TEST(Screen, ExactDotIsTheFloat64DotRounded) {
  at::manual_seed(117);
  for (int64_t d : {1, 7, 16, 17, 64, 256, 300}) {
    const at::Tensor x = at::randn({50, d}, at::kDouble).to(at::kFloat), y = at::randn({50, d}, at::kDouble).to(at::kFloat);
    const at::Tensor want = (x.to(at::kDouble) * y.to(at::kDouble)).sum(1);
    for (int64_t i = 0; i < 50; ++i) {
      const float got = core::exact_dot(x[i].data_ptr<float>(), y[i].data_ptr<float>(), d);
      const double w = want[i].item<double>();
      EXPECT_LE(std::abs(got - w), std::abs(w) * 0x1p-24 + 1e-12 * d) << "d " << d << " row " << i;
      if (core::cpu_has_avx512f()) {
        const float wide = core::exact_dot_avx512(x[i].data_ptr<float>(), y[i].data_ptr<float>(), d);
        EXPECT_EQ(std::memcmp(&wide, &got, sizeof(float)), 0) << "d " << d << " row " << i;
      }
    }
  }
}

// dot_f64: within float64 rounding of torch's float64 dot (γ_d Σ|x_k y_k|), below, at and past 16 lanes.
TEST(Screen, DotF64IsTorchsFloat64Dot) {
  at::manual_seed(121);
  for (int64_t d : {1, 15, 16, 33, 256, 300}) {
    const at::Tensor x = at::randn({20, d}, at::kDouble), y = at::randn({20, d}, at::kDouble);
    const at::Tensor want = (x * y).sum(1), scale = (x * y).abs().sum(1);
    for (int64_t i = 0; i < 20; ++i) {
      const double got = core::dot_f64(x[i].data_ptr<double>(), y[i].data_ptr<double>(), d);
      EXPECT_LE(std::abs(got - want[i].item<double>()), 2 * d * 0x1p-53 * scale[i].item<double>()) << "d " << d << " row " << i;
    }
  }
}

// bfloat16_rounding_norms: the largest norms of ATen's bfloat16 rounding of each row and of its residual
// (float64 norms of the tensors torch converts), on rows of mixed scales, with a zero row and values
// that round to even.
TEST(Screen, RoundingNormsAreThoseOfTorchsBfloat16) {
  at::manual_seed(119);
  const int64_t rows = 23, d = 70;
  at::Tensor x = at::randn({rows, d}, at::kDouble).to(at::kFloat) * at::logspace(-3, 3, rows).to(at::kFloat).unsqueeze(1);
  x[5].zero_();
  x[7].zero_();
  x[7][3] = 1.00390625f;  // 1 + 2^-8: halfway between two bfloat16 values, rounds to even (1)
  x[7][4] = 1.01171875f;  // 1 + 3·2^-8: halfway, rounds to even (1 + 2^-6)
  const at::Tensor x16 = x.to(at::kBFloat16).to(at::kDouble);
  const double rounded = x16.norm(2, {1}).max().item<double>();
  const double residual = (x.to(at::kDouble) - x16).norm(2, {1}).max().item<double>();
  const core::RoundingNorms n = core::bfloat16_rounding_norms(x.data_ptr<float>(), rows, d);
  EXPECT_NEAR(n.rounded, rounded, rounded * 1e-14);
  EXPECT_NEAR(n.residual, residual, residual * 1e-14);
  const core::RoundingNorms row7 = core::bfloat16_rounding_norms(x[7].data_ptr<float>(), 1, d);
  const double want7 = (x[7].to(at::kDouble) - x[7].to(at::kBFloat16).to(at::kDouble)).norm().item<double>();
  EXPECT_NEAR(row7.residual, want7, want7 * 1e-14);
  EXPECT_EQ(row7.rounded, std::sqrt(1 + (1 + 0x1p-6) * (1 + 0x1p-6))) << "ties must round to even";
}

// ScreenedScan's lists equal those of offering every entry's exact_dot one by one, from a real bfloat16
// GEMM and from an adversarial screen (each exact value moved by up to a quarter of eps, then rounded to
// bfloat16), with ties across rows and columns and a zero row; tiles narrower and wider than 8. A scan
// told eps = 0 must lose some entry of the adversarial screen (so the test can fail).
TEST(Screen, ScreenedListsEqualExactOffers) {
  const int64_t na = 37, nb = 1031, d = 40;
  at::manual_seed(118);
  at::Tensor a = at::randn({na, d}, at::kDouble).to(at::kFloat), b = at::randn({nb, d}, at::kDouble).to(at::kFloat);
  b.narrow(0, 600, 9).copy_(b[100].unsqueeze(0).expand({9, d}));  // tied columns
  a[20].copy_(a[4]);                                               // tied rows
  a[9].zero_();
  const at::Tensor au = core::unit_rows(a, nullptr), bu = core::unit_rows(b, nullptr);
  const float eps = core::screening_error_bound(d, core::bfloat16_rounding_norms(au.data_ptr<float>(), na, d),
                                                core::bfloat16_rounding_norms(bu.data_ptr<float>(), nb, d));
  ASSERT_LT(eps, 0.0127f) << "measured residuals must tighten the worst case (2^-7 for the operands)";
  const at::Tensor exact = at::empty({na, nb}, at::kFloat);
  for (int64_t i = 0; i < na; ++i)
    for (int64_t j = 0; j < nb; ++j) exact[i][j] = core::exact_dot(au[i].data_ptr<float>(), bu[j].data_ptr<float>(), d);
  const at::Tensor gemm = at::mm(au.to(at::kBFloat16), bu.to(at::kBFloat16).t());
  const at::Tensor nudged = (exact + (at::rand({na, nb}, at::kDouble).to(at::kFloat) - 0.5f) * (eps / 2)).to(at::kBFloat16);
  const float max_error =
      std::max((gemm.to(at::kFloat) - exact).abs().max().item<float>(), (nudged.to(at::kFloat) - exact).abs().max().item<float>());
  ASSERT_LE(max_error, eps) << "the screens must be within eps";
  const float* v = exact.data_ptr<float>();
  for (int64_t k : {1, 16, 40}) {
    core::TopKLists rows_ref(na, k), cols_ref(nb, k);
    for (int64_t r = 0; r < na; ++r)
      for (int64_t c = 0; c < nb; ++c) rows_ref.offer(r, v[r * nb + c], c), cols_ref.offer(c, v[r * nb + c], r);
    for (const at::Tensor* screen : {&gemm, &nudged})
      for (int64_t tile_rows : {int64_t{5}, na})
        for (int64_t tile_cols : {int64_t{13}, int64_t{256}, nb}) {
          SCOPED_TRACE("K " + std::to_string(k) + (screen == &gemm ? " gemm" : " nudged") + " tiles " +
                       std::to_string(tile_rows) + "x" + std::to_string(tile_cols));
          auto lists = [&](float e, int64_t* recomputed, size_t limit = core::ScreenedScan::kBufferLimit) {
            core::ScreenedScan scan(au.data_ptr<float>(), bu.data_ptr<float>(), d, 0, na, nb, k, e, limit);
            for (int64_t r0 = 0; r0 < na; r0 += tile_rows)
              for (int64_t c0 = 0; c0 < nb; c0 += tile_cols) {
                const int64_t tr = std::min(tile_rows, na - r0), tc = std::min(tile_cols, nb - c0);
                const at::Tensor block = screen->narrow(0, r0, tr).narrow(1, c0, tc).contiguous();
                scan.offer(static_cast<const uint16_t*>(block.data_ptr()), tr, tc, r0, c0);
              }
            std::pair<core::TopKLists, core::TopKLists> out{core::TopKLists(na, k), core::TopKLists(nb, k)};
            const std::vector<float> kth = scan.column_kths();
            *recomputed = scan.finish(kth.data(), out.first, out.second);
            return out;
          };
          int64_t recomputed = 0, loose_recomputed = 0;
          const auto [rows, cols] = lists(eps, &recomputed);
          EXPECT_EQ(rows.all_values(), rows_ref.all_values());
          EXPECT_EQ(rows.all_indices(), rows_ref.all_indices());
          EXPECT_EQ(cols.all_values(), cols_ref.all_values());
          EXPECT_EQ(cols.all_indices(), cols_ref.all_indices());
          if (k == 1) {
            EXPECT_LT(recomputed, na * nb / 4) << "the screen must skip most entries";
          }
          // A buffer flushed every block (with the bounds so far): the same lists.
          const auto [flushed_rows, flushed_cols] = lists(eps, &loose_recomputed, 1);
          EXPECT_EQ(flushed_rows.all_values(), rows_ref.all_values());
          EXPECT_EQ(flushed_rows.all_indices(), rows_ref.all_indices());
          EXPECT_EQ(flushed_cols.all_values(), cols_ref.all_values());
          EXPECT_EQ(flushed_cols.all_indices(), cols_ref.all_indices());
          EXPECT_GE(loose_recomputed, recomputed) << "running bounds are looser than the final ones";
          if (screen == &nudged && k < na) {  // (with K >= na the columns' lists never fill: all recomputed)
            const auto [loose_rows, loose_cols] = lists(0.0f, &loose_recomputed);
            EXPECT_TRUE(loose_rows.all_indices() != rows_ref.all_indices() || loose_cols.all_indices() != cols_ref.all_indices())
                << "with eps 0 the nudged screen must lose some entry";
          }
        }
  }
}

TEST(TopK, BlockScanMatchesBruteForceWithLowestIndexTies) {
  const int64_t na = 23, nb = 17, d = 5;
  at::manual_seed(115);  // the same inputs whichever tests ran before (a failure reproduces alone)
  at::Tensor a = at::randn({na, d}, at::kDouble).to(at::kFloat);
  at::Tensor b = at::randn({nb, d}, at::kDouble).to(at::kFloat);
  b[9].copy_(b[2]);  // duplicate columns: the lower index must come first
  a[5].copy_(at::mul(b[2], 3.0));
  a[11].zero_();     // a zero row has cosine 0 with everything
  int64_t zero_a = -1, zero_b = -1;
  const at::Tensor au = core::unit_rows(a, &zero_a), bu = core::unit_rows(b, &zero_b);
  EXPECT_EQ(zero_a, 1);
  EXPECT_EQ(zero_b, 0);
  const at::Tensor s = at::mm(au.to(at::kDouble), bu.to(at::kDouble).t());
  for (int64_t k : {1, 3, 20}) {
    for (int64_t tile_rows : {1, 4, 23}) {
      for (int64_t tile_cols : {1, 5, 17}) {
        core::TopKLists rows(na, k), cols(nb, k);
        for (int64_t r0 = 0; r0 < na; r0 += tile_rows)
          for (int64_t c0 = 0; c0 < nb; c0 += tile_cols) {
            const int64_t tr = std::min(tile_rows, na - r0), tc = std::min(tile_cols, nb - c0);
            const at::Tensor block = at::mm(au.narrow(0, r0, tr), bu.narrow(0, c0, tc).t()).contiguous();
            core::offer_block(block.data_ptr<float>(), tr, tc, r0, r0, c0, rows, cols);
          }
        for (int64_t i = 0; i < na; ++i) {
          const at::Tensor sorted = std::get<0>(s[i].sort(0, /*descending=*/true));
          for (int64_t c = 0; c < std::min(k, nb); ++c) {
            EXPECT_NEAR(rows.values(i)[c], sorted[c].item<double>(), 1e-6);
            EXPECT_NEAR(s[i][rows.indices(i)[c]].item<double>(), sorted[c].item<double>(), 1e-6);
          }
          if (k > nb) {
            EXPECT_EQ(rows.kth(i), -std::numeric_limits<float>::infinity());
          }
        }
        for (int64_t j = 0; j < nb; ++j) {
          const at::Tensor sorted = std::get<0>(s.select(1, j).sort(0, true));
          for (int64_t c = 0; c < std::min(k, na); ++c) EXPECT_NEAR(cols.values(j)[c], sorted[c].item<double>(), 1e-6);
        }
        EXPECT_EQ(rows.indices(5)[0], 2) << "tie between B rows 2 and 9 must list 2 first";
        if (k > 1) {
          EXPECT_EQ(rows.indices(5)[1], 9);
        }
        EXPECT_EQ(rows.values(11)[0], 0.0f);
        EXPECT_EQ(rows.indices(11)[0], 0);
      }
    }
  }
}
