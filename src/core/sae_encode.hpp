// Encoding activations with any SAE architecture of the file format (DESIGN.md §4, METHODS.md §1),
// for activation statistics. No autograd, no MPI.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/architecture.hpp"

namespace universae::core {

struct SaeEncoderWeights {
  Architecture architecture{};
  int64_t k{};  // top-k architectures
  bool apply_b_dec_to_input{};
  at::Tensor W_enc, b_enc, b_dec;  // (n, d), (n), (d)
  at::Tensor threshold;            // jumprelu; batchtopk's inference threshold when present
  at::Tensor r_mag, b_mag;         // gated
};

// The same weights on `device` (the tensors themselves when they are there already).
SaeEncoderWeights on_device(SaeEncoderWeights w, at::Device device);

// relu(pre) for every latent (B, n): the dense input of Lan et al.'s correlations. For gated SAEs
// pre is the magnitude path's pre-activation.
at::Tensor dense_pre(const SaeEncoderWeights& w, const at::Tensor& x);

// The SAE's codes z (B, n) as its forward pass computes them: relu / top-k of relu(pre) /
// batchtopk (its threshold when the file has one, else top-k per token) / pre·[pre > θ] / gated.
at::Tensor codes(const SaeEncoderWeights& w, const at::Tensor& x);

// Codes of a block of tokens in compressed sparse rows: row t's non-zero latents (ascending) and values.
struct SparseRows {
  std::vector<int64_t> offsets{0};  // [tokens + 1]
  std::vector<int32_t> latents;
  std::vector<float> values;
};
void append_sparse_rows(const at::Tensor& z, SparseRows& out);

}  // namespace universae::core
