// universae compare: weight similarity of every pair of SAE files → results.h5 + summary.csv.
#include <CLI/CLI.hpp>

#include <filesystem>

#include "app/commands.hpp"
#include "app/summary.hpp"
#include "compare/compare_saes.hpp"
#include "core/error.hpp"

namespace universae::app {

void add_compare(CLI::App& app, Action& action) {
  struct Options {
    std::string config;
    std::vector<std::string> saes;
    std::string out;
    std::vector<std::string> overrides;
    std::vector<std::string> activations;
    std::vector<std::string> baselines;
    bool fresh = false;
  };
  auto opts = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand(
      "compare",
      "Compare SAEs, every pair: decoder and encoder max cosine both ways (argmax, MCS), the certified\n"
      "Hungarian matching (mean matched cosine, shared and equal fractions), SVCCA/RSA/CKA/mutual kNN of the\n"
      "paired decoder rows with permutation tests, N-seed overlap; with --activations, firing frequency,\n"
      "exact activation correlation both ways, the four mappings, top-5 tokens, the non-concept filter and\n"
      "semantic subspaces. Baselines (--baseline, compare.baseline_random) are compared with the first SAE.\n"
      "  universae compare --sae A.h5 --sae B.h5 [--sae C.h5 ...] [--activations STORE|synthetic] --out results.h5\n"
      "  universae compare --sae A.h5 --activations storeA.h5 --sae B.h5 --activations storeB.h5 --out results.h5\n"
      "      (SAEs of different models over the same tokens: each SAE encodes its own store)\n"
      "  universae compare CONFIG.toml        (compare.saes, output in run.output_dir)");
  cmd->add_option("config", opts->config, "config file (TOML); optional with --sae");
  cmd->add_option("--sae", opts->saes, "an SAE file (repeat; at least two)");
  cmd->add_option("--out", opts->out, "results file (default <run.output_dir>/results.h5); summary.csv goes beside it");
  cmd->add_option("--activations", opts->activations,
                  "activation store (HDF5) or \"synthetic\" for activation statistics (= compare.activations); "
                  "once per --sae: each SAE's own store (= compare.sae_activations)");
  cmd->add_option("--baseline", opts->baselines, "a baseline SAE file, compared with the first SAE (repeatable)");
  cmd->add_option("--set", opts->overrides, "override a config key: section.key=value (repeatable)");
  cmd->add_flag("--fresh", opts->fresh, "recompute even when a complete results file with the same settings and inputs exists");
  cmd->footer(config_keys_help({"run", "data", "compare"}, true));
  cmd->callback([opts, &action] {
    if (opts->config.empty() && opts->saes.empty())
      throw CLI::ValidationError("compare", "give a CONFIG file or at least two --sae files");
    action = [opts](const parallel::Comm& comm) {
      config::Config cfg = load_config(opts->config, opts->overrides);
      if (!opts->saes.empty()) cfg.compare.saes = opts->saes;
      if (opts->activations.size() == 1) {
        cfg.compare.activations = opts->activations[0];
        cfg.compare.sae_activations.clear();
      } else if (!opts->activations.empty()) {
        if (opts->activations.size() != cfg.compare.saes.size())
          throw UsageError("--activations: give one store for all SAEs or one per SAE (" + std::to_string(cfg.compare.saes.size()) +
                           "), got " + std::to_string(opts->activations.size()));
        cfg.compare.sae_activations = opts->activations;
      }
      for (const auto& b : opts->baselines) cfg.compare.baselines.push_back(b);
      if (!opts->activations.empty() || !opts->baselines.empty()) config::validate(cfg);
      if (cfg.compare.saes.empty())
        throw UsageError(opts->config + ": compare.saes is empty; name the SAE files there or with --sae");
      print_pairs(opts->out.empty() ? compare::run_compare_stage(comm, cfg, {}, opts->fresh)
                                    : compare::compare_saes(comm, cfg, opts->out, opts->fresh));
      save_resolved_config(comm, cfg, opts->out.empty() ? cfg.run.output_dir : std::filesystem::path(opts->out).parent_path().string());
      return 0;
    };
  });
}

}  // namespace universae::app
