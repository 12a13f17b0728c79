#include "app/summary.hpp"

#include <fmt/format.h>

#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "io/output.hpp"
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

namespace universae::app {

void print_extracted(const lm::ExtractResult& r) {
  if (!log::enabled()) return;
  fmt::print("\n{:<12} {:>10} {:>10} {:>12} {:>14}   {}\n", "store", "documents", "sequences", "tokens", "loss (nats)",
             "hookpoints");
  fmt::print("{:<12} {:>10} {:>10} {:>12} {:>14}   {}{}\n", std::filesystem::path(r.store).filename().string(), r.n_documents,
             r.n_sequences, r.n_tokens, std::isnan(r.loss) ? std::string("-") : fmt::format("{:.4f}", r.loss),
             fmt::join(r.hookpoints, ", "), r.reused ? " (reused)" : "");
  std::fflush(stdout);
}

}  // namespace universae::app

namespace universae::app {
namespace {

// The scalar statistics of a pair, in column order (NaN where the pair has none).
// Every representational-similarity metric any row has (decoder pairs, then activation pairs): the
// CSV's columns are the same for every row.
struct StudyMetrics {
  std::vector<std::string> repsim, activation;
};

StudyMetrics study_metrics(const std::vector<StudyRow>& rows) {
  StudyMetrics names;
  auto add = [](std::vector<std::string>& to, const auto& metrics) {
    for (const auto& m : metrics)
      if (std::find(to.begin(), to.end(), m.first) == to.end()) to.push_back(m.first);
  };
  for (const auto& r : rows) add(names.repsim, r.pair.repsim), add(names.activation, r.pair.activation_repsim);
  return names;
}

std::vector<std::pair<std::string, double>> study_columns(const StudyMetrics& metrics, const compare::PairSummary& p) {
  const double nan = std::nan("");
  std::vector<std::pair<std::string, double>> c = {
      {"decoder_mcs_ab", p.decoder_mcs_ab}, {"decoder_mcs_ba", p.decoder_mcs_ba},
      {"encoder_mcs_ab", p.encoder_mcs_ab}, {"encoder_mcs_ba", p.encoder_mcs_ba},
      {"lap_mean_cos_decoder", p.has_lap ? p.mean_cos_decoder : nan}, {"lap_mean_cos_encoder", p.has_lap ? p.mean_cos_encoder : nan},
      {"shared_fraction", p.has_lap ? p.shared_fraction : nan}, {"certified", p.has_lap ? double(p.certified) : nan},
      {"mean_max_corr_ab", p.has_activation ? p.mean_max_corr_ab : nan},
      {"mean_max_corr_ba", p.has_activation ? p.mean_max_corr_ba : nan}};
  auto add = [&](const std::vector<std::string>& names, const auto& values, const std::string& prefix) {
    for (const auto& name : names) {
      double score = nan, p_value = nan;
      for (const auto& m : values)
        if (m.first == name) score = m.second.first, p_value = m.second.second;
      c.push_back({prefix + name, score});
      c.push_back({prefix + name + "_p", p_value});
    }
  };
  add(metrics.repsim, p.repsim, "");
  add(metrics.activation, p.activation_repsim, "activation_");
  return c;
}

}  // namespace

void write_study_summary(const std::vector<StudyRow>& rows, const std::string& path) {
  if (rows.empty()) return;
  std::string out = "scope,a,b";
  const StudyMetrics metrics = study_metrics(rows);
  for (const auto& [name, value] : study_columns(metrics, rows.front().pair)) out += "," + name;
  out += "\n";
  for (const auto& r : rows) {
    out += "\"" + r.scope + "\"," + r.pair.a + "," + r.pair.b;
    for (const auto& [name, value] : study_columns(metrics, r.pair)) out += std::isnan(value) ? "," : fmt::format(",{:.6g}", value);
    out += "\n";
  }
  // As before, a table that cannot be written is skipped: every row's source is a results.h5 file.
  (void)io::publish_text(path, out);
}

void print_study(const std::vector<StudyRow>& rows) {
  if (!log::enabled() || rows.empty()) return;
  fmt::print("\n{:<44} {:<34} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}\n", "scope", "pair", "MCS dec", "LAP dec", "shared",
             "corr", "SVCCA", "RSA");
  for (const auto& r : rows) {
    const auto& p = r.pair;
    auto metric = [&](const char* name) {
      for (const auto& m : p.repsim)
        if (m.first == name) return fmt::format("{:.4f}", m.second.first);
      return std::string("-");
    };
    fmt::print("{:<44} {:<34} {:>8.4f} {:>8} {:>8} {:>8} {:>8} {:>8}\n", r.scope, p.a + "--" + p.b,
               (p.decoder_mcs_ab + p.decoder_mcs_ba) / 2, p.has_lap ? fmt::format("{:.4f}", p.mean_cos_decoder) : "-",
               p.has_lap ? fmt::format("{:.4f}", p.shared_fraction) : "-",
               p.has_activation ? fmt::format("{:.4f}", (p.mean_max_corr_ab + p.mean_max_corr_ba) / 2) : "-", metric("svcca"),
               metric("rsa"));
  }
  std::fflush(stdout);
}

}  // namespace universae::app
