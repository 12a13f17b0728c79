// Consistency over training (compare/training_curve.hpp): every snapshot step's pairs through the
// weight-space statistics of the registry, then the curves.
#include "compare/training_curve.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <regex>

#include "compare/statistics.hpp"
#include "io/sae_file.hpp"
#include "parallel/log.hpp"

namespace universae::compare {
namespace {

namespace fs = std::filesystem;

struct PairValues {
  double decoder_mcs = std::nan(""), mean_cos_decoder = std::nan(""), shared_fraction = std::nan("");
};

// The values a pair's groups hold (below /pairs/<a>--<b> or /training/tokens<T>/<a>--<b>).
PairValues read_pair(const io::File& f, const std::string& group) {
  PairValues v;
  if (f.has_attr(group + "/decoder", "mcs_ab"))
    v.decoder_mcs = 0.5 * (f.read_attr_double(group + "/decoder", "mcs_ab") + f.read_attr_double(group + "/decoder", "mcs_ba"));
  if (f.has_attr(group + "/lap", "mean_cos_decoder")) {
    v.mean_cos_decoder = f.read_attr_double(group + "/lap", "mean_cos_decoder");
    v.shared_fraction = f.read_attr_double(group + "/lap", "shared_fraction");
  }
  return v;
}

// The training tokens an SAE file records (−1: none).
double train_tokens_of(const parallel::Comm& comm, const std::string& path) {
  const io::File sae = io::File::open_read(comm, path);
  return sae.has_attr("/", "train_tokens") ? sae.read_attr_double("/", "train_tokens") : -1;
}

// The snapshots of every compared SAE at the steps they all have; empty unless all have the same.
std::map<int64_t, std::vector<std::string>> common_snapshots(const std::vector<io::SaeHeader>& headers, size_t n_main) {
  std::map<int64_t, std::vector<std::string>> steps;
  for (size_t i = 0; i < n_main; ++i) {
    const auto found = find_snapshots(headers[i].path);
    if (found.empty()) return {};
    if (i > 0 && found.size() != steps.size()) return {};
    for (const auto& [tokens, path] : found) {
      if (i > 0 && !steps.count(tokens)) return {};
      steps[tokens].push_back(path);
    }
  }
  return steps;
}

// One step: each pair of the snapshots through max cosine (and the matching) into its group.
void compare_step(const parallel::Comm& comm, const config::Config& cfg, io::File& f, const std::string& step_group,
                  const std::vector<std::string>& paths, const std::vector<std::string>& names) {
  std::vector<io::SaeHeader> headers;
  for (const auto& p : paths) headers.push_back(io::read_sae_header(comm, p));
  for (size_t i = 0; i < headers.size(); ++i)
    for (size_t j = i + 1; j < headers.size(); ++j) {
      const std::string group = step_group + "/" + names[i] + "--" + names[j];
      f.create_group(group);
      PairContext ctx(comm, cfg, f, group, headers, i, j, nullptr);
      if (!ctx.weight_space_skipped.empty()) continue;
      max_cosine_statistic().write(ctx);
      if (cfg.compare.hungarian) hungarian_statistic().write(ctx);
    }
}

}  // namespace

std::vector<std::pair<int64_t, std::string>> find_snapshots(const std::string& sae_path) {
  const fs::path sae(sae_path);
  const fs::path dir = sae.parent_path().parent_path() / "snapshots" / sae.stem();
  std::vector<std::pair<int64_t, std::string>> found;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return found;
  static const std::regex name(R"(tokens(\d+)\.h5)");
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    std::smatch m;
    const std::string file = entry.path().filename().string();
    if (std::regex_match(file, m, name)) found.emplace_back(std::stoll(m[1].str()), entry.path().string());
  }
  std::sort(found.begin(), found.end());
  return found;
}

void write_training_curves(const parallel::Comm& comm, const config::Config& cfg, io::File& f,
                           const std::vector<io::SaeHeader>& headers, const std::vector<std::string>& names, size_t n_main) {
  const auto steps = common_snapshots(headers, n_main);
  if (steps.empty() || n_main < 2) return;
  const std::vector<std::string> main_names(names.begin(), names.begin() + static_cast<std::ptrdiff_t>(n_main));
  std::vector<int64_t> tokens;
  std::vector<std::string> groups;
  log::Progress progress("training curve", static_cast<int64_t>(steps.size()), "snapshots");
  for (const auto& [t, paths] : steps) {
    groups.push_back("/training/tokens" + std::to_string(t));
    compare_step(comm, cfg, f, groups.back(), paths, main_names);
    tokens.push_back(t);
    progress.update(static_cast<int64_t>(tokens.size()));
  }
  progress.finish();
  // The final SAEs end the curves when they were trained past the last snapshot.
  const double final_tokens = train_tokens_of(comm, headers[0].path);
  if (final_tokens > static_cast<double>(tokens.back())) tokens.push_back(static_cast<int64_t>(final_tokens)), groups.push_back("/pairs");

  std::vector<std::string> pairs;
  std::vector<double> mcs, mean_cos, shared;
  for (size_t i = 0; i < n_main; ++i)
    for (size_t j = i + 1; j < n_main; ++j) {
      pairs.push_back(main_names[i] + "--" + main_names[j]);
      for (const auto& g : groups) {
        const PairValues v = read_pair(f, g + "/" + pairs.back());
        mcs.push_back(v.decoder_mcs), mean_cos.push_back(v.mean_cos_decoder), shared.push_back(v.shared_fraction);
      }
    }
  const std::vector<int64_t> shape = {static_cast<int64_t>(pairs.size()), static_cast<int64_t>(tokens.size())};
  f.write_vector("/training/tokens", io::DType::kInt64, tokens);
  f.write_strings("/training/pairs", pairs);
  f.write_table("/training/decoder_mcs", io::DType::kFloat64, mcs, shape);
  f.write_table("/training/mean_cos_decoder", io::DType::kFloat64, mean_cos, shape);
  f.write_table("/training/shared_fraction", io::DType::kFloat64, shared, shape);
  log::info("compare: consistency over training at {} steps ({} to {} tokens) in /training", tokens.size(), tokens.front(), tokens.back());
}

}  // namespace universae::compare
