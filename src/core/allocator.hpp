#pragma once
// How every universae process configures glibc's allocator, the command-line tool and the C++ benchmarks
// alike, so that a benchmark measures the step the tool runs.
#include <malloc.h>

namespace universae::core {

// Tensors of a few MB to a few hundred MB are allocated and freed every batch and every training step.
// glibc would return each to the system and fault its pages in again next time: 5-10 % of an
// extraction, and on a virtualised host 17,000 page faults (0.12-0.15 s) of a 0.75 s training step at
// 4,096 × 16,384 (bench/RESULTS.md). Keeping freed memory in the heap for reuse costs nothing a batch
// job needs back. Call once, first thing in main().
inline void keep_freed_memory() {
  mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's largest: bigger blocks are always mapped afresh
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  mallopt(M_TOP_PAD, 64 << 20);
}

}  // namespace universae::core
