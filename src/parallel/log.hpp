// Rank-0 logging (DESIGN.md §5): only rank 0 prints. Messages go to stderr with elapsed time,
// so stdout stays for results (summary tables). Progress draws one updating line on a terminal
// and a periodic line in batch logs (Slurm output files).
#pragma once

#include <fmt/format.h>

#include <chrono>
#include <cstdint>
#include <string>

namespace universae::log {

// Called once by main after MPI is up; before that every process logs (rank unknown).
void set_rank(int rank);
int rank();  // this process's rank in MPI_COMM_WORLD, for error messages
bool enabled();
// -v / --verbose: debug lines (solver internals, the resolved config) are printed too.
void set_verbose(bool verbose);
bool verbose();
void write(const std::string& level, const std::string& message);

template <typename... Args>
void debug(fmt::format_string<Args...> f, Args&&... args) {
  if (enabled() && verbose()) write("info", fmt::format(f, std::forward<Args>(args)...));
}

template <typename... Args>
void info(fmt::format_string<Args...> f, Args&&... args) {
  if (enabled()) write("info", fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void warn(fmt::format_string<Args...> f, Args&&... args) {
  if (enabled()) write("warn", fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void error(fmt::format_string<Args...> f, Args&&... args) {
  if (enabled()) write("error", fmt::format(f, std::forward<Args>(args)...));
}

// "what: done/total (pct) rate unit/s, ETA m:ss  extra". Update as often as you like; it redraws at
// most ~5 times a second on a terminal; in a batch log it writes a line at each further tenth of the
// work (at most one per 2 s) and at least every `batch_interval_s` seconds. `extra` (e.g. the current
// FVU) is kept until the next update that gives one, so every line and the last one show it.
class Progress {
 public:
  Progress(std::string what, int64_t total, std::string unit, double batch_interval_s = 30.0);
  void update(int64_t done, const std::string& extra = "");
  void finish(const std::string& extra = "");

 private:
  std::string line(int64_t done, const std::string& extra) const;
  std::string what_, unit_;
  int64_t total_;
  double batch_interval_s_;
  bool tty_;
  std::chrono::steady_clock::time_point start_, last_print_;
  int64_t done_ = 0;
  int64_t printed_tenths_ = 0;  // batch log: the tenths of the work already reported
  std::string extra_;
};

std::string format_duration(double seconds);

}  // namespace universae::log
