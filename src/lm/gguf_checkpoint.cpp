// GGUF files (llama.cpp's format, versions 1–3) of the llama architecture: the hyperparameters from
// the `llama.*` keys, the tensors by ggml's names (token_embd, blk.N.attn_q, ...), matrices as stored
// in the mapped file (lm/checkpoint.hpp), norms as float32. GGUF stores q/k
// rows in llama2.c's adjacent-pair rotary order (llama.cpp's converter permutes Hugging Face's back).
#include <ATen/ATen.h>

#include <limits>

#include "core/error.hpp"
#include "io/gguf.hpp"
#include "io/text_file.hpp"
#include "lm/checkpoint.hpp"

namespace universae::lm {
namespace {

ModelConfig read_config(const io::gguf::Reader& r) {
  const std::string arch = r.get_string("general.architecture");
  if (arch != "llama")
    throw UsageError(r.path() + ": GGUF key 'general.architecture' is '" + arch + "' (supported: llama; Mistral and Llama 3 GGUFs are 'llama')");
  const std::string k = arch + ".";
  ModelConfig c;
  c.format = "gguf";
  c.architecture = arch;
  if (r.has("general.name")) c.name = r.get_string("general.name");
  c.dim = r.get_int(k + "embedding_length");
  c.hidden_dim = r.get_int(k + "feed_forward_length");
  c.n_layers = r.get_int(k + "block_count");
  c.n_heads = r.get_int(k + "attention.head_count");
  c.n_kv_heads = r.find_int(k + "attention.head_count_kv").value_or(c.n_heads);
  c.seq_len = r.get_int(k + "context_length");
  c.norm_eps = r.get_float(k + "attention.layer_norm_rms_epsilon");
  c.head_dim = r.find_int(k + "attention.key_length").value_or(c.n_heads > 0 ? c.dim / c.n_heads : 0);
  c.rotary_dims = r.find_int(k + "rope.dimension_count").value_or(c.head_dim);
  c.rope_theta = r.find_float(k + "rope.freq_base").value_or(10000.0);
  if (r.has(k + "rope.scaling.type")) {
    const std::string type = r.get_string(k + "rope.scaling.type");
    if (type == "linear") c.rope_scaling.type = "linear", c.rope_scaling.factor = r.get_float(k + "rope.scaling.factor");
    else if (type != "none") throw UsageError(r.path() + ": GGUF key '" + k + "rope.scaling.type' is '" + type + "' (supported: none, linear)");
  }
  c.rope_pairs = RopePairs::kAdjacent;
  c.bos = static_cast<int32_t>(r.find_int("tokenizer.ggml.bos_token_id").value_or(-1));
  c.eos = static_cast<int32_t>(r.find_int("tokenizer.ggml.eos_token_id").value_or(-1));
  const io::gguf::TensorInfo* embd = r.find("token_embd.weight");
  if (embd == nullptr) throw UsageError(r.path() + ": no tensor 'token_embd.weight'");
  if (embd->ne.size() != 2)
    throw UsageError(r.path() + ": tensor 'token_embd.weight' has shape " + io::shape_text(embd->shape()) + " (expected [vocab, embedding_length])");
  c.vocab_size = embd->shape()[0];
  c.tied_embeddings = r.find("output.weight") == nullptr;
  // head_count · key_length is the width of q (and bounds k's and v's): it must be an int64 to be compared with a shape.
  if (c.dim <= 0 || c.n_heads <= 0 || c.n_kv_heads <= 0 || c.n_heads % c.n_kv_heads != 0 || c.head_dim <= 0 ||
      c.n_heads > std::numeric_limits<int64_t>::max() / c.head_dim || c.rotary_dims % 2 != 0 || c.rotary_dims > c.head_dim ||
      c.n_layers <= 0 || c.seq_len <= 0)
    throw UsageError(r.path() + ": inconsistent llama.* hyperparameters (embedding_length " + std::to_string(c.dim) + ", head_count " +
                     std::to_string(c.n_heads) + "/" + std::to_string(c.n_kv_heads) + ", key_length " + std::to_string(c.head_dim) +
                     ", rope.dimension_count " + std::to_string(c.rotary_dims) + ")");
  return c;
}

}  // namespace

Checkpoint load_gguf(const std::string& path) {
  const io::gguf::Reader r(path);
  Checkpoint ck;
  ck.config = read_config(r);
  const ModelConfig& c = ck.config;
  auto check = [&](const std::string& name, const std::vector<int64_t>& shape) -> const io::gguf::TensorInfo& {
    const io::gguf::TensorInfo* t = r.find(name);
    if (t == nullptr) throw UsageError(path + ": no tensor '" + name + "'");
    if (t->shape() != shape)
      throw UsageError(path + ": tensor '" + name + "' has shape " + io::shape_text(t->shape()) + ", but its llama.* keys imply " +
                       io::shape_text(shape));
    return *t;
  };
  // Norm weights: as float32 (load_checkpoint converts them to the compute type). Matrices and the
  // embedding: as stored (views of the mapping; quantized blocks are dequantized when used).
  auto get = [&](const std::string& name, const std::vector<int64_t>& shape) {
    check(name, shape);
    return r.read(name);
  };
  auto matrix = [&](const std::string& name, const std::vector<int64_t>& shape) {
    const io::gguf::TensorInfo& t = check(name, shape);
    Linear l;
    l.weight = r.stored(name);
    if (l.weight.scalar_type() == at::kByte) l.quantized = static_cast<int>(t.type), l.shape = shape;
    return l;
  };
  const int64_t d = c.dim, h = c.hidden_dim, q = c.n_heads * c.head_dim, kv = c.n_kv_heads * c.head_dim;
  Weights& w = ck.weights;
  const Linear embedding = matrix("token_embd.weight", {c.vocab_size, d});
  // A quantized embedding is dequantized once (looked up row by row, it has no product to convert for).
  w.embedding = embedding.quantized >= 0 ? dense_weight(embedding, at::kFloat) : embedding.weight;
  // A block is added as its tensors are found: a corrupt block_count is a missing tensor, not a huge allocation.
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    Block& b = w.blocks.emplace_back();
    b.attn_norm.weight = get(p + "attn_norm.weight", {d});
    b.mlp_norm.weight = get(p + "ffn_norm.weight", {d});
    b.q = matrix(p + "attn_q.weight", {q, d});
    b.k = matrix(p + "attn_k.weight", {kv, d});
    b.v = matrix(p + "attn_v.weight", {kv, d});
    b.o = matrix(p + "attn_output.weight", {d, q});
    b.gate = matrix(p + "ffn_gate.weight", {h, d});
    b.up = matrix(p + "ffn_up.weight", {h, d});
    b.down = matrix(p + "ffn_down.weight", {d, h});
  }
  w.final_norm.weight = get("output_norm.weight", {d});
  w.classifier = c.tied_embeddings ? embedding : matrix("output.weight", {c.vocab_size, d});
  if (r.find("rope_freqs.weight") != nullptr) {  // Llama 3.1's frequency factors
    const at::Tensor f = r.read_as("rope_freqs.weight", at::kFloat).contiguous();
    expect_shape(f, {c.rotary_dims / 2}, path, "rope_freqs.weight", "llama.rope.dimension_count");
    ck.config.rope_freq_factors.assign(f.data_ptr<float>(), f.data_ptr<float>() + f.numel());
  }
  return ck;
}

}  // namespace universae::lm
