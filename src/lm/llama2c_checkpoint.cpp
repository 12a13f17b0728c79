// llama2.c checkpoints: the legacy "v0" format and the "v1" format with its "ak42" magic header.
// The header's sizes are checked against the file before anything is allocated.
#include <ATen/ATen.h>

#include <cstring>
#include <fstream>

#include "core/error.hpp"
#include "lm/checkpoint.hpp"

namespace universae::lm {
namespace {

constexpr int32_t kMagicV1 = 0x616b3432;  // "ak42"

// Reads the checkpoint's floats in file order; every read is checked against the file's size.
class FloatReader {
 public:
  FloatReader(std::ifstream& in, std::string path, int64_t bytes_left) : in_(in), path_(std::move(path)), left_(bytes_left) {}
  at::Tensor take(std::vector<int64_t> shape, const char* what) {
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    if (n * 4 > left_)
      throw UsageError(path_ + ": truncated llama2.c checkpoint (" + what + " needs " + std::to_string(n * 4) + " bytes, " +
                       std::to_string(left_) + " left); is this a llama2.c model file?");
    at::Tensor t = at::empty(shape, at::kFloat);
    in_.read(reinterpret_cast<char*>(t.data_ptr<float>()), n * 4);
    if (!in_) throw UsageError(path_ + ": read error in " + what);
    left_ -= n * 4;
    return t;
  }
  void skip(int64_t bytes) {
    in_.seekg(bytes, std::ios::cur);
    left_ -= bytes;
  }
  int64_t left() const { return left_; }

 private:
  std::ifstream& in_;
  std::string path_;
  int64_t left_;
};

// The header: sizes, format version, whether the classifier is the embedding.
ModelConfig read_header(std::ifstream& in, const std::string& path, int64_t size, int64_t& offset) {
  int32_t header[9] = {};
  if (size < 28 || !in.read(reinterpret_cast<char*>(header), 28))
    throw UsageError(path + ": too short for a llama2.c checkpoint (" + std::to_string(size) + " bytes)");
  offset = 28;
  const int32_t* p = header;
  ModelConfig c;
  c.format = "llama2.c";
  c.architecture = "llama";
  int version = 0;
  if (header[0] == kMagicV1) {
    // v1: magic, version, 7 ints, uint8 shared classifier, padded to 256 bytes.
    if (size < 256) throw UsageError(path + ": truncated v1 llama2.c header");
    in.seekg(0);
    unsigned char head[256];
    in.read(reinterpret_cast<char*>(head), 256);
    std::memcpy(header, head, sizeof header);
    if (header[1] != 1) throw UsageError(path + ": llama2.c checkpoint version " + std::to_string(header[1]) + " (supported: legacy v0 and v1)");
    p = header + 2;
    version = 1;
    c.tied_embeddings = head[36] != 0;
    offset = 256;
  }
  c.dim = p[0], c.hidden_dim = p[1], c.n_layers = p[2], c.n_heads = p[3], c.n_kv_heads = p[4], c.vocab_size = p[5], c.seq_len = p[6];
  if (version == 0) {
    // Legacy: a negative vocab size means an unshared classifier at the end.
    c.tied_embeddings = c.vocab_size > 0;
    c.vocab_size = std::abs(c.vocab_size);
  }
  if (c.dim <= 0 || c.hidden_dim <= 0 || c.n_layers <= 0 || c.n_heads <= 0 || c.n_kv_heads <= 0 || c.vocab_size <= 0 ||
      c.seq_len <= 0 || c.dim % c.n_heads != 0 || c.n_heads % c.n_kv_heads != 0 || (c.dim / c.n_heads) % 2 != 0 ||
      c.dim > 1 << 16 || c.n_layers > 1024)
    throw UsageError(path + ": not a llama2.c checkpoint (header dim " + std::to_string(c.dim) + ", hidden " +
                     std::to_string(c.hidden_dim) + ", layers " + std::to_string(c.n_layers) + ", heads " +
                     std::to_string(c.n_heads) + "/" + std::to_string(c.n_kv_heads) + ", vocab " + std::to_string(c.vocab_size) +
                     ", seq_len " + std::to_string(c.seq_len) + ")");
  c.head_dim = c.rotary_dims = c.dim / c.n_heads;
  c.format = version == 0 ? "llama2.c" : "llama2.c v1";
  c.bos = 1, c.eos = 2;  // llama2.c's tokenizer: <unk>, <s>, </s>
  return c;
}

}  // namespace

Checkpoint load_llama2c(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw UsageError(path + ": cannot open the model file");
  const int64_t size = static_cast<int64_t>(in.tellg());
  in.seekg(0);
  int64_t offset = 0;
  Checkpoint ck;
  ck.config = read_header(in, path, size, offset);
  const ModelConfig& c = ck.config;
  in.seekg(offset);
  FloatReader r(in, path, size - offset);
  const int64_t d = c.dim, h = c.hidden_dim, kv = c.n_kv_heads * c.head_dim;
  Weights& w = ck.weights;
  auto& b = w.blocks;
  b.resize(static_cast<size_t>(c.n_layers));
  auto linear = [&](Linear Block::*l, std::vector<int64_t> shape, const char* what) {
    shape.insert(shape.begin(), c.n_layers);
    const at::Tensor all = r.take(shape, what);
    for (int64_t i = 0; i < c.n_layers; ++i) (b[static_cast<size_t>(i)].*l).weight = all[i];
  };
  auto norm = [&](Norm Block::*n, const char* what) {
    const at::Tensor all = r.take({c.n_layers, d}, what);
    for (int64_t i = 0; i < c.n_layers; ++i) (b[static_cast<size_t>(i)].*n).weight = all[i];
  };
  if (c.format == "llama2.c") {
    w.embedding = r.take({c.vocab_size, d}, "tok_embeddings");
    norm(&Block::attn_norm, "rms_att");
    linear(&Block::q, {d, d}, "wq");
    linear(&Block::k, {kv, d}, "wk");
    linear(&Block::v, {kv, d}, "wv");
    linear(&Block::o, {d, d}, "wo");
    norm(&Block::mlp_norm, "rms_ffn");
    linear(&Block::gate, {h, d}, "w1");
    linear(&Block::down, {d, h}, "w2");
    linear(&Block::up, {h, d}, "w3");
    w.final_norm.weight = r.take({d}, "rms_final");
    r.skip(std::min(r.left(), 2 * c.seq_len * (c.head_dim / 2) * 4));  // freq_cis_real, freq_cis_imag (recomputed)
  } else {
    norm(&Block::attn_norm, "attention_norm");
    norm(&Block::mlp_norm, "ffn_norm");
    w.final_norm.weight = r.take({d}, "norm");
    w.embedding = r.take({c.vocab_size, d}, "tok_embeddings");
    linear(&Block::q, {d, d}, "wq");
    linear(&Block::k, {kv, d}, "wk");
    linear(&Block::v, {kv, d}, "wv");
    linear(&Block::o, {d, d}, "wo");
    linear(&Block::gate, {h, d}, "w1");
    linear(&Block::down, {d, h}, "w2");
    linear(&Block::up, {h, d}, "w3");
  }
  w.classifier.weight = c.tied_embeddings ? w.embedding : r.take({c.vocab_size, d}, "classifier");
  return ck;
}

}  // namespace universae::lm
