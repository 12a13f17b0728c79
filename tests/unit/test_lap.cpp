// Sparse assignment solver against brute force over all assignments, with its dual certificate.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
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
    for (int64_t j = 0; j < m && n < m; ++j) {  // a square problem's v may take either sign (Jonker-Volgenant start)
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

namespace {

// Optimality by LP duality, independent of how the solver got there: every row matched to a distinct
// column, reduced costs c_ij - u_i - v_j >= 0 on every edge and 0 on matched edges (square problems:
// no sign condition on u or v) mean no assignment over the edges costs less.
void expect_certified_optimal(const SparseCosts& c, const LapSolution& s, const char* what) {
  ASSERT_TRUE(s.unmatched_rows.empty()) << what;
  std::vector<int> used(static_cast<size_t>(c.n_cols), 0);
  for (int64_t i = 0; i < c.n_rows; ++i) {
    const int64_t j = s.col_of_row[i];
    ASSERT_GE(j, 0) << what;
    ASSERT_EQ(s.row_of_col[j], i) << what;
    ASSERT_EQ(used[j]++, 0) << what << ": column used twice";
    bool matched_edge = false;
    for (int64_t e = c.row_start[i]; e < c.row_start[i + 1]; ++e) {
      const double reduced = c.cost[e] - s.u[i] - s.v[c.col[e]];
      ASSERT_GE(reduced, -1e-12) << what << ": dual feasibility, row " << i;
      if (c.col[e] == j) {
        matched_edge = true;
        EXPECT_NEAR(reduced, 0.0, 1e-12) << what << ": matched edges are tight";
      }
    }
    ASSERT_TRUE(matched_edge) << what << ": row " << i << " matched off its edges";
  }
}

}  // namespace

// Square problems at the sizes where the Jonker-Volgenant start (column reduction, augmenting row
// reduction) does most of the work, with many ties (coarse costs) and sparse rows; and the warm path the
// pricing rounds use: more edges, rows whose duals they break are freed, re-solved from the old duals.
TEST(Lap, SquareProblemsAndWarmRestartsAreCertifiedOptimal) {
  CounterRng rng(11, kStreamTesting, 0);
  for (int trial = 0; trial < 24; ++trial) {
    const int64_t n = 50 + static_cast<int64_t>(rng.uniform() * 250);
    const int64_t levels = trial % 3 == 0 ? 3 : trial % 3 == 1 ? 1000 : 0;  // 0: continuous costs
    auto draw = [&] { return levels ? std::floor(rng.uniform() * static_cast<double>(levels)) : rng.uniform(); };
    std::vector<int64_t> rows, cols;
    std::vector<double> costs;
    for (int64_t i = 0; i < n; ++i)  // a perfect matching exists: the diagonal, plus random edges
      rows.push_back(i), cols.push_back(i), costs.push_back(draw() + 0.5 * levels);
    for (int64_t e = 0; e < 8 * n; ++e)
      rows.push_back(static_cast<int64_t>(rng.uniform() * n)), cols.push_back(static_cast<int64_t>(rng.uniform() * n)),
          costs.push_back(draw());
    const size_t first = rows.size() * 2 / 3;  // the cold solve sees the first two thirds
    const SparseCosts some = make_sparse_costs(n, n, {rows.begin(), rows.begin() + first}, {cols.begin(), cols.begin() + first},
                                               {costs.begin(), costs.begin() + first});
    LapSolution s = solve_sparse_lap(some);
    expect_certified_optimal(some, s, "cold");
    const SparseCosts all = make_sparse_costs(n, n, rows, cols, costs);
    // What compare/matching.cpp's warm start does: lower u_i until the new edges are feasible, and free
    // the rows whose matched edge is then no longer tight.
    for (int64_t i = 0; i < n; ++i)
      for (int64_t e = all.row_start[i]; e < all.row_start[i + 1]; ++e)
        if (all.cost[e] - s.v[all.col[e]] < s.u[i]) {
          s.u[i] = all.cost[e] - s.v[all.col[e]];
          if (s.col_of_row[i] >= 0) s.row_of_col[s.col_of_row[i]] = -1, s.col_of_row[i] = -1;
        }
    const LapSolution warm = solve_sparse_lap(all, &s);
    expect_certified_optimal(all, warm, "warm");
    const LapSolution cold = solve_sparse_lap(all);
    expect_certified_optimal(all, cold, "cold, all edges");
    double warm_total = 0, cold_total = 0;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t e = all.row_start[i]; e < all.row_start[i + 1]; ++e) {
        if (all.col[e] == warm.col_of_row[i]) warm_total += all.cost[e];
        if (all.col[e] == cold.col_of_row[i]) cold_total += all.cost[e];
      }
    EXPECT_NEAR(warm_total, cold_total, 1e-9) << "trial " << trial;
  }
}

TEST(Lap, MergedCostsEqualOneBuildOfBothEdgeLists) {
  CounterRng rng(13, kStreamTesting, 0);
  std::vector<int64_t> rows, cols;
  std::vector<double> costs;
  for (int e = 0; e < 3000; ++e)  // 40 × 60 pairs drawn 3000 times: many duplicates, within and across the halves
    rows.push_back(static_cast<int64_t>(rng.uniform() * 40)), cols.push_back(static_cast<int64_t>(rng.uniform() * 60)),
        costs.push_back(rng.uniform());
  const auto half = static_cast<std::ptrdiff_t>(1700);
  const SparseCosts one = make_sparse_costs(40, 60, rows, cols, costs);
  const SparseCosts merged = merge_sparse_costs(
      make_sparse_costs(40, 60, {rows.begin(), rows.begin() + half}, {cols.begin(), cols.begin() + half},
                        {costs.begin(), costs.begin() + half}),
      make_sparse_costs(40, 60, {rows.begin() + half, rows.end()}, {cols.begin() + half, cols.end()},
                        {costs.begin() + half, costs.end()}));
  EXPECT_EQ(merged.row_start, one.row_start);
  EXPECT_EQ(merged.col, one.col);
  EXPECT_EQ(merged.cost, one.cost);  // a pair in both halves keeps the first half's cost, as one build does
  EXPECT_LT(one.col.size(), rows.size());
  EXPECT_THROW(merge_sparse_costs(one, make_sparse_costs(40, 61, {}, {}, {})), std::invalid_argument);
}
