#include "io/output_lock.hpp"

#include <fmt/format.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <vector>

#include "core/error.hpp"
#include "io/output.hpp"
#include "parallel/log.hpp"

namespace fs = std::filesystem;

namespace universae::io {
namespace {

std::vector<std::string> g_held;  // the directories (canonical) whose locks this process holds

std::string canonical_dir(const std::string& dir) { return fs::weakly_canonical(fs::absolute(dir)).string(); }

bool holds(const std::string& dir) {
  for (const auto& h : g_held)
    if (dir == h || dir.rfind(h + "/", 0) == 0) return true;
  return false;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::map<std::string, std::string> parse(const std::string& text) {
  std::map<std::string, std::string> fields;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (const auto eq = line.find('='); eq != std::string::npos) fields[line.substr(0, eq)] = line.substr(eq + 1);
  return fields;
}

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

// /proc/<pid>/stat's state and start time (clock ticks after boot): ("", "") when unreadable.
std::pair<std::string, std::string> proc_state(const std::string& pid) {
  const std::string stat = read_text("/proc/" + pid + "/stat");
  const auto paren = stat.rfind(')');  // the command name may hold spaces and parentheses
  if (paren == std::string::npos) return {"", ""};
  std::istringstream fields(stat.substr(paren + 1));
  std::vector<std::string> f{std::istream_iterator<std::string>(fields), std::istream_iterator<std::string>()};
  return {f.empty() ? "" : f[0], f.size() > 19 ? f[19] : ""};  // fields 3 and 22 of proc(5)
}

std::string own_text(const std::string& command) {
  const char* job = std::getenv("SLURM_JOB_ID");
  const std::time_t now = std::time(nullptr);
  char since[32] = {0};
  std::strftime(since, sizeof(since), "%Y-%m-%d %H:%M:%S", std::localtime(&now));
  const std::string pid = std::to_string(getpid());
  return fmt::format("host={}\npid={}\nstart={}\njob={}\nrestart={}\nsince={}\ncommand=universae {}\n",
                     parallel::Comm::host_name(), pid, proc_state(pid).second, job ? job : "", env("SLURM_RESTART_COUNT"),
                     since, command);
}

// A restart count ("" → 0; not a number → 0).
long count(const std::string& text) {
  char* end = nullptr;
  const long v = std::strtol(text.c_str(), &end, 10);
  return text.empty() || *end != '\0' ? 0 : v;
}

// Whether the holder's process still runs on this host: not when its pid is gone, a zombie (killed,
// not yet reaped: containers without an init that reaps) or another process now (its start time
// differs from the one the lock recorded).
bool pid_running(const std::string& pid, const std::string& start) {
  char* end = nullptr;
  const long p = std::strtol(pid.c_str(), &end, 10);
  if (pid.empty() || *end != '\0' || p <= 0) return false;
  if (kill(static_cast<pid_t>(p), 0) != 0 && errno != EPERM) return false;
  const auto [state, started] = proc_state(pid);
  if (state == "Z" || state == "X") return false;
  return start.empty() || started.empty() || start == started;
}

// Whether Slurm says `job` is over: squeue no longer lists it, calls its id invalid (finished jobs are
// purged) or lists it in a final state (for MinJobAge after it ended). false when squeue cannot be run
// (no Slurm here: nothing can be concluded).
bool slurm_job_over(const std::string& job) {
  if (job.find_first_not_of("0123456789_") != std::string::npos) return false;
  FILE* p = popen(("squeue -h -j " + job + " -o %T 2>&1").c_str(), "r");
  if (p == nullptr) return false;
  std::string out;
  char buf[256];
  while (std::fgets(buf, sizeof(buf), p) != nullptr) out += buf;
  const int status = pclose(p);
  if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) == 127) return false;
  if (WEXITSTATUS(status) != 0) return out.find("Invalid job id") != std::string::npos;
  for (const char* state : {"RUNNING", "PENDING", "COMPLETING", "CONFIGURING", "SUSPENDED", "REQUEUE", "RESIZING",
                            "SIGNALING", "STAGE_OUT", "STOPPED", "RESV_DEL_HOLD", "SPECIAL_EXIT", "REVOKED"})
    if (out.find(state) != std::string::npos) return false;
  return true;  // not listed, or COMPLETED, CANCELLED, FAILED, TIMEOUT, NODE_FAIL, PREEMPTED, OUT_OF_MEMORY, ...
}

// Why the lock's holder is gone ("" when it may be running).
// A requeued job keeps its id and counts SLURM_RESTART_COUNT up; two steps of one allocation share the
// id and the count, so only a lower count is an earlier run of this job.
std::string gone(const std::map<std::string, std::string>& h) {
  const auto field = [&h](const char* k) { auto it = h.find(k); return it == h.end() ? std::string() : it->second; };
  if (field("host") == parallel::Comm::host_name())
    return pid_running(field("pid"), field("start")) ? "" : "its process " + field("pid") + " is not running on this host";
  const long ours = count(env("SLURM_RESTART_COUNT")), theirs = count(field("restart"));
  if (!field("job").empty() && field("job") == env("SLURM_JOB_ID") && ours > 0 && theirs < ours)
    return "it is this Slurm job's earlier run (requeued)";
  if (!field("job").empty() && slurm_job_over(field("job"))) return "its Slurm job " + field("job") + " is over";
  return "";
}

std::string refusal(const std::string& dir, const std::string& lock, const std::string& text) {
  return fmt::format("{}: another universae run is writing here ({}). Wait for it or stop it; if it is gone (its "
                     "host is down, its job cancelled), remove {}",
                     dir, describe_lock_holder(text), lock);
}

// A live lock of another process on `canon` or a directory above it: → the refusal, else "".
std::string foreign_lock_above(const std::string& dir, const std::string& canon) {
  for (fs::path p = canon;; p = p.parent_path()) {
    const fs::path lock = p / OutputLock::kFileName;
    std::error_code ec;
    if (!(g_held.end() != std::find(g_held.begin(), g_held.end(), p.string())) && fs::exists(lock, ec)) {
      const std::string text = read_text(lock.string());
      const std::string why = gone(parse(text));
      if (why.empty()) return refusal(dir, lock.string(), text);
      if (p.string() != canon) log::warn("{}: ignoring a stale lock above it ({}): {}", dir, why, lock.string());
    }
    if (p == p.parent_path()) return "";
  }
}

// Moves a stale lock aside, unless another run took it over first (then its new lock goes back).
void take_over(const std::string& dir, const std::string& lock, const struct stat& judged, const std::string& why,
               const std::string& text) {
  const std::string stale = lock + ".stale." + std::to_string(getpid());
  if (std::rename(lock.c_str(), stale.c_str()) != 0) return;  // someone else moved it: look again
  struct stat moved {};
  if (stat(stale.c_str(), &moved) == 0 && (moved.st_ino != judged.st_ino || moved.st_dev != judged.st_dev)) {
    if (link(stale.c_str(), lock.c_str()) != 0) log::debug("{}: could not put back {}", dir, lock);
    std::remove(stale.c_str());
    return;  // that was a live run's fresh lock
  }
  log::warn("{}: taking over the lock of a run that is gone ({}): {}", dir, why, describe_lock_holder(text));
  std::remove(stale.c_str());
}

// Rank 0: links our holder file to the lock's name, taking over a lock whose holder is gone.
// → "" (held) or why not.
std::string take(const std::string& dir, const std::string& lock, const std::string& command) {
  const std::string mine = fmt::format("{}.{}.{}", lock, parallel::Comm::host_name(), static_cast<long>(getpid()));
  {
    std::ofstream out(mine);
    out << own_text(command);
    if (!out.flush()) return fmt::format("{}: cannot write the lock file {}: {}", dir, mine, std::strerror(errno));
  }
  for (int attempt = 0; attempt < 5; ++attempt) {
    const int linked = link(mine.c_str(), lock.c_str());
    const int link_errno = errno;
    struct stat own {};
    // NFS may answer a retransmitted link() that succeeded with EEXIST: two names mean it is ours.
    if (linked == 0 || (stat(mine.c_str(), &own) == 0 && own.st_nlink == 2)) {
      std::remove(mine.c_str());
      return "";
    }
    if (link_errno != EEXIST) {
      std::remove(mine.c_str());
      return fmt::format("{}: cannot take the lock {}: {}", dir, lock, std::strerror(link_errno));
    }
    struct stat held {};
    if (stat(lock.c_str(), &held) != 0) continue;  // released meanwhile: try again
    const std::string text = read_text(lock);
    const std::string why = gone(parse(text));
    if (why.empty()) {
      std::remove(mine.c_str());
      return refusal(dir, lock, text);
    }
    take_over(dir, lock, held, why, text);
  }
  std::remove(mine.c_str());
  return fmt::format("{}: could not take the lock {} (other runs keep taking it)", dir, lock);
}

}  // namespace

std::string describe_lock_holder(const std::string& lock_text) {
  auto h = parse(lock_text);
  std::string out = fmt::format("host {}, pid {}", h["host"].empty() ? "?" : h["host"], h["pid"].empty() ? "?" : h["pid"]);
  if (!h["job"].empty()) out += ", Slurm job " + h["job"];
  if (!h["since"].empty()) out += ", since " + h["since"];
  if (!h["command"].empty()) out += ": " + h["command"];
  return out;
}

OutputLock::OutputLock(const parallel::Comm& comm, const std::string& dir, const std::string& command)
    : root_(comm.is_root()) {
  ensure_directory(comm, dir);
  std::string error;
  if (root_) {
    const std::string canon = canonical_dir(dir);
    error = foreign_lock_above(dir, canon);
    if (error.empty() && !holds(canon)) {
      const std::string lock = (fs::path(canon) / kFileName).string();
      error = take(dir, lock, command);
      if (error.empty()) path_ = lock, g_held.push_back(canon);
    }
  }
  parallel::agree_on_error(comm, error);
}

OutputLock::~OutputLock() {
  if (!root_ || path_.empty()) return;
  const std::string dir = fs::path(path_).parent_path().string();
  g_held.erase(std::remove(g_held.begin(), g_held.end(), dir), g_held.end());
  // Only our own lock: a takeover by another run (we were thought gone) stays.
  const auto h = parse(read_text(path_));
  const auto pid = h.find("pid");
  if (pid != h.end() && pid->second == std::to_string(getpid())) std::remove(path_.c_str());
}

}  // namespace universae::io
