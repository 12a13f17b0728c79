#include "parallel/log.hpp"

#include <unistd.h>

#include <cstdio>

namespace universae::log {
namespace {
int g_rank = 0;
const auto g_start = std::chrono::steady_clock::now();
double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}
}  // namespace

void set_rank(int rank) { g_rank = rank; }
int rank() { return g_rank; }
bool enabled() { return g_rank == 0; }

namespace {
bool g_verbose = false;
}  // namespace

void set_verbose(bool verbose) { g_verbose = verbose; }
bool verbose() { return g_verbose; }

void write(const std::string& level, const std::string& message) {
  std::fprintf(stderr, "[%8.1fs] %s%s\n", seconds_since(g_start),
               level == "info" ? "" : (level + ": ").c_str(), message.c_str());
  std::fflush(stderr);
}

std::string format_duration(double seconds) {
  if (!(seconds >= 0) || seconds > 1e8) return "?";
  const auto s = static_cast<int64_t>(seconds + 0.5);
  if (s >= 3600) return fmt::format("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60);
  return fmt::format("{}:{:02}", s / 60, s % 60);
}

Progress::Progress(std::string what, int64_t total, std::string unit, double batch_interval_s)
    : what_(std::move(what)),
      unit_(std::move(unit)),
      total_(total),
      batch_interval_s_(batch_interval_s),
      tty_(isatty(STDERR_FILENO) != 0),
      start_(std::chrono::steady_clock::now()),
      last_print_(start_) {}

std::string Progress::line(int64_t done, const std::string& extra) const {
  const double elapsed = seconds_since(start_);
  const double rate = elapsed > 0 ? static_cast<double>(done) / elapsed : 0.0;
  const double eta = rate > 0 ? static_cast<double>(total_ - done) / rate : -1.0;
  const double pct = total_ > 0 ? 100.0 * static_cast<double>(done) / static_cast<double>(total_) : 100.0;
  return fmt::format("{}: {}/{} ({:.1f}%) {:.4g} {}/s, elapsed {}, ETA {}{}{}", what_, done, total_, pct,
                     rate, unit_, format_duration(elapsed), format_duration(eta),
                     extra.empty() ? "" : "  ", extra);
}

void Progress::update(int64_t done, const std::string& extra) {
  done_ = done;
  if (!extra.empty()) extra_ = extra;
  if (!enabled()) return;
  const double since = seconds_since(last_print_);
  const int64_t tenths = total_ > 0 ? 10 * done / total_ : 0;
  if (tty_ && since >= 0.2) {
    std::fprintf(stderr, "\r\033[K%s", line(done, extra_).c_str());
    std::fflush(stderr);
    last_print_ = std::chrono::steady_clock::now();
  } else if (!tty_ && (since >= batch_interval_s_ || (tenths > printed_tenths_ && since >= 2.0 && done < total_))) {
    write("info", line(done, extra_));
    last_print_ = std::chrono::steady_clock::now();
    printed_tenths_ = tenths;
  }
}

void Progress::finish(const std::string& extra) {
  if (!enabled()) return;
  if (tty_) std::fprintf(stderr, "\r\033[K");
  write("info", line(done_, extra.empty() ? extra_ : extra));
}

}  // namespace universae::log
