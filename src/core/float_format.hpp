// The floating-point formats activations and weights are stored in (extract.dtype, the activation
// store's `dtype` attribute): one enum and one spelling for config/ and io/.
#pragma once

#include <cstdint>
#include <cstring>

#include "core/choice.hpp"

namespace universae::core {

enum class FloatFormat { kFloat32, kFloat16, kBFloat16 };

template <>
inline const Choices& choices<FloatFormat>() {
  static const Choices c{"a float format", {"float32", "float16", "bfloat16"}};
  return c;
}

inline int64_t bytes_of(FloatFormat f) { return f == FloatFormat::kFloat32 ? 4 : 2; }

// float32 → bfloat16 (round to nearest even; NaN stays NaN).
inline uint16_t to_bfloat16(float f) {
  uint32_t bits = 0;
  std::memcpy(&bits, &f, sizeof bits);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

// bfloat16 is the high half of a float32.
inline float from_bfloat16(uint16_t b) {
  const uint32_t bits = static_cast<uint32_t>(b) << 16;
  float f = 0;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

}  // namespace universae::core
