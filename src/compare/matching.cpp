#include "compare/matching.hpp"

#include <ATen/Functions.h>
#include <ATen/ops/tensor.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <limits>
#include <unordered_map>

#include "core/error.hpp"
#include "core/lap.hpp"
#include "core/similarity.hpp"
#include "core/topk_scan.hpp"
#include "parallel/log.hpp"

namespace universae::compare {
namespace {

// Candidate or violating pairs (i in A, j in B) with their float64 cosine.
struct Edges {
  std::vector<int64_t> a, b;
  std::vector<double> w;
  void append(const Edges& o) {
    a.insert(a.end(), o.a.begin(), o.a.end());
    b.insert(b.end(), o.b.begin(), o.b.end());
    w.insert(w.end(), o.w.begin(), o.w.end());
  }
};

// This rank's rows of A and all of B, as unit rows in float32 (for GEMM) and float64 (to rescore);
// with the generic kernels the float32 ones also on the device (copied there once).
struct Operands {
  core::Range mine;
  at::Tensor a32, a64, b32, b64;
  at::Tensor a32_device, b32_device;  // defined only with the generic kernels
  int64_t n_a = 0, n_b = 0;
};

// Which pairs of an exact block are kept: every pair, or those violating the duals,
// w > α_i + β_j + tol (α by row of A, β by column of B), compared in float64.
struct Keep {
  const std::vector<double>* alpha = nullptr;  // nullptr: every pair
  const std::vector<double>* beta = nullptr;
  double tol = 0;
  bool operator()(int64_t i, int64_t j, float w) const { return alpha == nullptr || w > (*alpha)[i] + (*beta)[j] + tol; }
};

// Exact float64 cosines of pairs whose A row this rank owns, gathered on every rank.
Edges rescore_and_gather(const parallel::Comm& comm, const Operands& op, const std::vector<int64_t>& a,
                         const std::vector<int64_t>& b) {
  Edges local;
  local.a = a;
  local.b = b;
  local.w.resize(a.size());
  const int64_t d = op.a64.size(1);
  const double* pa = op.a64.data_ptr<double>();
  const double* pb = op.b64.data_ptr<double>();
  for (size_t e = 0; e < a.size(); ++e) {  // dot products in place: no (edges × d) copies
    const double* x = pa + (a[e] - op.mine.begin) * d;
    const double* y = pb + b[e] * d;
    double w = 0;
    for (int64_t k = 0; k < d; ++k) w += x[k] * y[k];
    local.w[e] = w;
  }
  Edges all;
  all.a = comm.allgatherv(local.a);
  all.b = comm.allgatherv(local.b);
  all.w = comm.allgatherv(local.w);
  return all;
}

// Pairs of (rows_a ∩ this rank's rows) × cols_b computed exactly; those `keep` accepts are rescored
// and gathered on every rank. rows_a, cols_b: sorted global indices, the same on every rank.
// With deep_k > 0 (only when cols_b is every column), each of these rows also keeps its top deep_k
// columns, which become candidates and tighten the row's bound (*deep_bound, by global row);
// *kept counts the pairs `keep` accepted, over all ranks.
// One tile of an exact block on the device: the float32 products, the kept pairs (row-major, as the
// host loop finds them) and, with deep_k > 0, each row's top deep_k of the pairs not kept. Only the
// kept pairs and the lists come back to the host.
void exact_tile_on_device(const Operands& op, const std::vector<int64_t>& rows, const std::vector<int64_t>& cols_b,
                          const at::Tensor& cols, const Keep& keep, int64_t deep_k, std::vector<int64_t>& pa,
                          std::vector<int64_t>& pb, std::vector<float>& bounds, int64_t& n_kept) {
  const at::Device device = op.a32_device.device();
  std::vector<int64_t> local(rows);
  for (auto& i : local) i -= op.mine.begin;
  const at::Tensor s = at::mm(op.a32_device.index_select(0, at::tensor(local, at::kLong).to(device)),
                              op.b32_device.index_select(0, cols).t());
  at::Tensor kept = at::ones(s.sizes(), s.options().dtype(at::kBool));
  if (keep.alpha != nullptr) {
    const at::Tensor alpha = at::tensor(*keep.alpha, at::kDouble).index_select(0, at::tensor(rows, at::kLong)).to(device);
    const at::Tensor beta = at::tensor(*keep.beta, at::kDouble).to(device).index_select(0, cols);
    kept = s.to(at::kDouble).gt(alpha.unsqueeze(1).add(beta.unsqueeze(0)).add_(keep.tol));  // (α_i + β_j) + tol
  }
  const at::Tensor where = kept.nonzero().to(at::kCPU).contiguous();  // (kept, 2): row, column, row-major
  const int64_t* rc = where.data_ptr<int64_t>();
  n_kept += where.size(0);
  core::TopKLists lists(0, 1);
  if (deep_k > 0) {
    core::DeviceTopK deep(static_cast<int64_t>(rows.size()), deep_k, device);
    deep.offer_rows(s.masked_fill(kept, -std::numeric_limits<float>::infinity()), 0, 0);  // cols_b is every column
    lists = deep.to_host();
  }
  // Per row as the host loop gives them: its kept pairs by column, then its deep list.
  for (int64_t r = 0, e = 0; r < static_cast<int64_t>(rows.size()); ++r) {
    for (; e < where.size(0) && rc[2 * e] == r; ++e) pa.push_back(rows[r]), pb.push_back(cols_b[rc[2 * e + 1]]);
    if (deep_k == 0) continue;
    for (int64_t c = 0; c < deep_k; ++c)
      if (lists.indices(r)[c] >= 0) pa.push_back(rows[r]), pb.push_back(lists.indices(r)[c]);
    bounds.push_back(lists.kth(r));
  }
}

Edges exact_block(const parallel::Comm& comm, const Operands& op, const TileSizes& tiles,
                  const std::vector<int64_t>& rows_a, const std::vector<int64_t>& cols_b, const Keep& keep,
                  int64_t* checked, int64_t deep_k = 0, std::vector<float>* deep_bound = nullptr, int64_t* kept = nullptr) {
  std::vector<int64_t> mine_rows;
  for (int64_t i : rows_a)
    if (i >= op.mine.begin && i < op.mine.end) mine_rows.push_back(i);
  std::vector<int64_t> pa, pb;
  std::vector<float> bounds;
  int64_t n_kept = 0;
  if (op.a32_device.defined()) {
    const at::Tensor cols = at::tensor(cols_b, at::kLong).to(op.a32_device.device());
    for (size_t r0 = 0; r0 < mine_rows.size(); r0 += static_cast<size_t>(tiles.rows)) {
      const size_t tr = std::min(static_cast<size_t>(tiles.rows), mine_rows.size() - r0);
      const std::vector<int64_t> rows(mine_rows.begin() + static_cast<std::ptrdiff_t>(r0),
                                      mine_rows.begin() + static_cast<std::ptrdiff_t>(r0 + tr));
      exact_tile_on_device(op, rows, cols_b, cols, keep, deep_k, pa, pb, bounds, n_kept);
    }
  }
  const at::Tensor b_sel = op.a32_device.defined() ? at::Tensor() : op.b32.index_select(0, at::tensor(cols_b, at::kLong));
  for (size_t r0 = 0; !op.a32_device.defined() && r0 < mine_rows.size(); r0 += static_cast<size_t>(tiles.rows)) {
    const size_t tr = std::min(static_cast<size_t>(tiles.rows), mine_rows.size() - r0);
    std::vector<int64_t> local(mine_rows.begin() + static_cast<std::ptrdiff_t>(r0),
                               mine_rows.begin() + static_cast<std::ptrdiff_t>(r0 + tr));
    for (auto& i : local) i -= op.mine.begin;
    const at::Tensor s = at::mm(op.a32.index_select(0, at::tensor(local, at::kLong)), b_sel.t()).contiguous();
    const float* sim = s.data_ptr<float>();
    core::TopKLists deep(deep_k > 0 ? static_cast<int64_t>(tr) : 0, std::max<int64_t>(deep_k, 1));
    for (size_t r = 0; r < tr; ++r) {
      const int64_t i = mine_rows[r0 + r];
      for (size_t c = 0; c < cols_b.size(); ++c) {
        const float w = sim[r * cols_b.size() + c];
        if (keep(i, cols_b[c], w)) {
          pa.push_back(i), pb.push_back(cols_b[c]);
          ++n_kept;
        } else if (deep_k > 0 && w > deep.kth(static_cast<int64_t>(r))) {
          deep.offer(static_cast<int64_t>(r), w, cols_b[c]);
        }
      }
      if (deep_k > 0) {
        // Everything this row does not list now is below its deep_k-th kept or violating value.
        for (int64_t c = 0; c < deep_k; ++c)
          if (deep.indices(static_cast<int64_t>(r))[c] >= 0) pa.push_back(i), pb.push_back(deep.indices(static_cast<int64_t>(r))[c]);
        bounds.push_back(deep.kth(static_cast<int64_t>(r)));
      }
    }
  }
  *checked += comm.allreduce_sum(static_cast<int64_t>(mine_rows.size() * cols_b.size()));
  if (kept) *kept = comm.allreduce_sum(n_kept);
  if (deep_k > 0) {
    const std::vector<int64_t> rows = comm.allgatherv(mine_rows);
    const std::vector<float> b = comm.allgatherv(bounds);
    for (size_t e = 0; e < rows.size(); ++e) (*deep_bound)[rows[e]] = std::min((*deep_bound)[rows[e]], b[e]);
  }
  return rescore_and_gather(comm, op, pa, pb);
}

std::vector<int64_t> iota_vector(int64_t n) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[i] = i;
  return v;
}

// Seconds since `t`, which moves on to now: consecutive laps of one clock.
double lap_seconds(std::chrono::steady_clock::time_point& t) {
  const auto now = std::chrono::steady_clock::now();
  const double s = std::chrono::duration<double>(now - t).count();
  t = now;
  return s;
}

// Step 1: the candidates of the pass's top-K lists as rescored edges, and each row's and column's
// K-th best (t_i, s_j; -inf when a list holds the whole row or column): every pair outside the
// candidates is bounded by min(t_i, s_j).
Edges candidate_edges(const parallel::Comm& comm, const Operands& op, const SimilarityPass& pass, std::vector<float>& t,
                      std::vector<float>& s) {
  std::vector<float> t_local(static_cast<size_t>(op.mine.size()));
  // Widened by the pass's product error (compare.dtype): an upper bound on every pair not listed.
  const auto slack = static_cast<float>(pass.slack);
  for (int64_t r = 0; r < op.mine.size(); ++r) t_local[r] = pass.rows.kth(r) + slack;
  t = comm.allgatherv(t_local);
  s.resize(static_cast<size_t>(op.n_b));
  for (int64_t j = 0; j < op.n_b; ++j) s[j] = pass.cols.kth(j) + slack;
  std::vector<int64_t> ca, cb;
  for (int64_t r = 0; r < op.mine.size(); ++r)
    for (int64_t c = 0; c < pass.rows.k(); ++c)
      if (pass.rows.indices(r)[c] >= 0) ca.push_back(op.mine.begin + r), cb.push_back(pass.rows.indices(r)[c]);
  for (int64_t j = 0; j < op.n_b; ++j)
    for (int64_t c = 0; c < pass.cols.k(); ++c) {
      const int64_t i = pass.cols.indices(j)[c];
      if (i >= op.mine.begin && i < op.mine.end) ca.push_back(i), cb.push_back(j);
    }
  return rescore_and_gather(comm, op, ca, cb);
}

// Warm start after violating edges are added (square only: every column ends matched, so freed
// columns need no zero dual): lower u_i until the new edges are feasible, and free the rows whose
// matched edge is no longer tight; only those are augmented again.
void warm_start(core::LapSolution& sol, const Edges& violations) {
  for (size_t e = 0; e < violations.w.size(); ++e) {
    const int64_t i = violations.a[e], j = violations.b[e];
    const double limit = (2.0 - violations.w[e]) - sol.v[j];
    if (limit < sol.u[i]) {
      sol.u[i] = limit;
      if (sol.col_of_row[i] >= 0) sol.row_of_col[sol.col_of_row[i]] = -1, sol.col_of_row[i] = -1;
    }
  }
}

// The pricing rounds of steps 2-3: solve on the edges, certify over all pairs with the duals, add the
// violating pairs, repeat. Every rank runs the same rounds (the edges and the solution are replicated).
class Pricing {
 public:
  Pricing(const parallel::Comm& comm, const Operands& op, const TileSizes& tiles, const config::CompareConfig& opt, Edges edges,
          std::vector<float> t, std::vector<float> s)
      : comm_(comm), op_(op), tiles_(tiles), opt_(opt), edges_(std::move(edges)), t_(std::move(t)), s_(std::move(s)) {}
  // Runs the rounds into `m` (certified, rounds, candidate_edges, pairs_checked); the final solution.
  const core::LapSolution& run(Matching& m);
  const Edges& edges() const { return edges_; }
  bool rows_are_a() const { return op_.n_a <= op_.n_b; }
  double solve_seconds = 0, certify_seconds = 0;

 private:
  void solve(Matching& m);
  // The certificate with the current duals: false when some pair violates W_ij <= α_i + β_j + tolerance
  // (the violating pairs then join the edges).
  bool certify(Matching& m);

  const parallel::Comm& comm_;
  const Operands& op_;
  const TileSizes& tiles_;
  const config::CompareConfig& opt_;
  Edges edges_;
  std::vector<float> t_, s_;
  core::LapSolution sol_;
  bool warm_ = false;
};

void Pricing::solve(Matching& m) {
  // Cost 2 - cos >= 0 (cos <= 1 up to rounding); a constant shift leaves the optimum unchanged.
  std::vector<double> cost(edges_.w.size());
  for (size_t e = 0; e < cost.size(); ++e) cost[e] = 2.0 - edges_.w[e];
  auto t = std::chrono::steady_clock::now();
  const bool ra = rows_are_a();
  const core::SparseCosts sparse = core::make_sparse_costs(std::min(op_.n_a, op_.n_b), std::max(op_.n_a, op_.n_b),
                                                           ra ? edges_.a : edges_.b, ra ? edges_.b : edges_.a, cost);
  const double build_s = lap_seconds(t);
  sol_ = warm_ ? core::solve_sparse_lap(sparse, &sol_) : core::solve_sparse_lap(sparse);
  const double one_solve_s = lap_seconds(t);
  solve_seconds += build_s + one_solve_s;
  log::debug("matching: round {}: {} edges, build {:.2f} s, {} solve {:.2f} s", m.rounds, edges_.w.size(), build_s,
            warm_ ? "warm" : "cold", one_solve_s);
  warm_ = false;
  m.candidate_edges = static_cast<int64_t>(edges_.w.size());
}

bool Pricing::certify(Matching& m) {
  const bool ra = rows_are_a();
  const int64_t n_a = op_.n_a, n_b = op_.n_b;
  std::vector<double> alpha(static_cast<size_t>(n_a)), beta(static_cast<size_t>(n_b));
  for (int64_t i = 0; i < n_a; ++i) alpha[i] = ra ? 2.0 - sol_.u[i] : -sol_.v[i];
  for (int64_t j = 0; j < n_b; ++j) beta[j] = ra ? -sol_.v[j] : 2.0 - sol_.u[j];
  const double tol = opt_.certificate_tolerance;
  const double min_alpha = *std::min_element(alpha.begin(), alpha.end());
  const double min_beta = *std::min_element(beta.begin(), beta.end());
  std::vector<int64_t> suspect_a, suspect_b;
  for (int64_t i = 0; i < n_a; ++i)
    if (t_[i] > alpha[i] + min_beta + tol) suspect_a.push_back(i);
  for (int64_t j = 0; j < n_b; ++j)
    if (s_[j] > min_alpha + beta[j] + tol) suspect_b.push_back(j);
  if (suspect_a.empty() || suspect_b.empty()) return true;
  // Suspect rows are recomputed against every column: besides the violating pairs they keep their top
  // deep_k columns, so their bound drops and later rounds recompute fewer rows.
  const int64_t deep_k = std::min<int64_t>(opt_.deep_factor * opt_.candidates, n_b);
  int64_t n_violating = 0;
  const Edges violations = exact_block(comm_, op_, tiles_, suspect_a, iota_vector(n_b), Keep{&alpha, &beta, tol},
                                       &m.pairs_checked, deep_k, &t_, &n_violating);
  if (n_violating == 0) return true;
  log::debug("matching: pricing round {} adds {} violating pairs ({} rows rechecked, {} columns suspect)", m.rounds, n_violating,
            suspect_a.size(), suspect_b.size());
  edges_.append(violations);
  if (n_a == n_b) warm_start(sol_, violations), warm_ = true;
  return false;
}

const core::LapSolution& Pricing::run(Matching& m) {
  for (m.rounds = 1; m.rounds <= kMaxPricingRounds; ++m.rounds) {
    solve(m);
    if (!sol_.unmatched_rows.empty()) {
      // Rows without an augmenting path get all their pairs.
      log::debug("matching: {} rows need more candidates (round {})", sol_.unmatched_rows.size(), m.rounds);
      const Keep all;
      edges_.append(rows_are_a()
                        ? exact_block(comm_, op_, tiles_, sol_.unmatched_rows, iota_vector(op_.n_b), all, &m.pairs_checked)
                        : exact_block(comm_, op_, tiles_, iota_vector(op_.n_a), sol_.unmatched_rows, all, &m.pairs_checked));
      continue;
    }
    auto t = std::chrono::steady_clock::now();
    m.certified = certify(m);
    certify_seconds += lap_seconds(t);
    if (m.certified) break;
  }
  m.rounds = std::min<int64_t>(m.rounds, kMaxPricingRounds);
  return sol_;
}

// The matching from A's side, with the float64 cosines of the matched edges.
void read_matching(const core::LapSolution& sol, const Edges& edges, int64_t n_a, int64_t n_b, Matching& m) {
  const bool rows_are_a = n_a <= n_b;
  const int64_t n_small = std::min(n_a, n_b);
  std::unordered_map<int64_t, double> weight;
  weight.reserve(edges.w.size());
  for (size_t e = 0; e < edges.w.size(); ++e) weight.emplace(edges.a[e] * n_b + edges.b[e], edges.w[e]);
  m.match_ab.assign(static_cast<size_t>(n_a), -1);
  m.cos_ab.assign(static_cast<size_t>(n_a), std::numeric_limits<float>::quiet_NaN());
  for (int64_t r = 0; r < n_small; ++r) {
    const int64_t c = sol.col_of_row[r];
    if (c < 0) continue;
    m.match_ab[rows_are_a ? r : c] = rows_are_a ? c : r;
  }
  for (int64_t i = 0; i < n_a; ++i) {
    if (m.match_ab[i] < 0) continue;
    const double w = weight.at(i * n_b + m.match_ab[i]);
    m.cos_ab[i] = static_cast<float>(w);
    m.objective += w;
  }
  m.mean_cos = m.objective / static_cast<double>(n_small);
}

}  // namespace

Matching certified_matching(const parallel::Comm& comm, const at::Tensor& a_local, const at::Tensor& b,
                            const SimilarityPass& pass, const TileSizes& tiles, const config::CompareConfig& opt,
                            const ScanDevice& where) {
  const auto began = std::chrono::steady_clock::now();
  Operands op;
  op.mine = pass.mine;
  op.n_a = pass.n_a;
  op.n_b = pass.n_b;
  op.a32 = pass.a_unit;
  op.b32 = pass.b_unit;
  // float64 unit rows from the inputs, so rescored cosines match a float64 reference.
  op.a64 = core::unit_rows(a_local, nullptr, at::kDouble);
  op.b64 = core::unit_rows(b, nullptr, at::kDouble);
  if (where.generic) op.a32_device = op.a32.to(where.device), op.b32_device = op.b32.to(where.device);
  std::vector<float> t, s;
  auto start = std::chrono::steady_clock::now();
  Edges edges = candidate_edges(comm, op, pass, t, s);
  const double gather_s = lap_seconds(start);
  Matching m;
  Pricing pricing(comm, op, tiles, opt, std::move(edges), std::move(t), std::move(s));
  const core::LapSolution& sol = pricing.run(m);
  log::debug("matching {}x{}: candidates {:.2f} s, solve {:.2f} s, certificate {:.2f} s ({} rounds, {} edges)", op.n_a, op.n_b,
            gather_s, pricing.solve_seconds, pricing.certify_seconds, m.rounds, pricing.edges().w.size());
  read_matching(sol, pricing.edges(), op.n_a, op.n_b, m);
  m.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
  return m;
}

}  // namespace universae::compare
