#include "lm/llama.hpp"

#include <ATen/ATen.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <regex>

#include "core/error.hpp"
#include "io/activation_store.hpp"

namespace universae::lm {

struct LlamaModel::Weights {
  at::Tensor embedding, classifier, norm_final;        // [V, d], [V, d], [d]
  std::vector<at::Tensor> norm_att, norm_ffn;          // [d]
  std::vector<at::Tensor> wq, wk, wv, wo, w1, w2, w3;  // (out, in)
};

namespace {

constexpr int32_t kMagicV1 = 0x616b3432;  // "ak42"
constexpr float kNormEps = 1e-5f;

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
  // Per-layer slices of one [n_layers, ...] array.
  std::vector<at::Tensor> layers(int64_t n_layers, std::vector<int64_t> shape, const char* what) {
    shape.insert(shape.begin(), n_layers);
    at::Tensor all = take(shape, what);
    std::vector<at::Tensor> out;
    for (int64_t l = 0; l < n_layers; ++l) out.push_back(all[l].contiguous());
    return out;
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

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight) {
  return x * at::rsqrt(x.pow(2).mean(-1, /*keepdim=*/true) + kNormEps) * weight;
}

// RoPE on adjacent pairs (2i, 2i+1) of each head: x [T, heads, hs]; cos/sin [T, 1, hs/2].
at::Tensor rotate(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  const auto sizes = x.sizes();
  const at::Tensor pairs = x.reshape({sizes[0], sizes[1], sizes[2] / 2, 2});
  const at::Tensor x0 = pairs.select(-1, 0), x1 = pairs.select(-1, 1);
  return at::stack({x0 * cos - x1 * sin, x0 * sin + x1 * cos}, -1).reshape(sizes);
}

// RoPE for every token of a batch: frequency 10000^(−2i/hs) for pair i, angle pos·freq (as llama2.c
// computes them), looked up at each token's position in its sequence. cos, sin: [T, 1, hs/2].
struct Rope {
  at::Tensor cos, sin;
};
Rope rope_tables(std::vector<int64_t>& position, int64_t longest, int64_t hs) {
  const int64_t half = hs / 2, T = static_cast<int64_t>(position.size());
  std::vector<float> cos_table(static_cast<size_t>(longest * half)), sin_table(cos_table.size());
  for (int64_t pos = 0; pos < longest; ++pos)
    for (int64_t i = 0; i < half; ++i) {
      const float freq = 1.0f / std::pow(10000.0f, static_cast<float>(2 * i) / static_cast<float>(hs));
      const float angle = static_cast<float>(pos) * freq;
      cos_table[static_cast<size_t>(pos * half + i)] = std::cos(angle);
      sin_table[static_cast<size_t>(pos * half + i)] = std::sin(angle);
    }
  const at::Tensor pos = at::from_blob(position.data(), {T}, at::kLong);
  // index_select copies, so the tables may go out of scope.
  return {at::from_blob(cos_table.data(), {longest, half}, at::kFloat).index_select(0, pos).view({T, 1, half}),
          at::from_blob(sin_table.data(), {longest, half}, at::kFloat).index_select(0, pos).view({T, 1, half})};
}

// Causal self-attention one sequence at a time ([heads, n, n] scores): q, k, v [T, heads, hs].
at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const std::vector<int64_t>& lengths,
                            const at::Tensor& future, float scale) {
  at::Tensor attended = at::empty(q.sizes(), at::kFloat);
  for (int64_t s = 0, o = 0; s < static_cast<int64_t>(lengths.size()); o += lengths[static_cast<size_t>(s)], ++s) {
    const int64_t n = lengths[static_cast<size_t>(s)];
    const at::Tensor qs = q.narrow(0, o, n).transpose(0, 1), ks = k.narrow(0, o, n).permute({1, 2, 0});
    const at::Tensor scores =
        at::matmul(qs, ks).mul_(scale).masked_fill_(future.narrow(0, 0, n).narrow(1, 0, n), -std::numeric_limits<float>::infinity());
    attended.narrow(0, o, n).copy_(at::matmul(at::softmax(scores, -1), v.narrow(0, o, n).transpose(0, 1)).transpose(0, 1));
  }
  return attended;
}

}  // namespace

Hook parse_hook(const LlamaConfig& c, const std::string& name) {
  static const std::regex pattern(R"(blocks\.(\d+)\.(hook_resid_pre|hook_resid_mid|hook_resid_post|hook_mlp_out|mlp\.hook_post))");
  std::smatch m;
  const std::string canonical = io::canonical_hookpoint(name);  // sparsify's aliases
  if (!std::regex_match(canonical, m, pattern))
    throw UsageError("unknown hookpoint '" + name + "'; this model has blocks.L.{hook_resid_pre, hook_resid_mid, hook_resid_post, "
                     "hook_mlp_out, mlp.hook_post} for L = 0.." + std::to_string(c.n_layers - 1) + " (or layers.L, layers.L.mlp)");
  Hook h;
  h.name = canonical;
  h.layer = std::stoll(m[1].str());
  if (h.layer >= c.n_layers)
    throw UsageError("hookpoint '" + name + "': the model has " + std::to_string(c.n_layers) + " blocks (0.." +
                     std::to_string(c.n_layers - 1) + ")");
  const std::string site = m[2].str();
  h.site = site == "hook_resid_pre"    ? HookSite::kResidPre
           : site == "hook_resid_mid"  ? HookSite::kResidMid
           : site == "hook_resid_post" ? HookSite::kResidPost
           : site == "hook_mlp_out"    ? HookSite::kMlpOut
                                       : HookSite::kMlpPost;
  h.width = h.site == HookSite::kMlpPost ? c.hidden_dim : c.dim;
  return h;
}

std::vector<std::string> hook_names(const LlamaConfig& c) {
  std::vector<std::string> names;
  for (int64_t l = 0; l < c.n_layers; ++l)
    for (const char* site : {"hook_resid_pre", "hook_resid_mid", "mlp.hook_post", "hook_mlp_out", "hook_resid_post"})
      names.push_back("blocks." + std::to_string(l) + "." + site);
  return names;
}

LlamaModel::~LlamaModel() = default;
LlamaModel::LlamaModel(LlamaModel&&) noexcept = default;

LlamaModel::LlamaModel(const std::string& path) : path_(path), weights_(std::make_unique<Weights>()) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw UsageError(path + ": cannot open the model file");
  const int64_t size = static_cast<int64_t>(in.tellg());
  in.seekg(0);
  int32_t header[9] = {};
  if (size < 28 || !in.read(reinterpret_cast<char*>(header), 28))
    throw UsageError(path + ": too short for a llama2.c checkpoint (" + std::to_string(size) + " bytes)");
  int64_t offset = 28;
  const int32_t* p = header;
  if (header[0] == kMagicV1) {
    // v1: magic, version, 7 ints, uint8 shared classifier, padded to 256 bytes.
    if (size < 256) throw UsageError(path + ": truncated v1 llama2.c header");
    in.seekg(0);
    unsigned char head[256];
    in.read(reinterpret_cast<char*>(head), 256);
    int32_t ints[9];
    std::memcpy(ints, head, sizeof ints);
    if (ints[1] != 1) throw UsageError(path + ": llama2.c checkpoint version " + std::to_string(ints[1]) + " (supported: legacy v0 and v1)");
    std::memcpy(header, ints, sizeof ints);
    p = header + 2;
    config_.format_version = 1;
    config_.shared_classifier = head[36] != 0;
    offset = 256;
  }
  config_.dim = p[0];
  config_.hidden_dim = p[1];
  config_.n_layers = p[2];
  config_.n_heads = p[3];
  config_.n_kv_heads = p[4];
  config_.vocab_size = p[5];
  config_.seq_len = p[6];
  if (config_.format_version == 0) {
    // Legacy: a negative vocab size means an unshared classifier at the end.
    config_.shared_classifier = config_.vocab_size > 0;
    config_.vocab_size = std::abs(config_.vocab_size);
  }
  const LlamaConfig& c = config_;
  if (c.dim <= 0 || c.hidden_dim <= 0 || c.n_layers <= 0 || c.n_heads <= 0 || c.n_kv_heads <= 0 || c.vocab_size <= 0 ||
      c.seq_len <= 0 || c.dim % c.n_heads != 0 || c.n_heads % c.n_kv_heads != 0 || c.head_size() % 2 != 0 || c.dim > 1 << 16 ||
      c.n_layers > 1024)
    throw UsageError(path + ": not a llama2.c checkpoint (header dim " + std::to_string(c.dim) + ", hidden " +
                     std::to_string(c.hidden_dim) + ", layers " + std::to_string(c.n_layers) + ", heads " +
                     std::to_string(c.n_heads) + "/" + std::to_string(c.n_kv_heads) + ", vocab " + std::to_string(c.vocab_size) +
                     ", seq_len " + std::to_string(c.seq_len) + ")");
  in.seekg(offset);
  FloatReader r(in, path, size - offset);
  const int64_t L = c.n_layers, d = c.dim, h = c.hidden_dim, kv = c.n_kv_heads * c.head_size();
  Weights& w = *weights_;
  if (c.format_version == 0) {
    w.embedding = r.take({c.vocab_size, d}, "tok_embeddings");
    w.norm_att = r.layers(L, {d}, "rms_att");
    w.wq = r.layers(L, {d, d}, "wq");
    w.wk = r.layers(L, {kv, d}, "wk");
    w.wv = r.layers(L, {kv, d}, "wv");
    w.wo = r.layers(L, {d, d}, "wo");
    w.norm_ffn = r.layers(L, {d}, "rms_ffn");
    w.w1 = r.layers(L, {h, d}, "w1");
    w.w2 = r.layers(L, {d, h}, "w2");
    w.w3 = r.layers(L, {h, d}, "w3");
    w.norm_final = r.take({d}, "rms_final");
    r.skip(std::min(r.left(), 2 * c.seq_len * (c.head_size() / 2) * 4));  // freq_cis_real, freq_cis_imag (recomputed)
  } else {
    w.norm_att = r.layers(L, {d}, "attention_norm");
    w.norm_ffn = r.layers(L, {d}, "ffn_norm");
    w.norm_final = r.take({d}, "norm");
    w.embedding = r.take({c.vocab_size, d}, "tok_embeddings");
    w.wq = r.layers(L, {d, d}, "wq");
    w.wk = r.layers(L, {kv, d}, "wk");
    w.wv = r.layers(L, {kv, d}, "wv");
    w.wo = r.layers(L, {d, d}, "wo");
    w.w1 = r.layers(L, {h, d}, "w1");
    w.w2 = r.layers(L, {d, h}, "w2");
    w.w3 = r.layers(L, {h, d}, "w3");
  }
  w.classifier = c.shared_classifier ? w.embedding : r.take({c.vocab_size, d}, "classifier");
}

LlamaModel::Output LlamaModel::forward(const std::vector<int32_t>& tokens, const std::vector<int64_t>& lengths,
                                       const std::vector<Hook>& hooks, bool loss) const {
  const LlamaConfig& c = config_;
  const Weights& w = *weights_;
  const auto T = static_cast<int64_t>(tokens.size());
  Output out;
  out.captures.resize(hooks.size());
  if (T == 0) return out;

  // Token ids and each token's position in its sequence (RoPE).
  std::vector<int64_t> ids(tokens.begin(), tokens.end()), position(tokens.size());
  int64_t longest = 0, t = 0;
  for (int64_t n : lengths) {
    if (n < 1 || n > c.seq_len) throw InternalError("forward: sequence length " + std::to_string(n) + " outside 1..seq_len");
    for (int64_t p = 0; p < n && t < T; ++p, ++t) position[static_cast<size_t>(t)] = p;
    longest = std::max(longest, n);
  }
  if (t != T) throw InternalError("forward: lengths do not add up to the tokens");
  for (int64_t id : ids)
    if (id < 0 || id >= c.vocab_size) throw InternalError("token id " + std::to_string(id) + " outside the vocabulary");

  int64_t last_layer = loss ? c.n_layers - 1 : -1;
  for (const Hook& h : hooks) last_layer = std::max(last_layer, h.layer);
  auto capture = [&](int64_t layer, HookSite site, const at::Tensor& x) {
    for (size_t i = 0; i < hooks.size(); ++i) {
      if (hooks[i].layer != layer || hooks[i].site != site) continue;
      auto& buffer = out.captures[i];
      buffer.resize(static_cast<size_t>(T * hooks[i].width));
      at::from_blob(buffer.data(), {T, hooks[i].width}, at::kFloat).copy_(x);
    }
  };

  const int64_t hs = c.head_size(), kv_mul = c.n_heads / c.n_kv_heads;
  const Rope rope = rope_tables(position, longest, hs);
  const at::Tensor &cos = rope.cos, &sin = rope.sin;
  const at::Tensor future = at::ones({longest, longest}, at::kBool).triu(1);
  const float scale = 1.0f / std::sqrt(static_cast<float>(hs));

  at::Tensor x = at::embedding(w.embedding, at::from_blob(ids.data(), {T}, at::kLong));  // [T, d]
  for (int64_t l = 0; l <= last_layer; ++l) {
    const auto li = static_cast<size_t>(l);
    capture(l, HookSite::kResidPre, x);
    const at::Tensor a = rms_norm(x, w.norm_att[li]);
    const at::Tensor q = rotate(at::matmul(a, w.wq[li].t()).view({T, c.n_heads, hs}), cos, sin);
    at::Tensor k = rotate(at::matmul(a, w.wk[li].t()).view({T, c.n_kv_heads, hs}), cos, sin);
    at::Tensor v = at::matmul(a, w.wv[li].t()).view({T, c.n_kv_heads, hs});
    if (kv_mul > 1) k = k.repeat_interleave(kv_mul, 1), v = v.repeat_interleave(kv_mul, 1);  // query head j reads kv head j / kv_mul
    const at::Tensor attended = causal_attention(q, k, v, lengths, future, scale);
    x = x + at::matmul(attended.view({T, c.dim}), w.wo[li].t());
    capture(l, HookSite::kResidMid, x);
    bool need_mlp = loss || l < last_layer;
    for (const Hook& h : hooks)
      need_mlp = need_mlp || (h.layer == l && h.site != HookSite::kResidPre && h.site != HookSite::kResidMid);
    if (!need_mlp) break;
    const at::Tensor m = rms_norm(x, w.norm_ffn[li]);
    const at::Tensor post = at::silu(at::matmul(m, w.w1[li].t())) * at::matmul(m, w.w3[li].t());
    capture(l, HookSite::kMlpPost, post);
    const at::Tensor mlp_out = at::matmul(post, w.w2[li].t());
    capture(l, HookSite::kMlpOut, mlp_out);
    x = x + mlp_out;
    capture(l, HookSite::kResidPost, x);
  }
  if (!loss) return out;

  // Next-token loss at every position whose next token is in the same sequence.
  std::vector<int64_t> rows, targets;
  for (int64_t s = 0, o = 0; s < static_cast<int64_t>(lengths.size()); o += lengths[static_cast<size_t>(s)], ++s)
    for (int64_t p = 0; p + 1 < lengths[static_cast<size_t>(s)]; ++p) rows.push_back(o + p), targets.push_back(ids[static_cast<size_t>(o + p + 1)]);
  if (!rows.empty()) {
    const at::Tensor r = at::from_blob(rows.data(), {static_cast<int64_t>(rows.size())}, at::kLong);
    const at::Tensor y = at::from_blob(targets.data(), {static_cast<int64_t>(targets.size()), 1}, at::kLong);
    const at::Tensor h = rms_norm(x.index_select(0, r), w.norm_final);
    const at::Tensor picked = at::log_softmax(at::matmul(h, w.classifier.t()), -1).gather(1, y);
    out.nll_sum = -picked.to(at::kDouble).sum().item<double>();
    out.nll_count = static_cast<int64_t>(rows.size());
  }
  return out;
}

int32_t LlamaModel::argmax_next(const std::vector<int32_t>& tokens) const {
  const LlamaConfig& c = config_;
  const Weights& w = *weights_;
  // The logits of the last position only: run the blocks, then the classifier on one row.
  Hook last;
  last.layer = c.n_layers - 1;
  last.site = HookSite::kResidPost;
  last.width = c.dim;
  Output o = forward(tokens, {static_cast<int64_t>(tokens.size())}, {last}, false);
  const at::Tensor x = at::from_blob(o.captures[0].data() + (tokens.size() - 1) * c.dim, {1, c.dim}, at::kFloat);
  const at::Tensor logits = at::matmul(rms_norm(x, w.norm_final), w.classifier.t()).reshape({c.vocab_size});
  // The first maximum, as run.c's argmax.
  const float* l = logits.data_ptr<float>();
  int32_t best = 0;
  for (int32_t i = 1; i < c.vocab_size; ++i)
    if (l[i] > l[best]) best = i;
  return best;
}

}  // namespace universae::lm
