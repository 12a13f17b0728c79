// Software prefetch of whole rows, for loops that read rows in an order the hardware cannot predict.
#pragma once

#include <cstdint>

namespace universae::core {

// Asks for the n values at p to be brought into the cache (one request per 64-byte line).
template <typename T>
inline void prefetch_row(const T* p, int64_t n) {
  constexpr int64_t kPerLine = 64 / static_cast<int64_t>(sizeof(T));
  for (int64_t k = 0; k < n; k += kPerLine) __builtin_prefetch(p + k);
}

}  // namespace universae::core
