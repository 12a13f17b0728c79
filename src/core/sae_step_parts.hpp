// What the two implementations of the training step (sae_model.cpp's CPU kernels, sae_generic.cpp's
// ATen-only twin) share, and the generic parts sae_model.cpp dispatches to. Internal to core/.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

#include "core/sae_model.hpp"

namespace universae::core::detail {

// The k-th largest candidate per row over all latent shards, (rows) float; candidates are (rows, k)
// per shard. Used only with more than one shard.
at::Tensor global_kth(const at::Tensor& candidates, int64_t k, const LatentPeers& peers);

// The step's large batched products in spec.matmul's precision (sae_model.hpp): float32 in, float32 out.
at::Tensor bmm(const SaeSpec& spec, const at::Tensor& a, const at::Tensor& b);
at::Tensor baddbmm(const SaeSpec& spec, const at::Tensor& bias, const at::Tensor& a, const at::Tensor& b);

// acc (S) float64 += per_seed.
void add_sum(at::Tensor& acc, const at::Tensor& per_seed);

// Sums the shards' partial reconstructions, adds b_dec and returns x̂ − x (S, B, d), made in place of
// `partial`; adds Σ‖x − x̂‖² to `sse`, the float64 squares in the kept buffer `square` (StepStats).
at::Tensor residual(at::Tensor partial, const at::Tensor& x, const at::Tensor& b_dec, const LatentPeers& peers,
                    at::Tensor& sse, at::Tensor& square);
// `buffer` resized to `shape` (contents undefined), its memory kept from call to call; made afresh when
// undefined or of another device or dtype than `options`.
at::Tensor& kept(at::Tensor& buffer, at::IntArrayRef shape, const at::TensorOptions& options);

// topk and batchtopk (with AuxK) from ATen operators, on the device of `p`: the twin of
// sae_model.cpp's sparse_forward_backward.
void generic_sparse_forward_backward(const SaeSpec& spec, const SaeStack& p, const at::Tensor& x, const at::Tensor& x_in,
                                     const at::Tensor& dead, double inv_L, const LatentPeers& peers, SaeStack& g,
                                     StepStats& stats);

// torch.optim.Adam's update as torch writes it (single-tensor, in-place operators); `step_size` =
// lr / (1 − β1^t), `bias2_sqrt` = √(1 − β2^t).
void generic_adam_update(SaeStack& params, const SaeStack& grads, AdamState& state, double step_size, double bias2_sqrt,
                         const AdamConfig& config);

}  // namespace universae::core::detail
