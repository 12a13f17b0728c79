#include "sweep/study.hpp"

#include <algorithm>
#include <filesystem>
#include <map>

#include "core/error.hpp"
#include "io/fingerprint.hpp"
#include "lm/extract_stage.hpp"
#include "parallel/log.hpp"
#include "train/train_stage.hpp"

namespace universae::sweep {

Study::Study(std::string job, std::vector<std::string> overrides, config::Config config)
    : job_(std::move(job)), overrides_(std::move(overrides)), config_(std::move(config)), tasks_(config::expand_grid(config_)) {
  if (tasks_.empty()) tasks_.push_back({});  // no grid: one task, the job itself
}

config::Config Study::task_config(size_t i) const {
  const auto& task = tasks_.at(i);
  if (task.id.empty()) return config_;
  std::vector<std::string> sets = overrides_;
  sets.insert(sets.end(), task.sets.begin(), task.sets.end());
  sets.push_back("run.output_dir=" + (std::filesystem::path(config_.run.output_dir) / task.id).string());
  sets.push_back("extract.store=" + config_.extract.store);
  try {
    return config::load(job_, sets);
  } catch (const UsageError& e) {
    throw UsageError(describe(i) + ": " + e.what());
  }
}

std::string Study::describe(size_t i) const {
  const std::string n = std::to_string(i + 1) + "/" + std::to_string(tasks_.size());
  return tasks_[i].id.empty() ? "task " + n : "task " + n + " (" + tasks_[i].id + ")";
}

bool Study::trained(const config::Config& task) const {
  const auto paths = train::sae_output_paths(task);
  const std::string fingerprint = train::train_fingerprint(task);
  for (size_t s = 0; s < paths.size(); ++s)
    if (!io::reusable(paths[s], train::sae_fingerprint(fingerprint, task.sae.seeds[s]))) return false;
  return true;
}

bool Study::compared(const config::Config& task) const {
  const config::Config cfg = compare::with_saes(task, train::sae_output_paths(task));
  return io::reusable((std::filesystem::path(task.run.output_dir) / "results.h5").string(), compare::compare_fingerprint(cfg));
}

bool Study::extracted() const { return io::reusable(config_.extract.store, lm::store_fingerprint(config_)); }

io::SummaryTable Study::compare_task(const parallel::Comm& comm, const config::Config& task, const config::GridTask& id,
                                     bool fresh) const {
  io::SummaryTable rows;
  rows.append(compare::run_compare_stage(comm, task, train::sae_output_paths(task), fresh), id.id.empty() ? config_.run.name : id.id);
  return rows;
}

io::SummaryTable Study::compare_across(const parallel::Comm& comm, const std::vector<size_t>& tasks, bool fresh) const {
  io::SummaryTable rows;
  if (config_.run.compare_across.empty()) return rows;
  const auto& grid = config_.grid;
  std::map<size_t, config::Config> configs;  // each task's config read once, not once per pair it is in
  for (size_t t : tasks) configs.emplace(t, task_config(t));
  for (const auto& key : config_.run.compare_across) {
    const auto axis = static_cast<size_t>(
        std::find_if(grid.begin(), grid.end(), [&](const config::GridAxis& a) { return a.key == key; }) - grid.begin());
    std::map<std::string, std::vector<size_t>> groups;
    for (size_t t : tasks) {
      std::string group;
      for (size_t a = 0; a < grid.size(); ++a)
        if (a != axis)
          group += (group.empty() ? "" : ",") + grid[a].key.substr(grid[a].key.rfind('.') + 1) + "=" + tasks_[t].labels[a];
      groups[group.empty() ? "all" : group].push_back(t);
    }
    // Pair (i, j) compares task i's first seed with task j's second: the same seed would start both
    // SAEs from the same random directions, and an SAE keeps part of its initialisation.
    const std::string short_key = key.substr(key.rfind('.') + 1);
    for (const auto& [group, members] : groups) {
      for (size_t i = 0; i < members.size(); ++i)
        for (size_t j = i + 1; j < members.size(); ++j) {
          const config::Config& first = configs.at(members[i]);
          const auto a = train::sae_output_paths(first), b = train::sae_output_paths(configs.at(members[j]));
          const std::vector<std::string> saes{a.front(), b.size() > 1 ? b[1] : b.front()};
          if (b.size() == 1) log::warn("across {}: one seed per task, so both SAEs share their initialisation", short_key);
          const std::vector<std::string> names{tasks_[members[i]].labels[axis], tasks_[members[j]].labels[axis]};
          config::Config across = first;
          across.run.output_dir = (std::filesystem::path(config_.run.output_dir) / ("across_" + short_key) / group /
                                   (names[0] + "--" + names[1]))
                                      .string();
          across.compare.saes = saes;
          across.compare.names = names;
          across.compare.baseline_random = false;
          log::info("across {} ({}): {} vs {}", short_key, group, saes[0], saes[1]);
          rows.append(compare::run_compare_stage(comm, across, saes, fresh), "across " + short_key + ": " + group);
        }
    }
  }
  return rows;
}

std::string Study::summary_path() const {
  return (std::filesystem::path(config_.run.output_dir) / "study_summary.csv").string();
}

}  // namespace universae::sweep
