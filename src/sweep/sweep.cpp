#include "sweep/sweep.hpp"

#include <fmt/format.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "core/version.hpp"
#include "io/output.hpp"
#include "io/text_file.hpp"
#include "parallel/log.hpp"
#include "sweep/slurm_plan.hpp"
#include "sweep/study.hpp"

namespace universae::sweep {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// One kind of job: its tasks (array steps) and what it asks for.
struct Step {
  std::string name;                      // extract, train, compare, summary
  bool array = false;                    // one run per task in `tasks`
  std::vector<size_t> tasks;
  const config::SweepResources* resources = nullptr;
};

std::string shell_quote(const std::string& s) {
  if (!s.empty() && s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./=:,+@%") ==
                        std::string::npos)
    return s;
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string join_quoted(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& w : words) out += (out.empty() ? "" : " ") + shell_quote(w);
  return out;
}

std::string now_iso() {
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", std::localtime(&t));
  return buf;
}

void write_text(const fs::path& path, const std::string& text, bool executable = false) {
  if (!io::publish_text(path.string(), text, executable)) throw std::runtime_error(path.string() + ": cannot write");
}

// slurm/: $UNIVERSAE_SLURM_DIR, else the source tree this binary was built from.
fs::path slurm_folder() {
  if (const char* dir = std::getenv("UNIVERSAE_SLURM_DIR")) return dir;
  return fs::path(build::kSourceDir) / "slurm";
}

// sweep.cluster: a name (slurm/<name>/env.sh) or a path to an env file.
fs::path env_file(const config::SweepConfig& sweep) {
  const bool is_path = sweep.cluster.find('/') != std::string::npos ||
                       (sweep.cluster.size() > 3 && sweep.cluster.substr(sweep.cluster.size() - 3) == ".sh");
  const fs::path file = is_path ? fs::path(sweep.cluster) : slurm_folder() / sweep.cluster / "env.sh";
  if (fs::is_regular_file(file)) return fs::absolute(file);
  std::string known;
  if (fs::is_directory(slurm_folder()))
    for (const auto& e : fs::directory_iterator(slurm_folder()))
      if (fs::is_regular_file(e.path() / "env.sh")) known += (known.empty() ? "" : ", ") + e.path().filename().string();
  throw UsageError("config key 'sweep.cluster': " + file.string() + " not found (clusters in " + slurm_folder().string() +
                   ": " + (known.empty() ? "none" : known) + "; copy slurm/generic/ for yours)");
}

fs::path this_binary() {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) throw std::runtime_error("cannot find this program's path (/proc/self/exe): " + ec.message());
  return exe;
}

// The command a step's job runs (without the launcher and --task).
std::vector<std::string> step_command(const fs::path& binary, const fs::path& job, const std::vector<std::string>& overrides,
                                      const std::string& step) {
  std::vector<std::string> cmd{binary.string(), "sweep", job.string(), "--step", step};
  for (const auto& o : overrides) cmd.insert(cmd.end(), {"--set", o});
  return cmd;
}

std::string sbatch_options(const config::Config& cfg, const Step& step) {
  const auto& w = cfg.sweep;
  const auto& r = *step.resources;
  std::vector<std::string> o{"--ntasks=" + std::to_string(r.ranks), "--cpus-per-task=" + std::to_string(r.cpus_per_rank),
                             "--time=" + r.time};
  if (!r.mem.empty()) o.push_back("--mem=" + r.mem);
  if (r.gpus > 0) o.push_back("--gpus-per-task=" + std::to_string(r.gpus));
  const std::string partition = r.partition.empty() ? w.partition : r.partition;
  if (!partition.empty()) o.push_back("--partition=" + partition);
  if (!w.account.empty()) o.push_back("--account=" + w.account);
  if (w.signal_seconds > 0) o.push_back("--signal=B:USR1@" + std::to_string(w.signal_seconds));
  o.push_back(w.requeue ? "--requeue" : "--no-requeue");
  if (step.array)
    o.push_back("--array=" + array_spec(step.tasks) + (w.max_parallel > 0 ? "%" + std::to_string(w.max_parallel) : ""));
  o.insert(o.end(), w.sbatch.begin(), w.sbatch.end());
  std::string out;
  for (const auto& line : o) out += (out.empty() ? "" : "\n") + std::string("#SBATCH ") + line;
  return out;
}

std::string render(std::string text, const std::vector<std::pair<std::string, std::string>>& values, const fs::path& from) {
  for (const auto& [key, value] : values) {
    const std::string mark = "{{" + key + "}}";
    for (size_t at = text.find(mark); at != std::string::npos; at = text.find(mark, at + value.size()))
      text.replace(at, mark.size(), value);
  }
  if (const size_t at = text.find("{{"); at != std::string::npos)
    throw UsageError(from.string() + ": unknown placeholder " + text.substr(at, text.find("}}", at) + 2 - at));
  return text;
}

struct Plan {
  fs::path job, binary, workdir, output_dir;
  std::vector<Step> steps;
  std::vector<config::Config> task_configs;
  std::vector<bool> trained, compared;
  size_t complete = 0;
};

Plan make_plan(const Study& study, const LaunchOptions& opts) {
  Plan p;
  p.job = fs::absolute(opts.job);
  p.binary = this_binary();
  p.workdir = fs::current_path();
  p.output_dir = fs::absolute(study.config().run.output_dir);
  const auto& cfg = study.config();
  const bool compare = study.has_stage(config::Stage::kCompare), train = study.has_stage(config::Stage::kTrain);
  // Every task's config, validated now: a bad combination stops the sweep before anything is written.
  std::vector<size_t> todo;
  for (size_t i = 0; i < study.tasks().size(); ++i) {
    p.task_configs.push_back(study.task_config(i));
    const auto& t = p.task_configs.back().train;
    if (train && cfg.sweep.train.ranks % (t.seed_groups * t.latent_shards) != 0)
      throw UsageError(fmt::format("config key 'sweep.train.ranks': {} ranks cannot be split into train.seed_groups ({}) × "
                                   "train.latent_shards ({}) for {}",
                                   cfg.sweep.train.ranks, t.seed_groups, t.latent_shards, study.describe(i)));
    p.trained.push_back(study.trained(p.task_configs.back()));
    p.compared.push_back(!compare || study.compared(p.task_configs.back()));
    if ((!train || p.trained.back()) && p.compared.back())
      ++p.complete;
    else
      todo.push_back(i);
  }
  if (study.has_stage(config::Stage::kExtract)) {
    // One job, or with several models an array: one task per extraction not yet complete.
    std::vector<size_t> missing;
    for (size_t e = 0; e < study.extractions().size(); ++e)
      if (!study.extracted(e)) missing.push_back(e);
    if (!missing.empty()) p.steps.push_back({"extract", study.extractions().size() > 1, missing, &cfg.sweep.extract});
  }
  // A task is retrained only when its SAEs are incomplete (the train step reuses complete ones), but
  // it is in both arrays so that compare element i always has its train element i.
  if (train && !todo.empty()) p.steps.push_back({"train", true, todo, &cfg.sweep.train});
  if (compare && !todo.empty()) p.steps.push_back({"compare", true, todo, &cfg.sweep.compare});
  if (compare) p.steps.push_back({"summary", false, {}, &cfg.sweep.compare});
  return p;
}

nlohmann::json manifest(const Study& study, const Plan& p, const LaunchOptions& opts, const std::string& mode) {
  nlohmann::json tasks = nlohmann::json::array();
  for (size_t i = 0; i < study.tasks().size(); ++i) {
    const auto& t = study.tasks()[i];
    tasks.push_back({{"index", i},
                     {"id", t.id},
                     {"sets", t.sets},
                     {"output_dir", fs::absolute(p.task_configs[i].run.output_dir).string()},
                     {"trained", static_cast<bool>(p.trained[i])},
                     {"compared", static_cast<bool>(p.compared[i])}});
  }
  nlohmann::json extractions = nlohmann::json::array();
  for (size_t e = 0; e < study.extractions().size(); ++e) {
    const auto& x = study.extractions()[e];
    extractions.push_back({{"index", e}, {"id", x.id}, {"sets", x.sets}, {"store", fs::absolute(x.store).string()},
                           {"tasks", x.tasks}});
  }
  nlohmann::json steps = nlohmann::json::array();
  for (const auto& s : p.steps) {
    nlohmann::json step{{"name", s.name}, {"ranks", s.resources->ranks}};
    if (s.array) step["tasks"] = array_spec(s.tasks);
    steps.push_back(step);
  }
  return {{"format", "universae-sweep"},
          {"format_version", 1},
          {"mode", mode},
          {"created", now_iso()},
          {"sweep", p.job.string()},
          {"overrides", opts.overrides},
          {"binary", p.binary.string()},
          {"workdir", p.workdir.string()},
          {"output_dir", p.output_dir.string()},
          {"tasks", tasks},
          {"extractions", extractions},
          {"steps", steps}};
}

void log_plan(const Study& study, const Plan& p) {
  log::info("sweep {}: {} task(s), {} complete; steps: {}", study.config().run.name, study.tasks().size(), p.complete, [&] {
    std::string s;
    for (const auto& step : p.steps)
      s += (s.empty() ? "" : " → ") + step.name + (step.array ? "[" + array_spec(step.tasks) + "]" : "");
    return s.empty() ? std::string("none") : s;
  }());
}

// One sbatch script per step, from slurm/templates/job.sbatch.
void write_step_scripts(const Study& study, const Plan& p, const LaunchOptions& opts, const fs::path& dir) {
  const auto& cfg = study.config();
  const fs::path env = env_file(cfg.sweep);
  const fs::path template_path = slurm_folder() / "templates" / "job.sbatch";
  const std::string tmpl = io::read_text(template_path.string());
  for (const auto& step : p.steps) {
    const std::string log = (dir / "logs" / (step.name + (step.array ? "-%a" : "") + ".log")).string();
    const std::string description =
        step.name == "extract"   ? (step.array ? "extraction: one array task per model (index = extraction in manifest.json)"
                                               : "extraction: the activation store every task reads")
        : step.name == "train"   ? "training: one array task per grid task (index = task index in manifest.json)"
        : step.name == "compare" ? "comparison: each task's SAEs compared, after that task's training"
                                 : "summary: across-task comparisons and study_summary.csv, after every comparison";
    const std::string script = render(tmpl,
                                      {{"DESCRIPTION", "universae sweep " + cfg.run.name + ", " + description},
                                       {"SWEEP", p.job.string()},
                                       {"JOB_NAME", "universae-" + cfg.run.name + "-" + step.name},
                                       {"LOG", log},
                                       {"WORKDIR", p.workdir.string()},
                                       {"SBATCH_OPTIONS", sbatch_options(cfg, step)},
                                       {"ENV_FILE", shell_quote(env.string())},
                                       {"STEP", step.name},
                                       {"COMMAND", join_quoted(step_command(p.binary, p.job, opts.overrides, step.name))},
                                       {"REQUEUE", cfg.sweep.requeue ? "yes" : "no"}},
                                      template_path);
    write_text(dir / (step.name + ".sbatch"), script, true);
  }
  for (const char* old : {"extract", "train", "compare", "summary"})  // a previous plan's steps that are done
    if (std::none_of(p.steps.begin(), p.steps.end(), [&](const Step& s) { return s.name == old; }))
      fs::remove(dir / (std::string(old) + ".sbatch"));
}

// submit.sh from slurm/templates/submit.sh: sbatch for each step with its dependencies (sweep/slurm_plan.hpp).
void write_submit_script(const Plan& p, const fs::path& dir) {
  const fs::path template_path = slurm_folder() / "templates" / "submit.sh";
  std::vector<std::string> names;
  for (const auto& step : p.steps) names.push_back(step.name);
  write_text(dir / "submit.sh",
             render(io::read_text(template_path.string()), {{"SWEEP", p.job.string()}, {"SUBMISSIONS", submission_lines(names)}},
                    template_path),
             true);
}

int launch_slurm(const Study& study, const Plan& p, const LaunchOptions& opts) {
  const fs::path dir = fs::absolute(opts.slurm_dir);
  env_file(study.config().sweep);  // a missing env file is named before anything is written
  for (const char* name : {"job.sbatch", "submit.sh"})
    if (!fs::is_regular_file(slurm_folder() / "templates" / name))
      throw UsageError((slurm_folder() / "templates" / name).string() +
                       ": a sweep template is missing (set UNIVERSAE_SLURM_DIR to the repository's slurm/)");
  if (opts.submit && std::system("command -v sbatch >/dev/null 2>&1") != 0)
    throw UsageError("sbatch is not on PATH: run this on a Slurm login node, or pass --no-submit to only write the scripts");
  fs::create_directories(dir / "logs");
  write_step_scripts(study, p, opts, dir);
  write_submit_script(p, dir);
  write_text(dir / "manifest.json", manifest(study, p, opts, "slurm").dump(2) + "\n");
  log_plan(study, p);
  log::info("sweep: scripts, manifest.json and submit.sh in {}; logs in {}/logs", dir.string(), dir.string());
  if (!opts.submit) {
    log::info("sweep: submit with: bash {}", (dir / "submit.sh").string());
    return 0;
  }
  const int rc = std::system(("bash " + shell_quote((dir / "submit.sh").string())).c_str());
  if (rc != 0) {
    log::error("sweep: {} failed (sbatch's message above); the scripts are in {}", (dir / "submit.sh").string(), dir.string());
    return 1;
  }
  log::info("sweep: submitted; follow with squeue --me, logs in {}/logs, results in {}", dir.string(), p.output_dir.string());
  return 0;
}

// What a failed step's log says went wrong: universae's error line, else its last few lines
// (mpirun's own messages span several).
std::string failure_lines(const fs::path& log) {
  std::ifstream in(log);
  std::string line, error;
  std::vector<std::string> last;
  while (std::getline(in, line)) {
    if (line.find("universae: error:") != std::string::npos || line.find("internal error") != std::string::npos) error = line;
    if (line.find_first_not_of("-= ") == std::string::npos) continue;
    last.push_back(line);
    if (last.size() > 4) last.erase(last.begin());
  }
  if (!error.empty()) return error;
  std::string out;
  for (const auto& l : last) out += "\n  | " + l;
  return out;
}

int launch_local(const Study& study, const Plan& p, const LaunchOptions& opts) {
  const auto& cfg = study.config();
  const fs::path dir = p.output_dir / "sweep";
  fs::create_directories(dir / "logs");
  write_text(dir / "manifest.json", manifest(study, p, opts, "local").dump(2) + "\n");
  log_plan(study, p);
  log::info("sweep: logs in {}", (dir / "logs").string());

  std::vector<bool> failed(study.tasks().size(), false);
  int failures = 0;
  auto run = [&](const Step& step, int64_t task) -> int {
    const std::string what = task < 0               ? step.name
                             : step.name == "extract" ? study.describe_extraction(static_cast<size_t>(task))
                                                      : step.name + " " + study.describe(static_cast<size_t>(task));
    const fs::path log = dir / "logs" / (step.name + (task < 0 ? "" : "-" + std::to_string(task)) + ".log");
    std::string launcher = cfg.sweep.local_launcher;
    launcher.replace(launcher.find("{ranks}"), 7, std::to_string(step.resources->ranks));
    auto cmd = step_command(p.binary, p.job, opts.overrides, step.name);
    if (task >= 0) cmd.insert(cmd.end(), {"--task", std::to_string(task)});
    const std::string line = "OMP_NUM_THREADS=" + std::to_string(step.resources->cpus_per_rank) + " OPENBLAS_NUM_THREADS=1 " +
                             launcher + " " + join_quoted(cmd) + " >> " + shell_quote(log.string()) + " 2>&1";
    {
      std::ofstream(log, std::ios::app) << "== " << now_iso() << " " << what << ": " << line << "\n";
    }
    log::info("sweep: {} ...", what);
    const auto t0 = Clock::now();
    const int status = std::system(line.c_str());
    const int rc = status == -1 ? 1 : WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    if (rc == 0)
      log::info("sweep: {} done in {}", what, log::format_duration(seconds));
    else
      log::error("sweep: {} FAILED (exit {}) after {}: {}\n  log: {}", what, rc, log::format_duration(seconds), failure_lines(log),
                 log.string());
    return rc;
  };

  for (const auto& step : p.steps) {
    if (!step.array) {
      const int rc = run(step, -1);
      if (rc == 75) return 75;
      if (rc != 0 && step.name == "extract") {
        log::error("sweep: every task needs the extraction; fix it and run the same command again");
        return 1;
      }
      failures += rc != 0;
      continue;
    }
    if (step.name == "extract") {  // one run per model; every task needs its model's store
      for (size_t e : step.tasks) {
        const int rc = run(step, static_cast<int64_t>(e));
        if (rc == 75) return 75;
        if (rc != 0) {
          log::error("sweep: the tasks of {} need its store; fix it and run the same command again", study.describe_extraction(e));
          return 1;
        }
      }
      continue;
    }
    // Arrays run task by task in the order Slurm would start them; a task whose training failed
    // skips its comparison (aftercorr).
    for (size_t t : step.tasks) {
      if (failed[t]) continue;
      const int rc = run(step, static_cast<int64_t>(t));
      if (rc == 75) return 75;
      if (rc != 0) failed[t] = true, ++failures;
    }
  }
  if (failures > 0) {
    log::error("sweep: {} step(s) failed (logs above); the other tasks are complete. Fix the cause and run the same "
               "command again: only incomplete tasks run",
               failures);
    return 1;
  }
  log::info("sweep: all {} task(s) complete; outputs in {}", study.tasks().size(), p.output_dir.string());
  return 0;
}

}  // namespace

int launch(const LaunchOptions& opts) {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"})
    if (const char* v = std::getenv(var); v && std::atoi(v) > 1)
      throw UsageError("run `universae sweep --slurm/--local` as one process, not under mpirun or srun: it starts the ranks itself");
  const config::Config cfg = config::load(opts.job, opts.overrides);
  const Study study(opts.job, opts.overrides, cfg);
  const Plan plan = make_plan(study, opts);
  if (opts.local) {
    if (plan.steps.empty()) {
      log::info("sweep: nothing to do, all {} task(s) complete", study.tasks().size());
      return 0;
    }
    return launch_local(study, plan, opts);
  }
  return launch_slurm(study, plan, opts);
}

}  // namespace universae::sweep
