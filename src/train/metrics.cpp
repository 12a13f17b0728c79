#include "train/metrics.hpp"

#include <fmt/format.h>

#include <cmath>

namespace universae::train {

const std::vector<std::string>& MetricsRow::columns() {
  static const std::vector<std::string> names = {"step", "tokens", "fvu", "l0", "dead_fraction",
                                                 "aux_loss", "sparsity_loss", "lr", "tokens_per_s"};
  return names;
}

std::vector<double> MetricsRow::values() const {
  return {static_cast<double>(step), static_cast<double>(tokens), fvu, l0, dead_fraction, aux_loss, sparsity_loss, lr, tokens_per_s};
}

MetricsRow MetricsRow::from(const double* v) {
  MetricsRow r;
  r.step = static_cast<int64_t>(v[0]), r.tokens = static_cast<int64_t>(v[1]);
  r.fvu = v[2], r.l0 = v[3], r.dead_fraction = v[4], r.aux_loss = v[5], r.sparsity_loss = v[6], r.lr = v[7], r.tokens_per_s = v[8];
  return r;
}

std::string MetricsRow::jsonl(int64_t seed) const {
  return fmt::format(
      "{{\"step\": {}, \"tokens\": {}, \"seed\": {}, \"fvu\": {:.6g}, \"l0\": {:.4g}, \"dead_fraction\": {:.6g}, "
      "\"aux_loss\": {:.6g}, \"sparsity_loss\": {:.6g}, \"lr\": {:.6g}, \"tokens_per_s\": {:.6g}}}\n",
      step, tokens, seed, fvu, l0, dead_fraction, aux_loss, sparsity_loss, lr, tokens_per_s);
}

void StepSums::reduce(const Layout& layout) {
  const auto S = static_cast<int64_t>(sse.size());
  std::vector<double> all(static_cast<size_t>(S * 5));  // one message: sse, aux, sparsity, active, dead per seed
  for (int64_t s = 0; s < S; ++s) {
    const auto i = static_cast<size_t>(s);
    const double row[] = {sse[i], aux_sse[i], sparsity[i], active[i], dead[i] / static_cast<double>(layout.dp)};
    std::copy(std::begin(row), std::end(row), all.begin() + s * 5);
  }
  layout.dp_comm.allreduce_sum(all.data(), S * 5);
  std::vector<double> per_latent(static_cast<size_t>(S * 3));  // sparsity, active, dead: summed over latent shards
  for (int64_t s = 0; s < S; ++s)
    for (int j = 0; j < 3; ++j) per_latent[static_cast<size_t>(s * 3 + j)] = all[static_cast<size_t>(s * 5 + 2 + j)];
  if (layout.shards > 1) layout.latent_comm.allreduce_sum(per_latent.data(), S * 3);
  for (int64_t s = 0; s < S; ++s) {
    const auto i = static_cast<size_t>(s);
    sse[i] = all[i * 5], aux_sse[i] = all[i * 5 + 1];
    sparsity[i] = per_latent[i * 3], active[i] = per_latent[i * 3 + 1], dead[i] = per_latent[i * 3 + 2];
  }
}

MetricsRow StepSums::row(int64_t s, int64_t step, int64_t batch, double sst, int64_t n_latents, double lambda, double lr,
                         double tokens_per_s) const {
  const auto i = static_cast<size_t>(s);
  const auto B = static_cast<double>(batch);
  MetricsRow r;
  r.step = step;
  r.tokens = step * batch;
  r.fvu = sse[i] / sst;
  r.l0 = active[i] / B;
  r.dead_fraction = std::round(dead[i]) / static_cast<double>(n_latents);
  r.aux_loss = aux_sse[i] / B;
  r.sparsity_loss = lambda * sparsity[i] / B;
  r.lr = lr;
  r.tokens_per_s = tokens_per_s;
  return r;
}

}  // namespace universae::train
