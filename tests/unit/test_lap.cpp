// Sparse assignment solver against brute force over all assignments, with its dual certificate.
#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <numeric>

#include "core/lap.hpp"
#include "core/rng.hpp"

using namespace universae::core;

namespace {

// Minimum over injective maps rows -> cols using allowed edges (inf cost = absent), by brute force.
double brute_force(const std::vector<std::vector<double>>& c, int64_t n, int64_t m) {
  std::vector<int64_t> cols(static_cast<size_t>(m));
  std::iota(cols.begin(), cols.end(), 0);
  double best = std::numeric_limits<double>::infinity();
  do {
    double total = 0;
    for (int64_t i = 0; i < n; ++i) total += c[i][cols[i]];
    best = std::min(best, total);
  } while (std::next_permutation(cols.begin(), cols.end()));
  return best;
}

}  // namespace

TEST(Lap, MatchesBruteForceAndCertifiesOnRandomSparseProblems) {
  CounterRng rng(5, kStreamTesting, 0);
  const double inf = std::numeric_limits<double>::infinity();
  int solved = 0;
  for (int trial = 0; trial < 300; ++trial) {
    const int64_t n = 1 + static_cast<int64_t>(rng.uniform() * 6);
    const int64_t m = n + static_cast<int64_t>(rng.uniform() * 3);  // square and rectangular
    const double density = trial % 3 == 0 ? 1.0 : 0.6;
    std::vector<std::vector<double>> dense(n, std::vector<double>(m, inf));
    std::vector<int64_t> rows, cols;
    std::vector<double> costs;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < m; ++j)
        if (rng.uniform() < density) {
          // Coarse values make exact ties common: the objective must still be optimal.
          const double c = trial % 2 ? std::floor(rng.uniform() * 4) : rng.uniform();
          dense[i][j] = c, rows.push_back(i), cols.push_back(j), costs.push_back(c);
        }
    const LapSolution s = solve_sparse_lap(make_sparse_costs(n, m, rows, cols, costs));
    const double best = brute_force(dense, n, m);
    if (best == inf) {
      EXPECT_FALSE(s.unmatched_rows.empty()) << "trial " << trial << ": infeasible but all rows matched";
      continue;
    }
    ++solved;
    ASSERT_TRUE(s.unmatched_rows.empty()) << "trial " << trial;
    double total = 0;
    std::vector<int> used(static_cast<size_t>(m), 0);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t j = s.col_of_row[i];
      ASSERT_GE(j, 0);
      ASSERT_EQ(s.row_of_col[j], i);
      ASSERT_EQ(used[j]++, 0) << "column used twice";
      total += dense[i][j];
      EXPECT_NEAR(dense[i][j] - s.u[i] - s.v[j], 0.0, 1e-12) << "matched edges are tight";
    }
    EXPECT_NEAR(total, best, 1e-12) << "trial " << trial;
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < m; ++j) {
        if (dense[i][j] < inf) {
          EXPECT_GE(dense[i][j] - s.u[i] - s.v[j], -1e-12) << "dual feasibility";
        }
      }
    }
    for (int64_t j = 0; j < m; ++j) {
      EXPECT_LE(s.v[j], 1e-15);
      if (s.row_of_col[j] < 0) {
        EXPECT_EQ(s.v[j], 0.0) << "unmatched columns have zero dual";
      }
    }
  }
  EXPECT_GT(solved, 200);
}

TEST(Lap, ReportsRowsWithoutAugmentingPath) {
  // Rows 0 and 1 both only reach column 0.
  const LapSolution s = solve_sparse_lap(make_sparse_costs(2, 3, {0, 1}, {0, 0}, {1.0, 2.0}));
  EXPECT_EQ(s.unmatched_rows, (std::vector<int64_t>{1}));
  EXPECT_EQ(s.col_of_row[0], 0);
}

TEST(Lap, RejectsBadInput) {
  EXPECT_THROW(make_sparse_costs(3, 2, {}, {}, {}), std::invalid_argument);
  EXPECT_THROW(make_sparse_costs(1, 1, {0}, {0}, {-1.0}), std::invalid_argument);
  EXPECT_THROW(make_sparse_costs(1, 1, {0}, {1}, {1.0}), std::invalid_argument);
}
