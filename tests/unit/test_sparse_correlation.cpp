// Sparse exact correlation: the co-firing accumulation plus the walk for pairs that never fire
// together equals the dense definition (METHODS.md §5) computed naively, including dead latents,
// constant latents, negative codes (μ < 0) and ties; top examples and the four mappings.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "compare/concepts.hpp"
#include "core/sparse_correlation.hpp"

using namespace universae::core;

namespace {

// T × n dense codes: latent i fires with probability p_i; a few dead, one constant, some negative.
std::vector<double> random_codes(int64_t t_count, int64_t n, uint32_t seed, bool negative, bool dead, double p_max) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<double> z(static_cast<size_t>(t_count * n), 0.0);
  for (int64_t i = 0; i < n; ++i) {
    const double p = dead && i % 7 == 0 ? 0.0 : 0.002 + p_max * u(gen);  // every 7th latent is dead
    for (int64_t t = 0; t < t_count; ++t) {
      double v = u(gen) < p ? 0.1 + u(gen) : 0.0;
      if (negative && i % 5 == 1 && v != 0) v = -v;
      if (dead && i == 3) v = 0.75;  // fires on every token with one value: σ = 0
      if (!dead && t == (17 * i + 5 * static_cast<int64_t>(seed)) % t_count) v = 0.5;  // fires at least once
      z[static_cast<size_t>(t * n + i)] = v;
    }
  }
  return z;
}

SparseCodes sparse(const std::vector<double>& z, int64_t t_count, int64_t n) {
  SparseCodes c;
  c.n_tokens = t_count;
  c.n_latents = n;
  for (int64_t t = 0; t < t_count; ++t) {
    for (int64_t i = 0; i < n; ++i) {
      const double v = z[static_cast<size_t>(t * n + i)];
      if (v != 0) c.rows.latents.push_back(static_cast<int32_t>(i)), c.rows.values.push_back(static_cast<float>(v));
    }
    c.rows.offsets.push_back(static_cast<int64_t>(c.rows.latents.size()));
  }
  return c;
}

// The naive dense definition on the float32 values.
std::vector<double> naive_corr(const std::vector<double>& a, const std::vector<double>& b, int64_t t_count, int64_t n_a,
                               int64_t n_b) {
  auto f = [](double v) { return static_cast<double>(static_cast<float>(v)); };
  std::vector<double> mean_a(n_a, 0), mean_b(n_b, 0), sd_a(n_a, 0), sd_b(n_b, 0);
  for (int64_t t = 0; t < t_count; ++t) {
    for (int64_t i = 0; i < n_a; ++i) mean_a[i] += f(a[t * n_a + i]) / t_count;
    for (int64_t j = 0; j < n_b; ++j) mean_b[j] += f(b[t * n_b + j]) / t_count;
  }
  for (int64_t t = 0; t < t_count; ++t) {
    for (int64_t i = 0; i < n_a; ++i) sd_a[i] += std::pow(f(a[t * n_a + i]) - mean_a[i], 2) / t_count;
    for (int64_t j = 0; j < n_b; ++j) sd_b[j] += std::pow(f(b[t * n_b + j]) - mean_b[j], 2) / t_count;
  }
  std::vector<double> c(static_cast<size_t>(n_a * n_b), 0.0);
  for (int64_t i = 0; i < n_a; ++i)
    for (int64_t j = 0; j < n_b; ++j) {
      if (sd_a[i] < 1e-12 || sd_b[j] < 1e-12) continue;
      double cov = 0;
      for (int64_t t = 0; t < t_count; ++t) cov += (f(a[t * n_a + i]) - mean_a[i]) * (f(b[t * n_b + j]) - mean_b[j]);
      c[i * n_b + j] = cov / t_count / std::sqrt(sd_a[i] * sd_b[j]);
    }
  return c;
}

// dead: A and B have dead and constant latents (their correlations are 0, so a row's max is >= 0);
// otherwise both are rare, so many rows of A co-fire with no B latent and their max is the best
// never-co-firing pair, found by the walk over μ_j / σ_j.
void check(bool negative, bool dead) {
  const int64_t t_count = 400, n_a = 37, n_b = 29;
  const double p_max = dead ? 0.3 : 0.01;
  const auto za = random_codes(t_count, n_a, 1, negative, dead, p_max), zb = random_codes(t_count, n_b, 2, negative, dead, p_max);
  const SparseCodes a = sparse(za, t_count, n_a), b = sparse(zb, t_count, n_b);
  const auto ma = moments(a), mb = moments(b);
  if (dead) {
    EXPECT_EQ(ma.sd[3], 0.0);  // the constant latent
    EXPECT_EQ(ma.sd[0], 0.0);  // a dead one
  }
  std::vector<double> max(n_a);
  std::vector<int64_t> arg(n_a);
  // Two row blocks, as two ranks would compute them.
  correlation_row_maxima(latent_columns(a), ma, b, mb, {0, 20}, max.data(), arg.data());
  correlation_row_maxima(latent_columns(a), ma, b, mb, {20, n_a}, max.data() + 20, arg.data() + 20);
  const auto c = naive_corr(za, zb, t_count, n_a, n_b);
  int64_t never_cofired = 0;  // rows whose best pair never fires together
  for (int64_t i = 0; i < n_a; ++i) {
    double best = -1e300, second = -1e300;
    int64_t best_j = -1;
    for (int64_t j = 0; j < n_b; ++j) {
      const double v = c[i * n_b + j];
      if (v > best) second = best, best = v, best_j = j;
      else if (v > second) second = v;
    }
    EXPECT_NEAR(max[i], best, 1e-9) << "row " << i;
    if (best - second > 1e-9) {
      EXPECT_EQ(arg[i], best_j) << "row " << i;
    }
    if (ma.sd[static_cast<size_t>(i)] == 0.0) {  // a constant latent: every correlation is 0, the lowest index wins
      EXPECT_EQ(arg[i], 0);
    }
    bool cofire = false;
    for (int64_t t = 0; t < t_count; ++t) cofire = cofire || (za[t * n_a + i] != 0 && zb[t * n_b + arg[i]] != 0);
    never_cofired += !cofire && ma.sd[static_cast<size_t>(i)] > 0;
  }
  if (!dead) {
    EXPECT_GT(never_cofired, 3);  // the walk was exercised
  }
  // The ATen twin (run.kernels = "generic"), here on the CPU, in blocks as two ranks: the same maxima
  // within rounding of the float64 sums, and the same argmax.
  std::vector<double> gmax(n_a);
  std::vector<int64_t> garg(n_a);
  correlation_row_maxima_generic(latent_columns(a), ma, b, mb, {0, 20}, gmax.data(), garg.data(), at::kCPU);
  correlation_row_maxima_generic(latent_columns(a), ma, b, mb, {20, n_a}, gmax.data() + 20, garg.data() + 20, at::kCPU);
  for (int64_t i = 0; i < n_a; ++i) {
    EXPECT_NEAR(gmax[i], max[i], 1e-12) << "generic, row " << i;
    EXPECT_EQ(garg[i], arg[i]) << "generic, row " << i;
  }
}

}  // namespace

TEST(SparseCorrelation, EqualsTheDenseDefinition) { check(false, true); }
TEST(SparseCorrelation, EqualsTheDenseDefinitionWithNegativeCodes) { check(true, true); }
TEST(SparseCorrelation, RareLatentsTakeTheBestNeverCofiringPair) { check(false, false); }
TEST(SparseCorrelation, RareNegativeLatentsTakeTheBestNeverCofiringPair) { check(true, false); }

// Exact ties: B's latent 11 is a copy of latent 4, so every row that prefers one prefers both, and both
// implementations must name the lower (4), whether the pair co-fires or not.
TEST(SparseCorrelation, GenericTwinBreaksTiesAsTheCpuKernel) {
  const int64_t t_count = 300, n_a = 23, n_b = 17;
  for (const bool rare : {false, true}) {
    const auto za = random_codes(t_count, n_a, 3, false, false, rare ? 0.01 : 0.3);
    auto zb = random_codes(t_count, n_b, 4, false, false, rare ? 0.01 : 0.3);
    if (rare) {  // latent 4 fires once (the smallest μ/σ of all, 1/√(T−1)); 0..3 often, so 4 leads the walk
      for (int64_t t = 0; t < t_count; ++t) {
        for (int64_t j = 0; j < 4; ++j) zb[static_cast<size_t>(t * n_b + j)] = t % 3 == 0 ? 0.5 : 0.0;
        zb[static_cast<size_t>(t * n_b + 4)] = t == 7 ? 0.9 : 0.0;
      }
    }
    for (int64_t t = 0; t < t_count; ++t) zb[static_cast<size_t>(t * n_b + 11)] = zb[static_cast<size_t>(t * n_b + 4)];
    const SparseCodes a = sparse(za, t_count, n_a), b = sparse(zb, t_count, n_b);
    const auto ma = moments(a), mb = moments(b);
    std::vector<double> max(n_a), gmax(n_a);
    std::vector<int64_t> arg(n_a), garg(n_a);
    correlation_row_maxima(latent_columns(a), ma, b, mb, {0, n_a}, max.data(), arg.data());
    correlation_row_maxima_generic(latent_columns(a), ma, b, mb, {0, n_a}, gmax.data(), garg.data(), at::kCPU);
    int64_t chose_the_pair = 0;
    for (int64_t i = 0; i < n_a; ++i) {
      EXPECT_NE(arg[i], 11) << "row " << i;
      EXPECT_EQ(garg[i], arg[i]) << "row " << i << (rare ? " (rare)" : "");
      EXPECT_NEAR(gmax[i], max[i], 1e-12) << "row " << i;
      chose_the_pair += arg[i] == 4;
    }
    EXPECT_GT(chose_the_pair, 0) << "the tie must be exercised" << (rare ? " (rare)" : "");
  }
}

TEST(SparseCorrelation, TopExamplesKeepTheLargestEarliestFirst) {
  // Latent 0 takes values 1, 3, 3, 2, 3, 5, 0.5 at tokens 0..6: top-3 = 5@5, 3@1, 3@2.
  const std::vector<double> v = {1, 3, 3, 2, 3, 5, 0.5};
  SparseCodes c;
  c.n_tokens = static_cast<int64_t>(v.size());
  c.n_latents = 2;
  for (double x : v) {
    c.rows.latents.push_back(0), c.rows.values.push_back(static_cast<float>(x));
    c.rows.offsets.push_back(static_cast<int64_t>(c.rows.latents.size()));
  }
  const TopExamples top = top_examples(c, 3);
  EXPECT_EQ((std::vector<int64_t>(top.positions.begin(), top.positions.begin() + 3)), (std::vector<int64_t>{5, 1, 2}));
  EXPECT_EQ((std::vector<int64_t>(top.positions.begin() + 3, top.positions.end())), (std::vector<int64_t>{-1, -1, -1}));
}

TEST(SparseCorrelation, MappingsFollowTheirDefinitions) {
  // B latents 0,1,2 choose A latents 4,4,1 with correlations 0.5, 0.9, 0.3; A 4 chooses B 1, A 1 chooses B 0.
  const std::vector<double> max_ba = {0.5, 0.9, 0.3}, max_ab = {0, 0.2, 0, 0, 0.9};
  const std::vector<int64_t> arg_ba = {4, 4, 1}, arg_ab = {0, 0, 0, 0, 1};
  const Mapping many = many_to_one(max_ba, arg_ba);
  EXPECT_EQ(many.a, (std::vector<int64_t>{4, 4, 1}));
  const Mapping best = one_to_one(many, false), first = one_to_one(many, true);
  EXPECT_EQ(best.a, (std::vector<int64_t>{1, 4}));
  EXPECT_EQ(best.b, (std::vector<int64_t>{2, 1}));
  EXPECT_EQ(first.b, (std::vector<int64_t>{2, 0}));
  const Mapping m = mutual(max_ab, arg_ab, arg_ba);
  EXPECT_EQ(m.a, (std::vector<int64_t>{4}));
  EXPECT_EQ(m.b, (std::vector<int64_t>{1}));
}

// The non-concept filter refuses control tokens by id (llama2.c's BOS piece is "\n<s>\n", which no
// string list matches), punctuation by string, and pairs that share no top token.
TEST(NonConceptFilter, ControlTokensByIdPunctuationByString) {
  using universae::compare::filter_non_concept;
  Mapping m;
  m.a = {0, 1, 2, 3};
  m.b = {0, 1, 2, 3};
  m.corr = {0.9, 0.9, 0.9, 0.9};
  const std::vector<std::vector<int64_t>> ids_a = {{1, 1}, {5, 6}, {5, 7}, {8}}, ids_b = {{1}, {5}, {5, 7}, {9}};
  const std::vector<std::vector<std::string>> s_a = {{"\n<s>\n", "\n<s>\n"}, {" cat", "."}, {" cat", " dog"}, {" sun"}};
  const std::vector<std::vector<std::string>> s_b = {{"\n<s>\n"}, {" cat"}, {" cat", " dog"}, {" moon"}};
  // Pair 0 fires only on BOS (id 1): refused by id although its strings are shared and not in any list.
  EXPECT_EQ(filter_non_concept(m, ids_a, ids_b, s_a, s_b, {0, 1, 2}), (std::vector<int64_t>{2}));
  // Without the control ids the BOS pair passes: the bug the ids fix.
  EXPECT_EQ(filter_non_concept(m, ids_a, ids_b, s_a, s_b, {}), (std::vector<int64_t>{0, 2}));
  EXPECT_TRUE(universae::compare::is_control_piece("\n<s>\n"));
  EXPECT_FALSE(universae::compare::is_control_piece("<s>x"));
}
