// Similarity blocks screened in bfloat16 (METHODS.md §3): the top-K lists of exact float64 products,
// recomputing only the entries a bfloat16 GEMM cannot rule out. No MPI, no torch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/topk.hpp"

namespace universae::core {

// The cosine of two float32 unit rows of width d as the float64 sum of their products, rounded to
// float32: sixteen running sums (lane l adds x[k + l]·y[k + l], k a multiple of 16, a product then a
// sum, never fused), added in a fixed tree, then the last d % 16 products in order. Within float32
// rounding of the exact cosine, and the same bits on any rank, tile and instruction set.
float exact_dot(const float* x, const float* y, int64_t d);

// exact_dot with AVX-512 (the same bits); only where cpu_has_avx512f().
float exact_dot_avx512(const float* x, const float* y, int64_t d);

// The dot of two float64 rows in exact_dot's order (sixteen running sums, a fixed tree, then the tail),
// not rounded: the matching's float64 rescoring. Its sixteen independent sums run about 8 times as fast
// as one running sum (a chain of d dependent additions).
double dot_f64(const double* x, const double* y, int64_t d);

// Of float32 rows of width d, the largest norm of a row's bfloat16 rounding x̃ (to nearest even, as ATen
// converts) and the largest norm of the residual x - x̃: what screening_error_bound needs of an operand.
struct RoundingNorms {
  double rounded = 0, residual = 0;
};
RoundingNorms bfloat16_rounding_norms(const float* x, int64_t rows, int64_t d);

// The most a bfloat16 GEMM's product of two float32 unit rows of width d (ATen's oneDNN kernel: operands
// and result rounded to nearest, float32 accumulation) can differ from their exact_dot, given the
// operands' rounding norms (the maxima over A's rows and over B's):
//   operands      x·y - x̃·ỹ = x̃·r_y + r_x·ỹ + r_x·r_y, at most ‖x̃‖‖r_y‖ + ‖r_x‖‖ỹ‖ + ‖r_x‖‖r_y‖ (Cauchy-Schwarz);
//   accumulation  d·2^-23 (twice γ_d, as Σ|x̃_k ỹ_k| <= ‖x̃‖‖ỹ‖ is barely above 1);
//   result        2^-8 (half an ulp below 2), and 2^-10 for the float sums of the screen's test.
// Each residual is at most 2^-8 of its row, so the operands' term is at most 2^-7 + 2^-16 (0.0127 in
// all at d = 256); measured norms make it 0.0041 on bench_hungarian.py's 32,768-latent pair (residuals
// at most 0.00207), ε = 0.0091, where the largest error seen was 0.0025.
float screening_error_bound(int64_t d, const RoundingNorms& a, const RoundingNorms& b);

bool cpu_has_avx512f();
bool cpu_has_avx512_bf16();

// The top-K lists of exact_dot products over a stream of blocks screened in bfloat16, in two steps.
// offer() keeps, per local row of A and per column of B, the top-K of the screened values (within `eps`
// of exact_dot), and buffers every entry that could still enter an exact list: screened + 2·eps above
// its row's or its column's K-th screened value so far. After the last block each row's final K-th
// screened value s_K bounds its exact K-th best from below (its K entries are >= s_K - eps), so an entry
// with screened + eps < s_K - eps cannot enter the row's exact list; the same for columns, with s_K the
// maximum of the ranks' K-th values (a lower bound of the K-th over all rows). finish() computes
// exact_dot only for the buffered entries that pass either final test and offers them in the blocks'
// order, so the lists are those of offering every entry's exact_dot in order, whatever the screen's
// rounding within eps. Deferring the exact products to the final bounds: at 32,768 latents (K = 16,
// 2 ranks, ε 0.0127) 8.2M exact products per rank with the running bounds, 1.7M with the final ones.
class ScreenedScan {
 public:
  // a: this rank's rows of A (rows × d, global indices from row0), b: all of B (cols × d), float32 unit rows.
  ScreenedScan(const float* a, const float* b, int64_t d, int64_t row0, int64_t rows, int64_t cols, int64_t k, float eps,
               size_t buffer_limit = kBufferLimit);

  // A (tr × tc) block of bfloat16 bits, entry (r, c) being local row local_row0 + r and column col0 + c.
  void offer(const uint16_t* approx, int64_t tr, int64_t tc, int64_t local_row0, int64_t col0);

  // Each column's K-th screened value on this rank (-inf until K were offered): to be maximised over ranks.
  std::vector<float> column_kths() const;

  // The exact lists: `rows` by local row (global column indices), `cols` by column (global row indices);
  // column_kth: column_kths() maximised over the ranks. Returns the number of exact products computed.
  int64_t finish(const float* column_kth, TopKLists& rows, TopKLists& cols);

  // Buffered entries past which offer() recomputes them at once with the bounds so far (valid lower
  // bounds too, only less tight): memory stays bounded (12 bytes an entry) where many entries tie near a
  // K-th value, as zero rows do (all their cosines are 0).
  static constexpr size_t kBufferLimit = size_t{1} << 25;

 private:
  void flush(const float* column_kth);  // the buffered entries against these bounds, into the exact lists

  const float *a_, *b_;
  int64_t d_, row0_;
  float eps_;
  size_t buffer_limit_;
  KthValues rows_, cols_;              // screened values
  TopKLists exact_rows_, exact_cols_;  // exact_dot values
  int64_t exact_ = 0;
  std::vector<uint32_t> row_, col_;  // buffered entries, in the order offered
  std::vector<float> value_;
};

}  // namespace universae::core
