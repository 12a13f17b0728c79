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

namespace {

bool is_extract_key(const std::string& key) { return key.rfind("extract.", 0) == 0; }

}  // namespace

Study::Study(std::string job, std::vector<std::string> overrides, config::Config config)
    : job_(std::move(job)), overrides_(std::move(overrides)), config_(std::move(config)), tasks_(config::expand_grid(config_)) {
  if (tasks_.empty()) tasks_.push_back({});  // no grid: one task, the job itself
  // Tasks with the same extract.* values share an extraction; without such an axis there is one.
  const auto& grid = config_.grid;
  std::map<std::string, size_t> seen;
  for (size_t t = 0; t < tasks_.size(); ++t) {
    Extraction e;
    for (size_t a = 0; a < grid.size(); ++a)
      if (is_extract_key(grid[a].key)) {
        const std::string name = grid[a].key.substr(grid[a].key.rfind('.') + 1);
        e.id += (e.id.empty() ? "" : ",") + name + "=" + tasks_[t].labels[a];
        e.sets.push_back(tasks_[t].sets[a]);
      }
    auto [it, fresh] = seen.emplace(e.id, extractions_.size());
    if (fresh) {
      const std::filesystem::path store(config_.extract.store);
      e.store = e.id.empty() ? store.string()
                             : (store.parent_path() / "extract" / e.id.substr(e.id.find('=') + 1) / store.filename()).string();
      extractions_.push_back(std::move(e));
    }
    extractions_[it->second].tasks.push_back(t);
    extraction_of_.push_back(it->second);
  }
}

config::Config Study::load_with(const std::vector<std::string>& sets, const std::string& what) const {
  std::vector<std::string> all = overrides_;
  all.insert(all.end(), sets.begin(), sets.end());
  try {
    return config::load(job_, all);
  } catch (const UsageError& e) {
    throw UsageError(what + ": " + e.what());
  }
}

config::Config Study::extraction_config(size_t e) const {
  const Extraction& x = extractions_.at(e);
  if (x.id.empty()) return config_;
  std::vector<std::string> sets = x.sets;
  sets.push_back("extract.store=" + x.store);
  return load_with(sets, describe_extraction(e));
}

std::string Study::describe_extraction(size_t e) const {
  const std::string n = std::to_string(e + 1) + "/" + std::to_string(extractions_.size());
  return extractions_[e].id.empty() ? "extraction " + n : "extraction " + n + " (" + extractions_[e].id + ")";
}

config::Config Study::task_config(size_t i) const {
  const auto& task = tasks_.at(i);
  if (task.id.empty()) return config_;
  std::vector<std::string> sets = task.sets;
  sets.push_back("run.output_dir=" + (std::filesystem::path(config_.run.output_dir) / task.id).string());
  sets.push_back("extract.store=" + extractions_[extraction_of_[i]].store);
  return load_with(sets, describe(i));
}

std::string Study::describe(size_t i) const {
  const std::string n = std::to_string(i + 1) + "/" + std::to_string(tasks_.size());
  return tasks_[i].id.empty() ? "task " + n : "task " + n + " (" + tasks_[i].id + ")";
}

std::string Study::train_problem(const config::Config& task) const {
  const auto paths = train::sae_output_paths(task);
  const std::string fingerprint = train::train_fingerprint(task);
  for (size_t s = 0; s < paths.size(); ++s)
    if (const std::string p = io::reuse_problem(paths[s], train::sae_fingerprint(fingerprint, task.sae.seeds[s])); !p.empty())
      return paths[s] + ": " + p;
  return "";
}

std::string Study::compare_problem(const config::Config& task) const {
  const config::Config cfg = compare::with_saes(task, train::sae_output_paths(task));
  const std::string results = (std::filesystem::path(task.run.output_dir) / "results.h5").string();
  const std::string p = io::reuse_problem(results, compare::compare_fingerprint(cfg));
  return p.empty() ? p : results + ": " + p;
}

bool Study::trained(const config::Config& task) const { return train_problem(task).empty(); }

bool Study::compared(const config::Config& task) const { return compare_problem(task).empty(); }

bool Study::extracted(size_t e) const {
  const config::Config cfg = extraction_config(e);
  return io::reusable(cfg.extract.store, lm::store_fingerprint(cfg));
}


io::SummaryTable Study::compare_task(const parallel::Comm& comm, const config::Config& task, const config::GridTask& id,
                                     bool fresh) const {
  io::SummaryTable rows;
  rows.append(compare::run_compare_stage(comm, task, train::sae_output_paths(task), fresh), id.id.empty() ? config_.run.name : id.id);
  return rows;
}

std::vector<AcrossPair> Study::across_pairs(const std::vector<size_t>& tasks) const {
  std::vector<AcrossPair> pairs;
  if (config_.run.compare_across.empty()) return pairs;
  const auto& grid = config_.grid;
  const auto& every = config_.run.across_every;
  auto axis_of = [&](const std::string& key) {
    return static_cast<size_t>(std::find_if(grid.begin(), grid.end(), [&](const config::GridAxis& a) { return a.key == key; }) -
                               grid.begin());
  };
  std::map<size_t, config::Config> configs;  // each task's config read once, not once per pair it is in
  for (size_t t : tasks) configs.emplace(t, task_config(t));
  for (const auto& key : config_.run.compare_across) {
    const size_t axis = axis_of(key);
    std::vector<size_t> free{axis};  // axes whose values may differ within a group, and name the SAEs
    for (const auto& k : every) free.push_back(axis_of(k));
    auto is_free = [&](size_t a) { return std::find(free.begin(), free.end(), a) != free.end(); };
    std::map<std::string, std::vector<size_t>> groups;
    for (size_t t : tasks) {
      std::string group;
      for (size_t a = 0; a < grid.size(); ++a)
        if (!is_free(a))
          group += (group.empty() ? "" : ",") + grid[a].key.substr(grid[a].key.rfind('.') + 1) + "=" + tasks_[t].labels[a];
      groups[group.empty() ? "all" : group].push_back(t);
    }
    auto name_of = [&](size_t t) {
      std::string name;
      for (size_t a : free) name += (name.empty() ? "" : "@") + tasks_[t].labels[a];  // model@layer
      return name;
    };
    // Pair (i, j) compares task i's first seed with task j's second: the same seed would start both
    // SAEs from the same random directions, and an SAE keeps part of its initialisation.
    const std::string short_key = key.substr(key.rfind('.') + 1);
    for (const auto& [group, members] : groups) {
      for (size_t i = 0; i < members.size(); ++i)
        for (size_t j = i + 1; j < members.size(); ++j) {
          if (tasks_[members[i]].labels[axis] == tasks_[members[j]].labels[axis]) continue;  // another key's pair
          const config::Config& first = configs.at(members[i]);
          const config::Config& second = configs.at(members[j]);
          const auto a = train::sae_output_paths(first), b = train::sae_output_paths(second);
          AcrossPair pair;
          pair.saes = {a.front(), b.size() > 1 ? b[1] : b.front()};
          pair.shared_init = b.size() == 1;
          const std::vector<std::string> names{name_of(members[i]), name_of(members[j])};
          config::Config across = first;
          across.run.output_dir = (std::filesystem::path(config_.run.output_dir) / ("across_" + short_key) / group /
                                   (names[0] + "--" + names[1]))
                                      .string();
          across.compare.saes = pair.saes;
          across.compare.names = names;
          across.compare.baseline_random = false;
          // Tasks of different models: each SAE encodes its own model's store. Of one model over other texts
          // (extract.inputs): both encode the first task's store, the same model's stream on one text.
          if (first.extract.store != second.extract.store && first.compare.activations == first.extract.store &&
              second.compare.activations == second.extract.store && first.extract.model != second.extract.model)
            across.compare.sae_activations = {first.extract.store, second.extract.store};
          pair.config = std::move(across);
          pair.key = short_key;
          pair.group = group;
          pairs.push_back(std::move(pair));
        }
    }
  }
  return pairs;
}

bool Study::compared(const AcrossPair& pair) const {
  const config::Config cfg = compare::with_saes(pair.config, pair.saes);
  return io::reusable((std::filesystem::path(pair.config.run.output_dir) / "results.h5").string(), compare::compare_fingerprint(cfg));
}

io::SummaryTable Study::compare_across(const parallel::Comm& comm, const std::vector<size_t>& tasks, bool fresh) const {
  io::SummaryTable rows;
  for (const auto& pair : across_pairs(tasks)) {
    if (pair.shared_init) log::warn("across {}: one seed per task, so both SAEs share their initialisation", pair.key);
    log::info("across {} ({}): {} vs {}", pair.key, pair.group, pair.saes[0], pair.saes[1]);
    rows.append(compare::run_compare_stage(comm, pair.config, pair.saes, fresh), "across " + pair.key + ": " + pair.group);
  }
  return rows;
}

std::string Study::summary_path() const {
  return (std::filesystem::path(config_.run.output_dir) / "study_summary.csv").string();
}

}  // namespace universae::sweep
