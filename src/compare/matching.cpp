#include "compare/matching.hpp"

#include <ATen/Functions.h>
#include <ATen/ops/tensor.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

#include "core/error.hpp"
#include "core/lap.hpp"
#include "core/prefetch.hpp"
#include "core/screen.hpp"
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

// The pairs of an exact block that violate the duals, w > α_i + β_j + tol (α by row of A, β by column
// of B), compared in float64.
struct Keep {
  const std::vector<double>* alpha = nullptr;
  const std::vector<double>* beta = nullptr;
  double tol = 0;
  bool operator()(int64_t i, int64_t j, float w) const { return w > (*alpha)[i] + (*beta)[j] + tol; }
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
  // Dot products in place (no (edges × d) copies), sixteen running sums each: with one, a chain of d
  // dependent additions, rescoring the 32,768-latent pair's 1.3M candidates took about 0.13 s a rank.
  // The rows come in no order the hardware can predict, so those a few pairs ahead are asked for.
  constexpr size_t kAhead = 4;
  for (size_t e = 0; e < a.size(); ++e) {
    if (e + kAhead < a.size())
      core::prefetch_row(pa + (a[e + kAhead] - op.mine.begin) * d, d), core::prefetch_row(pb + b[e + kAhead] * d, d);
    local.w[e] = core::dot_f64(pa + (a[e] - op.mine.begin) * d, pb + b[e] * d, d);
  }
  Edges all;
  all.a = comm.allgatherv(local.a);
  all.b = comm.allgatherv(local.b);
  all.w = comm.allgatherv(local.w);
  return all;
}

// Pairs of (rows_a ∩ this rank's rows) × cols_b, every one of them, rescored and gathered on every rank
// (rows the sparse solve could not match get all their pairs). rows_a, cols_b: sorted global indices,
// the same on every rank.
Edges all_pairs(const parallel::Comm& comm, const Operands& op, const std::vector<int64_t>& rows_a,
                const std::vector<int64_t>& cols_b, int64_t* checked) {
  std::vector<int64_t> pa, pb;
  int64_t mine = 0;
  for (int64_t i : rows_a)
    if (i >= op.mine.begin && i < op.mine.end) {
      ++mine;
      for (int64_t j : cols_b) pa.push_back(i), pb.push_back(j);
    }
  *checked += comm.allreduce_sum(mine * static_cast<int64_t>(cols_b.size()));
  return rescore_and_gather(comm, op, pa, pb);
}

// The certificate's exact check of this rank's suspect rows. A pair outside the edges has W_ij <= t_i,
// so it can violate the duals only where β_j < t_i - α_i - tol: with B's columns in increasing β
// (`by_beta`), row i needs only the first prefix[i] of them. On bench_hungarian.py's 32,768-latent pair
// the first round's prefixes hold 5 % of the suspect rows' pairs (21.6M of 433M; the whole rows took
// 2.3 s of a 12 s matching). Rows go in increasing prefix so that a tile's product covers little more
// than its rows' prefixes (`sorted_beta`: β in that order). Of a row's violating pairs (Keep) only the `most` most violated (by
// w - α_i - β_j) are kept; besides them, each row keeps the top deep_k of the rest of its prefix as
// candidates: the pairs nearest to violating the next duals. *checked counts the pairs of the prefixes,
// *kept the violating pairs (all of them), over all ranks.
class PricedBlock {
 public:
  PricedBlock(const Operands& op, const TileSizes& tiles, const Keep& keep, const std::vector<int64_t>& by_beta,
              const std::vector<double>& sorted_beta, int64_t most, int64_t deep_k)
      : op_(op), tiles_(tiles), keep_(keep), by_beta_(by_beta), sorted_beta_(sorted_beta), most_(most), deep_k_(deep_k) {}

  Edges run(const parallel::Comm& comm, std::vector<int64_t> rows, const std::vector<int64_t>& prefix, int64_t* checked,
            int64_t* kept) {
    std::stable_sort(rows.begin(), rows.end(), [&](int64_t x, int64_t y) { return prefix[x] < prefix[y]; });
    int64_t products = 0;
    const at::Tensor order = at::tensor(by_beta_, at::kLong);
    const at::Tensor b_sorted = op_.a32_device.defined() ? op_.b32_device.index_select(0, order.to(op_.b32_device.device()))
                                                         : op_.b32.index_select(0, order);
    if (op_.a32_device.defined()) {  // the duals on the device once per round, not per tile
      alpha_device_ = at::tensor(*keep_.alpha, at::kDouble).to(op_.a32_device.device());
      sorted_beta_device_ = at::tensor(sorted_beta_, at::kDouble).to(op_.a32_device.device());
    }
    for (size_t r0 = 0; r0 < rows.size(); r0 += static_cast<size_t>(tiles_.rows)) {
      const std::vector<int64_t> tile(rows.begin() + static_cast<std::ptrdiff_t>(r0),
                                      rows.begin() + static_cast<std::ptrdiff_t>(std::min(rows.size(), r0 + tiles_.rows)));
      std::vector<int64_t> widths(tile.size());
      int64_t width = 0;  // the last row's, the widest
      for (size_t r = 0; r < tile.size(); ++r) widths[r] = prefix[tile[r]], products += widths[r], width = widths[r];
      if (width == 0) continue;
      std::vector<int64_t> local(tile);
      for (auto& i : local) i -= op_.mine.begin;
      if (op_.a32_device.defined()) {
        on_device(tile, local, widths, b_sorted.narrow(0, 0, width));
      } else {
        const at::Tensor s = at::mm(op_.a32.index_select(0, at::tensor(local, at::kLong)), b_sorted.narrow(0, 0, width).t());
        on_host(tile, widths, s.contiguous());
      }
    }
    *checked += comm.allreduce_sum(products);
    *kept = comm.allreduce_sum(n_kept_);
    return rescore_and_gather(comm, op_, pa_, pb_);
  }

 private:
  void on_host(const std::vector<int64_t>& tile, const std::vector<int64_t>& widths, const at::Tensor& s) {
    const float* sim = s.data_ptr<float>();
    const int64_t stride = s.size(1);
    core::TopKLists deep(deep_k_ > 0 ? static_cast<int64_t>(tile.size()) : 0, std::max<int64_t>(deep_k_, 1));
    // By violation, positions in the prefix; no longer than the tile is wide (`most` doubles each round).
    const int64_t n_most = std::min(most_, stride);
    core::TopKLists most(static_cast<int64_t>(tile.size()), n_most);
    for (size_t r = 0; r < tile.size(); ++r) {
      const int64_t i = tile[r];
      const auto e = static_cast<int64_t>(r);
      for (int64_t c = 0; c < widths[r]; ++c) {
        const float w = sim[e * stride + c];
        if (keep_(i, by_beta_[c], w)) {
          most.offer(e, static_cast<float>(w - ((*keep_.alpha)[i] + (*keep_.beta)[by_beta_[c]])), c);
          ++n_kept_;
        } else if (deep_k_ > 0 && w > deep.kth(e)) {
          deep.offer(e, w, c);
        }
      }
      for (int64_t c = 0; c < n_most; ++c)
        if (const int64_t at = most.indices(e)[c]; at >= 0) pa_.push_back(i), pb_.push_back(by_beta_[at]);
      for (int64_t c = 0; c < deep_k_; ++c)
        if (const int64_t at = deep.indices(e)[c]; at >= 0) pa_.push_back(i), pb_.push_back(by_beta_[at]);
    }
  }

  // The same on the device (the generic kernels): the products, the test and both lists stay there; the
  // lists come back, in the host loop's order.
  void on_device(const std::vector<int64_t>& tile, const std::vector<int64_t>& local, const std::vector<int64_t>& widths,
                 const at::Tensor& b_prefix) {
    const at::Device device = op_.a32_device.device();
    const at::Tensor s = at::mm(op_.a32_device.index_select(0, at::tensor(local, at::kLong).to(device)), b_prefix.t());
    const int64_t width = s.size(1);
    const at::Tensor in_prefix =
        at::arange(width, at::TensorOptions(device).dtype(at::kLong)).unsqueeze(0).lt(at::tensor(widths, at::kLong).to(device).unsqueeze(1));
    const at::Tensor alpha = alpha_device_.index_select(0, at::tensor(tile, at::kLong).to(device));
    const at::Tensor beta = sorted_beta_device_.narrow(0, 0, width);
    const at::Tensor sum = alpha.unsqueeze(1).add(beta.unsqueeze(0));  // α_i + β_j, then + tol: as Keep adds them
    const at::Tensor wide = s.to(at::kDouble);
    const at::Tensor violating = wide.gt(sum.add(keep_.tol)).logical_and_(in_prefix);
    n_kept_ += violating.sum().item<int64_t>();
    const int64_t n_most = std::min(most_, width);
    core::DeviceTopK most(static_cast<int64_t>(tile.size()), n_most, device);
    most.offer_rows(wide.sub(sum).to(at::kFloat).masked_fill_(violating.logical_not(), -std::numeric_limits<float>::infinity()), 0, 0);
    const core::TopKLists most_lists = most.to_host();
    core::TopKLists lists(0, 1);
    if (deep_k_ > 0) {
      core::DeviceTopK deep(static_cast<int64_t>(tile.size()), deep_k_, device);
      deep.offer_rows(s.masked_fill(violating.logical_or(in_prefix.logical_not()), -std::numeric_limits<float>::infinity()), 0, 0);
      lists = deep.to_host();
    }
    for (int64_t r = 0; r < static_cast<int64_t>(tile.size()); ++r) {
      for (int64_t c = 0; c < n_most; ++c)
        if (const int64_t at = most_lists.indices(r)[c]; at >= 0) pa_.push_back(tile[r]), pb_.push_back(by_beta_[at]);
      for (int64_t c = 0; c < deep_k_; ++c)
        if (const int64_t at = lists.indices(r)[c]; at >= 0) pa_.push_back(tile[r]), pb_.push_back(by_beta_[at]);
    }
  }

  const Operands& op_;
  const TileSizes& tiles_;
  const Keep& keep_;
  const std::vector<int64_t>& by_beta_;
  const std::vector<double>& sorted_beta_;
  int64_t most_, deep_k_;
  at::Tensor alpha_device_, sorted_beta_device_;  // with the generic kernels: α by row, β in by_beta_ order
  std::vector<int64_t> pa_, pb_;
  int64_t n_kept_ = 0;
};

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

// Step 1: the candidates of the pass's top-K lists as rescored edges, and each row's K-th best (t_i;
// -inf when a list holds the whole row): every pair of row i outside the candidates is bounded by t_i.
// (The columns' K-th best bound them too; at 32,768 latents it would spare 13 % of the certificate's
// products, not worth a second sort.)
Edges candidate_edges(const parallel::Comm& comm, const Operands& op, const SimilarityPass& pass, std::vector<float>& t) {
  std::vector<float> t_local(static_cast<size_t>(op.mine.size()));
  // Widened by the pass's product error (compare.dtype): an upper bound on every pair not listed.
  const auto slack = static_cast<float>(pass.slack);
  for (int64_t r = 0; r < op.mine.size(); ++r) t_local[r] = pass.rows.kth(r) + slack;
  t = comm.allgatherv(t_local);
  std::vector<int64_t> ca, cb;
  for (int64_t r = 0; r < op.mine.size(); ++r)
    for (int64_t c = 0; c < pass.rows.k(); ++c)
      if (pass.rows.indices(r)[c] >= 0) ca.push_back(op.mine.begin + r), cb.push_back(pass.rows.indices(r)[c]);
  // A column's pair that its row lists too is left out (make_sparse_costs would keep the first anyway):
  // at 32,768 latents 41 % of the columns' pairs, each an exact float64 product of rows read from memory.
  for (int64_t j = 0; j < op.n_b; ++j)
    for (int64_t c = 0; c < pass.cols.k(); ++c) {
      const int64_t i = pass.cols.indices(j)[c];
      if (i < op.mine.begin || i >= op.mine.end) continue;
      const int64_t* listed = pass.rows.indices(i - op.mine.begin);
      if (std::find(listed, listed + pass.rows.k(), j) == listed + pass.rows.k()) ca.push_back(i), cb.push_back(j);
    }
  return rescore_and_gather(comm, op, ca, cb);
}

// How many of a row's violating pairs pricing round `round` (from 1) adds, its most violated: 8, then
// twice as many each round, so that within 15 rounds even 131,072 columns are all added and the
// rounds stay bounded as when every violating pair was added. Adding them all at once put 2.1M pairs
// into the first warm re-solve at 32,768 latents (33M at 131,072), most of which the optimum never
// uses; 8 at a time took 8 rounds instead of 6 and the matching 4.4 s -> 3.3-3.6 s (bench_hungarian.py).
int64_t most_violated(int64_t round, int64_t n_b) {
  return std::min<int64_t>(n_b, int64_t{8} << std::min<int64_t>(round - 1, 40));
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
          std::vector<float> t)
      : comm_(comm), op_(op), tiles_(tiles), opt_(opt), edges_(std::move(edges)), t_(std::move(t)) {}
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
  std::vector<float> t_;
  core::SparseCosts costs_;  // the costs of edges_[0, in_costs_)
  size_t in_costs_ = 0;
  core::LapSolution sol_;
  bool warm_ = false;
};

void Pricing::solve(Matching& m) {
  // Cost 2 - cos >= 0 (cos <= 1 up to rounding); a constant shift leaves the optimum unchanged. Only the
  // edges added since the last solve are sorted, then merged in (a rebuild from all 3-5M edges took
  // 0.2-0.6 s a round at 32,768 latents).
  auto t = std::chrono::steady_clock::now();
  const auto built = static_cast<std::ptrdiff_t>(in_costs_);
  std::vector<double> cost(edges_.w.size() - in_costs_);
  for (size_t e = 0; e < cost.size(); ++e) cost[e] = 2.0 - edges_.w[in_costs_ + e];
  const bool ra = rows_are_a();
  const std::vector<int64_t>& rows = ra ? edges_.a : edges_.b;
  const std::vector<int64_t>& cols = ra ? edges_.b : edges_.a;
  core::SparseCosts fresh = core::make_sparse_costs(std::min(op_.n_a, op_.n_b), std::max(op_.n_a, op_.n_b),
                                                    {rows.begin() + built, rows.end()}, {cols.begin() + built, cols.end()},
                                                    std::move(cost));
  costs_ = in_costs_ == 0 ? std::move(fresh) : core::merge_sparse_costs(costs_, fresh);
  in_costs_ = edges_.w.size();
  const double build_s = lap_seconds(t);
  sol_ = warm_ ? core::solve_sparse_lap(costs_, &sol_) : core::solve_sparse_lap(costs_);
  const double one_solve_s = lap_seconds(t);
  solve_seconds += build_s + one_solve_s;
  log::debug("matching: round {}: {} edges, build {:.2f} s, {} solve {:.2f} s", m.rounds, edges_.w.size(), build_s,
            warm_ ? "warm" : "cold", one_solve_s);
  warm_ = false;
  m.candidate_edges = static_cast<int64_t>(costs_.col.size());  // without pairs added twice
}

bool Pricing::certify(Matching& m) {
  const bool ra = rows_are_a();
  const int64_t n_a = op_.n_a, n_b = op_.n_b;
  std::vector<double> alpha(static_cast<size_t>(n_a)), beta(static_cast<size_t>(n_b));
  for (int64_t i = 0; i < n_a; ++i) alpha[i] = ra ? 2.0 - sol_.u[i] : -sol_.v[i];
  for (int64_t j = 0; j < n_b; ++j) beta[j] = ra ? -sol_.v[j] : 2.0 - sol_.u[j];
  const double tol = opt_.certificate_tolerance;
  // Columns by increasing β (ties: the lower index); a pair outside the edges can violate only where
  // β_j < t_i - α_i - tol, a prefix of this order (widened by 1e-9, far above the sum's rounding, so the
  // exact test in Keep decides).
  std::vector<int64_t> by_beta = iota_vector(n_b);
  std::stable_sort(by_beta.begin(), by_beta.end(), [&](int64_t x, int64_t y) { return beta[x] < beta[y]; });
  std::vector<double> sorted_beta(static_cast<size_t>(n_b));
  for (int64_t c = 0; c < n_b; ++c) sorted_beta[c] = beta[by_beta[c]];
  std::vector<int64_t> prefix(static_cast<size_t>(n_a), 0), suspect;
  int64_t n_suspect = 0, n_pairs = 0;
  for (int64_t i = 0; i < n_a; ++i) {
    const double limit = static_cast<double>(t_[i]) - alpha[i] - tol + 1e-9;
    prefix[i] = std::lower_bound(sorted_beta.begin(), sorted_beta.end(), limit) - sorted_beta.begin();
    if (prefix[i] == 0) continue;
    ++n_suspect, n_pairs += prefix[i];
    if (i >= op_.mine.begin && i < op_.mine.end) suspect.push_back(i);
  }
  if (n_pairs == 0) return true;
  const int64_t deep_k = std::min<int64_t>(opt_.deep_factor * opt_.candidates, n_b);
  int64_t n_violating = 0;
  const Keep keep{&alpha, &beta, tol};
  const Edges violations =
      PricedBlock(op_, tiles_, keep, by_beta, sorted_beta, most_violated(m.rounds, n_b), deep_k)
          .run(comm_, std::move(suspect), prefix, &m.pairs_checked, &n_violating);
  if (n_violating == 0) return true;
  log::debug("matching: pricing round {} finds {} violating pairs ({} rows rechecked over {} pairs), adds {} edges", m.rounds,
             n_violating, n_suspect, n_pairs, violations.w.size());
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
      edges_.append(rows_are_a() ? all_pairs(comm_, op_, sol_.unmatched_rows, iota_vector(op_.n_b), &m.pairs_checked)
                                 : all_pairs(comm_, op_, iota_vector(op_.n_a), sol_.unmatched_rows, &m.pairs_checked));
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
  m.match_ab.assign(static_cast<size_t>(n_a), -1);
  m.cos_ab.assign(static_cast<size_t>(n_a), std::numeric_limits<float>::quiet_NaN());
  for (int64_t r = 0; r < n_small; ++r) {
    const int64_t c = sol.col_of_row[r];
    if (c < 0) continue;
    m.match_ab[rows_are_a ? r : c] = rows_are_a ? c : r;
  }
  // Each matched pair's float64 cosine, from the first of its edges (a pair added twice was rescored the
  // same way). One pass over the edges: a hash map of 4.6M edges cost 0.5 s at 32,768 latents.
  std::vector<double> weight(static_cast<size_t>(n_a), std::numeric_limits<double>::quiet_NaN());
  for (size_t e = edges.w.size(); e-- > 0;)
    if (m.match_ab[edges.a[e]] == edges.b[e]) weight[edges.a[e]] = edges.w[e];
  for (int64_t i = 0; i < n_a; ++i) {
    if (m.match_ab[i] < 0) continue;
    if (std::isnan(weight[i])) throw InternalError("matching: a matched pair is not among the edges");
    m.cos_ab[i] = static_cast<float>(weight[i]);
    m.objective += weight[i];
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
  std::vector<float> t;
  auto start = std::chrono::steady_clock::now();
  Edges edges = candidate_edges(comm, op, pass, t);
  const double gather_s = lap_seconds(start);
  Matching m;
  Pricing pricing(comm, op, tiles, opt, std::move(edges), std::move(t));
  const core::LapSolution& sol = pricing.run(m);
  log::debug("matching {}x{}: candidates {:.2f} s, solve {:.2f} s, certificate {:.2f} s ({} rounds, {} edges)", op.n_a, op.n_b,
            gather_s, pricing.solve_seconds, pricing.certify_seconds, m.rounds, pricing.edges().w.size());
  read_matching(sol, pricing.edges(), op.n_a, op.n_b, m);
  m.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
  return m;
}

}  // namespace universae::compare
