// universae train CONFIG.toml: activation source → SAE files.
#include <CLI/CLI.hpp>

#include "app/commands.hpp"
#include "app/summary.hpp"

namespace universae::app {

void add_train(CLI::App& app, Action& action) {
  struct Options {
    std::string config;
    std::vector<std::string> overrides;
    bool fresh = false;
  };
  auto opts = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("train", "Train an SAE seed ensemble; writes <run.output_dir>/saes/seed<S>.h5");
  cmd->add_option("config", opts->config, "config file (TOML)")->required();
  cmd->add_option("--set", opts->overrides, "override a config key: section.key=value (repeatable)");
  cmd->add_flag("--fresh", opts->fresh, "retrain even when complete SAE files with the same config exist");
  cmd->footer(config_keys_help({"run", "data", "sae", "train"}, true));
  cmd->callback([opts, &action] {
    action = [opts](const parallel::Comm& comm) {
      const config::Config cfg = load_config(opts->config, opts->overrides);
      print_trained(train::run_train_stage(comm, cfg, opts->fresh), cfg.data.source == "synthetic");
      save_resolved_config(comm, cfg, cfg.run.output_dir);
      return 0;
    };
  });
}

}  // namespace universae::app
