// Certified Hungarian matching at scale (METHODS.md §4, Paulo & Belrose).
//
// Maximises Σ cos(A_i, B_σ(i)) over one-to-one matchings that cover the smaller SAE, without ever
// holding the n_a × n_b matrix:
//  1. one pass over the tiles of A·Bᵀ keeps each row's and each column's top-K candidates;
//  2. candidates are rescored in float64 and solved as a sparse assignment (core/lap.hpp);
//  3. the duals (α for A, β for B) certify the matching over ALL pairs: a non-candidate pair has
//     W_ij <= t_i (the K-th best of its row, widened by the pass's error), so it can violate only where
//     β_j < t_i - α_i - tol; with B's columns sorted by β that is a prefix of them for each row, and
//     only those prefixes are recomputed exactly (about 5 % of the suspect rows' pairs on SAE-like
//     pairs); violating pairs are added and the assignment re-solved from the duals (pricing rounds).
// `certified` is true only when no pair violates W_ij <= α_i + β_j + tolerance. Memory O(n·K).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "compare/max_cosine.hpp"
#include "config/config.hpp"
#include "parallel/comm.hpp"

namespace universae::compare {

// Pricing rounds before the matching gives up (certified = false).
inline constexpr int kMaxPricingRounds = 50;

struct Matching {
  std::vector<int64_t> match_ab;  // [n_a] matched B latent, -1 when A is larger and i is unmatched
  std::vector<float> cos_ab;      // [n_a] cosine of the matched pair, NaN when unmatched
  double objective = 0;           // Σ matched cosines (float64)
  double mean_cos = 0;            // objective / min(n_a, n_b)
  bool certified = false;
  int64_t rounds = 0;             // solves needed (1 = the candidates were enough)
  int64_t candidate_edges = 0;    // edges in the final sparse problem
  int64_t pairs_checked = 0;      // pairs recomputed exactly by the certificate
  double seconds = 0;             // wall time of the whole matching on rank 0
};

// Collective. a_local, b: as given to similarity_pass, which produced `pass` with K = compare.candidates.
// Uses compare.candidates (K, per row and per column), compare.certificate_tolerance and
// compare.deep_factor (a recomputed row also keeps its top deep_factor·K recomputed pairs; 0: only
// violators). With `where.generic`, the certificate's exact blocks (the float32 products of suspect rows
// against their prefixes, the violation test, each row's deep list) run on where.device; only the kept
// pairs and the lists come back. The same edges as on the CPU given the same float32 products.
Matching certified_matching(const parallel::Comm& comm, const at::Tensor& a_local, const at::Tensor& b,
                            const SimilarityPass& pass, const TileSizes& tiles, const config::CompareConfig& options,
                            const ScanDevice& where = {});

}  // namespace universae::compare
