// Per-latent stability across N seeds (after Paulo & Belrose's N-seed overlap, per latent): which
// latents every seed learns, how much of the reconstruction they carry, and whether the latents a
// pair does not share span a common subspace. Written by the compare stage when the seeds' pairs all
// have a Hungarian matching (compare.hungarian), to results.h5:
//
//   /stability/<name>/stable_fraction [n]  the other seeds in which the latent is shared (its decoder
//                                          and encoder matches both above compare.shared_threshold), / (N − 1)
//   /stability/<name>/frequency [n]        its firing frequency (as /saes/<name>/frequency), when known
//   /stability/<name>/fvu_increase [n]     with activations: the FVU increase when it alone is removed from
//                                          every reconstruction (Σ_t ‖x̂_t − z_ti W_i − x_t‖² − ‖x̂_t − x_t‖²) / Σ_t ‖x_t − x̄‖²
//   /stability/<name>/energy [n]           with activations: Σ_t z_ti² ‖W_i‖², its share of the reconstruction
//   /stability/<name> @always_fraction @never_fraction   latents shared with every other seed / with none
//                     @always_energy @never_energy       their share of Σ energy
//                     @always_fvu_increase @never_fvu_increase   Σ of their FVU increases
//                     @fvu                               the SAE's FVU on the compared tokens
//   /stability/pairs/<a>--<b>/angle_cosines [r]  cosines of the principal angles between the row spans of
//                     a's and b's unshared decoder rows (descending), r = min of the spans' ranks
//                     @n_unshared_a @n_unshared_b @rank_a @rank_b @mean_cos
//                     @random_mean_cos @random_std_cos   the same for 32 pairs of random Gaussian row sets of
//                                                        the same sizes (when both sets span R^d, every cosine is 1)
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "compare/activation_stats.hpp"
#include "compare/overlap.hpp"
#include "config/config.hpp"
#include "core/sae_encode.hpp"
#include "io/h5.hpp"
#include "io/sae_header.hpp"
#include "parallel/comm.hpp"

namespace universae::compare {

struct ActivationData;

struct LatentEffects {
  std::vector<double> fvu_increase, energy;  // [n]
  double fvu = 0;
};
// Collective: over the input's tokens (chunks sharded over ranks, sums in float64 added over ranks).
LatentEffects latent_effects(const parallel::Comm& comm, const core::SaeEncoderWeights& encoder, const at::Tensor& W_dec,
                             const ActivationInput& input, int64_t chunk_tokens);

// Cosines of the principal angles between the row spans of a (p, d) and b (q, d), descending.
std::vector<double> principal_cosines(const at::Tensor& a, const at::Tensor& b);

// Collective. headers/names: the compared SAEs (the first n_main are the seeds); matchings: every seed
// pair's. activations: the compare stage's (nullptr: no FVU increase or energy).
void write_stability(const parallel::Comm& comm, const config::Config& config, io::File& file,
                     const std::vector<io::SaeHeader>& headers, const std::vector<std::string>& names, size_t n_main,
                     const std::vector<PairMatching>& matchings, const ActivationData* activations);

}  // namespace universae::compare
