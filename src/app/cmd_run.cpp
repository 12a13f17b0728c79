// universae run JOB.toml: every stage the job names (run.stages), in order. A job with a [grid]
// runs extract once, then train and compare once per combination of the grid's values (each in
// <run.output_dir>/<task id>/), then compares across the keys run.compare_across names, and writes
// <run.output_dir>/study_summary.csv with one row per compared pair.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <filesystem>
#include <map>

#include "app/commands.hpp"
#include "app/summary.hpp"
#include "parallel/log.hpp"

namespace universae::app {
namespace {

bool has_stage(const config::Config& c, const std::string& stage) {
  return std::find(c.run.stages.begin(), c.run.stages.end(), stage) != c.run.stages.end();
}

struct GridResult {
  config::GridTask task;
  config::Config config;
  std::vector<train::TrainedSae> trained;
};

int run_grid(const parallel::Comm& comm, const std::string& job, const std::vector<std::string>& overrides,
             const config::Config& cfg, bool fresh) {
  if (has_stage(cfg, "extract")) print_extracted(lm::run_extract_stage(comm, cfg, fresh));
  const auto tasks = config::expand_grid(cfg);
  std::vector<GridResult> done;
  std::vector<StudyRow> rows;
  std::string stages;
  for (const auto& s : cfg.run.stages)
    if (s != "extract") stages += (stages.empty() ? "\"" : ", \"") + s + "\"";
  for (size_t i = 0; i < tasks.size(); ++i) {
    const auto& task = tasks[i];
    std::vector<std::string> sets = overrides;
    sets.insert(sets.end(), task.sets.begin(), task.sets.end());
    sets.push_back("run.output_dir=" + (std::filesystem::path(cfg.run.output_dir) / task.id).string());
    sets.push_back("extract.store=" + cfg.extract.store);
    sets.push_back("run.stages=[" + stages + "]");
    GridResult r{task, config::load(job, sets), {}};
    log::info("task {}/{}: {}", i + 1, tasks.size(), task.id);
    if (has_stage(r.config, "train")) r.trained = train::run_train_stage(comm, r.config, fresh);
    if (has_stage(r.config, "compare"))
      for (auto& p : compare::run_compare_stage(comm, r.config, train::sae_output_paths(r.config), fresh))
        rows.push_back({task.id, std::move(p)});
    print_trained(r.trained, r.config.data.source == "synthetic");
    done.push_back(std::move(r));
  }

  // Across a key: the first seed of every task whose other grid values are equal.
  for (const auto& key : cfg.run.compare_across) {
    const auto axis = static_cast<size_t>(
        std::find_if(cfg.grid.begin(), cfg.grid.end(), [&](const config::GridAxis& a) { return a.key == key; }) - cfg.grid.begin());
    std::map<std::string, std::vector<const GridResult*>> groups;
    for (const auto& r : done) {
      std::string group;
      for (size_t a = 0; a < cfg.grid.size(); ++a)
        if (a != axis)
          group += (group.empty() ? "" : ",") + cfg.grid[a].key.substr(cfg.grid[a].key.rfind('.') + 1) + "=" + r.task.labels[a];
      groups[group.empty() ? "all" : group].push_back(&r);
    }
    // Pair (i, j) compares task i's first seed with task j's second: the same seed would start both
    // SAEs from the same random directions, and an SAE keeps part of its initialisation.
    const std::string short_key = key.substr(key.rfind('.') + 1);
    for (const auto& [group, members] : groups) {
      for (size_t i = 0; i < members.size(); ++i)
        for (size_t j = i + 1; j < members.size(); ++j) {
          const auto a = train::sae_output_paths(members[i]->config), b = train::sae_output_paths(members[j]->config);
          const std::vector<std::string> saes{a.front(), b.size() > 1 ? b[1] : b.front()};
          if (b.size() == 1) log::warn("across {}: one seed per task, so both SAEs share their initialisation", short_key);
          const std::vector<std::string> names{members[i]->task.labels[axis], members[j]->task.labels[axis]};
          config::Config across = members[i]->config;
          across.run.output_dir =
              (std::filesystem::path(cfg.run.output_dir) / ("across_" + short_key) / group / (names[0] + "--" + names[1])).string();
          across.compare.saes = saes;
          across.compare.baseline_random = false;
          log::info("across {} ({}): {} vs {}", short_key, group, saes[0], saes[1]);
          for (auto& p : compare::run_compare_stage(comm, across, saes, fresh, names))
            rows.push_back({"across " + short_key + ": " + group, std::move(p)});
        }
    }
  }
  const std::string csv = (std::filesystem::path(cfg.run.output_dir) / "study_summary.csv").string();
  if (comm.is_root()) write_study_summary(rows, csv);
  print_study(rows);
  log::info("outputs in {} (study table: {})", cfg.run.output_dir, csv);
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
  cmd->footer(config_keys_help());
  cmd->callback([opts, &action] {
    action = [opts](const parallel::Comm& comm) {
      const config::Config cfg = load_config(opts->job, opts->overrides);
      if (!cfg.grid.empty()) return run_grid(comm, opts->job, opts->overrides, cfg, opts->fresh);
      std::vector<train::TrainedSae> trained;
      std::vector<compare::PairSummary> pairs;
      for (const auto& stage : cfg.run.stages) {
        log::info("stage {}", stage);
        if (stage == "extract") print_extracted(lm::run_extract_stage(comm, cfg, opts->fresh));
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
