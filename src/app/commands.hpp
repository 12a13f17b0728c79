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
void add_evaluate(CLI::App& app, Action& action);
void add_generate(CLI::App& app, Action& action);
void add_tokenize(CLI::App& app, Action& action);
void add_sweep(CLI::App& app, Action& action, LocalAction& launcher);
void add_keys(CLI::App& app, LocalAction& local);

// Loads, validates and logs the resolved config, and sets the threads per rank.
config::Config load_config(const std::string& path, const std::vector<std::string>& overrides);

// After a command succeeds: <dir>/config.resolved.toml, every key as the run used it (the console shows
// it only with -v; every output file also stores it).
void save_resolved_config(const parallel::Comm& comm, const config::Config& config, const std::string& dir);

// A command's --help footer: the config sections it reads (the keys themselves: `universae keys`) and
// its exit codes (75 only for commands that checkpoint).
std::string config_keys_help(const std::vector<std::string>& sections, bool checkpoints);
std::string exit_codes_help();

}  // namespace universae::app
