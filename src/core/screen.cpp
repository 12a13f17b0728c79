#include "core/screen.hpp"

#include <cpuid.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "core/prefetch.hpp"

namespace universae::core {
namespace {

constexpr int kLanes = 16;

// The lanes' sums in exact_dot's fixed tree, then the products past the last whole 16.
template <typename T>
double sum_lanes(const double* lane, const T* x, const T* y, int64_t k, int64_t d) {
  double pair[8], quad[4];
  for (int l = 0; l < 8; ++l) pair[l] = lane[2 * l] + lane[2 * l + 1];
  for (int l = 0; l < 4; ++l) quad[l] = pair[2 * l] + pair[2 * l + 1];
  double sum = (quad[0] + quad[1]) + (quad[2] + quad[3]);
  for (; k < d; ++k) sum += static_cast<double>(x[k]) * static_cast<double>(y[k]);
  return sum;
}

// A bfloat16 value's bits as float32 (exact: bfloat16 is float32's high half).
float bfloat16_bits_to_float(uint16_t h) {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

// Round to nearest even, as c10::BFloat16 (NaN stays NaN; the screen's rows are finite).
uint16_t float_to_bfloat16_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  if (std::isnan(f)) return 0x7FC0;
  u += 0x7FFFu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

using Dot = float (*)(const float*, const float*, int64_t);

}  // namespace

namespace {

#if defined(__SSE2__)
// Two consecutive values as float64 (float32 ones widened exactly).
__m128d load2(const float* p) { return _mm_cvtps_pd(_mm_castsi128_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)))); }
__m128d load2(const double* p) { return _mm_loadu_pd(p); }
#endif

// Σ x_k y_k in float64 in exact_dot's order: sixteen running sums (lane l adds the products of k ≡ l mod
// 16 over the whole 16s, a product then a sum), then sum_lanes. Serves exact_dot (float32 rows) and
// dot_f64 (float64 rows).
template <typename T>
double lane_dot(const T* x, const T* y, int64_t d) {
  alignas(16) double lane[kLanes] = {};
  int64_t k = 0;
#if defined(__SSE2__)
  __m128d s[8];
  for (auto& v : s) v = _mm_setzero_pd();
  for (; k + kLanes <= d; k += kLanes)
    for (int m = 0; m < 8; ++m)  // lanes 2m, 2m + 1
      s[m] = _mm_add_pd(s[m], _mm_mul_pd(load2(x + k + 2 * m), load2(y + k + 2 * m)));
  for (int m = 0; m < 8; ++m) _mm_store_pd(lane + 2 * m, s[m]);
#else
  for (; k + kLanes <= d; k += kLanes)
    for (int l = 0; l < kLanes; ++l) {
      const double p = static_cast<double>(x[k + l]) * static_cast<double>(y[k + l]);
      lane[l] += p;
    }
#endif
  return sum_lanes(lane, x, y, k, d);
}

}  // namespace

float exact_dot(const float* x, const float* y, int64_t d) { return static_cast<float>(lane_dot(x, y, d)); }

double dot_f64(const double* x, const double* y, int64_t d) { return lane_dot(x, y, d); }

#if defined(__x86_64__)
// GCC 12 warns that avx512fintrin.h's own conversions may read an uninitialised register (its undefined-
// value idiom), a false positive.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
__attribute__((target("avx512f"))) float exact_dot_avx512(const float* x, const float* y, int64_t d) {
  alignas(64) double lane[kLanes];
  __m512d s0 = _mm512_setzero_pd(), s1 = s0;
  int64_t k = 0;
  for (; k + kLanes <= d; k += kLanes) {  // -ffp-contract=off (CMake): a product then a sum, as exact_dot
    s0 = _mm512_add_pd(s0, _mm512_mul_pd(_mm512_cvtps_pd(_mm256_loadu_ps(x + k)), _mm512_cvtps_pd(_mm256_loadu_ps(y + k))));
    s1 = _mm512_add_pd(s1, _mm512_mul_pd(_mm512_cvtps_pd(_mm256_loadu_ps(x + k + 8)), _mm512_cvtps_pd(_mm256_loadu_ps(y + k + 8))));
  }
  _mm512_store_pd(lane, s0);
  _mm512_store_pd(lane + 8, s1);
  return static_cast<float>(sum_lanes(lane, x, y, k, d));
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#else
float exact_dot_avx512(const float* x, const float* y, int64_t d) { return exact_dot(x, y, d); }
#endif

// CPUID leaf 7: sub-leaf 0 EBX bit 16 is AVX512F, sub-leaf 1 EAX bit 5 AVX512_BF16 (read directly: the
// compilers' __builtin_cpu_supports names differ by version). The OS must also save the ZMM state (XCR0).
bool cpu_has_avx512f() {
#if defined(__x86_64__)
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) == 0 || (ebx & (1u << 16)) == 0) return false;
  if (__get_cpuid(1, &eax, &ebx, &ecx, &edx) == 0 || (ecx & (1u << 27)) == 0) return false;  // OSXSAVE
  unsigned lo = 0, hi = 0;
  __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (lo & 0xE6u) == 0xE6u;  // SSE, AVX, opmask, ZMM state
#else
  return false;
#endif
}

RoundingNorms bfloat16_rounding_norms(const float* x, int64_t rows, int64_t d) {
  RoundingNorms n;
  for (int64_t i = 0; i < rows; ++i) {
    double rounded = 0, residual = 0;
    for (int64_t k = 0; k < d; ++k) {
      const float v = x[i * d + k];
      const float v16 = bfloat16_bits_to_float(float_to_bfloat16_bits(v));
      const double r = static_cast<double>(v) - static_cast<double>(v16);  // exact
      rounded += static_cast<double>(v16) * v16;
      residual += r * r;
    }
    n.rounded = std::max(n.rounded, std::sqrt(rounded));
    n.residual = std::max(n.residual, std::sqrt(residual));
  }
  return n;
}

float screening_error_bound(int64_t d, const RoundingNorms& a, const RoundingNorms& b) {
  // (1 + 2^-20): far above the float64 rounding of the norms and of these sums.
  const double operands = (a.rounded * b.residual + a.residual * b.rounded + a.residual * b.residual) * (1 + 0x1p-20);
  return static_cast<float>((operands + 0x1p-8 + static_cast<double>(d) * 0x1p-23 + 0x1p-10) * (1 + 0x1p-20));
}

bool cpu_has_avx512_bf16() {
#if defined(__x86_64__)
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!cpu_has_avx512f() || __get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx) == 0) return false;
  return (eax & (1u << 5)) != 0;
#else
  return false;
#endif
}

namespace {

#if defined(__x86_64__)
#if defined(__GNUC__) && !defined(__clang__)  // the same false positive as in exact_dot_avx512
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
// KthValues::offer of a value above the K-th, for K = 16 in one register: the first slot holding the K-th
// takes the value, and the new K-th is the register's minimum. The scalar loops spent a mispredicted
// branch (where the K-th sits) and a chain of 16 dependent minimums on each offer, about a third of the
// screened scan's time at 32,768 latents; with this the scan costs 0.28 of the bfloat16 GEMMs' time,
// not 0.35 (perf samples).
__attribute__((target("avx512f"))) void offer16_avx512(KthValues& list, int64_t e, float value) {
  float* v = list.values(e);
  __m512 x = _mm512_loadu_ps(v);
  const unsigned at = _mm512_cmp_ps_mask(x, _mm512_set1_ps(list.kth(e)), _CMP_EQ_OQ);
  x = _mm512_mask_mov_ps(x, static_cast<__mmask16>(at & (0u - at)), _mm512_set1_ps(value));
  _mm512_storeu_ps(v, x);
  list.set_kth(e, _mm512_reduce_min_ps(x));
}

// The entries of a row of a screened block 16 at a time (bfloat16 bits widened to float32): those whose
// value + window beats neither the row's bound nor their column's, almost all of them, are skipped
// together, and `offer` is called, in column order, only on those that beat one. The bounds only rise, so
// an entry that beats neither when its 16 are tested beats neither later. Returns the first column not
// scanned (the last tc % 16 are left to the caller). The 8-wide SSE2 test below offers all 8 entries of
// a group where any beats a bound (8.3M of 67M groups a rank at 32,768 latents); this one only those that
// do, and takes the 32,768-latent pass from 2.85-3.02 s to 2.69-2.85 s (best and median of 5 runs).
template <typename Offer>
__attribute__((target("avx512f"))) int64_t scan_avx512(const uint16_t* line, int64_t tc, float window, const float& row_bound,
                                                       const float* col_bound, Offer& offer) {
  const __m512 margin = _mm512_set1_ps(window);
  int64_t c = 0;
  for (; c + 16 <= tc; c += 16) {
    const __m512i wide = _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(line + c))), 16);
    const __m512 high = _mm512_add_ps(_mm512_castsi512_ps(wide), margin);
    unsigned beats = _mm512_cmp_ps_mask(high, _mm512_set1_ps(row_bound), _CMP_GT_OQ) |
                     _mm512_cmp_ps_mask(high, _mm512_loadu_ps(col_bound + c), _CMP_GT_OQ);
    for (; beats != 0; beats &= beats - 1) offer(c + __builtin_ctz(beats));
  }
  return c;
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#else
void offer16_avx512(KthValues& list, int64_t e, float value) { list.offer(e, value); }
template <typename Offer>
int64_t scan_avx512(const uint16_t*, int64_t, float, const float&, const float*, Offer&) { return 0; }
#endif

}  // namespace

ScreenedScan::ScreenedScan(const float* a, const float* b, int64_t d, int64_t row0, int64_t rows, int64_t cols, int64_t k,
                           float eps, size_t buffer_limit)
    : a_(a), b_(b), d_(d), row0_(row0), eps_(eps), buffer_limit_(buffer_limit), rows_(rows, k), cols_(cols, k), exact_rows_(rows, k), exact_cols_(cols, k) {}

void ScreenedScan::offer(const uint16_t* approx, int64_t tr, int64_t tc, int64_t local_row0, int64_t col0) {
  const float window = 2 * eps_;
  const float* col_bound = cols_.kths() + col0;  // updated in place as the columns' lists change
  static const bool avx512 = cpu_has_avx512f();
  const bool sixteen = avx512 && rows_.k() == 16;
  auto bound_offer = [sixteen](KthValues& list, int64_t e, float v) {  // v > list.kth(e)
    if (sixteen) {
      offer16_avx512(list, e, v);
    } else {
      list.offer(e, v);
    }
  };
  for (int64_t r = 0; r < tr; ++r) {
    const uint16_t* line = approx + r * tc;
    const int64_t e = local_row0 + r;
    float row_bound = rows_.kth(e);
    auto offer = [&](int64_t c) {
      const float v = bfloat16_bits_to_float(line[c]);
      const float high = v + window;
      if (!(high > row_bound) && !(high > col_bound[c])) return;
      row_.push_back(static_cast<uint32_t>(e));
      col_.push_back(static_cast<uint32_t>(col0 + c));
      value_.push_back(v);
      if (v > row_bound) {
        bound_offer(rows_, e, v);
        row_bound = rows_.kth(e);
      }
      if (v > col_bound[c]) bound_offer(cols_, col0 + c, v);
    };
    int64_t c = avx512 ? scan_avx512(line, tc, window, row_bound, col_bound, offer) : 0;
#if defined(__SSE2__)
    // 8 entries at a time against both bounds, as offer_block; almost all are skipped together.
    const __m128 margin = _mm_set1_ps(window);
    const __m128i zero = _mm_setzero_si128();
    for (; c + 8 <= tc; c += 8) {
      const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(line + c));
      const __m128 v0 = _mm_add_ps(_mm_castsi128_ps(_mm_unpacklo_epi16(zero, h)), margin);
      const __m128 v1 = _mm_add_ps(_mm_castsi128_ps(_mm_unpackhi_epi16(zero, h)), margin);
      if (!any_beats(v0, v1, row_bound, col_bound + c)) continue;
      for (int64_t u = c; u < c + 8; ++u) offer(u);
    }
#endif
    for (; c < tc; ++c) offer(c);
  }
  if (value_.size() > buffer_limit_) flush(cols_.kths());
}

std::vector<float> ScreenedScan::column_kths() const { return {cols_.kths(), cols_.kths() + cols_.count()}; }

namespace {

template <Dot dot>
int64_t exact_offers(const std::vector<uint32_t>& row, const std::vector<uint32_t>& col, const std::vector<float>& value,
                     const float* row_low, const float* col_low, float eps, const float* a, const float* b, int64_t d,
                     int64_t row0, TopKLists& rows, TopKLists& cols) {
  // The entries that reach a bound, then their products, then the offers in the entries' order. Apart,
  // the products can ask for the rows a few entries ahead: each reads a row of B (d floats) from a
  // block's 4,096, past the core's cache, and they took 0.22 s of the 32,768-latent pass a rank.
  std::vector<uint32_t> kept;
  for (size_t e = 0; e < row.size(); ++e) {
    const float high = value[e] + eps;  // >= the entry's exact_dot
    if (!(high < row_low[row[e]] && high < col_low[col[e]])) kept.push_back(static_cast<uint32_t>(e));
  }
  constexpr size_t kAhead = 4;
  std::vector<float> w(kept.size());
  for (size_t n = 0; n < kept.size(); ++n) {
    if (n + kAhead < kept.size()) {
      const uint32_t next = kept[n + kAhead];
      prefetch_row(a + static_cast<int64_t>(row[next]) * d, d);
      prefetch_row(b + static_cast<int64_t>(col[next]) * d, d);
    }
    w[n] = dot(a + static_cast<int64_t>(row[kept[n]]) * d, b + static_cast<int64_t>(col[kept[n]]) * d, d);
  }
  for (size_t n = 0; n < kept.size(); ++n) {
    const uint32_t i = row[kept[n]], j = col[kept[n]];
    rows.offer(i, w[n], j);  // an exact value offered to a list it cannot enter changes nothing
    cols.offer(j, w[n], row0 + i);
  }
  return static_cast<int64_t>(kept.size());
}

}  // namespace

void ScreenedScan::flush(const float* column_kth) {
  // Lower bounds of the exact K-th bests: K entries are screened at >= the K-th, so exactly >= it - eps.
  std::vector<float> row_low(static_cast<size_t>(rows_.count())), col_low(static_cast<size_t>(cols_.count()));
  for (int64_t i = 0; i < rows_.count(); ++i) row_low[i] = rows_.kth(i) - eps_;
  for (int64_t j = 0; j < cols_.count(); ++j) col_low[j] = column_kth[j] - eps_;
  static const bool avx512 = cpu_has_avx512f();
  exact_ += avx512 ? exact_offers<exact_dot_avx512>(row_, col_, value_, row_low.data(), col_low.data(), eps_, a_, b_, d_, row0_,
                                                    exact_rows_, exact_cols_)
                   : exact_offers<exact_dot>(row_, col_, value_, row_low.data(), col_low.data(), eps_, a_, b_, d_, row0_,
                                             exact_rows_, exact_cols_);
  row_.clear();
  col_.clear();
  value_.clear();
}

int64_t ScreenedScan::finish(const float* column_kth, TopKLists& rows, TopKLists& cols) {
  flush(column_kth);
  rows = std::move(exact_rows_);
  cols = std::move(exact_cols_);
  return exact_;
}

}  // namespace universae::core
