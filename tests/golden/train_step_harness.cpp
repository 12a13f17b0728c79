// Runs training steps of core/sae_model on inputs written by tests/golden/test_train_step.py and
// writes the loss terms and raw gradients of the first step and the parameters after every step,
// for comparison with the PyTorch autograd reference (scripts/sae_train_ref.py).
// With a group /sparsify in IN.h5 (tests/golden/test_sparsify_preset.py), the steps are those of
// train.preset = "sparsify" (StepRule::kSparsify, train/schedule.hpp's lr schedule and dead rule, the
// loss divided by each batch's total variance), compared with scripts/sparsify_ref.py; per step it
// writes /steps/{fvu,auxk,num_dead,lr}.
// With `generic`, the step is the ATen-only twin of the CPU kernels (run.kernels = "generic",
// core/sae_generic.cpp), so the same references check both implementations.
//   train_step_harness IN.h5 OUT.h5 [generic]
#include <ATen/ATen.h>

#include <cstdio>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "core/error.hpp"
#include "core/geometric_median.hpp"
#include "core/sae_model.hpp"
#include "io/h5.hpp"
#include "parallel/comm.hpp"
#include "train/schedule.hpp"

using namespace universae;

namespace {

at::Tensor read_tensor(const io::File& f, const std::string& name) {
  const std::vector<int64_t> shape = f.shape(name);
  at::Tensor t = at::empty(shape, at::kFloat);
  f.read_rows(name, {0, shape[0]}, t.data_ptr<float>());
  return t;
}

void write_tensor(io::File& f, const std::string& name, const at::Tensor& t_in, bool as_double = false) {
  if (as_double) {
    const at::Tensor t = t_in.to(at::kDouble).contiguous();
    f.create_dataset(name, io::DType::kFloat64, t.sizes().vec());
    f.write_rows(name, {0, t.size(0)}, t.data_ptr<double>());
  } else {
    const at::Tensor t = t_in.to(at::kFloat).contiguous();
    f.create_dataset(name, io::DType::kFloat32, t.sizes().vec());
    f.write_rows(name, {0, t.size(0)}, t.data_ptr<float>());
  }
}

// train.preset = "sparsify" steps as train/train_stage.cpp runs them on one rank with one micro-batch.
void run_sparsify(const io::File& in, io::File& out, core::SaeSpec spec, core::SaeStack& p, const at::Tensor& x) {
  spec.rule = core::StepRule::kSparsify;
  config::TrainConfig tc{};
  tc.preset = config::TrainPreset::kSparsify;
  tc.warmup_steps = in.read_attr_int("/sparsify", "warmup_steps");
  tc.dead_tokens = in.read_attr_int("/sparsify", "dead_tokens");
  const int64_t total_steps = in.read_attr_int("/sparsify", "total_steps");
  const double base_lr = in.read_attr_double("/sparsify", "lr");
  const int64_t S = p.W_enc.size(0), n = p.W_enc.size(1), steps = x.size(0), B = x.size(1);
  const core::AdamConfig adam{0.9, 0.999, 1e-8};
  core::AdamState state = core::init_adam(p);
  const core::LatentPeers one_shard;
  std::vector<int64_t> since_fired(static_cast<size_t>(S * n), 0);
  at::Tensor fvu = at::zeros({steps, S}, at::kDouble), auxk = at::zeros({steps, S}, at::kDouble);
  at::Tensor num_dead = at::zeros({steps, S}, at::kDouble), lrs = at::zeros({steps}, at::kDouble);
  for (int64_t step = 0; step < steps; ++step) {
    const at::Tensor xb = x[step].contiguous();
    const double variance = (xb.to(at::kDouble) - xb.to(at::kDouble).mean(0)).pow(2).sum().item<double>();
    at::Tensor dead = at::empty({S, n}, at::kBool);
    for (int64_t i = 0; i < S * n; ++i) dead.data_ptr<bool>()[i] = train::is_dead(tc, since_fired[i]);
    core::normalize_decoder_at_step_start(spec, p);
    core::SaeStack g = p.zeros_like();
    core::StepStats stats(S, n, at::kCPU);
    core::forward_backward(spec, p, xb, dead, variance, one_shard, g, stats);
    const double lr = train::learning_rate(tc, base_lr, step, total_steps);
    core::optimizer_step(spec, p, g, state, lr, adam, 0.0, one_shard);
    const int64_t* fires = stats.fires.data_ptr<int64_t>();
    for (int64_t i = 0; i < S * n; ++i) since_fired[i] = fires[i] > 0 ? 0 : since_fired[i] + B;
    for (int64_t s = 0; s < S; ++s) {
      fvu[step][s] = stats.sse[s].item<double>() / variance, auxk[step][s] = stats.aux_sse[s].item<double>() / variance;
      num_dead[step][s] = dead[s].sum().item<double>();
    }
    lrs[step] = lr;
  }
  out.create_group("/steps");
  write_tensor(out, "/steps/fvu", fvu, true);
  write_tensor(out, "/steps/auxk", auxk, true);
  write_tensor(out, "/steps/num_dead", num_dead, true);
  write_tensor(out, "/steps/lr", lrs, true);
}

// /sparsify/init_seeds present: the starting weights are init_stack's for those seeds (sparsify's
// seeded nn.Linear), b_dec the mean of the first batch.
void init_sparsify(const io::File& in, core::SaeSpec spec, const at::Tensor& x, core::SaeStack& p) {
  spec.rule = core::StepRule::kSparsify;
  spec.n_latents = in.read_attr_int("/sparsify", "n_latents");
  spec.latents = {0, spec.n_latents};
  const at::Tensor seeds_f = read_tensor(in, "/sparsify/init_seeds");
  std::vector<int64_t> seeds;
  for (int64_t i = 0; i < seeds_f.numel(); ++i) seeds.push_back(static_cast<int64_t>(seeds_f[i].item<float>()));
  const at::Tensor first = x[0].contiguous();
  p = core::init_stack(spec, seeds, core::mean_point(first.data_ptr<float>(), first.size(0), first.size(1)));
}

}  // namespace

int main(int argc, char** argv) {
  parallel::Environment env(argc, argv);
  const parallel::Comm world = parallel::Environment::world();
  if (argc != 3 && !(argc == 4 && std::string(argv[3]) == "generic")) {
    std::fprintf(stderr, "usage: train_step_harness IN.h5 OUT.h5 [generic]\n");
    return 2;
  }
  io::File in = io::File::open_read(world, argv[1]);
  core::SaeSpec spec;
  spec.kernels = argc == 4 ? core::Kernels::kGeneric : core::Kernels::kFast;
  spec.architecture = *core::choice_from<core::Architecture>(in.read_attr_string("/", "architecture"));
  const at::Tensor x = read_tensor(in, "/x");  // (steps, B, d)
  core::SaeStack p;
  const bool sparsify = in.exists("/sparsify");
  if (sparsify && in.exists("/sparsify/init_seeds")) {
    spec.d = x.size(2);
    init_sparsify(in, spec, x, p);
  } else {
    p.W_enc = read_tensor(in, "/W_enc");
    p.b_enc = read_tensor(in, "/b_enc");
    p.W_dec = read_tensor(in, "/W_dec");
    p.b_dec = read_tensor(in, "/b_dec");
  }
  if (in.exists("/log_threshold")) p.log_threshold = read_tensor(in, "/log_threshold");
  if (in.exists("/r_mag")) p.r_mag = read_tensor(in, "/r_mag"), p.b_mag = read_tensor(in, "/b_mag");
  const int64_t S = p.W_enc.size(0), n = p.W_enc.size(1), d = p.W_enc.size(2);
  spec.d = d;
  spec.n_latents = n;
  spec.latents = {0, n};
  spec.k = in.read_attr_int("/", "k");
  spec.k_aux = in.read_attr_int("/", "k_aux");
  spec.aux_alpha = in.read_attr_double("/", "aux_alpha");
  spec.sparsity = in.read_attr_double("/", "sparsity");
  spec.bandwidth = in.read_attr_double("/", "bandwidth");
  spec.apply_b_dec_to_input = in.read_attr_int("/", "apply_b_dec") != 0;
  if (sparsify) {
    io::File out = io::File::create(world, argv[2]);
    auto write_params = [&](const std::string& group) {
      out.create_group(group);
      const auto names = p.names();
      const auto ts = p.tensors();
      for (size_t i = 0; i < ts.size(); ++i) write_tensor(out, group + "/" + names[i], *ts[i]);
    };
    write_params("/init");
    run_sparsify(in, out, spec, p, x);
    write_params("/param");
    return 0;
  }
  at::Tensor dead;
  if (in.exists("/dead")) dead = read_tensor(in, "/dead").gt(0.5);
  const double lr = in.read_attr_double("/", "lr"), clip = in.read_attr_double("/", "grad_clip");
  const core::AdamConfig adam{in.read_attr_double("/", "beta1"), in.read_attr_double("/", "beta2"),
                              in.read_attr_double("/", "eps")};
  in.close();

  io::File out = io::File::create(world, argv[2]);
  out.create_group("/loss");
  out.create_group("/grad");
  core::AdamState state = core::init_adam(p);
  const core::LatentPeers one_shard;
  for (int64_t step = 0; step < x.size(0); ++step) {
    core::SaeStack g = p.zeros_like();
    core::StepStats stats(S, n, at::kCPU);
    const at::Tensor xb = x[step].contiguous();
    core::forward_backward(spec, p, xb, dead, xb.size(0), one_shard, g, stats);
    if (step == 0) {
      write_tensor(out, "/loss/sse", stats.sse, true);
      write_tensor(out, "/loss/aux_sse", stats.aux_sse, true);
      write_tensor(out, "/loss/sparsity", stats.sparsity, true);
      const auto names = g.names();
      const auto ts = g.tensors();
      for (size_t i = 0; i < ts.size(); ++i) write_tensor(out, "/grad/" + names[i], *ts[i]);
    }
    core::optimizer_step(spec, p, g, state, lr, adam, clip, one_shard);
  }
  out.create_group("/param");
  const auto names = p.names();
  const auto ts = p.tensors();
  for (size_t i = 0; i < ts.size(); ++i) write_tensor(out, "/param/" + names[i], *ts[i]);
  return 0;
}
