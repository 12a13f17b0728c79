#include <ATen/Parallel.h>

#include <cstdlib>

#include "app/commands.hpp"
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
  log::info("resolved config ({} threads per rank):\n{}", threads, config::to_toml(c));
  return c;
}

std::string config_keys_help() {
  return "\nConfig keys (TOML sections; override any with --set section.key=value):\n" + config::describe_keys();
}

}  // namespace universae::app
