// The causal attention of extraction on the CPU: the fused kernel against ATen's per-sequence ops
// (lm/attention.hpp), side by side in one process, over head dimensions and sequence lengths. Sets the
// head dimension up to which kAuto picks the fused kernel (kFusedMaxHeadDim).
//
//   OMP_NUM_THREADS=1 build/bench/bench_attention [tokens per batch, 4096] [repeats, 5]
//
// Each line: one shape (heads × head dim, sequences of one length filling the batch), the best time of
// each kernel over the repeats, and ATen / fused (> 1: the fused kernel is faster).
#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <limits>
#include <vector>

#include "core/allocator.hpp"
#include "lm/attention.hpp"

using namespace universae;

namespace {

double best_seconds(int repeats, const std::function<void()>& f) {
  f();  // warm: first-touch pages, packing buffers
  double best = std::numeric_limits<double>::infinity();
  for (int r = 0; r < repeats; ++r) {
    const auto t = std::chrono::steady_clock::now();
    f();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count());
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  core::keep_freed_memory();  // as universae's main()
  const int64_t tokens = argc > 1 ? std::atoll(argv[1]) : 4096;
  const int repeats = argc > 2 ? std::atoi(argv[2]) : 5;
  struct Shape {
    int64_t heads, head_dim, length;
  };
  // stories260K (8 × 8, ~90-token paragraphs, 512-token windows), then the head dimensions of larger
  // models (GPT-2 and Llama: 64 and 128) at their usual sequence lengths.
  for (const Shape& s : {Shape{8, 8, 91}, Shape{8, 8, 512}, Shape{8, 16, 256}, Shape{8, 32, 256}, Shape{12, 64, 256},
                         Shape{12, 64, 1024}, Shape{32, 128, 512}}) {
    const std::vector<int64_t> lengths(static_cast<size_t>(std::max<int64_t>(1, tokens / s.length)), s.length);
    const int64_t T = static_cast<int64_t>(lengths.size()) * s.length;
    at::manual_seed(0);
    const at::Tensor q = at::randn({T, s.heads, s.head_dim}), k = at::randn({T, s.heads, s.head_dim}),
                     v = at::randn({T, s.heads, s.head_dim});
    const auto run = [&](lm::AttentionKernel kernel) {
      return best_seconds(repeats, [&] { lm::causal_attention(q, k, v, lengths, 0, kernel); });
    };
    const double aten = run(lm::AttentionKernel::kAten), fused = run(lm::AttentionKernel::kFused);
    std::printf("{\"heads\": %ld, \"head_dim\": %ld, \"length\": %ld, \"tokens\": %ld, \"aten_s\": %.5f, \"fused_s\": %.5f, "
                "\"aten_over_fused\": %.2f, \"auto\": \"%s\"}\n",
                static_cast<long>(s.heads), static_cast<long>(s.head_dim), static_cast<long>(s.length), static_cast<long>(T), aten,
                fused, aten / fused, s.head_dim <= lm::kFusedMaxHeadDim ? "fused" : "aten");
  }
}
