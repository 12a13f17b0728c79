// Decoder-only language models as universae runs them: the Llama family (llama2.c checkpoints,
// Hugging Face llama / mistral / qwen2 directories, GGUF llama files) and GPT-NeoX (Pythia), each
// read by a loader in lm/checkpoint.hpp into one description (ModelConfig) and one set of weights,
// then run by one batched LibTorch forward with hookpoints (docs/models.md):
//   Llama family: RMSNorm, grouped-query attention with RoPE, gated MLP down(act(gate x) · up x),
//                 sequential residual, final RMSNorm, logits = classifier · x;
//   GPT-NeoX:     LayerNorm, fused qkv with partial rotary, MLP down(gelu(up x)), parallel residual
//                 x + attn(ln1 x) + mlp(ln2 x) (or sequential), final LayerNorm, untied classifier.
// Torch stays out of this header: inputs and captures are plain buffers.
#pragma once

#include <c10/core/Device.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace universae::lm {

enum class NormKind { kRms, kLayer };
enum class Activation { kSilu, kGelu, kGeluTanh };
// Which elements of a head RoPE rotates together: (2i, 2i+1) as llama2.c and GGUF store q/k, or
// (i, i + rotary/2) as Hugging Face's rotate_half (its converter permutes the q/k rows).
enum class RopePairs { kAdjacent, kHalves };

struct RopeScaling {
  std::string type;  // "" (none), "linear" or "llama3" (Hugging Face's rope_scaling)
  double factor = 1, low_freq_factor = 1, high_freq_factor = 4;
  int64_t original_max_positions = 0;
};

struct ModelConfig {
  std::string format;        // "llama2.c", "huggingface" or "gguf"
  std::string architecture;  // "llama", "mistral", "qwen2" or "gpt_neox"
  std::string name;          // the checkpoint's own name for the model (GGUF general.name), or ""
  int64_t dim = 0, hidden_dim = 0, n_layers = 0, n_heads = 0, n_kv_heads = 0, head_dim = 0, vocab_size = 0, seq_len = 0;
  NormKind norm = NormKind::kRms;
  double norm_eps = 1e-5;
  Activation activation = Activation::kSilu;
  bool gated_mlp = true;           // down(act(gate x) · up x); false: down(act(up x))
  bool parallel_residual = false;  // GPT-NeoX's x + attn(ln1 x) + mlp(ln2 x)
  double rope_theta = 10000;
  int64_t rotary_dims = 0;  // of each head's head_dim, the first rotary_dims are rotated
  RopePairs rope_pairs = RopePairs::kAdjacent;
  RopeScaling rope_scaling;
  std::vector<float> rope_freq_factors;  // GGUF's rope_freqs: pair i's frequency divided by factor i (Llama 3)
  int64_t sliding_window = 0;  // a query attends to at most this many positions (0: all before it)
  bool tied_embeddings = true;
  int32_t bos = -1, eos = -1;  // -1: the checkpoint names none
  int64_t head_size() const { return head_dim; }
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
Hook parse_hook(const ModelConfig& config, const std::string& name);

// Every hookpoint of the model, in forward order.
std::vector<std::string> hook_names(const ModelConfig& config);

// A replacement of the activation at one hookpoint, at every position of a batch (BOS included).
// `replace` gets the activation [tokens × width] as float32 rows and rewrites them in place; an empty
// `replace` zeroes the activation (zero ablation).
struct Splice {
  Hook hook;
  std::function<void(float* rows, int64_t tokens, int64_t width)> replace;
};

// What a spliced forward gives for one splice, summed over the batch.
struct SplicedLoss {
  double nll_sum = 0;  // Σ −log p(next token) with the splice, over positions with a next token
  double kl_sum = 0;   // Σ KL(p_clean ‖ p_spliced) of the next-token distributions, over every position
  double seconds = 0;  // the spliced forward from its block, its logits and their comparison with the clean ones
};

// The precision the forward computes in (the weights are converted once when loaded).
enum class ComputeDtype { kFloat32, kBFloat16 };

struct Weights;  // lm/checkpoint.hpp

class LanguageModel {
 public:
  // Reads a checkpoint: a Hugging Face model directory (config.json + safetensors), a GGUF file, or a
  // llama2.c file; anything missing, truncated or unsupported is a UsageError naming the file and key.
  // `device`: where the weights live and the forward runs (run.device); tokens go there per batch and
  // captured activations and losses come back (deliberate: they are written to files on the host).
  explicit LanguageModel(const std::string& path, ComputeDtype compute = ComputeDtype::kFloat32, at::Device device = at::kCPU);
  ~LanguageModel();
  LanguageModel(LanguageModel&&) noexcept;

  const ModelConfig& config() const { return config_; }
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

  struct SplicedOutput {
    double clean_nll_sum = 0;    // the clean forward's Σ −log p(next token)
    double clean_seconds = 0;    // the clean forward with its loss
    int64_t nll_count = 0;       // positions with a next token in their sequence
    int64_t kl_count = 0;        // every position
    std::vector<SplicedLoss> spliced;  // one per splice, in order
  };
  // Runs the batch (as forward) clean, then once per splice with the splice applied, each from the
  // block that holds its hookpoint (the blocks before it are shared with the clean run).
  SplicedOutput forward_spliced(const std::vector<int32_t>& tokens, const std::vector<int64_t>& lengths,
                                const std::vector<Splice>& splices) const;

  // The next-token logits after `tokens` (one sequence from position 0): [vocab_size].
  std::vector<float> next_logits(const std::vector<int32_t>& tokens) const;
  // Greedy decoding as llama2.c's `run -t 0`: the first maximum of next_logits.
  int32_t argmax_next(const std::vector<int32_t>& tokens) const;

 private:
  std::string path_;
  ModelConfig config_;
  std::unique_ptr<Weights> weights_;
};

}  // namespace universae::lm
