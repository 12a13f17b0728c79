// The fused CPU attention (lm/attention.hpp). stories260K-sized models (8 heads of 8 dims, ~90-token
// paragraphs) spent about a third of their forward in the per-sequence ATen attention: ten small ops
// per (sequence, layer), [heads, n, n] scores of which half are masked, and BLAS calls with an inner
// dimension of 8. Here each query reads only the keys it may see, packed per (sequence, kv head).
#include "lm/attention.hpp"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.hpp"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace universae::lm {

// Cephes' expf: x = n·ln2 + r with |r| ≤ ln2/2 (ln2 split in two for an exact n·ln2), e^r by its
// degree-7 polynomial, 2^n put in the exponent bits. Below −87 (e^x near the smallest normal float) it
// gives 0, so a key masked with −inf weighs exactly nothing. n comes from a truncating conversion
// (baseline x86-64 has no vector floor): for x ≤ 0, trunc(x·log2e − 0.5) rounds to nearest.
// The vector version (exp_nonpositive4) is the one the kernel runs; this one does its remainders.
float exp_nonpositive(float x) {
  // Below the range 0 (−inf included), NaN stays NaN: converting NaN to int below would be undefined
  // (UBSan caught it in the unit test's NaN case; the SSE conversion is defined and gives INT_MIN).
  if (!(x >= -87.0f)) return x < -87.0f ? 0.0f : x;
  const int32_t n = static_cast<int32_t>(x * 1.44269504088896341f - 0.5f);
  const float fn = static_cast<float>(n);
  float r = x - fn * 0.693359375f;
  r -= fn * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  return p * __builtin_bit_cast(float, (n + 127) << 23);  // p · 2^n
}

namespace {

#if defined(__SSE2__)
// exp_nonpositive on 4 values, the same operations in the same order (so the same bits): GCC left the
// scalar loop unvectorised (the int conversion and bit cast), and the exps were most of the kernel.
__m128 exp_nonpositive4(__m128 x) {
  const __m128 floor_value = _mm_set1_ps(-87.0f);
  const __m128 clamped = _mm_max_ps(floor_value, x);  // (−87 > x) ? −87 : x, as std::max(x, −87): NaN stays
  const __m128i n = _mm_cvttps_epi32(_mm_sub_ps(_mm_mul_ps(clamped, _mm_set1_ps(1.44269504088896341f)), _mm_set1_ps(0.5f)));
  const __m128 fn = _mm_cvtepi32_ps(n);
  __m128 r = _mm_sub_ps(clamped, _mm_mul_ps(fn, _mm_set1_ps(0.693359375f)));
  r = _mm_sub_ps(r, _mm_mul_ps(fn, _mm_set1_ps(-2.12194440e-4f)));
  __m128 p = _mm_set1_ps(1.9875691500e-4f);
  for (const float c : {1.3981999507e-3f, 8.3334519073e-3f, 4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f})
    p = _mm_add_ps(_mm_mul_ps(p, r), _mm_set1_ps(c));
  p = _mm_add_ps(_mm_add_ps(_mm_mul_ps(_mm_mul_ps(p, r), r), r), _mm_set1_ps(1.0f));
  const __m128 two_n = _mm_castsi128_ps(_mm_slli_epi32(_mm_add_epi32(n, _mm_set1_epi32(127)), 23));
  return _mm_andnot_ps(_mm_cmplt_ps(x, floor_value), _mm_mul_ps(p, two_n));
}
#endif

}  // namespace

void exp_nonpositive(float* x, int64_t n) {
  int64_t j = 0;
#if defined(__SSE2__)
  for (; j + 4 <= n; j += 4) _mm_storeu_ps(x + j, exp_nonpositive4(_mm_loadu_ps(x + j)));
#endif
  for (; j < n; ++j) x[j] = exp_nonpositive(x[j]);
}

namespace {

// Keys are taken 8 at a time (two SSE vectors), the sequence padded with zero keys and the keys
// outside a query's range masked, so that no loop over keys has a scalar remainder.
constexpr int64_t kBlock = 8;

int64_t round_up(int64_t n) { return (n + kBlock - 1) / kBlock * kBlock; }

// One (sequence, kv head), packed: kt is [head_dim, n8] (a key per column, so 8 keys' scores are one
// vector update per dimension), vs is [n8, head_dim] (a value per row); both zero past the sequence.
struct Packed {
  std::vector<float> kt, vs, scores;
  int64_t n8 = 0;

  void pack(const float* k, const float* v, int64_t stride, int64_t n, int64_t hs) {
    n8 = round_up(n);
    kt.assign(static_cast<size_t>(hs * n8), 0.0f);
    vs.assign(static_cast<size_t>(n8 * hs), 0.0f);
    scores.resize(static_cast<size_t>(n8));
    for (int64_t t = 0; t < n; ++t) {
      std::copy(v + t * stride, v + t * stride + hs, vs.begin() + t * hs);
      for (int64_t d = 0; d < hs; ++d) kt[static_cast<size_t>(d * n8 + t)] = k[t * stride + d];
    }
  }
};

// Scores of keys [0, m) of the block for query qi: 8 keys at a time, summed over the dimensions in
// registers (each key's sum in dimension order). GCC left the plain loops scalar, hence SSE2 by hand.
void scores_of(const float* qi, const float* kt, int64_t n8, int64_t m, int64_t hs, float* s) {
  for (int64_t j = 0; j < m; j += kBlock) {
#if defined(__SSE2__)
    __m128 a0 = _mm_setzero_ps(), a1 = _mm_setzero_ps();
    for (int64_t d = 0; d < hs; ++d) {
      const __m128 qd = _mm_set1_ps(qi[d]);
      const float* kd = kt + d * n8 + j;
      a0 = _mm_add_ps(a0, _mm_mul_ps(qd, _mm_loadu_ps(kd)));
      a1 = _mm_add_ps(a1, _mm_mul_ps(qd, _mm_loadu_ps(kd + 4)));
    }
    _mm_storeu_ps(s + j, a0);
    _mm_storeu_ps(s + j + 4, a1);
#else
    float acc[kBlock] = {};
    for (int64_t d = 0; d < hs; ++d)
      for (int64_t u = 0; u < kBlock; ++u) acc[u] += qi[d] * kt[d * n8 + j + u];
    std::copy(acc, acc + kBlock, s + j);
#endif
  }
}

// out = inv · Σ_j w_j v_j over keys [0, m) (m is a multiple of 8): 8 dimensions at a time, held in
// registers across the keys, even and odd keys in separate sums (two dependency chains, not one).
void weighted_values(const float* w, const float* vs, int64_t m, int64_t hs, float inv, float* out) {
  int64_t d = 0;
#if defined(__SSE2__)
  for (; d + kBlock <= hs; d += kBlock) {
    __m128 e0 = _mm_setzero_ps(), e1 = _mm_setzero_ps(), o0 = _mm_setzero_ps(), o1 = _mm_setzero_ps();
    for (int64_t j = 0; j < m; j += 2) {
      const __m128 we = _mm_set1_ps(w[j]), wo = _mm_set1_ps(w[j + 1]);
      const float* ve = vs + j * hs + d;
      const float* vo = ve + hs;
      e0 = _mm_add_ps(e0, _mm_mul_ps(we, _mm_loadu_ps(ve)));
      e1 = _mm_add_ps(e1, _mm_mul_ps(we, _mm_loadu_ps(ve + 4)));
      o0 = _mm_add_ps(o0, _mm_mul_ps(wo, _mm_loadu_ps(vo)));
      o1 = _mm_add_ps(o1, _mm_mul_ps(wo, _mm_loadu_ps(vo + 4)));
    }
    const __m128 scale = _mm_set1_ps(inv);
    _mm_storeu_ps(out + d, _mm_mul_ps(_mm_add_ps(e0, o0), scale));
    _mm_storeu_ps(out + d + 4, _mm_mul_ps(_mm_add_ps(e1, o1), scale));
  }
#endif
  for (; d < hs; ++d) {  // without SSE2, or a head dimension that is not a multiple of 8
    float acc = 0.0f;
    for (int64_t j = 0; j < m; ++j) acc += w[j] * vs[j * hs + d];
    out[d] = acc * inv;
  }
}

// One query: softmax((q · k_j) · scale) over keys lo..hi, then Σ_j p_j v_j. The keys are taken from lo
// rounded down to hi rounded up to whole blocks; those outside lo..hi get −inf, so weight 0.
void attend(const float* qi, Packed& pk, int64_t lo, int64_t hi, const AttentionShape& a, float* out) {
  const int64_t hs = a.head_dim, begin = lo / kBlock * kBlock, m = round_up(hi + 1) - begin;
  float* s = pk.scores.data() + begin;
  scores_of(qi, pk.kt.data() + begin, pk.n8, m, hs, s);
  // The keys before lo and after hi in the first and last block weigh nothing.
  std::fill(s, s + (lo - begin), -std::numeric_limits<float>::infinity());
  std::fill(s + (hi + 1 - begin), s + m, -std::numeric_limits<float>::infinity());
  float top = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : top)
  for (int64_t j = 0; j < m; ++j) {
    s[j] *= a.scale;
    top = std::max(top, s[j]);
  }
#pragma omp simd
  for (int64_t j = 0; j < m; ++j) s[j] -= top;
  exp_nonpositive(s, m);
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < m; ++j) sum += s[j];
  weighted_values(s, pk.vs.data() + begin * hs, m, hs, 1.0f / sum, out);
}

}  // namespace

void causal_attention_f32(const float* q, const float* k, const float* v, float* out, const AttentionShape& a,
                          const std::vector<int64_t>& lengths) {
  const int64_t hs = a.head_dim, group = a.heads / a.kv_heads, S = static_cast<int64_t>(lengths.size());
  std::vector<int64_t> offset(lengths.size() + 1, 0);
  for (size_t s = 0; s < lengths.size(); ++s) offset[s + 1] = offset[s] + lengths[s];
  at::parallel_for(0, S * a.kv_heads, 1, [&](int64_t begin, int64_t end) {
    Packed pk;
    for (int64_t item = begin; item < end; ++item) {
      const int64_t s = item / a.kv_heads, g = item % a.kv_heads, o = offset[static_cast<size_t>(s)];
      const int64_t n = lengths[static_cast<size_t>(s)];
      pk.pack(k + (o * a.kv_heads + g) * hs, v + (o * a.kv_heads + g) * hs, a.kv_heads * hs, n, hs);
      for (int64_t h = g * group; h < (g + 1) * group; ++h)
        for (int64_t i = 0; i < n; ++i) {
          const int64_t lo = a.window > 0 ? std::max<int64_t>(0, i - a.window + 1) : 0;
          const int64_t row = (o + i) * a.heads + h;
          attend(q + row * hs, pk, lo, i, a, out + row * hs);
        }
    }
  });
}

namespace {

// [longest, longest], true where a query may not see a key: a key after it, or (window > 0) window or
// more positions before it.
at::Tensor attention_mask(int64_t longest, int64_t window, at::Device device) {
  const auto options = at::TensorOptions(device).dtype(at::kBool);
  at::Tensor masked = at::ones({longest, longest}, options).triu(1);
  if (window > 0 && window < longest) masked.logical_or_(at::ones({longest, longest}, options).tril(-window));
  return masked;
}

at::Tensor aten_attention(const at::Tensor& q, at::Tensor k, at::Tensor v, const std::vector<int64_t>& lengths, int64_t window,
                          double scale) {
  // Made per call (per layer), from the window alone: a bool [longest, longest], small beside the
  // [heads, n, n] scores it masks.
  const at::Tensor masked = attention_mask(*std::max_element(lengths.begin(), lengths.end()), window, q.device());
  const int64_t group = q.size(1) / k.size(1);
  if (group > 1) k = k.repeat_interleave(group, 1), v = v.repeat_interleave(group, 1);
  at::Tensor attended = at::empty(q.sizes(), q.options());
  for (int64_t s = 0, o = 0; s < static_cast<int64_t>(lengths.size()); o += lengths[static_cast<size_t>(s)], ++s) {
    const int64_t n = lengths[static_cast<size_t>(s)];
    const at::Tensor qs = q.narrow(0, o, n).transpose(0, 1), ks = k.narrow(0, o, n).permute({1, 2, 0});
    const at::Tensor scores = at::matmul(qs, ks).mul_(scale).masked_fill_(masked.narrow(0, 0, n).narrow(1, 0, n),
                                                                        -std::numeric_limits<float>::infinity());
    const at::Tensor p = at::softmax(scores, -1, at::kFloat).to(q.scalar_type());
    attended.narrow(0, o, n).copy_(at::matmul(p, v.narrow(0, o, n).transpose(0, 1)).transpose(0, 1));
  }
  return attended;
}

}  // namespace

at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const std::vector<int64_t>& lengths,
                            int64_t window, AttentionKernel kernel) {
  const int64_t hs = q.size(2);
  const double scale = 1.0 / std::sqrt(static_cast<double>(hs));
  const bool fusable = q.device().is_cpu() && q.scalar_type() == at::kFloat;
  if (kernel == AttentionKernel::kAuto) kernel = fusable && hs <= kFusedMaxHeadDim ? AttentionKernel::kFused : AttentionKernel::kAten;
  if (kernel == AttentionKernel::kAten) return aten_attention(q, k, v, lengths, window, scale);
  if (!fusable) throw InternalError("causal_attention: the fused kernel runs on the CPU in float32");
  const at::Tensor qc = q.contiguous(), kc = k.contiguous(), vc = v.contiguous();
  at::Tensor attended = at::empty(q.sizes(), q.options());
  causal_attention_f32(qc.data_ptr<float>(), kc.data_ptr<float>(), vc.data_ptr<float>(), attended.data_ptr<float>(),
                       {q.size(1), k.size(1), hs, window, static_cast<float>(scale)}, lengths);
  return attended;
}

}  // namespace universae::lm
