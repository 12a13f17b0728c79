#include "sweep/slurm_plan.hpp"

#include <sstream>
#include <stdexcept>

namespace universae::sweep {

std::string array_spec(const std::vector<size_t>& tasks) {
  std::string out;
  for (size_t i = 0; i < tasks.size();) {
    size_t j = i;
    while (j + 1 < tasks.size() && tasks[j + 1] == tasks[j] + 1) ++j;
    out += (out.empty() ? "" : ",") + std::to_string(tasks[i]) + (j > i ? "-" + std::to_string(tasks[j]) : "");
    i = j + 1;
  }
  return out;
}

std::vector<size_t> parse_array_spec(const std::string& spec) {
  const std::string list = spec.substr(0, spec.find('%'));
  std::vector<size_t> out;
  auto number = [&](const std::string& text) -> size_t {
    if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos || text.size() > 9)
      throw std::invalid_argument("not a job array spec: '" + spec + "'");
    return std::stoul(text);
  };
  std::stringstream in(list);
  std::string part;
  while (std::getline(in, part, ',')) {
    const size_t dash = part.find('-');
    const size_t first = number(part.substr(0, dash));
    const size_t last = dash == std::string::npos ? first : number(part.substr(dash + 1));
    if (last < first) throw std::invalid_argument("not a job array spec: '" + spec + "'");
    for (size_t i = first; i <= last; ++i) out.push_back(i);
  }
  return out;
}

std::vector<QueuedJob> parse_squeue(const std::string& text) {
  std::vector<QueuedJob> jobs;
  std::stringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    const size_t a = line.find('|');
    const size_t b = a == std::string::npos ? a : line.find('|', a + 1);
    if (b == std::string::npos) continue;  // not one of ours (a warning squeue printed)
    QueuedJob job{line.substr(0, a), line.substr(a + 1, b - a - 1), line.substr(b + 1)};
    while (!job.reason.empty() && (job.reason.back() == '\r' || job.reason.back() == ' ')) job.reason.pop_back();
    jobs.push_back(std::move(job));
  }
  return jobs;
}

bool job_running(const std::string& state) {
  for (const char* s : {"RUNNING", "COMPLETING", "CONFIGURING", "SIGNALING", "STAGE_OUT"})
    if (state == s) return true;
  return false;
}

bool job_active(const std::string& state) {
  if (job_running(state)) return true;
  for (const char* s : {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING", "SUSPENDED", "STOPPED"})
    if (state == s) return true;
  return false;
}

std::vector<std::string> dependencies(const std::vector<std::string>& steps) {
  std::vector<std::string> out;
  std::string previous;
  bool train = false;
  for (const auto& step : steps) {
    if (step == "compare" && train)
      out.push_back("aftercorr:$train");
    else if (step == "summary" && !previous.empty())
      out.push_back("afterany:$" + previous);
    else if (!previous.empty())
      out.push_back("afterok:$" + previous);
    else
      out.push_back("");
    previous = step;
    train = train || step == "train";
  }
  return out;
}

std::string submission_lines(const std::vector<std::string>& steps) {
  const std::vector<std::string> deps = dependencies(steps);
  std::string out;
  for (size_t i = 0; i < steps.size(); ++i)
    out += steps[i] + "=$(submit " + steps[i] + (deps[i].empty() ? "" : " --dependency=" + deps[i] + " --kill-on-invalid-dep=yes") +
           ")\n";
  return out;
}

}  // namespace universae::sweep
