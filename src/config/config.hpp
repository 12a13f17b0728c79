// Typed configuration. Every key has one declaration (config.cpp: bind_fields) that gives its
// TOML path, its default (the member initialiser below) and its documentation; parsing, --set
// overrides, validation, `--help` and the echo of the resolved config all read that one table.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace universae::config {

struct RunConfig {
  std::string name;          // default: the job file's name without .toml
  std::string output_dir;    // default: runs/<name>
  std::vector<std::string> stages = {"train", "compare"};
  int64_t threads = 0;       // intra-op threads per rank; 0 = OMP_NUM_THREADS or 1
  std::vector<std::string> compare_across;  // grid keys: compare tasks that differ only in this key
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

// `universae extract`: a llama2.c model's activations on text (lm/extract_stage.hpp).
struct ExtractConfig {
  std::string model;                 // llama2.c checkpoint (.bin, legacy v0 or v1)
  std::string tokenizer;             // llama2.c tokenizer (.bin)
  std::vector<std::string> inputs;   // text files
  std::string input_format = "auto";  // auto, text (blank-line separated), endoftext, jsonl
  std::vector<std::string> hookpoints = {"blocks.0.hook_resid_post"};  // "blocks.*.X" = every block
  int64_t seq_len = 0;               // 0: the model's
  int64_t batch_tokens = 4096;       // tokens per forward (whole sequences)
  int64_t max_documents = 0;         // 0: all
  int64_t max_tokens = 0;            // 0: all; else the first documents up to this many tokens
  std::string dtype = "float32";     // float32, float16 or bfloat16
  std::string store;                 // default: <run.output_dir>/activations.h5
  bool loss = true;                  // mean next-token loss (needs the full forward)
};

struct SyntheticConfig {
  int64_t d = 64;
  int64_t n_features = 512;
  double mean_l0 = 8.0;
  double power_law = 0.5;    // p_j ∝ (j + 1)^(-power_law)
  double magnitude_std = 0.25;
  double noise_std = 0.01;
  int64_t seed = 0;          // seeds the dictionary and the token stream
};

struct DataConfig {
  std::string source = "synthetic";
  std::string hookpoint = "synthetic";
  SyntheticConfig synthetic;
  // Activation stores: chunked reads, a seeded shuffle (data/token_stream.hpp).
  int64_t shuffle_seed = 0;
  int64_t shuffle_chunk = 1024;      // rows read together; the chunk order is permuted per epoch
  int64_t shuffle_buffer = 65536;    // rows shuffled together (memory: shuffle_buffer × d × 4 bytes per rank)
};

struct SaeConfig {
  std::string architecture = "topk";
  int64_t n_latents = 4096;
  int64_t k = 32;
  std::vector<int64_t> seeds = {0};
  bool apply_b_dec_to_input = true;
};

struct TrainConfig {
  int64_t tokens = 10'000'000;
  int64_t batch_size = 4096;
  int64_t micro_batch = 256;
  double lr = 0.0;           // 0 = 2e-4 / sqrt(n_latents / 2^14)
  int64_t warmup_steps = 1000;
  double decay_fraction = 0.2;
  double grad_clip = 1.0;
  double adam_beta1 = 0.9;
  double adam_beta2 = 0.999;
  double adam_eps = 1e-8;
  int64_t dead_tokens = 10'000'000;
  double auxk_alpha = 1.0 / 32.0;
  int64_t k_aux = 0;         // 0 = min(512, d / 2)
  std::string b_dec_init = "geometric_median";
  // Start from trained SAEs (universae files, sparsify or SAELens directories): one for every seed, or
  // one per seed. Empty: the random initialisation of METHODS.md §1.
  std::vector<std::string> init_from;
  int64_t log_every = 100;
  int64_t eval_tokens = 65536;
  // Architectures (METHODS.md §1).
  double sparsity_coefficient = -1;  // λ; < 0: the architecture's default (sae_defaults in config.cpp)
  double jumprelu_bandwidth = 0.001;
  double jumprelu_init_threshold = 0.001;
  double batchtopk_threshold_rate = 0.01;  // running mean of the smallest kept activation
  bool normalize_input = false;      // scale x so that E‖x‖² = d (folded into the weights on save)
  // Parallel layout (DESIGN.md §3): ranks = seed_groups × latent_shards × data-parallel ranks.
  int64_t seed_groups = 1;
  int64_t latent_shards = 1;
  // Checkpoints (<output_dir>/checkpoint.h5), also written on SIGTERM / SIGUSR1.
  int64_t checkpoint_every = 500;    // steps; 0: only on a signal
};

struct CompareConfig {
  std::vector<std::string> saes;  // default: the SAEs the job trains
  int64_t tile_rows = 256;
  int64_t tile_cols = 4096;
  bool hungarian = true;
  int64_t candidates = 16;
  int64_t deep_factor = 4;
  double shared_threshold = 0.7;
  double certificate_tolerance = 1e-6;
  bool repsim = true;
  int64_t permutations = 1000;
  int64_t repsim_max_pairs = 4096;
  double svcca_variance = 0.99;
  int64_t svcca_dims = 0;
  int64_t knn_k = 10;
  std::string compat;
  int64_t seed = 0;
  // Activation statistics (METHODS.md §5).
  std::string activations;           // "" none, "synthetic" (data.synthetic, held-out tokens), or a store path
  int64_t activation_tokens = 0;     // 0: the whole store (synthetic: 65,536)
  std::string correlation_input = "codes";  // or "pre"
  std::string activation_mapping = "one_to_one";
  std::string concepts;              // "" = configs/concepts.toml
  int64_t chunk_tokens = 4096;
  // Baselines (METHODS.md §8), each compared with the first SAE.
  bool baseline_random = false;
  std::vector<std::string> baselines;
};

// What one kind of sweep job asks for (universae sweep: #SBATCH lines with --slurm, ranks with --local).
struct SweepResources {
  int64_t ranks = 1;           // MPI ranks (--ntasks)
  int64_t cpus_per_rank = 1;   // --cpus-per-task; each rank's OMP_NUM_THREADS
  int64_t gpus = 0;            // --gpus-per-task (0: none)
  std::string time = "1:00:00";  // --time (Slurm's formats: MM, HH:MM:SS, D-HH:MM, ...)
  std::string mem;             // --mem per node, e.g. "16G" ("": the partition's default)
  std::string partition;       // "": sweep.partition
};

// `universae sweep`: how the tasks of a [grid] become Slurm jobs (slurm/README.md) or local runs.
struct SweepConfig {
  std::string cluster = "local";    // slurm/<cluster>/env.sh is sourced by every job (or a path to an env file)
  std::string partition;
  std::string account;
  std::vector<std::string> sbatch;  // extra sbatch options for every job, e.g. "--qos=high"
  int64_t signal_seconds = 300;     // --signal=B:USR1@N: checkpoint this long before the time limit (0: off)
  bool requeue = true;              // a job that checkpointed (exit 75) requeues itself
  int64_t max_parallel = 0;         // array tasks running at once (0: no limit)
  std::string local_launcher = "mpirun -n {ranks}";  // --local: the command that starts a step's ranks
  SweepResources extract{2, 1, 0, "1:00:00", "", ""};
  SweepResources train;
  SweepResources compare;           // per-task comparisons and the summary (across-task comparisons)
};

struct Config {
  RunConfig run;
  ExtractConfig extract;
  DataConfig data;
  SaeConfig sae;
  TrainConfig train;
  CompareConfig compare;
  SweepConfig sweep;
  std::vector<GridAxis> grid;  // [grid]: `universae run` runs train/compare once per combination
};

// Reads `path` (empty: defaults only), applies `--set key=value` overrides in order, resolves the
// derived defaults and validates. Every problem is a UsageError naming the file and key.
Config load(const std::string& path, const std::vector<std::string>& overrides);

// Every combination of the grid axes, the last axis varying fastest.
std::vector<GridTask> expand_grid(const Config& config);

// What decides whether a stage's complete output may be reused: the resolved keys of the sections
// the stage reads, as TOML (stored in its outputs).
std::string extract_fingerprint(const Config& config);  // [extract]
std::string train_fingerprint(const Config& config);    // [data] [sae] [train]

// Checks values and their combinations; throws UsageError naming the key.
void validate(const Config& config);

// The resolved config as TOML (echoed to the log and stored in every output).
// With `sections`, only keys under those top-level sections (a fingerprint of one stage's inputs).
std::string to_toml(const Config& config, const std::vector<std::string>& sections = {});

// "key = default  # doc" lines for --help.
std::string describe_keys();

// Edit distance, for "did you mean" suggestions.
size_t edit_distance(const std::string& a, const std::string& b);

}  // namespace universae::config
