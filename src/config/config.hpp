// Typed configuration. Every key is declared once, in config.cpp's key table: its TOML path, its
// default, its documentation and its validation. Parsing, --set overrides, validation, `--help`, the
// echo of the resolved config and the stage fingerprints all read that one table; the structs below
// only give the keys their C++ types (a Config is constructed with every default of the table, so no
// member here carries a default of its own). Choices are enums, parsed once when the config loads.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/architecture.hpp"
#include "core/choice.hpp"
#include "core/device_choice.hpp"
#include "core/float_format.hpp"

namespace universae::config {

// ---- choices --------------------------------------------------------------------------------------
enum class Stage { kExtract, kTrain, kCompare };
enum class InputFormat { kAuto, kText, kEndOfText, kJsonl };
enum class BDecInit { kGeometricMedian, kMean };
enum class TrainPreset { kNone, kSparsify };
enum class Compat { kNone, kLan2024 };
enum class CorrelationInput { kCodes, kPre };
enum class Mapping { kOneToOne, kManyToOne, kMutual };
enum class MatmulDtype { kFloat32, kBFloat16, kTF32 };

// ---- sections -------------------------------------------------------------------------------------
struct RunConfig {
  std::string name;          // "": the job file's name without .toml
  std::string output_dir;    // "": runs/<name>
  std::vector<Stage> stages;
  int64_t threads{};
  core::DeviceChoice device{};
  core::KernelChoice kernels{};
  std::vector<std::string> compare_across;
  std::vector<std::string> across_every;  // [grid] keys left free in compare_across's pairs (layer × layer)
};

// One axis of a [grid] table: a config key and the values it takes (TOML literals, as for --set).
struct GridAxis {
  std::string key;
  std::vector<std::string> values;
};

// One task of the grid: its id (also its output directory under run.output_dir) and its overrides.
struct GridTask {
  std::string id;
  std::vector<std::string> sets;     // "key=value" for each axis
  std::vector<std::string> labels;   // each axis's value as text
};

struct ExtractConfig {
  std::string model;
  std::string tokenizer;
  std::vector<std::string> inputs;
  InputFormat input_format{};
  std::vector<std::string> hookpoints;
  int64_t seq_len{};
  int64_t batch_tokens{};
  int64_t max_documents{};
  int64_t max_tokens{};
  core::FloatFormat dtype{};
  core::FloatFormat compute_dtype{};
  std::string store;         // "": <run.output_dir>/activations.h5
  bool loss{};
};

struct SyntheticConfig {
  int64_t d{};
  int64_t n_features{};
  double mean_l0{};
  double power_law{};
  double magnitude_std{};
  double noise_std{};
  int64_t seed{};
  int64_t hierarchy_parents{};      // 0: no hierarchy (data/synthetic.hpp)
  int64_t hierarchy_children{};     // children per parent
  int64_t correlation_rank{};       // 0: features fire independently
  double correlation_strength{};    // s: corr of the copula's latents = s L_j·L_k
};

struct DataConfig {
  std::string source;        // "synthetic", a store path ("extract" resolves to extract.store)
  std::string hookpoint;
  SyntheticConfig synthetic;
  int64_t shuffle_seed{};
  int64_t shuffle_chunk{};
  int64_t shuffle_buffer{};
};

struct SaeConfig {
  core::Architecture architecture{};
  int64_t n_latents{};
  int64_t k{};
  std::vector<int64_t> seeds;
  bool apply_b_dec_to_input{};
};

struct TrainConfig {
  int64_t tokens{};
  int64_t batch_size{};
  int64_t micro_batch{};
  double lr{};               // 0: 2e-4 / sqrt(n_latents / 2^14)
  int64_t warmup_steps{};
  double decay_fraction{};
  double grad_clip{};
  bool exact_sum{};
  MatmulDtype dtype{};
  double adam_beta1{};
  double adam_beta2{};
  double adam_eps{};
  int64_t dead_tokens{};
  double auxk_alpha{};
  int64_t k_aux{};           // 0: min(512, d / 2)
  BDecInit b_dec_init{};
  TrainPreset preset{};      // kSparsify: EleutherAI sparsify's TopK step (docs/training.md)
  std::vector<std::string> init_from;
  int64_t log_every{};
  int64_t eval_tokens{};
  int64_t splice_tokens{};        // spliced evaluation on the store's held-out sequences (0: none)
  int64_t snapshot_every{};       // tokens between weight snapshots (0: none)
  double sparsity_coefficient{};  // < 0: the architecture's default
  double jumprelu_bandwidth{};
  double jumprelu_init_threshold{};
  double batchtopk_threshold_rate{};
  bool normalize_input{};
  int64_t seed_groups{};
  int64_t latent_shards{};
  int64_t checkpoint_every{};
};

struct CompareConfig {
  std::vector<std::string> saes;   // empty: the SAEs the job trains
  std::vector<std::string> names;  // empty: the SAEs' file stems
  int64_t tile_rows{};
  int64_t tile_cols{};
  MatmulDtype dtype{};  // the similarity pass's tile products
  bool screen = true;  // a float32 pass on the CPU screens its tiles in bfloat16 where that pays
  bool hungarian{};
  int64_t candidates{};
  int64_t deep_factor{};
  double shared_threshold{};
  double certificate_tolerance{};
  bool repsim{};
  int64_t permutations{};
  int64_t repsim_max_pairs{};
  double svcca_variance{};
  int64_t svcca_dims{};
  int64_t knn_k{};
  Compat compat{};
  int64_t seed{};
  std::string activations;   // "" none, "synthetic", or a store path ("extract" resolves to extract.store)
  std::vector<std::string> sae_activations;  // one store per SAE of `saes` (models compared token by token); empty: `activations`
  int64_t activation_tokens{};
  CorrelationInput correlation_input{};
  Mapping activation_mapping{};
  std::string concepts;      // "": configs/concepts.toml
  int64_t chunk_tokens{};
  int64_t top_examples{};    // per latent, kept for the report's latent cards
  int64_t context_tokens{};  // tokens each side of an example's firing token
  bool baseline_random{};
  std::vector<std::string> baselines;
  // Activation statistics are on: one store for every SAE, or one store per SAE.
  bool has_activations() const { return !activations.empty() || !sae_activations.empty(); }
};

// What one kind of sweep job asks for (universae sweep: #SBATCH lines with --slurm, ranks with --local).
struct SweepResources {
  int64_t ranks{};
  int64_t nodes{};  // 0: as Slurm places the ranks
  int64_t cpus_per_rank{};
  int64_t gpus{};
  std::string time;
  std::string mem;
  std::string partition;
};

struct SweepConfig {
  std::string cluster;
  std::string partition;
  std::string account;
  std::vector<std::string> sbatch;
  int64_t signal_seconds{};
  bool requeue{};
  int64_t max_parallel{};
  std::string local_launcher;
  SweepResources extract;
  SweepResources train;
  SweepResources compare;
};

struct Config {
  Config();  // every key at its default (config.cpp's key table)
  RunConfig run;
  ExtractConfig extract;
  DataConfig data;
  SaeConfig sae;
  TrainConfig train;
  CompareConfig compare;
  SweepConfig sweep;
  std::vector<GridAxis> grid;  // [grid]: `universae run` runs train/compare once per combination

  bool has_stage(Stage s) const;
};

// Reads `path` (empty: defaults only), applies `--set key=value` overrides in order, resolves the
// derived defaults and validates. Every problem is a UsageError naming the file and key.
Config load(const std::string& path, const std::vector<std::string>& overrides);

// Every combination of the grid axes, the last axis varying fastest.
std::vector<GridTask> expand_grid(const Config& config);

// Checks every key's value and the combinations; throws UsageError naming the key.
void validate(const Config& config);

// The resolved config as TOML (echoed to the log and stored in every output).
// With `sections`, only keys under those top-level sections.
std::string to_toml(const Config& config, const std::vector<std::string>& sections = {});

// What decides whether a stage's complete output may be reused (io/fingerprint.hpp stores and
// compares it): the resolved keys the stage's output depends on, as TOML, with every input file named
// by a key (a store, SAE files, a model, texts) replaced by its identity, so that neither where the
// inputs lie nor where the outputs go changes it. `identity` maps a path to that identity.
using Identity = std::function<std::string(const std::string& path)>;
std::string fingerprint(const Config& config, Stage stage, const Identity& identity);

// "key = default  # doc" lines for --help; only keys under `sections` when given.
std::string describe_keys(const std::vector<std::string>& sections = {});
// The sections of the key table (run, extract, data, ...), in table order.
std::vector<std::string> sections();

// Edit distance, for "did you mean" suggestions.
size_t edit_distance(const std::string& a, const std::string& b);

}  // namespace universae::config

namespace universae::core {
template <>
inline const Choices& choices<config::Stage>() {
  static const Choices c{"a stage", {"extract", "train", "compare"}};
  return c;
}
template <>
inline const Choices& choices<config::InputFormat>() {
  static const Choices c{"an input format", {"auto", "text", "endoftext", "jsonl"}};
  return c;
}
template <>
inline const Choices& choices<config::BDecInit>() {
  static const Choices c{"a b_dec initialisation", {"geometric_median", "mean"}};
  return c;
}
template <>
inline const Choices& choices<config::TrainPreset>() {
  static const Choices c{"a training preset", {"", "sparsify"}};
  return c;
}
template <>
inline const Choices& choices<config::Compat>() {
  static const Choices c{"a compatibility mode", {"", "lan2024"}};
  return c;
}
template <>
inline const Choices& choices<config::CorrelationInput>() {
  static const Choices c{"a correlation input", {"codes", "pre"}};
  return c;
}
template <>
inline const Choices& choices<config::Mapping>() {
  static const Choices c{"a mapping", {"one_to_one", "many_to_one", "mutual"}};
  return c;
}
template <>
inline const Choices& choices<config::MatmulDtype>() {
  static const Choices c{"a matrix-product precision", {"float32", "bfloat16", "tf32"}};
  return c;
}

}  // namespace universae::core
