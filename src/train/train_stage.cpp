// Ensemble training loop for topk SAEs. See train_stage.hpp for the determinism contract.
#include "train/train_stage.hpp"

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "compare/max_cosine.hpp"
#include "core/error.hpp"
#include "core/exact_sum.hpp"
#include "core/geometric_median.hpp"
#include "core/sharding.hpp"
#include "core/topk_sae.hpp"
#include "data/synthetic.hpp"
#include "io/h5.hpp"
#include "io/sae_file.hpp"
#include "parallel/log.hpp"

namespace universae::train {
namespace {

// Evaluation tokens come from far beyond any training stream, so they are never trained on.
constexpr int64_t kEvalTokenOffset = data::kHeldOutTokenOffset;

struct Member {
  int64_t seed;
  core::TopKSae sae{nullptr};
  std::unique_ptr<torch::optim::Adam> optimizer;
  std::vector<core::wide_int> grad_acc;        // fixed-point gradient sum, all parameters
  std::vector<int64_t> tokens_since_fired;     // per latent, for the dead mask
  // Per-step metrics (local, then reduced).
  double sse = 0, aux = 0;
  int64_t active = 0;
  std::vector<int64_t> fires;
};

std::string train_fingerprint(const config::Config& c) { return config::to_toml(c, {"data", "sae", "train"}); }

double learning_rate(const config::TrainConfig& t, double base, int64_t step, int64_t steps) {
  double factor = 1.0;
  if (t.warmup_steps > 0) factor = std::min(1.0, static_cast<double>(step + 1) / static_cast<double>(t.warmup_steps));
  const auto decay_start = static_cast<int64_t>(std::floor(static_cast<double>(steps) * (1.0 - t.decay_fraction)));
  if (step >= decay_start && steps > decay_start)
    factor *= static_cast<double>(steps - step) / static_cast<double>(steps - decay_start);
  return base * factor;
}

torch::Tensor tokens_tensor(const data::SyntheticSource& source, int64_t first, int64_t count) {
  torch::Tensor x = torch::empty({count, source.d()}, torch::kFloat);
  source.tokens(first, count, x.data_ptr<float>());
  return x;
}

int64_t parameter_count(const core::TopKSae& sae) {
  int64_t n = 0;
  for (const auto& p : sae->parameters()) n += p.numel();
  return n;
}

// Adds this micro-batch's gradients to the member's fixed-point accumulator and clears them.
void accumulate_gradients(Member& m) {
  int64_t offset = 0;
  for (auto& p : m.sae->parameters()) {
    const torch::Tensor g = p.grad().contiguous();
    if (!core::accumulate_fixed(g.data_ptr<float>(), g.numel(), m.grad_acc.data() + offset))
      throw InternalError("seed " + std::to_string(m.seed) + ": gradient is not finite or exceeds 2^40; training diverged (lower train.lr)");
    offset += g.numel();
    p.mutable_grad().zero_();
  }
}

void install_reduced_gradients(Member& m) {
  int64_t offset = 0;
  for (auto& p : m.sae->parameters()) {
    torch::Tensor g = torch::empty_like(p);
    float* out = g.data_ptr<float>();
    for (int64_t i = 0; i < g.numel(); ++i) out[i] = core::fixed_to_float(m.grad_acc[offset + i]);
    p.mutable_grad() = g;
    offset += g.numel();
  }
  std::fill(m.grad_acc.begin(), m.grad_acc.end(), core::wide_int{0});
}

// The FVU denominator, accumulated over chunks: sums[0..d) += Σ_t x_t, sums[d] += Σ_t ‖x_t‖².
void add_data_sums(const torch::Tensor& x, double* sums) {
  const torch::Tensor xs = x.to(torch::kDouble);
  const torch::Tensor col = xs.sum(0).contiguous();
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

void count_fires(const core::TopKSaeImpl::Output& out, std::vector<int64_t>& fires, int64_t& active) {
  const torch::Tensor fired = out.top_indices.masked_select(out.top_values > 0);
  active += fired.numel();
  const auto* idx = fired.data_ptr<int64_t>();
  for (int64_t i = 0; i < fired.numel(); ++i) ++fires[idx[i]];
}

struct Evaluation {
  double fvu = 0, l0 = 0, dead_fraction = 0;
  torch::Tensor frequency;  // (n) float64
};

// Held-out metrics and firing frequency, micro-batches sharded over ranks, counts reduced exactly.
Evaluation evaluate(const parallel::Comm& comm, Member& m, const data::SyntheticSource& source,
                    const config::Config& cfg) {
  torch::NoGradGuard no_grad;
  const int64_t n = cfg.sae.n_latents, total = cfg.train.eval_tokens, mb = cfg.train.micro_batch;
  Evaluation e;
  if (total == 0) return e;
  std::vector<int64_t> fires(static_cast<size_t>(n), 0);
  int64_t active = 0;
  std::vector<double> sums(static_cast<size_t>(source.d() + 2), 0.0);  // Σx (d), Σ‖x‖², sse
  const core::Range chunks = core::shard_range(core::ceil_div(total, mb), comm.rank(), comm.size());
  for (int64_t c = chunks.begin; c < chunks.end; ++c) {
    const int64_t count = std::min(mb, total - c * mb);
    const torch::Tensor x = tokens_tensor(source, kEvalTokenOffset + c * mb, count);
    const auto out = m.sae->forward(x);
    count_fires(out, fires, active);
    add_data_sums(x, sums.data());
    sums[source.d() + 1] += (x - out.x_hat).to(torch::kDouble).pow(2).sum().item<double>();
  }
  comm.allreduce_sum(fires.data(), n);
  comm.allreduce_sum(sums.data(), static_cast<int64_t>(sums.size()));
  active = comm.allreduce_sum(active);
  e.fvu = sums[source.d() + 1] / total_variance(sums.data(), source.d(), total);
  e.l0 = static_cast<double>(active) / static_cast<double>(total);
  e.frequency = torch::empty({n}, torch::kDouble);
  double* frequency = e.frequency.data_ptr<double>();
  int64_t never = 0;
  for (int64_t i = 0; i < n; ++i) {
    frequency[i] = static_cast<double>(fires[i]) / static_cast<double>(total);
    never += fires[i] == 0;
  }
  e.dead_fraction = static_cast<double>(never) / static_cast<double>(n);
  return e;
}

std::vector<TrainedSae> reuse_outputs(const parallel::Comm& comm, const config::Config& cfg, bool fresh) {
  const auto paths = sae_output_paths(cfg);
  std::vector<TrainedSae> found;
  for (size_t i = 0; i < paths.size(); ++i) {
    if (!std::filesystem::exists(paths[i])) return {};
    io::File f = io::File::open_read(comm, paths[i]);
    const bool complete = f.has_attr("/", "complete") && f.read_attr_bool("/", "complete");
    const std::string stored = f.has_attr("/", "train_config") ? f.read_attr_string("/", "train_config") : "";
    if (!complete) return {};
    if (stored != train_fingerprint(cfg)) {
      if (fresh) return {};
      throw UsageError(paths[i] + " was trained with a different data/sae/train configuration; rerun with --fresh "
                       "to replace it, or choose another run.output_dir");
    }
    TrainedSae t;
    t.path = paths[i];
    t.seed = cfg.sae.seeds[i];
    t.ground_truth_mmcs = f.read_attr_double("/", "ground_truth_mmcs");
    t.fvu = f.read_attr_double("/", "fvu");
    t.l0 = f.read_attr_double("/", "l0");
    t.dead_fraction = f.read_attr_double("/", "dead_fraction");
    t.reused = true;
    found.push_back(t);
  }
  return fresh ? std::vector<TrainedSae>{} : found;
}

}  // namespace

std::vector<std::string> sae_output_paths(const config::Config& config) {
  std::vector<std::string> paths;
  for (int64_t seed : config.sae.seeds)
    paths.push_back((std::filesystem::path(config.run.output_dir) / "saes" / ("seed" + std::to_string(seed) + ".h5")).string());
  return paths;
}

std::vector<TrainedSae> run_train_stage(const parallel::Comm& comm, const config::Config& cfg, bool fresh) {
  if (auto reused = reuse_outputs(comm, cfg, fresh); !reused.empty()) {
    log::info("train: reusing {} complete SAE files in {}/saes (same configuration; --fresh retrains)",
              reused.size(), cfg.run.output_dir);
    return reused;
  }
  const auto& t = cfg.train;
  const data::SyntheticSource source(cfg.data.synthetic);
  const int64_t d = source.d(), n = cfg.sae.n_latents, B = t.batch_size, mb = t.micro_batch;
  const int64_t steps = t.tokens / B;
  const double base_lr = t.lr > 0 ? t.lr : 2e-4 / std::sqrt(static_cast<double>(n) / 16384.0);
  const int64_t k_aux = t.k_aux > 0 ? t.k_aux : std::min<int64_t>(512, std::max<int64_t>(1, d / 2));
  const core::Range my_chunks = core::shard_range(B / mb, comm.rank(), comm.size());
  log::info("train: {} seeds × topk SAE d={} n={} k={}, {} steps of {} tokens ({} micro-batches of {}; rank 0 has {}), lr {:.3g}",
            cfg.sae.seeds.size(), d, n, cfg.sae.k, steps, B, B / mb, mb, my_chunks.size(), base_lr);

  // b_dec from the first global batch, computed identically on every rank.
  std::vector<float> first(static_cast<size_t>(B * d));
  source.tokens(0, B, first.data());
  const std::vector<double> b_dec0 = t.b_dec_init == "mean" ? core::mean_point(first.data(), B, d)
                                                            : core::geometric_median(first.data(), B, d);
  std::vector<Member> members;
  for (int64_t seed : cfg.sae.seeds) {
    Member m;
    m.seed = seed;
    m.sae = core::TopKSae(core::TopKSaeOptions{d, n, cfg.sae.k, cfg.sae.apply_b_dec_to_input}, static_cast<uint64_t>(seed));
    {
      torch::NoGradGuard no_grad;
      for (int64_t j = 0; j < d; ++j) m.sae->b_dec[j] = b_dec0[j];
    }
    m.optimizer = std::make_unique<torch::optim::Adam>(
        m.sae->parameters(),
        torch::optim::AdamOptions(base_lr).betas({t.adam_beta1, t.adam_beta2}).eps(t.adam_eps));
    m.grad_acc.assign(static_cast<size_t>(parameter_count(m.sae)), core::wide_int{0});
    m.tokens_since_fired.assign(static_cast<size_t>(n), 0);
    m.fires.assign(static_cast<size_t>(n), 0);
    for (auto& p : m.sae->parameters()) p.mutable_grad() = torch::zeros_like(p);
    members.push_back(std::move(m));
  }

  io::ensure_directory(comm, (std::filesystem::path(cfg.run.output_dir) / "saes").string());
  std::ofstream metrics_log;
  if (comm.is_root()) metrics_log.open(std::filesystem::path(cfg.run.output_dir) / "train_log.jsonl");

  log::Progress progress("train", steps * B, "tokens");
  const auto start = std::chrono::steady_clock::now();
  std::vector<double> data_sums(static_cast<size_t>(d + 1));
  for (int64_t step = 0; step < steps; ++step) {
    const double lr = learning_rate(t, base_lr, step, steps);
    const bool log_step = (step + 1) % t.log_every == 0 || step + 1 == steps;
    std::fill(data_sums.begin(), data_sums.end(), 0.0);
    std::vector<torch::Tensor> dead_masks;
    for (auto& m : members) {
      torch::Tensor mask = torch::zeros({n});
      float* dead = mask.data_ptr<float>();
      for (int64_t i = 0; i < n; ++i) dead[i] = m.tokens_since_fired[i] >= t.dead_tokens ? 1.0f : 0.0f;
      dead_masks.push_back(mask);
    }
    for (int64_t c = my_chunks.begin; c < my_chunks.end; ++c) {
      const torch::Tensor x = tokens_tensor(source, step * B + c * mb, mb);  // read once for all seeds
      if (log_step) add_data_sums(x, data_sums.data());
      for (size_t s = 0; s < members.size(); ++s) {
        Member& m = members[s];
        const auto out = m.sae->forward(x);
        const torch::Tensor residual = x - out.x_hat;
        torch::Tensor loss = residual.pow(2).sum() / static_cast<double>(B);
        const torch::Tensor aux_hat = m.sae->auxk_reconstruction(out.post, dead_masks[s], k_aux);
        if (aux_hat.defined()) {
          const torch::Tensor aux_loss = (residual.detach() - aux_hat).pow(2).sum() / static_cast<double>(B);
          loss = loss + t.auxk_alpha * aux_loss;
          m.aux += aux_loss.item<double>();
        }
        loss.backward();
        accumulate_gradients(m);
        m.sse += residual.detach().to(torch::kDouble).pow(2).sum().item<double>();
        count_fires(out, m.fires, m.active);
      }
    }

    for (auto& m : members) {
      comm.allreduce_sum(m.grad_acc.data(), static_cast<int64_t>(m.grad_acc.size()));
      comm.allreduce_sum(m.fires.data(), n);
      install_reduced_gradients(m);
      m.sae->remove_parallel_decoder_grad();
      if (t.grad_clip > 0) torch::nn::utils::clip_grad_norm_(m.sae->parameters(), t.grad_clip);
      for (auto& group : m.optimizer->param_groups()) group.options().set_lr(lr);
      m.optimizer->step();
      m.sae->zero_grad(/*set_to_none=*/false);
      m.sae->normalize_decoder();
      for (int64_t i = 0; i < n; ++i) m.tokens_since_fired[i] = m.fires[i] > 0 ? 0 : m.tokens_since_fired[i] + B;
      std::fill(m.fires.begin(), m.fires.end(), 0);
    }

    if (log_step) {
      comm.allreduce_sum(data_sums.data(), d + 1);
      const double sst = total_variance(data_sums.data(), d, B);
      const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::string extra;
      for (auto& m : members) {
        double sums[3] = {m.sse, m.aux, static_cast<double>(m.active)};
        comm.allreduce_sum(sums, 3);
        int64_t dead = 0;
        for (int64_t i = 0; i < n; ++i) dead += m.tokens_since_fired[i] >= t.dead_tokens;
        const double fvu = sums[0] / sst, l0 = sums[2] / static_cast<double>(B);
        if (metrics_log.is_open())
          metrics_log << fmt::format(
              "{{\"step\": {}, \"tokens\": {}, \"seed\": {}, \"fvu\": {:.6g}, \"l0\": {:.4g}, \"dead_fraction\": {:.6g}, "
              "\"aux_loss\": {:.6g}, \"lr\": {:.6g}, \"tokens_per_s\": {:.6g}}}\n",
              step + 1, (step + 1) * B, m.seed, fvu, l0, static_cast<double>(dead) / static_cast<double>(n),
              sums[1] / static_cast<double>(B), lr, static_cast<double>((step + 1) * B) / elapsed)
                 << std::flush;
        if (&m == &members.front()) extra = fmt::format("seed {} FVU {:.4f} L0 {:.1f}", m.seed, fvu, l0);
      }
      progress.update((step + 1) * B, extra);
    }
    for (auto& m : members) m.sse = m.aux = 0, m.active = 0;
  }
  progress.finish();

  // Ground truth: the synthetic dictionary's rows against each decoder (MMCS).
  const compare::TileSizes tiles{cfg.compare.tile_rows, cfg.compare.tile_cols};
  const int64_t m_gt = source.n_features();
  const torch::Tensor dictionary =
      torch::from_blob(const_cast<float*>(source.dictionary().data()), {m_gt, d}, torch::kFloat);
  const core::Range gt_rows = compare::a_rows_of_rank(m_gt, tiles, comm);

  std::vector<TrainedSae> trained;
  const auto paths = sae_output_paths(cfg);
  for (size_t s = 0; s < members.size(); ++s) {
    Member& m = members[s];
    torch::NoGradGuard no_grad;
    const Evaluation e = evaluate(comm, m, source, cfg);
    const double mmcs =
        compare::max_cosine(comm, dictionary.narrow(0, gt_rows.begin, gt_rows.size()), m_gt, m.sae->W_dec, tiles).mcs_ab;
    io::SaeWeights w;
    w.header.architecture = "topk";
    w.header.d_in = d;
    w.header.n_latents = n;
    w.header.k = cfg.sae.k;
    w.header.seed = m.seed;
    w.header.hookpoint = cfg.data.hookpoint;
    w.header.model = cfg.data.source;
    w.header.apply_b_dec_to_input = cfg.sae.apply_b_dec_to_input;
    w.header.config = config::to_toml(cfg);
    w.W_enc = m.sae->W_enc.detach();
    w.b_enc = m.sae->b_enc.detach();
    w.W_dec = m.sae->W_dec.detach();
    w.b_dec = m.sae->b_dec.detach();
    w.frequency = e.frequency;
    w.metrics = {{"ground_truth_mmcs", mmcs}, {"fvu", e.fvu}, {"l0", e.l0}, {"dead_fraction", e.dead_fraction},
                 {"train_tokens", static_cast<double>(steps * B)}};
    w.string_attrs = {{"train_config", train_fingerprint(cfg)}};  // decides whether a rerun may reuse it
    io::write_sae(comm, paths[s], w);
    trained.push_back({paths[s], m.seed, mmcs, e.fvu, e.l0, e.dead_fraction, false});
    log::info("train: wrote {} (ground-truth MMCS {:.4f}, FVU {:.4f}, L0 {:.2f})", paths[s], mmcs, e.fvu, e.l0);
  }
  return trained;
}

}  // namespace universae::train
