// universae run JOB.toml: every stage the job names (run.stages), in order.
#include <CLI/CLI.hpp>

#include "app/commands.hpp"
#include "app/summary.hpp"
#include "parallel/log.hpp"

namespace universae::app {

void add_run(CLI::App& app, Action& action) {
  struct Options {
    std::string job;
    std::vector<std::string> overrides;
    bool fresh = false;
  };
  auto opts = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("run", "Run every stage a job names (run.stages: train, compare), in order");
  cmd->add_option("job", opts->job, "job file (TOML), e.g. jobs/quickstart.toml")->required();
  cmd->add_option("--set", opts->overrides, "override a config key: section.key=value (repeatable)");
  cmd->add_flag("--fresh", opts->fresh, "recompute every stage even when its outputs are complete");
  cmd->footer(config_keys_help());
  cmd->callback([opts, &action] {
    action = [opts](const parallel::Comm& comm) {
      const config::Config cfg = load_config(opts->job, opts->overrides);
      std::vector<train::TrainedSae> trained;
      std::vector<compare::PairSummary> pairs;
      for (const auto& stage : cfg.run.stages) {
        log::info("stage {}", stage);
        if (stage == "train") trained = train::run_train_stage(comm, cfg, opts->fresh);
        if (stage == "compare") pairs = compare::run_compare_stage(comm, cfg, train::sae_output_paths(cfg), opts->fresh);
      }
      print_trained(trained, cfg.data.source == "synthetic");
      print_pairs(pairs);
      log::info("outputs in {}", cfg.run.output_dir);
      return 0;
    };
  });
}

}  // namespace universae::app
