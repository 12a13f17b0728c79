#include "io/inspect.hpp"

#include <ATen/Functions.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "io/foreign_sae.hpp"
#include "io/fingerprint.hpp"
#include "io/h5.hpp"
#include "io/results_file.hpp"
#include "io/sae_file.hpp"
#include "io/text_file.hpp"

namespace universae::io {
namespace {

std::string attr_text(const File& f, const std::string& object, const std::string& name) {
  try {
    return std::to_string(f.read_attr_int(object, name));  // integers exactly (seeds reach 2^63)
  } catch (...) {
  }
  try {
    return fmt::format("{:.6g}", f.read_attr_double(object, name));
  } catch (...) {
  }
  try {
    std::string s = f.read_attr_string(object, name);
    if (s.find('\n') != std::string::npos) return fmt::format("<{} lines of text>", std::count(s.begin(), s.end(), '\n'));
    return s;
  } catch (...) {
  }
  try {
    return f.read_attr_bool(object, name) ? "true" : "false";
  } catch (...) {
  }
  try {
    const auto list = f.read_attr_strings(object, name);
    return fmt::format("[{} strings]", list.size());
  } catch (...) {
  }
  return "<unreadable>";
}

void describe_tree(const File& f, const std::string& group, int depth, std::string& out) {
  for (const auto& name : f.children(group)) {
    const std::string path = (group == "/" ? "/" : group + "/") + name;
    const std::string indent(static_cast<size_t>(2 * depth + 2), ' ');
    if (f.is_group(path)) {
      out += fmt::format("{}{}/\n", indent, name);
      for (const auto& a : f.attr_names(path)) out += fmt::format("{}  @{} = {}\n", indent, a, attr_text(f, path, a));
      describe_tree(f, path, depth + 1, out);
    } else {
      out += fmt::format("{}{} {}\n", indent, name, shape_text(f.shape(path)));
    }
  }
}

std::string describe_sae(const parallel::Comm& comm, const std::string& path) {
  const SaeWeights sae = read_sae(comm, path);
  const auto& h = sae.header;
  const auto format = detect_sae_format(path);
  const bool foreign = format && *format != SaeFormat::kUniversae;
  std::string out = foreign ? fmt::format("{}: {} SAE directory\n", path, sae_format_name(*format))
                            : fmt::format("{}: universae SAE file (format_version 1, complete)\n", path);
  out += fmt::format("  architecture {}  d_in {}  n_latents {}", core::name_of(h.architecture), h.d_in, h.n_latents);
  if (h.k > 0) out += fmt::format("  k {}", h.k);
  out += fmt::format("  seed {}\n  hookpoint '{}'  model '{}'  apply_b_dec_to_input {}\n", h.seed, h.hookpoint,
                     h.model, h.apply_b_dec_to_input ? "true" : "false");
  const at::Tensor norms = sae.W_dec.norm(2, 1);
  out += fmt::format("  decoder row norms: min {:.4f} max {:.4f}\n", norms.min().item<float>(), norms.max().item<float>());
  if (sae.frequency.defined()) {
    const at::Tensor f = sae.frequency;
    out += fmt::format("  firing frequency: mean {:.4g}, never fired {} of {} latents\n", f.mean().item<double>(),
                       at::eq(f, 0).sum().item<int64_t>(), h.n_latents);
  }
  for (const auto& [name, value] : sae.string_attrs)
    if (name == "source_format" || name == "source_dtype" || name == "source_path")
      out += fmt::format("  {} = {}\n", name, value);
  if (foreign) return out;
  File f = File::open_read(comm, path);
  for (const char* metric : {"ground_truth_mmcs", "ground_truth_mcc", "ground_truth_uniqueness", "ground_truth_f1", "fvu", "l0", "dead_fraction", "train_tokens", "ce_loss_score", "kl_div_score",
                             "explained_variance", "l2_ratio", "splice_tokens"})
    if (f.has_attr("/", metric)) out += fmt::format("  {} = {:.6g}\n", metric, f.read_attr_double("/", metric));
  return out;
}

// The summary columns transposed: one row per statistic, one column per pair (the first kMaxPairs).
std::string summary_text(const SummaryTable& t) {
  constexpr size_t kMaxPairs = 8;
  const size_t shown = std::min(t.rows.size(), kMaxPairs);
  const std::string title = "statistic (/summary_columns)";
  size_t name_width = title.size();
  for (const auto& c : t.columns) name_width = std::max(name_width, c.name.size());
  std::vector<size_t> widths;
  std::string out = fmt::format("  {:<{}}", title, name_width);
  for (size_t r = 0; r < shown; ++r) {
    widths.push_back(std::max<size_t>(12, t.rows[r].pair.size()));
    out += fmt::format(" {:>{}}", t.rows[r].pair, widths.back());
  }
  out += "\n";
  for (size_t c = 0; c < t.columns.size(); ++c) {
    out += fmt::format("  {:<{}}", t.columns[c].name, name_width);
    for (size_t r = 0; r < shown; ++r) {
      const double v = t.rows[r].values[c];
      out += fmt::format(" {:>{}}", std::isnan(v) ? std::string("-") : fmt::format("{:.6g}", v), widths[r]);
    }
    out += "\n";
  }
  if (t.rows.size() > shown) out += fmt::format("  ... and {} more pairs (summary.csv beside the file has every one)\n", t.rows.size() - shown);
  return out;
}

std::string describe_results(const parallel::Comm& comm, const File& f) {
  std::string out = fmt::format("{}: universae results file (format_version {}, {})\n", f.path(),
                                f.read_attr_int("/", "format_version"),
                                f.has_attr("/", "complete") && f.read_attr_bool("/", "complete") ? "complete" : "INCOMPLETE");
  for (const char* a : {"universae_version", "git_sha", "n_ranks"})
    if (f.has_attr("/", a)) out += fmt::format("  {} = {}\n", a, attr_text(f, "/", a));
  if (f.has_attr("/", "fingerprint"))
    out += fmt::format("  fingerprint {} (what decides reuse; the attribute holds the settings and inputs)\n",
                       fingerprint_hash(f.read_attr_string("/", "fingerprint")));
  if (f.exists("/saes")) {
    out += "  SAEs:\n";
    for (const auto& name : f.children("/saes")) {
      const std::string g = "/saes/" + name;
      out += fmt::format("    {:<16} {} n_latents {} d_in {} k {} seed {}  ({})\n", name, attr_text(f, g, "architecture"),
                         attr_text(f, g, "n_latents"), attr_text(f, g, "d_in"), attr_text(f, g, "k"),
                         attr_text(f, g, "seed"), attr_text(f, g, "path"));
      if (f.has_attr(g, "activations_source") && f.exists("/activations") && f.has_attr("/activations", "stores") &&
          f.read_attr_int("/activations", "stores") > 1)
        out += fmt::format("    {:<16} reads {} at {} (model {})\n", "", attr_text(f, g, "activations_source"),
                           attr_text(f, g, "activations_hookpoint"), attr_text(f, g, "activations_model"));
    }
  }
  if (f.exists("/activations"))
    out += fmt::format("  activations: {} tokens of {} ({}, hookpoint {})\n", f.read_attr_int("/activations", "n_tokens"),
                       f.read_attr_string("/activations", "source"), f.read_attr_string("/activations", "input"),
                       f.read_attr_string("/activations", "hookpoint"));
  if (!f.exists("/pairs")) return out;
  for (const auto& pair : f.children("/pairs"))
    if (f.has_attr("/pairs/" + pair, "weight_space_skipped"))
      out += fmt::format("  {}: no weight-space statistics: {}\n", pair, f.read_attr_string("/pairs/" + pair, "weight_space_skipped"));
  if (!f.exists("/summary_columns")) {  // written before the column table existed
    out += "  (no /summary_columns: written by universae before 0.2; its groups follow)\n";
    describe_tree(f, "/pairs", 1, out);
    return out;
  }
  return out + summary_text(read_summary(comm, f.path()));
}

}  // namespace

std::string describe_file(const parallel::Comm& comm, const std::string& path) {
  std::string format;
  if (const auto foreign = detect_sae_format(path); foreign && *foreign != SaeFormat::kUniversae)
    return describe_sae(comm, path);
  {
    File f = File::open_read(comm, path);
    if (f.has_attr("/", "format")) format = f.read_attr_string("/", "format");
    if (format == kResultsFormat) return describe_results(comm, f);
    if (format != kSaeFormat) {
      std::string out = fmt::format("{}: HDF5 file{}\n", path, format.empty() ? "" : " with format '" + format + "'");
      for (const auto& a : f.attr_names("/")) out += fmt::format("  @{} = {}\n", a, attr_text(f, "/", a));
      describe_tree(f, "/", 0, out);
      return out;
    }
  }
  return describe_sae(comm, path);
}

}  // namespace universae::io
