// SIGTERM and SIGUSR1 (what Slurm sends before a time limit or preemption) ask a long stage to
// stop at its next safe point: it writes what it has (a checkpoint, a flushed partial store),
// then throws Checkpointed (exit code 75). The previous handlers come back with the destructor.
#pragma once

#include "parallel/comm.hpp"

namespace universae::parallel {

class StopSignals {
 public:
  StopSignals();
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;
  // Collective: whether any rank has received a stop signal.
  bool requested(const Comm& comm) const;

 private:
  void (*old_term_)(int);
  void (*old_usr1_)(int);
};

}  // namespace universae::parallel
