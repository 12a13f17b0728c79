// Causal self-attention of packed sequences on the CPU in float32, fused: scores, softmax and the
// weighted sum of values for one query at a time, over the keys it may see only.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace universae::lm {

enum class AttentionKernel {
  kAuto,   // fused on the CPU in float32 for head dimensions up to kFusedMaxHeadDim; ATen's ops otherwise
  kFused,  // causal_attention_f32 (CPU, float32)
  kAten,   // per sequence: [heads, n, n] scores by matmul, masked_fill, softmax in float32, matmul
};

// Up to this head dimension the fused kernel beats ATen's ops on the CPU: bench/bench_attention, one
// thread, 4,096-token batches: ATen / fused 1.8 at 8 dims (91-token sequences), 1.6 (512), 1.1 at 16,
// 0.86 at 32, 0.5–0.6 at 64 and 128 (the fused kernel is a GEMV per query; ATen's GEMMs reuse each key).
constexpr int64_t kFusedMaxHeadDim = 16;

// Causal self-attention of the packed sequences of `lengths`: q [T, heads, hs], k and v [T, kv_heads, hs]
// (query head h reads kv head h / (heads / kv_heads)) → [T, heads, hs], scores scaled by 1/√hs; with
// window > 0 a query sees only the keys fewer than `window` positions before it.
at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const std::vector<int64_t>& lengths,
                            int64_t window, AttentionKernel kernel = AttentionKernel::kAuto);

struct AttentionShape {
  int64_t heads = 0;     // query heads
  int64_t kv_heads = 0;  // key/value heads: query head h reads kv head h / (heads / kv_heads)
  int64_t head_dim = 0;
  int64_t window = 0;    // > 0: a query sees only the keys fewer than `window` positions before it
  float scale = 1.0f;    // scores are (q · k) · scale
};

// q, out: [T, heads, head_dim]; k, v: [T, kv_heads, head_dim], all contiguous; the T tokens are the
// sequences of `lengths` one after another, and no query sees a key of another sequence. Each
// (sequence, kv head) is independent: spread over torch's threads, same bits on any thread count.
void causal_attention_f32(const float* q, const float* k, const float* v, float* out, const AttentionShape& shape,
                          const std::vector<int64_t>& lengths);

// e^x for x ≤ 0 in float32: within 2 ulp of std::exp for x ≥ −87, 0 below (−inf included), NaN for NaN;
// exp_nonpositive(float*, n) is the vectorised form with the same bits. Exposed for its unit test.
float exp_nonpositive(float x);
// x[j] = exp_nonpositive(x[j]) for j < n, 4 at a time where SSE2 is there: the same bits.
void exp_nonpositive(float* x, int64_t n);

}  // namespace universae::lm
