// The synthetic benchmark's options (data/synthetic.hpp: power-law firing, a hierarchy, correlated
// firing) checked by their statistics, and the ground-truth metrics (compare/ground_truth.hpp) on
// cases small enough to solve by hand or by enumeration. tests/golden/test_synthetic_truth.py checks
// the same metrics against numpy/scipy on a trained SAE.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "compare/ground_truth.hpp"
#include "config/config.hpp"
#include "core/error.hpp"
#include "core/lap.hpp"
#include "core/rng.hpp"
#include "data/synthetic.hpp"
#include "usage_error.hpp"

using namespace universae;
using universae::test_support::usage_error;

namespace {

config::SyntheticConfig small_spec() {
  config::SyntheticConfig spec = config::Config().data.synthetic;  // the defaults of the key table
  spec.d = 16;
  spec.n_features = 64;
  spec.mean_l0 = 6;
  return spec;
}

// Which features each token fired: (tokens, m) 0/1, from the true codes.
std::vector<std::vector<char>> firing(const data::SyntheticSource& source, int64_t first, int64_t count) {
  std::vector<float> x(static_cast<size_t>(count * source.d()));
  data::TrueCodes truth;
  source.tokens(first, count, x.data(), &truth);
  std::vector<std::vector<char>> on(static_cast<size_t>(count), std::vector<char>(static_cast<size_t>(source.n_features())));
  for (int64_t t = 0; t < count; ++t)
    for (int64_t e = truth.offsets[t]; e < truth.offsets[t + 1]; ++e) on[t][truth.feature[e]] = 1;
  return on;
}

double rate(const std::vector<std::vector<char>>& on, int64_t j) {
  double fired = 0;
  for (const auto& row : on) fired += row[j];
  return fired / static_cast<double>(on.size());
}

// Five binomial standard errors (and one count, for p near 0 or 1).
double tolerance(double p, int64_t n) { return 5 * std::sqrt(p * (1 - p) / static_cast<double>(n)) + 1.0 / static_cast<double>(n); }

// The Pearson correlation of two features' firing indicators.
double firing_correlation(const std::vector<std::vector<char>>& on, int64_t j, int64_t k) {
  const double pj = rate(on, j), pk = rate(on, k);
  double both = 0;
  for (const auto& row : on) both += row[j] && row[k];
  both /= static_cast<double>(on.size());
  return (both - pj * pk) / std::sqrt(pj * (1 - pj) * pk * (1 - pk));
}

}  // namespace

TEST(GroundTruthSynthetic, DefaultsAreTheGeneratorBeforeTheOptions) {
  // The generator as it was before the options, inline: every default token must be bit-identical.
  const config::SyntheticConfig spec = small_spec();
  const data::SyntheticSource source(spec);
  const int64_t d = spec.d, m = spec.n_features, count = 50, first = data::kHeldOutTokenOffset + 7;
  std::vector<float> now(static_cast<size_t>(count * d)), before(now.size());
  source.tokens(first, count, now.data());
  std::vector<double> x(static_cast<size_t>(d));
  for (int64_t t = 0; t < count; ++t) {
    core::CounterRng rng(static_cast<uint64_t>(spec.seed), core::kStreamTokens, static_cast<uint64_t>(first + t));
    std::fill(x.begin(), x.end(), 0.0);
    for (int64_t j = 0; j < m; ++j) {
      if (rng.uniform() >= source.probabilities()[j]) continue;
      const double a = std::fabs(1.0 + spec.magnitude_std * rng.normal());
      for (int64_t i = 0; i < d; ++i) x[i] += a * source.dictionary()[j * d + i];
    }
    for (int64_t i = 0; i < d; ++i) before[t * d + i] = static_cast<float>(x[i] + spec.noise_std * rng.normal());
  }
  EXPECT_EQ(now, before);
}

TEST(GroundTruthSynthetic, TrueCodesRebuildTheTokensAndArePureInT) {
  config::SyntheticConfig spec = small_spec();
  spec.noise_std = 0;
  spec.hierarchy_parents = 4, spec.hierarchy_children = 3;
  spec.correlation_rank = 3, spec.correlation_strength = 0.6;
  const data::SyntheticSource source(spec);
  const int64_t d = spec.d, count = 40;
  std::vector<float> whole(static_cast<size_t>(count * d)), pieces(whole.size());
  data::TrueCodes truth, truth_pieces;
  source.tokens(500, count, whole.data(), &truth);
  source.tokens(500, 17, pieces.data(), &truth_pieces);  // as two ranks of an uneven split would
  source.tokens(517, count - 17, pieces.data() + 17 * d, &truth_pieces);
  EXPECT_EQ(whole, pieces);
  EXPECT_EQ(truth.feature, truth_pieces.feature);
  EXPECT_EQ(truth.offsets, truth_pieces.offsets);
  ASSERT_EQ(truth.tokens(), count);
  for (int64_t t = 0; t < count; ++t)
    for (int64_t i = 0; i < d; ++i) {
      double x = 0;
      for (int64_t e = truth.offsets[t]; e < truth.offsets[t + 1]; ++e)
        x += static_cast<double>(truth.magnitude[e]) * source.dictionary()[truth.feature[e] * d + i];
      EXPECT_NEAR(whole[t * d + i], x, 1e-5);
    }
}

TEST(GroundTruthSynthetic, FiringRatesMatchTheProbabilitiesWithAndWithoutCorrelation) {
  for (const int64_t rank : {0, 4}) {
    config::SyntheticConfig spec = small_spec();
    spec.power_law = 1.0;  // Zipf
    spec.correlation_rank = rank;
    spec.correlation_strength = 0.7;
    const data::SyntheticSource source(spec);
    const int64_t n = 20000;
    const auto on = firing(source, 0, n);
    for (int64_t j = 0; j < spec.n_features; ++j) {
      const double p = source.probabilities()[j];
      EXPECT_NEAR(rate(on, j), p, tolerance(p, n)) << "feature " << j << ", correlation_rank " << rank;
    }
  }
}

// P(child c fires) = p_parent · p_c · E[1 / (1 + K)], K the number of its siblings whose own draw
// fired (independent), since one of the 1 + K is kept uniformly.
double expected_child_rate(const data::SyntheticSource& source, int64_t parent, int64_t child, int64_t parents,
                           int64_t children) {
  std::vector<double> k_dist = {1.0};  // P(K = k) over the siblings so far (Poisson binomial)
  for (int64_t s = parents + parent * children; s < parents + (parent + 1) * children; ++s) {
    if (s == child) continue;
    const double p = source.probabilities()[s];
    std::vector<double> next(k_dist.size() + 1, 0.0);
    for (size_t k = 0; k < k_dist.size(); ++k) next[k] += (1 - p) * k_dist[k], next[k + 1] += p * k_dist[k];
    k_dist = next;
  }
  double kept = 0;
  for (size_t k = 0; k < k_dist.size(); ++k) kept += k_dist[k] / static_cast<double>(k + 1);
  return source.probabilities()[parent] * source.probabilities()[child] * kept;
}

TEST(GroundTruthSynthetic, ChildrenFireOnlyWithTheirParentAndOneAtATime) {
  config::SyntheticConfig spec = small_spec();
  spec.mean_l0 = 12;
  spec.hierarchy_parents = 5, spec.hierarchy_children = 4;
  const data::SyntheticSource source(spec);
  const int64_t n = 20000, P = spec.hierarchy_parents, C = spec.hierarchy_children;
  const auto on = firing(source, 0, n);
  int64_t with_parent = 0;
  for (const auto& row : on)
    for (int64_t q = 0; q < P; ++q) {
      int64_t siblings = 0;
      for (int64_t c = P + q * C; c < P + (q + 1) * C; ++c) {
        ASSERT_EQ(source.parent_of(c), q);
        ASSERT_TRUE(!row[c] || row[q]) << "child " << c << " fired without parent " << q;
        siblings += row[c];
      }
      ASSERT_LE(siblings, 1) << "two children of parent " << q;
      with_parent += siblings;
    }
  EXPECT_GT(with_parent, n / 4);  // the hierarchy is exercised, not vacuous
  for (int64_t j = 0; j < spec.n_features; ++j) {
    const int64_t parent = source.parent_of(j);
    const double p = parent < 0 ? source.probabilities()[j] : expected_child_rate(source, parent, j, P, C);
    EXPECT_NEAR(rate(on, j), p, tolerance(p, n)) << "feature " << j;
  }
}

TEST(GroundTruthSynthetic, CorrelatedFiringFollowsTheLoadingsAndIsAbsentWithout) {
  const int64_t n = 20000, r = 2, top = 12;
  for (const int64_t rank : {int64_t{0}, r}) {
    config::SyntheticConfig spec = small_spec();
    spec.mean_l0 = 10;  // p_0 ≈ 0.7: every top feature fires sometimes and not always
    spec.correlation_rank = rank;
    spec.correlation_strength = 0.8;
    const data::SyntheticSource source(spec);
    const auto on = firing(source, 0, n);
    int64_t strong = 0;
    for (int64_t j = 0; j < top; ++j)
      for (int64_t k = j + 1; k < top; ++k) {
        const double c = firing_correlation(on, j, k);
        if (rank == 0) {
          EXPECT_LT(std::fabs(c), 5 / std::sqrt(static_cast<double>(n))) << j << ", " << k;
          continue;
        }
        const float* L = source.loadings().data();
        const double latent = spec.correlation_strength * (L[j * r] * L[k * r] + L[j * r + 1] * L[k * r + 1]);
        if (std::fabs(latent) < 0.4) continue;
        ++strong;  // a strongly correlated latent pair fires together (or apart) visibly
        EXPECT_GT(c * (latent > 0 ? 1 : -1), 0.1) << j << ", " << k << ": latent correlation " << latent;
      }
    if (rank > 0) {
      EXPECT_GT(strong, 10);
    }
  }
}

TEST(GroundTruthSynthetic, BadKeysAreUsageErrorsNamingTheKey) {
  auto message = [](std::vector<std::string> sets) { return usage_error([&] { config::load("", sets); }); };
  EXPECT_NE(message({"data.synthetic.hierarchy_parents=4"}).find("data.synthetic.hierarchy_children"), std::string::npos);
  EXPECT_NE(message({"data.synthetic.hierarchy_children=2"}).find("data.synthetic.hierarchy_children"), std::string::npos);
  EXPECT_NE(message({"data.synthetic.hierarchy_parents=100", "data.synthetic.hierarchy_children=10"}).find("n_features"),
            std::string::npos);
  EXPECT_NE(message({"data.synthetic.hierarchy_parents=-1"}).find("data.synthetic.hierarchy_parents"), std::string::npos);
  EXPECT_NE(message({"data.synthetic.correlation_rank=-1"}).find("data.synthetic.correlation_rank"), std::string::npos);
  EXPECT_NE(message({"data.synthetic.correlation_strength=1.5"}).find("data.synthetic.correlation_strength"), std::string::npos);
  const config::Config ok = config::load("", {"data.synthetic.hierarchy_parents=64", "data.synthetic.hierarchy_children=7"});
  EXPECT_EQ(ok.data.synthetic.hierarchy_children, 7);  // 64 × (1 + 7) = 512 features: exactly enough
}

namespace {

// max over one-to-one matchings of Σ |cos|, by enumerating the smaller side's choices (tiny sizes).
double brute_force_mcc(const at::Tensor& g, const at::Tensor& w) {
  const at::Tensor s = at::mm(g / g.norm(2, 1, true), (w / w.norm(2, 1, true)).t()).abs();  // (m, n)
  const at::Tensor a = s.size(0) <= s.size(1) ? s : s.t();  // rows: the smaller side
  std::vector<int64_t> cols(static_cast<size_t>(a.size(1)));
  std::iota(cols.begin(), cols.end(), 0);
  double best = 0;
  do {
    double total = 0;
    for (int64_t i = 0; i < a.size(0); ++i) total += a[i][cols[i]].item<double>();
    best = std::max(best, total);
  } while (std::next_permutation(cols.begin(), cols.end()));
  return best / static_cast<double>(a.size(0));
}

}  // namespace

TEST(GroundTruthMetrics, MccIsTheBestOneToOneMatchingOnAbsoluteCosine) {
  at::manual_seed(24);
  for (const auto& [m, n] : std::vector<std::pair<int64_t, int64_t>>{{5, 5}, {4, 7}, {7, 4}, {6, 3}}) {
    const at::Tensor g = at::randn({m, 3}, at::kDouble), w = at::randn({n, 3}, at::kDouble);
    const compare::DecoderMatch r = compare::match_to_truth(g, w);
    EXPECT_NEAR(r.mcc, brute_force_mcc(g, w), 1e-12) << m << " features, " << n << " latents";
    const int64_t matched = std::count_if(r.hungarian.begin(), r.hungarian.end(), [](int64_t f) { return f >= 0; });
    EXPECT_EQ(matched, std::min(m, n));
  }
}

TEST(GroundTruthMetrics, CertificateAddsWhatTheCandidatesMiss) {
  // 40 latents that all point almost the same way: their 16 candidate features coincide, so the
  // candidates cannot match them all; the result must equal the assignment over every pair.
  at::manual_seed(7);
  const at::Tensor g = at::randn({60, 8}, at::kDouble);
  const at::Tensor w = at::randn({1, 8}, at::kDouble).expand({40, 8}) + 0.05 * at::randn({40, 8}, at::kDouble);
  const compare::DecoderMatch r = compare::match_to_truth(g, w);
  const at::Tensor s = at::mm(w / w.norm(2, 1, true), (g / g.norm(2, 1, true)).t()).abs();
  std::vector<int64_t> rows, cols;
  std::vector<double> costs;
  for (int64_t i = 0; i < 40; ++i)
    for (int64_t j = 0; j < 60; ++j) rows.push_back(i), cols.push_back(j), costs.push_back(1 - s[i][j].item<double>());
  const core::LapSolution dense = core::solve_sparse_lap(core::make_sparse_costs(40, 60, rows, cols, costs));
  double total = 0;
  for (int64_t i = 0; i < 40; ++i) total += s[i][dense.col_of_row[i]].item<double>();
  EXPECT_NEAR(r.mcc, total / 40, 1e-12);
  std::vector<int64_t> sorted = r.hungarian;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(std::unique(sorted.begin(), sorted.end()), sorted.end());  // one-to-one
}

TEST(GroundTruthMetrics, UniquenessCountsDistinctBestMatches) {
  // Features e0, e1, e2; latents: e0, −e0 (|cos| 1: the same feature), e1 + 0.1 e2, a zero row (cosine 0
  // with everything: feature 0). Best matches 0, 0, 1, 0: two distinct features over four latents.
  const at::Tensor g = at::eye(3, at::kDouble);
  const at::Tensor w = at::tensor({1.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0, 0.1, 0.0, 0.0, 0.0}, at::kDouble).view({4, 3});
  const compare::DecoderMatch r = compare::match_to_truth(g, w);
  EXPECT_EQ(r.best_match, (std::vector<int64_t>{0, 0, 1, 0}));
  EXPECT_DOUBLE_EQ(r.uniqueness, 0.5);
  EXPECT_NEAR(r.mcc, (1.0 + 1.0 / std::sqrt(1.01) + 0.0) / 3, 1e-12);  // three features matched
}

TEST(GroundTruthMetrics, DetectionCountsAndScoresByHand) {
  // Two latents matched to features 1 and 0; four tokens.
  data::TrueCodes truth;
  for (const std::vector<int64_t>& active : {std::vector<int64_t>{0, 1}, {1}, {}, {0}}) {
    truth.feature.insert(truth.feature.end(), active.begin(), active.end());
    truth.magnitude.resize(truth.feature.size(), 1.0f);
    truth.offsets.push_back(static_cast<int64_t>(truth.feature.size()));
  }
  // Latent 0 fires on tokens 0, 2 (feature 1 active on 0, 1): TP 1, FP 1, FN 1.
  // Latent 1 fires on tokens 0, 3 (feature 0 active on 0, 3): TP 2.
  const at::Tensor z = at::tensor({0.5f, 1.0f, 0.0f, 0.0f, 2.0f, 0.0f, 0.0f, 0.3f}).view({4, 2});
  compare::DetectionCounts counts(2);
  counts.add(z, truth, {1, 0}, 2);
  EXPECT_EQ(counts.true_pos, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(counts.fired, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(counts.active, (std::vector<int64_t>{2, 2}));
  const compare::Detection d = compare::detection_scores(counts);
  EXPECT_DOUBLE_EQ(d.precision, 0.75);
  EXPECT_DOUBLE_EQ(d.recall, 0.75);
  EXPECT_DOUBLE_EQ(d.f1, 0.75);
  compare::DetectionCounts dead(1);  // never fires: precision, recall and F1 are 0, not NaN
  dead.add(at::zeros({4, 1}), truth, {0}, 2);
  EXPECT_EQ(compare::detection_scores(dead).f1, 0.0);
}
