// Semantic subspaces as Lan et al. published them (METHODS.md §7; their code,
// run_semantic_subspace_expms): the latents of a keyword category are found in A and in B
// independently from their top activating examples; the correlation is recomputed between those two
// subsets only; each B latent takes its most correlated A latent of the subset, and each A keeps
// the first such B. Test 2 draws random subsets of A and B of the same sizes and pairs them the same
// way (the paper's definition).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "compare/activation_stats.hpp"
#include "compare/concepts.hpp"

namespace universae::compare {

// The latents of one SAE (ascending) whose top examples hold a keyword of `category`: for one of its
// top `count` examples the top token itself, spaces removed and lower-cased, is the keyword, and the
// keyword is a whole word of the example's window (tokens decoded alone and concatenated, split on
// spaces, '.', ',', '?', '!' and newlines removed; so "seeking" is not "king"). The window is ±2
// tokens, or with `lan_window` their code's s−2 … s+1.
// top_tokens: [n × count]; windows: [n × count × 5] (−1 outside the sequence).
std::vector<int64_t> keyword_latents(const std::vector<int64_t>& top_tokens, const std::vector<int64_t>& windows, int64_t count,
                                     const std::vector<std::string>& vocab, const ConceptCategory& category, bool lan_window);

// An SAE's activations (what the pair correlates: codes or dense relu(pre)) restricted to some
// latents: made once per set of latents (the encoder's rows picked once), then read block by block as
// count × latents.size() float tensors of tokens [first, first + count). The source and what it was
// made from (codes, encoder, input) must outlive the readers.
using ColumnBlocks = std::function<at::Tensor(int64_t first, int64_t count)>;
using ColumnSource = std::function<ColumnBlocks(const std::vector<int64_t>& latents)>;
ColumnSource code_columns(const core::SparseCodes& codes);
ColumnSource pre_columns(const core::SaeEncoderWeights& sae, const ActivationInput& input);

struct LatentSubsets {
  std::vector<int64_t> a, b;  // latent indices, ascending
};

// The Pearson correlation matrix (|a| × |b|, float64) of every subset pair over all `n_tokens`: one
// pass over the tokens per batch of subsets (batches bound the cross products held at once), each
// block reading only the latents some subset of the batch needs. σ = 0 gives 0. Local (no MPI); the
// arithmetic depends on which subsets share a batch only through the rounding of the sums.
std::vector<at::Tensor> subset_correlations(const ColumnSource& a, const ColumnSource& b, int64_t n_tokens,
                                            int64_t chunk_tokens, const std::vector<LatentSubsets>& subsets);

// Their pairing of a subset pair from its correlation matrix: every B latent (in order) takes its
// most correlated A latent (the first on ties), and every A keeps its first B. Returns the pairs as
// latent indices (A's, B's), in B order. Empty when either subset is.
std::pair<std::vector<int64_t>, std::vector<int64_t>> first_b_per_a(const LatentSubsets& subsets, const at::Tensor& corr);

}  // namespace universae::compare
