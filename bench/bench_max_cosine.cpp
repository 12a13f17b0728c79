// Max-cosine throughput against the machine's own GEMM peak and against the dense alternative,
// measured side by side in one process.
//
//   mpirun -n 2 build/bench/bench_max_cosine [n_a] [n_b] [d] [tile_rows] [tile_cols] [device [dtype]]
//
// device cuda: the pass on GPU 0 (core::DeviceTopK, run.kernels = "generic"), the peak a bare GEMM
// there, in float32 or (dtype tf32) with TF32 tensor cores; no dense comparison. On the GPU machine:
//   bench_max_cosine 131072 131072 4096 8192 16384 cuda tf32
//
// Reports: universae's tiled, rank-sharded max cosine (both directions, argmax included) in GFLOP/s
// (2·n_a·n_b·d per call); the same ranks running bare at::mm on one tile shape for the same FLOPs (the
// peak this kernel could reach); and, on rank 0 alone, the dense way (one n_a × n_b matrix, then
// max/argmax along both axes) with its memory.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <ATen/Context.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "compare/max_cosine.hpp"
#include "core/allocator.hpp"
#include "core/rng.hpp"
#include "parallel/comm.hpp"

using namespace universae;
using Clock = std::chrono::steady_clock;

namespace {
at::Tensor random_matrix(int64_t rows, int64_t cols, uint64_t seed) {
  at::Tensor m = at::empty({rows, cols}, at::kFloat);
  core::normal_rows(m.data_ptr<float>(), rows, cols, seed, core::kStreamTesting, /*unit=*/false);
  return m;
}

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Waits for the device's queued work (a one-value copy to the host; nothing on the CPU).
void wait_for(const at::Tensor& t) {
  if (t.is_cuda()) (void)t.sum().item<double>();
}
}  // namespace

int main(int argc, char** argv) {
  core::keep_freed_memory();  // as the tool does, so the pass measured is the tool's
  parallel::Environment env(argc, argv);
  const auto comm = parallel::Environment::world();
  auto arg = [&](int i, int64_t fallback) { return argc > i ? std::atoll(argv[i]) : fallback; };
  const int64_t n_a = arg(1, 8192), n_b = arg(2, 8192), d = arg(3, 512);
  const compare::TileSizes tiles{arg(4, 256), arg(5, 4096)};
  const bool cuda = argc > 6 && std::string(argv[6]) == "cuda";
  const compare::ScanDevice where{cuda ? at::Device(at::kCUDA, 0) : at::Device(at::kCPU), cuda};
  if (argc > 7 && std::string(argv[7]) == "tf32") at::globalContext().setAllowTF32CuBLAS(true);
  // One thread per rank on the CPU (the comparison's own setting); on a GPU the host only prepares the
  // inputs (unit rows in float64), with every core.
  if (!cuda) at::set_num_threads(1);
  const at::Tensor a = random_matrix(n_a, d, 1), b = random_matrix(n_b, d, 2);
  const core::Range mine = compare::a_rows_of_rank(n_a, tiles, comm);
  const at::Tensor a_local = a.narrow(0, mine.begin, mine.size()).contiguous();
  const double flops = 2.0 * static_cast<double>(n_a) * static_cast<double>(n_b) * static_cast<double>(d);

  compare::max_cosine_from(comm, compare::similarity_pass(comm, a_local, n_a, b, tiles, 1, where));  // warm-up
  comm.barrier();
  auto t0 = Clock::now();
  const auto r = compare::max_cosine_from(comm, compare::similarity_pass(comm, a_local, n_a, b, tiles, 1, where));
  comm.barrier();
  const double tiled_s = seconds_since(t0);

  // Peak: this rank's share of the FLOPs as bare GEMMs of the tile shape.
  const at::Tensor ta = a.narrow(0, 0, std::min(tiles.rows, n_a)).to(where.device);
  const at::Tensor tb = b.narrow(0, 0, std::min(tiles.cols, n_b)).to(where.device);
  const double tile_flops = 2.0 * static_cast<double>(ta.size(0) * tb.size(0) * d);
  const auto reps = static_cast<int64_t>(flops / comm.size() / tile_flops + 0.5);
  wait_for(at::mm(ta, tb.t()));
  comm.barrier();
  t0 = Clock::now();
  at::Tensor last;
  for (int64_t i = 0; i < reps; ++i) last = at::mm(ta, tb.t());
  wait_for(last);
  comm.barrier();
  const double gemm_s = seconds_since(t0);

  if (comm.is_root()) {
    std::printf("max cosine %lld x %lld, d = %lld, tiles %lld x %lld, %d rank(s), 1 thread each\n",
                static_cast<long long>(n_a), static_cast<long long>(n_b), static_cast<long long>(d),
                static_cast<long long>(tiles.rows), static_cast<long long>(tiles.cols), comm.size());
    std::printf("  universae tiled     %8.3f s  %7.1f GFLOP/s  (MCS a->b %.6f)\n", tiled_s, flops / tiled_s / 1e9, r.mcs_ab);
    std::printf("  bare GEMM, same FLOPs %6.3f s  %7.1f GFLOP/s  -> universae at %.0f%% of GEMM peak\n", gemm_s,
                flops / gemm_s / 1e9, 100.0 * gemm_s / tiled_s);
    if (cuda) return 0;
    // Dense alternative on one rank: the whole matrix at once.
    const auto t1 = Clock::now();
    const at::Tensor au = a / a.norm(2, 1, true), bu = b / b.norm(2, 1, true);
    const at::Tensor s = at::mm(au, bu.t());
    const auto row = s.max(1), col = s.max(0);
    const double dense_s = seconds_since(t1);
    std::printf("  dense, 1 rank       %8.3f s  %7.1f GFLOP/s  needs %.2f GB for the matrix (tiled: %.3f GB per rank)\n",
                dense_s, flops / dense_s / 1e9, 4.0 * static_cast<double>(n_a * n_b) / 1e9,
                4.0 * static_cast<double>(tiles.rows * std::min(tiles.cols, n_b)) / 1e9);
    const double max_diff = (std::get<0>(row) - at::from_blob(const_cast<float*>(r.max_cos_ab.data()), {n_a}, at::kFloat))
                                .abs().max().item<double>();
    std::printf("  max |dense - tiled| over max_cos_ab = %.2e\n", max_diff);
  }
  return 0;
}
