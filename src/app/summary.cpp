#include "app/summary.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "parallel/log.hpp"

namespace universae::app {

void print_trained(const std::vector<train::TrainedSae>& trained, bool synthetic) {
  if (!log::enabled() || trained.empty()) return;
  fmt::print("\n{:<8} {:>10} {:>8} {:>8} {:>14}   {}\n", "seed", synthetic ? "GT MMCS" : "", "FVU", "L0",
             "never fired", "file");
  for (const auto& t : trained)
    fmt::print("{:<8} {:>10} {:>8.4f} {:>8.2f} {:>13.1f}%   {}{}\n", t.seed,
               synthetic ? fmt::format("{:.4f}", t.ground_truth_mmcs) : "", t.fvu, t.l0, 100 * t.dead_fraction, t.path,
               t.reused ? " (reused)" : "");
  std::fflush(stdout);
}

void print_pairs(const std::vector<compare::PairSummary>& pairs) {
  if (!log::enabled() || pairs.empty()) return;
  fmt::print("\n{:<24} {:>12} {:>12} {:>12} {:>12}\n", "pair (MCS)", "decoder a→b", "decoder b→a", "encoder a→b",
             "encoder b→a");
  for (const auto& p : pairs)
    fmt::print("{:<24} {:>12.6f} {:>12.6f} {:>12.6f} {:>12.6f}\n", p.a + "--" + p.b, p.decoder_mcs_ab,
               p.decoder_mcs_ba, p.encoder_mcs_ab, p.encoder_mcs_ba);
  if (pairs.front().has_lap) {
    fmt::print("\n{:<24} {:>12} {:>12} {:>12} {:>12} {:>10}\n", "pair (Hungarian)", "mean cos dec", "mean cos enc",
               "shared", "equal", "certified");
    for (const auto& p : pairs)
      fmt::print("{:<24} {:>12.6f} {:>12.6f} {:>12.4f} {:>12.4f} {:>10}\n", p.a + "--" + p.b, p.mean_cos_decoder,
                 p.mean_cos_encoder, p.shared_fraction, p.equal_fraction, p.certified ? "yes" : "NO");
  }
  if (!pairs.front().repsim.empty()) {
    fmt::print("\n{:<24}", "pair (paired decoders)");
    for (const auto& m : pairs.front().repsim) fmt::print(" {:>18}", m.first + " (p)");
    fmt::print("\n");
    for (const auto& p : pairs) {
      fmt::print("{:<24}", p.a + "--" + p.b);
      for (const auto& m : p.repsim) fmt::print(" {:>18}", fmt::format("{:.4f} ({:.3g})", m.second.first, m.second.second));
      fmt::print("\n");
    }
  }
  const bool activations = std::any_of(pairs.begin(), pairs.end(), [](const auto& p) { return p.has_activation; });
  if (activations) {
    fmt::print("\n{:<24} {:>12} {:>12} {:>8} {:>18} {:>18}\n", "pair (activations)", "max corr a→b", "max corr b→a",
               "pairs", "svcca (p)", "rsa (p)");
    for (const auto& p : pairs) {
      auto metric = [&](const char* name) {
        for (const auto& m : p.activation_repsim)
          if (m.first == name) return fmt::format("{:.4f} ({:.3g})", m.second.first, m.second.second);
        return std::string("-");
      };
      fmt::print("{:<24} {:>12.6f} {:>12.6f} {:>8} {:>18} {:>18}\n", p.a + "--" + p.b, p.mean_max_corr_ab,
                 p.mean_max_corr_ba, p.activation_pairs, metric("svcca"), metric("rsa"));
    }
  }
  std::fflush(stdout);
}

}  // namespace universae::app
