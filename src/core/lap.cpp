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

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// One shortest augmenting path search (Dijkstra over reduced costs, which are >= 0) and the dual
// update and augmentation it allows. Per-search state is reset only where touched: a search usually
// visits a handful of columns.
class PathSearch {
 public:
  explicit PathSearch(int64_t n_cols)
      : dist_(static_cast<size_t>(n_cols), kInf), path_(static_cast<size_t>(n_cols), -1), done_(static_cast<size_t>(n_cols), 0) {}

  // From free row `start`: the first free column reached (-1 when none is reachable through the edge
  // set); min_val is its distance.
  int64_t run(const SparseCosts& c, const LapSolution& s, int64_t start, double& min_val) {
    int64_t row = start;
    min_val = 0.0;
    for (;;) {
      for (int64_t e = c.row_start[row]; e < c.row_start[row + 1]; ++e) {  // relax the edges of `row`
        const int64_t j = c.col[e];
        if (done_[j]) continue;
        const double d = min_val + c.cost[e] - s.u[row] - s.v[j];
        if (d < dist_[j]) {
          if (dist_[j] == kInf) touched_.push_back(j);
          dist_[j] = d;
          path_[j] = row;
          heap_.emplace(d, j);
        }
      }
      const int64_t j = next_column();
      if (j < 0) return -1;
      done_[j] = 1;
      scanned_cols_.push_back(j);
      min_val = dist_[j];
      if (s.row_of_col[j] < 0) return j;
      row = s.row_of_col[j];
      scanned_rows_.push_back(row);
    }
  }

  // Dual update (keeps reduced costs >= 0 and v <= 0), then augment along the path to `sink`.
  void augment(LapSolution& s, int64_t start, int64_t sink, double min_val) const {
    s.u[start] += min_val;
    for (int64_t r : scanned_rows_) s.u[r] += min_val - dist_[s.col_of_row[r]];
    for (int64_t j : scanned_cols_) s.v[j] -= min_val - dist_[j];
    for (int64_t j = sink;;) {
      const int64_t r = path_[j];
      s.row_of_col[j] = r;
      std::swap(s.col_of_row[r], j);
      if (r == start) break;
    }
  }

  void reset() {
    for (int64_t j : touched_) dist_[j] = kInf, path_[j] = -1, done_[j] = 0;
    touched_.clear();
    scanned_cols_.clear();
    scanned_rows_.clear();
    heap_ = {};
  }

 private:
  // The unscanned column nearest to the tree (ties: the lower column), or -1.
  int64_t next_column() {
    while (!heap_.empty()) {
      const auto [d, col] = heap_.top();
      heap_.pop();
      if (!done_[col] && d == dist_[col]) return col;
    }
    return -1;
  }

  std::vector<double> dist_;
  std::vector<int64_t> path_;
  std::vector<char> done_;
  std::vector<int64_t> touched_, scanned_cols_, scanned_rows_;
  using Item = std::pair<double, int64_t>;  // (distance, column)
  std::priority_queue<Item, std::vector<Item>, std::greater<Item>> heap_;
};

}  // namespace

LapSolution solve_sparse_lap(const SparseCosts& c, const LapSolution* warm) {
  const int64_t n = c.n_rows, m = c.n_cols;
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
  PathSearch search(m);
  for (const int64_t start : free_rows) {
    double min_val = 0.0;
    const int64_t sink = search.run(c, s, start, min_val);
    if (sink >= 0) {
      search.augment(s, start, sink, min_val);
    } else {
      s.unmatched_rows.push_back(start);
    }
    search.reset();
  }
  return s;
}

}  // namespace universae::core
