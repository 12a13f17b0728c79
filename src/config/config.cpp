// The key table (every key's TOML path, default, documentation and validation, in one declaration
// each), and what reads it: TOML parsing, --set overrides, validation, echo, --help, fingerprints.
#include "config/config.hpp"

#include <algorithm>
#include <cstring>
#include <cctype>
#include <filesystem>
#include <memory>
#include <regex>
#include <sstream>
#include <toml++/toml.h>
#include <type_traits>

#include "core/error.hpp"

namespace universae::config {
namespace {

namespace fs = std::filesystem;

// What a key is for the stage fingerprints: a plain value, the path of an input file (replaced by its
// identity), or where an output goes (left out: it does not change what is computed).
enum class Role { kValue, kInput, kOutput };

// One key of the table: typed access to its member of a Config, its default and its check.
class Field {
 public:
  Field(std::string key, std::string doc) : key_(std::move(key)), doc_(std::move(doc)) {}
  virtual ~Field() = default;
  const std::string& key() const { return key_; }
  const std::string& doc() const { return doc_; }
  std::string section() const { return key_.substr(0, key_.find('.')); }
  Role role() const { return role_; }
  Field& role(Role r) { return role_ = r, *this; }
  // A key added after outputs were first fingerprinted, whose default is what those outputs were made
  // with: left out of fingerprints while at its default, so older outputs stay reusable.
  bool later() const { return later_; }
  Field& later(bool v) { return later_ = v, *this; }

  virtual void reset() = 0;                                                   // the default
  virtual bool at_default() const = 0;
  virtual void assign(const toml::node& node, const std::string& where) = 0;  // a TOML value, checked for type
  virtual void insert(toml::table& root) const = 0;                           // the echo
  virtual std::string text() const = 0;                                       // --help: the value as written
  virtual std::string problem() const = 0;                                    // "" when valid
  virtual std::vector<std::string> paths() const = 0;                         // the value as file paths

 private:
  std::string key_, doc_;
  Role role_ = Role::kValue;
  bool later_ = false;
};

template <typename T>
struct is_vector : std::false_type {};
template <typename T>
struct is_vector<std::vector<T>> : std::true_type {};

template <typename T>
constexpr bool is_choice = std::is_enum_v<T>;

template <typename T>
const char* type_name() {
  if constexpr (std::is_same_v<T, bool>) return "a boolean";
  else if constexpr (std::is_same_v<T, int64_t>) return "an integer";
  else if constexpr (std::is_same_v<T, double>) return "a number";
  else if constexpr (std::is_same_v<T, std::vector<int64_t>>) return "an integer list (or a count)";
  else if constexpr (is_vector<T>::value) return "a string list";
  else return "a string";
}

std::string node_type_name(const toml::node& n) {
  std::ostringstream s;
  s << n.type();
  return s.str();
}

// A scalar of the key's element type from a TOML node (false: the node has another type).
template <typename E>
bool scalar_from(const toml::node& node, E& out, const std::string& key, const std::string& where) {
  if constexpr (std::is_same_v<E, bool>) {
    if (!node.is_boolean()) return false;
    out = *node.value<bool>();
  } else if constexpr (std::is_same_v<E, int64_t>) {
    if (!node.is_integer()) return false;
    out = *node.value<int64_t>();
  } else if constexpr (std::is_same_v<E, double>) {
    if (!node.is_number()) return false;
    out = *node.value<double>();
  } else if constexpr (std::is_same_v<E, std::string>) {
    if (!node.is_string()) return false;
    out = *node.value<std::string>();
  } else {
    static_assert(is_choice<E>);
    if (!node.is_string()) return false;
    const std::string name = *node.value<std::string>();
    const auto value = core::choice_from<E>(name);
    if (!value) throw UsageError(where + ": " + core::not_a_choice<E>(key, name));
    out = *value;
  }
  return true;
}

template <typename E>
auto toml_value(const E& v) {
  if constexpr (is_choice<E>) return core::name_of(v);
  else return v;
}

template <typename E>
std::string element_text(const E& v, bool quote_strings) {
  std::ostringstream s;
  if constexpr (std::is_same_v<E, bool>) s << (v ? "true" : "false");
  else if constexpr (std::is_same_v<E, std::string>) s << (quote_strings ? "\"" + v + "\"" : v);
  else if constexpr (is_choice<E>) s << (quote_strings ? "\"" + core::name_of(v) + "\"" : core::name_of(v));
  else s << v;
  return s.str();
}

template <typename T>
class Key final : public Field {
 public:
  using Check = std::function<std::string(const T&)>;
  Key(std::string key, T* target, T default_value, std::string doc, Check check)
      : Field(std::move(key), std::move(doc)), target_(target), default_(std::move(default_value)), check_(std::move(check)) {}

  void reset() override { *target_ = default_; }
  bool at_default() const override { return *target_ == default_; }

  void assign(const toml::node& node, const std::string& where) override {
    auto wrong = [&] {
      return UsageError(where + ": key '" + key() + "' must be " + type_name<T>() + ", got " + node_type_name(node));
    };
    if constexpr (is_vector<T>::value) {
      using E = typename T::value_type;
      T values;
      E one{};
      if constexpr (std::is_same_v<E, int64_t>) {
        if (node.is_integer()) {  // a count N means [0, N)
          const int64_t n = *node.value<int64_t>();
          if (n < 1) throw UsageError(where + ": key '" + key() + "' as a count must be >= 1");
          for (int64_t i = 0; i < n; ++i) values.push_back(i);
          *target_ = values;
          return;
        }
      } else if (scalar_from(node, one, key(), where)) {  // a single string means a list of one
        *target_ = T{one};
        return;
      }
      const auto* array = node.as_array();
      if (!array) throw wrong();
      for (const auto& e : *array) {
        if (!scalar_from(e, one, key(), where)) throw wrong();
        values.push_back(one);
      }
      *target_ = values;
    } else {
      if (!scalar_from(node, *target_, key(), where)) throw wrong();
    }
  }

  void insert(toml::table& root) const override {
    if constexpr (is_vector<T>::value) {
      toml::array array;
      for (const auto& e : *target_) array.push_back(toml_value(e));
      insert_dotted(root, std::move(array));
    } else {
      insert_dotted(root, toml_value(*target_));
    }
  }

  std::string text() const override {
    if constexpr (is_vector<T>::value) {
      std::string s = "[";
      for (size_t i = 0; i < target_->size(); ++i) s += (i ? ", " : "") + element_text((*target_)[i], false);
      return s + "]";
    } else {
      return element_text(*target_, true);
    }
  }

  std::string problem() const override { return check_ ? check_(*target_) : ""; }

  std::vector<std::string> paths() const override {
    if constexpr (std::is_same_v<T, std::string>) return {*target_};
    else if constexpr (std::is_same_v<T, std::vector<std::string>>) return *target_;
    else return {};
  }

 private:
  template <typename V>
  void insert_dotted(toml::table& root, V&& value) const {
    toml::table* t = &root;
    size_t start = 0;
    for (size_t dot; (dot = key().find('.', start)) != std::string::npos; start = dot + 1) {
      const std::string part = key().substr(start, dot - start);
      if (!t->contains(part)) t->insert(part, toml::table{});
      t = t->get_as<toml::table>(part);
    }
    t->insert_or_assign(key().substr(start), std::forward<V>(value));
  }

  T* target_;
  T default_;
  Check check_;
};

using Fields = std::vector<std::unique_ptr<Field>>;

// ---- checks: each returns "" or what the value must be ---------------------------------------------
template <typename T>
std::string number_text(T v) {
  std::ostringstream s;
  s << v;
  return s.str();
}
template <typename T>
std::function<std::string(const T&)> at_least(T min, std::string note = "") {
  return [min, note](const T& v) { return v >= min ? "" : "must be >= " + number_text(min) + note; };
}
template <typename T>
std::function<std::string(const T&)> in_range(T lo, T hi) {
  return [lo, hi](const T& v) { return v >= lo && v <= hi ? "" : "must be in [" + number_text(lo) + ", " + number_text(hi) + "]"; };
}
template <typename T>
std::function<std::string(const T&)> above(T min) {
  return [min](const T& v) { return v > min ? "" : "must be > " + number_text(min); };
}
// [lo, hi] or, with open_low / open_high, (lo, hi] / [lo, hi).
std::function<std::string(const double&)> within(double lo, double hi, bool open_low = false, bool open_high = false) {
  return [=](const double& v) {
    const bool ok = (open_low ? v > lo : v >= lo) && (open_high ? v < hi : v <= hi);
    return ok ? "" : "must be in " + std::string(open_low ? "(" : "[") + number_text(lo) + ", " + number_text(hi) +
                         (open_high ? ")" : "]");
  };
}
std::string must_exist(const std::string& path) { return fs::exists(path) ? "" : "'" + path + "': file not found"; }
// One word: a Slurm partition or account name.
std::function<std::string(const std::string&)> one_name(const std::string& what) {
  return [what](const std::string& v) { return v.find_first_of(" \n'\"") == std::string::npos ? "" : "must be one " + what + " name"; };
}

template <typename T>
struct NotDeduced {
  using type = T;
};

class Table {
 public:
  explicit Table(Fields& fields) : fields_(fields) {}
  // The key's type comes from its member; the default and the check convert to it.
  template <typename T>
  Field& add(const std::string& key, T* target, typename NotDeduced<T>::type default_value, const std::string& doc,
             typename NotDeduced<std::function<std::string(const T&)>>::type check = {}) {
    fields_.push_back(std::make_unique<Key<T>>(key, target, std::move(default_value), doc, std::move(check)));
    return *fields_.back();
  }

 private:
  Fields& fields_;
};

// The store this run's extract stage writes need not exist yet.
bool produced_here(const Config& c, const std::string& path) { return c.has_stage(Stage::kExtract) && path == c.extract.store; }

void run_keys(Table& t, Config& c) {
  // The name reaches #SBATCH --job-name= lines and directory names: nothing a shell or sbatch reads specially.
  t.add("run.name", &c.run.name, std::string(), "job name: letters, digits, '.', '_', '-', '+' (default: the job file's name)",
        [](const std::string& v) {
          for (const char ch : v)
            if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '.' && ch != '_' && ch != '-' && ch != '+')
              return std::string("'") + v + "' may hold only letters, digits, '.', '_', '-' and '+' (it names Slurm jobs and folders)";
          return std::string();
        });
  t.add("run.output_dir", &c.run.output_dir, std::string(), "where every output goes (default: runs/<run.name>)").role(Role::kOutput);
  t.add("run.stages", &c.run.stages, {Stage::kTrain, Stage::kCompare},
        "stages `universae run` executes, in order: extract, train, compare");
  t.add("run.threads", &c.run.threads, int64_t{0}, "intra-op threads per rank (0: OMP_NUM_THREADS, else 1)", at_least<int64_t>(0));
  t.add("run.device", &c.run.device, core::DeviceChoice::kAuto,
        "where training, compare's similarity passes and extraction's forward run: cpu, cuda (each rank takes the GPU "
        "of its rank on its node), or auto (cuda when this build has CUDA and a GPU is visible, else cpu)");
  t.add("run.kernels", &c.run.kernels, core::KernelChoice::kAuto,
        "the implementation of the training step and compare's scans: fast (the CPU's hand-written kernels; cpu only), "
        "generic (ATen operators only: any device, the GPU's), or auto (fast on the CPU, generic elsewhere)");
  t.add<std::vector<std::string>>(
      "run.compare_across", &c.run.compare_across, {},
      "[grid] keys: also compare the first seed's SAEs of tasks that differ only in this key (e.g. data.hookpoint)",
      [&c](const std::vector<std::string>& keys) {
        for (const auto& key : keys)
          if (std::none_of(c.grid.begin(), c.grid.end(), [&](const GridAxis& a) { return a.key == key; }))
            return "'" + key + "' is not a [grid] key";
        return std::string();
      });
  t.add<std::vector<std::string>>(
      "run.across_every", &c.run.across_every, {},
      "[grid] keys free to differ in run.compare_across's pairs: with compare_across = [\"extract.model\"] and "
      "[\"data.hookpoint\"] here, every layer of one model against every layer of the other (Lan et al.)",
      [&c](const std::vector<std::string>& keys) {
        for (const auto& key : keys) {
          if (std::none_of(c.grid.begin(), c.grid.end(), [&](const GridAxis& a) { return a.key == key; }))
            return "'" + key + "' is not a [grid] key";
          if (std::find(c.run.compare_across.begin(), c.run.compare_across.end(), key) != c.run.compare_across.end())
            return "'" + key + "' is also in run.compare_across";
        }
        return std::string();
      });
}

void extract_keys(Table& t, Config& c) {
  t.add("extract.model", &c.extract.model, std::string(),
        "a Hugging Face model directory (config.json + safetensors: llama, mistral, qwen2, gpt_neox), a GGUF file (llama) "
        "or a llama2.c checkpoint")
      .role(Role::kInput);
  t.add("extract.tokenizer", &c.extract.tokenizer, std::string(),
        "tokenizer.json (Hugging Face; or the model directory holding it) or a llama2.c tokenizer.bin")
      .role(Role::kInput);
  t.add("extract.compute_dtype", &c.extract.compute_dtype, core::FloatFormat::kFloat32,
        "the precision of the forward: float32 or bfloat16 (weights stored in it are used in place, others converted once)",
        [](core::FloatFormat f) { return f == core::FloatFormat::kFloat16 ? "must be float32 or bfloat16" : ""; });
  t.add<std::vector<std::string>>("extract.inputs", &c.extract.inputs, {}, "text files to run the model on").role(Role::kInput);
  t.add("extract.input_format", &c.extract.input_format, InputFormat::kAuto,
        "auto (by extension and content), text (blank-line separated documents), endoftext (<|endoftext|> separated), "
        "jsonl (a \"text\" field)");
  t.add<std::vector<std::string>>(
      "extract.hookpoints", &c.extract.hookpoints, {"blocks.0.hook_resid_post"},
      "blocks.L.hook_resid_pre|hook_resid_mid|hook_resid_post|hook_mlp_out|mlp.hook_post; L = * for every block",
      [](const std::vector<std::string>& v) { return v.empty() ? "needs at least one hookpoint" : ""; });
  t.add("extract.seq_len", &c.extract.seq_len, int64_t{0},
        "tokens per forward pass; longer documents continue in windows starting with BOS (0: the model's)",
        at_least<int64_t>(0, " (0: the model's)"));
  t.add("extract.batch_tokens", &c.extract.batch_tokens, int64_t{4096},
        "tokens per forward pass (whole sequences; attention stays within each)", at_least<int64_t>(1));
  t.add("extract.max_documents", &c.extract.max_documents, int64_t{0}, "use only the first N documents (0: all)",
        at_least<int64_t>(0));
  t.add("extract.max_tokens", &c.extract.max_tokens, int64_t{0}, "use only the first documents up to this many tokens (0: all)",
        at_least<int64_t>(0));
  t.add("extract.dtype", &c.extract.dtype, core::FloatFormat::kFloat32, "stored activations: float32, float16 or bfloat16");
  t.add("extract.store", &c.extract.store, std::string(), "the activation store written (default: <run.output_dir>/activations.h5)")
      .role(Role::kOutput);
  t.add("extract.loss", &c.extract.loss, true, "report the mean next-token loss (runs every block)");
}

void data_keys(Table& t, Config& c) {
  t.add<std::string>("data.source", &c.data.source, "synthetic",
                     "\"synthetic\", an activation store (HDF5, DESIGN.md §4), or \"extract\" (the store extract writes)",
                     [&c](const std::string& v) { return v == "synthetic" || produced_here(c, v) ? "" : must_exist(v); })
      .role(Role::kInput);
  t.add<std::string>("data.hookpoint", &c.data.hookpoint, "synthetic", "the store's hookpoint to train on (recorded in SAE files)",
                     [&c](const std::string& v) {
                       const bool grid = std::any_of(c.grid.begin(), c.grid.end(),
                                                     [](const GridAxis& a) { return a.key == "data.hookpoint"; });
                       return c.data.source == "synthetic" || v != "synthetic" || grid
                                  ? ""
                                  : "name the store's hookpoint to train on (data.source is a store)";
                     });
  t.add("data.shuffle_seed", &c.data.shuffle_seed, int64_t{0}, "seeds the order of store tokens (same for every SAE seed)");
  t.add("data.shuffle_chunk", &c.data.shuffle_chunk, int64_t{1024}, "store rows read together; chunk order permuted per epoch",
        at_least<int64_t>(1));
  t.add("data.shuffle_buffer", &c.data.shuffle_buffer, int64_t{65536},
        "store rows shuffled together (memory: rows × d × 4 bytes per rank)", at_least<int64_t>(1));
  auto& s = c.data.synthetic;
  t.add("data.synthetic.d", &s.d, int64_t{64}, "input width d", at_least<int64_t>(1));
  t.add("data.synthetic.n_features", &s.n_features, int64_t{512}, "ground-truth dictionary size m", at_least<int64_t>(1));
  t.add<double>("data.synthetic.mean_l0", &s.mean_l0, 8.0, "expected number of active features per token", [&s](const double& v) {
    return v > 0 && v <= static_cast<double>(s.n_features) ? "" : "must be in (0, n_features]";
  });
  t.add("data.synthetic.power_law", &s.power_law, 0.5, "firing probability p_j ∝ (j+1)^-power_law", at_least(0.0));
  t.add("data.synthetic.magnitude_std", &s.magnitude_std, 0.25, "feature magnitude |N(1, std²)|", at_least(0.0));
  t.add("data.synthetic.noise_std", &s.noise_std, 0.01, "isotropic Gaussian noise σ", at_least(0.0));
  t.add("data.synthetic.seed", &s.seed, int64_t{0}, "seeds the dictionary and the token stream");
  t.add("data.synthetic.hierarchy_parents", &s.hierarchy_parents, int64_t{0},
        "features 0..P-1 are parents of hierarchy_children features each (0: no hierarchy)", at_least<int64_t>(0));
  t.add<int64_t>("data.synthetic.hierarchy_children", &s.hierarchy_children, 0,
                 "children per parent: a child fires only with its parent, and at most one child of a parent at a time",
                 [&s](const int64_t& v) -> std::string {  // with the parents and the dictionary size it needs
                   if (v < 0) return "must be >= 0";
                   if ((v > 0) != (s.hierarchy_parents > 0))
                     return "a hierarchy needs both data.synthetic.hierarchy_parents and hierarchy_children > 0 (both 0: none)";
                   const bool fits = v < s.n_features && s.hierarchy_parents <= s.n_features &&
                                     s.hierarchy_parents * (1 + v) <= s.n_features;
                   return v == 0 || fits ? "" : "hierarchy_parents × (1 + hierarchy_children) must be <= n_features";
                 });
  t.add<int64_t>("data.synthetic.correlation_rank", &s.correlation_rank, 0,
                 "rank r of correlated firing (a Gaussian copula that keeps each p_j; 0: features fire independently)",
                 [&s](const int64_t& v) { return v >= 0 && v <= s.n_features ? "" : "must be in [0, n_features]"; });
  t.add("data.synthetic.correlation_strength", &s.correlation_strength, 0.5,
        "share s of each feature's copula variance from the r shared factors: corr(z_j, z_k) = s L_j·L_k", within(0.0, 1.0));
}

void sae_keys(Table& t, Config& c) {
  t.add("sae.architecture", &c.sae.architecture, core::Architecture::kTopK, "relu, topk, batchtopk, jumprelu or gated");
  t.add("sae.n_latents", &c.sae.n_latents, int64_t{4096}, "number of latents", at_least<int64_t>(1));
  t.add<int64_t>("sae.k", &c.sae.k, 32, "active latents per token (top-k architectures)",
                 [&c](const int64_t& k) { return k >= 1 && k <= c.sae.n_latents ? "" : "must be in [1, n_latents]"; });
  t.add<std::vector<int64_t>>("sae.seeds", &c.sae.seeds, {0}, "seed list, or a count N meaning [0, N)",
                              [](const std::vector<int64_t>& seeds) {
                                if (seeds.empty()) return "needs at least one seed";
                                auto sorted = seeds;
                                std::sort(sorted.begin(), sorted.end());
                                return std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end() ? "" : "seeds must be distinct";
                              });
  t.add("sae.apply_b_dec_to_input", &c.sae.apply_b_dec_to_input, true, "encode W_enc (x - b_dec) + b_enc");
}

void train_schedule_keys(Table& t, Config& c) {
  auto& x = c.train;
  t.add("train.tokens", &x.tokens, int64_t{10'000'000}, "training tokens (rounded down to whole batches)",
        [&x](const int64_t& v) { return v >= x.batch_size ? "" : "must be at least one batch (train.batch_size)"; });
  t.add("train.batch_size", &x.batch_size, int64_t{4096}, "global batch in tokens (over all ranks)", at_least<int64_t>(1));
  t.add<int64_t>("train.micro_batch", &x.micro_batch, 256,
                 "tokens per gradient chunk; divides batch_size; fixes the arithmetic so results do not depend on ranks",
                 [&x](const int64_t& mb) {
                   return mb >= 1 && x.batch_size % mb == 0 ? "" : "must divide train.batch_size (" + std::to_string(x.batch_size) + ")";
                 });
  t.add<int64_t>("train.snapshot_every", &x.snapshot_every, 0,
                 "write each seed's weights every this many training tokens, and before the first step, to "
                 "<output_dir>/snapshots/seed<S>/tokens<T>.h5 (compare gives consistency against training tokens); 0: none",
                 [&x](const int64_t& v) {
                   if (v == 0) return std::string();
                   if (v < 0 || v % x.batch_size != 0)
                     return "must be a multiple of train.batch_size (" + std::to_string(x.batch_size) + ") so that a snapshot falls after a whole step";
                   return v <= x.tokens ? std::string() : "is beyond train.tokens (" + std::to_string(x.tokens) + "): no snapshot would be written";
                 });
  t.add("train.lr", &x.lr, 0.0, "Adam learning rate (0: 2e-4 / sqrt(n_latents / 2^14))", at_least(0.0));
  t.add("train.warmup_steps", &x.warmup_steps, int64_t{1000}, "linear learning-rate warm-up", at_least<int64_t>(0));
  t.add("train.decay_fraction", &x.decay_fraction, 0.2, "linear decay to 0 over this last fraction of steps", within(0, 1));
  t.add("train.grad_clip", &x.grad_clip, 1.0, "global gradient-norm clip (0: off)", at_least(0.0));
  t.add("train.dtype", &x.dtype, MatmulDtype::kFloat32,
        "precision of the step's large matrix products (the encoder GEMM; the dense architectures' decoder too): "
        "float32, bfloat16 (operands and product in bfloat16, widened to float32) or tf32 (TF32 tensor cores on a GPU; "
        "float32 on the CPU). Weights, Adam state and sums stay float32/64")
      .later(true);
  t.add("train.exact_sum", &x.exact_sum, true,
        "sum gradients over data-parallel ranks and micro-batches in exact fixed point: the same bits for any rank "
        "count (through host memory on a GPU). false: a float32 sum (MPI, or NCCL on GPUs), faster, whose last bits "
        "depend on the number of ranks (docs/gpu.md)")
      .later(true);
  t.add("train.adam_beta1", &x.adam_beta1, 0.9, "Adam β1", within(0, 1, false, true));
  t.add("train.adam_beta2", &x.adam_beta2, 0.999, "Adam β2", within(0, 1, false, true));
  t.add("train.adam_eps", &x.adam_eps, 1e-8, "Adam ε", above(0.0));
  t.add("train.dead_tokens", &x.dead_tokens, int64_t{10'000'000}, "a latent is dead after this many tokens without firing",
        at_least<int64_t>(1));
  t.add("train.auxk_alpha", &x.auxk_alpha, 1.0 / 32.0, "AuxK loss weight α", at_least(0.0));
  t.add("train.k_aux", &x.k_aux, int64_t{0}, "dead latents used by AuxK (0: min(512, d/2))", at_least<int64_t>(0));
  t.add<BDecInit>("train.b_dec_init", &x.b_dec_init, BDecInit::kGeometricMedian, "geometric_median or mean of the first batch");
  t.add<TrainPreset>("train.preset", &x.preset, TrainPreset::kNone,
                     "\"\" (universae's recipe) or \"sparsify\": EleutherAI sparsify's TopK trainer, Adam path (its init, lr schedule, "
                     "FVU-normalised loss, AuxK and dead rule, no clipping; decay_fraction, grad_clip, b_dec_init unused): docs/training.md",
                     [&c](const TrainPreset& p) {
                       if (p != TrainPreset::kSparsify) return std::string();
                       if (c.sae.architecture != core::Architecture::kTopK) return std::string("\"sparsify\" needs sae.architecture = \"topk\"");
                       return c.sae.apply_b_dec_to_input ? std::string() : "\"sparsify\" needs sae.apply_b_dec_to_input = true";
                     });
  t.add<std::vector<std::string>>(
      "train.init_from", &x.init_from, {},
      "start from trained SAEs (universae file, sparsify or SAELens directory): one for all seeds or one per seed",
      [&c](const std::vector<std::string>& from) {
        if (!from.empty() && from.size() != 1 && from.size() != c.sae.seeds.size())
          return "needs one SAE for all seeds or one per seed (" + std::to_string(c.sae.seeds.size()) + ")";
        for (const auto& p : from)
          if (!fs::exists(p)) return "'" + p + "': no such file or directory";
        return std::string();
      })
      .role(Role::kInput);
  t.add("train.log_every", &x.log_every, int64_t{100}, "steps between metric lines (train_log.jsonl)", at_least<int64_t>(1));
  t.add("train.eval_tokens", &x.eval_tokens, int64_t{65536}, "held-out tokens for final FVU, L0 and firing frequency",
        at_least<int64_t>(0));
  t.add("train.splice_tokens", &x.splice_tokens, int64_t{16384},
        "held-out tokens (whole sequences of the store) on which each SAE is spliced into the store's model for "
        "ce_loss_score, kl_div_score and the reconstruction figures (0: none; needs the store's model file)",
        at_least<int64_t>(0));
}

void train_model_keys(Table& t, Config& c) {
  auto& x = c.train;
  t.add("train.sparsity_coefficient", &x.sparsity_coefficient, -1.0,
        "λ of relu/gated L1 and jumprelu L0 (< 0: 1, a starting point for inputs with E|x|² = d; sweep it)");
  t.add("train.jumprelu_bandwidth", &x.jumprelu_bandwidth, 0.001, "jumprelu straight-through kernel width ε", above(0.0));
  t.add("train.jumprelu_init_threshold", &x.jumprelu_init_threshold, 0.001, "jumprelu initial threshold θ", above(0.0));
  t.add("train.batchtopk_threshold_rate", &x.batchtopk_threshold_rate, 0.01,
        "batchtopk inference threshold: running mean rate of the smallest kept activation", within(0, 1, true));
  t.add("train.normalize_input", &x.normalize_input, false, "scale inputs so that E|x|² = d (folded into saved weights)");
  t.add<int64_t>("train.seed_groups", &x.seed_groups, 1, "rank groups that each train a share of the seeds", [&c](const int64_t& g) {
    return g >= 1 && g <= static_cast<int64_t>(c.sae.seeds.size()) ? "" : "must be in [1, number of seeds]";
  });
  t.add<int64_t>("train.latent_shards", &x.latent_shards, 1, "ranks that split the latents of one SAE (distributed top-k)",
                 [&c](const int64_t& s) {
                   return s >= 1 && s * c.sae.k <= c.sae.n_latents ? "" : "must be >= 1 and leave every shard at least sae.k latents";
                 });
  t.add("train.checkpoint_every", &x.checkpoint_every, int64_t{500}, "steps between checkpoints (0: only on SIGTERM/SIGUSR1)",
        at_least<int64_t>(0));
}

void compare_weight_keys(Table& t, Config& c) {
  auto& x = c.compare;
  t.add<std::vector<std::string>>("compare.saes", &x.saes, {}, "SAE files to compare (default: the SAEs this job trains)")
      .role(Role::kInput);
  t.add<std::vector<std::string>>(
      "compare.names", &x.names, {}, "names of the compared SAEs in the results, in compare.saes order (default: file stems)",
      [&x](const std::vector<std::string>& names) {
        return names.empty() || x.saes.empty() || names.size() == x.saes.size() ? "" : "needs one name per SAE of compare.saes";
      });
  t.add("compare.tile_rows", &x.tile_rows, int64_t{256}, "rows of A per similarity tile (the unit of sharding)", at_least<int64_t>(1));
  t.add("compare.tile_cols", &x.tile_cols, int64_t{4096}, "rows of B per similarity tile", at_least<int64_t>(1));
  t.add("compare.dtype", &x.dtype, MatmulDtype::kFloat32,
        "precision of the similarity pass's tile products: float32, bfloat16 or tf32 (a GPU's tensor cores; float32 on "
        "the CPU). The matching's candidates are rescored in float64 and its certificate bounds widened by the "
        "precision's error, so the certified matching is the same; max cosines are then the pass's values (docs/gpu.md)")
      .later(true);
  t.add("compare.screen", &x.screen, true,
        "a float32 similarity pass on the CPU (fast kernels) screens its tiles with a bfloat16 GEMM where the CPU has "
        "AVX512-BF16, and recomputes in float64 only the products that may enter a top-K list: the same lists as "
        "exact products, 1.6x faster for max cosine alone at 32,768 latents (bench/RESULTS.md); false: plain float32 GEMMs")
      .later(true);
  t.add("compare.hungarian", &x.hungarian, true, "certified Hungarian matching of decoder and encoder rows");
  t.add("compare.candidates", &x.candidates, int64_t{16}, "top-K candidates per row and column for the matching",
        at_least<int64_t>(1));
  t.add("compare.deep_factor", &x.deep_factor, int64_t{0},
        "a row the certificate recomputes also keeps its top deep_factor·candidates recomputed pairs as candidates "
        "(0: only the violating pairs; 4 made the matching 10-40 % slower, bench/RESULTS.md)",
        at_least<int64_t>(0));
  t.add("compare.shared_threshold", &x.shared_threshold, 0.7,
        "τ: a latent is shared when its matched decoder and encoder cosines both exceed it", within(-1, 1));
  t.add("compare.certificate_tolerance", &x.certificate_tolerance, 1e-6,
        "the matching is certified when no pair has cos > α_i + β_j + tolerance", at_least(0.0));
  t.add("compare.repsim", &x.repsim, true, "SVCCA, RSA, CKA and mutual kNN of the Hungarian-paired decoder rows");
  t.add("compare.permutations", &x.permutations, int64_t{1000}, "re-pairings in each permutation test (0: none)",
        at_least<int64_t>(0));
  t.add("compare.repsim_max_pairs", &x.repsim_max_pairs, int64_t{4096},
        "more matched pairs than this: a seeded random subset of this size (RSA and kNN are O(n²))", at_least<int64_t>(3));
  t.add("compare.svcca_variance", &x.svcca_variance, 0.99, "SVCCA keeps the fewest directions explaining this variance",
        within(0, 1, true));
  t.add("compare.svcca_dims", &x.svcca_dims, int64_t{0}, "SVCCA keeps exactly this many directions (0: use svcca_variance)",
        at_least<int64_t>(0));
  t.add("compare.knn_k", &x.knn_k, int64_t{10}, "neighbours in mutual kNN", at_least<int64_t>(1));
  t.add("compare.compat", &x.compat, Compat::kNone, "\"lan2024\": reproduce Lan et al.'s published SVCCA (one direction)");
  t.add("compare.seed", &x.seed, int64_t{0}, "seeds the permutation tests (stored per pair and metric)");
}

void compare_activation_keys(Table& t, Config& c) {
  auto& x = c.compare;
  t.add<std::string>("compare.activations", &x.activations, std::string(),
                     "activation statistics on: \"\" (none), \"synthetic\" (held-out data.synthetic tokens), a store path or \"extract\"",
                     [&c](const std::string& v) {
                       return v.empty() || v == "synthetic" || produced_here(c, v) ? "" : must_exist(v);
                     })
      .role(Role::kInput);
  t.add<std::vector<std::string>>(
       "compare.sae_activations", &x.sae_activations, {},
       "one activation store per SAE of compare.saes, in order (SAEs of different models over the same tokens); "
       "each SAE encodes its own store's activations",
       [&c](const std::vector<std::string>& v) {
         for (const auto& s : v) {
           if (s.empty() || s == "synthetic") return std::string("needs a store path per SAE (\"synthetic\" goes in compare.activations)");
           if (s != "extract" && !produced_here(c, s) && !must_exist(s).empty()) return must_exist(s);
         }
         return std::string();
       })
      .role(Role::kInput);
  t.add("compare.activation_tokens", &x.activation_tokens, int64_t{0},
        "tokens for activation statistics (0: whole store; synthetic 65,536)", at_least<int64_t>(0));
  t.add("compare.correlation_input", &x.correlation_input, CorrelationInput::kCodes,
        "codes (the SAE's sparse output, exact via co-firing) or pre (dense relu(pre), Lan et al.)");
  t.add("compare.activation_mapping", &x.activation_mapping, Mapping::kOneToOne,
        "pairs for the activation-based SVCCA/RSA/CKA/kNN: one_to_one, many_to_one or mutual");
  t.add<std::string>("compare.concepts", &x.concepts, std::string(),
                     "keyword categories for semantic subspaces (\"\": configs/concepts.toml)",
                     [](const std::string& v) { return v.empty() ? "" : must_exist(v); })
      .role(Role::kInput);
  t.add("compare.chunk_tokens", &x.chunk_tokens, int64_t{4096}, "tokens per encoding block (fixed, so results do not depend on ranks)",
        at_least<int64_t>(1));
  t.add("compare.top_examples", &x.top_examples, int64_t{20},
        "top activating examples kept per latent (the report's latent cards; the concept filters read the first 5)",
        in_range<int64_t>(5, 1000));
  t.add("compare.context_tokens", &x.context_tokens, int64_t{10},
        "tokens kept on each side of a top example's firing token (clipped to its sequence)", in_range<int64_t>(2, 256));
  t.add("compare.baseline_random", &x.baseline_random, false,
        "add an untrained random-initialisation SAE of the first SAE's shape, compared with the first SAE");
  t.add<std::vector<std::string>>("compare.baselines", &x.baselines, {},
                                  "baseline SAE files, each compared with the first SAE (also --baseline)",
                                  [](const std::vector<std::string>& v) {
                                    for (const auto& b : v)
                                      if (!fs::exists(b)) return "'" + b + "': file not found";
                                    return std::string();
                                  })
      .role(Role::kInput);
}

void sweep_keys(Table& t, Config& c) {
  auto& w = c.sweep;
  t.add<std::string>("sweep.cluster", &w.cluster, "local",
                     "`universae sweep`: slurm/<cluster>/env.sh sourced by every job, or a path to an env file",
                     [](const std::string& v) { return v.empty() ? "must name a cluster (slurm/<cluster>/env.sh) or an env file" : ""; });
  t.add("sweep.partition", &w.partition, std::string(), "Slurm partition for every job (\"\": the cluster's default)",
        one_name("partition"));
  t.add("sweep.account", &w.account, std::string(), "Slurm account to charge (\"\": your default)", one_name("account"));
  t.add<std::vector<std::string>>("sweep.sbatch", &w.sbatch, {},
                                  "extra sbatch options for every job, e.g. [\"--qos=high\", \"--constraint=a100\"]",
                                  [](const std::vector<std::string>& options) {
                                    for (const auto& o : options)
                                      if (o.rfind("-", 0) != 0 || o.find('\n') != std::string::npos)
                                        return "'" + o + "' is not an sbatch option (\"--name=value\")";
                                    return std::string();
                                  });
  t.add("sweep.signal_seconds", &w.signal_seconds, int64_t{300},
        "--signal=B:USR1@N: jobs checkpoint this many seconds before their time limit (0: off)",
        at_least<int64_t>(0, " (0: no signal before the time limit)"));
  t.add("sweep.requeue", &w.requeue, true, "a job that checkpointed on a signal (exit 75) requeues itself and resumes");
  t.add("sweep.max_parallel", &w.max_parallel, int64_t{0}, "array tasks running at once (0: no limit)",
        at_least<int64_t>(0, " (0: no limit)"));
  t.add<std::string>("sweep.local_launcher", &w.local_launcher, "mpirun -n {ranks}",
                     "--local: the command that starts a step's ranks ({ranks} = the step's ranks)", [](const std::string& v) {
                       return v.find("{ranks}") != std::string::npos ? "" : "must contain {ranks} (e.g. \"mpirun -n {ranks}\")";
                     });
  // Resources per kind of job: extraction, training (one array task per grid task), comparisons.
  for (auto [name, r, ranks] : {std::tuple{"extract", &w.extract, 2}, {"train", &w.train, 1}, {"compare", &w.compare, 1}}) {
    const std::string k = std::string("sweep.") + name + ".";
    const std::string what = std::string(name) == "compare" ? "compare and summary jobs" : std::string(name) + " jobs";
    t.add(k + "ranks", &r->ranks, int64_t{ranks}, what + ": MPI ranks (--ntasks)", at_least<int64_t>(1));
    t.add(k + "nodes", &r->nodes, int64_t{0}, what + ": nodes the ranks span (--nodes; 0: wherever Slurm places them)",
          at_least<int64_t>(0));
    t.add(k + "cpus_per_rank", &r->cpus_per_rank, int64_t{1}, what + ": cores per rank (--cpus-per-task, OMP_NUM_THREADS)",
          at_least<int64_t>(1));
    t.add(k + "gpus", &r->gpus, int64_t{0}, what + ": GPUs per rank (--gpus-per-task)", at_least<int64_t>(0));
    t.add<std::string>(k + "time", &r->time, "1:00:00", what + ": time limit (--time, e.g. \"4:00:00\" or \"1-00:00:00\")",
                       [](const std::string& v) {
                         return !v.empty() && v.find_first_not_of("0123456789:-") == std::string::npos
                                    ? ""
                                    : "'" + v + "' is not a Slurm time limit (MM, HH:MM:SS, D-HH:MM:SS, ...)";
                       });
    t.add<std::string>(k + "mem", &r->mem, std::string(), what + ": memory per node (--mem, e.g. \"32G\"; \"\": the partition's default)",
                       [](const std::string& v) {
                         return v.find_first_of(" \n'\"") == std::string::npos ? "" : "'" + v + "' is not a Slurm memory size";
                       });
    t.add(k + "partition", &r->partition, std::string(), what + ": partition (\"\": sweep.partition)", one_name("partition"));
  }
}

// The one table of every key. Order = order of the echo and of --help.
Fields fields_of(Config& c) {
  Fields fields;
  Table t(fields);
  run_keys(t, c);
  extract_keys(t, c);
  data_keys(t, c);
  sae_keys(t, c);
  train_schedule_keys(t, c);
  train_model_keys(t, c);
  compare_weight_keys(t, c);
  compare_activation_keys(t, c);
  sweep_keys(t, c);
  return fields;
}

std::string nearest_key(const std::string& key, const Fields& fields) {
  std::string best;
  size_t best_distance = SIZE_MAX;
  for (const auto& f : fields) {
    const size_t d = edit_distance(key, f->key());
    if (d < best_distance) best_distance = d, best = f->key();
  }
  return best;
}

Field& find_field(const std::string& key, const Fields& fields, const std::string& where) {
  for (const auto& f : fields)
    if (f->key() == key) return *f;
  throw UsageError(where + ": unknown key '" + key + "'; did you mean '" + nearest_key(key, fields) + "'?");
}

void apply_table(const toml::table& table, const std::string& prefix, const Fields& fields, const std::string& where) {
  for (const auto& [k, node] : table) {
    const std::string key = prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
    if (const auto* sub = node.as_table()) {
      apply_table(*sub, key, fields, where);
    } else {
      find_field(key, fields, where).assign(node, where);
    }
  }
}

// One [grid] axis: its values as TOML literals, each checked against the key's type.
GridAxis read_axis(const std::string& key, const toml::node& node, const Fields& fields, const std::string& where) {
  find_field(key, fields, where + " [grid]");  // an unknown key: "did you mean"
  const auto* values = node.as_array();
  if (!values || values->empty()) throw UsageError(where + ": [grid] key '" + key + "' must be a non-empty list of values");
  if ((key.rfind("extract.", 0) == 0 && key != "extract.model" && key != "extract.inputs") || key.rfind("run.", 0) == 0 ||
      key.rfind("sweep.", 0) == 0)
    throw UsageError(where + ": [grid] key '" + key +
                     "': the grid varies extract.model (one extraction per model, over the same documents), extract.inputs "
                     "(one extraction per text) and data, sae, train and compare keys");
  GridAxis axis{key, {}};
  for (const auto& v : *values) {
    std::ostringstream literal;
    if (v.is_string()) literal << toml::value<std::string>(*v.value<std::string>());
    else if (const auto* arr = v.as_array()) literal << *arr;
    else v.visit([&](const auto& x) { literal << x; });
    Config scratch;
    find_field(key, fields_of(scratch), where).assign(v, where + " [grid]");  // type check
    axis.values.push_back(literal.str());
  }
  return axis;
}

// [grid] "section.key" = [values] (or dotted keys).
void read_grid(const toml::table& grid, const std::string& prefix, const Fields& fields, const std::string& where,
               std::vector<GridAxis>& axes) {
  for (const auto& [k, node] : grid) {
    const std::string key = prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
    if (const auto* sub = node.as_table()) {
      read_grid(*sub, key, fields, where, axes);
    } else {
      axes.push_back(read_axis(key, node, fields, where));
    }
  }
}

void apply_override(const std::string& text, const Fields& fields) {
  const auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0) throw UsageError("--set '" + text + "': expected section.key=value");
  const std::string key = text.substr(0, eq);
  const std::string value = text.substr(eq + 1);
  Field& field = find_field(key, fields, "--set");
  // The value is read as TOML (numbers, booleans, ["lists"]); anything else is a bare string.
  toml::table parsed;
  try {
    parsed = toml::parse("v = " + value);
  } catch (const toml::parse_error&) {
    parsed = toml::table{{"v", value}};
  }
  field.assign(*parsed.get("v"), "--set " + key);
}

toml::table parse_job_file(const std::string& path) {
  if (!fs::is_regular_file(path)) throw UsageError(path + ": config file not found");
  try {
    return toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    throw UsageError(path + ":" + std::to_string(e.source().begin.line) + ":" + std::to_string(e.source().begin.column) +
                     ": TOML syntax error: " + std::string(e.description()));
  }
}

// The sections whose keys a stage's output depends on.
std::vector<std::string> stage_sections(Stage stage) {
  switch (stage) {
    case Stage::kExtract: return {"extract"};
    case Stage::kTrain: return {"data", "sae", "train"};
    case Stage::kCompare: return {"compare", "data"};
  }
  return {};
}

}  // namespace

Config::Config() {
  for (const auto& f : fields_of(*this)) f->reset();
}

bool Config::has_stage(Stage s) const { return std::find(run.stages.begin(), run.stages.end(), s) != run.stages.end(); }

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
  const Fields fields = fields_of(config);
  if (!path.empty()) {
    toml::table table = parse_job_file(path);
    if (const auto* grid = table.get_as<toml::table>("grid")) {
      read_grid(*grid, "", fields, path, config.grid);
      table.erase("grid");
    }
    apply_table(table, "", fields, path);
  }
  for (const auto& o : overrides) apply_override(o, fields);

  if (config.run.name.empty()) {
    config.run.name = path.empty() ? "universae" : fs::path(path).stem().string();
    for (char& ch : config.run.name)  // the job file's name, with anything run.name may not hold as '_'
      if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '.' && ch != '-' && ch != '+') ch = '_';
  }
  if (config.run.output_dir.empty()) config.run.output_dir = "runs/" + config.run.name;
  if (config.extract.store.empty()) config.extract.store = config.run.output_dir + "/activations.h5";
  if (config.data.source == "extract") config.data.source = config.extract.store;
  if (config.compare.activations == "extract") config.compare.activations = config.extract.store;
  for (auto& store : config.compare.sae_activations)
    if (store == "extract") store = config.extract.store;
  validate(config);
  return config;
}

void validate(const Config& c) {
  Config copy = c;  // the table binds a mutable Config; its checks only read
  for (const auto& f : fields_of(copy))
    if (const std::string problem = f->problem(); !problem.empty())
      throw UsageError("config key '" + f->key() + "': " + problem);
}

namespace {

// A grid value as a folder-safe label. Paths (a model file or directory) are named by their last
// component without extension when that names each value of the axis apart.
std::vector<std::string> axis_labels(const GridAxis& axis) {
  auto clean = [](std::string label) {
    if (label.size() >= 2 && (label.front() == '"' || label.front() == '\'') && label.back() == label.front())
      label = label.substr(1, label.size() - 2);
    return label;
  };
  auto safe = [](std::string label) {
    for (char& ch : label)
      if (ch == '/' || ch == ' ' || ch == '[' || ch == ']' || ch == '"' || ch == '\'' || ch == ',' || ch == '=') ch = '_';
    return label;
  };
  // A file loses its extension (.bin, .gguf, .txt, ...); a directory keeps its whole name (pythia-1.4b).
  auto path_name = [](const std::string& value) {
    fs::path path = fs::path(value).lexically_normal();
    if (!path.has_filename()) path = path.parent_path();
    std::string name = path.filename().string();
    for (const char* ext : {".bin", ".gguf", ".safetensors", ".h5", ".toml", ".txt", ".jsonl", ".json"})
      if (name.size() > std::strlen(ext) && name.compare(name.size() - std::strlen(ext), std::strlen(ext), ext) == 0)
        name.resize(name.size() - std::strlen(ext));
    return value.find('/') == std::string::npos ? value : name;
  };
  std::vector<std::string> full, short_names;
  for (const auto& v : axis.values) {
    const std::string value = clean(v);
    full.push_back(safe(value));
    if (value.empty() || value.front() != '[') {
      short_names.push_back(safe(path_name(value)));
      continue;
    }
    // A list of paths (extract.inputs): its files' names joined by '+'.
    static const std::regex quoted(R"re("([^"]*)"|'([^']*)')re");
    std::string joined;
    for (auto it = std::sregex_iterator(value.begin(), value.end(), quoted); it != std::sregex_iterator(); ++it)
      joined += (joined.empty() ? "" : "+") + path_name((*it)[1].matched ? (*it)[1].str() : (*it)[2].str());
    short_names.push_back(safe(joined));
  }
  std::vector<std::string> sorted = short_names;
  std::sort(sorted.begin(), sorted.end());
  const bool distinct = std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end() &&
                        std::none_of(short_names.begin(), short_names.end(), [](const std::string& s) { return s.empty(); });
  return distinct ? short_names : full;
}

}  // namespace

std::vector<GridTask> expand_grid(const Config& config) {
  std::vector<GridTask> tasks(1);
  for (const auto& axis : config.grid) {
    std::vector<GridTask> next;
    const std::string name = axis.key.substr(axis.key.rfind('.') + 1);
    const std::vector<std::string> labels = axis_labels(axis);
    for (const auto& task : tasks)
      for (size_t v = 0; v < axis.values.size(); ++v) {
        GridTask t = task;
        const std::string& value = axis.values[v];
        const std::string& label = labels[v];
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
  for (const auto& f : fields_of(copy))
    if (sections.empty() || std::find(sections.begin(), sections.end(), f->section()) != sections.end()) f->insert(root);
  std::ostringstream out;
  out << root << "\n";
  return out.str();
}

std::string fingerprint(const Config& config, Stage stage, const Identity& identity) {
  Config copy = config;
  const auto sections = stage_sections(stage);
  toml::table root, inputs;
  for (const auto& f : fields_of(copy)) {
    if (std::find(sections.begin(), sections.end(), f->section()) == sections.end() || f->role() == Role::kOutput) continue;
    if (f->later() && f->at_default()) continue;
    if (f->role() == Role::kValue) {
      f->insert(root);
      continue;
    }
    toml::array ids;
    for (const auto& path : f->paths())
      ids.push_back(path.empty() || path == "synthetic" ? path : identity(path));
    inputs.insert(f->key(), std::move(ids));
  }
  root.insert("inputs", std::move(inputs));
  std::ostringstream out;
  out << "# universae " << core::name_of(stage) << " fingerprint: the keys its output depends on, inputs by identity\n"
      << root << "\n";
  return out.str();
}

std::vector<std::string> sections() {
  Config defaults;
  std::vector<std::string> out;
  for (const auto& f : fields_of(defaults))
    if (std::find(out.begin(), out.end(), f->section()) == out.end()) out.push_back(f->section());
  return out;
}

std::string describe_keys(const std::vector<std::string>& sections) {
  Config defaults;
  std::ostringstream out;
  for (const auto& f : fields_of(defaults))
    if (sections.empty() || std::find(sections.begin(), sections.end(), f->section()) != sections.end())
      out << "  " << f->key() << " = " << f->text() << "\n      " << f->doc() << "\n";
  return out.str();
}

}  // namespace universae::config
