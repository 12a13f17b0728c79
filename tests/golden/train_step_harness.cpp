// Runs training steps of core/sae_model on inputs written by tests/golden/test_train_step.py and
// writes the loss terms and raw gradients of the first step and the parameters after every step,
// for comparison with the PyTorch autograd reference (scripts/sae_train_ref.py).
//   train_step_harness IN.h5 OUT.h5
#include <ATen/ATen.h>

#include <cstdio>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/sae_model.hpp"
#include "io/h5.hpp"
#include "parallel/comm.hpp"

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

}  // namespace

int main(int argc, char** argv) {
  parallel::Environment env(argc, argv);
  const parallel::Comm world = parallel::Environment::world();
  if (argc != 3) {
    std::fprintf(stderr, "usage: train_step_harness IN.h5 OUT.h5\n");
    return 2;
  }
  io::File in = io::File::open_read(world, argv[1]);
  core::SaeSpec spec;
  spec.architecture = *core::choice_from<core::Architecture>(in.read_attr_string("/", "architecture"));
  const at::Tensor x = read_tensor(in, "/x");  // (steps, B, d)
  core::SaeStack p;
  p.W_enc = read_tensor(in, "/W_enc");
  p.b_enc = read_tensor(in, "/b_enc");
  p.W_dec = read_tensor(in, "/W_dec");
  p.b_dec = read_tensor(in, "/b_dec");
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
    core::StepStats stats(S, n);
    const at::Tensor xb = x[step].contiguous();
    core::forward_backward(spec, p, xb, dead, xb.size(0), one_shard, g, stats);
    if (step == 0) {
      auto vec = [](const std::vector<double>& v) { return at::tensor(v, at::kDouble); };
      write_tensor(out, "/loss/sse", vec(stats.sse), true);
      write_tensor(out, "/loss/aux_sse", vec(stats.aux_sse), true);
      write_tensor(out, "/loss/sparsity", vec(stats.sparsity), true);
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
