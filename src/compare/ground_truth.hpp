// How well an SAE trained on synthetic data recovered the true dictionary G (m, d), after
// SynthSAEBench (SAELens `sae_lens.synthetic.evals`); docs/statistics.md, "Ground truth on synthetic
// data". With W = the SAE's decoder rows (n, d) and |cos| = |cos(W_i, G_f)|:
//  - mcc: the mean |cos| of the one-to-one matching of latents and true features that maximises the
//    total |cos| (Hungarian, min(n, m) pairs; scipy.optimize.linear_sum_assignment on |cos|);
//  - uniqueness: the number of distinct true features that are some latent's best |cos| match, / n;
//  - precision, recall, f1: latent i "fires" (code > 0) as a detector of "its best |cos| match is
//    active" on held-out tokens, each 0 where its denominator is 0; means over all n latents (a
//    dead latent scores 0);
//  - shrinkage: the mean over held-out tokens with ‖x‖ > 1e-6 of ‖x̂‖ / ‖x‖, x the SAE's input (the
//    token, noise included) and x̂ = z W + b_dec its reconstruction (1: no shrinkage; NaN without tokens).
// "Best match": the largest |cos|, the lowest feature index on ties; a zero decoder row matches feature 0.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "data/synthetic.hpp"
#include "io/sae_file.hpp"
#include "parallel/comm.hpp"

namespace universae::compare {

struct DecoderMatch {
  double mcc = 0;
  double uniqueness = 0;
  std::vector<int64_t> best_match;  // [n] each latent's best |cos| true feature
  std::vector<int64_t> hungarian;   // [n] its Hungarian partner, -1 when n > m and it has none
};

// Pure function of truth (m, d) and decoder (n, d), any floating dtype. The matching is solved on each
// row's top candidates (core/lap.hpp), then certified against every pair and re-solved until optimal.
DecoderMatch match_to_truth(const at::Tensor& truth, const at::Tensor& decoder);

// Per-latent counts of "fires" against "its best match is active", accumulated over blocks of tokens.
struct DetectionCounts {
  std::vector<int64_t> true_pos, fired, active;  // [n]: both; the latent fires; its match is active

  explicit DetectionCounts(int64_t n_latents);
  // codes (B, n) and the true codes of the same B tokens.
  void add(const at::Tensor& codes, const data::TrueCodes& truth, const std::vector<int64_t>& best_match,
           int64_t n_features);
};

struct Detection {
  double precision = 0, recall = 0, f1 = 0;  // means over latents
};
Detection detection_scores(const DetectionCounts& counts);

struct GroundTruthMetrics {
  double mcc = 0, uniqueness = 0, precision = 0, recall = 0, f1 = 0, shrinkage = 0;
  int64_t tokens = 0;  // held-out tokens the detection and shrinkage saw

  // As SAE file root attributes: ground_truth_mcc, ..._uniqueness, ..._precision, ..._recall, ..._f1,
  // ..._shrinkage, ..._tokens.
  std::vector<std::pair<std::string, double>> attributes() const;
};

// Collective over comm: the first `tokens` held-out tokens (data::kHeldOutTokenOffset), in blocks of
// `block` sharded over the ranks, encoded as compare encodes them (core/sae_encode). Counts are
// integers and the shrinkage is summed in fixed point, so the result does not depend on the rank count.
GroundTruthMetrics ground_truth_metrics(const parallel::Comm& comm, const data::SyntheticSource& source,
                                        const io::SaeWeights& sae, int64_t tokens, int64_t block);

}  // namespace universae::compare
