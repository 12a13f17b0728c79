// universae run JOB.toml: every stage the job names (run.stages), in order. A job with a [grid]
// runs extract once, then train and compare once per combination of the grid's values (each in
// <run.output_dir>/<task id>/), then compares across the keys run.compare_across names, and writes
// <run.output_dir>/study_summary.csv with one row per compared pair.
#include <CLI/CLI.hpp>

#include "app/commands.hpp"
#include "app/summary.hpp"
#include "compare/compare_saes.hpp"
#include "io/output_lock.hpp"
#include "lm/extract_stage.hpp"
#include "sweep/study.hpp"
#include "train/train_stage.hpp"
#include "parallel/log.hpp"

namespace universae::app {
namespace {

int run_grid(const parallel::Comm& comm, const sweep::Study& study, bool fresh) {
  const auto& cfg = study.config();
  if (study.has_stage(config::Stage::kExtract))
    for (size_t e = 0; e < study.extractions().size(); ++e) {
      if (study.extractions().size() > 1) log::info("{}", study.describe_extraction(e));
      print_extracted(lm::run_extract_stage(comm, study.extraction_config(e), fresh));
    }
  io::SummaryTable rows;
  std::vector<size_t> all;
  for (size_t i = 0; i < study.tasks().size(); ++i) {
    const config::Config task = study.task_config(i);
    log::info("{}", study.describe(i));
    std::vector<train::TrainedSae> trained;
    if (study.has_stage(config::Stage::kTrain)) trained = train::run_train_stage(comm, task, fresh);
    if (study.has_stage(config::Stage::kCompare))
      rows.append(study.compare_task(comm, task, study.tasks()[i], fresh));
    print_trained(trained, task.data.source == "synthetic");
    all.push_back(i);
  }
  if (study.has_stage(config::Stage::kCompare))
    rows.append(study.compare_across(comm, all, fresh));
  if (comm.is_root()) write_study_summary(rows, study.summary_path());
  print_study(rows);
  save_resolved_config(comm, cfg, cfg.run.output_dir);
  log::info("outputs in {} (study table: {})", cfg.run.output_dir, study.summary_path());
  return 0;
}

}  // namespace

void add_run(CLI::App& app, Action& action) {
  struct Options {
    std::string job;
    std::vector<std::string> overrides;
    bool fresh = false;
  };
  auto opts = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand(
      "run", "Run every stage a job names (run.stages: extract, train, compare), in order; with a [grid], train and compare "
             "once per combination and compare across run.compare_across");
  cmd->add_option("job", opts->job, "job file (TOML), e.g. jobs/quickstart.toml")->required();
  cmd->add_option("--set", opts->overrides, "override a config key: section.key=value (repeatable)");
  cmd->add_flag("--fresh", opts->fresh, "recompute every stage even when its outputs are complete");
  cmd->footer(config_keys_help({"run", "extract", "data", "sae", "train", "compare"}, true));
  cmd->callback([opts, &action] {
    action = [opts](const parallel::Comm& comm) {
      const config::Config cfg = load_config(opts->job, opts->overrides);
      const io::OutputLock lock(comm, cfg.run.output_dir, "run " + opts->job);  // the whole job's directory
      if (!cfg.grid.empty()) return run_grid(comm, sweep::Study(opts->job, opts->overrides, cfg), opts->fresh);
      std::vector<train::TrainedSae> trained;
      io::SummaryTable pairs;
      for (const config::Stage stage : cfg.run.stages) {
        log::info("stage {}", core::name_of(stage));
        if (stage == config::Stage::kExtract) print_extracted(lm::run_extract_stage(comm, cfg, opts->fresh));
        if (stage == config::Stage::kTrain) trained = train::run_train_stage(comm, cfg, opts->fresh);
        if (stage == config::Stage::kCompare) pairs = compare::run_compare_stage(comm, cfg, train::sae_output_paths(cfg), opts->fresh);
      }
      print_trained(trained, cfg.data.source == "synthetic");
      print_pairs(pairs);
      save_resolved_config(comm, cfg, cfg.run.output_dir);
      log::info("outputs in {}", cfg.run.output_dir);
      return 0;
    };
  });
}

}  // namespace universae::app
