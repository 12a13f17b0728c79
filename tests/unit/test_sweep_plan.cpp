// sweep/slurm_plan.hpp: Slurm's array syntax and the jobs' dependencies, for every shape of plan a
// sweep makes (a rerun plans only the steps left).
#include <gtest/gtest.h>

#include "sweep/slurm_plan.hpp"

using namespace universae::sweep;

TEST(SweepPlan, ArraySpecJoinsRuns) {
  EXPECT_EQ(array_spec({0, 1, 2, 3, 5, 7, 8}), "0-3,5,7-8");
  EXPECT_EQ(array_spec({4}), "4");
  EXPECT_EQ(array_spec({2, 4, 6}), "2,4,6");
  EXPECT_EQ(array_spec({}), "");
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
