// universae keys [SECTION ...]: every config key with its default and meaning (what each command's
// --help points to instead of listing them all). No MPI: it only prints.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>

#include "app/commands.hpp"
#include "core/error.hpp"

namespace universae::app {

void add_keys(CLI::App& app, LocalAction& local) {
  auto sections = std::make_shared<std::vector<std::string>>();
  CLI::App* cmd = app.add_subcommand(
      "keys", "Every config key with its default and what it does, by section (run, extract, data, sae, train,\n"
              "compare, sweep); job files set them in TOML sections, any command overrides them with --set.\n"
              "  universae keys              every section\n"
              "  universae keys compare sae  only those sections");
  cmd->add_option("sections", *sections, "sections to list (default: all)");
  cmd->footer(exit_codes_help());
  cmd->callback([sections, &local] {
    local = [sections] {
      const std::vector<std::string> known = config::sections();
      for (const auto& s : *sections)
        if (std::find(known.begin(), known.end(), s) == known.end()) {
          std::string list;
          for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
          throw UsageError("keys: no section '" + s + "' (sections: " + list + ")");
        }
      std::fputs(config::describe_keys(*sections).c_str(), stdout);
      return 0;
    };
  });
}

}  // namespace universae::app
