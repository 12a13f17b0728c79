// universae inspect FILE: a human summary of any file universae writes (io/inspect.hpp).
#include <CLI/CLI.hpp>

#include <cstdio>

#include "app/commands.hpp"
#include "io/inspect.hpp"
#include "parallel/comm.hpp"

namespace universae::app {

void add_inspect(CLI::App& app, Action& action) {
  auto path = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand("inspect", "Print what a file holds: an activation store, an SAE file or sparsify/SAELens directory, a results file, "
                                     "a training checkpoint, or any HDF5 file");
  cmd->add_option("file", *path, "the file (or SAE directory) to describe")->required();
  cmd->callback([path, &action] {
    action = [path](const parallel::Comm& comm) {
      const std::string text = io::describe_file(comm, *path);
      if (comm.is_root()) std::fputs(text.c_str(), stdout);
      return 0;
    };
  });
}

}  // namespace universae::app
