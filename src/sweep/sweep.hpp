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

// `universae sweep --status DIR`, without MPI: DIR is a --slurm directory (manifest.json, jobs.txt,
// logs/) or a --local sweep's <run.output_dir>/sweep. Reloads the sweep file with the manifest's
// --set values (in its working directory) and prints, for each extraction, task and the summary,
// whether its outputs are complete as the planner decides (done), its job is running or pending
// (squeue for the job ids in jobs.txt), or its job ended with the outputs incomplete (failed), with
// the log path. Returns kStatusComplete, kStatusQueued, kStatusIncomplete or kStatusUnknown; a
// missing or garbled DIR is a UsageError.
inline constexpr int kStatusComplete = 0;    // every output complete
inline constexpr int kStatusQueued = 3;      // not complete; jobs still pending or running
inline constexpr int kStatusIncomplete = 4;  // not complete and nothing queued: failed or not submitted, run the sweep again
inline constexpr int kStatusUnknown = 5;     // not complete, and squeue could not say what is running
int status(const std::string& dir);

// What a failed step's log says went wrong: universae's error line, else its last few lines.
std::string failure_lines(const std::string& log);

}  // namespace universae::sweep
