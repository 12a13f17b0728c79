// The Slurm side of a sweep as pure functions (tests/unit/test_sweep_plan.cpp): the job-array syntax
// and the dependency of each step's job on the jobs before it.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace universae::sweep {

// "0-3,5,7-8": Slurm's --array syntax for sorted task indices.
std::string array_spec(const std::vector<size_t>& tasks);

// The indices an array_spec names ("0-3,5" → 0 1 2 3 5); an optional "%N" limit is ignored.
// std::invalid_argument for anything else.
std::vector<size_t> parse_array_spec(const std::string& spec);

// One job (or array element) of `squeue -h -r -o '%i|%T|%r'`: id "123" or "123_4", state
// ("RUNNING"), reason ("Dependency", "BeginTime", "None").
struct QueuedJob {
  std::string id, state, reason;
};
std::vector<QueuedJob> parse_squeue(const std::string& text);

// Whether a job in this state has yet to run or finish (PENDING, RUNNING, COMPLETING, REQUEUED, ...)
// rather than being over (COMPLETED, FAILED, CANCELLED, TIMEOUT, NODE_FAIL, ...: squeue lists those
// for MinJobAge after the end).
bool job_active(const std::string& state);
// Whether it is running now (RUNNING, COMPLETING, CONFIGURING, SIGNALING, STAGE_OUT).
bool job_running(const std::string& state);

// The sbatch --dependency of each step, in plan order (steps named extract, train, compare, summary):
// train after extract (afterok); compare element i after train element i (aftercorr), so a failed
// task cancels only its own comparison; the summary after every comparison whatever its outcome
// (afterany); "" for the first step. The value refers to the earlier steps' job ids as shell
// variables named after them ($train).
std::vector<std::string> dependencies(const std::vector<std::string>& steps);

// The lines of submit.sh that submit the steps in order: `name=$(submit name [--dependency=... --kill-on-invalid-dep=yes])`
// (a dependency that can never be met cancels the job instead of leaving it pending).
std::string submission_lines(const std::vector<std::string>& steps);

}  // namespace universae::sweep
