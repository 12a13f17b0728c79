// Counter-based random numbers: every value is a pure function of (seed, stream, counter), so
// data and initialisations are identical however the work is sharded, and stable across LibTorch
// versions and devices. SplitMix64 finalisers as the mixing function (Steele et al. 2014).
#pragma once

#include <cmath>
#include <cstdint>
#include <string_view>

namespace universae::core {

// FNV-1a, 64 bits: a stable hash of a name or a text (seeds derived from pair names, fingerprints).
// Not cryptographic: it tells settings apart, it does not defend against forgery.
inline uint64_t fnv1a64(std::string_view text, uint64_t h = 1469598103934665603ull) {
  for (unsigned char c : text) h = (h ^ c) * 1099511628211ull;
  return h;
}

inline uint64_t mix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// A small sequential generator whose starting state is a hash of (seed, stream, index).
class CounterRng {
 public:
  CounterRng(uint64_t seed, uint64_t stream, uint64_t index)
      : state_(mix64(mix64(mix64(seed) ^ stream) ^ index)) {}

  uint64_t next_u64() {
    state_ += 0x9E3779B97F4A7C15ull;
    return mix64(state_);
  }
  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }
  // Standard normal (Box-Muller; one value per call, the pair's twin is discarded for simplicity).
  double normal() {
    double u1 = uniform();
    const double u2 = uniform();
    if (u1 < 1e-300) u1 = 1e-300;
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }

 private:
  uint64_t state_;
};

// Fills out[rows, cols] (row-major) with standard normals, row i drawn from (seed, stream,
// first_row + i), so any block of rows can be generated alone; with `unit`, each row is scaled to
// unit L2 norm.
inline void normal_rows(float* out, int64_t rows, int64_t cols, uint64_t seed, uint64_t stream, bool unit,
                        int64_t first_row = 0) {
  for (int64_t i = 0; i < rows; ++i) {
    CounterRng rng(seed, stream, static_cast<uint64_t>(first_row + i));
    float* row = out + i * cols;
    double norm2 = 0;
    for (int64_t j = 0; j < cols; ++j) {
      const double v = rng.normal();
      row[j] = static_cast<float>(v);
      norm2 += v * v;
    }
    if (unit) {
      const double inv = 1.0 / std::sqrt(norm2);
      for (int64_t j = 0; j < cols; ++j) row[j] = static_cast<float>(row[j] * inv);
    }
  }
}

// Stream ids keep unrelated uses of one seed independent.
enum RngStream : uint64_t {
  kStreamDictionary = 1,
  kStreamTokens = 2,
  kStreamSaeInit = 3,
  kStreamTesting = 4,
  kStreamShuffle = 5,
};

}  // namespace universae::core
