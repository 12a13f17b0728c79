#include "parallel/stop_signals.hpp"

#include <csignal>

namespace universae::parallel {
namespace {
volatile std::sig_atomic_t g_stop_signal = 0;
extern "C" void on_stop_signal(int signal) { g_stop_signal = signal; }
}  // namespace

// A signal caught while an earlier stage's handler was installed (between its last check and its end)
// still counts: the flag is never reset, so the next stage stops at its first check.
StopSignals::StopSignals() {
  old_term_ = std::signal(SIGTERM, on_stop_signal);
  old_usr1_ = std::signal(SIGUSR1, on_stop_signal);
}

StopSignals::~StopSignals() {
  std::signal(SIGTERM, old_term_);
  std::signal(SIGUSR1, old_usr1_);
}

bool StopSignals::requested(const Comm& comm) const { return comm.allreduce_max(static_cast<double>(g_stop_signal)) > 0; }

}  // namespace universae::parallel
