// The forward of every supported architecture (lm/model.hpp): one batched pass over all the
// tokens of a batch, attention per sequence, hookpoints copied out as the residual stream passes.
#include "lm/model.hpp"

#include <ATen/ATen.h>

#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <regex>

#include "core/error.hpp"
#include "io/activation_store.hpp"
#include "lm/attention.hpp"
#include "lm/checkpoint.hpp"

namespace universae::lm {
namespace {

// RMSNorm as Hugging Face computes it (in float32, then back to the compute type, then the weight),
// which in float32 is llama2.c's x · rsqrt(mean(x²) + eps) · w; LayerNorm as torch.nn.LayerNorm.
at::Tensor normalize(const at::Tensor& x, const Norm& n, const ModelConfig& c) {
  if (c.norm == NormKind::kLayer) return at::layer_norm(x, {x.size(-1)}, n.weight, n.bias, c.norm_eps);
  const at::Tensor xf = x.to(at::kFloat);
  const at::Tensor y = xf * at::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + static_cast<float>(c.norm_eps));
  return y.to(x.scalar_type()) * n.weight;
}

// A weight stored in another type than the compute type (bfloat16 on disk, float32 compute; a
// quantized GGUF block) is converted for the one product that needs it: the checkpoint stays a
// shared mapping, once per node, and a rank holds one converted matrix at a time.
at::Tensor linear(const at::Tensor& x, const Linear& l) {
  const at::Tensor w = dense_weight(l, x.scalar_type());
  return l.bias.defined() ? at::linear(x, w, l.bias) : at::matmul(x, w.t());
}

at::Tensor activate(const at::Tensor& x, Activation a) {
  switch (a) {
    case Activation::kSilu: return at::silu(x);
    case Activation::kGelu: return at::gelu(x);
    case Activation::kGeluTanh: return at::gelu(x, "tanh");
  }
  throw InternalError("activation");
}

// The rotary frequency of each rotated pair i: theta^(−2i/rotary_dims), as llama2.c and Hugging
// Face compute it in float32, then Hugging Face's rope_scaling ("linear": divided by the factor;
// "llama3": long wavelengths divided by the factor, short ones kept, a smooth blend between).
std::vector<float> inverse_frequencies(const ModelConfig& c) {
  const int64_t half = c.rotary_dims / 2;
  std::vector<float> inv(static_cast<size_t>(half));
  const RopeScaling& s = c.rope_scaling;
  for (int64_t i = 0; i < half; ++i) {
    float f = 1.0f / std::pow(static_cast<float>(c.rope_theta), static_cast<float>(2 * i) / static_cast<float>(c.rotary_dims));
    if (s.type == "linear") f = static_cast<float>(f / s.factor);
    if (s.type == "llama3") {
      const double old_len = static_cast<double>(s.original_max_positions);
      const double low_wavelen = old_len / s.low_freq_factor, high_wavelen = old_len / s.high_freq_factor;
      const double wavelen = 2 * M_PI / f;
      const float scaled = wavelen > low_wavelen ? static_cast<float>(f / s.factor) : f;
      const double smooth = (old_len / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
      const bool medium = !(wavelen < high_wavelen) && !(wavelen > low_wavelen);
      f = medium ? static_cast<float>((1 - smooth) * scaled / s.factor + smooth * scaled) : scaled;
    }
    if (!c.rope_freq_factors.empty()) f /= c.rope_freq_factors[static_cast<size_t>(i)];
    inv[static_cast<size_t>(i)] = f;
  }
  return inv;
}

// cos/sin of pos · inv_freq for every token at its position in its sequence: [T, 1, rotary/2].
struct Rope {
  at::Tensor cos, sin;
};
Rope rope_tables(const ModelConfig& c, std::vector<int64_t>& position, int64_t longest, at::ScalarType dtype, at::Device device) {
  const int64_t half = c.rotary_dims / 2, T = static_cast<int64_t>(position.size());
  const std::vector<float> inv = inverse_frequencies(c);
  std::vector<float> cos_table(static_cast<size_t>(longest * half)), sin_table(cos_table.size());
  for (int64_t pos = 0; pos < longest; ++pos)
    for (int64_t i = 0; i < half; ++i) {
      const float angle = static_cast<float>(pos) * inv[static_cast<size_t>(i)];
      cos_table[static_cast<size_t>(pos * half + i)] = std::cos(angle);
      sin_table[static_cast<size_t>(pos * half + i)] = std::sin(angle);
    }
  const at::Tensor pos = at::from_blob(position.data(), {T}, at::kLong);
  // index_select copies, so the tables may go out of scope; then to the model's device.
  return {at::from_blob(cos_table.data(), {longest, half}, at::kFloat).index_select(0, pos).view({T, 1, half}).to(device, dtype),
          at::from_blob(sin_table.data(), {longest, half}, at::kFloat).index_select(0, pos).view({T, 1, half}).to(device, dtype)};
}

// RoPE on the first rotary_dims of each head of x [T, heads, hs]; the rest passes through.
at::Tensor rotate(const at::Tensor& x, const Rope& r, const ModelConfig& c) {
  const int64_t T = x.size(0), heads = x.size(1), hs = x.size(2), rot = c.rotary_dims, half = rot / 2;
  const at::Tensor part = rot == hs ? x : x.narrow(2, 0, rot);
  at::Tensor rotated;
  if (c.rope_pairs == RopePairs::kAdjacent) {
    const at::Tensor pairs = part.reshape({T, heads, half, 2});
    const at::Tensor x0 = pairs.select(-1, 0), x1 = pairs.select(-1, 1);
    rotated = at::stack({x0 * r.cos - x1 * r.sin, x0 * r.sin + x1 * r.cos}, -1).reshape({T, heads, rot});
  } else {
    const at::Tensor x0 = part.narrow(2, 0, half), x1 = part.narrow(2, half, half);
    rotated = at::cat({x0 * r.cos - x1 * r.sin, x1 * r.cos + x0 * r.sin}, -1);
  }
  return rot == hs ? rotated : at::cat({rotated, x.narrow(2, rot, hs - rot)}, -1);
}

}  // namespace

Hook parse_hook(const ModelConfig& c, const std::string& name) {
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

std::vector<std::string> hook_names(const ModelConfig& c) {
  std::vector<std::string> names;
  for (int64_t l = 0; l < c.n_layers; ++l)
    for (const char* site : {"hook_resid_pre", "hook_resid_mid", "mlp.hook_post", "hook_mlp_out", "hook_resid_post"})
      names.push_back("blocks." + std::to_string(l) + "." + site);
  return names;
}


LanguageModel::~LanguageModel() = default;
LanguageModel::LanguageModel(LanguageModel&&) noexcept = default;

LanguageModel::LanguageModel(const std::string& path, ComputeDtype compute, at::Device device) : path_(path) {
  Checkpoint ck = load_checkpoint(path, compute, device);
  config_ = ck.config;
  weights_ = std::make_unique<Weights>(std::move(ck.weights));
}

namespace {

// One forward pass over a batch: the blocks up to `last_layer`, capturing hooks on the way (and,
// in a spliced pass, replacing the activation at one hookpoint).
class Pass {
 public:
  Pass(const ModelConfig& c, const Weights& w, const std::vector<Hook>& hooks, LanguageModel::Output& out)
      : c_(c), w_(w), hooks_(hooks), out_(out), compute_(w.final_norm.weight.scalar_type()), device_(w.embedding.device()) {}

  // Returns the residual stream after block `last_layer` ([T, d], compute type).
  at::Tensor run(std::vector<int64_t>& ids, const std::vector<int64_t>& lengths, int64_t last_layer, bool need_last_mlp) {
    prepare(ids, lengths);
    return blocks(embed(ids), 0, last_layer, need_last_mlp);
  }

  // Positions, rotary tables and the attention mask of a batch; checks the lengths and ids.
  void prepare(std::vector<int64_t>& ids, const std::vector<int64_t>& lengths) {
    const auto T = static_cast<int64_t>(ids.size());
    std::vector<int64_t> position(ids.size());
    int64_t longest = 0, t = 0;
    for (int64_t n : lengths) {
      if (n < 1 || n > c_.seq_len) throw InternalError("forward: sequence length " + std::to_string(n) + " outside 1..seq_len");
      for (int64_t p = 0; p < n && t < T; ++p, ++t) position[static_cast<size_t>(t)] = p;
      longest = std::max(longest, n);
    }
    if (t != T) throw InternalError("forward: lengths do not add up to the tokens");
    for (int64_t id : ids)
      if (id < 0 || id >= c_.vocab_size) throw InternalError("token id " + std::to_string(id) + " outside the vocabulary");
    T_ = T;
    lengths_ = &lengths;
    rope_ = rope_tables(c_, position, longest, compute_, device_);
  }

  at::Tensor embed(std::vector<int64_t>& ids) const {
    return at::embedding(w_.embedding, at::from_blob(ids.data(), {T_}, at::kLong).to(device_)).to(compute_);  // [T, d]
  }

  // Blocks first..last on x (the stream entering block `first`); the input of each block in `keep`
  // is stored there on the way.
  at::Tensor blocks(at::Tensor x, int64_t first, int64_t last, bool need_last_mlp) {
    for (int64_t l = first; l <= last; ++l) {
      bool need_mlp = need_last_mlp || l < last;
      for (const Hook& h : hooks_)
        need_mlp = need_mlp || (h.layer == l && h.site != HookSite::kResidPre && h.site != HookSite::kResidMid);
      if (splice_ && splice_->hook.layer == l) need_mlp = need_mlp || splice_->hook.site != HookSite::kResidPre;
      if (keep_ && keep_->count(l)) (*keep_)[l] = x;
      x = block(l, x, need_mlp);
    }
    return x;
  }

  void set_splice(const Splice* splice) { splice_ = splice; }
  void keep_inputs(std::map<int64_t, at::Tensor>* keep) { keep_ = keep; }

 private:
  // The activation at a site: captured for every hook there, and replaced when the splice is there.
  at::Tensor site(int64_t layer, HookSite site, at::Tensor x) {
    for (size_t i = 0; i < hooks_.size(); ++i) {
      if (hooks_[i].layer != layer || hooks_[i].site != site) continue;
      auto& buffer = out_.captures[i];
      buffer.resize(static_cast<size_t>(T_ * hooks_[i].width));
      at::from_blob(buffer.data(), {T_, hooks_[i].width}, at::kFloat).copy_(x);
    }
    if (!splice_ || splice_->hook.layer != layer || splice_->hook.site != site) return x;
    replaced_ = true;
    if (!splice_->replace) return at::zeros_like(x);
    at::Tensor rows = x.to(at::kCPU, at::kFloat).contiguous().clone();  // the SAE's replacement is host code
    splice_->replace(rows.data_ptr<float>(), rows.size(0), rows.size(1));
    return rows.to(x.device(), x.scalar_type());
  }

  at::Tensor attention(const Block& b, const at::Tensor& a) {
    const int64_t hs = c_.head_dim;
    at::Tensor q, k, v;
    if (b.qkv.weight.defined()) {  // GPT-NeoX: per head [q, k, v]
      const at::Tensor qkv = linear(a, b.qkv).view({T_, c_.n_heads, 3 * hs});
      q = qkv.narrow(2, 0, hs), k = qkv.narrow(2, hs, hs), v = qkv.narrow(2, 2 * hs, hs);
    } else {
      q = linear(a, b.q).view({T_, c_.n_heads, hs});
      k = linear(a, b.k).view({T_, c_.n_kv_heads, hs});
      v = linear(a, b.v).view({T_, c_.n_kv_heads, hs});
    }
    q = rotate(q, rope_, c_), k = rotate(k, rope_, c_);
    const at::Tensor attended = causal_attention(q, k, v, *lengths_, c_.sliding_window);
    return linear(attended.reshape({T_, c_.n_heads * hs}), b.o);
  }

  at::Tensor block(int64_t l, at::Tensor x, bool need_mlp) {
    const Block& b = w_.blocks[static_cast<size_t>(l)];
    x = site(l, HookSite::kResidPre, x);
    const at::Tensor attn = attention(b, normalize(x, b.attn_norm, c_));
    replaced_ = false;
    const at::Tensor mid = site(l, HookSite::kResidMid, x + attn);
    const bool mid_replaced = replaced_;
    if (!need_mlp) return mid;
    const at::Tensor m = normalize(c_.parallel_residual ? x : mid, b.mlp_norm, c_);
    const at::Tensor post = site(l, HookSite::kMlpPost, b.gate.weight.defined() ? activate(linear(m, b.gate), c_.activation) * linear(m, b.up)
                                                                                 : activate(linear(m, b.up), c_.activation));
    const at::Tensor mlp_out = site(l, HookSite::kMlpOut, linear(post, b.down));
    // Hugging Face's GPT-NeoX adds mlp + attn + x in that order (a replaced resid_mid stands for attn + x).
    const at::Tensor out = c_.parallel_residual && !mid_replaced ? mlp_out + attn + x : mid + mlp_out;
    return site(l, HookSite::kResidPost, out);
  }

  const ModelConfig& c_;
  const Weights& w_;
  const std::vector<Hook>& hooks_;
  LanguageModel::Output& out_;
  int64_t T_ = 0;
  const std::vector<int64_t>* lengths_ = nullptr;
  Rope rope_;
  at::ScalarType compute_;  // the norms are held in the compute type
  at::Device device_;       // the weights
  const Splice* splice_ = nullptr;
  std::map<int64_t, at::Tensor>* keep_ = nullptr;
  bool replaced_ = false;
};

at::Tensor logits_of(const at::Tensor& x, const Weights& w, const ModelConfig& c) {
  return linear(normalize(x, w.final_norm, c), w.classifier).to(at::kFloat);
}

}  // namespace

LanguageModel::Output LanguageModel::forward(const std::vector<int32_t>& tokens, const std::vector<int64_t>& lengths,
                                             const std::vector<Hook>& hooks, bool loss) const {
  Output out;
  out.captures.resize(hooks.size());
  if (tokens.empty()) return out;
  std::vector<int64_t> ids(tokens.begin(), tokens.end());
  int64_t last_layer = loss ? config_.n_layers - 1 : -1;
  for (const Hook& h : hooks) last_layer = std::max(last_layer, h.layer);
  const at::Tensor x = Pass(config_, *weights_, hooks, out).run(ids, lengths, last_layer, loss);
  if (!loss) return out;

  // Next-token loss at every position whose next token is in the same sequence.
  std::vector<int64_t> rows, targets;
  for (int64_t s = 0, o = 0; s < static_cast<int64_t>(lengths.size()); o += lengths[static_cast<size_t>(s)], ++s)
    for (int64_t p = 0; p + 1 < lengths[static_cast<size_t>(s)]; ++p) rows.push_back(o + p), targets.push_back(ids[static_cast<size_t>(o + p + 1)]);
  // In chunks of rows whose logits fit the cache (a [4096 × 32000] block would be 0.5 GB written and
  // read twice); the sums are added in float64 in chunk order.
  const auto n = static_cast<int64_t>(rows.size());
  const int64_t chunk = std::max<int64_t>(16, (4 << 20) / std::max<int64_t>(1, config_.vocab_size));
  for (int64_t begin = 0; begin < n; begin += chunk) {
    const int64_t m = std::min(chunk, n - begin);
    const at::Tensor r = at::from_blob(rows.data() + begin, {m}, at::kLong).to(x.device());
    const at::Tensor y = at::from_blob(targets.data() + begin, {m, 1}, at::kLong).to(x.device());
    const at::Tensor picked = at::log_softmax(logits_of(x.index_select(0, r), *weights_, config_), -1).gather(1, y);
    out.nll_sum -= picked.to(at::kDouble).sum().item<double>();
  }
  out.nll_count = n;
  return out;
}

namespace {

// Each row's next token in its sequence, or -1 for a sequence's last position.
std::vector<int64_t> next_targets(const std::vector<int64_t>& ids, const std::vector<int64_t>& lengths) {
  std::vector<int64_t> target(ids.size(), -1);
  for (int64_t s = 0, o = 0; s < static_cast<int64_t>(lengths.size()); o += lengths[static_cast<size_t>(s)], ++s)
    for (int64_t p = 0; p + 1 < lengths[static_cast<size_t>(s)]; ++p) target[static_cast<size_t>(o + p)] = ids[static_cast<size_t>(o + p + 1)];
  return target;
}

// Σ −log p(target) over the rows with a target (lp: [m, vocab] log-probabilities, target: [m], −1 none).
double target_nll(const at::Tensor& lp, const at::Tensor& target) {
  const at::Tensor valid = target.ge(0);
  const at::Tensor picked = lp.gather(1, target.clamp_min(0).unsqueeze(1)).squeeze(1);
  return -picked.masked_select(valid).to(at::kDouble).sum().item<double>();
}

}  // namespace

LanguageModel::SplicedOutput LanguageModel::forward_spliced(const std::vector<int32_t>& tokens, const std::vector<int64_t>& lengths,
                                                            const std::vector<Splice>& splices) const {
  using Clock = std::chrono::steady_clock;
  const auto seconds_since = [](Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); };
  SplicedOutput out;
  out.spliced.resize(splices.size());
  if (tokens.empty()) return out;
  auto start = Clock::now();
  std::vector<int64_t> ids(tokens.begin(), tokens.end());
  const std::vector<Hook> no_hooks;
  Output unused;
  Pass pass(config_, *weights_, no_hooks, unused);
  pass.prepare(ids, lengths);
  std::map<int64_t, at::Tensor> inputs;  // the stream entering each block a splice is in
  for (const Splice& s : splices) inputs[s.hook.layer] = at::Tensor();
  pass.keep_inputs(&inputs);
  const int64_t last = config_.n_layers - 1;
  const at::Tensor clean = pass.blocks(pass.embed(ids), 0, last, true);
  pass.keep_inputs(nullptr);

  std::vector<int64_t> target = next_targets(ids, lengths);
  const auto T = static_cast<int64_t>(ids.size());
  const at::Tensor targets = at::from_blob(target.data(), {T}, at::kLong).to(clean.device());
  for (int64_t t : target) out.nll_count += t >= 0;
  out.kl_count = T;
  // Rows in chunks whose logits fit the cache (as forward). The clean distribution p and its Σ p log p
  // per row are held for the batch when p fits in 256 MB ([T × vocab]), else recomputed per splice.
  const int64_t chunk = std::max<int64_t>(16, (4 << 20) / std::max<int64_t>(1, config_.vocab_size));
  auto log_probs = [&](const at::Tensor& x, int64_t begin, int64_t m) {
    return at::log_softmax(logits_of(x.narrow(0, begin, m), *weights_, config_), -1);
  };
  const bool hold = T * config_.vocab_size <= (int64_t{1} << 26);
  at::Tensor p_clean, neg_entropy;  // [T, vocab], [T]
  const auto f32 = at::TensorOptions(clean.device()).dtype(at::kFloat);
  if (hold) p_clean = at::empty({T, config_.vocab_size}, f32), neg_entropy = at::empty({T}, f32);
  for (int64_t begin = 0; begin < T; begin += chunk) {
    const int64_t m = std::min(chunk, T - begin);
    const at::Tensor lp = log_probs(clean, begin, m);
    out.clean_nll_sum += target_nll(lp, targets.narrow(0, begin, m));
    if (!hold) continue;
    p_clean.narrow(0, begin, m).copy_(lp.exp());
    neg_entropy.narrow(0, begin, m).copy_((p_clean.narrow(0, begin, m) * lp).sum(-1));
  }
  out.clean_seconds = seconds_since(start);
  for (size_t i = 0; i < splices.size(); ++i) {
    const Splice& s = splices[i];
    start = Clock::now();
    pass.set_splice(&s);
    const at::Tensor x = pass.blocks(inputs.at(s.hook.layer), s.hook.layer, last, true);
    pass.set_splice(nullptr);
    for (int64_t begin = 0; begin < T; begin += chunk) {
      const int64_t m = std::min(chunk, T - begin);
      const at::Tensor lp = log_probs(x, begin, m);
      out.spliced[i].nll_sum += target_nll(lp, targets.narrow(0, begin, m));
      // KL(p ‖ q) = Σ p log p − Σ p log q per row.
      at::Tensor kl;
      if (hold) {
        kl = neg_entropy.narrow(0, begin, m) - (p_clean.narrow(0, begin, m) * lp).sum(-1);
      } else {
        const at::Tensor lp_clean = log_probs(clean, begin, m);
        kl = (lp_clean.exp() * (lp_clean - lp)).sum(-1);
      }
      out.spliced[i].kl_sum += kl.to(at::kDouble).sum().item<double>();
    }
    out.spliced[i].seconds = seconds_since(start);
  }
  return out;
}

std::vector<float> LanguageModel::next_logits(const std::vector<int32_t>& tokens) const {
  Output unused;
  std::vector<int64_t> ids(tokens.begin(), tokens.end());
  const at::Tensor x = Pass(config_, *weights_, {}, unused).run(ids, {static_cast<int64_t>(ids.size())}, config_.n_layers - 1, true);
  const at::Tensor logits =
      logits_of(x.narrow(0, x.size(0) - 1, 1), *weights_, config_).reshape({config_.vocab_size}).to(at::kCPU).contiguous();
  return {logits.data_ptr<float>(), logits.data_ptr<float>() + config_.vocab_size};
}

int32_t LanguageModel::argmax_next(const std::vector<int32_t>& tokens) const {
  const std::vector<float> l = next_logits(tokens);
  int32_t best = 0;  // the first maximum, as run.c's argmax
  for (int32_t i = 1; i < static_cast<int32_t>(l.size()); ++i)
    if (l[static_cast<size_t>(i)] > l[static_cast<size_t>(best)]) best = i;
  return best;
}

}  // namespace universae::lm
