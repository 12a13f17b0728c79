// The comparison stage as named steps: read the inputs, add the random baseline, write the SAEs'
// entries, the activation pass, every pair through the statistics registry, the N-seed overlap,
// publish, and the summary.
#include "compare/compare_saes.hpp"

#include <ATen/Context.h>
#include <ATen/Functions.h>
#include <fmt/format.h>

#include <filesystem>
#include <map>
#include <optional>
#include <set>

#include "compare/overlap.hpp"
#include "compare/stability.hpp"
#include "compare/statistics.hpp"
#include "compare/training_curve.hpp"
#include "core/error.hpp"
#include "core/rng.hpp"
#include "io/fingerprint.hpp"
#include "io/foreign_sae.hpp"
#include "io/h5.hpp"
#include "io/output.hpp"
#include "io/output_lock.hpp"
#include "io/sae_file.hpp"
#include "parallel/device.hpp"
#include "parallel/log.hpp"
#include "parallel/stop_signals.hpp"

namespace universae::compare {
namespace {

// The spliced evaluation a trained SAE's file holds (train.splice_tokens), copied to /saes/<name>.
constexpr const char* kSaeQualityAttributes[] = {
    "ce_loss_score", "ce_loss_with_sae", "ce_loss_without_sae", "ce_loss_with_ablation", "kl_div_score", "kl_div_with_sae",
    "kl_div_with_ablation", "explained_variance", "l2_ratio", "relative_reconstruction_bias", "splice_l0", "splice_fvu", "splice_tokens"};

namespace fs = std::filesystem;

// What is compared: the SAEs of compare.saes, then the baselines (each compared with the first SAE).
struct Inputs {
  std::vector<io::SaeHeader> headers;
  std::vector<std::string> names;
  size_t n_main = 0;  // compare.saes; the rest are baselines
  std::vector<std::pair<size_t, size_t>> pairs;
};

// Every SAE's header, checked (collective; a UsageError on every rank) before anything is created.
Inputs read_inputs(const parallel::Comm& comm, const config::Config& cfg) {
  const auto& c = cfg.compare;
  if (c.saes.size() < 2) throw UsageError("compare needs at least two SAE files (got " + std::to_string(c.saes.size()) + ")");
  if (!c.names.empty() && c.names.size() != c.saes.size())
    throw UsageError("config key 'compare.names': needs one name per SAE (" + std::to_string(c.saes.size()) + ")");
  Inputs in;
  in.n_main = c.saes.size();
  for (const auto& path : c.saes) in.headers.push_back(io::read_sae_header(comm, path));
  for (const auto& path : c.baselines) in.headers.push_back(io::read_sae_header(comm, path));
  // Without activations only weight-space statistics exist, and they need one input space. With them,
  // SAEs of other widths are compared by their activations (PairContext::weight_space_skipped).
  if (!c.has_activations())
    for (const auto& h : in.headers)
      if (h.d_in != in.headers[0].d_in)
        throw UsageError(h.path + ": d_in " + std::to_string(h.d_in) + " differs from " + in.headers[0].path + " (" +
                         std::to_string(in.headers[0].d_in) +
                         "); weight similarity needs one input space (with compare.activations or compare.sae_activations, "
                         "SAEs of different widths are compared by their activations)");
  return in;
}

// METHODS.md §8: an untrained SAE of the first SAE's shape, with its own seed (never one a trained SAE
// was initialised from: a trained SAE stays near its initialisation). Compared last.
void add_random_baseline(const parallel::Comm& comm, const config::Config& cfg, const std::string& out_dir, Inputs& in) {
  const std::string path = (fs::path(out_dir.empty() ? "." : out_dir) / "baselines" / "random_init.h5").string();
  io::ensure_directory(comm, fs::path(path).parent_path().string());
  write_random_init_sae(comm, in.headers[0], core::mix64(static_cast<uint64_t>(cfg.compare.seed) ^ 0xBA5E11AEull) >> 1, path);
  in.headers.push_back(io::read_sae_header(comm, path));
}

// Names (compare.names for the compared SAEs, else file stems) and pairs: i < j among compare.saes,
// then every baseline with the first SAE.
void plan_pairs(const config::Config& cfg, Inputs& in) {
  std::vector<std::string> paths;
  for (const auto& h : in.headers) paths.push_back(h.path);
  in.names = sae_names(paths);
  for (size_t i = 0; i < cfg.compare.names.size() && i < in.n_main; ++i) in.names[i] = cfg.compare.names[i];
  for (size_t i = 0; i < in.n_main; ++i)
    for (size_t j = i + 1; j < in.n_main; ++j) in.pairs.push_back({i, j});
  for (size_t b = in.n_main; b < in.headers.size(); ++b) in.pairs.push_back({0, b});
}

// /saes/<name> for every SAE; without activation statistics, the frequency stored in its file.
void write_saes(const parallel::Comm& comm, io::ResultsWriter& results, const Inputs& in, bool activation_pass) {
  for (size_t i = 0; i < in.headers.size(); ++i) {
    const auto& h = in.headers[i];
    const std::string g = results.add_sae(in.names[i], h, i >= in.n_main, static_cast<int64_t>(i));
    if (io::detect_sae_format(h.path) != io::SaeFormat::kUniversae) continue;  // a sparsify or SAELens directory
    io::File sae = io::File::open_read(comm, h.path);
    for (const char* quality : kSaeQualityAttributes)
      if (sae.has_attr("/", quality)) results.file().write_attr(g, quality, sae.read_attr_double("/", quality));
    if (!h.has_frequency || activation_pass) continue;
    std::vector<double> freq(static_cast<size_t>(h.n_latents));
    sae.read_rows("/frequency", {0, h.n_latents}, freq.data());
    results.file().write_vector(g + "/frequency", io::DType::kFloat64, freq);
    results.file().write_attr(g, "frequency_source", "sae_file");
  }
}

// A kept pair's matching as its /lap group holds it (what the overlap and the stability pass read).
Matching read_matching(const io::File& f, const std::string& lap, const std::string& side) {
  Matching m;
  const int64_t n = f.shape(lap + "/" + side + "_match")[0];
  m.match_ab.resize(static_cast<size_t>(n));
  f.read_rows(lap + "/" + side + "_match", {0, n}, m.match_ab.data());
  m.cos_ab.resize(static_cast<size_t>(n));
  f.read_rows(lap + "/" + side + "_cos", {0, n}, m.cos_ab.data());
  return m;
}

// Stops (exit 75) when a signal asked: the complete pairs stay in the partial results file.
void stop_if_asked(const parallel::Comm& comm, const parallel::StopSignals& signals, int64_t done, size_t total) {
  if (!signals.requested(comm)) return;
  throw Checkpointed(fmt::format("compare stopped by a signal after {} of {} pairs; they are kept in the partial results "
                                 "file. Run the same command again to continue at the next pair.", done, total));
}

// Every pair through every statistic that applies to it, each marked complete in the file as it is
// done (pairs a resumed file holds already are read back); the trained pairs' matchings for the overlap.
std::vector<PairMatching> compare_pairs(const parallel::Comm& comm, const config::Config& cfg, io::ResultsWriter& results,
                                        const Inputs& in, ActivationData* activations, const parallel::StopSignals& signals) {
  std::vector<PairMatching> matchings;
  const parallel::DevicePlan plan = parallel::resolve_device(comm, cfg.run.device, cfg.run.kernels);
  log::info("compare: similarity passes on {}", plan.describe());
  // The certificate's bounds hold for float32 products: no TF32 (train.dtype = "tf32" sets it for the process).
  at::globalContext().setAllowTF32CuBLAS(false);
  log::Progress progress("compare", static_cast<int64_t>(in.pairs.size()), "pairs");
  int64_t done = 0;
  for (const auto& [i, j] : in.pairs) {
    const bool matched = cfg.compare.hungarian && j < in.n_main;
    const std::string group = "/pairs/" + in.names[i] + "--" + in.names[j];
    if (results.kept_pair(in.names[i], in.names[j])) {
      if (matched && !results.file().has_attr(group, "weight_space_skipped"))
        matchings.push_back({static_cast<int64_t>(i), static_cast<int64_t>(j), read_matching(results.file(), group + "/lap", "decoder"),
                             read_matching(results.file(), group + "/lap", "encoder")});
      progress.update(++done);
      continue;
    }
    results.add_pair(in.names[i], in.names[j], j >= in.n_main);
    PairContext ctx(comm, cfg, results.file(), group, in.headers, i, j, activations);
    ctx.scan = {plan.device, plan.generic(), cfg.compare.dtype, cfg.compare.screen ? Screen::kAuto : Screen::kOff};
    if (!ctx.weight_space_skipped.empty()) results.file().write_attr(group, "weight_space_skipped", ctx.weight_space_skipped);
    for (const Statistic& s : pair_statistics())
      if (s.applies(ctx)) s.write(ctx);
    if (matched && ctx.weight_space_skipped.empty())
      matchings.push_back({static_cast<int64_t>(i), static_cast<int64_t>(j), *ctx.side(Side::kDecoder).matching,
                           *ctx.side(Side::kEncoder).matching});
    results.pair_done(group);
    progress.update(++done);
    if (done < static_cast<int64_t>(in.pairs.size())) stop_if_asked(comm, signals, done, in.pairs.size());
  }
  progress.finish();
  return matchings;
}

// /overlap: per base SAE the histogram of "shared with m others", their mean, and the fraction shared
// with no other SAE as SAEs are added (in the order given).
void write_overlap(io::File& f, const config::Config& cfg, const Inputs& in, const std::vector<PairMatching>& matchings) {
  std::vector<int64_t> sizes;
  for (size_t i = 0; i < in.n_main; ++i) sizes.push_back(in.headers[i].n_latents);
  const double tau = cfg.compare.shared_threshold;
  const Overlap o = n_seed_overlap(sizes, matchings, tau);
  f.create_group("/overlap");
  f.write_attr("/overlap", "threshold", tau);
  f.write_attr("/overlap", "n_saes", o.n_saes);
  f.write_vector("/overlap/histogram_mean", io::DType::kFloat64, o.histogram_mean);
  f.write_vector("/overlap/unique_fraction", io::DType::kFloat64, o.unique_fraction);
  for (size_t b = 0; b < in.n_main; ++b) {
    f.create_group("/overlap/" + in.names[b]);
    f.write_vector("/overlap/" + in.names[b] + "/histogram", io::DType::kInt64, o.histogram[b]);
  }
}

void write_summary_csv(const parallel::Comm& comm, const std::string& path, const io::SummaryTable& summary) {
  std::string error;
  if (comm.is_root() && !io::publish_text(path, io::summary_csv(summary, false))) error = path + ": cannot write";
  parallel::agree_on_error(comm, error);
}

// compare_saes with its fingerprint already made (run_compare_stage made it to decide reuse). With
// `resume`, a partial results file of the same comparison continues at its first incomplete pair.
io::SummaryTable compare_with(const parallel::Comm& comm, const config::Config& cfg, const std::string& out_path,
                              const std::string& fingerprint, bool resume) {
  const parallel::StopSignals signals;  // SIGTERM/SIGUSR1 stop at the next pair boundary (exit 75)
  Inputs in = read_inputs(comm, cfg);
  std::optional<ActivationData> activations;
  if (cfg.compare.has_activations()) activations = open_activation_data(comm, cfg, in.headers, in.n_main);
  const std::string out_dir = fs::path(out_path).parent_path().string();
  std::optional<io::OutputLock> lock;  // results in the working directory itself are not locked
  if (!out_dir.empty()) lock.emplace(comm, out_dir, "compare");
  if (cfg.compare.baseline_random) add_random_baseline(comm, cfg, out_dir, in);
  plan_pairs(cfg, in);
  {
    std::set<std::string> planned;
    for (const auto& [i, j] : in.pairs) planned.insert(in.names[i] + "--" + in.names[j]);
    io::ResultsWriter results(comm, out_path, config::to_toml(cfg), fingerprint, resume, planned);
    try {
      write_saes(comm, results, in, activations.has_value());
    } catch (const UsageError&) {
      if (results.kept_pairs() == 0) results.discard();  // an SAE refused: nothing to resume
      throw;
    }
    if (activations) activation_pass(comm, results.file(), cfg, *activations, in.headers, in.names);
    stop_if_asked(comm, signals, static_cast<int64_t>(results.kept_pairs()), in.pairs.size());
    const auto matchings = compare_pairs(comm, cfg, results, in, activations ? &*activations : nullptr, signals);
    // The N-seed overlap needs every pair's matching (none is skipped for a different input space).
    const size_t main_pairs = in.n_main * (in.n_main - 1) / 2;
    if (cfg.compare.hungarian && in.n_main >= 3 && matchings.size() == main_pairs) {
      write_overlap(results.file(), cfg, in, matchings);
    } else if (cfg.compare.hungarian && in.n_main >= 3) {
      log::info("compare: no N-seed overlap: {} of the {} pairs have no matching (weight_space_skipped)",
                main_pairs - matchings.size(), main_pairs);
      results.file().write_attr("/", "overlap_skipped", std::string("pairs without a weight-space matching (weight_space_skipped)"));
    }
    if (cfg.compare.hungarian && matchings.size() == main_pairs)
      write_stability(comm, cfg, results.file(), in.headers, in.names, in.n_main, matchings, activations ? &*activations : nullptr);
    write_training_curves(comm, cfg, results.file(), in.headers, in.names, in.n_main);
    results.commit(summary_columns());
  }
  io::SummaryTable summary = io::read_summary(comm, out_path);
  write_summary_csv(comm, (fs::path(out_dir) / "summary.csv").string(), summary);
  return summary;
}

}  // namespace

io::SummaryTable compare_saes(const parallel::Comm& comm, const config::Config& cfg, const std::string& out_path, bool fresh) {
  return compare_with(comm, cfg, out_path, compare_fingerprint(cfg), !fresh);
}

config::Config with_saes(const config::Config& config, const std::vector<std::string>& default_saes) {
  config::Config c = config;
  if (c.compare.saes.empty()) c.compare.saes = default_saes;
  return c;
}

std::string compare_fingerprint(const config::Config& config) {
  return config::fingerprint(config, config::Stage::kCompare, io::input_identity);
}

io::SummaryTable run_compare_stage(const parallel::Comm& comm, const config::Config& config,
                                   const std::vector<std::string>& default_saes, bool fresh) {
  const config::Config cfg = with_saes(config, default_saes);
  const std::string out = (fs::path(cfg.run.output_dir) / "results.h5").string();
  const std::string fingerprint = compare_fingerprint(cfg);
  if (!fresh) {
    const std::string problem = io::reuse_problem(out, fingerprint);
    if (problem.empty()) {
      log::info("compare: reusing complete {} (same settings and inputs; --fresh recomputes)", out);
      return io::read_summary(comm, out);
    }
    if (problem != "missing") log::info("compare: recomputing {} ({})", out, problem);
  }
  if (cfg.compare.saes.empty()) throw UsageError("compare.saes is empty; name the SAE files there or with --sae");
  return compare_with(comm, cfg, out, fingerprint, !fresh);
}

std::vector<std::string> sae_names(const std::vector<std::string>& paths) {
  std::vector<std::string> names;
  std::map<std::string, int> seen;
  for (const auto& p : paths) {
    // A sparsify/SAELens SAE is a directory named after its hookpoint (layers.3): keep the whole name.
    const fs::path path = fs::path(p).lexically_normal();
    std::string stem = fs::is_directory(path) ? path.filename().string() : path.stem().string();
    if (stem.empty()) stem = path.parent_path().filename().string();
    const int count = seen[stem]++;
    names.push_back(count == 0 ? stem : stem + "_" + std::to_string(count));
  }
  return names;
}

void write_random_init_sae(const parallel::Comm& comm, const io::SaeHeader& like, uint64_t seed, const std::string& path) {
  io::SaeWeights w;
  w.header = like;
  w.header.path = path;
  w.header.seed = static_cast<int64_t>(seed);
  w.header.config = "";
  std::vector<float> rows(static_cast<size_t>(like.n_latents * like.d_in));
  core::normal_rows(rows.data(), like.n_latents, like.d_in, seed, core::kStreamSaeInit, /*unit=*/true);
  w.W_dec = at::from_blob(rows.data(), {like.n_latents, like.d_in}, at::kFloat).clone();
  w.W_enc = w.W_dec.clone();
  w.b_enc = at::zeros({like.n_latents}, at::kFloat);
  w.b_dec = at::zeros({like.d_in}, at::kFloat);
  if (like.architecture == core::Architecture::kJumpRelu) w.threshold = at::zeros({like.n_latents}, at::kFloat);
  if (like.architecture == core::Architecture::kGated)
    w.r_mag = at::zeros({like.n_latents}, at::kFloat), w.b_mag = at::zeros({like.n_latents}, at::kFloat);
  w.string_attrs.push_back({"baseline", "random_init"});
  io::write_sae(comm, path, w);
}

}  // namespace universae::compare
