#include "core/lap.hpp"

#include <algorithm>
#include <limits>
#include <queue>
#include <stdexcept>

namespace universae::core {

SparseCosts make_sparse_costs(int64_t n_rows, int64_t n_cols, std::vector<int64_t> rows, std::vector<int64_t> cols,
                              std::vector<double> costs) {
  if (n_rows > n_cols) throw std::invalid_argument("make_sparse_costs: needs n_rows <= n_cols");
  for (size_t e = 0; e < rows.size(); ++e)
    if (rows[e] < 0 || rows[e] >= n_rows || cols[e] < 0 || cols[e] >= n_cols || !(costs[e] >= 0))
      throw std::invalid_argument("make_sparse_costs: edge out of range or with a negative cost");
  // A counting sort by row (stable), then each row's few edges by column: the pricing rounds rebuild
  // the costs from 4-5M edges each round, and one comparison sort of them all took 0.45-0.65 s of the
  // 32,768-latent matching (bench_hungarian.py), this about a fifth of that.
  std::vector<int64_t> start(static_cast<size_t>(n_rows + 1), 0);
  for (const int64_t r : rows) ++start[static_cast<size_t>(r + 1)];
  for (int64_t i = 0; i < n_rows; ++i) start[i + 1] += start[i];
  std::vector<size_t> order(rows.size());
  {
    std::vector<int64_t> next(start.begin(), start.end() - 1);
    for (size_t e = 0; e < rows.size(); ++e) order[static_cast<size_t>(next[rows[e]]++)] = e;
  }
  SparseCosts s;
  s.n_rows = n_rows;
  s.n_cols = n_cols;
  s.row_start.assign(static_cast<size_t>(n_rows + 1), 0);
  s.col.reserve(rows.size());
  s.cost.reserve(rows.size());
  for (int64_t i = 0; i < n_rows; ++i) {
    const auto first = order.begin() + start[i], last = order.begin() + start[i + 1];
    std::stable_sort(first, last, [&](size_t a, size_t b) { return cols[a] < cols[b]; });
    for (auto it = first; it != last; ++it) {
      if (it != first && cols[*it] == cols[*(it - 1)]) continue;  // a duplicate pair keeps the first
      s.col.push_back(cols[*it]);
      s.cost.push_back(costs[*it]);
    }
    s.row_start[static_cast<size_t>(i + 1)] = static_cast<int64_t>(s.col.size());
  }
  return s;
}

SparseCosts merge_sparse_costs(const SparseCosts& a, const SparseCosts& b) {
  if (a.n_rows != b.n_rows || a.n_cols != b.n_cols) throw std::invalid_argument("merge_sparse_costs: shapes differ");
  SparseCosts s;
  s.n_rows = a.n_rows;
  s.n_cols = a.n_cols;
  s.row_start.assign(static_cast<size_t>(a.n_rows + 1), 0);
  s.col.reserve(a.col.size() + b.col.size());
  s.cost.reserve(a.col.size() + b.col.size());
  for (int64_t i = 0; i < a.n_rows; ++i) {  // both rows sorted by column: merge them, a first on a tie
    int64_t x = a.row_start[i], y = b.row_start[i];
    while (x < a.row_start[i + 1] || y < b.row_start[i + 1]) {
      const bool take_a = y == b.row_start[i + 1] || (x < a.row_start[i + 1] && a.col[x] <= b.col[y]);
      const int64_t j = take_a ? a.col[x] : b.col[y];
      s.col.push_back(j);
      s.cost.push_back(take_a ? a.cost[x] : b.cost[y]);
      if (take_a) ++x;
      if (y < b.row_start[i + 1] && b.col[y] == j) ++y;  // b's own pair, or its duplicate of a's
    }
    s.row_start[static_cast<size_t>(i + 1)] = static_cast<int64_t>(s.col.size());
  }
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
    // Raw pointers: through the vectors the compiler reloads each data pointer on every edge (the stores
    // to dist_ and path_ might alias them), in the loop that is three quarters of a solve.
    const int64_t* col = c.col.data();
    const double* cost = c.cost.data();
    const double* v = s.v.data();
    const int64_t* row_of_col = s.row_of_col.data();
    double* dist = dist_.data();
    int64_t* path = path_.data();
    const char* done = done_.data();
    for (;;) {
      const double u = s.u[row];
      for (int64_t e = c.row_start[row], end = c.row_start[row + 1]; e < end; ++e) {  // relax the edges of `row`
        const int64_t j = col[e];
        const double d = min_val + cost[e] - u - v[j];
        // Farther than a free column already reached: the search ends at that column (or a nearer one)
        // before it could take this one, so it is not recorded. At 32,768 latents a cold solve's 323
        // searches pushed 7.2M heap entries for 0.83M columns scanned; with this, 1.45M.
        if (d > nearest_free_ || !(d < dist[j]) || done[j]) continue;
        if (dist[j] == kInf) touched_.push_back(j);
        dist[j] = d;
        path[j] = row;
        if (const int64_t next = row_of_col[j]; next < 0) {
          nearest_free_ = d;  // d <= nearest_free_ here
        } else {
          // The row this column leads to is scanned if the column is taken: its edges (a random place in
          // the CSR arrays, which outgrow the caches) are asked for now, as most pushed columns are. A cold
          // solve of the 32,768-latent pair's final 854K edges (381 searches): 0.47-0.51 s -> 0.43-0.47 s
          // (medians of alternated runs, each the best of 7).
          __builtin_prefetch(col + c.row_start[next]);
          __builtin_prefetch(cost + c.row_start[next]);
        }
        heap_.emplace(d, j);
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

  // Dual update (keeps reduced costs >= 0; v only decreases, so v <= 0 holds where it held), then
  // augment along the path to `sink`.
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
    nearest_free_ = kInf;
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

  double nearest_free_ = kInf;  // the distance of the nearest free column reached so far
  std::vector<double> dist_;
  std::vector<int64_t> path_;
  std::vector<char> done_;
  std::vector<int64_t> touched_, scanned_cols_, scanned_rows_;
  using Item = std::pair<double, int64_t>;  // (distance, column)
  std::priority_queue<Item, std::vector<Item>, std::greater<Item>> heap_;
};

// Jonker & Volgenant's (1987) start for square problems, where v may take either sign (a rectangular
// problem needs v <= 0). Both steps keep every assigned row on a column that minimises c_ij - v_j over
// its edges, so u_i = min_j (c_ij - v_j) then makes every reduced cost >= 0 and matched edges tight,
// as the path searches need. On the SAE pairs of bench_hungarian.py they leave about 300 of 7,231 free
// rows for the path searches, in a few hundredths of a second: the cold 32,768-latent solve went from
// 2.3 s (path searches from every row) to 0.6-0.8 s, the first warm one from 2.6 s to about 1 s.

// Column reduction (cold start): v_j = the column's cheapest edge, and that edge's row takes the column
// if it has none yet (ties: the lower row, then the lower column).
void column_reduction(const SparseCosts& c, LapSolution& s) {
  std::vector<int64_t> best_row(static_cast<size_t>(c.n_cols), -1);
  std::vector<double> best(static_cast<size_t>(c.n_cols), kInf);
  for (int64_t i = 0; i < c.n_rows; ++i)
    for (int64_t e = c.row_start[i]; e < c.row_start[i + 1]; ++e)
      if (c.cost[e] < best[c.col[e]]) best[c.col[e]] = c.cost[e], best_row[c.col[e]] = i;
  for (int64_t j = 0; j < c.n_cols; ++j) {
    if (best_row[j] < 0) continue;  // no edges: v_j stays 0
    s.v[j] = best[j];
    if (s.col_of_row[best_row[j]] < 0) s.col_of_row[best_row[j]] = j, s.row_of_col[j] = best_row[j];
  }
}

// Augmenting row reduction: a free row takes its cheapest column (by c_ij - v_j); when that beats its
// second cheapest, the column's v drops by the difference and its previous row, evicted, bids again at
// once; on a tie it takes the second column instead and the evicted row waits for the next pass. An
// auction without a bidding increment: near-equal rows can trade tiny steps, so the steps are capped
// and what is left free goes to the path searches. Four passes rather than JV's two: at 32,768 latents
// they left 323 rows free instead of 336 cold and 431 instead of 705 after the first pricing round, and
// each of those rows' searches costs milliseconds. Returns the rows still free.
std::vector<int64_t> augmenting_row_reduction(const SparseCosts& c, LapSolution& s, std::vector<int64_t> free_rows) {
  for (int pass = 0; pass < 4 && !free_rows.empty(); ++pass) {
    std::vector<int64_t> still_free, bidders(free_rows.rbegin(), free_rows.rend());  // back() bids next
    int64_t steps = 16 * static_cast<int64_t>(free_rows.size());
    while (!bidders.empty()) {
      const int64_t i = bidders.back();
      bidders.pop_back();
      double u1 = kInf, u2 = kInf;
      int64_t j1 = -1, j2 = -1;
      for (int64_t e = c.row_start[i]; e < c.row_start[i + 1]; ++e) {
        const double h = c.cost[e] - s.v[c.col[e]];
        if (h < u1) {
          u2 = u1, j2 = j1, u1 = h, j1 = c.col[e];
        } else if (h < u2) {
          u2 = h, j2 = c.col[e];
        }
      }
      if (--steps < 0 || j1 < 0 || (j2 < 0 && s.row_of_col[j1] >= 0)) {
        still_free.push_back(i);  // out of steps, no edges, or one edge to a taken column
        continue;
      }
      int64_t evicted = s.row_of_col[j1];
      const bool lower = j2 >= 0 && u1 < u2;
      if (lower) {
        s.v[j1] -= u2 - u1;
      } else if (evicted >= 0) {
        j1 = j2, evicted = s.row_of_col[j2];
      }
      s.col_of_row[i] = j1, s.row_of_col[j1] = i;
      if (evicted < 0) continue;
      s.col_of_row[evicted] = -1;
      (lower ? bidders : still_free).push_back(evicted);
    }
    free_rows = std::move(still_free);
  }
  for (int64_t i = 0; i < c.n_rows; ++i) {  // u_i = min_j (c_ij - v_j): every reduced cost >= 0
    double u = kInf;
    for (int64_t e = c.row_start[i]; e < c.row_start[i + 1]; ++e) u = std::min(u, c.cost[e] - s.v[c.col[e]]);
    s.u[i] = u < kInf ? u : 0.0;
  }
  return free_rows;
}

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
  if (!warm && n == m) column_reduction(c, s);
  std::vector<int64_t> free_rows;
  for (int64_t i = 0; i < n; ++i)
    if (s.col_of_row[i] < 0) free_rows.push_back(i);
  if (n == m) free_rows = augmenting_row_reduction(c, s, std::move(free_rows));
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
