// Exact, order-independent summation of float32 values, so that a data-parallel gradient is
// bit-identical for 1, 2 or 3 ranks (DESIGN.md §3: results must not depend on the rank count).
//
// Each float is turned into a 128-bit fixed-point integer with 80 fraction bits. For
// 2^-57 <= |g| < 2^40 this conversion is exact (a float's lowest mantissa bit sits at or above
// 2^-80), so integer sums are the exact real sum, whatever the grouping; smaller values are
// truncated towards zero, identically on every rank. The total is rounded to float once at the end.
// Same idea as the fixed-point accumulators LAMMPS uses for deterministic GPU forces.
#pragma once

#include <cmath>
#include <cstdint>

namespace universae::core {

__extension__ typedef __int128 wide_int;

constexpr int kFixedFractionBits = 80;  // the 0x1p80 scales below
constexpr double kFixedMaxMagnitude = 1099511627776.0;  // 2^40: keeps sums of 2^40 terms in range

// Adds values[0..n) to acc[0..n) in fixed point. Returns false (leaving acc partly updated) when a
// value is not finite or too large, which for a gradient means training has diverged.
inline bool accumulate_fixed(const float* values, int64_t n, wide_int* acc) {
  for (int64_t i = 0; i < n; ++i) {
    const double v = values[i];
    if (!(std::fabs(v) < kFixedMaxMagnitude)) return false;
    acc[i] += static_cast<wide_int>(v * 0x1p80);  // exact: a power-of-two scale (kFixedFractionBits)
  }
  return true;
}

inline float fixed_to_float(wide_int q) {
  return static_cast<float>(static_cast<double>(q) * 0x1p-80);
}

// values[i] = fixed_to_float(fixed(values[i])) without the integers: the identity for
// 2^-57 <= |v| < 2^40 (exact there, see above), the truncation for smaller values. What a sum over
// one rank and one micro-batch gives, at the cost of a compare per value. False when a value is
// not finite or too large.
inline bool round_trip_fixed(float* values, int64_t n) {
  // One branch-free scan that vectorises (a loop with an early return and a rare store does not: it
  // ran one float at a time over every gradient), then, only if there are any, the rare values below
  // 2^-57 one by one.
  bool in_range = true, any_small = false;
  for (int64_t i = 0; i < n; ++i) {
    const float a = std::fabs(values[i]);
    in_range &= a < static_cast<float>(kFixedMaxMagnitude);  // false for NaN; 2^40 is exact in float
    any_small |= (a < 0x1p-57f) & ((a > 0.0f) | std::signbit(values[i]));  // +0 stays; −0 becomes +0
  }
  if (!in_range) return false;
  if (any_small)
    for (int64_t i = 0; i < n; ++i)
      if (std::fabs(values[i]) < 0x1p-57f) values[i] = fixed_to_float(static_cast<wide_int>(static_cast<double>(values[i]) * 0x1p80));
  return true;
}

}  // namespace universae::core
