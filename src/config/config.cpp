// TOML parsing, overrides, validation and echo for config.hpp.
#include "config/config.hpp"

#include <algorithm>
#include <filesystem>
#include <functional>
#include <sstream>
#include <toml++/toml.h>
#include <variant>

#include "core/error.hpp"
#include "core/sae_model.hpp"

namespace universae::config {
namespace {

using Target = std::variant<bool*, int64_t*, double*, std::string*, std::vector<int64_t>*,
                            std::vector<std::string>*>;

struct Field {
  std::string key;
  Target target;
  std::string doc;
};

// The one declaration of every key. Order = order of the echo and of --help.
std::vector<Field> bind_fields(Config& c) {
  std::vector<Field> fields{
      {"run.name", &c.run.name, "job name (default: the job file's name)"},
      {"run.output_dir", &c.run.output_dir, "where every output goes (default: runs/<run.name>)"},
      {"run.stages", &c.run.stages, "stages `universae run` executes, in order: extract, train, compare"},
      {"run.threads", &c.run.threads, "intra-op threads per rank (0: OMP_NUM_THREADS, else 1)"},
      {"run.compare_across", &c.run.compare_across,
       "[grid] keys: also compare the first seed's SAEs of tasks that differ only in this key (e.g. data.hookpoint)"},
      {"extract.model", &c.extract.model, "llama2.c checkpoint (legacy v0 or v1 format)"},
      {"extract.tokenizer", &c.extract.tokenizer, "llama2.c tokenizer file (tokenizer.bin format)"},
      {"extract.inputs", &c.extract.inputs, "text files to run the model on"},
      {"extract.input_format", &c.extract.input_format,
       "auto (by extension and content), text (blank-line separated documents), endoftext (<|endoftext|> separated), jsonl (a \"text\" field)"},
      {"extract.hookpoints", &c.extract.hookpoints,
       "blocks.L.hook_resid_pre|hook_resid_mid|hook_resid_post|hook_mlp_out|mlp.hook_post; L = * for every block"},
      {"extract.seq_len", &c.extract.seq_len, "tokens per forward pass; longer documents continue in windows starting with BOS (0: the model's)"},
      {"extract.batch_tokens", &c.extract.batch_tokens, "tokens per forward pass (whole sequences; attention stays within each)"},
      {"extract.max_documents", &c.extract.max_documents, "use only the first N documents (0: all)"},
      {"extract.max_tokens", &c.extract.max_tokens, "use only the first documents up to this many tokens (0: all)"},
      {"extract.dtype", &c.extract.dtype, "stored activations: float32, float16 or bfloat16"},
      {"extract.store", &c.extract.store, "the activation store written (default: <run.output_dir>/activations.h5)"},
      {"extract.loss", &c.extract.loss, "report the mean next-token loss (runs every block)"},
      {"data.source", &c.data.source,
       "\"synthetic\", an activation store (HDF5, DESIGN.md §4), or \"extract\" (the store extract writes)"},
      {"data.hookpoint", &c.data.hookpoint, "the store's hookpoint to train on (recorded in SAE files)"},
      {"data.shuffle_seed", &c.data.shuffle_seed, "seeds the order of store tokens (same for every SAE seed)"},
      {"data.shuffle_chunk", &c.data.shuffle_chunk, "store rows read together; chunk order permuted per epoch"},
      {"data.shuffle_buffer", &c.data.shuffle_buffer, "store rows shuffled together (memory: rows × d × 4 bytes per rank)"},
      {"data.synthetic.d", &c.data.synthetic.d, "input width d"},
      {"data.synthetic.n_features", &c.data.synthetic.n_features, "ground-truth dictionary size m"},
      {"data.synthetic.mean_l0", &c.data.synthetic.mean_l0, "expected number of active features per token"},
      {"data.synthetic.power_law", &c.data.synthetic.power_law, "firing probability p_j ∝ (j+1)^-power_law"},
      {"data.synthetic.magnitude_std", &c.data.synthetic.magnitude_std, "feature magnitude |N(1, std²)|"},
      {"data.synthetic.noise_std", &c.data.synthetic.noise_std, "isotropic Gaussian noise σ"},
      {"data.synthetic.seed", &c.data.synthetic.seed, "seeds the dictionary and the token stream"},
      {"sae.architecture", &c.sae.architecture, "relu, topk, batchtopk, jumprelu or gated"},
      {"sae.n_latents", &c.sae.n_latents, "number of latents"},
      {"sae.k", &c.sae.k, "active latents per token (top-k architectures)"},
      {"sae.seeds", &c.sae.seeds, "seed list, or a count N meaning [0, N)"},
      {"sae.apply_b_dec_to_input", &c.sae.apply_b_dec_to_input, "encode W_enc (x - b_dec) + b_enc"},
      {"train.tokens", &c.train.tokens, "training tokens (rounded down to whole batches)"},
      {"train.batch_size", &c.train.batch_size, "global batch in tokens (over all ranks)"},
      {"train.micro_batch", &c.train.micro_batch,
       "tokens per gradient chunk; divides batch_size; fixes the arithmetic so results do not depend on ranks"},
      {"train.lr", &c.train.lr, "Adam learning rate (0: 2e-4 / sqrt(n_latents / 2^14))"},
      {"train.warmup_steps", &c.train.warmup_steps, "linear learning-rate warm-up"},
      {"train.decay_fraction", &c.train.decay_fraction, "linear decay to 0 over this last fraction of steps"},
      {"train.grad_clip", &c.train.grad_clip, "global gradient-norm clip (0: off)"},
      {"train.adam_beta1", &c.train.adam_beta1, "Adam β1"},
      {"train.adam_beta2", &c.train.adam_beta2, "Adam β2"},
      {"train.adam_eps", &c.train.adam_eps, "Adam ε"},
      {"train.dead_tokens", &c.train.dead_tokens, "a latent is dead after this many tokens without firing"},
      {"train.auxk_alpha", &c.train.auxk_alpha, "AuxK loss weight α"},
      {"train.k_aux", &c.train.k_aux, "dead latents used by AuxK (0: min(512, d/2))"},
      {"train.b_dec_init", &c.train.b_dec_init, "geometric_median or mean of the first batch"},
      {"train.init_from", &c.train.init_from,
       "start from trained SAEs (universae file, sparsify or SAELens directory): one for all seeds or one per seed"},
      {"train.log_every", &c.train.log_every, "steps between metric lines (train_log.jsonl)"},
      {"train.eval_tokens", &c.train.eval_tokens, "held-out tokens for final FVU, L0 and firing frequency"},
      {"train.sparsity_coefficient", &c.train.sparsity_coefficient,
       "λ of relu/gated L1 and jumprelu L0 (< 0: 1, a starting point for inputs with E|x|² = d; sweep it)"},
      {"train.jumprelu_bandwidth", &c.train.jumprelu_bandwidth, "jumprelu straight-through kernel width ε"},
      {"train.jumprelu_init_threshold", &c.train.jumprelu_init_threshold, "jumprelu initial threshold θ"},
      {"train.batchtopk_threshold_rate", &c.train.batchtopk_threshold_rate,
       "batchtopk inference threshold: running mean rate of the smallest kept activation"},
      {"train.normalize_input", &c.train.normalize_input, "scale inputs so that E|x|² = d (folded into saved weights)"},
      {"train.seed_groups", &c.train.seed_groups, "rank groups that each train a share of the seeds"},
      {"train.latent_shards", &c.train.latent_shards, "ranks that split the latents of one SAE (distributed top-k)"},
      {"train.checkpoint_every", &c.train.checkpoint_every, "steps between checkpoints (0: only on SIGTERM/SIGUSR1)"},
      {"compare.saes", &c.compare.saes, "SAE files to compare (default: the SAEs this job trains)"},
      {"compare.tile_rows", &c.compare.tile_rows, "rows of A per similarity tile (the unit of sharding)"},
      {"compare.tile_cols", &c.compare.tile_cols, "rows of B per similarity tile"},
      {"compare.hungarian", &c.compare.hungarian, "certified Hungarian matching of decoder and encoder rows"},
      {"compare.candidates", &c.compare.candidates, "top-K candidates per row and column for the matching"},
      {"compare.deep_factor", &c.compare.deep_factor,
       "a row the certificate recomputes keeps its top deep_factor·candidates columns (0: only violating pairs)"},
      {"compare.shared_threshold", &c.compare.shared_threshold,
       "τ: a latent is shared when its matched decoder and encoder cosines both exceed it"},
      {"compare.certificate_tolerance", &c.compare.certificate_tolerance,
       "the matching is certified when no pair has cos > α_i + β_j + tolerance"},
      {"compare.repsim", &c.compare.repsim, "SVCCA, RSA, CKA and mutual kNN of the Hungarian-paired decoder rows"},
      {"compare.permutations", &c.compare.permutations, "re-pairings in each permutation test (0: none)"},
      {"compare.repsim_max_pairs", &c.compare.repsim_max_pairs,
       "more matched pairs than this: a seeded random subset of this size (RSA and kNN are O(n²))"},
      {"compare.svcca_variance", &c.compare.svcca_variance, "SVCCA keeps the fewest directions explaining this variance"},
      {"compare.svcca_dims", &c.compare.svcca_dims, "SVCCA keeps exactly this many directions (0: use svcca_variance)"},
      {"compare.knn_k", &c.compare.knn_k, "neighbours in mutual kNN"},
      {"compare.compat", &c.compare.compat, "\"lan2024\": reproduce Lan et al.'s published SVCCA (one direction)"},
      {"compare.seed", &c.compare.seed, "seeds the permutation tests (stored per pair and metric)"},
      {"compare.activations", &c.compare.activations,
       "activation statistics on: \"\" (none), \"synthetic\" (held-out data.synthetic tokens), a store path or \"extract\""},
      {"compare.activation_tokens", &c.compare.activation_tokens, "tokens for activation statistics (0: whole store; synthetic 65,536)"},
      {"compare.correlation_input", &c.compare.correlation_input,
       "codes (the SAE's sparse output, exact via co-firing) or pre (dense relu(pre), Lan et al.)"},
      {"compare.activation_mapping", &c.compare.activation_mapping,
       "pairs for the activation-based SVCCA/RSA/CKA/kNN: one_to_one, many_to_one or mutual"},
      {"compare.concepts", &c.compare.concepts, "keyword categories for semantic subspaces (\"\": configs/concepts.toml)"},
      {"compare.chunk_tokens", &c.compare.chunk_tokens, "tokens per encoding block (fixed, so results do not depend on ranks)"},
      {"compare.baseline_random", &c.compare.baseline_random,
       "add an untrained random-initialisation SAE of the first SAE's shape, compared with the first SAE"},
      {"compare.baselines", &c.compare.baselines, "baseline SAE files, each compared with the first SAE (also --baseline)"},
      {"sweep.cluster", &c.sweep.cluster, "`universae sweep`: slurm/<cluster>/env.sh sourced by every job, or a path to an env file"},
      {"sweep.partition", &c.sweep.partition, "Slurm partition for every job (\"\": the cluster's default)"},
      {"sweep.account", &c.sweep.account, "Slurm account to charge (\"\": your default)"},
      {"sweep.sbatch", &c.sweep.sbatch, "extra sbatch options for every job, e.g. [\"--qos=high\", \"--constraint=a100\"]"},
      {"sweep.signal_seconds", &c.sweep.signal_seconds,
       "--signal=B:USR1@N: jobs checkpoint this many seconds before their time limit (0: off)"},
      {"sweep.requeue", &c.sweep.requeue, "a job that checkpointed on a signal (exit 75) requeues itself and resumes"},
      {"sweep.max_parallel", &c.sweep.max_parallel, "array tasks running at once (0: no limit)"},
      {"sweep.local_launcher", &c.sweep.local_launcher, "--local: the command that starts a step's ranks ({ranks} = the step's ranks)"},
  };
  // Resources per kind of job: extraction, training (one array task per grid task), comparisons.
  for (auto [name, r] : {std::pair{"extract", &c.sweep.extract}, {"train", &c.sweep.train}, {"compare", &c.sweep.compare}}) {
    const std::string k = std::string("sweep.") + name + ".";
    const std::string what = std::string(name) == "compare" ? "compare and summary jobs" : std::string(name) + " jobs";
    fields.push_back({k + "ranks", &r->ranks, what + ": MPI ranks (--ntasks)"});
    fields.push_back({k + "cpus_per_rank", &r->cpus_per_rank, what + ": cores per rank (--cpus-per-task, OMP_NUM_THREADS)"});
    fields.push_back({k + "gpus", &r->gpus, what + ": GPUs per rank (--gpus-per-task)"});
    fields.push_back({k + "time", &r->time, what + ": time limit (--time, e.g. \"4:00:00\" or \"1-00:00:00\")"});
    fields.push_back({k + "mem", &r->mem, what + ": memory per node (--mem, e.g. \"32G\"; \"\": the partition's default)"});
    fields.push_back({k + "partition", &r->partition, what + ": partition (\"\": sweep.partition)"});
  }
  return fields;
}

const char* type_name(const Target& t) {
  switch (t.index()) {
    case 0: return "a boolean";
    case 1: return "an integer";
    case 2: return "a number";
    case 3: return "a string";
    case 4: return "an integer list (or a count)";
    default: return "a string list";
  }
}

std::string node_type_name(const toml::node& n) {
  std::ostringstream s;
  s << n.type();
  return s.str();
}

std::string nearest_key(const std::string& key, const std::vector<Field>& fields) {
  std::string best;
  size_t best_distance = SIZE_MAX;
  for (const auto& f : fields) {
    const size_t d = edit_distance(key, f.key);
    if (d < best_distance) best_distance = d, best = f.key;
  }
  return best;
}

// Assigns a TOML value to a typed field, or explains why not.
void assign(const Field& field, const toml::node& node, const std::string& where) {
  auto wrong = [&] {
    return UsageError(where + ": key '" + field.key + "' must be " + type_name(field.target) + ", got " +
                      node_type_name(node));
  };
  std::visit(
      [&](auto* target) {
        using T = std::remove_pointer_t<decltype(target)>;
        if constexpr (std::is_same_v<T, bool>) {
          if (!node.is_boolean()) throw wrong();
          *target = *node.value<bool>();
        } else if constexpr (std::is_same_v<T, int64_t>) {
          if (!node.is_integer()) throw wrong();
          *target = *node.value<int64_t>();
        } else if constexpr (std::is_same_v<T, double>) {
          if (!node.is_number()) throw wrong();
          *target = *node.value<double>();
        } else if constexpr (std::is_same_v<T, std::string>) {
          if (!node.is_string()) throw wrong();
          *target = *node.value<std::string>();
        } else if constexpr (std::is_same_v<T, std::vector<int64_t>>) {
          target->clear();
          if (node.is_integer()) {  // a count N means [0, N)
            const int64_t n = *node.value<int64_t>();
            if (n < 1) throw UsageError(where + ": key '" + field.key + "' as a count must be >= 1");
            for (int64_t i = 0; i < n; ++i) target->push_back(i);
          } else if (const auto* arr = node.as_array()) {
            for (const auto& e : *arr) {
              if (!e.is_integer()) throw wrong();
              target->push_back(*e.value<int64_t>());
            }
          } else {
            throw wrong();
          }
        } else {
          target->clear();
          if (node.is_string()) {
            target->push_back(*node.value<std::string>());
          } else if (const auto* arr = node.as_array()) {
            for (const auto& e : *arr) {
              if (!e.is_string()) throw wrong();
              target->push_back(*e.value<std::string>());
            }
          } else {
            throw wrong();
          }
        }
      },
      field.target);
}

const Field& find_field(const std::string& key, const std::vector<Field>& fields, const std::string& where) {
  for (const auto& f : fields)
    if (f.key == key) return f;
  throw UsageError(where + ": unknown key '" + key + "'; did you mean '" + nearest_key(key, fields) + "'?");
}

void apply_table(const toml::table& table, const std::string& prefix, const std::vector<Field>& fields,
                 const std::string& where) {
  for (const auto& [k, node] : table) {
    const std::string key = prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
    if (const auto* sub = node.as_table()) {
      apply_table(*sub, key, fields, where);
    } else {
      assign(find_field(key, fields, where), node, where);
    }
  }
}

// [grid] "section.key" = [values] (or dotted keys): each value checked against the key's type.
std::vector<GridAxis> read_grid(const toml::table& grid, const std::vector<Field>& fields, const std::string& where) {
  std::vector<GridAxis> axes;
  std::function<void(const toml::table&, const std::string&)> walk = [&](const toml::table& t, const std::string& prefix) {
    for (const auto& [k, node] : t) {
      const std::string key = prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
      if (const auto* sub = node.as_table()) {
        walk(*sub, key);
        continue;
      }
      find_field(key, fields, where + " [grid]");  // an unknown key: "did you mean"
      const auto* values = node.as_array();
      if (!values || values->empty()) throw UsageError(where + ": [grid] key '" + key + "' must be a non-empty list of values");
      if (key.rfind("extract.", 0) == 0 || key.rfind("run.", 0) == 0 || key.rfind("sweep.", 0) == 0)
        throw UsageError(where + ": [grid] key '" + key + "': the grid varies data, sae, train and compare keys (one extraction serves every task)");
      GridAxis axis{key, {}};
      for (const auto& v : *values) {
        std::ostringstream literal;
        if (v.is_string()) literal << toml::value<std::string>(*v.value<std::string>());
        else if (const auto* arr = v.as_array()) literal << *arr;
        else v.visit([&](const auto& x) { literal << x; });
        Config scratch;
        assign(find_field(key, bind_fields(scratch), where), v, where + " [grid]");  // type check
        axis.values.push_back(literal.str());
      }
      axes.push_back(std::move(axis));
    }
  };
  walk(grid, "");
  return axes;
}

void apply_override(const std::string& text, const std::vector<Field>& fields) {
  const auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0)
    throw UsageError("--set '" + text + "': expected section.key=value");
  const std::string key = text.substr(0, eq);
  const std::string value = text.substr(eq + 1);
  const Field& field = find_field(key, fields, "--set");
  // The value is read as TOML (numbers, booleans, ["lists"]); anything else is a bare string.
  toml::table parsed;
  try {
    parsed = toml::parse("v = " + value);
  } catch (const toml::parse_error&) {
    parsed = toml::table{{"v", value}};
  }
  assign(field, *parsed.get("v"), "--set " + key);
}

template <typename T>
void insert_dotted(toml::table& root, const std::string& key, T&& value) {
  toml::table* t = &root;
  size_t start = 0;
  for (size_t dot; (dot = key.find('.', start)) != std::string::npos; start = dot + 1) {
    const std::string part = key.substr(start, dot - start);
    if (!t->contains(part)) t->insert(part, toml::table{});
    t = t->get_as<toml::table>(part);
  }
  t->insert_or_assign(key.substr(start), std::forward<T>(value));
}

void require(bool ok, const std::string& key, const std::string& message) {
  if (!ok) throw UsageError("config key '" + key + "': " + message);
}

}  // namespace

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

Config load(const std::string& path, const std::vector<std::string>& overrides) {
  Config config;
  const auto fields = bind_fields(config);
  if (!path.empty()) {
    if (!std::filesystem::is_regular_file(path))
      throw UsageError(path + ": config file not found");
    toml::table table;
    try {
      table = toml::parse_file(path);
    } catch (const toml::parse_error& e) {
      throw UsageError(path + ":" + std::to_string(e.source().begin.line) + ":" +
                       std::to_string(e.source().begin.column) + ": TOML syntax error: " +
                       std::string(e.description()));
    }
    if (const auto* grid = table.get_as<toml::table>("grid")) {
      config.grid = read_grid(*grid, fields, path);
      table.erase("grid");
    }
    apply_table(table, "", fields, path);
  }
  for (const auto& o : overrides) apply_override(o, fields);

  if (config.run.name.empty())
    config.run.name = path.empty() ? "universae" : std::filesystem::path(path).stem().string();
  if (config.run.output_dir.empty()) config.run.output_dir = "runs/" + config.run.name;
  if (config.extract.store.empty()) config.extract.store = config.run.output_dir + "/activations.h5";
  if (config.data.source == "extract") config.data.source = config.extract.store;
  if (config.compare.activations == "extract") config.compare.activations = config.extract.store;
  validate(config);
  return config;
}

void validate(const Config& c) {
  for (const auto& s : c.run.stages)
    require(s == "extract" || s == "train" || s == "compare", "run.stages",
            "unknown stage '" + s + "' (known: extract, train, compare)");
  require(c.run.threads >= 0, "run.threads", "must be >= 0");
  // The store the extract stage of this run writes need not exist yet.
  const bool extracting = std::find(c.run.stages.begin(), c.run.stages.end(), "extract") != c.run.stages.end();
  auto produced = [&](const std::string& path) { return extracting && path == c.extract.store; };
  require(c.data.source == "synthetic" || std::filesystem::exists(c.data.source) || produced(c.data.source), "data.source",
          "'" + c.data.source + "': file not found");
  const bool grid_hookpoint = std::any_of(c.grid.begin(), c.grid.end(), [](const GridAxis& a) { return a.key == "data.hookpoint"; });
  require(c.data.source == "synthetic" || c.data.hookpoint != "synthetic" || grid_hookpoint, "data.hookpoint",
          "name the store's hookpoint to train on (data.source is a store)");
  require(c.data.shuffle_chunk >= 1, "data.shuffle_chunk", "must be >= 1");
  require(c.data.shuffle_buffer >= 1, "data.shuffle_buffer", "must be >= 1");
  const auto& s = c.data.synthetic;
  require(s.d >= 1, "data.synthetic.d", "must be >= 1");
  require(s.n_features >= 1, "data.synthetic.n_features", "must be >= 1");
  require(s.mean_l0 > 0 && s.mean_l0 <= static_cast<double>(s.n_features), "data.synthetic.mean_l0",
          "must be in (0, n_features]");
  require(s.power_law >= 0, "data.synthetic.power_law", "must be >= 0");
  require(s.magnitude_std >= 0, "data.synthetic.magnitude_std", "must be >= 0");
  require(s.noise_std >= 0, "data.synthetic.noise_std", "must be >= 0");
  core::parse_architecture(c.sae.architecture);
  require(c.sae.n_latents >= 1, "sae.n_latents", "must be >= 1");
  require(c.sae.k >= 1 && c.sae.k <= c.sae.n_latents, "sae.k", "must be in [1, n_latents]");
  require(!c.sae.seeds.empty(), "sae.seeds", "needs at least one seed");
  auto seeds = c.sae.seeds;
  std::sort(seeds.begin(), seeds.end());
  require(std::adjacent_find(seeds.begin(), seeds.end()) == seeds.end(), "sae.seeds", "seeds must be distinct");
  const auto& t = c.train;
  require(t.batch_size >= 1, "train.batch_size", "must be >= 1");
  require(t.micro_batch >= 1 && t.batch_size % t.micro_batch == 0, "train.micro_batch",
          "must divide train.batch_size (" + std::to_string(t.batch_size) + ")");
  require(t.tokens >= t.batch_size, "train.tokens", "must be at least one batch (train.batch_size)");
  require(t.lr >= 0, "train.lr", "must be >= 0");
  require(t.warmup_steps >= 0, "train.warmup_steps", "must be >= 0");
  require(t.decay_fraction >= 0 && t.decay_fraction <= 1, "train.decay_fraction", "must be in [0, 1]");
  require(t.grad_clip >= 0, "train.grad_clip", "must be >= 0");
  require(t.adam_beta1 >= 0 && t.adam_beta1 < 1, "train.adam_beta1", "must be in [0, 1)");
  require(t.adam_beta2 >= 0 && t.adam_beta2 < 1, "train.adam_beta2", "must be in [0, 1)");
  require(t.adam_eps > 0, "train.adam_eps", "must be > 0");
  require(t.dead_tokens >= 1, "train.dead_tokens", "must be >= 1");
  require(t.auxk_alpha >= 0, "train.auxk_alpha", "must be >= 0");
  require(t.k_aux >= 0, "train.k_aux", "must be >= 0");
  require(t.b_dec_init == "geometric_median" || t.b_dec_init == "mean", "train.b_dec_init",
          "must be geometric_median or mean");
  require(t.init_from.empty() || t.init_from.size() == 1 || t.init_from.size() == c.sae.seeds.size(), "train.init_from",
          "needs one SAE for all seeds or one per seed (" + std::to_string(c.sae.seeds.size()) + ")");
  for (const auto& p : t.init_from)
    require(std::filesystem::exists(p), "train.init_from", "'" + p + "': no such file or directory");
  require(t.log_every >= 1, "train.log_every", "must be >= 1");
  require(t.eval_tokens >= 0, "train.eval_tokens", "must be >= 0");
  require(t.jumprelu_bandwidth > 0, "train.jumprelu_bandwidth", "must be > 0");
  require(t.jumprelu_init_threshold > 0, "train.jumprelu_init_threshold", "must be > 0");
  require(t.batchtopk_threshold_rate > 0 && t.batchtopk_threshold_rate <= 1, "train.batchtopk_threshold_rate",
          "must be in (0, 1]");
  require(t.checkpoint_every >= 0, "train.checkpoint_every", "must be >= 0");
  require(t.seed_groups >= 1 && t.seed_groups <= static_cast<int64_t>(c.sae.seeds.size()), "train.seed_groups",
          "must be in [1, number of seeds]");
  require(t.latent_shards >= 1 && t.latent_shards * c.sae.k <= c.sae.n_latents, "train.latent_shards",
          "must be >= 1 and leave every shard at least sae.k latents");
  const auto& x = c.extract;
  for (const auto& key : c.run.compare_across)
    require(std::any_of(c.grid.begin(), c.grid.end(), [&](const GridAxis& a) { return a.key == key; }), "run.compare_across",
            "'" + key + "' is not a [grid] key");
  require(x.input_format == "auto" || x.input_format == "text" || x.input_format == "endoftext" || x.input_format == "jsonl",
          "extract.input_format", "must be auto, text, endoftext or jsonl");
  require(!x.hookpoints.empty(), "extract.hookpoints", "needs at least one hookpoint");
  require(x.seq_len >= 0, "extract.seq_len", "must be >= 0 (0: the model's)");
  require(x.batch_tokens >= 1, "extract.batch_tokens", "must be >= 1");
  require(x.max_documents >= 0, "extract.max_documents", "must be >= 0");
  require(x.max_tokens >= 0, "extract.max_tokens", "must be >= 0");
  require(x.dtype == "float32" || x.dtype == "float16" || x.dtype == "bfloat16", "extract.dtype",
          "must be float32, float16 or bfloat16");
  require(c.compare.tile_rows >= 1, "compare.tile_rows", "must be >= 1");
  require(c.compare.tile_cols >= 1, "compare.tile_cols", "must be >= 1");
  require(c.compare.candidates >= 1, "compare.candidates", "must be >= 1");
  require(c.compare.deep_factor >= 0, "compare.deep_factor", "must be >= 0");
  require(c.compare.shared_threshold >= -1 && c.compare.shared_threshold <= 1, "compare.shared_threshold",
          "must be in [-1, 1]");
  require(c.compare.certificate_tolerance >= 0, "compare.certificate_tolerance", "must be >= 0");
  require(c.compare.permutations >= 0, "compare.permutations", "must be >= 0");
  require(c.compare.repsim_max_pairs >= 3, "compare.repsim_max_pairs", "must be >= 3");
  require(c.compare.svcca_variance > 0 && c.compare.svcca_variance <= 1, "compare.svcca_variance", "must be in (0, 1]");
  require(c.compare.svcca_dims >= 0, "compare.svcca_dims", "must be >= 0");
  require(c.compare.knn_k >= 1, "compare.knn_k", "must be >= 1");
  require(c.compare.compat.empty() || c.compare.compat == "lan2024", "compare.compat", "must be \"\" or \"lan2024\"");
  require(c.compare.activations.empty() || c.compare.activations == "synthetic" ||
              std::filesystem::exists(c.compare.activations) || produced(c.compare.activations),
          "compare.activations", "'" + c.compare.activations + "': file not found");
  require(c.compare.activation_tokens >= 0, "compare.activation_tokens", "must be >= 0");
  require(c.compare.correlation_input == "codes" || c.compare.correlation_input == "pre", "compare.correlation_input",
          "must be codes or pre");
  require(c.compare.activation_mapping == "one_to_one" || c.compare.activation_mapping == "many_to_one" ||
              c.compare.activation_mapping == "mutual",
          "compare.activation_mapping", "must be one_to_one, many_to_one or mutual");
  require(c.compare.concepts.empty() || std::filesystem::exists(c.compare.concepts), "compare.concepts",
          "'" + c.compare.concepts + "': file not found");
  require(c.compare.chunk_tokens >= 1, "compare.chunk_tokens", "must be >= 1");
  for (const auto& b : c.compare.baselines)
    require(std::filesystem::exists(b), "compare.baselines", "'" + b + "': file not found");
  const auto& w = c.sweep;
  require(!w.cluster.empty(), "sweep.cluster", "must name a cluster (slurm/<cluster>/env.sh) or an env file");
  require(w.signal_seconds >= 0, "sweep.signal_seconds", "must be >= 0 (0: no signal before the time limit)");
  require(w.max_parallel >= 0, "sweep.max_parallel", "must be >= 0 (0: no limit)");
  require(w.local_launcher.find("{ranks}") != std::string::npos, "sweep.local_launcher",
          "must contain {ranks} (e.g. \"mpirun -n {ranks}\")");
  for (const auto& o : w.sbatch)
    require(o.rfind("-", 0) == 0 && o.find('\n') == std::string::npos, "sweep.sbatch",
            "'" + o + "' is not an sbatch option (\"--name=value\")");
  for (auto [name, r] : {std::pair{"extract", &w.extract}, {"train", &w.train}, {"compare", &w.compare}}) {
    const std::string k = std::string("sweep.") + name + ".";
    require(r->ranks >= 1, k + "ranks", "must be >= 1");
    require(r->cpus_per_rank >= 1, k + "cpus_per_rank", "must be >= 1");
    require(r->gpus >= 0, k + "gpus", "must be >= 0");
    require(!r->time.empty() && r->time.find_first_not_of("0123456789:-") == std::string::npos, k + "time",
            "'" + r->time + "' is not a Slurm time limit (MM, HH:MM:SS, D-HH:MM:SS, ...)");
    require(r->mem.find_first_of(" \n'\"") == std::string::npos, k + "mem", "'" + r->mem + "' is not a Slurm memory size");
    require(r->partition.find_first_of(" \n'\"") == std::string::npos, k + "partition", "must be one partition name");
  }
  require(w.partition.find_first_of(" \n'\"") == std::string::npos, "sweep.partition", "must be one partition name");
  require(w.account.find_first_of(" \n'\"") == std::string::npos, "sweep.account", "must be one account name");
}

std::string extract_fingerprint(const Config& c) { return to_toml(c, {"extract"}); }
std::string train_fingerprint(const Config& c) { return to_toml(c, {"data", "sae", "train"}); }

std::vector<GridTask> expand_grid(const Config& config) {
  std::vector<GridTask> tasks(1);
  for (const auto& axis : config.grid) {
    std::vector<GridTask> next;
    const std::string name = axis.key.substr(axis.key.rfind('.') + 1);
    for (const auto& task : tasks)
      for (const auto& value : axis.values) {
        GridTask t = task;
        std::string label = value;
        if (label.size() >= 2 && (label.front() == '"' || label.front() == '\'') && label.back() == label.front())
          label = label.substr(1, label.size() - 2);
        for (char& ch : label)
          if (ch == '/' || ch == ' ' || ch == '[' || ch == ']' || ch == '"' || ch == '\'' || ch == ',') ch = '_';
        t.id += (t.id.empty() ? "" : ",") + name + "=" + label;
        t.sets.push_back(axis.key + "=" + value);
        t.labels.push_back(label);
        next.push_back(std::move(t));
      }
    tasks = std::move(next);
  }
  return config.grid.empty() ? std::vector<GridTask>{} : tasks;
}

std::string to_toml(const Config& config, const std::vector<std::string>& sections) {
  Config copy = config;
  toml::table root;
  for (const auto& f : bind_fields(copy)) {
    const std::string section = f.key.substr(0, f.key.find('.'));
    if (!sections.empty() && std::find(sections.begin(), sections.end(), section) == sections.end()) continue;
    std::visit(
        [&](auto* v) {
          using T = std::remove_pointer_t<decltype(v)>;
          if constexpr (std::is_same_v<T, std::vector<int64_t>> || std::is_same_v<T, std::vector<std::string>>) {
            toml::array arr;
            for (const auto& e : *v) arr.push_back(e);
            insert_dotted(root, f.key, std::move(arr));
          } else {
            insert_dotted(root, f.key, *v);
          }
        },
        f.target);
  }
  std::ostringstream out;
  out << root << "\n";
  return out.str();
}

std::string describe_keys() {
  Config defaults;
  std::ostringstream out;
  for (const auto& f : bind_fields(defaults)) {
    std::string value;
    std::visit(
        [&](auto* v) {
          using T = std::remove_pointer_t<decltype(v)>;
          std::ostringstream s;
          if constexpr (std::is_same_v<T, bool>) {
            s << (*v ? "true" : "false");
          } else if constexpr (std::is_same_v<T, std::string>) {
            s << '"' << *v << '"';
          } else if constexpr (std::is_same_v<T, std::vector<int64_t>> ||
                               std::is_same_v<T, std::vector<std::string>>) {
            s << '[';
            for (size_t i = 0; i < v->size(); ++i) s << (i ? ", " : "") << (*v)[i];
            s << ']';
          } else {
            s << *v;
          }
          value = s.str();
        },
        f.target);
    out << "  " << f.key << " = " << value << "\n      " << f.doc << "\n";
  }
  return out.str();
}

}  // namespace universae::config
