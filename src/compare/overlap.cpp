#include "compare/overlap.hpp"

#include <stdexcept>

namespace universae::compare {

std::vector<char> shared_latents(const PairMatching& p, int side, int64_t n_side, double tau) {
  std::vector<char> shared(static_cast<size_t>(n_side), 0);
  if (side == 0) {
    for (size_t i = 0; i < p.decoder.match_ab.size(); ++i)
      shared[i] = p.decoder.match_ab[i] >= 0 && p.encoder.match_ab[i] >= 0 && p.decoder.cos_ab[i] > tau &&
                  p.encoder.cos_ab[i] > tau;
    return shared;
  }
  // From b's side: the a latent matched to each b latent, separately for decoder and encoder.
  std::vector<float> dec(static_cast<size_t>(n_side), -2.0f), enc(static_cast<size_t>(n_side), -2.0f);
  for (size_t i = 0; i < p.decoder.match_ab.size(); ++i) {
    if (p.decoder.match_ab[i] >= 0) dec[p.decoder.match_ab[i]] = p.decoder.cos_ab[i];
    if (p.encoder.match_ab[i] >= 0) enc[p.encoder.match_ab[i]] = p.encoder.cos_ab[i];
  }
  for (int64_t j = 0; j < n_side; ++j) shared[j] = dec[j] > tau && enc[j] > tau;
  return shared;
}

Overlap n_seed_overlap(const std::vector<int64_t>& n_latents, const std::vector<PairMatching>& pairs, double tau) {
  const auto s = static_cast<int64_t>(n_latents.size());
  Overlap o;
  o.n_saes = s;
  o.histogram.assign(static_cast<size_t>(s), std::vector<int64_t>(static_cast<size_t>(s), 0));
  o.histogram_mean.assign(static_cast<size_t>(s), 0.0);
  o.unique_fraction.assign(static_cast<size_t>(s > 1 ? s - 1 : 0), 0.0);
  // shared_with[base][other] = per-latent indicator
  std::vector<std::vector<std::vector<char>>> shared(static_cast<size_t>(s), std::vector<std::vector<char>>(static_cast<size_t>(s)));
  for (const auto& p : pairs) {
    shared[p.a][p.b] = shared_latents(p, 0, n_latents[p.a], tau);
    shared[p.b][p.a] = shared_latents(p, 1, n_latents[p.b], tau);
  }
  for (int64_t base = 0; base < s; ++base) {
    std::vector<int64_t> count(static_cast<size_t>(n_latents[base]), 0);
    std::vector<char> any(static_cast<size_t>(n_latents[base]), 0);
    int64_t m = 0;
    for (int64_t other = 0; other < s; ++other) {  // the others in ensemble order
      if (other == base) continue;
      if (shared[base][other].empty()) throw std::invalid_argument("n_seed_overlap: a pair is missing");
      for (int64_t i = 0; i < n_latents[base]; ++i) {
        count[i] += shared[base][other][i];
        any[i] |= shared[base][other][i];
      }
      int64_t none = 0;
      for (char a : any) none += !a;
      o.unique_fraction[m++] += static_cast<double>(none) / static_cast<double>(n_latents[base]) / static_cast<double>(s);
    }
    for (int64_t c : count) ++o.histogram[base][c];
    o.shared_count.push_back(count);
    for (int64_t k = 0; k < s; ++k)
      o.histogram_mean[k] += static_cast<double>(o.histogram[base][k]) / static_cast<double>(n_latents[base]) /
                             static_cast<double>(s);
  }
  return o;
}

}  // namespace universae::compare
