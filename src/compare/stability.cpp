// Per-latent stability across seeds (compare/stability.hpp).
#include "compare/stability.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "compare/statistics.hpp"
#include "core/data_sums.hpp"
#include "core/sharding.hpp"
#include "io/sae_file.hpp"
#include "parallel/log.hpp"

namespace universae::compare {
namespace {

constexpr int64_t kRandomDraws = 32;

// An orthonormal basis (d, rank) of the rows' span: singular values above 1e-6 of the largest.
at::Tensor row_basis(const at::Tensor& rows) {
  const auto [u, s, vh] = at::linalg_svd(rows.to(at::kDouble), /*full_matrices=*/false);
  const double top = s.numel() > 0 ? s.max().item<double>() : 0.0;
  const int64_t rank = top > 0 ? (s > top * 1e-6).sum().item<int64_t>() : 0;
  return vh.narrow(0, 0, rank).t();
}

// Mean and standard deviation of the mean principal cosine of random Gaussian row sets of sizes p and q.
std::pair<double, double> random_cosines(int64_t p, int64_t q, int64_t d, uint64_t seed) {
  // Both sets of at least d Gaussian rows span R^d (with probability 1), so every cosine is 1; the draws
  // gave 1 to within 1e-15 and, at 131,072 latents (39K unshared rows of d = 256), took about 90 s of
  // normal draws and SVDs on each rank, as long as the two similarity passes together.
  if (p >= d && q >= d) return {1.0, 0.0};
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal;
  std::vector<double> means;
  for (int64_t draw = 0; draw < kRandomDraws; ++draw) {
    at::Tensor a = at::empty({p, d}, at::kDouble), b = at::empty({q, d}, at::kDouble);
    for (const at::Tensor& t : {a, b})
      for (int64_t i = 0; i < t.numel(); ++i) t.data_ptr<double>()[i] = normal(rng);
    const std::vector<double> c = principal_cosines(a, b);
    double sum = 0;
    for (double v : c) sum += v;
    means.push_back(c.empty() ? std::nan("") : sum / static_cast<double>(c.size()));
  }
  double mean = 0, var = 0;
  for (double m : means) mean += m / static_cast<double>(means.size());
  for (double m : means) var += (m - mean) * (m - mean) / static_cast<double>(means.size() - 1);
  return {mean, std::sqrt(var)};
}

// The unshared latents' spans of one pair against random row sets of the same sizes.
void write_pair_angles(const config::Config& cfg, io::File& f, const PairMatching& p, const std::vector<io::SaeHeader>& headers,
                       const std::vector<at::Tensor>& decoders, const std::vector<std::string>& names) {
  const double tau = cfg.compare.shared_threshold;
  at::Tensor rows[2];
  for (int side = 0; side < 2; ++side) {
    const int64_t s = side == 0 ? p.a : p.b;
    const std::vector<char> shared = shared_latents(p, side, headers[static_cast<size_t>(s)].n_latents, tau);
    std::vector<int64_t> unshared;
    for (size_t i = 0; i < shared.size(); ++i)
      if (!shared[i]) unshared.push_back(static_cast<int64_t>(i));
    rows[side] = decoders[static_cast<size_t>(s)].index_select(0, at::tensor(unshared, at::kLong));
  }
  const std::string g = "/stability/pairs/" + names[static_cast<size_t>(p.a)] + "--" + names[static_cast<size_t>(p.b)];
  f.create_group(g);
  const std::vector<double> cosines = principal_cosines(rows[0], rows[1]);
  double mean = 0;
  for (double c : cosines) mean += c / static_cast<double>(cosines.size());
  const auto [random_mean, random_std] =
      random_cosines(rows[0].size(0), rows[1].size(0), rows[0].size(1), static_cast<uint64_t>(cfg.compare.seed) * 7919 + 17);
  f.write_vector(g + "/angle_cosines", io::DType::kFloat64, cosines);
  f.write_attr(g, "n_unshared_a", rows[0].size(0));
  f.write_attr(g, "n_unshared_b", rows[1].size(0));
  f.write_attr(g, "rank_a", row_basis(rows[0]).size(1));
  f.write_attr(g, "rank_b", row_basis(rows[1]).size(1));
  f.write_attr(g, "mean_cos", cosines.empty() ? std::nan("") : mean);
  f.write_attr(g, "random_mean_cos", random_mean);
  f.write_attr(g, "random_std_cos", random_std);
}

// Σ of `values` over the latents with stable fraction `fraction` (0 or 1), over Σ of all of them.
double share_of(const std::vector<double>& values, const std::vector<double>& stable, double fraction, bool normalise) {
  double part = 0, all = 0;
  for (size_t i = 0; i < values.size(); ++i) {
    all += values[i];
    if (stable[i] == fraction) part += values[i];
  }
  return normalise ? part / all : part;
}

// One seed's group: its stable fractions, frequency and (with activations) the ablation effects.
void write_seed(const parallel::Comm& comm, const config::Config& cfg, io::File& f, const std::string& name, const io::SaeWeights& w,
                const std::vector<int64_t>& shared_count, int64_t others, const ActivationInput* input) {
  const io::SaeHeader& h = w.header;
  const std::string g = "/stability/" + name;
  f.create_group(g);
  std::vector<double> stable;
  for (int64_t c : shared_count) stable.push_back(static_cast<double>(c) / static_cast<double>(others));
  f.write_vector(g + "/stable_fraction", io::DType::kFloat64, stable);
  const auto count = [&](double v) { return static_cast<double>(std::count(stable.begin(), stable.end(), v)) / static_cast<double>(stable.size()); };
  f.write_attr(g, "always_fraction", count(1.0));
  f.write_attr(g, "never_fraction", count(0.0));
  const std::string frequency = "/saes/" + name + "/frequency";
  if (f.exists(frequency)) {
    std::vector<double> freq(static_cast<size_t>(h.n_latents));
    f.read_rows(frequency, {0, h.n_latents}, freq.data());
    f.write_vector(g + "/frequency", io::DType::kFloat64, freq);
  }
  if (input == nullptr) return;
  const LatentEffects e = latent_effects(comm, io::encoder_weights(w), w.W_dec, *input, cfg.compare.chunk_tokens);
  f.write_vector(g + "/fvu_increase", io::DType::kFloat64, e.fvu_increase);
  f.write_vector(g + "/energy", io::DType::kFloat64, e.energy);
  f.write_attr(g, "fvu", e.fvu);
  f.write_attr(g, "always_energy", share_of(e.energy, stable, 1.0, true));
  f.write_attr(g, "never_energy", share_of(e.energy, stable, 0.0, true));
  f.write_attr(g, "always_fvu_increase", share_of(e.fvu_increase, stable, 1.0, false));
  f.write_attr(g, "never_fvu_increase", share_of(e.fvu_increase, stable, 0.0, false));
}

}  // namespace

LatentEffects latent_effects(const parallel::Comm& comm, const core::SaeEncoderWeights& encoder, const at::Tensor& W_dec,
                             const ActivationInput& in, int64_t chunk_tokens) {
  const int64_t n = W_dec.size(0), d = W_dec.size(1);
  const at::Tensor w2 = W_dec.to(at::kDouble).pow(2).sum(1);
  at::Tensor delta = at::zeros({n}, at::kDouble), energy = at::zeros({n}, at::kDouble);
  std::vector<double> sums(static_cast<size_t>(d + 2), 0.0);  // Σx (d), Σ‖x‖² (core::add_data_sums), Σ‖x̂ − x‖²
  const core::Range mine = core::shard_range(core::ceil_div(in.n_tokens, chunk_tokens), comm.rank(), comm.size());
  std::vector<float> buffer;
  for (int64_t c = mine.begin; c < mine.end; ++c) {
    const int64_t first = c * chunk_tokens, count = std::min(chunk_tokens, in.n_tokens - first);
    buffer.resize(static_cast<size_t>(count * d));
    in.read(first, count, buffer.data());
    const at::Tensor x = at::from_blob(buffer.data(), {count, d}, at::kFloat);
    const at::Tensor z = core::codes(encoder, x);
    const at::Tensor r = at::addmm(encoder.b_dec, z, W_dec) - x;  // x̂ − x
    const at::Tensor zd = z.to(at::kDouble), g = at::matmul(r, W_dec.t()).to(at::kDouble);
    // Without latent i: ‖r − z_i W_i‖² − ‖r‖² = −2 z_i (W_i · r) + z_i² ‖W_i‖².
    delta += (zd * zd * w2 - 2 * zd * g).sum(0);
    energy += (zd * zd * w2).sum(0);
    core::add_data_sums(x, sums.data());
    sums[static_cast<size_t>(d + 1)] += r.to(at::kDouble).pow(2).sum().item<double>();
  }
  comm.allreduce_sum(delta.data_ptr<double>(), n);
  comm.allreduce_sum(energy.data_ptr<double>(), n);
  comm.allreduce_sum(sums.data(), d + 2);
  const double total = core::total_variance(sums.data(), d, in.n_tokens);  // Σ‖x − x̄‖²
  LatentEffects e;
  e.fvu = sums[static_cast<size_t>(d + 1)] / total;
  e.fvu_increase.resize(static_cast<size_t>(n));
  e.energy.assign(energy.data_ptr<double>(), energy.data_ptr<double>() + n);
  for (int64_t i = 0; i < n; ++i) e.fvu_increase[static_cast<size_t>(i)] = delta.data_ptr<double>()[i] / total;
  return e;
}

std::vector<double> principal_cosines(const at::Tensor& a, const at::Tensor& b) {
  if (a.size(0) == 0 || b.size(0) == 0) return {};
  const at::Tensor s = at::linalg_svdvals(at::matmul(row_basis(a).t(), row_basis(b))).clamp_max(1.0);
  return {s.data_ptr<double>(), s.data_ptr<double>() + s.numel()};
}

void write_stability(const parallel::Comm& comm, const config::Config& cfg, io::File& f, const std::vector<io::SaeHeader>& headers,
                     const std::vector<std::string>& names, size_t n_main, const std::vector<PairMatching>& matchings,
                     const ActivationData* activations) {
  if (n_main < 2 || matchings.size() != n_main * (n_main - 1) / 2) return;
  std::vector<int64_t> sizes;
  for (size_t i = 0; i < n_main; ++i) sizes.push_back(headers[i].n_latents);
  const Overlap o = n_seed_overlap(sizes, matchings, cfg.compare.shared_threshold);
  f.create_group("/stability");
  f.write_attr("/stability", "threshold", cfg.compare.shared_threshold);
  log::Progress progress("stability", static_cast<int64_t>(n_main + matchings.size()), "SAEs and pairs");
  std::vector<at::Tensor> decoders;  // each seed read once; its decoder kept for the pairs
  for (size_t s = 0; s < n_main; ++s) {
    const io::SaeWeights w = io::read_sae(comm, headers[s].path);
    decoders.push_back(w.W_dec);
    write_seed(comm, cfg, f, names[s], w, o.shared_count[s], static_cast<int64_t>(n_main) - 1,
               activations ? &activations->input(s) : nullptr);
    progress.update(static_cast<int64_t>(s + 1));
  }
  for (size_t p = 0; p < matchings.size(); ++p) {
    write_pair_angles(cfg, f, matchings[p], headers, decoders, names);
    progress.update(static_cast<int64_t>(n_main + p + 1));
  }
  progress.finish();
}

}  // namespace universae::compare
