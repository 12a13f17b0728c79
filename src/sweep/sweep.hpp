// `universae sweep SWEEP.toml (--slurm DIR | --local)`: a study (sweep/study.hpp) as separate jobs.
//
// Steps, each a run of `universae sweep SWEEP.toml --step NAME [--task I]` on its own ranks
// (app/cmd_sweep.cpp runs them):
//   extract   the one activation store (if run.stages has extract)
//   train     one per task: that task's SAE seeds          (a Slurm job array, index = task index)
//   compare   one per task: that task's SAEs compared      (an array; element i after train element i)
//   summary   every complete task's results, the across-task comparisons, study_summary.csv
//
// --slurm DIR writes DIR/{extract,train,compare,summary}.sbatch from slurm/templates/job.sbatch,
// DIR/submit.sh (sbatch with dependencies: train afterok extract; compare aftercorr train, so a
// failed task cancels only its own comparison; summary afterany compare), DIR/manifest.json, and
// submits unless told not to. Jobs get --signal=B:USR1@sweep.signal_seconds: universae checkpoints,
// exits 75, and the job requeues itself and resumes. --local runs the same steps here in dependency
// order, with sweep.local_launcher (mpirun). Either way only the tasks whose outputs are not complete
// are run: a rerun after a failure or a time limit does the rest.
#pragma once

#include <string>
#include <vector>

namespace universae::sweep {

struct LaunchOptions {
  std::string job;                     // the sweep file
  std::vector<std::string> overrides;  // --set, passed to every step
  std::string slurm_dir;               // --slurm DIR
  bool local = false;                  // --local
  bool submit = true;                  // --slurm: run DIR/submit.sh (false: only write it)
};

// Without MPI: plans the steps of the incomplete tasks, writes the scripts (or the local logs'
// folder) and the manifest, then submits or runs them. Returns the exit code: 0, 1 when a local
// step failed (its log is named), 75 when a local step was stopped by a signal.
int launch(const LaunchOptions& options);

}  // namespace universae::sweep
