#include <ATen/Parallel.h>

#include <cstdlib>

#include "app/commands.hpp"
#include "io/output.hpp"
#include "parallel/log.hpp"

namespace universae::app {

config::Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  config::Config c = config::load(path, overrides);
  // Threads per rank: the config, else OMP_NUM_THREADS, else 1 (ranks × threads <= cores).
  int threads = static_cast<int>(c.run.threads);
  if (threads == 0) {
    const char* env = std::getenv("OMP_NUM_THREADS");
    threads = env ? std::max(1, std::atoi(env)) : 1;
  }
  at::set_num_threads(threads);
  log::info("{} thread{} per rank{}", threads, threads == 1 ? "" : "s", log::verbose() ? "; resolved config:" : "");
  log::debug("{}", config::to_toml(c));
  return c;
}

void save_resolved_config(const parallel::Comm& comm, const config::Config& c, const std::string& dir) {
  const std::string path = (dir.empty() ? std::string(".") : dir) + "/config.resolved.toml";
  std::string error;
  if (comm.is_root() && !io::publish_text(path, "# every key as this run used it (universae keys: what each means)\n" +
                                                    config::to_toml(c)))
    error = path + ": cannot write";
  parallel::agree_on_error(comm, error);
}

std::string config_keys_help(const std::vector<std::string>& sections, bool checkpoints) {
  std::string list;
  for (const auto& s : sections) list += (list.empty() ? "[" : ", [") + s + "]";
  return "\nConfig sections it reads: " + list + " (override any key with --set section.key=value;\n"
         "every key with its default and meaning: universae keys [SECTION ...]).\n"
         "Exit codes: 0 success, 2 bad input or usage, 1 internal failure" +
         std::string(checkpoints ? ", 75 stopped on SIGTERM/SIGUSR1 after saving its progress (run it again to resume)." : ".");
}

std::string exit_codes_help() { return "Exit codes: 0 success, 2 bad input or usage, 1 internal failure."; }

}  // namespace universae::app
