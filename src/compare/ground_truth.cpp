#include "compare/ground_truth.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/exact_sum.hpp"
#include "core/lap.hpp"
#include "core/sae_encode.hpp"
#include "core/sharding.hpp"
#include "core/similarity.hpp"

namespace universae::compare {
namespace {

constexpr int64_t kCandidates = 16;                    // per row, before the certificate adds what is missing
constexpr double kCertificateTolerance = 1e-12;        // reduced costs this far below 0 count as violations
constexpr int64_t kBlockEntries = int64_t{1} << 22;    // |cos| entries held at once (32 MB in float64)
constexpr double kMinInputNorm = 1e-6;                 // shrinkage skips tokens this small (SynthSAEBench)

int64_t block_rows(int64_t cols) { return std::max<int64_t>(1, kBlockEntries / std::max<int64_t>(1, cols)); }

// 1 − |cos| of rows [begin, end) of a against every row of b (unit rows, float64): the assignment's
// costs, >= 0 as core/lap.hpp needs (rounding can push |cos| of parallel rows just above 1).
at::Tensor cost_block(const at::Tensor& a, const at::Tensor& b, int64_t begin, int64_t end) {
  return (1.0 - at::mm(a.slice(0, begin, end), b.t()).abs()).clamp_min(0.0).contiguous();
}

struct Edges {
  std::vector<int64_t> rows, cols;
  std::vector<double> costs;
  void add(int64_t i, int64_t j, double c) { rows.push_back(i), cols.push_back(j), costs.push_back(c); }
};

// Each row's k cheapest columns.
Edges candidate_edges(const at::Tensor& a, const at::Tensor& b, int64_t k) {
  Edges e;
  const int64_t step = block_rows(b.size(0));
  for (int64_t begin = 0; begin < a.size(0); begin += step) {
    const int64_t end = std::min(a.size(0), begin + step);
    const auto [values, columns] = cost_block(a, b, begin, end).topk(k, 1, /*largest=*/false);
    const auto v = values.accessor<double, 2>();
    const auto c = columns.accessor<int64_t, 2>();
    for (int64_t i = 0; i < end - begin; ++i)
      for (int64_t r = 0; r < k; ++r) e.add(begin + i, c[i][r], v[i][r]);
  }
  return e;
}

// The certificate (core/lap.hpp): adds every pair whose reduced cost cost − u_i − v_j is negative,
// and every pair of a row the solver left unmatched; false when there is none, i.e. the assignment
// is optimal over all pairs.
bool add_violations(const at::Tensor& a, const at::Tensor& b, const core::LapSolution& s, Edges& e) {
  const int64_t n_b = b.size(0), step = block_rows(n_b);
  const at::Tensor v = at::tensor(s.v, at::kDouble);
  bool any = false;
  for (int64_t begin = 0; begin < a.size(0); begin += step) {
    const int64_t end = std::min(a.size(0), begin + step);
    const at::Tensor cost = cost_block(a, b, begin, end);
    const at::Tensor u = at::tensor(std::vector<double>(s.u.begin() + begin, s.u.begin() + end), at::kDouble);
    at::Tensor violates = (cost - u.unsqueeze(1) - v.unsqueeze(0)) < -kCertificateTolerance;
    for (int64_t i = begin; i < end; ++i)
      if (s.col_of_row[i] < 0) violates[i - begin].fill_(true);
    const at::Tensor where = violates.nonzero();  // (pairs, 2)
    const auto w = where.accessor<int64_t, 2>();
    const auto c = cost.accessor<double, 2>();
    for (int64_t p = 0; p < where.size(0); ++p) e.add(begin + w[p][0], w[p][1], c[w[p][0]][w[p][1]]);
    any = any || where.size(0) > 0;
  }
  return any;
}

// The assignment of every row of a (n_a <= n_b) to a distinct row of b maximising the total |cos|.
std::vector<int64_t> optimal_assignment(const at::Tensor& a, const at::Tensor& b) {
  Edges e = candidate_edges(a, b, std::min(kCandidates, b.size(0)));
  size_t edges = 0;
  for (;;) {
    const core::SparseCosts costs = core::make_sparse_costs(a.size(0), b.size(0), e.rows, e.cols, e.costs);
    const core::LapSolution s = core::solve_sparse_lap(costs);
    // No new pair since the last solve: only rounding was left to add (never in practice).
    if (!add_violations(a, b, s, e) || costs.col.size() == edges) return s.col_of_row;
    edges = costs.col.size();
  }
}

// Each row of w's largest |cos| with a row of g (the lowest index on ties).
std::vector<int64_t> best_matches(const at::Tensor& w, const at::Tensor& g) {
  std::vector<int64_t> best;
  const int64_t step = block_rows(g.size(0));
  for (int64_t begin = 0; begin < w.size(0); begin += step) {
    const at::Tensor block = at::mm(w.slice(0, begin, std::min(w.size(0), begin + step)), g.t()).abs().argmax(1).contiguous();
    best.insert(best.end(), block.data_ptr<int64_t>(), block.data_ptr<int64_t>() + block.numel());
  }
  return best;
}

double ratio_or_zero(int64_t num, int64_t den) { return den > 0 ? static_cast<double>(num) / static_cast<double>(den) : 0.0; }

void add_columns(std::vector<int64_t>& acc, const at::Tensor& sums) {
  const at::Tensor s = sums.to(at::kLong).contiguous();
  for (size_t i = 0; i < acc.size(); ++i) acc[i] += s.data_ptr<int64_t>()[i];
}

// What the held-out pass sums over the ranks.
struct HeldOutSums {
  DetectionCounts counts;
  core::wide_int ratio_sum = 0;  // Σ ‖x̂‖/‖x‖ in fixed point (order-independent)
  int64_t valid = 0, bad = 0;    // tokens with ‖x‖ > kMinInputNorm; non-finite ratios
};

void add_shrinkage(const at::Tensor& x, const at::Tensor& x_hat, HeldOutSums& sums) {
  const at::Tensor in = x.to(at::kDouble).norm(2, 1), out = x_hat.to(at::kDouble).norm(2, 1);
  const auto a = in.accessor<double, 1>(), b = out.accessor<double, 1>();
  for (int64_t t = 0; t < in.size(0); ++t) {
    if (!(a[t] > kMinInputNorm)) continue;
    const auto ratio = static_cast<float>(b[t] / a[t]);
    ++sums.valid;
    if (!core::accumulate_fixed(&ratio, 1, &sums.ratio_sum)) ++sums.bad;
  }
}

void reduce(const parallel::Comm& comm, HeldOutSums& s) {
  DetectionCounts& c = s.counts;
  const auto n = static_cast<int64_t>(c.true_pos.size());
  comm.allreduce_sum(c.true_pos.data(), n);
  comm.allreduce_sum(c.fired.data(), n);
  comm.allreduce_sum(c.active.data(), n);
  int64_t tokens[2] = {s.valid, s.bad};
  comm.allreduce_sum(tokens, 2);
  s.valid = tokens[0], s.bad = tokens[1];
  comm.allreduce_sum(&s.ratio_sum, 1);
}

HeldOutSums held_out_sums(const parallel::Comm& comm, const data::SyntheticSource& source, const io::SaeWeights& w,
                          const std::vector<int64_t>& best_match, int64_t tokens, int64_t block) {
  const int64_t d = source.d();
  const core::SaeEncoderWeights enc = io::encoder_weights(w);
  HeldOutSums sums{DetectionCounts(w.header.n_latents)};
  const core::Range chunks = core::shard_range(core::ceil_div(tokens, block), comm.rank(), comm.size());
  for (int64_t c = chunks.begin; c < chunks.end; ++c) {
    const int64_t count = std::min(block, tokens - c * block);
    at::Tensor x = at::empty({count, d}, at::kFloat);
    data::TrueCodes truth;
    source.tokens(data::kHeldOutTokenOffset + c * block, count, x.data_ptr<float>(), &truth);
    const at::Tensor z = core::codes(enc, x);
    sums.counts.add(z, truth, best_match, source.n_features());
    add_shrinkage(x, at::addmm(w.b_dec, z, w.W_dec), sums);
  }
  reduce(comm, sums);
  return sums;
}

}  // namespace

DecoderMatch match_to_truth(const at::Tensor& truth, const at::Tensor& decoder) {
  const at::Tensor g = core::unit_rows(truth, nullptr, at::kDouble), w = core::unit_rows(decoder, nullptr, at::kDouble);
  const int64_t m = g.size(0), n = w.size(0);
  DecoderMatch r;
  r.best_match = best_matches(w, g);
  std::vector<int64_t> distinct = r.best_match;
  std::sort(distinct.begin(), distinct.end());
  r.uniqueness = ratio_or_zero(std::unique(distinct.begin(), distinct.end()) - distinct.begin(), n);
  // Rows of the assignment: the smaller side, every one of which is matched.
  const bool latent_rows = n <= m;
  const std::vector<int64_t> partner = latent_rows ? optimal_assignment(w, g) : optimal_assignment(g, w);
  r.hungarian.assign(static_cast<size_t>(n), -1);
  const auto wa = w.accessor<double, 2>(), ga = g.accessor<double, 2>();
  double total = 0;
  for (int64_t i = 0; i < static_cast<int64_t>(partner.size()); ++i) {
    const int64_t latent = latent_rows ? i : partner[i], feature = latent_rows ? partner[i] : i;
    r.hungarian[latent] = feature;
    double dot = 0;
    for (int64_t k = 0; k < w.size(1); ++k) dot += wa[latent][k] * ga[feature][k];
    total += std::fabs(dot);
  }
  r.mcc = std::min(n, m) > 0 ? total / static_cast<double>(std::min(n, m)) : 0.0;
  return r;
}

DetectionCounts::DetectionCounts(int64_t n_latents)
    : true_pos(static_cast<size_t>(n_latents)), fired(static_cast<size_t>(n_latents)), active(static_cast<size_t>(n_latents)) {}

void DetectionCounts::add(const at::Tensor& codes, const data::TrueCodes& truth, const std::vector<int64_t>& best_match,
                          int64_t n_features) {
  const int64_t tokens = codes.size(0);
  at::Tensor present = at::zeros({tokens, n_features}, at::kBool);  // (B, m) the true code's support
  auto p = present.accessor<bool, 2>();
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t e = truth.offsets[t]; e < truth.offsets[t + 1]; ++e) p[t][truth.feature[e]] = true;
  const at::Tensor matched = present.index_select(1, at::tensor(best_match, at::kLong));  // (B, n)
  const at::Tensor fires = codes > 0;
  add_columns(true_pos, (fires & matched).sum(0));
  add_columns(fired, fires.sum(0));
  add_columns(active, matched.sum(0));
}

Detection detection_scores(const DetectionCounts& c) {
  Detection d;
  const auto n = static_cast<int64_t>(c.true_pos.size());
  for (int64_t i = 0; i < n; ++i) {
    const double precision = ratio_or_zero(c.true_pos[i], c.fired[i]), recall = ratio_or_zero(c.true_pos[i], c.active[i]);
    d.precision += precision;
    d.recall += recall;
    d.f1 += precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0.0;
  }
  if (n > 0) d.precision /= static_cast<double>(n), d.recall /= static_cast<double>(n), d.f1 /= static_cast<double>(n);
  return d;
}

std::vector<std::pair<std::string, double>> GroundTruthMetrics::attributes() const {
  return {{"ground_truth_mcc", mcc},
          {"ground_truth_uniqueness", uniqueness},
          {"ground_truth_precision", precision},
          {"ground_truth_recall", recall},
          {"ground_truth_f1", f1},
          {"ground_truth_shrinkage", shrinkage},
          {"ground_truth_tokens", static_cast<double>(tokens)}};
}

GroundTruthMetrics ground_truth_metrics(const parallel::Comm& comm, const data::SyntheticSource& source,
                                        const io::SaeWeights& sae, int64_t tokens, int64_t block) {
  const at::Tensor dictionary =
      at::from_blob(const_cast<float*>(source.dictionary().data()), {source.n_features(), source.d()}, at::kFloat);
  const DecoderMatch match = match_to_truth(dictionary, sae.W_dec);
  const HeldOutSums sums = held_out_sums(comm, source, sae, match.best_match, tokens, std::max<int64_t>(1, block));
  const Detection detection = detection_scores(sums.counts);
  GroundTruthMetrics g;
  g.mcc = match.mcc;
  g.uniqueness = match.uniqueness;
  g.precision = detection.precision;
  g.recall = detection.recall;
  g.f1 = detection.f1;
  g.shrinkage = sums.valid == 0 || sums.bad > 0 ? std::nan("")
                                                 : std::ldexp(static_cast<double>(sums.ratio_sum), -core::kFixedFractionBits) / static_cast<double>(sums.valid);
  g.tokens = tokens;
  return g;
}

}  // namespace universae::compare
