#include "core/lap.hpp"

#include <algorithm>
#include <limits>
#include <numeric>
#include <queue>
#include <stdexcept>

namespace universae::core {

SparseCosts make_sparse_costs(int64_t n_rows, int64_t n_cols, std::vector<int64_t> rows, std::vector<int64_t> cols,
                              std::vector<double> costs) {
  if (n_rows > n_cols) throw std::invalid_argument("make_sparse_costs: needs n_rows <= n_cols");
  std::vector<size_t> order(rows.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return rows[a] != rows[b] ? rows[a] < rows[b] : cols[a] < cols[b]; });
  SparseCosts s;
  s.n_rows = n_rows;
  s.n_cols = n_cols;
  s.row_start.assign(static_cast<size_t>(n_rows + 1), 0);
  for (size_t k = 0; k < order.size(); ++k) {
    const size_t e = order[k];
    if (k > 0 && rows[e] == rows[order[k - 1]] && cols[e] == cols[order[k - 1]]) continue;
    if (rows[e] < 0 || rows[e] >= n_rows || cols[e] < 0 || cols[e] >= n_cols || !(costs[e] >= 0))
      throw std::invalid_argument("make_sparse_costs: edge out of range or with a negative cost");
    s.col.push_back(cols[e]);
    s.cost.push_back(costs[e]);
    ++s.row_start[static_cast<size_t>(rows[e] + 1)];
  }
  for (int64_t i = 0; i < n_rows; ++i) s.row_start[i + 1] += s.row_start[i];
  return s;
}

LapSolution solve_sparse_lap(const SparseCosts& c, const LapSolution* warm) {
  const int64_t n = c.n_rows, m = c.n_cols;
  constexpr double kInf = std::numeric_limits<double>::infinity();
  LapSolution s;
  if (warm) {
    s = *warm;
    s.unmatched_rows.clear();
  } else {
    s.col_of_row.assign(static_cast<size_t>(n), -1);
    s.row_of_col.assign(static_cast<size_t>(m), -1);
    s.u.assign(static_cast<size_t>(n), 0.0);
    s.v.assign(static_cast<size_t>(m), 0.0);
  }
  std::vector<int64_t> free_rows;
  for (int64_t i = 0; i < n; ++i)
    if (s.col_of_row[i] < 0) free_rows.push_back(i);

  // Per-search state, reset only where touched (a search usually visits a handful of columns).
  std::vector<double> dist(static_cast<size_t>(m), kInf);
  std::vector<int64_t> path(static_cast<size_t>(m), -1);
  std::vector<char> done(static_cast<size_t>(m), 0);
  std::vector<int64_t> touched, scanned_cols, scanned_rows;
  using Item = std::pair<double, int64_t>;  // (distance, column): ties go to the lower column
  std::priority_queue<Item, std::vector<Item>, std::greater<Item>> heap;

  for (const int64_t start : free_rows) {
    int64_t row = start, sink = -1;
    double min_val = 0.0;
    for (;;) {
      // Relax the edges of `row` (reduced costs are >= 0, so Dijkstra applies).
      for (int64_t e = c.row_start[row]; e < c.row_start[row + 1]; ++e) {
        const int64_t j = c.col[e];
        if (done[j]) continue;
        const double d = min_val + c.cost[e] - s.u[row] - s.v[j];
        if (d < dist[j]) {
          if (dist[j] == kInf) touched.push_back(j);
          dist[j] = d;
          path[j] = row;
          heap.emplace(d, j);
        }
      }
      int64_t j = -1;
      while (!heap.empty()) {
        const auto [d, col] = heap.top();
        heap.pop();
        if (!done[col] && d == dist[col]) {
          j = col;
          break;
        }
      }
      if (j < 0) break;  // no free column reachable through the edge set
      done[j] = 1;
      scanned_cols.push_back(j);
      min_val = dist[j];
      if (s.row_of_col[j] < 0) {
        sink = j;
        break;
      }
      row = s.row_of_col[j];
      scanned_rows.push_back(row);
    }

    if (sink >= 0) {
      // Dual update (keeps reduced costs >= 0 and v <= 0), then augment along the path.
      s.u[start] += min_val;
      for (int64_t r : scanned_rows) s.u[r] += min_val - dist[s.col_of_row[r]];
      for (int64_t j : scanned_cols) s.v[j] -= min_val - dist[j];
      for (int64_t j = sink;;) {
        const int64_t r = path[j];
        s.row_of_col[j] = r;
        std::swap(s.col_of_row[r], j);
        if (r == start) break;
      }
    } else {
      s.unmatched_rows.push_back(start);
    }
    for (int64_t j : touched) dist[j] = kInf, path[j] = -1, done[j] = 0;
    touched.clear();
    scanned_cols.clear();
    scanned_rows.clear();
    heap = {};
  }
  return s;
}

}  // namespace universae::core
