// Spliced evaluation (lm/sae_evaluation.hpp): per batch, one clean forward, one spliced forward per
// SAE and one zero-ablated forward per hookpoint, each from the block that holds its hookpoint.
#include "lm/sae_evaluation.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>

#include "core/error.hpp"
#include "core/sae_encode.hpp"
#include "parallel/log.hpp"

namespace universae::lm {
namespace {

// Sums of one SAE over one batch: the scalars, then Σx_d, Σx_d², Σr_d, Σr_d² (r = x − x̂).
enum SaeSum { kNll, kKl, kNormRatio, kHatSquared, kDot, kActive, kResidualSquared, kScalars };
int64_t sae_stride(int64_t d) { return kScalars + 4 * d; }

// z W_dec + b_dec from the non-zero codes only (nnz · d instead of T · n · d: an SAE's codes are sparse).
at::Tensor sparse_decode(const at::Tensor& z, const at::Tensor& W_dec, const at::Tensor& b_dec) {
  const at::Tensor nz = z.nonzero();  // (nnz, 2): row, latent
  const at::Tensor rows = nz.select(1, 0), latents = nz.select(1, 1);
  const at::Tensor values = z.reshape(-1).index_select(0, rows * z.size(1) + latents).unsqueeze(1);
  return b_dec.expand({z.size(0), W_dec.size(1)}).contiguous().index_add_(0, rows, W_dec.index_select(0, latents) * values);
}

// Replaces rows [T × d] by the SAE's reconstruction, adding its sums to `sums`. In row blocks whose
// dense codes stay near 2^24 values (a 131K-latent SAE codes 128 rows at a time).
void reconstruct(const core::SaeEncoderWeights& enc, const io::SaeWeights& w, float* data, int64_t T, int64_t d, double* sums) {
  const at::Tensor x_all = at::from_blob(data, {T, d}, at::kFloat);
  const int64_t block = std::max<int64_t>(1, (int64_t{1} << 24) / std::max<int64_t>(1, w.header.n_latents));
  at::Tensor sum_x = at::zeros({d}, at::kDouble), sum_x2 = sum_x.clone(), sum_r = sum_x.clone(), sum_r2 = sum_x.clone();
  for (int64_t begin = 0; begin < T; begin += block) {
    at::Tensor x = x_all.narrow(0, begin, std::min(block, T - begin));
    const at::Tensor z = core::codes(enc, x);
    const at::Tensor x_hat = sparse_decode(z, w.W_dec, w.b_dec);
    const at::Tensor xd = x.to(at::kDouble), hd = x_hat.to(at::kDouble), r = xd - hd;
    const at::Tensor norm_x = xd.norm(2, 1), norm_hat = hd.norm(2, 1);
    sums[kNormRatio] += (norm_hat / at::where(norm_x.abs() < 1e-4, at::ones_like(norm_x), norm_x)).sum().item<double>();
    sums[kHatSquared] += (hd * hd).sum().item<double>();
    sums[kDot] += (xd * hd).sum().item<double>();
    sums[kActive] += static_cast<double>((z > 0).sum().item<int64_t>());
    sums[kResidualSquared] += (r * r).sum().item<double>();
    sum_x += xd.sum(0), sum_x2 += (xd * xd).sum(0), sum_r += r.sum(0), sum_r2 += (r * r).sum(0);
    x.copy_(x_hat);
  }
  double* per_dim = sums + kScalars;
  for (const at::Tensor& t : {sum_x, sum_x2, sum_r, sum_r2}) {
    std::copy(t.data_ptr<double>(), t.data_ptr<double>() + d, per_dim);
    per_dim += d;
  }
}

// Σ_d Var over N rows from Σv_d and Σv_d² (population variances; the ratio is the same with N − 1).
double total_variance(const std::vector<double>& sum, const std::vector<double>& sum_sq, double N) {
  double v = 0;
  for (size_t i = 0; i < sum.size(); ++i) v += sum_sq[i] / N - (sum[i] / N) * (sum[i] / N);
  return v;
}

// One SAE's figures from its summed block `t` and the clean and ablated sums of its hookpoint.
SaeScore score_of(const io::SaeHeader& h, const double* t, double clean_nll, double zero_nll, double zero_kl, int64_t N,
                  int64_t predicted) {
  const double n_tok = static_cast<double>(N), n_pred = static_cast<double>(predicted);
  const auto d = static_cast<size_t>(h.d_in);
  SaeScore sc;
  sc.path = h.path, sc.n_latents = h.n_latents, sc.d_in = h.d_in;
  sc.n_tokens = N, sc.n_predicted = predicted;
  sc.ce_loss_without_sae = clean_nll / n_pred;
  sc.ce_loss_with_ablation = zero_nll / n_pred;
  sc.ce_loss_with_sae = t[kNll] / n_pred;
  sc.ce_loss_score = (sc.ce_loss_with_ablation - sc.ce_loss_with_sae) / (sc.ce_loss_with_ablation - sc.ce_loss_without_sae);
  sc.kl_div_with_ablation = zero_kl / n_tok;
  sc.kl_div_with_sae = t[kKl] / n_tok;
  sc.kl_div_score = (sc.kl_div_with_ablation - sc.kl_div_with_sae) / sc.kl_div_with_ablation;
  const double* per_dim = t + kScalars;
  const std::vector<double> sx(per_dim, per_dim + d), sx2(per_dim + d, per_dim + 2 * d), sr(per_dim + 2 * d, per_dim + 3 * d),
      sr2(per_dim + 3 * d, per_dim + 4 * d);
  const double var_x = total_variance(sx, sx2, n_tok);
  sc.explained_variance = 1 - total_variance(sr, sr2, n_tok) / var_x;
  sc.fvu = t[kResidualSquared] / (var_x * n_tok);
  sc.l2_ratio = t[kNormRatio] / n_tok;
  sc.relative_reconstruction_bias = t[kHatSquared] / t[kDot];
  sc.l0 = t[kActive] / n_tok;
  return sc;
}

}  // namespace

Hook splice_hook(const ModelConfig& model, const io::SaeHeader& sae, const std::string& hookpoint) {
  const std::string name = hookpoint.empty() ? sae.hookpoint : hookpoint;
  if (name.empty())
    throw UsageError("SAE " + sae.path + " records no hookpoint; give the one it reads with --hookpoint");
  Hook h;
  try {
    h = parse_hook(model, name);
  } catch (const UsageError& e) {
    throw UsageError("SAE " + sae.path + ": " + e.what());
  }
  if (h.width != sae.d_in)
    throw UsageError("SAE " + sae.path + " reads " + std::to_string(sae.d_in) + "-wide activations, but " + h.name + " of this model is " +
                     std::to_string(h.width) + " wide");
  return h;
}

ExtractPlan plan_of_sequences(const std::vector<int64_t>& tokens, const std::vector<int64_t>& seq_offsets, int64_t first_row,
                              int64_t max_tokens, int64_t batch_tokens) {
  ExtractPlan p;
  p.seq_offsets.push_back(0);
  p.batch_offsets.push_back(0);
  int64_t fill = 0;
  for (size_t s = 0; s + 1 < seq_offsets.size(); ++s) {
    const int64_t begin = seq_offsets[s], n = seq_offsets[s + 1] - begin;
    if (begin < first_row || n < 1) continue;
    if (static_cast<int64_t>(p.tokens.size()) + n > max_tokens) break;
    if (fill > 0 && fill + n > batch_tokens) p.batch_offsets.push_back(p.n_sequences()), fill = 0;
    for (int64_t t = begin; t < begin + n; ++t) p.tokens.push_back(static_cast<int32_t>(tokens[static_cast<size_t>(t)]));
    p.seq_offsets.push_back(static_cast<int64_t>(p.tokens.size()));
    fill += n;
  }
  if (p.n_sequences() > 0) p.batch_offsets.push_back(p.n_sequences());
  p.doc_offsets = p.seq_offsets;
  return p;
}

std::vector<SaeScore> evaluate_saes(const parallel::Comm& comm, const LanguageModel& model, const ExtractPlan& plan,
                                    const std::vector<io::SaeWeights>& saes, const std::vector<Hook>& hooks) {
  // The distinct hookpoints (one zero ablation each) and each SAE's block of sums.
  std::vector<Hook> ablations;
  std::vector<size_t> ablation_of;
  for (const Hook& h : hooks) {
    auto it = std::find_if(ablations.begin(), ablations.end(), [&](const Hook& a) { return a.name == h.name; });
    if (it == ablations.end()) it = ablations.insert(ablations.end(), h);
    ablation_of.push_back(static_cast<size_t>(it - ablations.begin()));
  }
  std::vector<int64_t> offset;
  int64_t stride = 1 + 2 * static_cast<int64_t>(ablations.size());  // clean nll, then (nll, kl) per ablation
  for (const io::SaeWeights& w : saes) offset.push_back(stride), stride += sae_stride(w.header.d_in);
  std::vector<core::SaeEncoderWeights> encoders;
  for (const io::SaeWeights& w : saes) encoders.push_back(io::encoder_weights(w));

  const int64_t n_batches = plan.n_batches();
  std::vector<double> sums(static_cast<size_t>(n_batches * stride), 0.0);
  std::vector<double> seconds(1 + saes.size() + ablations.size(), 0.0);  // clean, each SAE, each ablation
  log::Progress progress("evaluate", static_cast<int64_t>(plan.tokens.size()), "tok");
  for (int64_t first = 0; first < n_batches; first += comm.size()) {
    const int64_t b = first + comm.rank();
    if (b < n_batches) {
      double* s = sums.data() + b * stride;
      std::vector<Splice> splices;
      for (size_t i = 0; i < saes.size(); ++i)
        splices.push_back({hooks[i], [&, i, s](float* rows, int64_t T, int64_t d) {
                             reconstruct(encoders[i], saes[i], rows, T, d, s + offset[i]);
                           }});
      for (const Hook& h : ablations) splices.push_back({h, nullptr});
      const core::Range rows = plan.rows(b);
      const std::vector<int32_t> tokens(plan.tokens.begin() + rows.begin, plan.tokens.begin() + rows.end);
      const LanguageModel::SplicedOutput out = model.forward_spliced(tokens, plan.sequence_lengths(b), splices);
      s[0] = out.clean_nll_sum;
      seconds[0] += out.clean_seconds;
      for (size_t i = 0; i < out.spliced.size(); ++i) seconds[1 + i] += out.spliced[i].seconds;
      for (size_t i = 0; i < saes.size(); ++i) s[offset[i] + kNll] = out.spliced[i].nll_sum, s[offset[i] + kKl] = out.spliced[i].kl_sum;
      for (size_t a = 0; a < ablations.size(); ++a) {
        s[1 + 2 * a] = out.spliced[saes.size() + a].nll_sum;
        s[2 + 2 * a] = out.spliced[saes.size() + a].kl_sum;
      }
    }
    progress.update(plan.rows(std::min(first + comm.size(), n_batches) - 1).end);
  }
  progress.finish();
  comm.allreduce_sum(sums.data(), static_cast<int64_t>(sums.size()));  // each batch's sums come from one rank
  comm.allreduce_sum(seconds.data(), static_cast<int64_t>(seconds.size()));

  std::vector<double> total(static_cast<size_t>(stride), 0.0);
  for (int64_t b = 0; b < n_batches; ++b)
    for (int64_t j = 0; j < stride; ++j) total[static_cast<size_t>(j)] += sums[static_cast<size_t>(b * stride + j)];
  const auto N = static_cast<int64_t>(plan.tokens.size());
  int64_t predicted = 0;
  for (int64_t b = 0; b < n_batches; ++b) predicted += plan.predicted(b);

  std::vector<SaeScore> scores;
  for (size_t i = 0; i < saes.size(); ++i) {
    const size_t a = ablation_of[i];
    SaeScore sc = score_of(saes[i].header, total.data() + offset[i], total[0], total[1 + 2 * a], total[2 + 2 * a], N, predicted);
    sc.hookpoint = hooks[i].name;
    sc.clean_seconds = seconds[0], sc.splice_seconds = seconds[1 + i], sc.ablation_seconds = seconds[1 + saes.size() + a];
    scores.push_back(sc);
  }
  return scores;
}

}  // namespace universae::lm
