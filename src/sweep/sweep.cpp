#include "sweep/sweep.hpp"

#include <fmt/format.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <sstream>
#include <stdexcept>
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
  if (r.nodes > 0) o.push_back("--nodes=" + std::to_string(r.nodes));
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
  for (auto [name, r] : {std::pair{"extract", &cfg.sweep.extract}, {"train", &cfg.sweep.train}, {"compare", &cfg.sweep.compare}})
    if (r->nodes > r->ranks)
      throw UsageError(fmt::format("config key 'sweep.{}.nodes': {} nodes for {} ranks (sweep.{}.ranks) would leave a node "
                                   "without a rank", name, r->nodes, r->ranks, name));
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
  // jobs.txt names the jobs of the manifest's submission: an older one's would be read against this plan.
  std::error_code ignored;
  fs::remove(dir / "jobs.txt", ignored);
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
std::string log_failure(const fs::path& log) {
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
      log::error("sweep: {} FAILED (exit {}) after {}: {}\n  log: {}", what, rc, log::format_duration(seconds), log_failure(log),
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

namespace {

// ---- sweep --status ----

// A command's output and exit status (`2>&1`: the message when it fails).
std::pair<int, std::string> capture(const std::string& command) {
  std::string out;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return {-1, "cannot start a shell"};
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) out.append(buf, n);
  const int st = ::pclose(pipe);
  return {st == -1 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), out};
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

// The queue for `ids` (jobs.txt's job ids): each job and array element, or why it could not be read.
struct Queue {
  bool known = false;
  std::string problem;                       // when not known
  std::map<std::string, QueuedJob> jobs;     // by "123" / "123_4"
};

Queue read_queue(const std::vector<std::string>& ids) {
  Queue q;
  if (ids.empty()) {
    q.known = true;
    return q;
  }
  if (std::system("command -v squeue >/dev/null 2>&1") != 0) {
    q.problem = "squeue is not on PATH (not a Slurm login node?)";
    return q;
  }
  std::string list;
  for (const auto& id : ids) list += (list.empty() ? "" : ",") + id;
  auto [rc, out] = capture("timeout 30 squeue -t all -h -r -o '%i|%T|%r' -j " + list);
  // -t all: also the jobs that ended (for MinJobAge), to say how. Those that ended longer ago are
  // unknown to the controller: squeue fails when it knows none of them, which means none is queued.
  if (rc != 0 && out.find("Invalid job id") != std::string::npos) rc = 0, out.clear();
  if (rc != 0) {
    q.problem = rc == 124 ? "squeue did not answer within 30 s" : "squeue failed (exit " + std::to_string(rc) + "): " + trim(out);
    return q;
  }
  q.known = true;
  for (auto& job : parse_squeue(out)) q.jobs[job.id] = job;
  return q;
}

struct StatusRow {
  std::string what;               // "task 3/8 (k=4)", "extraction 1/1", "summary"
  std::string state;              // done, running, pending, failed, incomplete, unknown
  std::string detail;             // the job, why incomplete
  std::vector<std::string> logs;  // log files (existing ones, or the one a job would write)
  std::string failure;            // a failed step's error line(s)
};

std::string status_error(const fs::path& file, const std::string& why) {
  return file.string() + ": " + why + " (sweep --status takes the directory `sweep --slurm DIR` wrote, or "
         "<run.output_dir>/sweep of a --local sweep)";
}

// What `sweep --slurm` or `--local` recorded in DIR: manifest.json (the sweep file, its --set values,
// the working directory, the tasks, each step's array elements) and jobs.txt (the last submission).
struct Manifest {
  fs::path dir, path, jobs_path, logs;
  std::string sweep_file, workdir, mode;
  std::vector<std::string> overrides, task_ids;
  std::map<std::string, std::vector<size_t>> submitted;  // step → the array elements the last submission had
  std::map<std::string, std::string> job_of;             // step → its job id ("step id" lines of jobs.txt)
};

Manifest read_manifest(const std::string& dir_arg) {
  Manifest m;
  m.dir = fs::absolute(dir_arg);
  if (!fs::is_directory(m.dir)) throw UsageError(status_error(dir_arg, fs::exists(m.dir) ? "not a directory" : "no such directory"));
  m.path = m.dir / "manifest.json";
  m.jobs_path = m.dir / "jobs.txt";
  m.logs = m.dir / "logs";
  if (!fs::is_regular_file(m.path)) throw UsageError(status_error(m.path, "missing"));
  try {
    const nlohmann::json j = nlohmann::json::parse(io::read_text(m.path.string()));
    if (!j.is_object() || !j.contains("format") || !j.at("format").is_string() ||
        j.at("format").get<std::string>() != "universae-sweep")
      throw UsageError(status_error(m.path, "not a sweep manifest (no \"format\": \"universae-sweep\")"));
    m.sweep_file = j.at("sweep").get<std::string>();
    m.workdir = j.at("workdir").get<std::string>();
    m.mode = j.at("mode").get<std::string>();
    m.overrides = j.at("overrides").get<std::vector<std::string>>();
    for (const auto& t : j.at("tasks")) m.task_ids.push_back(t.at("id").get<std::string>());
    for (const auto& step : j.at("steps"))
      m.submitted[step.at("name").get<std::string>()] =
          step.contains("tasks") ? parse_array_spec(step.at("tasks").get<std::string>()) : std::vector<size_t>{};
  } catch (const nlohmann::json::exception& e) {
    throw UsageError(status_error(m.path, std::string("garbled: ") + e.what()));
  } catch (const std::invalid_argument& e) {
    throw UsageError(status_error(m.path, std::string("garbled: ") + e.what()));
  }
  if (m.mode != "slurm" && m.mode != "local") throw UsageError(status_error(m.path, "unknown mode '" + m.mode + "'"));
  if (m.mode == "slurm" && fs::is_regular_file(m.jobs_path)) {
    std::ifstream in(m.jobs_path);
    std::string step, id;
    while (in >> step >> id) {
      if (id.find_first_not_of("0123456789") != std::string::npos)
        throw UsageError(status_error(m.jobs_path, "garbled: '" + step + " " + id + "' is not a step and a job id"));
      m.job_of[step] = id;
    }
  }
  return m;
}

// The job of `step` for one array element (or the step's job), if the last submission had it.
struct JobRef {
  std::string id;  // "123_4"; "" when not submitted
  const QueuedJob* queued = nullptr;
};

// The status table's rows: each extraction, each task (train and compare), the summary.
class StatusReport {
 public:
  StatusReport(const Manifest& m, const Study& study, const Queue& queue) : m_(m), study_(study), queue_(queue) {}

  std::vector<StatusRow> rows() {
    add_extractions();
    add_tasks();
    if (study_.has_stage(config::Stage::kCompare)) add_summary();
    return std::move(rows_);
  }

 private:
  JobRef job_for(const std::string& step, int64_t element) const {
    JobRef ref;
    const auto it = m_.job_of.find(step);
    if (it == m_.job_of.end()) return ref;
    if (element >= 0) {
      const auto elems = m_.submitted.find(step);
      if (elems == m_.submitted.end() ||
          std::find(elems->second.begin(), elems->second.end(), static_cast<size_t>(element)) == elems->second.end())
        return ref;
      ref.id = it->second + "_" + std::to_string(element);
    } else {
      ref.id = it->second;
    }
    const auto q = queue_.jobs.find(ref.id);
    if (q != queue_.jobs.end()) ref.queued = &q->second;
    return ref;
  }

  std::string log_path(const std::string& step, int64_t element) const {
    return (m_.logs / (step + (element < 0 ? "" : "-" + std::to_string(element)) + ".log")).string();
  }

  static std::vector<std::string> existing(std::vector<std::string> paths) {
    std::vector<std::string> out;
    for (auto& p : paths)
      if (fs::exists(p)) out.push_back(std::move(p));
    return out;
  }

  // An incomplete item: queued (running or pending), else failed (its job ended), else not submitted.
  void not_done(StatusRow& row, const std::vector<std::pair<std::string, JobRef>>& jobs, const std::string& why,
                const std::string& log) const {
    for (const auto& [step, job] : jobs)
      if (job.queued != nullptr && job_active(job.queued->state)) {
        row.state = job_running(job.queued->state) ? "running" : "pending";
        row.detail = step + " job " + job.id + (row.state == "pending" ? " (" + job.queued->reason + ")" : "");
        row.logs = {log};
        return;
      }
    row.logs = existing({log});
    const JobRef* ended = nullptr;
    std::string ended_step;
    for (const auto& [step, job] : jobs)
      if (!job.id.empty() && ended == nullptr) ended = &job, ended_step = step;
    if (m_.mode == "local") {
      row.state = "incomplete";
      row.detail = why;
    } else if (ended == nullptr) {
      row.state = "incomplete";
      row.detail = "not in the last submission; " + why;
    } else if (!queue_.known) {
      row.state = "unknown";
      row.detail = ended_step + " job " + ended->id + ": " + queue_.problem + "; " + why;
      return;
    } else {
      // A job that failed, was cancelled (its dependency failed) or timed out; one that completed
      // without completing its outputs (the summary, when tasks failed) is merely incomplete.
      const bool completed = ended->queued != nullptr && ended->queued->state == "COMPLETED";
      row.state = completed ? "incomplete" : "failed";
      row.detail = ended_step + " job " + ended->id + " ended" +
                   (ended->queued != nullptr ? " (" + ended->queued->state + ")" : "") + "; " + why;
    }
    if (!row.logs.empty() && row.state == "failed") row.failure = log_failure(row.logs.front());
  }

  void add_extractions() {
    extraction_done_.assign(study_.extractions().size(), 1);
    if (!study_.has_stage(config::Stage::kExtract)) return;
    const bool array = study_.extractions().size() > 1;
    for (size_t e = 0; e < study_.extractions().size(); ++e) {
      StatusRow row{study_.describe_extraction(e), "done", "", {}, ""};
      const int64_t element = array ? static_cast<int64_t>(e) : -1;
      const std::string log = log_path("extract", element);
      if (study_.extracted(e)) {
        row.logs = existing({log});
      } else {
        extraction_done_[e] = 0;
        not_done(row, {{"extract", job_for("extract", element)}}, study_.extraction_config(e).extract.store + ": not complete", log);
      }
      rows_.push_back(std::move(row));
    }
  }

  size_t extraction_of(size_t task) const {
    for (size_t k = 0; k < study_.extractions().size(); ++k)
      for (size_t t : study_.extractions()[k].tasks)
        if (t == task) return k;
    return 0;
  }

  void add_tasks() {
    const bool train = study_.has_stage(config::Stage::kTrain), compare = study_.has_stage(config::Stage::kCompare);
    std::error_code ec;
    for (size_t i = 0; i < study_.tasks().size(); ++i) {
      const config::Config task = study_.task_config(i);
      StatusRow row{study_.describe(i), "done", "", {}, ""};
      const auto e = static_cast<int64_t>(i);
      const std::string train_problem = train ? study_.train_problem(task) : "";
      const std::string compare_problem = compare ? study_.compare_problem(task) : "";
      if (train_problem.empty() && compare_problem.empty()) {
        row.logs = existing({log_path("train", e), log_path("compare", e)});
        done_tasks_.push_back(i);
        if (compare) newest_ = std::max(newest_, fs::last_write_time(fs::path(task.run.output_dir) / "results.h5", ec));
      } else {
        std::string why = !train_problem.empty() ? train_problem : compare_problem;
        if (study_.has_stage(config::Stage::kExtract) && !extraction_done_[extraction_of(i)]) why += " (its extraction is not complete)";
        // The step that left it incomplete first: its job is the one that ended, its log has the error.
        const bool training = !train_problem.empty();
        const std::pair<std::string, JobRef> t{"train", job_for("train", e)}, c{"compare", job_for("compare", e)};
        not_done(row, training ? std::vector{t, c} : std::vector{c, t}, why, log_path(training ? "train" : "compare", e));
      }
      rows_.push_back(std::move(row));
    }
  }

  // The summary: the across-task comparisons and study_summary.csv, written after every task's results.
  void add_summary() {
    StatusRow row{"summary", "done", "", {}, ""};
    const std::string log = log_path("summary", -1);
    std::error_code ec;
    std::string why;
    if (done_tasks_.size() < study_.tasks().size())
      why = std::to_string(study_.tasks().size() - done_tasks_.size()) + " task(s) not complete";
    if (why.empty())
      for (const auto& pair : study_.across_pairs(done_tasks_)) {
        const fs::path results = fs::path(pair.config.run.output_dir) / "results.h5";
        if (!study_.compared(pair)) {
          why = results.string() + ": not complete";
          break;
        }
        newest_ = std::max(newest_, fs::last_write_time(results, ec));
      }
    const fs::path csv = study_.summary_path();
    if (why.empty() && (!fs::exists(csv) || fs::last_write_time(csv, ec) < newest_))
      why = csv.string() + (fs::exists(csv) ? ": older than the results it summarises" : ": missing");
    if (why.empty())
      row.logs = existing({log});
    else
      not_done(row, {{"summary", job_for("summary", -1)}}, why, log);
    rows_.push_back(std::move(row));
  }

  const Manifest& m_;
  const Study& study_;
  const Queue& queue_;
  std::vector<StatusRow> rows_;
  std::vector<char> extraction_done_;  // per extraction (char: vector<bool>'s proxy trips -Wnull-dereference)
  std::vector<size_t> done_tasks_;
  fs::file_time_type newest_ = fs::file_time_type::min();  // (the file clock's epoch is not the oldest time)
};

// The table, then one line with the counts and the verdict; the exit code.
int print_status(const Manifest& m, const std::string& name, size_t n_tasks, bool summary, const Queue& queue,
                 const std::vector<StatusRow>& rows) {
  size_t width = 0;
  for (const auto& r : rows) width = std::max(width, r.what.size());
  std::map<std::string, size_t> count;
  fmt::print("sweep {} ({}): {}\n", name, m.sweep_file,
             m.mode == "local" ? "run with --local, logs in " + m.logs.string()
             : m.job_of.empty() ? "no jobs submitted from " + m.dir.string()
                                : "jobs of the last submission in " + m.jobs_path.string());
  for (const auto& r : rows) {
    fmt::print("{}\n", trim(fmt::format("  {:<{}}  {:<10} {}", r.what, width, r.state, r.detail)));
    for (const auto& l : r.logs) fmt::print("      log: {}\n", l);
    if (!r.failure.empty()) {  // universae's error line, or "\n  | line" for each of the log's last lines
      std::stringstream lines(r.failure[0] == '\n' ? r.failure.substr(1) : "  | " + trim(r.failure));
      for (std::string l; std::getline(lines, l);) fmt::print("      {}\n", l.size() >= 2 ? l.substr(2) : l);
    }
    if (r.what.rfind("task ", 0) == 0) ++count[r.state];
  }
  if (m.mode == "slurm" && !m.job_of.empty() && !queue.known) fmt::print("  ({})\n", queue.problem);
  const auto any = [&](std::initializer_list<const char*> states) {
    return std::any_of(rows.begin(), rows.end(), [&](const StatusRow& r) {
      return std::any_of(states.begin(), states.end(), [&](const char* s) { return r.state == s; });
    });
  };
  const bool complete = std::all_of(rows.begin(), rows.end(), [](const StatusRow& r) { return r.state == "done"; });
  const bool queued = any({"running", "pending"}), unknown = any({"unknown"});
  std::string counts = fmt::format("{} of {} task(s) done", count["done"], n_tasks);
  for (const char* s : {"running", "pending", "failed", "incomplete", "unknown"})
    if (count[s] > 0) counts += fmt::format(", {} {}", count[s], s);
  if (summary) counts += ", summary " + rows.back().state;
  const int code = complete ? kStatusComplete : queued ? kStatusQueued : unknown ? kStatusUnknown : kStatusIncomplete;
  const char* verdict = complete   ? "complete"
                        : queued   ? "not complete, jobs still queued or running: ask again later"
                        : unknown  ? "not complete, and the queue could not be read: cannot tell running from failed"
                                   : "not complete, nothing queued: run the same `universae sweep` command again (only "
                                     "incomplete tasks run)";
  fmt::print("status: {}; {} (exit {})\n", counts, verdict, code);
  std::fflush(stdout);
  return code;
}

}  // namespace

std::string failure_lines(const std::string& log) { return log_failure(log); }

int status(const std::string& dir_arg) {
  const Manifest m = read_manifest(dir_arg);
  // The sweep's relative paths are relative to where it was submitted (the jobs' --chdir).
  std::error_code ec;
  fs::current_path(m.workdir, ec);
  if (ec) throw UsageError(m.path.string() + ": the sweep's working directory " + m.workdir + ": " + ec.message());
  config::Config cfg;
  try {
    cfg = config::load(m.sweep_file, m.overrides);
  } catch (const UsageError& e) {
    throw UsageError(m.path.string() + ": its sweep file (with its --set values): " + e.what());
  }
  const Study study(m.sweep_file, m.overrides, cfg);
  std::vector<std::string> ids;
  for (const auto& t : study.tasks()) ids.push_back(t.id);
  if (ids != m.task_ids)
    log::warn("sweep: the tasks of {} differ from those {} lists (the file or its settings changed since): this is the "
              "status of the sweep as it is now", m.sweep_file, m.path.string());
  std::vector<std::string> job_ids;
  for (const auto& [step, id] : m.job_of) job_ids.push_back(id);
  const Queue queue = m.mode == "slurm" ? read_queue(job_ids) : Queue{true, "", {}};
  StatusReport report(m, study, queue);
  return print_status(m, cfg.run.name, study.tasks().size(), study.has_stage(config::Stage::kCompare), queue, report.rows());
}

}  // namespace universae::sweep
