// The comparison stage: every pair of the given SAE files → results.h5 + summary.csv with the
// names of DESIGN.md §4. Collective over the communicator.
#pragma once

#include <string>
#include <vector>

#include "compare/matching.hpp"
#include "compare/max_cosine.hpp"
#include "compare/repsim.hpp"
#include "config/config.hpp"
#include "parallel/comm.hpp"

namespace universae::compare {

struct CompareRequest {
  std::vector<std::string> sae_paths;
  std::string out_path;      // results.h5; summary.csv is written beside it
  TileSizes tiles;
  bool hungarian = true;
  MatchingOptions matching;
  double shared_threshold = 0.7;
  bool repsim = true;
  RepSimOptions repsim_options;
  std::string config_toml;   // stored as the `config` attribute
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
};

// Unique names for the SAEs: file stems, de-duplicated with a numeric suffix.
std::vector<std::string> sae_names(const std::vector<std::string>& paths);

std::vector<PairSummary> compare_saes(const parallel::Comm& comm, const CompareRequest& request);

// The MCS attributes of every pair in an existing results file.
std::vector<PairSummary> read_pair_summaries(const parallel::Comm& comm, const std::string& results_path);

// The job stage: compare.saes (or `default_saes`, the job's trained SAEs) into
// <run.output_dir>/results.h5, reusing a complete, up-to-date results file unless `fresh`.
std::vector<PairSummary> run_compare_stage(const parallel::Comm& comm, const config::Config& config,
                                           const std::vector<std::string>& default_saes, bool fresh);

}  // namespace universae::compare
