// Error types and exit codes shared by every layer (DESIGN.md §5).
//
// The contract, after LAMMPS's error->all / error->one:
//  - UsageError: bad input or usage that EVERY rank reaches at the same point (config validation,
//    or a per-rank problem that was first agreed on with parallel::agree_on_error). main() prints it
//    once from rank 0 and every rank exits 2 after a clean MPI_Finalize.
//  - anything else thrown on one rank is fatal: main() prints it with rank and host and calls
//    MPI_Abort, so no rank is ever left waiting in a collective.
#pragma once

#include <stdexcept>
#include <string>

namespace universae {

// 75 (EX_TEMPFAIL): training stopped on SIGTERM/SIGUSR1 after writing a checkpoint; run the same
// command again to resume (a Slurm script can requeue on it).
enum ExitCode : int { kExitOk = 0, kExitInternal = 1, kExitUsage = 2, kExitCheckpointed = 75 };

class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Thrown on every rank at once when a signal asked the job to stop and the checkpoint is written.
class Checkpointed : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class InternalError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace universae
