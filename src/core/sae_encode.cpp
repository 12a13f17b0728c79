#include "core/sae_encode.hpp"

#include <ATen/ATen.h>

#include "core/error.hpp"

namespace universae::core {
namespace {

at::Tensor pre_activation(const SaeEncoderWeights& w, const at::Tensor& x) {
  const at::Tensor x_in = w.apply_b_dec_to_input ? x - w.b_dec : x;
  if (w.architecture == Architecture::kGated) return at::mm(x_in, w.W_enc.t()) * at::exp(w.r_mag) + w.b_mag;  // W_mag = exp(r_mag) ⊙ W_gate
  return at::addmm(w.b_enc, x_in, w.W_enc.t());
}

at::Tensor keep_top_k(const at::Tensor& post, int64_t k) {
  const auto top = post.topk(std::min(k, post.size(1)), /*dim=*/1);
  return at::zeros_like(post).scatter_(1, std::get<1>(top), std::get<0>(top));
}

}  // namespace

SaeEncoderWeights on_device(SaeEncoderWeights w, at::Device device) {
  for (at::Tensor* t : {&w.W_enc, &w.b_enc, &w.b_dec, &w.threshold, &w.r_mag, &w.b_mag})
    if (t->defined()) *t = t->to(device);
  return w;
}

at::Tensor dense_pre(const SaeEncoderWeights& w, const at::Tensor& x) { return at::relu(pre_activation(w, x)); }

at::Tensor codes(const SaeEncoderWeights& w, const at::Tensor& x) {
  switch (w.architecture) {
    case Architecture::kRelu: return dense_pre(w, x);
    case Architecture::kTopK: return keep_top_k(dense_pre(w, x), w.k);
    case Architecture::kBatchTopK:
      if (!w.threshold.defined()) return keep_top_k(dense_pre(w, x), w.k);
      [[fallthrough]];
    case Architecture::kJumpRelu: {
      const at::Tensor pre = pre_activation(w, x);
      return pre * (pre > w.threshold).to(pre.scalar_type());
    }
    case Architecture::kGated: {
      const at::Tensor x_in = w.apply_b_dec_to_input ? x - w.b_dec : x;
      const at::Tensor gate = at::addmm(w.b_enc, x_in, w.W_enc.t());
      const at::Tensor magnitude = at::relu(at::mm(x_in, w.W_enc.t()) * at::exp(w.r_mag) + w.b_mag);
      return magnitude * (gate > 0).to(magnitude.scalar_type());
    }
  }
  throw InternalError("codes: unknown SAE architecture");
}

void append_sparse_rows(const at::Tensor& z_in, SparseRows& out) {
  const at::Tensor z = z_in.to(at::kFloat).contiguous();
  const int64_t rows = z.size(0), n = z.size(1);
  const float* p = z.data_ptr<float>();
  for (int64_t t = 0; t < rows; ++t) {
    const float* row = p + t * n;
    for (int64_t i = 0; i < n; ++i)
      if (row[i] != 0.0f) out.latents.push_back(static_cast<int32_t>(i)), out.values.push_back(row[i]);
    out.offsets.push_back(static_cast<int64_t>(out.latents.size()));
  }
}

}  // namespace universae::core
