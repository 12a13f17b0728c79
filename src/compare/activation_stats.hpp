// Activation statistics of SAEs on the same tokens (METHODS.md §5): firing frequency, exact
// Pearson correlation maxima both ways (sparse codes or dense relu(pre)), the four mappings and
// the top activating examples. Tokens are sharded over ranks for encoding (fixed global chunks,
// so the arithmetic does not depend on the rank count); the codes are then all-gathered (T·k
// entries, small next to the activations) and latent rows are sharded for the correlation maxima.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "compare/max_cosine.hpp"
#include "config/config.hpp"
#include "core/sae_encode.hpp"
#include "core/sharding.hpp"
#include "core/sparse_correlation.hpp"
#include "parallel/comm.hpp"

namespace universae::compare {

// Rows of activations from a store or the synthetic stream.
struct ActivationInput {
  std::string source;     // "synthetic" or the store's path
  std::string hookpoint;
  int64_t first_token = 0;  // synthetic: the held-out range the trainer evaluates on
  int64_t n_tokens = 0, d = 0;
  std::function<void(int64_t first, int64_t count, float* out)> read;  // first: 0-based within the input
  std::vector<std::string> vocab;    // empty without token strings
  std::vector<int64_t> tokens;       // token ids [n_tokens], empty without
  std::vector<int64_t> seq_offsets;  // [n_seq + 1]
  std::vector<std::string> store_hookpoints;  // every hookpoint the store holds (empty for synthetic)
  std::string model;           // the store's model (its path as extracted); "synthetic"
  std::string model_sha256;    // the store's record of the model's content ("" before 0.7)
  std::string token_sequence;  // the store's token sequence hash ("" before 0.3 or synthetic)
  std::vector<int64_t> special_ids;  // control tokens (the store's /special_tokens, else vocab entries named like one)
};

// Collective. Opens `source` ("synthetic": the held-out data.synthetic tokens, or a store path) at
// `hookpoint`, compare.activation_tokens of it (0: the whole store; synthetic 65,536). A UsageError
// on every rank for a bad store or hookpoint.
ActivationInput open_activation_input(const parallel::Comm& comm, const config::Config& config, const std::string& source,
                                      const std::string& hookpoint);

// "" when `a` and `b` hold the same token sequence (ids and sequence cuts) over their first
// min(n) tokens and the same number of tokens; else what differs, naming both sources and the first
// differing position. Stores without token ids compare their token-sequence hashes.
std::string token_sequence_difference(const ActivationInput& a, const ActivationInput& b);

// Collective. The SAE's codes on every token of the input, on every rank.
core::SparseCodes encode_codes(const parallel::Comm& comm, const core::SaeEncoderWeights& sae, const ActivationInput& input,
                               int64_t chunk_tokens, const std::string& name);

std::vector<double> firing_frequency(const core::SparseCodes& codes);

// Collective. Top activating examples of the dense relu(pre) activations (what Lan et al. correlate and
// read top tokens from for TopK SAEs): per latent its `count` largest positive values over the input
// (ties: the earlier token), positions −1 where fewer are positive. Tokens are sharded in fixed
// chunks; the result is the same on every rank and for any rank count.
core::TopExamples dense_top_examples(const parallel::Comm& comm, const core::SaeEncoderWeights& sae, const ActivationInput& input,
                                     int64_t chunk_tokens, int64_t count, const std::string& name);

struct Correlation {
  std::vector<double> max_ab, max_ba;  // [n_a], [n_b]
  std::vector<int64_t> argmax_ab, argmax_ba;
  double mean_ab = 0, mean_ba = 0;
  double seconds = 0;
};

// Collective. Exact correlation maxima from the sparse codes; latent rows sharded in tiles. With
// `where.generic`, each rank's rows go through core::correlation_row_maxima_generic on where.device.
Correlation sparse_correlation(const parallel::Comm& comm, const core::SparseCodes& a, const core::SparseCodes& b,
                               int64_t tile_rows, const ScanDevice& where = {});

// Collective. Correlation maxima of the dense relu(pre) activations: A's rows sharded in tiles, every
// rank streams all tokens in fixed chunks and accumulates S = Σ_t a(t) b(t)ᵀ for its rows in float64.
// A encodes `input`, B `input_b`: the same tokens, at another hookpoint when the SAEs were trained on
// different layers (the same object when not).
Correlation dense_correlation(const parallel::Comm& comm, const core::SaeEncoderWeights& a,
                              const core::SaeEncoderWeights& b, const ActivationInput& input,
                              const ActivationInput& input_b, int64_t chunk_tokens, int64_t tile_rows,
                              const ScanDevice& where = {});

// Token strings with byte-fallback pieces ("<0x0A>") decoded to their byte.
std::string token_string(const std::vector<std::string>& vocab, int64_t token);

// The first `count` examples of every latent: the top `count`, since examples are kept sorted.
core::TopExamples first_examples(const core::TopExamples& top, int64_t count);

// The token ids of the top examples of latents `rows` and their ±`context`-token windows (clipped to
// the example's sequence; −1 outside it, or for an absent example or input without token ids).
struct TopContexts {
  int64_t width = 0;             // 2·context + 1
  std::vector<int64_t> tokens;   // [rows × count]
  std::vector<int64_t> windows;  // [rows × count × width]
};
TopContexts top_contexts(const core::TopExamples& top, const ActivationInput& input, int64_t context, core::Range rows);

// What the concept filters read (Lan et al.): the top examples' token ids with ±2-token windows.
struct TopTokens {
  std::vector<int64_t> tokens;   // [n × count]
  std::vector<int64_t> windows;  // [n × count × 5]
};
TopTokens top_tokens(const core::TopExamples& top, const ActivationInput& input);

}  // namespace universae::compare
