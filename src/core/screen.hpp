// A similarity block screened in bfloat16 (METHODS.md §3): the top-K lists of exact float64 products,
// recomputing only the entries a bfloat16 GEMM cannot rule out. No MPI, no torch.
#pragma once

#include <cstdint>

#include "core/topk.hpp"

namespace universae::core {

// The cosine of two float32 unit rows of width d as the float64 sum of their products, rounded to
// float32: sixteen running sums (lane l adds x[k + l]·y[k + l], k a multiple of 16, a product then a
// sum, never fused), added in a fixed tree, then the last d % 16 products in order. Within float32
// rounding of the exact cosine, and the same bits on any rank, tile and instruction set.
float exact_dot(const float* x, const float* y, int64_t d);

// exact_dot with AVX-512 (the same bits); only where cpu_has_avx512f().
float exact_dot_avx512(const float* x, const float* y, int64_t d);

// The most a bfloat16 GEMM's product of two float32 unit rows of width d (ATen's oneDNN kernel: operands
// and result rounded to nearest, float32 accumulation) can differ from their exact_dot: operands 2^-7
// (2^-8 relative each; Σ|x_k y_k| <= 1 for unit rows), the result's rounding 2^-8 (half an ulp below 2),
// float32 accumulation d·2^-23 (twice γ_d), and 2^-10 for the float sums of the screen's test. At d = 256
// that is 0.0127; the largest error seen on bench_hungarian.py's 32,768-latent pair was 0.0025.
float screening_error_bound(int64_t d);

bool cpu_has_avx512f();
bool cpu_has_avx512_bf16();

// offer_block's lists (core/topk.hpp) from a bfloat16 screen of the block. `approx` (tr × tc, bfloat16
// bits, row-major) holds products within `eps` of their exact_dot; a (tr × d) and b (tc × d) are the
// block's float32 unit rows. An entry whose approx + eps beats neither its row's nor its column's K-th
// best cannot enter either list and is skipped; the others are offered as exact_dot. The lists are
// therefore those of offering every entry's exact_dot in order, whatever the screen's rounding within
// eps. Returns the number of exact products computed.
int64_t offer_screened_block(const uint16_t* approx, int64_t tr, int64_t tc, float eps, const float* a, const float* b,
                             int64_t d, int64_t row0, int64_t local_row0, int64_t col0, TopKLists& rows, TopKLists& cols);

}  // namespace universae::core
