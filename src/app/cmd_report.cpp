// universae report RESULTS...: an HTML page with the papers' figures over one or many results files
// (a whole sweep). The plots are drawn by scripts/report.py (h5py + matplotlib + pandas); this command
// finds and checks the inputs, runs it into OUT.partial and publishes OUT when it succeeded.
#include <CLI/CLI.hpp>

#include <spawn.h>
#include <sys/wait.h>

#include <algorithm>
#include <filesystem>

#include "app/commands.hpp"
#include "core/error.hpp"
#include "core/version.hpp"
#include "io/h5.hpp"
#include "io/output.hpp"
#include "io/results_file.hpp"
#include "parallel/comm.hpp"
#include "parallel/log.hpp"

extern char** environ;

namespace universae::app {
namespace fs = std::filesystem;

namespace {

struct ReportOptions {
  std::vector<std::string> inputs;
  std::string out;
};

// RESULTS arguments: files, or directories searched for results.h5 (a sweep's output directory).
std::vector<std::string> results_files(const std::vector<std::string>& inputs) {
  std::vector<std::string> files;
  for (const auto& in : inputs) {
    if (fs::is_directory(in)) {
      std::vector<std::string> found;
      for (const auto& e : fs::recursive_directory_iterator(in, fs::directory_options::skip_permission_denied))
        if (e.is_regular_file() && e.path().filename() == "results.h5") found.push_back(e.path().string());
      if (found.empty()) throw UsageError(in + ": no results.h5 below this directory");
      std::sort(found.begin(), found.end());
      files.insert(files.end(), found.begin(), found.end());
    } else if (!fs::exists(in)) {
      throw UsageError(in + ": no such file or directory");
    } else {
      files.push_back(in);
    }
  }
  for (const auto& f : files) {
    if (io::file_format(f) != io::kResultsFormat)
      throw UsageError(f + ": not a universae results file (format attribute is not 'universae-results')");
    if (!io::is_complete(f))
      throw UsageError(f + ": incomplete results file (the comparison writing it did not finish)");
    if (!io::has_summary_columns(f))
      throw UsageError(f + ": written by a universae before 0.2 (no /summary_columns); compare again to rewrite it");
  }
  return files;
}

// The Python that has h5py, matplotlib and pandas: $UNIVERSAE_PYTHON, else Debian's.
std::string python() {
  if (const char* p = std::getenv("UNIVERSAE_PYTHON"); p && *p) return p;
  return fs::exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
}

std::string report_script() {
  if (const char* dir = std::getenv("UNIVERSAE_SOURCE_DIR"); dir && *dir) return (fs::path(dir) / "scripts" / "report.py").string();
  return (fs::path(build::kSourceDir) / "scripts" / "report.py").string();
}

// Runs argv[0] with argv (no shell); its output goes to ours. The exit status, or -1.
int run_program(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  if (posix_spawnp(&pid, args[0], nullptr, nullptr, args.data(), environ) != 0) return -1;
  int status = 0;
  if (waitpid(pid, &status, 0) < 0) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int report(const parallel::Comm& comm, const ReportOptions& o) {
  std::string error;
  std::vector<std::string> files;
  std::string out = o.out;
  if (comm.is_root()) {
    try {
      files = results_files(o.inputs);
      if (out.empty()) {
        // Beside the results: <dir>/report for one file or one directory, ./report otherwise.
        if (o.inputs.size() == 1)
          out = ((fs::is_directory(o.inputs[0]) ? fs::path(o.inputs[0]) : fs::path(o.inputs[0]).parent_path()) / "report").string();
        else
          out = "report";
      }
      if (!fs::exists(report_script())) throw UsageError(report_script() + ": the report script is missing (set UNIVERSAE_SOURCE_DIR)");
    } catch (const UsageError& e) {
      error = e.what();
    } catch (const fs::filesystem_error& e) {
      error = e.what();
    }
  }
  parallel::agree_on_error(comm, error);
  if (comm.is_root()) {
    log::info("report: {} results file(s) → {}/index.html", files.size(), out);
    io::Pending pending(out);  // the script writes OUT.partial; OUT is replaced only when it succeeded
    std::vector<std::string> argv = {python(), report_script(), "--out", pending.partial()};
    argv.insert(argv.end(), files.begin(), files.end());
    const int rc = run_program(argv);
    if (rc != 0) {
      error = "the report script failed (" + argv[0] + " " + argv[1] + ", exit " + std::to_string(rc) +
              "); it needs python3-h5py, python3-matplotlib and python3-pandas (scripts/install-deps.sh)";
    } else if (!pending.try_commit()) {
      error = out + ": cannot publish";
    }
  }
  // The script's failure is not bad input: every rank ends with the internal-failure code.
  const bool failed = comm.allreduce_max(error.empty() ? 0.0 : 1.0) > 0;
  if (failed) {
    if (comm.is_root()) log::error("report: {}", error);
    return kExitInternal;
  }
  return 0;
}

}  // namespace

void add_report(CLI::App& app, Action& action) {
  auto opts = std::make_shared<ReportOptions>();
  CLI::App* cmd = app.add_subcommand(
      "report",
      "Write an HTML report (index.html, PNG figures, pairs.csv) over results files: the summary table; shared\n"
      "fraction and mean Hungarian cosine vs number of latents and vs k; the N-seed overlap curve; layer × layer\n"
      "SVCCA and RSA heatmaps with p-values; firing-frequency histograms; matched cosine vs firing frequency.\n"
      "A directory argument means every results.h5 below it (a whole sweep). Open OUT/index.html in a browser\n"
      "(no server). Drawn by scripts/report.py with Debian's python3 (h5py, matplotlib, pandas).\n"
      "  universae report runs/quickstart/results.h5          (→ runs/quickstart/report/)\n"
      "  universae report runs/seeds_study --out seeds_report");
  cmd->add_option("results", opts->inputs, "results files, or directories holding them")->required();
  cmd->add_option("--out", opts->out, "report directory (default: report/ beside the results; replaced if it exists)");
  cmd->callback([opts, &action] {
    action = [opts](const parallel::Comm& comm) { return report(comm, *opts); };
  });
}

}  // namespace universae::app
