// Exact Pearson correlation between the latents of two SAEs over the same tokens (METHODS.md §5),
// from sparse codes: S_ij = Σ_t a_i(t) b_j(t) is non-zero only for pairs that fire together, so a
// row of S costs (tokens where i fires) × (latents active on each of them), and a pair that never
// co-fires has corr = −μ_i μ_j / (σ_i σ_j), whose maximum over j is found by walking B's latents
// in order of μ_j / σ_j. No MPI: compare/ shards the rows.
#pragma once

#include <cstdint>
#include <vector>

#include "core/sae_encode.hpp"
#include "core/sharding.hpp"

namespace universae::core {

// The codes of one SAE on T tokens, token-major (CSR).
struct SparseCodes {
  int64_t n_tokens = 0, n_latents = 0;
  SparseRows rows;
};

// Per latent: mean and population standard deviation over the T tokens, in float64, summed in
// token order (so the same on every rank).
struct LatentMoments {
  std::vector<double> mean, sd;
};
LatentMoments moments(const SparseCodes& codes);

// The latent-major view (CSC) of codes: per latent its tokens (ascending) and values.
struct LatentColumns {
  std::vector<int64_t> offsets;  // [n_latents + 1]
  std::vector<int64_t> tokens;
  std::vector<float> values;
};
LatentColumns latent_columns(const SparseCodes& codes);

// For every latent i of A in `rows`: max_j corr(a_i, b_j) and its lowest-index argmax.
// σ = 0 gives corr 0 (and a latent of A with σ = 0 gets max 0 at index 0).
void correlation_row_maxima(const LatentColumns& a_cols, const LatentMoments& a, const SparseCodes& b,
                            const LatentMoments& b_moments, Range rows, double* max_out, int64_t* argmax_out);

// The same from ATen operators on any device (run.kernels = "generic"; sparse_correlation_generic.cpp):
// B as a sparse (T × n_b) matrix, each block of A's rows as a sparse (rows × T) one, their product the
// co-firing sums S, and the block's correlations dense, (S/T − μ_i μ_j) / (σ_i σ_j), so the pairs that
// never co-fire need no ordering by μ/σ. The maxima agree within rounding of the sums (float64 in
// another order; exactly where a pair never co-fires) and the argmax is the lowest index among equal
// maxima, as above. The codes and the results pass through host memory (deliberate: they come from
// and go to host structures).
void correlation_row_maxima_generic(const LatentColumns& a_cols, const LatentMoments& a, const SparseCodes& b,
                                    const LatentMoments& b_moments, Range rows, double* max_out, int64_t* argmax_out,
                                    at::Device device);

// Top activating examples: for every latent its `count` largest code values (ties: earlier token),
// positions −1 where it fired on fewer tokens.
struct TopExamples {
  int64_t count = 5;
  std::vector<int64_t> positions;  // [n_latents × count]
  std::vector<float> values;
};
TopExamples top_examples(const SparseCodes& codes, int64_t count);

// Activation mappings from the two argmax directions (METHODS.md §5), as (a, b) pairs.
struct Mapping {
  std::vector<int64_t> a, b;
  std::vector<double> corr;
};
// many_to_one: every B latent → its argmax A latent (ordered by b).
Mapping many_to_one(const std::vector<double>& max_ba, const std::vector<int64_t>& argmax_ba);
// one_to_one: of the B latents choosing one A latent keep the most correlated (first = true:
// the lowest-index one, Lan et al.'s published behaviour); ordered by a.
Mapping one_to_one(const Mapping& many, bool first);
// mutual: i → j and j → i (ordered by a).
Mapping mutual(const std::vector<double>& max_ab, const std::vector<int64_t>& argmax_ab,
               const std::vector<int64_t>& argmax_ba);

}  // namespace universae::core
