// Llama-architecture language models from llama2.c checkpoints (the legacy "v0" format and the
// "v1" format with its "ak42" magic header), run as a batched LibTorch forward with hookpoints
// (DESIGN.md §4). The forward is llama2.c's: RMSNorm (eps 1e-5), grouped-query attention with RoPE
// on adjacent pairs, SwiGLU MLP w2(silu(w1 x) * w3 x), final RMSNorm, logits = classifier · x.
// Torch stays out of this header: inputs and captures are plain buffers.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace universae::lm {

struct LlamaConfig {
  int64_t dim = 0, hidden_dim = 0, n_layers = 0, n_heads = 0, n_kv_heads = 0, vocab_size = 0, seq_len = 0;
  bool shared_classifier = true;
  int format_version = 0;  // 0 legacy, 1 "ak42"
  int64_t head_size() const { return dim / n_heads; }
};

// Where in block `layer` an activation is read (TransformerLens names).
enum class HookSite { kResidPre, kResidMid, kResidPost, kMlpOut, kMlpPost };

struct Hook {
  std::string name;  // canonical: blocks.L.hook_resid_post, ..., blocks.L.mlp.hook_post
  int64_t layer = 0;
  HookSite site = HookSite::kResidPost;
  int64_t width = 0;  // dim, or hidden_dim for mlp.hook_post
};

// Parses a hookpoint name (sparsify aliases `layers.L`, `layers.L.mlp` accepted). A name the model
// does not have is a UsageError listing the valid forms.
Hook parse_hook(const LlamaConfig& config, const std::string& name);

// Every hookpoint of the model, in forward order.
std::vector<std::string> hook_names(const LlamaConfig& config);

class LlamaModel {
 public:
  // Reads a llama2.c checkpoint; a missing, truncated or inconsistent file is a UsageError naming it.
  explicit LlamaModel(const std::string& path);
  ~LlamaModel();
  LlamaModel(LlamaModel&&) noexcept;

  const LlamaConfig& config() const { return config_; }
  const std::string& path() const { return path_; }

  struct Output {
    std::vector<std::vector<float>> captures;  // per hook: [Σ lengths × width], sequences in order, no padding
    double nll_sum = 0;                        // Σ −log p(next token) over every position with a next token
    int64_t nll_count = 0;
  };
  // Runs sequences (each from position 0; concatenated in `tokens`, `lengths` each ≤ seq_len) as
  // one batch: every linear layer on all tokens at once ([tokens, d], no padding), attention per
  // sequence with a causal mask, so no sequence sees another and each gives exactly what it gives
  // alone. The forward stops after the last block a hook needs unless `loss` asks for the logits.
  Output forward(const std::vector<int32_t>& tokens, const std::vector<int64_t>& lengths, const std::vector<Hook>& hooks,
                 bool loss) const;

  // Greedy decoding as llama2.c's `run -t 0`: the argmax of the next-token logits after `tokens`.
  int32_t argmax_next(const std::vector<int32_t>& tokens) const;

 private:
  struct Weights;
  std::string path_;
  LlamaConfig config_;
  std::unique_ptr<Weights> weights_;
};

}  // namespace universae::lm
