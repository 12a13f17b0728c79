// universae: SAE universality at scale. Parses the command line (before MPI, so --help and
// usage errors need no MPI), then runs the chosen subcommand on MPI_COMM_WORLD under the error
// contract of DESIGN.md §5: UsageError → message from rank 0, exit 2 on every rank; any other
// failure → message naming rank and host, then MPI_Abort so no rank hangs.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <cstdlib>

#include "app/commands.hpp"
#include "core/allocator.hpp"
#include "core/error.hpp"
#include "core/version.hpp"
#include "io/output.hpp"
#include "parallel/comm.hpp"
#include "parallel/log.hpp"

namespace {

// The launcher's rank before MPI is initialised, so only one process prints help and usage errors.
int launcher_rank() {
  for (const char* var : {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID"})
    if (const char* v = std::getenv(var)) return std::atoi(v);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace universae;
  core::keep_freed_memory();
  log::set_rank(launcher_rank());
  CLI::App app{std::string("universae ") + build::kVersion +
               " — do sparse autoencoders learn the same features? Trains SAE seed ensembles and computes\n"
               "universality statistics, MPI-parallel (run under mpirun -n N, srun, or as one process)."};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("universae ") + build::kVersion + " (" + build::kGitSha + ")");
  app.add_flag_callback("-v,--verbose", [] { log::set_verbose(true); },
                        "also print the resolved config and solver internals (any position: universae compare ... -v)");
  app.fallthrough();  // -v after the subcommand too
  app::Action action;
  app::LocalAction local;
  app::add_run(app, action);
  app::add_extract(app, action);
  app::add_evaluate(app, action);
  app::add_train(app, action);
  app::add_compare(app, action);
  app::add_inspect(app, action);
  app::add_convert(app, action);
  app::add_report(app, action);
  app::add_generate(app, action);
  app::add_tokenize(app, action);
  app::add_sweep(app, action, local);
  app::add_keys(app, local);
  // Set after the subcommands are added, which copy the footer they are given: each prints its own.
  for (CLI::App* sub : app.get_subcommands({}))
    if (sub->get_footer().empty()) sub->footer(app::exit_codes_help());
  app.footer("Exit codes: 0 success, 2 bad input or usage (the message names the file, key or value), 1 internal failure,\n"
             "75 training or extraction stopped on SIGTERM/SIGUSR1 after saving its progress (run the same command to resume).\n"
             "Run 'universae COMMAND --help' for a command's options, 'universae keys' for every config key.");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (!log::enabled()) return e.get_exit_code() == 0 ? 0 : kExitUsage;
    const int code = app.exit(e);
    return code == 0 ? 0 : kExitUsage;
  }

  if (local) {  // no MPI in this process: it launches the ranks
    try {
      return local();
    } catch (const UsageError& e) {
      std::fprintf(stderr, "universae: error: %s\n", e.what());
      return kExitUsage;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "universae: internal error: %s\n", e.what());
      return kExitInternal;
    }
  }

  parallel::Environment env(argc, argv);
  const parallel::Comm world = parallel::Environment::world();
  log::set_rank(world.rank());
  try {
    if (world.size() > 1) {  // nodes as MPI sees them (ranks sharing memory): what node-local work is split by
      const int64_t nodes = world.allreduce_sum(int64_t{world.node_local().rank() == 0 ? 1 : 0});
      log::info("{} ranks on {} node{}", world.size(), nodes, nodes == 1 ? "" : "s");
    }
    return action(world);
  } catch (const Checkpointed& e) {
    if (world.is_root()) std::fprintf(stderr, "universae: %s\n", e.what());
    return kExitCheckpointed;
  } catch (const UsageError& e) {
    if (world.is_root()) std::fprintf(stderr, "universae: error: %s\n", e.what());
    io::remove_created_directories();  // refused input leaves nothing behind
    return kExitUsage;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "universae: internal error on rank %d (%s): %s\n", world.rank(),
                 parallel::Comm::host_name().c_str(), e.what());
    parallel::Environment::abort(kExitInternal);
  }
}
