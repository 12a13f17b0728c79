#include "app/summary.hpp"

#include <fmt/format.h>

#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "compare/console.hpp"
#include "io/output.hpp"
#include "parallel/log.hpp"

namespace universae::app {

void print_trained(const std::vector<train::TrainedSae>& trained, bool synthetic) {
  if (!log::enabled() || trained.empty()) return;
  // FVU, L0 and "never fired" are measured on the held-out tokens (train.eval_tokens); the report's
  // firing frequencies are over the compared tokens.
  bool spliced = false;
  for (const auto& t : trained) spliced = spliced || !std::isnan(t.ce_loss_score);
  fmt::print("\n{:<8} {}{:>8} {:>8} {:>24} {}  {}\n", "seed", synthetic ? fmt::format("{:>10} ", "GT MMCS") : "", "FVU", "L0",
             "never fired (held-out)", spliced ? fmt::format("{:>9} {:>9} ", "CE score", "KL score") : "", "file");
  for (const auto& t : trained)
    fmt::print("{:<8} {}{:>8.4f} {:>8.2f} {:>23.1f}% {}  {}{}\n", t.seed,
               synthetic ? fmt::format("{:>10.4f} ", t.ground_truth_mmcs) : "", t.fvu, t.l0, 100 * t.dead_fraction,
               spliced ? fmt::format("{:>9.4f} {:>9.4f} ", t.ce_loss_score, t.kl_div_score) : "", t.path, t.reused ? " (reused)" : "");
  std::fflush(stdout);
}

namespace {

std::string cell(const io::SummaryTable& table, const io::SummaryRow& row, const std::string& name, const compare::Display& d) {
  using Style = compare::Display::Style;
  const double v = table.value(row, name);
  if (std::isnan(v)) return "-";
  switch (d.style) {
    case Style::kFixed6: return fmt::format("{:.6f}", v);
    case Style::kFixed4: return fmt::format("{:.4f}", v);
    case Style::kYesNo: return v != 0 ? "yes" : "NO";
    case Style::kCount: return fmt::format("{}", static_cast<int64_t>(v));
    case Style::kScoreP: return fmt::format("{:.4f} ({:.3g})", v, table.value(row, name + "_p"));
  }
  return "?";
}

}  // namespace

void print_pairs(const io::SummaryTable& pairs) {
  if (!log::enabled() || pairs.rows.empty()) return;
  for (const compare::ConsoleTable& t : compare::console_tables()) {
    const bool any = std::any_of(pairs.rows.begin(), pairs.rows.end(), [&](const io::SummaryRow& r) {
      return std::any_of(t.columns.begin(), t.columns.end(), [&](const auto& c) { return !std::isnan(pairs.value(r, c.first)); });
    });
    if (!any) continue;
    fmt::print("\n{:<24}", t.title);
    for (const auto& [name, d] : t.columns) fmt::print(" {:>{}}", d.heading, d.width);
    fmt::print("\n");
    for (const auto& r : pairs.rows) {
      fmt::print("{:<24}", r.pair);
      for (const auto& [name, d] : t.columns) fmt::print(" {:>{}}", cell(pairs, r, name, d), d.width);
      fmt::print("\n");
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

void write_study_summary(const io::SummaryTable& rows, const std::string& path) {
  if (rows.rows.empty()) return;
  // As before, a table that cannot be written is skipped: every row's source is a results.h5 file.
  (void)io::publish_text(path, io::summary_csv(rows, /*with_scope=*/true));
}

void print_study(const io::SummaryTable& t) {
  if (!log::enabled() || t.rows.empty()) return;
  fmt::print("\n{:<44} {:<34} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}\n", "scope", "pair", "MCS dec", "LAP dec", "shared",
             "corr", "SVCCA", "RSA");
  auto text = [](double v) { return std::isnan(v) ? std::string("-") : fmt::format("{:.4f}", v); };
  for (const auto& r : t.rows) {
    auto mean = [&](const char* x, const char* y) { return (t.value(r, x) + t.value(r, y)) / 2; };
    fmt::print("{:<44} {:<34} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}\n", r.scope, r.pair, text(mean("decoder_mcs_ab", "decoder_mcs_ba")),
               text(t.value(r, "mean_cos_decoder")), text(t.value(r, "shared_fraction")),
               text(mean("mean_max_corr_ab", "mean_max_corr_ba")), text(t.value(r, "svcca")), text(t.value(r, "rsa")));
  }
  std::fflush(stdout);
}

}  // namespace universae::app
