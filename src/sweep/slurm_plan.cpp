#include "sweep/slurm_plan.hpp"

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
