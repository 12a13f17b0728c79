// universae sweep SWEEP.toml (--slurm DIR | --local): a study's tasks as Slurm jobs or local runs
// (sweep/sweep.hpp); --step is what each of those jobs runs.
#include <CLI/CLI.hpp>

#include <csignal>

#include "app/commands.hpp"
#include "app/summary.hpp"
#include "core/error.hpp"
#include "lm/extract_stage.hpp"
#include "sweep/study.hpp"
#include "train/train_stage.hpp"
#include "parallel/log.hpp"
#include "sweep/sweep.hpp"

namespace universae::app {
namespace {

int run_step(const parallel::Comm& comm, const sweep::Study& study, const std::string& step, int64_t task) {
  const auto n = static_cast<int64_t>(study.tasks().size());
  if ((step == "train" || step == "compare") && (task < 0 || task >= n))
    throw UsageError("--step " + step + " needs --task I with 0 <= I < " + std::to_string(n) + " (the sweep's tasks)");
  const auto n_extractions = static_cast<int64_t>(study.extractions().size());
  if (step == "extract" && n_extractions > 1 && (task < 0 || task >= n_extractions))
    throw UsageError("--step extract needs --task E with 0 <= E < " + std::to_string(n_extractions) + " (the sweep's extractions)");
  // A job's USR1 (--signal=B:USR1 before the time limit) is for training and extraction, which stop
  // at a safe point while they run (parallel/stop_signals.hpp). Anywhere else — a comparison, the
  // evaluation and writing after training — it would kill the process by default; ignored, the
  // work goes on to finish or to the time limit.
  std::signal(SIGUSR1, SIG_IGN);
  if (step == "extract") {
    const size_t e = n_extractions > 1 ? static_cast<size_t>(task) : 0;
    log::info("sweep: {}", study.describe_extraction(e));
    print_extracted(lm::run_extract_stage(comm, study.extraction_config(e), false));
  } else if (step == "train") {
    const auto i = static_cast<size_t>(task);
    const config::Config cfg = study.task_config(i);
    log::info("sweep: train {} in {}", study.describe(i), cfg.run.output_dir);
    print_trained(train::run_train_stage(comm, cfg, false), cfg.data.source == "synthetic");
  } else if (step == "compare") {
    const auto i = static_cast<size_t>(task);
    const config::Config cfg = study.task_config(i);
    log::info("sweep: compare {} in {}", study.describe(i), cfg.run.output_dir);
    print_pairs(study.compare_task(comm, cfg, study.tasks()[i], false));
  } else {  // summary: every task whose SAEs are complete; the others are named
    io::SummaryTable rows;
    std::vector<size_t> complete;
    std::string missing;
    for (size_t i = 0; i < study.tasks().size(); ++i) {
      const config::Config cfg = study.task_config(i);
      if (!study.trained(cfg)) {
        missing += "\n  " + study.describe(i) + ": no complete SAEs in " + cfg.run.output_dir;
        continue;
      }
      rows.append(study.compare_task(comm, cfg, study.tasks()[i], false));
      complete.push_back(i);
    }
    rows.append(study.compare_across(comm, complete, false));
    if (comm.is_root()) write_study_summary(rows, study.summary_path());
    print_study(rows);
    if (!missing.empty())
      log::warn("sweep: {} of {} tasks complete; left out of the summary:{}", complete.size(), study.tasks().size(), missing);
    log::info("sweep: study table {}", study.summary_path());
  }
  return 0;
}

}  // namespace

void add_sweep(CLI::App& app, Action& action, LocalAction& launcher) {
  struct Options {
    sweep::LaunchOptions launch;
    bool no_submit = false;
    std::string status;
    std::string step;
    int64_t task = -1;
  };
  auto opts = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand(
      "sweep",
      "Run a job's [grid] as separate jobs: on Slurm (--slurm DIR: extraction → a training job array → comparisons → "
      "summary, with dependencies, checkpoint on USR1 and requeue) or here (--local, with mpirun). Only tasks whose "
      "outputs are not complete run, so the same command finishes an interrupted or partly failed sweep.");
  cmd->add_option("sweep", opts->launch.job, "sweep file (a job TOML with [grid] and optional [sweep] resources)");
  auto* slurm = cmd->add_option("--slurm", opts->launch.slurm_dir,
                                "write sbatch scripts, submit.sh and manifest.json to DIR, and submit them")
                   ->type_name("DIR");
  auto* local = cmd->add_flag("--local", opts->launch.local, "run the steps here, one after another (logs in <run.output_dir>/sweep/logs)");
  auto* step = cmd->add_option("--step", opts->step, "run one step (what the jobs run): extract, train, compare or summary")
                   ->check(CLI::IsMember({"extract", "train", "compare", "summary"}));
  cmd->add_option("--task", opts->task, "with --step train|compare: the task index (the Slurm array index)")->type_name("I");
  cmd->add_flag("--no-submit", opts->no_submit, "with --slurm: write the scripts but do not run sbatch");
  auto* set = cmd->add_option("--set", opts->launch.overrides,
                               "override a config key: section.key=value (repeatable; every job gets it)");
  auto* status = cmd->add_option("--status", opts->status,
                                 "say which extractions, tasks and summary of the sweep written to DIR (the --slurm DIR, or "
                                 "<run.output_dir>/sweep of a --local sweep) are done, running, pending or failed, with their "
                                 "logs (no sweep file: the manifest names it)")
                     ->type_name("DIR");
  slurm->excludes(local)->excludes(step);
  local->excludes(step);
  status->excludes(slurm)->excludes(local)->excludes(step)->excludes(set);
  cmd->footer(
      "\nExit codes: 0 done (or submitted), 2 bad input (nothing written or submitted), 1 a local step failed (the\n"
      "others ran; its log is named), 75 a local step was stopped by a signal after saving its progress.\n"
      "With --status DIR: 0 complete (every output done), 3 not complete and jobs still pending or running, 4 not\n"
      "complete and nothing queued (failed or never submitted: run the same sweep command again), 5 not complete and\n"
      "squeue could not be read, 2 DIR missing or not a sweep's directory, 1 internal failure.\n"
      "Resources per step ([sweep.extract], [sweep.train], [sweep.compare]) and the cluster's env file (sweep.cluster)\n"
      "are config keys; see slurm/README.md.\n"
      "Config sections it reads: every one ([run], [extract], [data], [sae], [train], [compare], [sweep]); the keys:\n"
      "universae keys [SECTION ...].");
  cmd->callback([opts, &action, &launcher] {
    if (!opts->status.empty()) {
      if (!opts->launch.job.empty())
        throw CLI::ValidationError("sweep", "--status DIR reads the sweep file and its --set values from DIR/manifest.json; "
                                            "give only DIR");
      launcher = [opts] { return sweep::status(opts->status); };
      return;
    }
    if (opts->launch.job.empty()) throw CLI::ValidationError("sweep", "a sweep file is required (or --status DIR)");
    if (!opts->step.empty()) {
      action = [opts](const parallel::Comm& comm) {
        const config::Config cfg = load_config(opts->launch.job, opts->launch.overrides);
        return run_step(comm, sweep::Study(opts->launch.job, opts->launch.overrides, cfg), opts->step, opts->task);
      };
      return;
    }
    if (opts->launch.slurm_dir.empty() && !opts->launch.local)
      throw CLI::ValidationError("sweep", "choose --slurm DIR or --local (or --step, as the jobs do)");
    opts->launch.submit = !opts->no_submit;
    launcher = [opts] { return sweep::launch(opts->launch); };
  });
}

}  // namespace universae::app
