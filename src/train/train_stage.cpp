// The training stage: seed ensembles of any architecture (core/sae_model), trained as stacked
// tensors, laid out over seed groups × data-parallel ranks × latent shards, with checkpoints and
// resume. See train_stage.hpp for the determinism contract.
#include "train/train_stage.hpp"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "compare/max_cosine.hpp"
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
#include "io/sae_file.hpp"
#include "parallel/log.hpp"
#include "parallel/stop_signals.hpp"
#include "train/checkpoint.hpp"
#include "train/shard_peers.hpp"

namespace universae::train {
namespace {

double learning_rate(const config::TrainConfig& t, double base, int64_t step, int64_t steps) {
  double factor = 1.0;
  if (t.warmup_steps > 0) factor = std::min(1.0, static_cast<double>(step + 1) / static_cast<double>(t.warmup_steps));
  const auto decay_start = static_cast<int64_t>(std::floor(static_cast<double>(steps) * (1.0 - t.decay_fraction)));
  if (step >= decay_start && steps > decay_start)
    factor *= static_cast<double>(steps - step) / static_cast<double>(steps - decay_start);
  return base * factor;
}

// λ when train.sparsity_coefficient is not set: a starting point on inputs with E‖x‖² = d (sweep it).
double default_sparsity(core::Architecture a) { return core::has_top_k(a) ? 0.0 : 1.0; }

core::SaeSpec make_spec(const config::Config& cfg, int64_t d, core::Range latents) {
  core::SaeSpec spec;
  spec.architecture = cfg.sae.architecture;
  spec.d = d;
  spec.n_latents = cfg.sae.n_latents;
  spec.latents = latents;
  spec.k = cfg.sae.k;
  spec.k_aux = cfg.train.k_aux > 0 ? cfg.train.k_aux : std::min<int64_t>(512, std::max<int64_t>(1, d / 2));
  spec.k_aux = std::min(spec.k_aux, cfg.sae.n_latents);
  spec.aux_alpha = cfg.train.auxk_alpha;
  spec.sparsity = cfg.train.sparsity_coefficient >= 0 ? cfg.train.sparsity_coefficient : default_sparsity(spec.architecture);
  spec.bandwidth = cfg.train.jumprelu_bandwidth;
  spec.jumprelu_init_threshold = cfg.train.jumprelu_init_threshold;
  spec.apply_b_dec_to_input = cfg.sae.apply_b_dec_to_input;
  return spec;
}

Layout make_layout(const parallel::Comm& world, const config::Config& cfg) {
  const auto groups = static_cast<int>(cfg.train.seed_groups), shards = static_cast<int>(cfg.train.latent_shards);
  if (world.size() % (groups * shards) != 0)
    throw UsageError(fmt::format("train.seed_groups ({}) × train.latent_shards ({}) must divide the number of ranks ({})",
                                 groups, shards, world.size()));
  const int dp = world.size() / (groups * shards), per_group = dp * shards;
  const int group = world.rank() / per_group, dp_rank = (world.rank() % per_group) / shards, shard = world.rank() % shards;
  const parallel::Comm group_comm = world.split(group, world.rank());
  Layout l(group_comm, group_comm.split(dp_rank, shard), group_comm.split(shard, dp_rank));
  l.groups = groups, l.shards = shards, l.dp = dp;
  l.group = group, l.shard = shard, l.dp_rank = dp_rank;
  l.seeds = core::shard_range(static_cast<int64_t>(cfg.sae.seeds.size()), group, groups);
  l.latents = core::shard_range(cfg.sae.n_latents, shard, shards);
  return l;
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
    if (!core::accumulate_fixed(t->data_ptr<float>(), t->numel(), acc.data() + offset))
      throw InternalError("a gradient is not finite or exceeds 2^40: training diverged (lower train.lr)");
    offset += t->numel();
    t->zero_();
  }
}

// The FVU denominator, accumulated over chunks: sums[0..d) += Σ_t x_t, sums[d] += Σ_t ‖x_t‖².
void add_data_sums(const at::Tensor& x, double* sums) {
  const at::Tensor xs = x.to(at::kDouble);
  const at::Tensor col = xs.sum(0).contiguous();
  const double* c = col.data_ptr<double>();
  for (int64_t j = 0; j < col.numel(); ++j) sums[j] += c[j];
  sums[col.numel()] += xs.pow(2).sum().item<double>();
}

// Σ_t ‖x_t − x̄‖² over `count` tokens from (reduced) add_data_sums sums.
double total_variance(const double* sums, int64_t d, int64_t count) {
  double mean_sq = 0;
  for (int64_t j = 0; j < d; ++j) mean_sq += sums[j] * sums[j];
  return sums[d] - mean_sq / static_cast<double>(count);
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
                             const EnsembleState& st, int64_t s, int64_t seed) {
  const core::SaeStack& p = st.params;
  const double c = st.input_scale;
  io::SaeWeights w;
  w.header.architecture = cfg.sae.architecture;
  w.header.d_in = spec.d;
  w.header.n_latents = spec.n_latents;
  w.header.k = core::has_top_k(spec.architecture) ? cfg.sae.k : 0;
  w.header.seed = seed;
  w.header.hookpoint = cfg.data.hookpoint;
  w.header.model = cfg.data.source;
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
// token blocks sharded over the ranks of the group.
Evaluation evaluate(const parallel::Comm& comm, const io::SaeWeights& w, data::TokenStream& stream,
                    const config::Config& cfg) {
  const int64_t n = w.header.n_latents, d = w.header.d_in, mb = cfg.train.micro_batch;
  const int64_t total = std::min(cfg.train.eval_tokens, stream.eval_available());
  Evaluation e;
  if (total == 0) return e;
  core::SaeEncoderWeights enc{w.header.architecture, w.header.k, w.header.apply_b_dec_to_input, w.W_enc, w.b_enc,
                              w.b_dec, w.threshold, w.r_mag, w.b_mag};
  std::vector<int64_t> fires(static_cast<size_t>(n), 0);
  std::vector<double> sums(static_cast<size_t>(d + 3), 0.0);  // Σx (d), Σ‖x‖², sse, active
  const core::Range chunks = core::shard_range(core::ceil_div(total, mb), comm.rank(), comm.size());
  for (int64_t c = chunks.begin; c < chunks.end; ++c) {
    const int64_t count = std::min(mb, total - c * mb);
    at::Tensor x = at::empty({count, d}, at::kFloat);
    stream.eval_tokens(c * mb, count, x.data_ptr<float>());
    const at::Tensor z = core::codes(enc, x);
    const at::Tensor x_hat = at::addmm(w.b_dec, z, w.W_dec);
    const at::Tensor fired = (z > 0).sum(0).to(at::kLong).contiguous();
    for (int64_t i = 0; i < n; ++i) fires[i] += fired.data_ptr<int64_t>()[i];
    add_data_sums(x, sums.data());
    sums[d + 1] += (x - x_hat).to(at::kDouble).pow(2).sum().item<double>();
    sums[d + 2] += static_cast<double>(fired.sum().item<int64_t>());
  }
  comm.allreduce_sum(fires.data(), n);
  comm.allreduce_sum(sums.data(), static_cast<int64_t>(sums.size()));
  e.fvu = sums[d + 1] / total_variance(sums.data(), d, total);
  e.l0 = sums[d + 2] / static_cast<double>(total);
  e.frequency = at::empty({n}, at::kDouble);
  double* frequency = e.frequency.data_ptr<double>();
  int64_t never = 0;
  for (int64_t i = 0; i < n; ++i) {
    frequency[i] = static_cast<double>(fires[i]) / static_cast<double>(total);
    never += fires[i] == 0;
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
  for (size_t i = 0; i < paths.size(); ++i) {
    const std::string problem = io::reuse_problem(paths[i], sae_fingerprint(cfg, cfg.sae.seeds[i]));
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

std::string sae_fingerprint(const config::Config& config, int64_t seed) {
  return config::fingerprint(config, config::Stage::kTrain, io::input_identity) + "[output]\nseed = " + std::to_string(seed) + "\n";
}

std::string checkpoint_path(const config::Config& config) {
  return (std::filesystem::path(config.run.output_dir) / "checkpoint.h5").string();
}

std::vector<TrainedSae> run_train_stage(const parallel::Comm& world, const config::Config& cfg, bool fresh) {
  if (auto reused = reuse_outputs(world, cfg, fresh); !reused.empty()) {
    log::info("train: reusing {} complete SAE files in {}/saes (same configuration; --fresh retrains)",
              reused.size(), cfg.run.output_dir);
    return reused;
  }
  const auto& t = cfg.train;
  const Layout L = make_layout(world, cfg);
  const std::filesystem::path out_dir(cfg.run.output_dir);
  io::ensure_directory(world, (out_dir / "saes").string());  // before the store's NaN/Inf scan
  std::unique_ptr<data::TokenStream> stream = data::open_token_stream(world, cfg);
  const int64_t d = stream->d(), n = cfg.sae.n_latents, B = t.batch_size, mb = t.micro_batch;
  const core::SaeSpec spec = make_spec(cfg, d, L.latents);
  const int64_t steps = t.tokens / B, n_local = spec.n_local();
  const double base_lr = t.lr > 0 ? t.lr : 2e-4 / std::sqrt(static_cast<double>(n) / 16384.0);
  const core::Range my_chunks = core::shard_range(B / mb, L.dp_rank, L.dp);
  const std::vector<int64_t> seeds(cfg.sae.seeds.begin() + L.seeds.begin, cfg.sae.seeds.begin() + L.seeds.end);
  const auto S = static_cast<int64_t>(seeds.size());
  log::info("train: {} × {} SAE d={} n={}{} on {}; {} steps of {} tokens, lr {:.3g}", cfg.sae.seeds.size(),
            core::name_of(cfg.sae.architecture), d, n, core::has_top_k(spec.architecture) ? fmt::format(" k={}", spec.k) : "",
            stream->describe(), steps, B, base_lr);
  log::info("train: {} ranks = {} seed group(s) × {} data-parallel × {} latent shard(s); {} micro-batches of {} per step",
            world.size(), L.groups, L.dp, L.shards, B / mb, mb);

  {  // the SAE files, and a checkpoint of parameters and both Adam moments
    const int64_t per_sae = (2 * n * d + n + d) * 4;
    io::ensure_space(world, (out_dir / "saes").string(), per_sae * static_cast<int64_t>(cfg.sae.seeds.size()) * 4,
                     fmt::format("{} SAE files and their checkpoint", cfg.sae.seeds.size()));
  }
  const std::string ckpt = checkpoint_path(cfg);
  const std::string fingerprint = config::fingerprint(cfg, config::Stage::kTrain, io::input_identity);

  EnsembleState st;
  {
    // Initialisation (also the shapes a checkpoint is read into). b_dec and the input scale come from
    // the first global batch, computed identically on every rank.
    std::vector<float> first(static_cast<size_t>(B * d));
    stream->train_tokens(0, B, first.data());
    if (t.normalize_input) {
      double sq = 0;
      for (float v : first) sq += static_cast<double>(v) * v;
      st.input_scale = std::sqrt(static_cast<double>(d) / (sq / static_cast<double>(B)));
      for (float& v : first) v = static_cast<float>(v * st.input_scale);
    }
    const std::vector<double> b_dec0 = t.b_dec_init == config::BDecInit::kMean ? core::mean_point(first.data(), B, d)
                                                              : core::geometric_median(first.data(), B, d);
    st.params = core::init_stack(spec, seeds, b_dec0);
    st.adam = core::init_adam(st.params);
    st.since_fired.assign(static_cast<size_t>(S * n_local), 0);
    st.threshold.assign(static_cast<size_t>(S), std::nan(""));
    st.history.assign(static_cast<size_t>(S), {});
    if (!t.init_from.empty()) init_from_saes(world, cfg, spec, L, st);
  }
  const bool have_checkpoint = world.allreduce_max(std::filesystem::exists(ckpt) ? 1.0 : 0.0) > 0;
  if (have_checkpoint && !fresh) {
    read_checkpoint(world, L, ckpt, fingerprint, cfg.sae.seeds, st);
    log::info("train: resuming from {} at step {} of {}", ckpt, st.step, steps);
  } else if (have_checkpoint && world.is_root()) {
    std::filesystem::remove(ckpt);
  }
  world.barrier();

  std::ofstream metrics_log;
  if (world.is_root()) {
    if (st.step > 0) truncate_metrics_log(out_dir / "train_log.jsonl", st.step);
    metrics_log.open(out_dir / "train_log.jsonl", st.step > 0 ? std::ios::app : std::ios::trunc);
  }

  const ShardPeers peers(L.latent_comm);
  core::SaeStack grads = st.params.zeros_like();
  core::SaeStack micro_grads;
  std::vector<core::wide_int> acc;
  if (my_chunks.size() > 1) {
    micro_grads = st.params.zeros_like();
    int64_t total = 0;
    for (const at::Tensor* g : grads.tensors()) total += g->numel();
    acc.assign(static_cast<size_t>(total), core::wide_int{0});
  }
  core::StepStats stats(S, n_local);
  const core::AdamConfig adam{t.adam_beta1, t.adam_beta2, t.adam_eps};
  std::vector<double> data_sums(static_cast<size_t>(d + 1));
  const parallel::StopSignals signals;
  log::Progress progress("train", steps * B, "tokens");
  const auto start = std::chrono::steady_clock::now();
  const int64_t start_step = st.step;

  for (int64_t step = st.step; step < steps; ++step) {
    const double lr = learning_rate(t, base_lr, step, steps);
    const bool log_step = (step + 1) % t.log_every == 0 || step + 1 == steps;
    std::fill(data_sums.begin(), data_sums.end(), 0.0);
    stats.clear();
    at::Tensor dead = at::empty({S, n_local}, at::kBool);
    for (int64_t i = 0; i < S * n_local; ++i) dead.data_ptr<bool>()[i] = st.since_fired[i] >= t.dead_tokens;
    for (at::Tensor* g : grads.tensors()) g->zero_();

    for (int64_t c = my_chunks.begin; c < my_chunks.end; ++c) {
      at::Tensor x = at::empty({mb, d}, at::kFloat);
      stream->train_tokens(step * B + c * mb, mb, x.data_ptr<float>());  // read once for all seeds
      if (t.normalize_input) x.mul_(st.input_scale);
      if (log_step) add_data_sums(x, data_sums.data());
      if (acc.empty()) {
        core::forward_backward(spec, st.params, x, dead, B, peers, grads, stats);
      } else {
        core::forward_backward(spec, st.params, x, dead, B, peers, micro_grads, stats);
        accumulate_micro_batch(micro_grads, acc);
      }
    }
    reduce_gradients(L.dp_comm, grads, acc);
    if (L.shards > 1) L.latent_comm.allreduce_sum(grads.b_dec.data_ptr<float>(), grads.b_dec.numel());

    L.dp_comm.allreduce_sum(stats.fires.data(), S * n_local);
    for (int64_t i = 0; i < S * n_local; ++i) st.since_fired[i] = stats.fires[i] > 0 ? 0 : st.since_fired[i] + B;
    if (spec.architecture == core::Architecture::kBatchTopK) {
      L.group_comm.allreduce_min(stats.min_kept.data(), S);
      for (int64_t s = 0; s < S; ++s) {
        const double m = stats.min_kept[s];
        double& th = st.threshold[static_cast<size_t>(s)];
        if (std::isinf(m)) continue;
        th = std::isnan(th) ? m : (1.0 - t.batchtopk_threshold_rate) * th + t.batchtopk_threshold_rate * m;
      }
    }

    core::optimizer_step(spec, st.params, grads, st.adam, lr, adam, t.grad_clip, peers);
    st.step = step + 1;

    if (log_step) {
      L.dp_comm.allreduce_sum(data_sums.data(), d + 1);
      const double sst = total_variance(data_sums.data(), d, B);
      std::vector<double> sums(static_cast<size_t>(S * 5));  // sse, aux, sparsity, active, dead
      for (int64_t s = 0; s < S; ++s) {
        int64_t dead_count = 0;
        for (int64_t i = 0; i < n_local; ++i) dead_count += st.since_fired[s * n_local + i] >= t.dead_tokens;
        sums[s * 5 + 0] = stats.sse[s];
        sums[s * 5 + 1] = stats.aux_sse[s];
        sums[s * 5 + 2] = stats.sparsity[s];
        sums[s * 5 + 3] = static_cast<double>(stats.active[s]);
        sums[s * 5 + 4] = static_cast<double>(dead_count) / static_cast<double>(L.dp);  // replicated over dp
      }
      L.dp_comm.allreduce_sum(sums.data(), S * 5);
      std::vector<double> partial(static_cast<size_t>(S * 3));  // summed over latent shards
      for (int64_t s = 0; s < S; ++s)
        for (int j = 0; j < 3; ++j) partial[s * 3 + j] = sums[s * 5 + 2 + j];
      if (L.shards > 1) L.latent_comm.allreduce_sum(partial.data(), S * 3);
      const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      const double rate = static_cast<double>((step + 1 - start_step) * B) / std::max(elapsed, 1e-9);
      std::vector<double> rows;
      for (int64_t s = 0; s < S; ++s) {
        const double row[] = {static_cast<double>(step + 1), static_cast<double>((step + 1) * B), sums[s * 5] / sst,
                              partial[s * 3 + 1] / static_cast<double>(B), std::round(partial[s * 3 + 2]) / static_cast<double>(n),
                              sums[s * 5 + 1] / static_cast<double>(B), spec.sparsity * partial[s * 3] / static_cast<double>(B),
                              lr, rate};
        auto& h = st.history[static_cast<size_t>(s)];
        h.insert(h.end(), std::begin(row), std::end(row));
        if (L.group_root()) rows.insert(rows.end(), std::begin(row), std::end(row));
      }
      const std::vector<double> all = world.allgatherv(rows);  // every seed's row, in seed order
      const size_t cols = kHistoryColumns.size();
      if (metrics_log.is_open())
        for (size_t s = 0; s < all.size() / cols; ++s) {
          const double* r = all.data() + s * cols;
          metrics_log << fmt::format(
              "{{\"step\": {}, \"tokens\": {}, \"seed\": {}, \"fvu\": {:.6g}, \"l0\": {:.4g}, \"dead_fraction\": {:.6g}, "
              "\"aux_loss\": {:.6g}, \"sparsity_loss\": {:.6g}, \"lr\": {:.6g}, \"tokens_per_s\": {:.6g}}}\n",
              static_cast<int64_t>(r[0]), static_cast<int64_t>(r[1]), cfg.sae.seeds[s], r[2], r[3], r[4], r[5], r[6],
              r[7], r[8]);
        }
      if (metrics_log.is_open()) metrics_log.flush();
      progress.update((step + 1) * B, all.size() >= cols ? fmt::format("seed {} FVU {:.4f} L0 {:.1f}",
                                                                       cfg.sae.seeds[0], all[2], all[3])
                                                         : "");
    }

    const bool stop = signals.requested(world);
    const bool periodic = t.checkpoint_every > 0 && (step + 1) % t.checkpoint_every == 0 && step + 1 < steps;
    if (stop || periodic) write_checkpoint(world, L, ckpt, fingerprint, cfg.sae.seeds, n, d, st);
    if (stop)
      throw Checkpointed(fmt::format("stopped by a signal after step {} of {}; checkpoint {} written. Run the same "
                                     "command again to resume.", step + 1, steps, ckpt));
  }
  progress.finish();

  // Ground truth for synthetic data: the dictionary's rows against each decoder (MMCS).
  std::unique_ptr<data::SyntheticSource> truth;
  if (cfg.data.source == "synthetic") truth = std::make_unique<data::SyntheticSource>(cfg.data.synthetic);
  const compare::TileSizes tiles{cfg.compare.tile_rows, cfg.compare.tile_cols};

  std::vector<TrainedSae> trained;
  const auto paths = sae_output_paths(cfg);
  std::vector<double> results;  // per seed of this group: mmcs, fvu, l0, dead
  for (int64_t s = 0; s < S; ++s) {
    io::SaeWeights w = saved_weights(cfg, L, spec, st, s, seeds[s]);
    const Evaluation e = evaluate(L.group_comm, w, *stream, cfg);
    double mmcs = std::nan("");
    if (truth) {
      const int64_t m_gt = truth->n_features();
      const at::Tensor dictionary = at::from_blob(const_cast<float*>(truth->dictionary().data()), {m_gt, d}, at::kFloat);
      const core::Range gt_rows = compare::a_rows_of_rank(m_gt, tiles, L.group_comm);
      mmcs = compare::max_cosine(L.group_comm, dictionary.narrow(0, gt_rows.begin, gt_rows.size()), m_gt, w.W_dec, tiles).mcs_ab;
      w.metrics.push_back({"ground_truth_mmcs", mmcs});
    }
    w.frequency = e.frequency;
    w.metrics.insert(w.metrics.end(), {{"fvu", e.fvu}, {"l0", e.l0}, {"dead_fraction", e.dead_fraction},
                                       {"train_tokens", static_cast<double>(steps * B)},
                                       {"input_scale", st.input_scale}});
    const auto& h = st.history[static_cast<size_t>(s)];
    const auto cols = static_cast<int64_t>(kHistoryColumns.size());
    w.train_metrics = at::from_blob(const_cast<double*>(h.data()), {static_cast<int64_t>(h.size()) / cols, cols},
                                    at::kDouble).clone();
    w.train_columns = kHistoryColumns;
    // What decides whether a rerun may reuse it, and the train keys it was made with (provenance).
    w.string_attrs = {{"fingerprint", sae_fingerprint(cfg, seeds[s])},
                      {"train_config", config::to_toml(cfg, {"data", "sae", "train"})}};
    io::write_sae(L.group_comm, paths[static_cast<size_t>(L.seeds.begin + s)], w);
    if (L.group_comm.is_root()) results.insert(results.end(), {mmcs, e.fvu, e.l0, e.dead_fraction});
  }
  const std::vector<double> all = world.allgatherv(results);
  for (size_t i = 0; i < cfg.sae.seeds.size(); ++i) {
    const double* r = all.data() + i * 4;
    trained.push_back({paths[i], cfg.sae.seeds[i], r[0], r[1], r[2], r[3], false});
    log::info("train: wrote {} (ground-truth MMCS {:.4f}, FVU {:.4f}, L0 {:.2f})", paths[i], r[0], r[1], r[2]);
  }
  world.barrier();
  if (world.is_root()) std::filesystem::remove(ckpt);  // the SAE files are complete
  return trained;
}

}  // namespace universae::train
