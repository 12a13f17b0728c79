// The comparison stage: every pair of the given SAE files → results.h5 + summary.csv with the
// names of DESIGN.md §4. Collective over the communicator.
#pragma once

#include <string>
#include <vector>

#include "compare/activation_stats.hpp"
#include "compare/matching.hpp"
#include "compare/max_cosine.hpp"
#include "compare/repsim.hpp"
#include "config/config.hpp"
#include "io/sae_file.hpp"
#include "parallel/comm.hpp"

namespace universae::compare {

struct CompareRequest {
  std::vector<std::string> sae_paths;
  std::vector<std::string> names;  // optional, one per SAE path (default: sae_names)
  std::string out_path;      // results.h5; summary.csv is written beside it
  TileSizes tiles;
  bool hungarian = true;
  MatchingOptions matching;
  double shared_threshold = 0.7;
  bool repsim = true;
  RepSimOptions repsim_options;
  ActivationOptions activations;  // source "" = no activation statistics
  bool baseline_random = false;   // + a random-initialisation SAE of the first SAE's shape
  std::vector<std::string> baselines;  // each compared with the first SAE
  uint64_t seed = 0;
  std::string config_toml;   // stored as the `config` attribute
  std::string fingerprint;   // the compare and data sections: a results file is reused only when equal
};

// The request a config describes (compare.* keys); paths and output are the caller's.
CompareRequest request_from_config(const config::Config& config, std::vector<std::string> sae_paths,
                                   std::string out_path);

struct PairSummary {
  std::string a, b;
  double decoder_mcs_ab = 0, decoder_mcs_ba = 0;
  double encoder_mcs_ab = 0, encoder_mcs_ba = 0;
  bool has_lap = false;
  double mean_cos_decoder = 0, mean_cos_encoder = 0, shared_fraction = 0, equal_fraction = 0;
  bool certified = false;
  std::vector<std::pair<std::string, std::pair<double, double>>> repsim{};  // metric → (score, p_value)
  bool baseline = false;  // b is a baseline SAE
  bool has_activation = false;
  double mean_max_corr_ab = 0, mean_max_corr_ba = 0;
  int64_t activation_pairs = 0;  // pairs of the activation mapping used for SVCCA/RSA (after the filter)
  std::vector<std::pair<std::string, std::pair<double, double>>> activation_repsim{};
};

// Writes an untrained SAE with `like`'s shape, architecture and k, initialised as the trainer
// initialises (METHODS.md §1: random unit decoder rows from `seed`, encoder = decoder, zero biases).
void write_random_init_sae(const parallel::Comm& comm, const io::SaeHeader& like, uint64_t seed, const std::string& path);

// Unique names for the SAEs: file stems (a sparsify/SAELens directory: its name), de-duplicated with a
// numeric suffix.
std::vector<std::string> sae_names(const std::vector<std::string>& paths);

std::vector<PairSummary> compare_saes(const parallel::Comm& comm, const CompareRequest& request);

// The MCS attributes of every pair in an existing results file.
std::vector<PairSummary> read_pair_summaries(const parallel::Comm& comm, const std::string& results_path);

// The job stage: compare.saes (or `default_saes`, the job's trained SAEs) into
// <run.output_dir>/results.h5, reusing a complete, up-to-date results file unless `fresh`.
// `names` (optional): one per SAE, instead of the file stems.
std::vector<PairSummary> run_compare_stage(const parallel::Comm& comm, const config::Config& config,
                                           const std::vector<std::string>& default_saes, bool fresh,
                                           const std::vector<std::string>& names = {});

}  // namespace universae::compare
