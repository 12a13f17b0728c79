// One run per output directory. Every stage that writes into a directory holds its lock file,
// `<dir>/.universae.lock`, naming the holder (host, pid, Slurm job id, start time, command), so a
// second run there (a user's rerun beside a requeued job, two jobs given one run.output_dir) exits 2
// naming the holder instead of writing the same files.
//
//  - Taken atomically on shared file systems: the holder's text goes to a file of its own, which is
//    hard-linked to the lock's name (link() is atomic on NFS, where O_EXCL was not always).
//  - A lock whose holder is gone is taken over with a warning: on this host, its pid is not running;
//    under Slurm, it is this very job (requeued: Slurm runs one instance of a job at a time) or
//    `squeue` no longer lists its job. A holder on another host without a Slurm job cannot be
//    checked from here: the run exits 2 and says how to remove the lock if the holder is gone.
//  - Nested: a process holding the lock of a directory also holds its subdirectories (a grid's task
//    directories, its store under extract/), and acquiring one checks that no other live process
//    holds it or any directory above it.
//  - Released when the holder goes out of scope, also on a UsageError or a checkpoint exit (75);
//    a killed process leaves its lock, which the next run finds stale.
#pragma once

#include <string>

#include "parallel/comm.hpp"

namespace universae::io {

class OutputLock {
 public:
  // Collective: rank 0 takes the lock of `dir` (created if missing); a UsageError on every rank when
  // another live run holds it or a directory above it. `command` says what holds it ("train").
  OutputLock(const parallel::Comm& comm, const std::string& dir, const std::string& command);
  ~OutputLock();
  OutputLock(const OutputLock&) = delete;
  OutputLock& operator=(const OutputLock&) = delete;

  static constexpr const char* kFileName = ".universae.lock";

 private:
  std::string path_;  // the lock file this object created ("" when nested in one this process holds)
  bool root_ = false;
};

// The holder a lock file names, one line ("host H, pid P, Slurm job J, since T: COMMAND"); for messages.
std::string describe_lock_holder(const std::string& lock_text);

}  // namespace universae::io
