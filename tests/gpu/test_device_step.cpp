// The device-generic paths on a GPU (label gpu; every test skips where LibTorch sees no CUDA device,
// so this binary builds and passes on the CPU machines too). Each runs the same work on the GPU and
// through the CPU reference and compares, as tests/unit/test_kernels.cpp does on the CPU:
//   - one training step of every architecture: run.kernels = "generic" on cuda against the CPU's
//     fast kernels (float32: within 1e-4 of the scale, cuBLAS and the float atomics of index_add_
//     sum in other orders; counts equal); with train.dtype = "bfloat16" within its tolerance;
//   - the similarity pass's top-K lists (core::DeviceTopK on cuda) against the CPU scan;
//   - SVCCA, RSA, CKA and mutual kNN prepared and permutation-scored on cuda against the CPU loops
//     (kNN bit for bit; the others to 1e-9: cuSOLVER and cuBLAS in float64, other summation orders);
//   - the parameters and Adam state stay on the GPU through the step.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/repsim.hpp"
#include "core/sae_model.hpp"
#include "core/topk.hpp"
#include "core/topk_scan.hpp"
#include "parallel/device.hpp"
#include "../unit/kernel_spec.hpp"

namespace universae::core {
namespace {

#define SKIP_WITHOUT_CUDA() \
  if (parallel::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device (LibTorch sees none)"

constexpr int64_t kSeeds = 2, kD = 64, kN = 512, kB = 256;

SaeSpec spec_of(Architecture a, StepRule rule, Kernels kernels) {
  return kernel_spec(a, rule, kernels, kD, kN, /*k=*/16, /*k_aux=*/64);
}

struct Step {
  StepStats stats;
  SaeStack grads, params;
};

// One step on `device` from the same seeded start, the gradients copied before the optimiser.
Step one_step(const SaeSpec& spec, at::Device device) {
  at::manual_seed(3);
  const at::Tensor x = (at::randn({kB, kD}) * 2.0).to(device);
  const at::Tensor dead = at::rand({kSeeds, kN}).lt(0.2).to(device);
  SaeStack p = init_stack(spec, {1, 2}, std::vector<double>(kD, 0.05)).to(device);
  p.b_enc.add_((at::randn(p.b_enc.sizes()) * 0.2).to(device));
  AdamState adam = init_adam(p);
  SaeStack g = p.zeros_like();
  Step r{StepStats(kSeeds, kN, device), {}, {}};
  const LatentPeers one;
  normalize_decoder_at_step_start(spec, p);
  forward_backward(spec, p, x, has_top_k(spec.architecture) ? dead : at::Tensor(), kB, one, g, r.stats);
  r.grads = g.to(at::kCPU);
  if (device.is_cuda()) {
    EXPECT_TRUE(g.W_enc.is_cuda() && r.stats.fires.is_cuda());
  }
  optimizer_step(spec, p, g, adam, 1e-3, AdamConfig{}, 1.0, one);
  if (device.is_cuda()) {
    EXPECT_TRUE(p.W_dec.is_cuda() && adam.v.W_dec.is_cuda());
  }
  r.params = p.to(at::kCPU);
  return r;
}

double scaled_error(const at::Tensor& want, const at::Tensor& got) {
  const double scale = std::max(1.0, want.abs().max().item<double>());
  return (want.to(at::kDouble) - got.to(at::kCPU, at::kDouble)).abs().max().item<double>() / scale;
}

TEST(DeviceStep, EveryArchitectureOnCudaMatchesTheCpuKernels) {
  SKIP_WITHOUT_CUDA();
  const at::Device cuda(at::kCUDA, 0);
  for (auto [a, rule] : std::vector<std::pair<Architecture, StepRule>>{
           {Architecture::kTopK, StepRule::kUniversae}, {Architecture::kTopK, StepRule::kSparsify},
           {Architecture::kBatchTopK, StepRule::kUniversae}, {Architecture::kRelu, StepRule::kUniversae},
           {Architecture::kJumpRelu, StepRule::kUniversae}, {Architecture::kGated, StepRule::kUniversae}}) {
    const std::string label = name_of(a) + (rule == StepRule::kSparsify ? " (sparsify)" : "");
    const Step cpu = one_step(spec_of(a, rule, Kernels::kFast), at::kCPU);
    const Step gpu = one_step(spec_of(a, rule, Kernels::kGeneric), cuda);
    EXPECT_TRUE(at::equal(cpu.stats.active, gpu.stats.active.cpu())) << label << ": active codes";
    EXPECT_LE(scaled_error(cpu.stats.sse, gpu.stats.sse), 1e-4) << label << ": sse";
    EXPECT_LE(scaled_error(cpu.stats.aux_sse, gpu.stats.aux_sse), 1e-4) << label << ": aux_sse";
    const auto names = cpu.grads.names();
    const auto gc = cpu.grads.tensors(), gg = gpu.grads.tensors();
    for (size_t i = 0; i < gc.size(); ++i) EXPECT_LE(scaled_error(*gc[i], *gg[i]), 1e-4) << label << ": gradient of " << names[i];
  }
}

TEST(DeviceStep, BFloat16OnCudaAgreesWithFloat32) {
  SKIP_WITHOUT_CUDA();
  const at::Device cuda(at::kCUDA, 0);
  for (Architecture a : {Architecture::kTopK, Architecture::kGated}) {
    SaeSpec bf16 = spec_of(a, StepRule::kUniversae, Kernels::kGeneric);
    bf16.matmul = MatmulPrecision::kBFloat16;
    const Step want = one_step(spec_of(a, StepRule::kUniversae, Kernels::kFast), at::kCPU);
    const Step got = one_step(bf16, cuda);
    const double sse = want.stats.sse.sum().item<double>(), sse_bf16 = got.stats.sse.sum().cpu().item<double>();
    EXPECT_NEAR(sse_bf16, sse, 0.01 * sse) << name_of(a);
    const auto gw = want.grads.tensors(), gg = got.grads.tensors();
    for (size_t i = 0; i < gw.size(); ++i)
      EXPECT_LE(((*gw[i] - *gg[i]).norm() / gw[i]->norm()).item<double>(), has_top_k(a) ? 0.1 : 0.02) << name_of(a);
  }
}

TEST(DeviceStep, TopKListsOnCudaMatchTheCpuScan) {
  SKIP_WITHOUT_CUDA();
  const at::Device cuda(at::kCUDA, 0);
  at::manual_seed(9);
  at::Tensor a = at::randn({300, 32}), b = at::randn({410, 32});
  b[100].copy_(b[7]);
  a = a / a.norm(2, 1, true), b = b / b.norm(2, 1, true);
  const int64_t K = 4, tr = 128, tc = 96;
  TopKLists rows(300, K), cols(410, K);
  DeviceTopK drows(300, K, cuda), dcols(410, K, cuda);
  for (int64_t r0 = 0; r0 < 300; r0 += tr)
    for (int64_t c0 = 0; c0 < 410; c0 += tc) {
      const int64_t nr = std::min(tr, 300 - r0), nc = std::min(tc, 410 - c0);
      // The same tile values on both sides (computed once, on the CPU), so the lists must be equal.
      const at::Tensor s = at::mm(a.narrow(0, r0, nr), b.narrow(0, c0, nc).t()).contiguous();
      offer_block(s.data_ptr<float>(), nr, nc, r0, r0, c0, rows, cols);
      DeviceTopK::offer_block(s.to(cuda), r0, r0, c0, drows, dcols);
    }
  const TopKLists got_rows = drows.to_host(), got_cols = dcols.to_host();
  EXPECT_EQ(rows.all_values(), got_rows.all_values());
  EXPECT_EQ(rows.all_indices(), got_rows.all_indices());
  EXPECT_EQ(cols.all_values(), got_cols.all_values());
  EXPECT_EQ(cols.all_indices(), got_cols.all_indices());
}

TEST(DeviceStep, RepresentationalSimilarityOnCudaMatchesTheCpuLoops) {
  SKIP_WITHOUT_CUDA();
  const at::Device cuda(at::kCUDA, 0);
  at::manual_seed(10);
  const int64_t n = 300;
  const at::Tensor x = at::randn({n, 24}, at::kDouble);
  const at::Tensor y = at::mm(x, at::randn({24, 16}, at::kDouble)) + 0.5 * at::randn({n, 16}, at::kDouble);
  std::vector<std::vector<int64_t>> perms;
  std::vector<int64_t> flat;
  for (uint64_t i = 0; i < 6; ++i) {
    perms.push_back(permutation(n, 31, i));
    flat.insert(flat.end(), perms.back().begin(), perms.back().end());
  }
  const at::Tensor p = at::tensor(flat, at::kLong).view({6, n}).to(cuda);
  auto check = [&](const auto& on_cpu, const auto& on_cuda, const char* name, double tolerance) {
    const at::Tensor s = on_cuda.scores(p).cpu();
    for (size_t i = 0; i < perms.size(); ++i) {
      const double want = on_cpu.score_with(perms[i]), got = s[static_cast<int64_t>(i)].template item<double>();
      EXPECT_NEAR(got, want, tolerance * std::fabs(want)) << name << " permutation " << i;
    }
  };
  const at::Tensor xc = x.to(cuda), yc = y.to(cuda);
  check(Svcca(x, y, {0.99, 0, false}), Svcca(xc, yc, {0.99, 0, false}), "svcca", 1e-9);
  check(Rsa(x, y), Rsa(xc, yc), "rsa", 1e-9);
  check(Cka(x, y), Cka(xc, yc), "cka", 1e-9);
  check(MutualKnn(x, y, 8), MutualKnn(xc, yc, 8), "mutual_knn", 0.0);
}

}  // namespace
}  // namespace universae::core
