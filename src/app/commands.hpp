// The subcommands of `universae`. Each add_* declares its options on the CLI11 app and sets
// `action` when its subcommand is chosen; main() runs the action once MPI is up.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "config/config.hpp"

namespace CLI {
class App;
}
namespace universae::parallel {
class Comm;
}

namespace universae::app {

using Action = std::function<int(const parallel::Comm&)>;
// A subcommand that starts other processes and must not itself be an MPI process (sweep --local/--slurm).
using LocalAction = std::function<int()>;

void add_run(CLI::App& app, Action& action);
void add_train(CLI::App& app, Action& action);
void add_compare(CLI::App& app, Action& action);
void add_inspect(CLI::App& app, Action& action);
void add_convert(CLI::App& app, Action& action);
void add_report(CLI::App& app, Action& action);
void add_extract(CLI::App& app, Action& action);
void add_generate(CLI::App& app, Action& action);
void add_tokenize(CLI::App& app, Action& action);
void add_sweep(CLI::App& app, Action& action, LocalAction& launcher);

// Loads, validates and logs the resolved config, and sets the threads per rank.
config::Config load_config(const std::string& path, const std::vector<std::string>& overrides);

// The config keys with defaults, for --help footers.
std::string config_keys_help();

}  // namespace universae::app
