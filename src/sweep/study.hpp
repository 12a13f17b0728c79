// A study: a job's [grid] expanded into tasks, each task's config, and the comparisons within and
// across tasks. `universae run` runs a study in one process; `universae sweep` runs the same steps as
// separate jobs (sweep/sweep.hpp), so both write the same files in the same places:
//
//   <run.output_dir>/activations.h5            the one extraction every task reads, or with an
//   <run.output_dir>/extract/<model>/activations.h5   extract.model axis, one per model (same documents)
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

// One extraction of a study: every task reads the one extraction of its extract.* grid values.
struct Extraction {
  std::string id;                 // "" without an extract.model axis, else "model=<label>"
  std::vector<std::string> sets;  // the extract.* grid values, as --set overrides
  std::string store;              // the activation store it writes
  std::vector<size_t> tasks;      // the tasks reading it
};

// One comparison of run.compare_across: task i's first seed against task j's second.
struct AcrossPair {
  config::Config config;           // output in <run.output_dir>/across_<key>/<group>/<a--b>, compare.saes set
  std::vector<std::string> saes;   // the two SAE files
  std::string key, group;          // the short key ("hookpoint") and the group of the other grid values ("all")
  bool shared_init = false;        // one seed per task: both SAEs start from the same initialisation
};

class Study {
 public:
  // `config` is config::load(job, overrides).
  Study(std::string job, std::vector<std::string> overrides, config::Config config);

  const config::Config& config() const { return config_; }
  const std::string& job() const { return job_; }
  const std::vector<std::string>& overrides() const { return overrides_; }
  const std::vector<config::GridTask>& tasks() const { return tasks_; }
  bool has_stage(config::Stage stage) const { return config_.has_stage(stage); }

  const std::vector<Extraction>& extractions() const { return extractions_; }
  // Extraction e's config (its model and store); validated.
  config::Config extraction_config(size_t e) const;
  // "extraction 2/3 (model=rot)".
  std::string describe_extraction(size_t e) const;

  // Task i's config: the grid's values, outputs in <run.output_dir>/<id>, its extraction's store.
  // Validated (config::load): a bad combination is a UsageError naming the task.
  config::Config task_config(size_t i) const;
  // "task 3/12 (n_latents=512,k=8)".
  std::string describe(size_t i) const;

  // Without MPI, from the files (io/fingerprint.hpp): whether the outputs are complete and carry the
  // fingerprint the current settings and inputs make, i.e. would be reused.
  bool trained(const config::Config& task) const;
  bool compared(const config::Config& task) const;
  // Why not, "" when they are: "<path>: missing" (or incomplete, made with other settings; io::reuse_problem).
  std::string train_problem(const config::Config& task) const;
  std::string compare_problem(const config::Config& task) const;
  bool extracted(size_t e) const;

  // Collective. The task's SAEs compared with each other (a complete results file is reused); the
  // rows' scope is the task id (the job's name without a grid).
  io::SummaryTable compare_task(const parallel::Comm& comm, const config::Config& task, const config::GridTask& id,
                                bool fresh) const;
  // Collective. For each run.compare_across key, the tasks among `tasks` (indices) whose other grid
  // values are equal (run.across_every's keys may differ too), pairwise when they differ in the key:
  // task i's first seed against task j's second, each on its own extraction's store; scope
  // "across KEY: GROUP".
  io::SummaryTable compare_across(const parallel::Comm& comm, const std::vector<size_t>& tasks, bool fresh) const;
  // The pairs compare_across compares, without MPI (sweep --status asks whether each is complete).
  std::vector<AcrossPair> across_pairs(const std::vector<size_t>& tasks) const;
  // Without MPI: whether the pair's results.h5 is complete with the fingerprint it would be made with.
  bool compared(const AcrossPair& pair) const;

  std::string summary_path() const;  // <run.output_dir>/study_summary.csv

 private:
  // config::load(job, overrides + sets); a UsageError is prefixed with `what` (the task or extraction).
  config::Config load_with(const std::vector<std::string>& sets, const std::string& what) const;

  std::string job_;
  std::vector<std::string> overrides_;
  config::Config config_;
  std::vector<config::GridTask> tasks_;
  std::vector<Extraction> extractions_;
  std::vector<size_t> extraction_of_;  // per task
};

}  // namespace universae::sweep
