#include "compare/matching.hpp"

#include <ATen/Functions.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <limits>
#include <unordered_map>

#include "core/error.hpp"
#include "core/lap.hpp"
#include "core/similarity.hpp"
#include "parallel/log.hpp"

namespace universae::compare {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

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

// This rank's rows of A and all of B, as unit rows in float32 (for GEMM) and float64 (to rescore).
struct Operands {
  core::Range mine;
  at::Tensor a32, a64, b32, b64;
  int64_t n_a = 0, n_b = 0;
};

// Exact float64 cosines of pairs whose A row this rank owns, gathered on every rank.
Edges rescore_and_gather(const parallel::Comm& comm, const Operands& op, const std::vector<int64_t>& a,
                         const std::vector<int64_t>& b) {
  Edges local;
  local.a = a;
  local.b = b;
  if (!a.empty()) {
    const at::Tensor ia = at::sub(at::tensor(a, at::kLong), op.mine.begin);
    const at::Tensor w = at::sum(at::mul(op.a64.index_select(0, ia), op.b64.index_select(0, at::tensor(b, at::kLong))), {1})
                             .contiguous();
    local.w.assign(w.data_ptr<double>(), w.data_ptr<double>() + w.numel());
  }
  Edges all;
  all.a = comm.allgatherv(local.a);
  all.b = comm.allgatherv(local.b);
  all.w = comm.allgatherv(local.w);
  return all;
}

// Pass 1: every row's top-kr columns (local rows) and every column's top-kc rows (over this rank's
// rows, merged over ranks afterwards), from one stream of (tile rows × tile cols) GEMMs.
void candidate_pass(const Operands& op, const TileSizes& tiles, int64_t kr, int64_t kc, at::Tensor& row_val,
                    at::Tensor& row_idx, at::Tensor& col_val, at::Tensor& col_idx) {
  const int64_t rows = op.mine.size();
  row_val = at::full({rows, kr}, kNegInf, at::kFloat);
  row_idx = at::full({rows, kr}, -1, at::kLong);
  col_val = at::full({kc, op.n_b}, kNegInf, at::kFloat);
  col_idx = at::full({kc, op.n_b}, -1, at::kLong);
  for (int64_t r0 = 0; r0 < rows; r0 += tiles.rows) {
    const int64_t tr = std::min(tiles.rows, rows - r0);
    const at::Tensor tile = op.a32.narrow(0, r0, tr);
    at::Tensor rv = row_val.narrow(0, r0, tr), ri = row_idx.narrow(0, r0, tr);
    for (int64_t c0 = 0; c0 < op.n_b; c0 += tiles.cols) {
      const int64_t tc = std::min(tiles.cols, op.n_b - c0);
      const at::Tensor s = at::mm(tile, op.b32.narrow(0, c0, tc).t());  // (tr, tc)
      {
        auto [v, i] = at::topk(s, std::min(kr, tc), 1);
        const at::Tensor cv = at::cat({rv, v}, 1), ci = at::cat({ri, at::add(i, c0)}, 1);
        auto [best, pos] = at::topk(cv, kr, 1);
        rv.copy_(best);
        ri.copy_(at::gather(ci, 1, pos));
      }
      {
        auto [v, i] = at::topk(s, std::min(kc, tr), 0);
        at::Tensor cv = col_val.narrow(1, c0, tc), ci = col_idx.narrow(1, c0, tc);
        const at::Tensor mv = at::cat({cv, v}, 0), mi = at::cat({ci, at::add(i, op.mine.begin + r0)}, 0);
        auto [best, pos] = at::topk(mv, kc, 0);
        cv.copy_(best);
        ci.copy_(at::gather(mi, 0, pos));
      }
    }
  }
}

// Pairs of (rows_a ∩ this rank's rows) × cols_b computed exactly; those `keep` accepts are rescored
// and gathered on every rank. rows_a, cols_b: sorted global indices, the same on every rank.
Edges exact_block(const parallel::Comm& comm, const Operands& op, const TileSizes& tiles,
                  const std::vector<int64_t>& rows_a, const std::vector<int64_t>& cols_b,
                  const std::function<bool(int64_t, int64_t, float)>& keep, int64_t* checked) {
  std::vector<int64_t> mine_rows;
  for (int64_t i : rows_a)
    if (i >= op.mine.begin && i < op.mine.end) mine_rows.push_back(i);
  std::vector<int64_t> pa, pb;
  const at::Tensor cols = at::tensor(cols_b, at::kLong);
  const at::Tensor b_sel = op.b32.index_select(0, cols);
  for (size_t r0 = 0; r0 < mine_rows.size(); r0 += static_cast<size_t>(tiles.rows)) {
    const size_t tr = std::min(static_cast<size_t>(tiles.rows), mine_rows.size() - r0);
    std::vector<int64_t> local(mine_rows.begin() + static_cast<std::ptrdiff_t>(r0),
                               mine_rows.begin() + static_cast<std::ptrdiff_t>(r0 + tr));
    for (auto& i : local) i -= op.mine.begin;
    const at::Tensor s = at::mm(op.a32.index_select(0, at::tensor(local, at::kLong)), b_sel.t()).contiguous();
    const float* sim = s.data_ptr<float>();
    for (size_t r = 0; r < tr; ++r)
      for (size_t c = 0; c < cols_b.size(); ++c)
        if (keep(mine_rows[r0 + r], cols_b[c], sim[r * cols_b.size() + c]))
          pa.push_back(mine_rows[r0 + r]), pb.push_back(cols_b[c]);
  }
  *checked += comm.allreduce_sum(static_cast<int64_t>(mine_rows.size() * cols_b.size()));
  return rescore_and_gather(comm, op, pa, pb);
}

std::vector<int64_t> iota_vector(int64_t n) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[i] = i;
  return v;
}

}  // namespace

Matching certified_matching(const parallel::Comm& comm, const at::Tensor& a_local, int64_t n_a, const at::Tensor& b,
                            const TileSizes& tiles, const MatchingOptions& opt) {
  const auto start = std::chrono::steady_clock::now();
  Operands op;
  op.mine = a_rows_of_rank(n_a, tiles, comm);
  op.n_a = n_a;
  op.n_b = b.size(0);
  op.a32 = core::unit_rows(a_local, nullptr);
  op.b32 = core::unit_rows(b, nullptr);
  // float64 unit rows from the float64 inputs, so rescored cosines match a float64 reference.
  auto unit64 = [](const at::Tensor& m) {
    const at::Tensor d = m.to(at::kDouble);
    const at::Tensor norms = at::sqrt(at::sum(at::mul(d, d), {1}, true));
    return at::div(d, at::where(at::eq(norms, 0.0), at::ones_like(norms), norms)).contiguous();
  };
  op.a64 = unit64(a_local);
  op.b64 = unit64(b);
  const int64_t kr = std::min(opt.candidates, op.n_b), kc = std::min(opt.candidates, n_a);

  // 1. Candidates and the thresholds t (rows) and s (columns) that bound every other pair.
  at::Tensor row_val, row_idx, col_val, col_idx;
  candidate_pass(op, tiles, kr, kc, row_val, row_idx, col_val, col_idx);
  {
    const std::vector<float> v(col_val.data_ptr<float>(), col_val.data_ptr<float>() + col_val.numel());
    const std::vector<int64_t> i(col_idx.data_ptr<int64_t>(), col_idx.data_ptr<int64_t>() + col_idx.numel());
    const at::Tensor all_v = at::from_blob(const_cast<float*>(comm.allgatherv(v).data()), {comm.size() * kc, op.n_b}, at::kFloat).clone();
    const std::vector<int64_t> gathered_i = comm.allgatherv(i);
    const at::Tensor all_i = at::from_blob(const_cast<int64_t*>(gathered_i.data()), {comm.size() * kc, op.n_b}, at::kLong).clone();
    auto [best, pos] = at::topk(all_v, kc, 0);
    col_val = best.contiguous();
    col_idx = at::gather(all_i, 0, pos).contiguous();
  }
  std::vector<float> t_local(static_cast<size_t>(op.mine.size()), kNegInf);
  if (kr < op.n_b) {
    const at::Tensor kth = row_val.select(1, kr - 1).contiguous();
    std::copy(kth.data_ptr<float>(), kth.data_ptr<float>() + kth.numel(), t_local.begin());
  }
  const std::vector<float> t = comm.allgatherv(t_local);
  std::vector<float> s(static_cast<size_t>(op.n_b), kNegInf);
  if (kc < n_a) {
    const float* last = col_val[kc - 1].contiguous().data_ptr<float>();
    std::copy(last, last + op.n_b, s.begin());
  }

  std::vector<int64_t> ca, cb;
  const int64_t* ri = row_idx.data_ptr<int64_t>();
  for (int64_t r = 0; r < op.mine.size(); ++r)
    for (int64_t c = 0; c < kr; ++c) ca.push_back(op.mine.begin + r), cb.push_back(ri[r * kr + c]);
  const int64_t* ci = col_idx.data_ptr<int64_t>();
  for (int64_t c = 0; c < kc; ++c)
    for (int64_t j = 0; j < op.n_b; ++j) {
      const int64_t i = ci[c * op.n_b + j];
      if (i >= op.mine.begin && i < op.mine.end) ca.push_back(i), cb.push_back(j);
    }
  Edges edges = rescore_and_gather(comm, op, ca, cb);

  // 2-3. Solve on the edges; certify over all pairs; add what violates; repeat.
  const bool rows_are_a = n_a <= op.n_b;
  const int64_t n_small = std::min(n_a, op.n_b), n_large = std::max(n_a, op.n_b);
  Matching m;
  core::LapSolution sol;
  std::vector<double> alpha(static_cast<size_t>(n_a)), beta(static_cast<size_t>(op.n_b));
  for (m.rounds = 1; m.rounds <= opt.max_rounds; ++m.rounds) {
    // Cost 2 - cos >= 0 (cos <= 1 up to rounding); a constant shift leaves the optimum unchanged.
    std::vector<double> cost(edges.w.size());
    for (size_t e = 0; e < cost.size(); ++e) cost[e] = 2.0 - edges.w[e];
    sol = core::solve_sparse_lap(core::make_sparse_costs(n_small, n_large, rows_are_a ? edges.a : edges.b,
                                                         rows_are_a ? edges.b : edges.a, cost));
    m.candidate_edges = static_cast<int64_t>(edges.w.size());
    if (!sol.unmatched_rows.empty()) {
      // Rows without an augmenting path get all their pairs.
      log::info("matching: {} rows need more candidates (round {})", sol.unmatched_rows.size(), m.rounds);
      const auto all = [](int64_t, int64_t, float) { return true; };
      edges.append(rows_are_a ? exact_block(comm, op, tiles, sol.unmatched_rows, iota_vector(op.n_b), all, &m.pairs_checked)
                              : exact_block(comm, op, tiles, iota_vector(n_a), sol.unmatched_rows, all, &m.pairs_checked));
      continue;
    }
    for (int64_t i = 0; i < n_a; ++i) alpha[i] = rows_are_a ? 2.0 - sol.u[i] : -sol.v[i];
    for (int64_t j = 0; j < op.n_b; ++j) beta[j] = rows_are_a ? -sol.v[j] : 2.0 - sol.u[j];
    const double min_alpha = *std::min_element(alpha.begin(), alpha.end());
    const double min_beta = *std::min_element(beta.begin(), beta.end());
    std::vector<int64_t> suspect_a, suspect_b;
    for (int64_t i = 0; i < n_a; ++i)
      if (t[i] > alpha[i] + min_beta + opt.tolerance) suspect_a.push_back(i);
    for (int64_t j = 0; j < op.n_b; ++j)
      if (s[j] > min_alpha + beta[j] + opt.tolerance) suspect_b.push_back(j);
    if (suspect_a.empty() || suspect_b.empty()) {
      m.certified = true;
      break;
    }
    const Edges violations = exact_block(
        comm, op, tiles, suspect_a, suspect_b,
        [&](int64_t i, int64_t j, float w) { return w > alpha[i] + beta[j] + opt.tolerance; }, &m.pairs_checked);
    if (violations.w.empty()) {
      m.certified = true;
      break;
    }
    log::info("matching: pricing round {} adds {} violating pairs ({} rows, {} columns checked)", m.rounds,
              violations.w.size(), suspect_a.size(), suspect_b.size());
    edges.append(violations);
  }
  m.rounds = std::min<int64_t>(m.rounds, opt.max_rounds);

  // The matching from A's side, with the float64 cosines of the matched edges.
  std::unordered_map<int64_t, double> weight;
  weight.reserve(edges.w.size());
  for (size_t e = 0; e < edges.w.size(); ++e) weight.emplace(edges.a[e] * op.n_b + edges.b[e], edges.w[e]);
  m.match_ab.assign(static_cast<size_t>(n_a), -1);
  m.cos_ab.assign(static_cast<size_t>(n_a), std::numeric_limits<float>::quiet_NaN());
  for (int64_t r = 0; r < n_small; ++r) {
    const int64_t c = sol.col_of_row[r];
    if (c < 0) continue;
    const int64_t i = rows_are_a ? r : c, j = rows_are_a ? c : r;
    m.match_ab[i] = j;
  }
  for (int64_t i = 0; i < n_a; ++i) {
    if (m.match_ab[i] < 0) continue;
    const double w = weight.at(i * op.n_b + m.match_ab[i]);
    m.cos_ab[i] = static_cast<float>(w);
    m.objective += w;
  }
  m.mean_cos = m.objective / static_cast<double>(n_small);
  m.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return m;
}

}  // namespace universae::compare
