// sweep/slurm_plan.hpp: Slurm's array syntax and the jobs' dependencies, for every shape of plan a
// sweep makes (a rerun plans only the steps left); sweep/study.hpp: a study's extractions.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "config/config.hpp"
#include "core/error.hpp"
#include "sweep/slurm_plan.hpp"
#include "sweep/study.hpp"

using namespace universae::sweep;

TEST(SweepPlan, ArraySpecJoinsRuns) {
  EXPECT_EQ(array_spec({0, 1, 2, 3, 5, 7, 8}), "0-3,5,7-8");
  EXPECT_EQ(array_spec({4}), "4");
  EXPECT_EQ(array_spec({2, 4, 6}), "2,4,6");
  EXPECT_EQ(array_spec({}), "");
}

// sweep --status reads back what the planner wrote (jobs.txt array specs) and what squeue prints.
TEST(SweepPlan, ArraySpecsAndQueueLinesParseBack) {
  for (const std::vector<size_t>& tasks : {std::vector<size_t>{0, 1, 2, 3, 5, 7, 8}, {4}, {2, 4, 6}})
    EXPECT_EQ(parse_array_spec(array_spec(tasks)), tasks);
  EXPECT_EQ(parse_array_spec("0-2%4"), (std::vector<size_t>{0, 1, 2}));  // a concurrency limit is not a task
  EXPECT_TRUE(parse_array_spec("").empty());  // array_spec({})
  for (const char* bad : {"a-3", "3-1", "1,,2", "-4", "1-"}) EXPECT_THROW(parse_array_spec(bad), std::invalid_argument) << bad;
  const auto jobs = parse_squeue("12_3|RUNNING|None\nsqueue: warning: something\n14|PENDING|Dependency \r\n");
  ASSERT_EQ(jobs.size(), 2u);
  EXPECT_EQ(jobs[0].id, "12_3");
  EXPECT_EQ(jobs[0].state, "RUNNING");
  EXPECT_EQ(jobs[1].reason, "Dependency");
  EXPECT_TRUE(job_running("COMPLETING"));
  EXPECT_FALSE(job_running("PENDING"));
  EXPECT_TRUE(job_active("PENDING"));
  EXPECT_TRUE(job_active("REQUEUED"));
  for (const char* over : {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"})
    EXPECT_FALSE(job_active(over)) << over;
}

TEST(SweepPlan, DependenciesFollowTheStepsLeft) {
  using V = std::vector<std::string>;
  EXPECT_EQ(dependencies({"extract", "train", "compare", "summary"}), (V{"", "afterok:$extract", "aftercorr:$train", "afterany:$compare"}));
  EXPECT_EQ(dependencies({"train", "compare", "summary"}), (V{"", "aftercorr:$train", "afterany:$compare"}));
  EXPECT_EQ(dependencies({"summary"}), (V{""}));                             // everything else complete
  EXPECT_EQ(dependencies({"extract", "compare", "summary"}), (V{"", "afterok:$extract", "afterany:$compare"}));  // no train stage
  EXPECT_EQ(dependencies({"extract", "train"}), (V{"", "afterok:$extract"}));  // no compare stage
}

TEST(SweepPlan, SubmissionLinesNameTheDependency) {
  EXPECT_EQ(submission_lines({"train", "compare"}),
            "train=$(submit train)\ncompare=$(submit compare --dependency=aftercorr:$train --kill-on-invalid-dep=yes)\n");
}

// A study with extract.model on its grid: one extraction per model, named by the model file's stem,
// each in its own store; every task reads its model's store; the across-model pairs' SAE names are
// model@layer with run.across_every.
TEST(StudyExtractions, OneStorePerModelOnTheGrid) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / "universae_test_study";
  fs::create_directories(dir / "models");
  for (const char* m : {"alpha.bin", "beta.gguf"}) std::ofstream(dir / "models" / m) << "x";
  const fs::path job = dir / "job.toml";
  std::ofstream(job) << "[run]\nstages = [\"extract\", \"train\"]\noutput_dir = \"" << (dir / "out").string()
                     << "\"\ncompare_across = [\"extract.model\"]\nacross_every = [\"data.hookpoint\"]\n"
                     << "[extract]\ntokenizer = \"" << (dir / "models" / "alpha.bin").string() << "\"\n"
                     << "inputs = [\"" << (dir / "models" / "alpha.bin").string() << "\"]\n"
                     << "[data]\nsource = \"extract\"\n[grid]\n\"extract.model\" = [\"" << (dir / "models" / "alpha.bin").string()
                     << "\", \"" << (dir / "models" / "beta.gguf").string() << "\"]\n\"data.hookpoint\" = [\"blocks.0.hook_resid_post\", "
                     << "\"blocks.1.hook_resid_post\"]\n";
  const Study study(job.string(), {}, universae::config::load(job.string(), {}));
  ASSERT_EQ(study.tasks().size(), 4u);
  ASSERT_EQ(study.extractions().size(), 2u);
  const auto& e = study.extractions();
  EXPECT_EQ(e[0].id, "model=alpha");
  EXPECT_EQ(e[1].id, "model=beta");
  EXPECT_EQ(e[0].store, (dir / "out" / "extract" / "alpha" / "activations.h5").string());
  EXPECT_EQ(e[1].store, (dir / "out" / "extract" / "beta" / "activations.h5").string());
  EXPECT_EQ(study.extraction_config(1).extract.model, (dir / "models" / "beta.gguf").string());
  for (size_t t = 0; t < study.tasks().size(); ++t) {
    const auto cfg = study.task_config(t);
    const bool beta = study.tasks()[t].id.find("model=beta") != std::string::npos;
    EXPECT_EQ(cfg.extract.store, e[beta ? 1 : 0].store) << study.tasks()[t].id;
    EXPECT_EQ(cfg.data.source, cfg.extract.store) << study.tasks()[t].id;
    EXPECT_EQ(cfg.extract.model, beta ? (dir / "models" / "beta.gguf").string() : (dir / "models" / "alpha.bin").string());
  }
  EXPECT_EQ(e[0].tasks.size() + e[1].tasks.size(), 4u);
  fs::remove_all(dir);
}

// extract.model is the one extract key a grid may vary; the rest would need one extraction per value
// of something the stores must share.
TEST(StudyExtractions, OtherExtractKeysAreNotGridAxes) {
  namespace fs = std::filesystem;
  const fs::path job = fs::temp_directory_path() / "universae_test_grid_extract.toml";
  std::ofstream(job) << "[grid]\n\"extract.seq_len\" = [64, 128]\n";
  try {
    universae::config::load(job.string(), {});
    FAIL() << "extract.seq_len accepted as a grid axis";
  } catch (const universae::UsageError& err) {
    EXPECT_NE(std::string(err.what()).find("extract.seq_len"), std::string::npos) << err.what();
  }
  fs::remove(job);
}
