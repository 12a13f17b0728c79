// A study: a job's [grid] expanded into tasks, each task's config, and the comparisons within and
// across tasks. `universae run` runs a study in one process; `universae sweep` runs the same steps as
// separate jobs (sweep/sweep.hpp), so both write the same files in the same places:
//
//   <run.output_dir>/activations.h5            the one extraction every task reads
//   <run.output_dir>/<task id>/saes/seed*.h5   each task's SAEs, and its results.h5
//   <run.output_dir>/across_<key>/<group>/<a--b>/results.h5   task pairs differing only in <key>
//   <run.output_dir>/study_summary.csv         one row per compared pair
//
// A job without a [grid] is a study of one task whose outputs are run.output_dir itself.
#pragma once

#include <string>
#include <vector>

#include "compare/compare_saes.hpp"
#include "io/results_file.hpp"
#include "config/config.hpp"
#include "parallel/comm.hpp"

namespace universae::sweep {

class Study {
 public:
  // `config` is config::load(job, overrides).
  Study(std::string job, std::vector<std::string> overrides, config::Config config);

  const config::Config& config() const { return config_; }
  const std::string& job() const { return job_; }
  const std::vector<std::string>& overrides() const { return overrides_; }
  const std::vector<config::GridTask>& tasks() const { return tasks_; }
  bool has_stage(config::Stage stage) const { return config_.has_stage(stage); }

  // Task i's config: the grid's values, outputs in <run.output_dir>/<id>, the study's one store.
  // Validated (config::load): a bad combination is a UsageError naming the task.
  config::Config task_config(size_t i) const;
  // "task 3/12 (n_latents=512,k=8)".
  std::string describe(size_t i) const;

  // Without MPI, from the files (io/fingerprint.hpp): whether the outputs are complete and carry the
  // fingerprint the current settings and inputs make, i.e. would be reused.
  bool trained(const config::Config& task) const;
  bool compared(const config::Config& task) const;
  bool extracted() const;

  // Collective. The task's SAEs compared with each other (a complete results file is reused); the
  // rows' scope is the task id (the job's name without a grid).
  io::SummaryTable compare_task(const parallel::Comm& comm, const config::Config& task, const config::GridTask& id,
                                bool fresh) const;
  // Collective. For each run.compare_across key, the tasks among `tasks` (indices) whose other grid
  // values are equal, pairwise: task i's first seed against task j's second; scope "across KEY: GROUP".
  io::SummaryTable compare_across(const parallel::Comm& comm, const std::vector<size_t>& tasks, bool fresh) const;

  std::string summary_path() const;  // <run.output_dir>/study_summary.csv

 private:
  std::string job_;
  std::vector<std::string> overrides_;
  config::Config config_;
  std::vector<config::GridTask> tasks_;
};

}  // namespace universae::sweep
