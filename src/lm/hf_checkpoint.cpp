// Hugging Face model directories: config.json + model.safetensors, or shards named by
// model.safetensors.index.json. config.json is read key by key as transformers' configuration
// classes define the defaults (LlamaConfig, MistralConfig, Qwen2Config, GPTNeoXConfig); a key
// universae cannot honour is refused by name rather than silently ignored.
#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <limits>
#include <map>
#include <memory>

#include "core/error.hpp"
#include "io/safetensors.hpp"
#include "io/text_file.hpp"
#include "lm/checkpoint.hpp"

namespace universae::lm {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// config.json with typed, named access: a missing required key or a value of the wrong type is a
// UsageError naming the file and the key.
class ConfigJson {
 public:
  explicit ConfigJson(const std::string& dir) : path_((fs::path(dir) / "config.json").string()) {
    if (!fs::exists(path_))
      throw UsageError(dir + ": no config.json (a Hugging Face model directory holds config.json and model.safetensors)");
    try {
      j_ = json::parse(io::read_text(path_));
    } catch (const json::exception& e) {
      throw UsageError(path_ + ": not valid JSON (" + std::string(e.what()) + ")");
    }
    if (!j_.is_object()) throw UsageError(path_ + ": not a JSON object");
  }
  const std::string& path() const { return path_; }
  bool has(const std::string& key) const { return j_.contains(key) && !j_[key].is_null(); }
  [[noreturn]] void bad(const std::string& key, const std::string& why) const {
    throw UsageError(path_ + ": key '" + key + "' " + why);
  }
  int64_t integer(const std::string& key) const {
    if (!has(key)) bad(key, "is missing");
    if (!j_[key].is_number_integer() || j_[key].get<int64_t>() <= 0) bad(key, "must be a positive integer (is " + j_[key].dump() + ")");
    return j_[key].get<int64_t>();
  }
  int64_t integer(const std::string& key, int64_t fallback) const { return has(key) ? integer(key) : fallback; }
  double number(const std::string& key, double fallback) const {
    if (!has(key)) return fallback;
    if (!j_[key].is_number()) bad(key, "must be a number (is " + j_[key].dump() + ")");
    return j_[key].get<double>();
  }
  bool boolean(const std::string& key, bool fallback) const {
    if (!has(key)) return fallback;
    if (!j_[key].is_boolean()) bad(key, "must be true or false (is " + j_[key].dump() + ")");
    return j_[key].get<bool>();
  }
  std::string string(const std::string& key, const std::string& fallback) const {
    if (!has(key)) return fallback;
    if (!j_[key].is_string()) bad(key, "must be a string (is " + j_[key].dump() + ")");
    return j_[key].get<std::string>();
  }
  // bos_token_id / eos_token_id: a number, or a list whose first entry counts (Llama 3's eos).
  int32_t token_id(const std::string& key) const {
    if (!has(key)) return -1;
    const json& v = j_[key].is_array() && !j_[key].empty() ? j_[key][0] : j_[key];
    if (!v.is_number_integer() || v.get<int64_t>() < 0) bad(key, "must be a token id (is " + j_[key].dump() + ")");
    return static_cast<int32_t>(v.get<int64_t>());
  }
  const json& raw(const std::string& key) const { return j_.at(key); }

 private:
  std::string path_;
  json j_;
};

Activation activation_of(const ConfigJson& j, const std::string& key, const std::string& fallback) {
  const std::string act = j.string(key, fallback);
  if (act == "silu" || act == "swish") return Activation::kSilu;
  if (act == "gelu") return Activation::kGelu;
  if (act == "gelu_new" || act == "gelu_pytorch_tanh" || act == "gelu_fast") return Activation::kGeluTanh;
  j.bad(key, "'" + act + "' is not supported (silu, gelu, gelu_new, gelu_pytorch_tanh)");
}

// rope_scaling: null, {"type"|"rope_type": "default"}, "linear" with factor, or "llama3" with its four keys.
RopeScaling rope_scaling_of(const ConfigJson& j) {
  RopeScaling s;
  if (!j.has("rope_scaling")) return s;
  const json& r = j.raw("rope_scaling");
  const std::string key = "rope_scaling";
  if (!r.is_object()) j.bad(key, "must be null or an object (is " + r.dump() + ")");
  const char* type_key = r.contains("rope_type") ? "rope_type" : "type";
  if (r.contains(type_key) && !r[type_key].is_string()) j.bad(key + "." + type_key, "must be a string");
  const std::string type = r.contains(type_key) ? r[type_key].get_ref<const std::string&>() : "default";
  if (type == "default") return s;
  if (type != "linear" && type != "llama3")
    j.bad(key, "type '" + type + "' is not supported (default, linear, llama3)");
  auto number = [&](const char* name) {
    if (!r.contains(name) || !r[name].is_number()) j.bad(key + "." + name, "is missing or not a number");
    return r[name].get<double>();
  };
  s.type = type;
  s.factor = number("factor");
  if (type == "llama3") {
    s.low_freq_factor = number("low_freq_factor");
    s.high_freq_factor = number("high_freq_factor");
    const double original = number("original_max_position_embeddings");
    if (!(original >= 1 && original <= 1e18))  // a length, held as an int64
      j.bad(key + ".original_max_position_embeddings", "must be from 1 to 1e18 (is " + r["original_max_position_embeddings"].dump() + ")");
    s.original_max_positions = static_cast<int64_t>(original);
  }
  return s;
}

ModelConfig llama_family(const ConfigJson& j, const std::string& type) {
  ModelConfig c;
  c.dim = j.integer("hidden_size");
  c.hidden_dim = j.integer("intermediate_size");
  c.n_layers = j.integer("num_hidden_layers");
  c.n_heads = j.integer("num_attention_heads");
  c.n_kv_heads = j.integer("num_key_value_heads", c.n_heads);
  c.head_dim = j.integer("head_dim", c.dim / c.n_heads);
  c.vocab_size = j.integer("vocab_size");
  c.seq_len = j.integer("max_position_embeddings");
  c.norm_eps = j.number("rms_norm_eps", 1e-6);
  c.activation = activation_of(j, "hidden_act", "silu");
  c.rope_theta = j.number("rope_theta", 10000);
  c.rotary_dims = c.head_dim;
  c.rope_pairs = RopePairs::kHalves;
  c.rope_scaling = rope_scaling_of(j);
  c.tied_embeddings = j.boolean("tie_word_embeddings", false);
  if (type == "mistral") c.sliding_window = j.has("sliding_window") ? j.integer("sliding_window") : 0;
  if (type == "qwen2" && j.boolean("use_sliding_window", false))
    j.bad("use_sliding_window", "true is not supported (Qwen2's per-layer sliding window)");
  if (j.boolean("mlp_bias", false) && type != "llama") j.bad("mlp_bias", "is only read for llama");
  if (j.number("partial_rotary_factor", 1.0) != 1.0) j.bad("partial_rotary_factor", "must be 1 for " + type + " (RoPE over the whole head)");
  return c;
}

ModelConfig gpt_neox(const ConfigJson& j) {
  ModelConfig c;
  c.dim = j.integer("hidden_size");
  c.hidden_dim = j.integer("intermediate_size");
  c.n_layers = j.integer("num_hidden_layers");
  c.n_heads = c.n_kv_heads = j.integer("num_attention_heads");
  c.head_dim = c.dim / c.n_heads;
  c.vocab_size = j.integer("vocab_size");
  c.seq_len = j.integer("max_position_embeddings");
  c.norm = NormKind::kLayer;
  c.norm_eps = j.number("layer_norm_eps", 1e-5);
  c.activation = activation_of(j, "hidden_act", "gelu");
  c.gated_mlp = false;
  c.parallel_residual = j.boolean("use_parallel_residual", true);
  c.rope_theta = j.has("rope_theta") ? j.number("rope_theta", 10000) : j.number("rotary_emb_base", 10000);
  // Newer transformers write partial_rotary_factor where Pythia's files have rotary_pct.
  const char* pct_key = j.has("partial_rotary_factor") ? "partial_rotary_factor" : "rotary_pct";
  const double rotary_pct = j.number(pct_key, 0.25);
  if (!(rotary_pct >= 0 && rotary_pct <= 1)) j.bad(pct_key, "must be between 0 and 1 (is " + j.raw(pct_key).dump() + ")");
  c.rotary_dims = static_cast<int64_t>(static_cast<double>(c.head_dim) * rotary_pct);  // int() as transformers
  c.rope_pairs = RopePairs::kHalves;
  c.rope_scaling = rope_scaling_of(j);
  if (c.rope_scaling.type == "llama3") j.bad("rope_scaling", "llama3 scaling is not read for gpt_neox");
  c.tied_embeddings = j.boolean("tie_word_embeddings", false);
  return c;
}

ModelConfig read_config(const ConfigJson& j) {
  const std::string type = j.string("model_type", "");
  ModelConfig c;
  if (type == "llama" || type == "mistral" || type == "qwen2")
    c = llama_family(j, type);
  else if (type == "gpt_neox")
    c = gpt_neox(j);
  else
    j.bad("model_type", type.empty() ? "is missing" : "'" + type + "' is not supported (llama, mistral, qwen2, gpt_neox)");
  c.format = "huggingface";
  c.architecture = type;
  c.bos = j.token_id("bos_token_id");
  c.eos = j.token_id("eos_token_id");
  if (c.n_heads % c.n_kv_heads != 0) j.bad("num_key_value_heads", "must divide num_attention_heads");
  if (c.rotary_dims % 2 != 0 || c.rotary_dims <= 0 || c.rotary_dims > c.head_dim)
    j.bad(type == "gpt_neox" ? "rotary_pct" : "head_dim", "gives " + std::to_string(c.rotary_dims) + " rotary dimensions per head (must be even, 2.." +
                                                              std::to_string(c.head_dim) + ")");
  if (type == "gpt_neox" && c.dim % c.n_heads != 0) j.bad("num_attention_heads", "must divide hidden_size");
  if (c.n_heads > std::numeric_limits<int64_t>::max() / c.head_dim)  // q's width, compared with a shape as an int64
    j.bad("head_dim", "times num_attention_heads is more than 2^63");
  return c;
}

// The safetensors files of a directory: each tensor name → the reader of the file holding it.
class TensorFiles {
 public:
  explicit TensorFiles(const std::string& dir) : dir_(dir) {
    const fs::path index = fs::path(dir) / "model.safetensors.index.json";
    if (fs::exists(index)) {
      read_index(index.string());
      return;
    }
    const fs::path single = fs::path(dir) / "model.safetensors";
    if (!fs::exists(single))
      throw UsageError(dir + ": no model.safetensors and no model.safetensors.index.json (pytorch_model.bin is not read: "
                       "convert it with transformers' save_pretrained(safe_serialization=True))");
    auto reader = std::make_shared<io::safetensors::Reader>(single.string());
    for (const auto& t : reader->tensors()) where_[t.name] = reader;
  }
  const io::safetensors::Reader* find(const std::string& name) const {
    const auto it = where_.find(name);
    return it == where_.end() ? nullptr : it->second.get();
  }
  const std::string& dir() const { return dir_; }

 private:
  void read_index(const std::string& path) {
    json j;
    try {
      j = json::parse(io::read_text(path));
    } catch (const json::exception& e) {
      throw UsageError(path + ": not valid JSON (" + std::string(e.what()) + ")");
    }
    if (!j.contains("weight_map") || !j["weight_map"].is_object()) throw UsageError(path + ": key 'weight_map' is missing");
    std::map<std::string, std::shared_ptr<io::safetensors::Reader>> files;
    for (const auto& [name, file] : j["weight_map"].items()) {
      if (!file.is_string()) throw UsageError(path + ": key 'weight_map." + name + "' must name a file");
      const std::string shard = file.get<std::string>();
      if (shard.find('/') != std::string::npos || shard.empty()) throw UsageError(path + ": key 'weight_map." + name + "' names '" + shard + "' (a file beside the index)");
      auto& reader = files[shard];
      if (!reader) {
        const fs::path p = fs::path(dir_) / shard;
        if (!fs::exists(p)) throw UsageError(path + ": key 'weight_map." + name + "' names " + shard + ", which is not in " + dir_);
        reader = std::make_shared<io::safetensors::Reader>(p.string());
      }
      if (reader->find(name) == nullptr) throw UsageError(path + ": key 'weight_map." + name + "' names " + shard + ", which has no such tensor");
      where_[name] = reader;
    }
  }

  std::string dir_;
  std::map<std::string, std::shared_ptr<io::safetensors::Reader>> where_;
};

// Tensors by name, checked against the shape config.json implies, as views of the mapped files.
class Loader {
 public:
  Loader(const TensorFiles& files, const std::string& config_path) : files_(files), config_path_(config_path) {}
  at::Tensor get(const std::string& name, const std::vector<int64_t>& shape) const {
    const io::safetensors::Reader* r = files_.find(name);
    if (r == nullptr) throw UsageError(files_.dir() + ": tensor '" + name + "' is missing from the safetensors files");
    at::Tensor t = r->map(name);
    expect_shape(t, shape, r->path(), name, config_path_);
    return t;  // stays mapped, in its stored type (lm/checkpoint.hpp)
  }
  at::Tensor optional(const std::string& name, const std::vector<int64_t>& shape, bool wanted) const {
    return wanted ? get(name, shape) : at::Tensor();
  }

 private:
  const TensorFiles& files_;
  std::string config_path_;
};

void load_llama_family(const Loader& in, const ModelConfig& c, const ConfigJson& j, Weights& w) {
  const int64_t d = c.dim, h = c.hidden_dim, q = c.n_heads * c.head_dim, kv = c.n_kv_heads * c.head_dim;
  const bool qkv_bias = c.architecture == "qwen2" || j.boolean("attention_bias", false);
  const bool o_bias = c.architecture == "llama" && j.boolean("attention_bias", false);
  const bool mlp_bias = j.boolean("mlp_bias", false);
  w.embedding = in.get("model.embed_tokens.weight", {c.vocab_size, d});
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    Block& b = w.blocks.emplace_back();
    b.attn_norm.weight = in.get(p + "input_layernorm.weight", {d});
    b.mlp_norm.weight = in.get(p + "post_attention_layernorm.weight", {d});
    b.q = Linear::of(in.get(p + "self_attn.q_proj.weight", {q, d}), in.optional(p + "self_attn.q_proj.bias", {q}, qkv_bias));
    b.k = Linear::of(in.get(p + "self_attn.k_proj.weight", {kv, d}), in.optional(p + "self_attn.k_proj.bias", {kv}, qkv_bias));
    b.v = Linear::of(in.get(p + "self_attn.v_proj.weight", {kv, d}), in.optional(p + "self_attn.v_proj.bias", {kv}, qkv_bias));
    b.o = Linear::of(in.get(p + "self_attn.o_proj.weight", {d, q}), in.optional(p + "self_attn.o_proj.bias", {d}, o_bias));
    b.gate = Linear::of(in.get(p + "mlp.gate_proj.weight", {h, d}), in.optional(p + "mlp.gate_proj.bias", {h}, mlp_bias));
    b.up = Linear::of(in.get(p + "mlp.up_proj.weight", {h, d}), in.optional(p + "mlp.up_proj.bias", {h}, mlp_bias));
    b.down = Linear::of(in.get(p + "mlp.down_proj.weight", {d, h}), in.optional(p + "mlp.down_proj.bias", {d}, mlp_bias));
  }
  w.final_norm.weight = in.get("model.norm.weight", {d});
  w.classifier.weight = c.tied_embeddings ? w.embedding : in.get("lm_head.weight", {c.vocab_size, d});
}

void load_gpt_neox(const Loader& in, const ModelConfig& c, const ConfigJson& j, Weights& w) {
  const int64_t d = c.dim, h = c.hidden_dim;
  const bool bias = j.boolean("attention_bias", true);
  w.embedding = in.get("gpt_neox.embed_in.weight", {c.vocab_size, d});
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string p = "gpt_neox.layers." + std::to_string(l) + ".";
    Block& b = w.blocks.emplace_back();
    b.attn_norm = {in.get(p + "input_layernorm.weight", {d}), in.get(p + "input_layernorm.bias", {d})};
    b.mlp_norm = {in.get(p + "post_attention_layernorm.weight", {d}), in.get(p + "post_attention_layernorm.bias", {d})};
    b.qkv = Linear::of(in.get(p + "attention.query_key_value.weight", {3 * d, d}), in.optional(p + "attention.query_key_value.bias", {3 * d}, bias));
    b.o = Linear::of(in.get(p + "attention.dense.weight", {d, d}), in.optional(p + "attention.dense.bias", {d}, bias));
    b.up = Linear::of(in.get(p + "mlp.dense_h_to_4h.weight", {h, d}), in.get(p + "mlp.dense_h_to_4h.bias", {h}));
    b.down = Linear::of(in.get(p + "mlp.dense_4h_to_h.weight", {d, h}), in.get(p + "mlp.dense_4h_to_h.bias", {d}));
  }
  w.final_norm = {in.get("gpt_neox.final_layer_norm.weight", {d}), in.get("gpt_neox.final_layer_norm.bias", {d})};
  w.classifier.weight = c.tied_embeddings ? w.embedding : in.get("embed_out.weight", {c.vocab_size, d});
}

}  // namespace

Checkpoint load_huggingface(const std::string& dir) {
  const ConfigJson j(dir);
  Checkpoint ck;
  ck.config = read_config(j);
  const TensorFiles files(dir);
  const Loader in(files, j.path());
  // The loaders add a block as its tensors are found: a corrupt num_hidden_layers is a missing tensor, not a huge allocation.
  if (ck.config.architecture == "gpt_neox")
    load_gpt_neox(in, ck.config, j, ck.weights);
  else
    load_llama_family(in, ck.config, j, ck.weights);
  return ck;
}

}  // namespace universae::lm
