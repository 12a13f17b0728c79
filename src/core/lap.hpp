// Sparse linear assignment: shortest augmenting paths with dual variables (Crouse 2016, the
// algorithm behind scipy.optimize.linear_sum_assignment), with Dijkstra over a sparse edge set; square
// problems start with Jonker & Volgenant's column reduction and augmenting row reduction (1987).
//
// Minimises Σ cost[i, σ(i)] over assignments of every row to a distinct column (n_rows <= n_cols)
// using only the given edges. Costs must be >= 0. The duals satisfy, on every edge,
// cost[i, j] - u[i] - v[j] >= 0, with equality on matched edges, and when n_rows < n_cols also
// v[j] <= 0 with v[j] = 0 on unmatched columns (a square problem's v may take either sign): the LP
// certificate that the assignment is optimal over the edge set. The caller extends it to all pairs
// (compare/matching.cpp). No MPI: pure function of its inputs.
#pragma once

#include <cstdint>
#include <vector>

namespace universae::core {

struct SparseCosts {
  int64_t n_rows = 0;
  int64_t n_cols = 0;
  std::vector<int64_t> row_start;  // CSR: edges of row i are [row_start[i], row_start[i+1])
  std::vector<int64_t> col;
  std::vector<double> cost;
};

struct LapSolution {
  std::vector<int64_t> col_of_row;      // -1: the row has no augmenting path in the edge set
  std::vector<int64_t> row_of_col;      // -1: unmatched column
  std::vector<double> u, v;             // duals
  std::vector<int64_t> unmatched_rows;  // rows that need more edges
};

// Builds CSR costs from (row, col, cost) triples; duplicate (row, col) pairs keep the first.
SparseCosts make_sparse_costs(int64_t n_rows, int64_t n_cols, std::vector<int64_t> rows, std::vector<int64_t> cols,
                              std::vector<double> costs);

// The costs of a's edges and then b's, as make_sparse_costs of both edge lists concatenated would give
// them (a pair in both keeps a's cost), in one pass: the pricing rounds add edges to a few million.
SparseCosts merge_sparse_costs(const SparseCosts& a, const SparseCosts& b);

// With `warm`, starts from its duals and matching and augments only its unmatched rows (a square problem
// first runs the augmenting row reduction on them, which may move matched rows too). The caller
// guarantees that the warm duals are feasible on every edge of `costs` (reduced costs >= 0) and that
// matched edges are tight; for n_rows < n_cols also v <= 0, and v = 0 on unmatched columns.
LapSolution solve_sparse_lap(const SparseCosts& costs, const LapSolution* warm = nullptr);

}  // namespace universae::core
