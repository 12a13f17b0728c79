#include "core/topk_sae.hpp"

#include <vector>

#include "core/rng.hpp"

namespace universae::core {

TopKSaeImpl::TopKSaeImpl(const TopKSaeOptions& o, uint64_t seed) : options(o) {
  std::vector<float> rows(static_cast<size_t>(o.n_latents * o.d_in));
  normal_rows(rows.data(), o.n_latents, o.d_in, seed, kStreamSaeInit, /*unit=*/true);
  const torch::Tensor dec = torch::from_blob(rows.data(), {o.n_latents, o.d_in}, torch::kFloat).clone();
  W_dec = register_parameter("W_dec", dec.clone());
  W_enc = register_parameter("W_enc", dec.clone());
  b_enc = register_parameter("b_enc", torch::zeros({o.n_latents}));
  b_dec = register_parameter("b_dec", torch::zeros({o.d_in}));
}

torch::Tensor TopKSaeImpl::decode_sparse(const torch::Tensor& values, const torch::Tensor& indices) const {
  const auto batch = values.size(0), k = values.size(1);
  const torch::Tensor rows = W_dec.index_select(0, indices.reshape({-1})).view({batch, k, options.d_in});
  return (rows * values.unsqueeze(-1)).sum(1);
}

TopKSaeImpl::Output TopKSaeImpl::forward(const torch::Tensor& x) {
  const torch::Tensor x_in = options.apply_b_dec_to_input ? x - b_dec : x;
  Output out;
  out.post = torch::relu(torch::addmm(b_enc, x_in, W_enc.t()));  // (B, n)
  auto [values, indices] = out.post.topk(options.k, /*dim=*/1);
  out.top_values = values;
  out.top_indices = indices;
  out.x_hat = decode_sparse(values, indices) + b_dec;
  return out;
}

torch::Tensor TopKSaeImpl::auxk_reconstruction(const torch::Tensor& post, const torch::Tensor& dead_mask,
                                               int64_t k_aux) const {
  const int64_t n_dead = static_cast<int64_t>(dead_mask.sum().item<float>());
  if (n_dead == 0 || k_aux == 0) return {};
  auto [values, indices] = (post * dead_mask).topk(std::min(k_aux, n_dead), /*dim=*/1);
  return decode_sparse(values, indices);
}

void TopKSaeImpl::remove_parallel_decoder_grad() {
  if (!W_dec.grad().defined()) return;
  torch::NoGradGuard no_grad;
  torch::Tensor g = W_dec.grad();
  g.sub_((g * W_dec).sum(1, /*keepdim=*/true) * W_dec);
}

void TopKSaeImpl::normalize_decoder() {
  torch::NoGradGuard no_grad;
  W_dec.div_(W_dec.norm(2, 1, /*keepdim=*/true).clamp_min(1e-12));
}

}  // namespace universae::core
