// The two implementations of the training step (core::Kernels, run.kernels): the CPU's hand-written
// kernels and their ATen-only twin (core/sae_generic.cpp) must compute the same step, and the twin
// must run on a device whose tensors cannot be read from the host. Both are also checked against
// PyTorch autograd in tests/golden/test_train_step.py and test_sparsify_preset.py (the independent
// reference); here they are checked against each other on inputs those tests do not cover: several
// seeds, dead latents with k_aux above the dead count, active clipping, and every architecture.
#include <ATen/ATen.h>
#include <ATen/ExpandUtils.h>
#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <gtest/gtest.h>
#include <torch/library.h>

#include <limits>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/exact_sum.hpp"
#include "core/sae_model.hpp"
#include "kernel_spec.hpp"

namespace universae::core {
namespace {

constexpr int64_t kSeeds = 2, kD = 24, kN = 96, kB = 40;

SaeSpec spec_of(Architecture a, StepRule rule, bool b_dec_in, Kernels kernels) {
  return kernel_spec(a, rule, kernels, kD, kN, /*k=*/6, /*k_aux=*/48, b_dec_in);
}

// Seeded starting weights with spread-out encoder biases, so that codes and thresholds vary by latent.
SaeStack start(const SaeSpec& spec) {
  at::manual_seed(5);
  SaeStack p = init_stack(spec, {3, 9}, std::vector<double>(kD, 0.1));
  p.b_enc.add_(at::randn(p.b_enc.sizes()) * 0.2);
  if (p.r_mag.defined()) p.r_mag.add_(at::randn(p.r_mag.sizes()) * 0.1), p.b_mag.add_(at::randn(p.b_mag.sizes()) * 0.1);
  return p;
}

struct StepResult {
  StepStats stats;
  SaeStack grads, params;
  AdamState adam;
};

// One optimiser step with clipping active, the gradients kept from before the optimiser changes them.
// (One step: after two, Adam's m / (√v + ε) turns the last-bit differences of gradients near ε into
// differences of ~lr·1e-3 in a few weights; OptimizerGenericEqualsFast checks Adam over several steps
// on shared gradients instead.)
StepResult one_step(const SaeSpec& spec) {
  at::manual_seed(11);
  const at::Tensor x = at::randn({kB, kD}) * 2.0;
  const at::Tensor dead = at::rand({kSeeds, kN}).lt(0.3);  // 29 dead of 96 on average: below k_aux = 48
  StepResult r{StepStats(kSeeds, kN, at::kCPU), {}, start(spec), {}};
  r.adam = init_adam(r.params);
  const LatentPeers one_shard;
  SaeStack g = r.params.zeros_like();
  normalize_decoder_at_step_start(spec, r.params);
  forward_backward(spec, r.params, x, has_top_k(spec.architecture) ? dead : at::Tensor(), static_cast<int64_t>(kB), one_shard, g,
                   r.stats);
  r.grads = g.zeros_like();  // a copy: the optimiser projects and clips `g` in place
  const auto from = g.tensors();
  const auto to = r.grads.tensors();
  for (size_t i = 0; i < from.size(); ++i) to[i]->copy_(*from[i]);
  optimizer_step(spec, r.params, g, r.adam, 1e-2, AdamConfig{}, /*grad_clip=*/0.05, one_shard);
  return r;
}

// Weights after one Adam step: Δ = lr·g/(|g| + ε) moves by up to lr·|δg|/(|g| + ε) for a gradient
// difference δg, which for an entry near ε (a sum that cancels) is far more than 1e-5 of the weights'
// scale while the gradients agree to 1e-5 of theirs. Allowed: 1e-5 of the scale plus 4× that bound.
void expect_step_close(const at::Tensor& fast, const at::Tensor& generic, const at::Tensor& g_fast, const at::Tensor& g_generic,
                       double lr, const std::string& what) {
  const double scale = std::max(1.0, fast.abs().max().item<double>());
  const at::Tensor sensitivity = 4.0 * lr * (g_fast - g_generic).abs().to(at::kDouble) / (g_fast.abs().to(at::kDouble) + 1e-8);
  const at::Tensor excess = (fast.to(at::kDouble) - generic.to(at::kDouble)).abs() - sensitivity;
  const double worst = excess.max().item<double>();
  EXPECT_LE(worst, 1e-5 * scale) << what << ": |fast − generic| exceeds Adam's sensitivity by " << worst;
}

void expect_close(const at::Tensor& fast, const at::Tensor& generic, const std::string& what) {
  ASSERT_EQ(fast.sizes(), generic.sizes()) << what;
  const double scale = std::max(1.0, fast.abs().max().item<double>());
  const double err = (fast.to(at::kDouble) - generic.to(at::kDouble)).abs().max().item<double>();
  EXPECT_LE(err, 1e-5 * scale) << what << ": max |fast − generic| " << err << " (scale " << scale << ")";
}

void expect_same_step(Architecture a, StepRule rule, bool b_dec_in) {
  const std::string label = name_of(a) + (rule == StepRule::kSparsify ? " (sparsify)" : "") + (b_dec_in ? "" : " (no b_dec in)");
  const StepResult fast = one_step(spec_of(a, rule, b_dec_in, Kernels::kFast));
  const StepResult generic = one_step(spec_of(a, rule, b_dec_in, Kernels::kGeneric));
  // Counts are exact in both: equal, not close.
  EXPECT_TRUE(at::equal(fast.stats.fires, generic.stats.fires)) << label << ": fires";
  EXPECT_TRUE(at::equal(fast.stats.active, generic.stats.active)) << label << ": active";
  EXPECT_GT(fast.stats.active.sum().item<int64_t>(), 0) << label;
  expect_close(fast.stats.sse, generic.stats.sse, label + ": sse");
  expect_close(fast.stats.aux_sse, generic.stats.aux_sse, label + ": aux_sse");
  expect_close(fast.stats.sparsity, generic.stats.sparsity, label + ": sparsity");
  if (a == Architecture::kBatchTopK) expect_close(fast.stats.min_kept, generic.stats.min_kept, label + ": min_kept");
  if (has_top_k(a)) {
    EXPECT_GT(fast.stats.aux_sse.min().item<double>(), 0) << label << ": AuxK must be exercised";
  }
  const auto names = fast.params.names();
  const auto grads_f = fast.grads.tensors(), grads_g = generic.grads.tensors();
  const auto params_f = fast.params.tensors(), params_g = generic.params.tensors();
  const auto m_f = fast.adam.m.tensors(), m_g = generic.adam.m.tensors();
  const auto v_f = fast.adam.v.tensors(), v_g = generic.adam.v.tensors();
  ASSERT_EQ(params_f.size(), params_g.size());
  for (size_t i = 0; i < params_f.size(); ++i) {
    expect_close(*grads_f[i], *grads_g[i], label + ": first step's gradient of " + names[i]);
    expect_step_close(*params_f[i], *params_g[i], *grads_f[i], *grads_g[i], 1e-2, label + ": " + names[i] + " after the step");
    expect_close(*m_f[i], *m_g[i], label + ": Adam m of " + names[i]);
    expect_close(*v_f[i], *v_g[i], label + ": Adam v of " + names[i]);
  }
}

TEST(Kernels, TopKGenericEqualsFast) { expect_same_step(Architecture::kTopK, StepRule::kUniversae, true); }
TEST(Kernels, TopKSparsifyGenericEqualsFast) { expect_same_step(Architecture::kTopK, StepRule::kSparsify, true); }
TEST(Kernels, TopKNoBDecInputGenericEqualsFast) { expect_same_step(Architecture::kTopK, StepRule::kUniversae, false); }
TEST(Kernels, BatchTopKGenericEqualsFast) { expect_same_step(Architecture::kBatchTopK, StepRule::kUniversae, true); }
TEST(Kernels, ReluGenericEqualsFast) { expect_same_step(Architecture::kRelu, StepRule::kUniversae, true); }
TEST(Kernels, JumpReluGenericEqualsFast) { expect_same_step(Architecture::kJumpRelu, StepRule::kUniversae, true); }
TEST(Kernels, GatedGenericEqualsFast) { expect_same_step(Architecture::kGated, StepRule::kUniversae, true); }

// The optimiser alone over several steps, both kernels given the same gradients each step: the
// one-pass CPU Adam and torch's sequence of in-place operators (with projection, clipping, renormalisation).
TEST(Kernels, OptimizerGenericEqualsFast) {
  for (StepRule rule : {StepRule::kUniversae, StepRule::kSparsify}) {
    const SaeSpec fast_spec = spec_of(Architecture::kJumpRelu, rule, true, Kernels::kFast);
    SaeSpec generic_spec = fast_spec;
    generic_spec.kernels = Kernels::kGeneric;
    SaeStack pf = start(fast_spec), pg = start(fast_spec);
    AdamState af = init_adam(pf), ag = init_adam(pg);
    const LatentPeers one_shard;
    at::manual_seed(17);
    for (int step = 0; step < 4; ++step) {
      SaeStack gf = pf.zeros_like(), gg = pg.zeros_like();
      const auto tf = gf.tensors(), tg = gg.tensors();
      for (size_t i = 0; i < tf.size(); ++i) tf[i]->copy_(at::randn(tf[i]->sizes()) * (step + 1)), tg[i]->copy_(*tf[i]);
      optimizer_step(fast_spec, pf, gf, af, 1e-2, AdamConfig{}, 0.5, one_shard);
      optimizer_step(generic_spec, pg, gg, ag, 1e-2, AdamConfig{}, 0.5, one_shard);
    }
    const auto names = pf.names();
    const auto f = pf.tensors(), g = pg.tensors(), mf = af.m.tensors(), mg = ag.m.tensors(), vf = af.v.tensors(),
               vg = ag.v.tensors();
    for (size_t i = 0; i < f.size(); ++i) {
      expect_close(*f[i], *g[i], names[i] + " after 4 steps");
      expect_close(*mf[i], *mg[i], "Adam m of " + names[i]);
      expect_close(*vf[i], *vg[i], "Adam v of " + names[i]);
    }
    EXPECT_EQ(af.step, ag.step);
  }
}

// The decoder-gradient projection g −= (g·w) w runs on the CPU row by row in place (no W_dec-sized
// temporaries, the row kernel the deferred step shares); it must agree with the whole-tensor
// expression to float rounding, here with 4,096-wide rows, and leave each row orthogonal to its decoder row.
TEST(Kernels, ProjectionRowByRowAgreesWithTheWholeTensorForm) {
  SaeSpec spec = spec_of(Architecture::kTopK, StepRule::kUniversae, true, Kernels::kFast);
  spec.d = 4096;
  at::manual_seed(5);
  SaeStack params, grads;
  params.W_dec = at::randn({2, 200, spec.d});
  params.W_dec /= params.W_dec.norm(2, {2}, true);
  grads.W_dec = at::randn({2, 200, spec.d});
  const at::Tensor g64 = grads.W_dec.to(at::kDouble), w64 = params.W_dec.to(at::kDouble);
  const at::Tensor expected = g64 - (g64 * w64).sum(2, true) * w64;
  remove_parallel_decoder_grad(spec, params, grads);
  EXPECT_LT((grads.W_dec.to(at::kDouble) - expected).abs().max().item<double>(), 1e-5);
  EXPECT_LT((grads.W_dec * params.W_dec).sum(2).abs().max().item<float>(), 1e-4f);  // orthogonal to each row
}

// The optimiser as separate passes over whole tensors, through the public functions: what
// optimizer_step fuses into two passes over rows for the fast top-k kernels.
void separate_optimizer_step(const SaeSpec& spec, SaeStack& p, SaeStack& g, AdamState& adam, double lr, double clip) {
  const LatentPeers one_shard;
  remove_parallel_decoder_grad(spec, p, g);
  if (spec.rule != StepRule::kSparsify) clip_gradients(g, grad_sq_norms(g, true), clip);
  adam_step(p, g, adam, lr, AdamConfig{}, spec.kernels);
  if (spec.rule != StepRule::kSparsify) normalize_decoder(spec, p);
}

// Deferred W_enc and W_dec gradients (core::deferred_grads: rows made inside the optimiser step) and
// dense ones both go through the fused optimiser step; both must give the weights and Adam moments of
// the separate passes bit for bit over several steps: with and without the fixed-point rounding
// (train.exact_sum), clipping active and not, AuxK on (dead latents), for topk, batchtopk and sparsify's
// rule. The dense step is the one a data-parallel rank takes, so this is what keeps a one-rank run
// equal to a data-parallel one (tests/e2e/test_train_layouts.py checks the runs).
TEST(Kernels, DeferredGradientRowsGiveTheDenseStepBitForBit) {
  struct Case {
    Architecture a;
    StepRule rule;
    bool fixed_point;
    double clip;
  };
  const Case cases[] = {{Architecture::kTopK, StepRule::kUniversae, true, 0.05},
                        {Architecture::kTopK, StepRule::kUniversae, false, 0.05},
                        {Architecture::kTopK, StepRule::kUniversae, true, 1e6},
                        {Architecture::kBatchTopK, StepRule::kUniversae, true, 0.05},
                        {Architecture::kTopK, StepRule::kSparsify, true, 0.0}};
  for (const Case& c : cases) {
    const SaeSpec spec = spec_of(c.a, c.rule, true, Kernels::kFast);
    const std::string label = name_of(c.a) + (c.rule == StepRule::kSparsify ? " (sparsify)" : "") +
                              (c.fixed_point ? " fixed point" : " float") + " clip " + std::to_string(c.clip);
    ASSERT_TRUE(can_defer_grads(spec, at::kCPU));
    SaeStack pd = start(spec), pf = start(spec), ps = start(spec);
    AdamState ad = init_adam(pd), af = init_adam(pf), asep = init_adam(ps);
    SaeStack gd = pd.zeros_like(), gf = deferred_grads(pf, c.fixed_point), gs = ps.zeros_like();
    EXPECT_FALSE(gf.W_enc.defined());
    EXPECT_FALSE(gf.W_dec.defined());
    StepStats sd(kSeeds, kN, at::kCPU), sf(kSeeds, kN, at::kCPU), ss(kSeeds, kN, at::kCPU);
    const LatentPeers one_shard;
    at::manual_seed(23);
    for (int step = 0; step < 3; ++step) {
      const at::Tensor x = at::randn({kB, kD}) * 2.0;
      const at::Tensor dead = at::rand({kSeeds, kN}).lt(0.3);
      zero_grads(gd), zero_grads(gf), zero_grads(gs);
      for (SaeStack* p : {&pd, &pf, &ps}) normalize_decoder_at_step_start(spec, *p);
      forward_backward(spec, pd, x, dead, static_cast<int64_t>(kB), one_shard, gd, sd);
      forward_backward(spec, pf, x, dead, static_cast<int64_t>(kB), one_shard, gf, sf);
      forward_backward(spec, ps, x, dead, static_cast<int64_t>(kB), one_shard, gs, ss);
      if (c.fixed_point) {  // the trainer's exact sum on one rank: the round trip of each dense tensor
        for (SaeStack* g : {&gd, &gf, &gs}) {
          for (at::Tensor* t : g->tensors()) ASSERT_TRUE(round_trip_fixed(t->data_ptr<float>(), t->numel()));
        }
      }
      optimizer_step(spec, pd, gd, ad, 1e-2, AdamConfig{}, c.clip, one_shard);
      optimizer_step(spec, pf, gf, af, 1e-2, AdamConfig{}, c.clip, one_shard);
      separate_optimizer_step(spec, ps, gs, asep, 1e-2, c.clip);
    }
    EXPECT_GT(sf.aux_sse.min().item<double>(), 0) << label << ": AuxK must be exercised";
    const auto names = pd.names();
    const auto d = pd.tensors(), f = pf.tensors(), md = ad.m.tensors(), mf = af.m.tensors(), vd = ad.v.tensors(),
               vf = af.v.tensors();
    ASSERT_EQ(d.size(), f.size());
    const auto sp = ps.tensors(), ms = asep.m.tensors(), vs = asep.v.tensors();
    for (size_t i = 0; i < d.size(); ++i) {
      EXPECT_TRUE(at::equal(*d[i], *f[i])) << label << ": " << names[i];
      EXPECT_TRUE(at::equal(*md[i], *mf[i])) << label << ": Adam m of " << names[i];
      EXPECT_TRUE(at::equal(*vd[i], *vf[i])) << label << ": Adam v of " << names[i];
      EXPECT_TRUE(at::equal(*d[i], *sp[i])) << label << ": fused vs separate passes, " << names[i];
      EXPECT_TRUE(at::equal(*md[i], *ms[i])) << label << ": fused vs separate passes, Adam m of " << names[i];
      EXPECT_TRUE(at::equal(*vd[i], *vs[i])) << label << ": fused vs separate passes, Adam v of " << names[i];
    }
    EXPECT_FALSE(at::equal(pd.W_enc, start(spec).W_enc)) << label << ": the steps changed the weights";
  }
}

// The fast CPU kernels split their loops over threads (at::parallel_for, built with OpenMP): tokens for
// the scan and the decoder, latents for the gradient rows and the optimiser, blocks for Adam. Each output
// is made by one thread in a fixed order, so 1, 2 and 3 threads must give the same weights bit for bit,
// dense and deferred gradients, topk, batchtopk and sparsify's rule. Sizes above the kernels' grains
// (64 tokens, 16 latents, 4,096 Adam values), so that the loops do split.
TEST(Kernels, FastStepIsTheSameOnOneTwoAndThreeThreads) {
  constexpr int64_t d = 32, n = 256, B = 320;
  struct Case {
    Architecture a;
    StepRule rule;
    bool defer;
  };
  const Case cases[] = {{Architecture::kTopK, StepRule::kUniversae, false},
                        {Architecture::kTopK, StepRule::kUniversae, true},
                        {Architecture::kBatchTopK, StepRule::kUniversae, false},
                        {Architecture::kTopK, StepRule::kSparsify, false}};
  const int threads_before = at::get_num_threads();
  for (const Case& c : cases) {
    const SaeSpec spec = kernel_spec(c.a, c.rule, Kernels::kFast, d, n, /*k=*/8, /*k_aux=*/64, true);
    const std::string label = name_of(c.a) + (c.rule == StepRule::kSparsify ? " (sparsify)" : "") + (c.defer ? " deferred" : "");
    std::vector<SaeStack> results;
    for (int threads : {1, 2, 3}) {
      at::set_num_threads(threads);
      at::manual_seed(5);
      SaeStack p = init_stack(spec, {3, 9}, std::vector<double>(d, 0.1));
      p.b_enc.add_(at::randn(p.b_enc.sizes()) * 0.2);
      AdamState adam = init_adam(p);
      SaeStack g = c.defer ? deferred_grads(p, /*fixed_point=*/true) : p.zeros_like();
      StepStats stats(kSeeds, n, at::kCPU);
      const LatentPeers one_shard;
      for (int step = 0; step < 3; ++step) {
        const at::Tensor x = at::randn({B, d}) * 2.0;
        const at::Tensor dead = at::rand({kSeeds, n}).lt(0.2);
        zero_grads(g);
        stats.clear();
        normalize_decoder_at_step_start(spec, p);
        forward_backward(spec, p, x, dead, B, one_shard, g, stats);
        for (at::Tensor* t : g.tensors()) ASSERT_TRUE(round_trip_fixed(t->data_ptr<float>(), t->numel()));
        optimizer_step(spec, p, g, adam, 1e-2, AdamConfig{}, 0.05, one_shard);
      }
      EXPECT_GT(stats.aux_sse.min().item<double>(), 0) << label << ": AuxK must be exercised";
      results.push_back(p);
    }
    const auto names = results[0].names();
    for (size_t r = 1; r < results.size(); ++r) {
      const auto one = results[0].tensors(), more = results[r].tensors();
      for (size_t i = 0; i < one.size(); ++i)
        EXPECT_TRUE(at::equal(*one[i], *more[i])) << label << ": " << names[i] << " on " << r + 1 << " threads";
    }
  }
  at::set_num_threads(threads_before);
}

// The fast topk step selects codes by scanning the pre-activations (no at::topk, no ReLU pass): one
// NaN weight, which at::topk would rank first and the step would then fail on, must stop the step too.
TEST(Kernels, FastTopKStopsOnANaNPreActivation) {
  const SaeSpec spec = spec_of(Architecture::kTopK, StepRule::kUniversae, true, Kernels::kFast);
  SaeStack p = start(spec);
  SaeStack g = p.zeros_like();
  StepStats stats(kSeeds, kN, at::kCPU);
  const at::Tensor x = at::randn({kB, kD});
  forward_backward(spec, p, x, at::Tensor(), static_cast<int64_t>(kB), LatentPeers(), g, stats);  // finite: runs
  p.W_enc[1][37][5] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(forward_backward(spec, p, x, at::Tensor(), static_cast<int64_t>(kB), LatentPeers(), g, stats), InternalError);
}

// Deferred rows are only made by the fast top-k kernels on the host.
TEST(Kernels, DeferredGradientRowsNeedTheFastTopKKernels) {
  EXPECT_FALSE(can_defer_grads(spec_of(Architecture::kTopK, StepRule::kUniversae, true, Kernels::kGeneric), at::kCPU));
  EXPECT_FALSE(can_defer_grads(spec_of(Architecture::kRelu, StepRule::kUniversae, true, Kernels::kFast), at::kCPU));
  const SaeSpec generic = spec_of(Architecture::kTopK, StepRule::kUniversae, true, Kernels::kGeneric);
  SaeStack p = start(generic);
  SaeStack g = deferred_grads(p, true);
  StepStats stats(kSeeds, kN, at::kCPU);
  EXPECT_ANY_THROW(forward_backward(generic, p, at::randn({kB, kD}), at::Tensor(), static_cast<int64_t>(kB), LatentPeers(), g, stats));
}

// train.dtype = "bfloat16" on the CPU: the same code path with the large products' operands rounded to
// bfloat16 (8 significant bits). Against the float32 step: the loss within 1 %, and the gradients
// within 2 % in norm (dense architectures) or 10 % (top-k: a few codes at the k-th boundary change
// hands, and a latent that gains or loses a code gains or loses a whole row; measured 5 % here), and
// not equal (bfloat16 did run). Both kernels agree on the bfloat16 step to 1e-5.
TEST(Kernels, BFloat16StepAgreesWithFloat32) {
  for (Architecture a : {Architecture::kTopK, Architecture::kGated}) {
    std::vector<StepResult> bf16_steps;
    for (Kernels kernels : {Kernels::kFast, Kernels::kGeneric}) {
      SaeSpec f32 = spec_of(a, StepRule::kUniversae, true, kernels), bf16 = f32;
      bf16.matmul = MatmulPrecision::kBFloat16;
      const StepResult want = one_step(f32);
      bf16_steps.push_back(one_step(bf16));
      const StepResult& got = bf16_steps.back();
      const std::string label = name_of(a) + (kernels == Kernels::kFast ? " fast" : " generic");
      const double sse = want.stats.sse.sum().item<double>(), sse_bf16 = got.stats.sse.sum().item<double>();
      EXPECT_NEAR(sse_bf16, sse, 0.01 * sse) << label;
      EXPECT_NE(sse_bf16, sse) << label << ": the bfloat16 products must differ from float32";
      const auto gw = want.grads.tensors(), gg = got.grads.tensors();
      const auto names = want.grads.names();
      for (size_t i = 0; i < gw.size(); ++i) {
        const double rel = ((*gw[i] - *gg[i]).norm() / gw[i]->norm()).item<double>();
        EXPECT_LE(rel, has_top_k(a) ? 0.1 : 0.02) << label << ": gradient of " << names[i] << " off by " << rel << " in norm";
      }
    }
    const auto fast = bf16_steps[0].grads.tensors(), generic = bf16_steps[1].grads.tensors();
    for (size_t i = 0; i < fast.size(); ++i) expect_close(*fast[i], *generic[i], name_of(a) + " bfloat16 fast vs generic");
  }
}

// Latent shards whose exchanges stay on the device (as an NCCL communicator's would): two identical
// shards, so a sum doubles and a gather repeats. Only the tensor forms may be called.
class DevicePeers final : public LatentPeers {
 public:
  int size() const override { return 2; }
  int rank() const override { return 0; }
  void sum(float* /*values*/, int64_t /*n*/) const override { ADD_FAILURE() << "a host sum in the generic step"; }
  void sum(double* /*values*/, int64_t /*n*/) const override { ADD_FAILURE() << "a host sum in the generic step"; }
  std::vector<float> allgather(const std::vector<float>& local) const override {
    ADD_FAILURE() << "a host gather in the generic step";
    return local;
  }
  void sum(at::Tensor& values) const override { values.mul_(2); }
  at::Tensor allgather(const at::Tensor& local) const override { return at::stack({local, local}); }
};

// LibTorch 1.13's C++ library has meta kernels for part of ATen only (Python registers the rest, in
// torch/_meta_registrations.py). The operators of the generic step that lack one get a shape-only
// kernel here, registered only where missing (a newer LibTorch has them all).
at::Tensor meta_index_select(const at::Tensor& self, int64_t dim, const at::Tensor& index) {
  std::vector<int64_t> shape = self.sizes().vec();
  shape[static_cast<size_t>(at::maybe_wrap_dim(dim, self.dim()))] = index.numel();
  return at::empty(shape, self.options());
}
at::Tensor& meta_logical_and_out(const at::Tensor& self, const at::Tensor& other, at::Tensor& out) {
  out.resize_(at::infer_size(self.sizes(), other.sizes()));
  return out;
}
at::Tensor& meta_logical_not_out(const at::Tensor& self, at::Tensor& out) {
  out.resize_(self.sizes());
  return out;
}
at::Tensor meta_relu(const at::Tensor& self) { return at::empty_like(self); }
at::Tensor meta_where(const at::Tensor& condition, const at::Tensor& self, const at::Tensor& other) {
  const auto shape = at::infer_size(at::infer_size(condition.sizes(), self.sizes()), other.sizes());
  return at::empty(shape, self.options().dtype(at::result_type(self, other)));
}

void register_missing_meta_kernels() {
  static torch::Library* library = [] {
    auto* lib = new torch::Library(torch::Library::IMPL, "aten", c10::DispatchKey::Meta, __FILE__, __LINE__);
    auto missing = [](const char* name, const char* overload) {
      const auto op = c10::Dispatcher::singleton().findSchema({name, overload});
      return op && !op->hasKernelForDispatchKey(c10::DispatchKey::Meta);
    };
    if (missing("aten::index_select", "")) lib->impl("index_select", &meta_index_select);
    if (missing("aten::logical_and", "out")) lib->impl("logical_and.out", &meta_logical_and_out);
    if (missing("aten::logical_not", "out")) lib->impl("logical_not.out", &meta_logical_not_out);
    if (missing("aten::relu", "")) lib->impl("relu", &meta_relu);
    if (missing("aten::where", "self")) lib->impl("where.self", &meta_where);
    return lib;
  }();
  (void)library;
}

// A whole step on LibTorch's meta device: tensors with shapes and no storage, so any read of a value
// on the host (.item(), data_ptr(), a loop over elements) or any operator whose output shape depends
// on the values (nonzero, masked_select) throws. What passes here sends nothing back to the host and
// never waits for a GPU inside the step.
void step_on_meta(Architecture a, StepRule rule, const LatentPeers& peers) {
  register_missing_meta_kernels();
  const SaeSpec spec = spec_of(a, rule, true, Kernels::kGeneric);
  SaeStack p = start(spec).to(at::kMeta);
  AdamState adam = init_adam(p);
  SaeStack g = p.zeros_like();
  StepStats stats(kSeeds, kN, at::kMeta);
  const at::Tensor x = at::empty({kB, kD}, at::TensorOptions(at::kMeta).dtype(at::kFloat));
  const at::Tensor dead = has_top_k(a) ? at::empty({kSeeds, kN}, at::TensorOptions(at::kMeta).dtype(at::kBool)) : at::Tensor();
  normalize_decoder_at_step_start(spec, p);
  forward_backward(spec, p, x, dead, static_cast<int64_t>(kB), peers, g, stats);
  optimizer_step(spec, p, g, adam, 1e-3, AdamConfig{}, 1.0, peers);
  EXPECT_TRUE(p.W_dec.is_meta() && stats.fires.is_meta() && adam.v.W_enc.is_meta());
}

TEST(Kernels, GenericStepRunsOnTheMetaDevice) {
  const LatentPeers one_shard;
  const DevicePeers two_shards;
  for (Architecture a : {Architecture::kTopK, Architecture::kBatchTopK, Architecture::kRelu, Architecture::kJumpRelu,
                         Architecture::kGated}) {
    SCOPED_TRACE(name_of(a));
    EXPECT_NO_THROW(step_on_meta(a, StepRule::kUniversae, one_shard));
    EXPECT_NO_THROW(step_on_meta(a, StepRule::kUniversae, two_shards));
  }
  EXPECT_NO_THROW(step_on_meta(Architecture::kTopK, StepRule::kSparsify, two_shards));
}

// The control: the CPU kernels read values on the host, and the meta device catches it.
TEST(Kernels, FastStepFailsOnTheMetaDevice) {
  const SaeSpec spec = spec_of(Architecture::kTopK, StepRule::kUniversae, true, Kernels::kFast);
  SaeStack p = start(spec).to(at::kMeta);
  SaeStack g = p.zeros_like();
  StepStats stats(kSeeds, kN, at::kMeta);
  const at::Tensor x = at::empty({kB, kD}, at::TensorOptions(at::kMeta).dtype(at::kFloat));
  const LatentPeers one_shard;
  EXPECT_ANY_THROW(forward_backward(spec, p, x, at::Tensor(), static_cast<int64_t>(kB), one_shard, g, stats));
}

}  // namespace
}  // namespace universae::core
