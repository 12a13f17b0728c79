// The comparison stage: every pair of compare.saes (and each baseline with the first SAE) through
// every statistic of the registry (compare/statistics.hpp) → results.h5 (io/results_file.hpp) and
// summary.csv beside it. Collective over the communicator.
#pragma once

#include <string>
#include <vector>

#include "config/config.hpp"
#include "io/results_file.hpp"
#include "io/sae_header.hpp"
#include "parallel/comm.hpp"

namespace universae::compare {

// Compares config.compare.saes (named by compare.names, else their file stems) into `out_path`,
// with the statistics compare.* asks for, and writes summary.csv beside it. Every input is checked
// before any output exists. Returns the summary the file holds. SIGTERM/SIGUSR1 stop it after the
// current pair (Checkpointed: exit 75) keeping the finished pairs in <out_path>.partial, which the
// next run continues (unless `fresh`); a crash leaves the same resumable file.
io::SummaryTable compare_saes(const parallel::Comm& comm, const config::Config& config, const std::string& out_path,
                              bool fresh = false);

// The job stage: compare.saes (or `default_saes`, the job's trained SAEs, when it is empty) into
// <run.output_dir>/results.h5, reusing a complete results file with the same fingerprint unless `fresh`.
io::SummaryTable run_compare_stage(const parallel::Comm& comm, const config::Config& config,
                                   const std::vector<std::string>& default_saes, bool fresh);

// The config a comparison of `default_saes` runs with (compare.saes filled in), and its fingerprint:
// what the results file of that comparison must carry to be reused (sweep/study.hpp asks too).
config::Config with_saes(const config::Config& config, const std::vector<std::string>& default_saes);
std::string compare_fingerprint(const config::Config& config_with_saes);

// Unique names for the SAEs: file stems (a sparsify/SAELens SAE directory: its name), de-duplicated
// with a numeric suffix.
std::vector<std::string> sae_names(const std::vector<std::string>& paths);

// Writes an untrained SAE with `like`'s shape, architecture and k, initialised as the trainer
// initialises (METHODS.md §1: random unit decoder rows from `seed`, encoder = decoder, zero biases).
void write_random_init_sae(const parallel::Comm& comm, const io::SaeHeader& like, uint64_t seed, const std::string& path);

}  // namespace universae::compare
