// TopK sparse autoencoder (Gao et al. 2024; METHODS.md §1), as a LibTorch module.
// pre = W_enc (x − b_dec) + b_enc; z = the k largest of relu(pre), others 0; x̂ = zᵀ W_dec + b_dec.
#pragma once

#include <torch/torch.h>

#include <cstdint>

namespace universae::core {

struct TopKSaeOptions {
  int64_t d_in = 0;
  int64_t n_latents = 0;
  int64_t k = 0;
  bool apply_b_dec_to_input = true;
};

class TopKSaeImpl : public torch::nn::Module {
 public:
  // Decoder rows: random unit vectors drawn from `seed` (core/rng.hpp, so identical on every rank
  // and device); encoder rows = decoder rows; b_enc = 0; b_dec = 0 until the trainer sets it.
  TopKSaeImpl(const TopKSaeOptions& options, uint64_t seed);

  struct Output {
    torch::Tensor x_hat;        // (B, d)
    torch::Tensor post;         // (B, n) relu(pre)
    torch::Tensor top_values;   // (B, k)
    torch::Tensor top_indices;  // (B, k)
  };
  Output forward(const torch::Tensor& x);

  // Σ_i values[:, i] W_dec[indices[:, i]] without b_dec: the sparse decode, B·k·d work.
  torch::Tensor decode_sparse(const torch::Tensor& values, const torch::Tensor& indices) const;

  // AuxK: reconstruction of the residual from the top k_aux relu(pre) among dead latents
  // (dead_mask: (n) float, 1 = dead). Returns an undefined tensor when no latent is dead.
  torch::Tensor auxk_reconstruction(const torch::Tensor& post, const torch::Tensor& dead_mask, int64_t k_aux) const;

  // Unit-norm decoder: drop the gradient component parallel to each row before the step ...
  void remove_parallel_decoder_grad();
  // ... and renormalise the rows after it.
  void normalize_decoder();

  TopKSaeOptions options;
  torch::Tensor W_enc, b_enc, W_dec, b_dec;
};
TORCH_MODULE(TopKSae);

}  // namespace universae::core
