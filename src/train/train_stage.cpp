// The training stage: seed ensembles of any architecture (core/sae_model), trained as stacked
// tensors, laid out over seed groups × data-parallel ranks × latent shards, with checkpoints and
// resume. See train_stage.hpp for the determinism contract.
#include "train/train_stage.hpp"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <numeric>
#include <optional>
#include <sstream>
#include <string>

#include "compare/ground_truth.hpp"
#include "compare/max_cosine.hpp"
#include "core/data_sums.hpp"
#include "core/error.hpp"
#include "core/exact_sum.hpp"
#include "core/geometric_median.hpp"
#include "core/sae_encode.hpp"
#include "core/sae_model.hpp"
#include "core/sharding.hpp"
#include "data/synthetic.hpp"
#include "data/token_stream.hpp"
#include "io/fingerprint.hpp"
#include "io/h5.hpp"
#include "io/output.hpp"
#include "io/output_lock.hpp"
#include "io/sae_file.hpp"
#include "lm/model.hpp"
#include "lm/sae_evaluation.hpp"
#include "parallel/device.hpp"
#include "parallel/log.hpp"
#include "parallel/tensor_comm.hpp"
#include "parallel/stop_signals.hpp"
#include "train/checkpoint.hpp"
#include "train/layout.hpp"
#include "train/metrics.hpp"
#include "train/schedule.hpp"
#include "train/shard_peers.hpp"

namespace universae::train {
namespace {

// λ when train.sparsity_coefficient is not set: a starting point on inputs with E‖x‖² = d (sweep it).
double default_sparsity(core::Architecture a) { return core::has_top_k(a) ? 0.0 : 1.0; }

static_assert(static_cast<int>(config::MatmulDtype::kBFloat16) == static_cast<int>(core::MatmulPrecision::kBFloat16) &&
              static_cast<int>(config::MatmulDtype::kTF32) == static_cast<int>(core::MatmulPrecision::kTF32));

core::SaeSpec make_spec(const config::Config& cfg, int64_t d, core::Range latents) {
  core::SaeSpec spec;
  spec.architecture = cfg.sae.architecture;
  spec.d = d;
  spec.n_latents = cfg.sae.n_latents;
  spec.latents = latents;
  spec.k = cfg.sae.k;
  const bool sparsify = cfg.train.preset == config::TrainPreset::kSparsify;
  spec.rule = sparsify ? core::StepRule::kSparsify : core::StepRule::kUniversae;
  // sparsify's k_aux is d // 2, with no cap at 512.
  spec.k_aux = cfg.train.k_aux > 0 ? cfg.train.k_aux : std::max<int64_t>(1, sparsify ? d / 2 : std::min<int64_t>(512, d / 2));
  spec.k_aux = std::min(spec.k_aux, cfg.sae.n_latents);
  spec.aux_alpha = cfg.train.auxk_alpha;
  spec.sparsity = cfg.train.sparsity_coefficient >= 0 ? cfg.train.sparsity_coefficient : default_sparsity(spec.architecture);
  spec.bandwidth = cfg.train.jumprelu_bandwidth;
  spec.jumprelu_init_threshold = cfg.train.jumprelu_init_threshold;
  spec.apply_b_dec_to_input = cfg.sae.apply_b_dec_to_input;
  spec.matmul = static_cast<core::MatmulPrecision>(cfg.train.dtype);  // the same three, in the same order
  return spec;
}

// Sums the step's gradients over the data-parallel ranks in exact fixed point (core/exact_sum.hpp),
// in blocks so that no full-size integer copy is needed when a rank runs one micro-batch per step.
// `acc` (the fixed-point sum of several micro-batches) or, when empty, `grads` itself is reduced.
void reduce_gradients(const parallel::Comm& dp, core::SaeStack& grads, std::vector<core::wide_int>& acc) {
  constexpr int64_t kBlock = int64_t{1} << 18;
  std::vector<core::wide_int> buffer(static_cast<size_t>(kBlock));
  int64_t offset = 0;
  for (at::Tensor* t : grads.tensors()) {
    float* g = t->data_ptr<float>();
    const int64_t n = t->numel();
    if (dp.size() == 1 && acc.empty()) {  // one micro-batch on one rank: the sum is the round trip
      if (!core::round_trip_fixed(g, n))
        throw InternalError("a gradient is not finite or exceeds 2^40: training diverged (lower train.lr)");
      continue;
    }
    for (int64_t b = 0; b < n; b += kBlock) {
      const int64_t len = std::min(kBlock, n - b);
      if (!acc.empty()) {
        std::copy(acc.begin() + offset + b, acc.begin() + offset + b + len, buffer.begin());
      } else {
        std::fill(buffer.begin(), buffer.begin() + len, core::wide_int{0});
        if (!core::accumulate_fixed(g + b, len, buffer.data()))
          throw InternalError("a gradient is not finite or exceeds 2^40: training diverged (lower train.lr)");
      }
      dp.allreduce_sum(buffer.data(), len);
      for (int64_t i = 0; i < len; ++i) g[b + i] = core::fixed_to_float(buffer[static_cast<size_t>(i)]);
    }
    offset += n;
  }
  std::fill(acc.begin(), acc.end(), core::wide_int{0});
}

void accumulate_micro_batch(core::SaeStack& grads, std::vector<core::wide_int>& acc) {
  int64_t offset = 0;
  for (at::Tensor* t : grads.tensors()) {
    const at::Tensor host = t->to(at::kCPU).contiguous();  // deliberate off the CPU: the fixed point is host code
    if (!core::accumulate_fixed(host.data_ptr<float>(), host.numel(), acc.data() + offset))
      throw InternalError("a gradient is not finite or exceeds 2^40: training diverged (lower train.lr)");
    offset += t->numel();
    t->zero_();
  }
}

// The step's gradient sum over the data-parallel ranks. train.exact_sum: reduce_gradients' fixed point,
// through host memory when the gradients are on a GPU (deliberate: exact integers are host code).
// Otherwise a float32 all-reduce, whose rounding depends on the rank count (docs/training.md).
void sum_gradients(const parallel::Comm& dp, const parallel::TensorComm& dp_tensors, bool exact, core::SaeStack& grads,
                   std::vector<core::wide_int>& acc) {
  if (!exact) {
    for (at::Tensor* t : grads.tensors()) dp_tensors.sum(*t);
    return;
  }
  if (grads.b_enc.is_cpu()) return reduce_gradients(dp, grads, acc);  // b_enc: W_enc is undefined when deferred
  core::SaeStack host = grads.to(at::kCPU);
  reduce_gradients(dp, host, acc);
  const auto device = grads.tensors();
  const auto reduced = host.tensors();
  for (size_t i = 0; i < device.size(); ++i) device[i]->copy_(*reduced[i]);
}

// Gathers a latent-sharded (n_local, ...) tensor into the whole (n, ...) on every shard.
at::Tensor gather_latents(const parallel::Comm& latent_comm, const at::Tensor& local) {
  if (latent_comm.size() == 1) return local.contiguous();
  const at::Tensor c = local.contiguous();
  std::vector<float> v(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
  std::vector<float> all = latent_comm.allgatherv(v);
  std::vector<int64_t> shape = c.sizes().vec();
  shape[0] = static_cast<int64_t>(all.size()) / (c.numel() / c.size(0));
  return at::from_blob(all.data(), shape, at::kFloat).clone();
}

// The SAE as it is saved: full weights (gathered over shards), input scaling folded in.
io::SaeWeights saved_weights(const config::Config& cfg, const Layout& layout, const core::SaeSpec& spec,
                             const EnsembleState& st, int64_t s, int64_t seed, const io::Provenance& provenance) {
  const core::SaeStack& p = st.params;
  const double c = st.input_scale;
  io::SaeWeights w;
  w.header.architecture = cfg.sae.architecture;
  w.header.d_in = spec.d;
  w.header.n_latents = spec.n_latents;
  w.header.k = core::has_top_k(spec.architecture) ? cfg.sae.k : 0;
  w.header.seed = seed;
  w.header.hookpoint = cfg.data.hookpoint;
  w.header.provenance = provenance;
  w.header.apply_b_dec_to_input = cfg.sae.apply_b_dec_to_input;
  w.header.config = config::to_toml(cfg);
  // x was scaled by c in training: pre = W_enc (c x − b_dec) + b_enc = (c W_enc)(x − b_dec / c) + b_enc,
  // and x̂ / c = z (W_dec / c) + b_dec / c.
  w.W_enc = gather_latents(layout.latent_comm, p.W_enc[s]) * c;
  w.b_enc = gather_latents(layout.latent_comm, p.b_enc[s]);
  w.W_dec = gather_latents(layout.latent_comm, p.W_dec[s]) / c;
  w.b_dec = p.b_dec[s] / c;
  if (spec.architecture == core::Architecture::kJumpRelu)
    w.threshold = gather_latents(layout.latent_comm, p.log_threshold[s]).exp();
  if (spec.architecture == core::Architecture::kBatchTopK && !std::isnan(st.threshold[static_cast<size_t>(s)]))
    w.threshold = at::full({spec.n_latents}, st.threshold[static_cast<size_t>(s)], at::kFloat);
  if (spec.architecture == core::Architecture::kGated) {
    w.r_mag = gather_latents(layout.latent_comm, p.r_mag[s]);
    w.b_mag = gather_latents(layout.latent_comm, p.b_mag[s]);
  }
  return w;
}

struct Evaluation {
  double fvu = 0, l0 = 0, dead_fraction = 0;
  at::Tensor frequency;  // (n) float64
};

// The saved SAE on the held-out tokens, encoded exactly as `compare` encodes it (core/sae_encode),
// token blocks sharded over the ranks of the group, on the training device: the weights go there once,
// each block of tokens as it is read, and the counts come back once at the end.
Evaluation evaluate(const parallel::Comm& comm, const io::SaeWeights& w, data::TokenStream& stream,
                    const config::Config& cfg, at::Device device) {
  const int64_t n = w.header.n_latents, d = w.header.d_in, mb = cfg.train.micro_batch;
  const int64_t total = std::min(cfg.train.eval_tokens, stream.eval_available());
  Evaluation e;
  if (total == 0) return e;
  const core::SaeEncoderWeights enc = core::on_device(io::encoder_weights(w), device);
  const at::Tensor W_dec = w.W_dec.to(device), b_dec = w.b_dec.to(device);
  at::Tensor fires = at::zeros({n}, at::TensorOptions(device).dtype(at::kLong));
  at::Tensor sse = at::zeros({}, at::TensorOptions(device).dtype(at::kDouble));
  std::vector<double> sums(static_cast<size_t>(d + 3), 0.0);  // Σx (d), Σ‖x‖², sse, active
  const core::Range chunks = core::shard_range(core::ceil_div(total, mb), comm.rank(), comm.size());
  for (int64_t c = chunks.begin; c < chunks.end; ++c) {
    const int64_t count = std::min(mb, total - c * mb);
    at::Tensor x = at::empty({count, d}, at::kFloat);
    stream.eval_tokens(c * mb, count, x.data_ptr<float>());
    core::add_data_sums(x, sums.data());
    x = x.to(device);
    const at::Tensor z = core::codes(enc, x);
    fires.add_(z.gt(0).sum(0));
    sse.add_((x - at::addmm(b_dec, z, W_dec)).to(at::kDouble).pow(2).sum());
  }
  const at::Tensor fires_host = fires.to(at::kCPU).contiguous();
  std::vector<int64_t> fired(fires_host.data_ptr<int64_t>(), fires_host.data_ptr<int64_t>() + n);
  sums[d + 1] = sse.item<double>();
  for (int64_t f : fired) sums[d + 2] += static_cast<double>(f);
  comm.allreduce_sum(fired.data(), n);
  comm.allreduce_sum(sums.data(), static_cast<int64_t>(sums.size()));
  e.fvu = sums[d + 1] / core::total_variance(sums.data(), d, total);
  e.l0 = sums[d + 2] / static_cast<double>(total);
  e.frequency = at::empty({n}, at::kDouble);
  double* frequency = e.frequency.data_ptr<double>();
  int64_t never = 0;
  for (int64_t i = 0; i < n; ++i) {
    frequency[i] = static_cast<double>(fired[i]) / static_cast<double>(total);
    never += fired[i] == 0;
  }
  e.dead_fraction = static_cast<double>(never) / static_cast<double>(n);
  return e;
}

// train.init_from: this rank's seeds start from trained SAEs (their latent slice), in the training's
// input scale c (x·c): W_enc / c, W_dec · c, b_dec · c. Every rank reads every listed SAE in the same
// order (the reads are collective) and checks it against the config the same way.
void init_from_saes(const parallel::Comm& world, const config::Config& cfg, const core::SaeSpec& spec,
                    const Layout& layout, EnsembleState& st) {
  const auto& from = cfg.train.init_from;
  const double c = st.input_scale;
  core::SaeStack& p = st.params;
  io::SaeWeights w;
  std::string loaded;
  for (int64_t g = 0; g < static_cast<int64_t>(cfg.sae.seeds.size()); ++g) {
    const std::string& path = from.size() == 1 ? from[0] : from[static_cast<size_t>(g)];
    if (path != loaded) {
      w = io::read_sae(world, path);
      loaded = path;
      const auto& h = w.header;
      auto refuse = [&](const std::string& what) { throw UsageError("train.init_from: " + path + ": " + what); };
      if (h.architecture != cfg.sae.architecture)
        refuse("a " + core::name_of(h.architecture) + " SAE, but sae.architecture = " + core::name_of(cfg.sae.architecture));
      if (h.d_in != spec.d) refuse("d_in " + std::to_string(h.d_in) + ", but the activations have d = " + std::to_string(spec.d));
      if (h.n_latents != spec.n_latents)
        refuse(std::to_string(h.n_latents) + " latents, but sae.n_latents = " + std::to_string(spec.n_latents));
      if (h.apply_b_dec_to_input != cfg.sae.apply_b_dec_to_input)
        refuse("apply_b_dec_to_input differs from sae.apply_b_dec_to_input");
      if (spec.unit_norm_decoder()) {
        // The trainer keeps decoder rows at unit norm: fold each row's norm into its encoder row and bias
        // (the same codes for relu; TopK may then rank latents differently).
        const at::Tensor norms = w.W_dec.norm(2, 1).clamp_min(1e-12);
        if ((norms - 1).abs().max().item<double>() > 1e-4) {
          log::info("train.init_from: {}: decoder rows are not unit norm; folding their norms into the encoder", path);
          w.W_dec = w.W_dec / norms.unsqueeze(1);
          w.W_enc = w.W_enc * norms.unsqueeze(1);
          w.b_enc = w.b_enc * norms;
        }
      }
      log::info("train.init_from: {} ({} n={} d={}) for seed {}{}", path, core::name_of(h.architecture), h.n_latents, h.d_in,
                cfg.sae.seeds[static_cast<size_t>(g)], from.size() == 1 ? " and every other seed" : "");
    }
    if (g < layout.seeds.begin || g >= layout.seeds.end) continue;
    const int64_t s = g - layout.seeds.begin;
    const auto rows = [&](const at::Tensor& t) { return t.slice(0, spec.latents.begin, spec.latents.end); };
    p.W_enc[s].copy_(rows(w.W_enc) / c);
    p.b_enc[s].copy_(rows(w.b_enc));
    p.W_dec[s].copy_(rows(w.W_dec) * c);
    p.b_dec[s].copy_(w.b_dec * c);
    if (spec.architecture == core::Architecture::kJumpRelu) p.log_threshold[s].copy_(rows(w.threshold).log());
    if (spec.architecture == core::Architecture::kGated) p.r_mag[s].copy_(rows(w.r_mag)), p.b_mag[s].copy_(rows(w.b_mag));
    if (spec.architecture == core::Architecture::kBatchTopK && w.threshold.defined())
      st.threshold[static_cast<size_t>(s)] = w.threshold[0].item<double>();
  }
}

std::vector<TrainedSae> reuse_outputs(const parallel::Comm& comm, const config::Config& cfg, bool fresh) {
  const auto paths = sae_output_paths(cfg);
  std::vector<TrainedSae> found;
  const std::string fingerprint = train_fingerprint(cfg);
  for (size_t i = 0; i < paths.size(); ++i) {
    const std::string problem = io::reuse_problem(paths[i], sae_fingerprint(fingerprint, cfg.sae.seeds[i]));
    if (problem == "missing" || problem == "incomplete") return {};
    if (!problem.empty()) {
      if (fresh) return {};
      // A finished SAE is not silently replaced by one trained otherwise.
      throw UsageError(paths[i] + " was trained with other data/sae/train settings or inputs (" + problem +
                       "); rerun with --fresh to replace it, or choose another run.output_dir");
    }
    io::File f = io::File::open_read(comm, paths[i]);
    TrainedSae t;
    t.path = paths[i];
    t.seed = cfg.sae.seeds[i];
    t.ground_truth_mmcs = f.has_attr("/", "ground_truth_mmcs") ? f.read_attr_double("/", "ground_truth_mmcs") : std::nan("");
    t.fvu = f.read_attr_double("/", "fvu");
    t.l0 = f.read_attr_double("/", "l0");
    t.dead_fraction = f.read_attr_double("/", "dead_fraction");
    t.ce_loss_score = f.has_attr("/", "ce_loss_score") ? f.read_attr_double("/", "ce_loss_score") : std::nan("");
    t.kl_div_score = f.has_attr("/", "kl_div_score") ? f.read_attr_double("/", "kl_div_score") : std::nan("");
    t.reused = true;
    found.push_back(t);
  }
  return fresh ? std::vector<TrainedSae>{} : found;
}

// Keeps the metric lines of steps <= `step` (the checkpoint a resumed run continues from).
void truncate_metrics_log(const std::filesystem::path& path, int64_t step) {
  std::ifstream in(path);
  std::stringstream kept;
  std::string line;
  while (std::getline(in, line)) {
    const auto at = line.find("\"step\": ");
    if (at != std::string::npos && std::stoll(line.substr(at + 8)) <= step) kept << line << '\n';
  }
  in.close();
  std::ofstream(path) << kept.str();
}

}  // namespace

std::vector<std::string> sae_output_paths(const config::Config& config) {
  std::vector<std::string> paths;
  for (int64_t seed : config.sae.seeds)
    paths.push_back((std::filesystem::path(config.run.output_dir) / "saes" / ("seed" + std::to_string(seed) + ".h5")).string());
  return paths;
}

std::string train_fingerprint(const config::Config& config) {
  return config::fingerprint(config, config::Stage::kTrain, io::input_identity);
}

std::string sae_fingerprint(const std::string& train_fingerprint, int64_t seed) {
  return train_fingerprint + "[output]\nseed = " + std::to_string(seed) + "\n";
}

std::string snapshot_path(const config::Config& config, int64_t seed, int64_t tokens) {
  return (std::filesystem::path(config.run.output_dir) / "snapshots" / ("seed" + std::to_string(seed)) /
          ("tokens" + std::to_string(tokens) + ".h5"))
      .string();
}

std::string checkpoint_path(const config::Config& config) {
  return (std::filesystem::path(config.run.output_dir) / "checkpoint.h5").string();
}

namespace {

// train.splice_tokens: the store's model and the held-out sequences each SAE is spliced in on.
struct SpliceSetup {
  std::unique_ptr<lm::LanguageModel> model;
  lm::Hook hook;
  lm::ExtractPlan plan;
};

// Opened before training so that a model that cannot be read stops the run at once (a UsageError on
// every rank). Nothing on synthetic data or with the key at 0; a warning and nothing when the store
// records no tokens or model, or its model file is not here (a store moved to another machine).
std::optional<SpliceSetup> open_splice(const parallel::Comm& world, const config::Config& cfg, const data::TokenStream& stream,
                                       at::Device device) {
  const io::ActivationStore* store = stream.store();
  if (cfg.train.splice_tokens == 0 || store == nullptr) return std::nullopt;
  if (!store->has_tokens() || store->model().empty() || !std::filesystem::exists(store->model())) {
    log::warn("train: no spliced evaluation (train.splice_tokens): the store {} {}", store->path(),
              store->model().empty() || !store->has_tokens() ? std::string("records no model or token ids")
                                                             : "names the model " + store->model() + ", which is not here");
    return std::nullopt;
  }
  SpliceSetup s;
  std::string error;
  const std::string off = "; set train.splice_tokens = 0 to train without the spliced evaluation";
  try {
    try {
      s.model = std::make_unique<lm::LanguageModel>(store->model(), lm::ComputeDtype::kFloat32, device);
    } catch (const UsageError& e) {
      throw UsageError("train.splice_tokens: the model of the store " + store->path() + " cannot be read: " + e.what() + off);
    }
    s.hook = lm::parse_hook(s.model->config(), store->hookpoint());
    if (s.hook.width != store->d())
      throw UsageError("train.splice_tokens: " + s.hook.name + " of the model " + store->model() + " is " + std::to_string(s.hook.width) +
                       " wide, the store's " + std::to_string(store->d()) + off);
    s.plan = lm::plan_of_sequences(store->read_tokens(), store->seq_offsets(), store->n_tokens() - stream.eval_available(),
                                   cfg.train.splice_tokens, 4096);
  } catch (const UsageError& e) {
    error = e.what();
  }
  parallel::agree_on_error(world, error);
  if (s.plan.n_sequences() == 0) {
    log::warn("train: no whole sequence of {} lies in its {} held-out tokens within train.splice_tokens = {}; no spliced evaluation",
              store->path(), stream.eval_available(), cfg.train.splice_tokens);
    return std::nullopt;
  }
  log::info("train: each SAE will be spliced into {} at {} on {} held-out tokens ({} sequences)", store->model(), s.hook.name,
            s.plan.tokens.size(), s.plan.n_sequences());
  return s;
}

// One run of the training stage, as the named steps run_train_stage calls: set up (layout, data, SAE
// shapes), initialise or resume, then per step the micro-batches, the reduced update, the metrics line
// and a checkpoint when due; finally evaluate, write the SAE files and remove the checkpoint.
class Trainer {
 public:
  Trainer(const parallel::Comm& world, const config::Config& cfg);
  void initialise();            // the ensemble's starting point (b_dec and the input scale from the first batch)
  void resume_or_start(bool fresh);
  int64_t first_step() const { return st_.step; }
  int64_t steps() const { return steps_; }
  void step(int64_t step);      // one optimiser step over the global batch
  void save_if_due(int64_t step, const parallel::StopSignals& signals);
  void snapshot_if_due(int64_t steps_done);  // train.snapshot_every: each seed's weights after `steps_done` steps
  std::vector<TrainedSae> publish();

 private:
  bool log_step(int64_t step) const { return (step + 1) % cfg_.train.log_every == 0 || step + 1 == steps_; }
  void run_micro_batches(int64_t step, const at::Tensor& dead);
  void update_counters();
  void log(int64_t step, double lr);
  at::Tensor dead_mask() const;  // (S, n_local) bool on the device: the dead-latent rule (schedule.hpp's is_dead)
  void to_device();              // the state as initialised or read from a checkpoint, onto the device
  // The state for a file: counters and thresholds from the device, and the tensors on the host (a copy
  // off the CPU: deliberate, HDF5 writes host memory); Adam's moments only `with_adam` (checkpoints).
  EnsembleState host_state(bool with_adam) const;

  const parallel::Comm& world_;
  const config::Config& cfg_;
  const Layout L_;
  std::unique_ptr<data::TokenStream> stream_;
  io::Provenance provenance_;  // what every SAE file records it was made from (the store's model, the store)
  std::optional<SpliceSetup> splice_;
  const std::filesystem::path out_dir_;
  int64_t d_ = 0, B_ = 0, mb_ = 0, steps_ = 0;
  core::SaeSpec spec_;
  parallel::DevicePlan plan_;  // run.device, run.kernels
  double base_lr_ = 0;
  core::Range my_chunks_;
  std::vector<int64_t> seeds_;  // this group's
  std::string ckpt_, fingerprint_;
  EnsembleState st_;
  // Per step: gradients (and their fixed-point sum over several micro-batches), statistics, data sums.
  core::SaeStack grads_, micro_grads_;
  std::vector<core::wide_int> acc_;
  core::StepStats stats_;
  at::Tensor since_fired_;  // (S, n_local) int64 on the device: tokens since each latent last fired
  at::Tensor threshold_;    // (S) float64 on the device: batchtopk's running threshold (NaN: unset)
  int64_t max_since_start_ = 0;  // the largest since_fired of any rank when training (re)started
  std::vector<double> data_sums_;
  std::unique_ptr<ShardPeers> peers_;
  // The layout's communicators for device tensors (NCCL on a GPU): data-parallel, latent shards, group.
  std::unique_ptr<parallel::TensorComm> dp_tensors_, shard_tensors_, group_tensors_;
  std::ofstream metrics_log_;
  std::unique_ptr<log::Progress> progress_;
  std::chrono::steady_clock::time_point start_;
  int64_t start_step_ = 0;
};

Trainer::Trainer(const parallel::Comm& world, const config::Config& cfg)
    : world_(world),
      cfg_(cfg),
      L_(make_layout(world, cfg.train.seed_groups, cfg.train.latent_shards, static_cast<int64_t>(cfg.sae.seeds.size()),
                     cfg.sae.n_latents)),
      out_dir_(cfg.run.output_dir) {
  const auto& t = cfg.train;
  io::ensure_directory(world, (out_dir_ / "saes").string());  // before the store's NaN/Inf scan
  stream_ = data::open_token_stream(world, cfg);
  if (const io::ActivationStore* store = stream_->store()) {
    provenance_ = store->provenance();
  } else {
    provenance_.model = cfg.data.source;  // "synthetic"
  }
  plan_ = parallel::resolve_device(world, cfg.run.device, cfg.run.kernels);
  splice_ = open_splice(world, cfg, *stream_, plan_.device);
  d_ = stream_->d(), B_ = t.batch_size, mb_ = t.micro_batch, steps_ = t.tokens / B_;
  const int64_t n = cfg.sae.n_latents;
  spec_ = make_spec(cfg, d_, L_.latents);
  spec_.kernels = plan_.kernels;
  if (t.dtype == config::MatmulDtype::kTF32) {
    if (plan_.device.is_cuda())
      at::globalContext().setAllowTF32CuBLAS(true);
    else
      log::info("train: train.dtype = \"tf32\" is a GPU setting; the CPU computes float32");
  }
  base_lr_ = t.lr > 0 ? t.lr : 2e-4 / std::sqrt(static_cast<double>(n) / 16384.0);
  my_chunks_ = core::shard_range(B_ / mb_, L_.dp_rank, L_.dp);
  seeds_.assign(cfg.sae.seeds.begin() + L_.seeds.begin, cfg.sae.seeds.begin() + L_.seeds.end);
  log::info("train: {} × {} SAE d={} n={}{} on {}; {} steps of {} tokens, lr {:.3g}", cfg.sae.seeds.size(),
            core::name_of(cfg.sae.architecture), d_, n, core::has_top_k(spec_.architecture) ? fmt::format(" k={}", spec_.k) : "",
            stream_->describe(), steps_, B_, base_lr_);
  log::info("train: {} rank(s) = {} seed group(s) × {} data-parallel × {} latent shard(s); {} micro-batches of {} per step; {}",
            world.size(), L_.groups, L_.dp, L_.shards, B_ / mb_, mb_, plan_.describe());
  const int64_t per_sae = (2 * n * d_ + n + d_) * 4;  // the SAE files, and a checkpoint of parameters and both Adam moments
  io::ensure_space(world, (out_dir_ / "saes").string(), per_sae * static_cast<int64_t>(cfg.sae.seeds.size()) * 4,
                   fmt::format("{} SAE files and their checkpoint", cfg.sae.seeds.size()));
  ckpt_ = checkpoint_path(cfg);
  fingerprint_ = train_fingerprint(cfg);
}

void Trainer::initialise() {
  const auto& t = cfg_.train;
  std::vector<float> first(static_cast<size_t>(B_ * d_));  // computed identically on every rank
  stream_->train_tokens(0, B_, first.data());
  if (t.normalize_input) {
    double sq = 0;
    for (float v : first) sq += static_cast<double>(v) * v;
    st_.input_scale = std::sqrt(static_cast<double>(d_) / (sq / static_cast<double>(B_)));
    for (float& v : first) v = static_cast<float>(v * st_.input_scale);
  }
  // sparsify sets b_dec to the first batch's mean before its first forward.
  const bool mean = t.b_dec_init == config::BDecInit::kMean || t.preset == config::TrainPreset::kSparsify;
  const std::vector<double> b_dec0 = mean ? core::mean_point(first.data(), B_, d_) : core::geometric_median(first.data(), B_, d_);
  const auto S = static_cast<int64_t>(seeds_.size());
  st_.params = core::init_stack(spec_, seeds_, b_dec0);
  st_.adam = core::init_adam(st_.params);
  st_.since_fired.assign(static_cast<size_t>(S * spec_.n_local()), 0);
  st_.threshold.assign(static_cast<size_t>(S), std::nan(""));
  st_.history.assign(static_cast<size_t>(S), {});
  if (!t.init_from.empty()) init_from_saes(world_, cfg_, spec_, L_, st_);
}

void Trainer::resume_or_start(bool fresh) {
  initialise();  // also the shapes a checkpoint is read into
  const bool have_checkpoint = world_.allreduce_max(std::filesystem::exists(ckpt_) ? 1.0 : 0.0) > 0;
  if (have_checkpoint && !fresh) {
    read_checkpoint(world_, L_, ckpt_, fingerprint_, cfg_.sae.seeds, st_);
    log::info("train: resuming from {} at step {} of {}", ckpt_, st_.step, steps_);
  } else if (have_checkpoint && world_.is_root()) {
    std::filesystem::remove(ckpt_);
  }
  if (st_.step == 0 && world_.is_root()) std::filesystem::remove_all(out_dir_ / "snapshots");  // an earlier run's
  world_.barrier();
  to_device();  // before anything reads the state back (a snapshot at step 0)
  snapshot_if_due(st_.step);
  if (world_.is_root()) {
    if (st_.step > 0) truncate_metrics_log(out_dir_ / "train_log.jsonl", st_.step);
    metrics_log_.open(out_dir_ / "train_log.jsonl", st_.step > 0 ? std::ios::app : std::ios::trunc);
  }
  peers_ = std::make_unique<ShardPeers>(L_.latent_comm, plan_.device);
  dp_tensors_ = std::make_unique<parallel::TensorComm>(L_.dp_comm, plan_.device);
  shard_tensors_ = std::make_unique<parallel::TensorComm>(L_.latent_comm, plan_.device);
  group_tensors_ = std::make_unique<parallel::TensorComm>(L_.group_comm, plan_.device);
  // A rank that runs the whole step's batch alone keeps no dense W_enc and W_dec gradients when they
  // would be large: their rows are made inside the optimiser step (core::deferred_grads; 2 GiB less per
  // rank at 65,536 × 4,096). The step is the dense one's bit for bit. UNIVERSAE_DEFER_GRADIENTS=always
  // or =never overrides the size rule where deferring can apply (tests compare the two).
  const std::string force = std::getenv("UNIVERSAE_DEFER_GRADIENTS") != nullptr ? std::getenv("UNIVERSAE_DEFER_GRADIENTS") : "";
  const bool defer = L_.dp_comm.size() == 1 && my_chunks_.size() == 1 &&
                     (force == "always"  ? core::can_defer_grads(spec_, plan_.device)
                      : force == "never" ? false
                                         : core::worth_deferring_grads(spec_, static_cast<int64_t>(seeds_.size()), plan_.device));
  grads_ = defer ? core::deferred_grads(st_.params, cfg_.train.exact_sum) : st_.params.zeros_like();
  if (defer)
    log::info("train: W_enc and W_dec gradients made row by row in the optimiser step ({:.2f} GiB per rank not held)",
              2.0 * static_cast<double>(st_.params.W_enc.numel()) * 4.0 / 1073741824.0);
  if (my_chunks_.size() > 1 && cfg_.train.exact_sum) {
    micro_grads_ = st_.params.zeros_like();
    int64_t total = 0;
    for (const at::Tensor* g : grads_.tensors()) total += g->numel();
    acc_.assign(static_cast<size_t>(total), core::wide_int{0});
  }
  stats_ = core::StepStats(static_cast<int64_t>(seeds_.size()), spec_.n_local(), plan_.device);
  data_sums_.assign(static_cast<size_t>(d_ + 1), 0.0);
  progress_ = std::make_unique<log::Progress>("train", steps_ * B_, "tokens");
  start_ = std::chrono::steady_clock::now();
  start_step_ = st_.step;
}

// This rank's micro-batches of the step: each read once for all seeds, its gradient added in exact
// fixed point when a rank runs several. The loss is divided by the global batch's tokens, or with
// train.preset = "sparsify" by its total variance Σ‖x − x̄‖² (sparsify's FVU), known only once every
// micro-batch of the step is read: this rank's are then held until the sums are reduced.
void Trainer::run_micro_batches(int64_t step, const at::Tensor& dead) {
  const bool sparsify = spec_.rule == core::StepRule::kSparsify;
  auto run = [&](const at::Tensor& x, double loss_denominator) {
    if (acc_.empty()) {
      core::forward_backward(spec_, st_.params, x, dead, loss_denominator, *peers_, grads_, stats_);
    } else {
      core::forward_backward(spec_, st_.params, x, dead, loss_denominator, *peers_, micro_grads_, stats_);
      accumulate_micro_batch(micro_grads_, acc_);
    }
  };
  // Each micro-batch's sums in its own slot (the others 0, so the reduction is exact), then added in
  // micro-batch order: the same variance on any number of ranks.
  std::vector<at::Tensor> held;
  const int64_t chunks = B_ / mb_;
  std::vector<double> chunk_sums(sparsify ? static_cast<size_t>(chunks * (d_ + 1)) : 0, 0.0);
  // On a GPU the tokens are read into pinned host memory and copied without waiting (the caching host
  // allocator keeps a buffer until its copy is done), so reading the next micro-batch overlaps the step.
  const bool gpu = plan_.device.is_cuda();
  const auto host = at::TensorOptions().dtype(at::kFloat).pinned_memory(gpu);
  for (int64_t c = my_chunks_.begin; c < my_chunks_.end; ++c) {
    at::Tensor x = at::empty({mb_, d_}, host);
    stream_->train_tokens(step * B_ + c * mb_, mb_, x.data_ptr<float>());
    if (cfg_.train.normalize_input) x.mul_(st_.input_scale);
    if (log_step(step)) core::add_data_sums(x, data_sums_.data());
    if (sparsify) core::add_data_sums(x, chunk_sums.data() + c * (d_ + 1));
    x = x.to(x.options().device(plan_.device).pinned_memory(false), /*non_blocking=*/gpu);  // deliberate: from a file
    if (!sparsify) {
      run(x, static_cast<double>(B_));
      continue;
    }
    held.push_back(x);
  }
  if (!sparsify) return;
  L_.dp_comm.allreduce_sum(chunk_sums.data(), chunks * (d_ + 1));
  std::vector<double> batch_sums(static_cast<size_t>(d_ + 1), 0.0);
  for (int64_t c = 0; c < chunks; ++c)
    for (int64_t j = 0; j <= d_; ++j) batch_sums[j] += chunk_sums[c * (d_ + 1) + j];
  const double variance = core::total_variance(batch_sums.data(), d_, B_);
  for (const at::Tensor& x : held) run(x, variance);
}

// Dead-latent counters and the batchtopk inference threshold (a running mean of the smallest kept activation).
// On the device, with no branch on the values: th = m when unset, (1 − rate)·th + rate·m after, kept
// when no activation was kept (m = +inf).
void Trainer::update_counters() {
  dp_tensors_->sum(stats_.fires);
  since_fired_.add_(B_).masked_fill_(stats_.fires.gt(0), 0);
  if (spec_.architecture != core::Architecture::kBatchTopK) return;
  group_tensors_->min(stats_.min_kept);
  const double rate = cfg_.train.batchtopk_threshold_rate;
  const at::Tensor& m = stats_.min_kept;
  const at::Tensor blended = at::where(threshold_.isnan(), m, threshold_ * (1.0 - rate) + m * rate);
  threshold_ = at::where(m.isinf(), threshold_, blended);
}

at::Tensor Trainer::dead_mask() const {
  const int64_t after = cfg_.train.dead_tokens;
  return cfg_.train.preset == config::TrainPreset::kSparsify ? since_fired_.gt(after) : since_fired_.ge(after);
}

void Trainer::to_device() {
  const auto S = static_cast<int64_t>(seeds_.size());
  st_.params = st_.params.to(plan_.device);
  st_.adam.m = st_.adam.m.to(plan_.device);
  st_.adam.v = st_.adam.v.to(plan_.device);
  since_fired_ = at::tensor(st_.since_fired, at::kLong).view({S, spec_.n_local()}).to(plan_.device);
  const int64_t local_max = st_.since_fired.empty() ? 0 : *std::max_element(st_.since_fired.begin(), st_.since_fired.end());
  max_since_start_ = static_cast<int64_t>(world_.allreduce_max(static_cast<double>(local_max)));  // every rank: the same
  threshold_ = at::tensor(st_.threshold, at::kDouble).to(plan_.device);
}

EnsembleState Trainer::host_state(bool with_adam) const {
  EnsembleState h;
  h.params = st_.params.to(at::kCPU);
  if (with_adam) h.adam = {st_.adam.m.to(at::kCPU), st_.adam.v.to(at::kCPU), st_.adam.step};
  const at::Tensor since = since_fired_.to(at::kCPU).contiguous(), threshold = threshold_.to(at::kCPU).contiguous();
  h.since_fired.assign(since.data_ptr<int64_t>(), since.data_ptr<int64_t>() + since.numel());
  h.threshold.assign(threshold.data_ptr<double>(), threshold.data_ptr<double>() + threshold.numel());
  h.history = st_.history;
  h.step = st_.step;
  h.input_scale = st_.input_scale;
  return h;
}

void Trainer::step(int64_t step) {
  const auto& t = cfg_.train;
  const double lr = learning_rate(t, base_lr_, step, steps_);
  std::fill(data_sums_.begin(), data_sums_.end(), 0.0);
  stats_.clear();
  core::zero_grads(grads_);
  core::normalize_decoder_at_step_start(spec_, st_.params);  // sparsify only
  // No latent can be dead before dead_tokens tokens have passed since the longest-silent one last
  // fired (every rank computes this alike): until then the step gets no dead mask and skips AuxK, whose
  // loss and gradient with no dead latent are 0. It spares the generic step a masked top-k_aux and its
  // zero-weight scatters, and both steps a collective, for the first train.dead_tokens tokens.
  const bool maybe_dead = max_since_start_ + (step - start_step_) * B_ >= t.dead_tokens;
  run_micro_batches(step, maybe_dead ? dead_mask() : at::Tensor());
  sum_gradients(L_.dp_comm, *dp_tensors_, t.exact_sum, grads_, acc_);
  shard_tensors_->sum(grads_.b_dec);
  update_counters();
  core::optimizer_step(spec_, st_.params, grads_, st_.adam, lr, core::AdamConfig{t.adam_beta1, t.adam_beta2, t.adam_eps},
                       t.grad_clip, *peers_);
  st_.step = step + 1;
  if (log_step(step)) log(step, lr);
}

// Every seed's metrics row: kept in its history, written to train_log.jsonl (rank 0), shown in the progress line.
void Trainer::log(int64_t step, double lr) {
  const auto S = static_cast<int64_t>(seeds_.size());
  L_.dp_comm.allreduce_sum(data_sums_.data(), d_ + 1);
  const double sst = core::total_variance(data_sums_.data(), d_, B_);
  // The one read from the device in a logged step: the step's sums, as (5, S) float64.
  const at::Tensor step_sums = at::stack({stats_.sse, stats_.aux_sse, stats_.sparsity, stats_.active.to(at::kDouble),
                                          dead_mask().sum(1).to(at::kDouble)})
                                   .to(at::kCPU)
                                   .contiguous();
  const double* v = step_sums.data_ptr<double>();
  StepSums sums(S);
  for (int64_t s = 0; s < S; ++s) {
    const auto i = static_cast<size_t>(s);
    sums.sse[i] = v[s], sums.aux_sse[i] = v[S + s], sums.sparsity[i] = v[2 * S + s];
    sums.active[i] = v[3 * S + s], sums.dead[i] = v[4 * S + s];
  }
  // Without the exact sum's per-value check (train.exact_sum = false), divergence shows here.
  if (!cfg_.train.exact_sum && world_.allreduce_max(std::isfinite(std::accumulate(v, v + S, 0.0)) ? 0.0 : 1.0) > 0)
    throw InternalError("the reconstruction error is not finite: training diverged (lower train.lr)");
  sums.reduce(L_);
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double rate = static_cast<double>((step + 1 - start_step_) * B_) / std::max(elapsed, 1e-9);
  std::vector<double> rows;  // this group's seeds (from its root), then every seed's via world
  for (int64_t s = 0; s < S; ++s) {
    const std::vector<double> row = sums.row(s, step + 1, B_, sst, cfg_.sae.n_latents, spec_.sparsity, lr, rate).values();
    auto& h = st_.history[static_cast<size_t>(s)];
    h.insert(h.end(), row.begin(), row.end());
    if (L_.group_root()) rows.insert(rows.end(), row.begin(), row.end());
  }
  const std::vector<double> all = world_.allgatherv(rows);  // every seed's row, in seed order
  const size_t cols = MetricsRow::columns().size();
  if (metrics_log_.is_open()) {
    for (size_t s = 0; s < all.size() / cols; ++s) metrics_log_ << MetricsRow::from(all.data() + s * cols).jsonl(cfg_.sae.seeds[s]);
    metrics_log_.flush();
  }
  std::string extra;
  if (all.size() >= cols) {
    const MetricsRow first = MetricsRow::from(all.data());
    extra = fmt::format("seed {}: FVU {:.4f}, L0 {:.1f}, dead {:.1f}%", cfg_.sae.seeds[0], first.fvu, first.l0,
                        100 * first.dead_fraction);
    if (first.aux_loss != 0) extra += fmt::format(", aux loss {:.4g}", first.aux_loss);
    if (first.sparsity_loss != 0) extra += fmt::format(", sparsity loss {:.4g}", first.sparsity_loss);
  }
  progress_->update((step + 1) * B_, extra);
}

// A checkpoint every train.checkpoint_every steps, and on SIGTERM/SIGUSR1 (then exit 75).
void Trainer::save_if_due(int64_t step, const parallel::StopSignals& signals) {
  const bool stop = signals.requested(world_);
  const int64_t every = cfg_.train.checkpoint_every;
  const bool periodic = every > 0 && (step + 1) % every == 0 && step + 1 < steps_;
  if (stop || periodic)
    write_checkpoint(world_, L_, ckpt_, fingerprint_, cfg_.sae.seeds, cfg_.sae.n_latents, d_, host_state(/*with_adam=*/true));
  if (stop)
    throw Checkpointed(fmt::format("stopped by a signal after step {} of {}; checkpoint {} written. Run the same command "
                                   "again to resume.", step + 1, steps_, ckpt_));
}

// A snapshot is an SAE file like the final one (input scale folded in) with its `train_tokens`; one
// already there (written before the checkpoint a resumed run starts from) is kept.
void Trainer::snapshot_if_due(int64_t steps_done) {
  const int64_t every = cfg_.train.snapshot_every, tokens = steps_done * B_;
  if (every == 0 || tokens % every != 0) return;
  const auto finals = sae_output_paths(cfg_);
  const EnsembleState host = host_state(/*with_adam=*/false);
  for (int64_t s = 0; s < static_cast<int64_t>(seeds_.size()); ++s) {
    const std::string path = snapshot_path(cfg_, seeds_[s], tokens);
    if (L_.group_comm.allreduce_max(std::filesystem::exists(path) ? 1.0 : 0.0) > 0) continue;
    io::ensure_directory(L_.group_comm, std::filesystem::path(path).parent_path().string());
    io::SaeWeights w = saved_weights(cfg_, L_, spec_, host, s, seeds_[s], provenance_);
    w.metrics = {{"train_tokens", static_cast<double>(tokens)}, {"input_scale", st_.input_scale}};
    w.string_attrs = {{"snapshot_of", finals[static_cast<size_t>(L_.seeds.begin + s)]},
                      {"fingerprint", sae_fingerprint(fingerprint_, seeds_[s])}};
    io::write_sae(L_.group_comm, path, w);
  }
  log::debug("train: snapshot of every seed after {} tokens", tokens);
}

// Each seed's SAE evaluated on held-out tokens (and, on synthetic data, against the true dictionary)
// and written; every rank learns every seed's figures; the checkpoint goes once the files are complete.
std::vector<TrainedSae> Trainer::publish() {
  progress_->finish();
  std::unique_ptr<data::SyntheticSource> truth;
  if (cfg_.data.source == "synthetic") truth = std::make_unique<data::SyntheticSource>(cfg_.data.synthetic);
  const auto paths = sae_output_paths(cfg_);
  std::vector<double> results;  // per seed of this group: mmcs, fvu, l0, dead, ce_loss_score, kl_div_score
  const EnsembleState host = host_state(/*with_adam=*/false);
  for (int64_t s = 0; s < static_cast<int64_t>(seeds_.size()); ++s) {
    io::SaeWeights w = saved_weights(cfg_, L_, spec_, host, s, seeds_[s], provenance_);
    const Evaluation e = evaluate(L_.group_comm, w, *stream_, cfg_, plan_.device);
    double mmcs = std::nan("");
    if (truth) {  // the dictionary's rows against the decoder (MMCS)
      const compare::TileSizes tiles = compare::tiles_of(cfg_.compare);
      const int64_t m_gt = truth->n_features();
      const at::Tensor dictionary = at::from_blob(const_cast<float*>(truth->dictionary().data()), {m_gt, d_}, at::kFloat);
      const core::Range gt_rows = compare::a_rows_of_rank(m_gt, tiles, L_.group_comm);
      mmcs = compare::max_cosine(L_.group_comm, dictionary.narrow(0, gt_rows.begin, gt_rows.size()), m_gt, w.W_dec, tiles).mcs_ab;
      w.metrics.push_back({"ground_truth_mmcs", mmcs});
      // MCC, uniqueness, detection F1 and shrinkage on the held-out tokens (compare/ground_truth.hpp)
      const auto g = compare::ground_truth_metrics(L_.group_comm, *truth, w, cfg_.train.eval_tokens, cfg_.train.micro_batch);
      for (const auto& attribute : g.attributes()) w.metrics.push_back(attribute);
    }
    lm::SaeScore q;
    q.ce_loss_score = q.kl_div_score = std::nan("");
    if (splice_) {
      q = lm::evaluate_saes(L_.group_comm, *splice_->model, splice_->plan, {w}, {splice_->hook}).front();
      w.metrics.insert(w.metrics.end(), {{"ce_loss_score", q.ce_loss_score},
                                         {"ce_loss_with_sae", q.ce_loss_with_sae},
                                         {"ce_loss_without_sae", q.ce_loss_without_sae},
                                         {"ce_loss_with_ablation", q.ce_loss_with_ablation},
                                         {"kl_div_score", q.kl_div_score},
                                         {"kl_div_with_sae", q.kl_div_with_sae},
                                         {"kl_div_with_ablation", q.kl_div_with_ablation},
                                         {"explained_variance", q.explained_variance},
                                         {"l2_ratio", q.l2_ratio},
                                         {"relative_reconstruction_bias", q.relative_reconstruction_bias},
                                         {"splice_l0", q.l0},
                                         {"splice_fvu", q.fvu},
                                         {"splice_tokens", static_cast<double>(q.n_tokens)}});
    }
    w.frequency = e.frequency;
    w.metrics.insert(w.metrics.end(), {{"fvu", e.fvu}, {"l0", e.l0}, {"dead_fraction", e.dead_fraction},
                                       {"train_tokens", static_cast<double>(steps_ * B_)}, {"input_scale", st_.input_scale}});
    const auto& h = st_.history[static_cast<size_t>(s)];
    const auto cols = static_cast<int64_t>(MetricsRow::columns().size());
    w.train_metrics = at::from_blob(const_cast<double*>(h.data()), {static_cast<int64_t>(h.size()) / cols, cols}, at::kDouble).clone();
    w.train_columns = MetricsRow::columns();
    // What decides whether a rerun may reuse it, and the train keys it was made with (provenance).
    w.string_attrs = {{"fingerprint", sae_fingerprint(fingerprint_, seeds_[s])}, {"train_config", config::to_toml(cfg_, {"data", "sae", "train"})}};
    io::write_sae(L_.group_comm, paths[static_cast<size_t>(L_.seeds.begin + s)], w);
    if (L_.group_comm.is_root()) results.insert(results.end(), {mmcs, e.fvu, e.l0, e.dead_fraction, q.ce_loss_score, q.kl_div_score});
  }
  const std::vector<double> all = world_.allgatherv(results);
  std::vector<TrainedSae> trained;
  for (size_t i = 0; i < cfg_.sae.seeds.size(); ++i) {
    const double* r = all.data() + i * 6;
    trained.push_back({paths[i], cfg_.sae.seeds[i], r[0], r[1], r[2], r[3], r[4], r[5], false});
    if (std::isnan(r[0]))  // real data: no ground truth to score against
      log::info("train: wrote {} (FVU {:.4f}, L0 {:.2f}{})", paths[i], r[1], r[2],
                std::isnan(r[4]) ? "" : fmt::format(", CE loss score {:.4f}, KL score {:.4f}", r[4], r[5]));
    else
      log::info("train: wrote {} (ground-truth MMCS {:.4f}, FVU {:.4f}, L0 {:.2f})", paths[i], r[0], r[1], r[2]);
  }
  world_.barrier();
  if (world_.is_root()) std::filesystem::remove(ckpt_);  // the SAE files are complete
  return trained;
}

}  // namespace

std::vector<TrainedSae> run_train_stage(const parallel::Comm& world, const config::Config& cfg, bool fresh) {
  if (auto reused = reuse_outputs(world, cfg, fresh); !reused.empty()) {
    log::info("train: reusing {} complete SAE files in {}/saes (same configuration; --fresh retrains)", reused.size(),
              cfg.run.output_dir);
    return reused;
  }
  const io::OutputLock lock(world, cfg.run.output_dir, "train");
  Trainer trainer(world, cfg);
  trainer.resume_or_start(fresh);
  const parallel::StopSignals signals;
  for (int64_t step = trainer.first_step(); step < trainer.steps(); ++step) {
    trainer.step(step);
    trainer.snapshot_if_due(step + 1);
    trainer.save_if_due(step, signals);
  }
  return trainer.publish();
}

}  // namespace universae::train
