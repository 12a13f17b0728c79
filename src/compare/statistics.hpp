// The registry of pair statistics (after nccl-tests' table of collectives): one entry per statistic
// with what it needs, how it is computed and written, and the summary columns it owns. The compare
// driver runs every entry that applies to each pair; summary.csv, study_summary.csv, `inspect`, the
// report and the console tables all read the columns (through /summary_columns in results.h5, or the
// entries' display specs here), so adding a statistic is one entry plus its kernel.
//
// Statistics share intermediate results through the pair's context: the similarity pass of each side
// (with its max cosine and matching), the whole decoders, the activation correlation and mappings. Each
// is made on first use and kept for the pair; a side's (n × d) tensors are dropped as soon as its
// results are made, so a pair holds one side's tensors at a time.
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "compare/activation_stats.hpp"
#include "compare/concepts.hpp"
#include "compare/console.hpp"
#include "compare/matching.hpp"
#include "compare/max_cosine.hpp"
#include "compare/repsim.hpp"
#include "compare/subspaces.hpp"
#include "config/config.hpp"
#include "io/h5.hpp"
#include "io/results_file.hpp"
#include "io/sae_header.hpp"
#include "parallel/comm.hpp"

namespace universae::compare {

enum class Side { kDecoder, kEncoder };

// What one side (decoder or encoder rows) of a pair yields.
struct SideResult {
  MaxCosine max_cosine;
  std::optional<Matching> matching;  // with compare.hungarian
  double pass_seconds = 0;           // the tile pass (GEMMs + top-K lists)
};

// What the activation pass leaves for the pairs: every SAE's input, codes and top tokens.
struct ActivationData {
  // The distinct inputs (store, hookpoint) the SAEs read: each SAE encodes the activations of its own
  // store (compare.sae_activations, else compare.activations) at the hookpoint it was trained on. All
  // hold the same token sequence (checked when opened).
  std::vector<ActivationInput> inputs;
  std::vector<size_t> input_of;                              // per SAE: its index in `inputs`
  std::vector<core::SparseCodes> codes;                      // per SAE (compare.correlation_input = codes)
  std::vector<std::vector<std::vector<std::string>>> latent_strings;  // per SAE, per latent: top token strings
  std::vector<std::vector<std::vector<int64_t>>> latent_ids;          // per SAE, per latent: top token ids
  std::vector<TopTokens> top;                                          // per SAE: top token ids and ±2 windows
  std::vector<int64_t> special_ids;  // the first input's control tokens (every input holds the same ids)
  std::vector<ConceptCategory> concepts;
  const ActivationInput& first() const { return inputs[input_of[0]]; }  // the first SAE's: tokens and vocab
  // A random-init baseline added after the inputs were opened reads the first SAE's (its shape's) input.
  const ActivationInput& input(size_t sae) const { return inputs[input_of[sae < input_of.size() ? sae : 0]]; }
};

// The activation-paired latents of a pair (METHODS.md §5): the four mappings, the chosen one, and the
// pairs the non-concept filter keeps.
struct ActivationPairing {
  core::Mapping many_to_one, one_to_one_best, one_to_one_first, mutual;
  core::Mapping lan2024;       // compat lan2024: filter, then first B per A, then correlation > 0.1
  const core::Mapping* chosen = nullptr;
  std::string chosen_name;     // many_to_one, one_to_one_best, one_to_one_first, mutual or lan2024
  std::vector<int64_t> kept;   // indices into *chosen
  bool filtered = false;       // the non-concept filter ran (the store has token strings)
};

// A pair being compared: its inputs, where it is written, and its shared intermediate results.
class PairContext {
 public:
  PairContext(const parallel::Comm& comm, const config::Config& config, io::File& file, std::string group,
              const std::vector<io::SaeHeader>& headers, size_t i, size_t j, ActivationData* activations);
  const parallel::Comm& comm;
  const config::Config& config;  // compare.*, data.*
  io::File& file;
  const std::string group;  // /pairs/<a>--<b>
  const std::string name;   // <a>--<b>
  const io::SaeHeader &a, &b;
  const size_t i, j;                // the SAEs' places in the comparison
  ActivationData* const activations;  // nullptr without compare.activations
  // Why weight-space statistics (max cosine, Hungarian, paired decoders, overlap) do not apply to this
  // pair: "" when both SAEs read the same model's stream with the same width; else the reason, written
  // to the pair's group as `weight_space_skipped`.
  const std::string weight_space_skipped;
  ScanDevice scan;  // where the similarity passes run (run.device, run.kernels); the CPU unless the stage says

  const SideResult& side(Side s);      // the similarity pass of one side, reduced to its results
  const at::Tensor& decoder_a();       // whole W_dec, read on first use
  const at::Tensor& decoder_b();
  const Correlation& correlation();    // activation correlation maxima (codes or pre)
  const ActivationPairing& pairing();  // mappings of the correlation, filtered
  // What the pair correlates (codes or dense relu(pre), compare.correlation_input), column by column;
  // valid while the context lives. Collective the first time in `pre` mode (it reads the encoders).
  ColumnSource columns_a();
  ColumnSource columns_b();

 private:
  std::optional<SideResult> sides_[2];
  at::Tensor decoder_a_, decoder_b_;
  std::optional<Correlation> correlation_;
  std::optional<ActivationPairing> pairing_;
  std::optional<core::SaeEncoderWeights> encoder_a_, encoder_b_;  // read on first use (dense relu(pre))
  const core::SaeEncoderWeights& encoder_a();  // collective the first time
  const core::SaeEncoderWeights& encoder_b();
};

struct Column {
  io::SummaryColumn summary;
  std::optional<Display> display;
};
// A column: its CSV name, the object below the pair (or absolute) and attribute holding it, one line
// saying what it is, and how it prints (none: only in the files).
Column column(const std::string& name, const std::string& object, const std::string& attribute, const std::string& description,
              std::optional<Display> display = std::nullopt);

struct Statistic {
  std::string name;
  std::string needs;  // what it reads, for the docs: "decoder and encoder rows", "activation codes", ...
  std::function<bool(PairContext&)> applies;
  std::function<void(PairContext&)> write;  // computes through the context and writes below ctx.group
  std::vector<Column> columns;
};

// The registry, in the order the statistics run and their columns appear.
const std::vector<Statistic>& pair_statistics();
// Every statistic's summary columns, in registry order (written to /summary_columns).
std::vector<io::SummaryColumn> summary_columns();

// "" when SAEs i and j can be compared in weight space (see PairContext::weight_space_skipped).
std::string weight_space_problem(const std::vector<io::SaeHeader>& headers, size_t i, size_t j, const ActivationData* activations);

// Registry entries defined beside their kernels' drivers (statistics.cpp assembles the list).
Statistic max_cosine_statistic();
Statistic hungarian_statistic();
Statistic paired_decoder_statistic();
Statistic activation_correlation_statistic();
Statistic activation_repsim_statistic();
Statistic sae_quality_statistic();

// The activation pass, before the pairs (collective): every SAE's input (its store, compare.activations
// or its entry of compare.sae_activations, at the hookpoint it was trained on), checked against the SAE
// and against the first SAE's tokens before any output exists; then every SAE encoded once, its
// frequency and top examples written to /saes/<name> and its codes kept for the pairs.
ActivationData open_activation_data(const parallel::Comm& comm, const config::Config& config,
                                    const std::vector<io::SaeHeader>& headers, size_t n_main);
void activation_pass(const parallel::Comm& comm, io::File& f, const config::Config& config, ActivationData& data,
                     const std::vector<io::SaeHeader>& headers, const std::vector<std::string>& names);

// /pairs/<a>--<b>/<metric> groups of representational similarity results (decoder pairs, activation
// pairs, subspaces): score, null statistics, p-value, seed; the null itself.
void write_repsim(io::File& f, const std::string& parent, const std::vector<RepSimResult>& results, const std::string& pairing);
// The repsim columns of `object` ("" = the pair's group): <prefix><metric> and <prefix><metric>_p.
std::vector<Column> repsim_columns(const std::string& object, const std::string& prefix, const std::string& what,
                                   const std::string& table, const std::vector<std::string>& shown);

}  // namespace universae::compare
