// Benchmark: one topk SAE training step (core/sae_model, the trainer's step) against the GEMM peak
// measured in the same process with the same library, threads and precision. Prints one JSON line.
//   bench_train_step [d n k batch steps [device [dtype [seeds]]]]   default 512 16384 32 4096 5 cpu float32 1
// seeds: how many SAEs are stacked in the step (train.seeds of one seed group), each with its own encoder
// GEMM in one batched call; the FLOPs count every seed, tokens/s the batch's tokens, the peak is one
// seed's plain GEMM.
// device: cpu (the fast CPU kernels, the exact fixed-point gradient round trip) or cuda (the generic
// kernels on GPU 0, float gradients: train.exact_sum = false); dtype: float32, bfloat16 or tf32
// (train.dtype; the peak is measured in the same precision). On the GPU machine:
//   bench_train_step 4096 131072 64 4096 5 cuda bfloat16
// Under mpirun -n P (cpu) the latents are split over the P ranks (latent sharding with the distributed
// top-k) and each rank reports its peak RSS: the memory check of a 131,072 × 4,096 SAE is
//   mpirun -n 2 bench_train_step 4096 131072 32 4096 1
// The W_enc and W_dec gradients are deferred to the optimiser where the trainer would defer them (a
// rank that runs the whole batch: core::worth_deferring_grads) and dense otherwise;
// UNIVERSAE_BENCH_GRADS=dense or =deferred overrides that, for the two side by side.
// FLOPs counted are the step's arithmetic as implemented: encoder GEMM 2·B·d·n, the sparse decoder
// and its gradients 8·B·k·d, the b_dec term 2·n·d. bench/bench_train.py runs this beside a PyTorch
// implementation of the same step.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <sys/resource.h>

#include <ATen/Context.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <string>
#include <vector>

#include "core/allocator.hpp"
#include "core/exact_sum.hpp"
#include "core/sharding.hpp"
#include "core/sae_model.hpp"
#include "parallel/comm.hpp"
#include "train/shard_peers.hpp"

using namespace universae;
using Clock = std::chrono::steady_clock;

namespace {
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// This process's system (kernel) CPU time so far, in seconds.
double system_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_stime.tv_sec) + 1e-6 * static_cast<double>(usage.ru_stime.tv_usec);
}

// Waits for the device's queued work (a one-value copy to the host; nothing on the CPU).
void wait_for(const at::Tensor& t) {
  if (t.is_cuda()) (void)t.sum().item<double>();
}

}  // namespace

int main(int argc, char** argv) {
  core::keep_freed_memory();  // as the tool does, so the step measured is the tool's
  parallel::Environment env(argc, argv);
  const int64_t d = argc > 1 ? std::atoll(argv[1]) : 512, n = argc > 2 ? std::atoll(argv[2]) : 16384;
  const int64_t k = argc > 3 ? std::atoll(argv[3]) : 32, B = argc > 4 ? std::atoll(argv[4]) : 4096;
  const int steps = argc > 5 ? std::atoi(argv[5]) : 5;

  const std::string device_name = argc > 6 ? argv[6] : "cpu", dtype = argc > 7 ? argv[7] : "float32";
  const int64_t seeds = argc > 8 ? std::atoll(argv[8]) : 1;
  const at::Device device = device_name == "cuda" ? at::Device(at::kCUDA, 0) : at::Device(at::kCPU);
  const auto matmul = dtype == "bfloat16" ? core::MatmulPrecision::kBFloat16
                      : dtype == "tf32"   ? core::MatmulPrecision::kTF32
                                          : core::MatmulPrecision::kFloat32;
  if (matmul == core::MatmulPrecision::kTF32) at::globalContext().setAllowTF32CuBLAS(true);

  const parallel::Comm world = parallel::Environment::world();
  const core::Range latents = core::shard_range(n, world.rank(), world.size());
  // GEMM peak: the encoder's shape (this rank's latents) in the step's precision, best of several;
  // skipped when sharded. Into one output kept across the runs, as the step's encoder writes into its
  // kept buffer: a fresh 256 MiB output is page-faulted in on every call, which on a virtualised host
  // took 0.83 s against 0.39 s (2 threads, 2026-12-02) and measured the kernel's page faults, not the GEMM.
  const auto gemm_type = matmul == core::MatmulPrecision::kBFloat16 ? at::kBFloat16 : at::kFloat;
  const at::Tensor a = at::randn({B, d}).to(device, gemm_type);
  const at::Tensor w = world.size() == 1 ? at::randn({n, d}).to(device, gemm_type) : at::Tensor();
  double gemm_best = 1e30;
  at::Tensor c = world.size() == 1 ? at::empty({B, n}, a.options()) : at::Tensor();
  for (int r = 0; r < (world.size() == 1 ? steps + 1 : 0); ++r) {
    wait_for(a);
    const auto t = Clock::now();
    at::mm_out(c, a, w.t());
    wait_for(c);
    gemm_best = std::min(gemm_best, seconds_since(t));
  }
  const double peak = 2.0 * static_cast<double>(B * d * n) / gemm_best;  // meaningful on one rank
  c = at::Tensor();

  core::SaeSpec spec;
  spec.architecture = core::Architecture::kTopK;
  spec.d = d, spec.n_latents = n, spec.latents = latents, spec.k = k, spec.k_aux = std::min<int64_t>(512, d / 2);
  spec.aux_alpha = 1.0 / 32.0, spec.apply_b_dec_to_input = true;  // the config's defaults (train.auxk_alpha, sae.*)
  spec.kernels = device.is_cpu() ? core::Kernels::kFast : core::Kernels::kGeneric;
  spec.matmul = matmul;
  std::vector<int64_t> seed_list(static_cast<size_t>(seeds));
  std::iota(seed_list.begin(), seed_list.end(), int64_t{0});
  core::SaeStack p = core::init_stack(spec, seed_list, std::vector<double>(static_cast<size_t>(d), 0.0)).to(device);
  core::AdamState adam = core::init_adam(p);
  const char* grads_env = std::getenv("UNIVERSAE_BENCH_GRADS");
  const std::string grads_mode = grads_env != nullptr ? grads_env : "";
  const bool defer = grads_mode == "deferred" ? core::can_defer_grads(spec, device)
                     : grads_mode == "dense"  ? false
                                              : core::worth_deferring_grads(spec, seeds, device);
  core::SaeStack g = defer ? core::deferred_grads(p, /*fixed_point=*/true) : p.zeros_like();
  core::StepStats stats(seeds, latents.size(), device);
  const train::ShardPeers peers(world, device);  // the job's ranks as the latent shards of one SAE
  const at::Tensor dead;  // no latent can be dead yet: the trainer passes no mask and AuxK is skipped
  at::manual_seed(1);
  const at::Tensor x = at::randn({B, d}).to(device);  // the same batch on every rank
  double best = 1e30, forward_backward_s = 0, system_s = 0;
  for (int r = 0; r < steps + 1; ++r) {  // the first is a warm-up
    if (r == 1) system_s = -system_seconds();
    wait_for(x);
    const auto t = Clock::now();
    core::zero_grads(g);
    stats.clear();
    core::forward_backward(spec, p, x, dead, B, peers, g, stats);
    wait_for(g.b_enc);
    const double t_fb = seconds_since(t);
    // The trainer's exact gradient sum (one rank, one micro-batch: the fixed-point round trip); on the
    // GPU the float sum (train.exact_sum = false), which on one rank is nothing. Deferred rows are
    // rounded inside the optimiser step.
    if (device.is_cpu())
      for (at::Tensor* gt : g.tensors()) core::round_trip_fixed(gt->data_ptr<float>(), gt->numel());
    core::optimizer_step(spec, p, g, adam, 1e-4, {}, 1.0, peers);
    wait_for(p.W_enc);
    if (r > 0 && seconds_since(t) < best) best = seconds_since(t), forward_backward_s = t_fb;
  }
  system_s += system_seconds();  // kernel time of the timed steps: page faults of fresh temporaries show here
  const double flops = static_cast<double>(seeds) *
                      (2.0 * static_cast<double>(B * d * n) + 8.0 * static_cast<double>(B * k * d) + 2.0 * static_cast<double>(n * d));
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  const std::vector<double> rss = world.allgatherv(std::vector<double>{static_cast<double>(usage.ru_maxrss) / 1048576.0});
  const std::vector<double> sys = world.allgatherv(std::vector<double>{system_s / steps});
  if (!world.is_root()) return 0;
  std::string rss_list, sys_list;
  for (double r : rss) rss_list += (rss_list.empty() ? "" : ", ") + std::to_string(r);
  for (double t : sys) sys_list += (sys_list.empty() ? "" : ", ") + std::to_string(t);
  std::printf("{\"device\": \"%s\", \"dtype\": \"%s\", \"grads\": \"%s\", \"d\": %ld, \"n\": %ld, \"k\": %ld, \"batch\": %ld, \"seeds\": %ld, \"ranks\": %d, "
              "\"threads\": %d, \"step_s\": %.4f, \"forward_backward_s\": %.4f, \"tokens_per_s\": %.1f, \"flops_per_s\": %.4g, "
              "\"sgemm_peak_flops_per_s\": %.4g, \"fraction_of_peak\": %.3f, \"peak_rss_gib_per_rank\": [%s], "
              "\"system_s_per_step_per_rank\": [%s]}\n",
              device.str().c_str(), dtype.c_str(), defer ? "deferred" : "dense", static_cast<long>(d), static_cast<long>(n), static_cast<long>(k),
              static_cast<long>(B), static_cast<long>(seeds), world.size(),
              at::get_num_threads(), best, forward_backward_s, static_cast<double>(B) / best, flops / best,
              world.size() == 1 ? peak : 0.0, world.size() == 1 ? flops / best / peak : 0.0, rss_list.c_str(), sys_list.c_str());
  return 0;
}
