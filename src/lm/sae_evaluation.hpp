// An SAE judged by what the model loses when it reads the SAE's reconstruction (SAELens evals.py,
// SAEBench core; docs/statistics.md "Spliced evaluation"): every sequence of a plan is run clean,
// with each SAE's reconstruction x̂ replacing the activation at its hookpoint (every position, BOS
// included), and with that activation zeroed. Per SAE:
//   ce_loss_with_sae / _without_sae / _with_ablation   mean next-token loss (nats) over the positions
//                                                      with a next token in their sequence
//   ce_loss_score = (CE_abl − CE_sae) / (CE_abl − CE_clean)
//   kl_div_with_sae / _with_ablation                  mean KL(p_clean ‖ p_spliced) over every position
//   kl_div_score = (KL_abl − KL_sae) / KL_abl
//   explained_variance = 1 − Σ_d Var(x_d − x̂_d) / Σ_d Var(x_d)   (dictionary_learning's; next to
//   fvu = Σ‖x − x̂‖² / Σ‖x − x̄‖²), l2_ratio = mean ‖x̂‖/‖x‖ (‖x‖ < 1e-4 counts as 1, as SAELens),
//   relative_reconstruction_bias = mean ‖x̂‖² / mean x·x̂ (Gated SAE paper eq. 10), l0 = mean
//   number of non-zero codes per token; all over every position.
// Batches are sharded over ranks (batch b on rank b mod ranks); each batch's sums are kept apart and
// added in batch order, so any rank count gives the same figures.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/sae_file.hpp"
#include "lm/extract_plan.hpp"
#include "lm/model.hpp"
#include "parallel/comm.hpp"

namespace universae::lm {

struct SaeScore {
  std::string path, hookpoint;
  int64_t n_latents = 0, d_in = 0;
  double ce_loss_score = 0, ce_loss_with_sae = 0, ce_loss_without_sae = 0, ce_loss_with_ablation = 0;
  double kl_div_score = 0, kl_div_with_sae = 0, kl_div_with_ablation = 0;
  double explained_variance = 0, fvu = 0, l2_ratio = 0, relative_reconstruction_bias = 0, l0 = 0;
  int64_t n_tokens = 0, n_predicted = 0;
  // Seconds summed over ranks: the clean forwards (shared by every SAE), this SAE's spliced forwards and
  // its hookpoint's zero-ablated ones (shared by the SAEs there).
  double clean_seconds = 0, splice_seconds = 0, ablation_seconds = 0;
};

// The hookpoint an SAE is spliced in at: `hookpoint` when given, else the one its file records. One
// the model lacks, none at all, or a width other than the SAE's d_in is a UsageError naming the SAE.
Hook splice_hook(const ModelConfig& model, const io::SaeHeader& sae, const std::string& hookpoint);

// The whole sequences of a store (token ids, sequence offsets) that start at or after row `first_row`,
// from the first, as many as fit in `max_tokens`, cut into batches of ≤ batch_tokens tokens (no
// sequence split). Empty when none fits.
ExtractPlan plan_of_sequences(const std::vector<int64_t>& tokens, const std::vector<int64_t>& seq_offsets, int64_t first_row,
                              int64_t max_tokens, int64_t batch_tokens);

// Collective: every rank holds the model, the plan and the SAEs (`hooks[i]` is SAE i's hookpoint).
std::vector<SaeScore> evaluate_saes(const parallel::Comm& comm, const LanguageModel& model, const ExtractPlan& plan,
                                    const std::vector<io::SaeWeights>& saes, const std::vector<Hook>& hooks);

}  // namespace universae::lm
