// train/layout.hpp: every rank of a job played in one process (after llm.c's test_dataloader): each
// (seed, latent) is trained by exactly dp ranks, the communicators' keys are consistent, and a
// layout that does not divide the ranks is refused.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <tuple>
#include <vector>

#include "core/error.hpp"
#include "train/layout.hpp"

using namespace universae;
using train::LayoutPlan;
using train::plan_layout;

TEST(TrainLayout, EverySeedAndLatentIsTrainedByExactlyDpRanks) {
  const int64_t n_seeds = 5, n_latents = 13;
  for (int ranks = 1; ranks <= 12; ++ranks)
    for (int groups = 1; groups <= std::min<int>(ranks, n_seeds); ++groups)
      for (int shards = 1; shards <= ranks; ++shards) {
        if (ranks % (groups * shards) != 0) continue;
        const int dp = ranks / (groups * shards);
        std::map<std::pair<int64_t, int64_t>, int> owners;  // (seed, latent) → ranks holding it
        std::set<std::tuple<int, int, int>> places;         // (group, dp_rank, shard)
        int group_roots = 0;
        for (int r = 0; r < ranks; ++r) {
          const LayoutPlan p = plan_layout(ranks, r, groups, shards, n_seeds, n_latents);
          ASSERT_EQ(p.dp, dp);
          EXPECT_TRUE(places.insert({p.group, p.dp_rank, p.shard}).second) << "rank " << r << " repeats a place";
          group_roots += p.group_root();
          for (int64_t s = p.seeds.begin; s < p.seeds.end; ++s)
            for (int64_t l = p.latents.begin; l < p.latents.end; ++l) ++owners[{s, l}];
        }
        EXPECT_EQ(group_roots, groups);
        ASSERT_EQ(owners.size(), static_cast<size_t>(n_seeds * n_latents)) << ranks << " ranks, " << groups << "×" << shards;
        for (const auto& [key, count] : owners) EXPECT_EQ(count, dp) << "seed " << key.first << " latent " << key.second;
      }
}

TEST(TrainLayout, ShardVariesFastestThenDataParallelThenGroup) {
  // 12 ranks = 2 groups × 3 data-parallel × 2 shards.
  const LayoutPlan p = plan_layout(12, 9, 2, 2, 4, 10);
  EXPECT_EQ(p.group, 1);
  EXPECT_EQ(p.dp_rank, 1);  // (9 % 6) / 2
  EXPECT_EQ(p.shard, 1);
  EXPECT_EQ(p.seeds.begin, 2);
  EXPECT_EQ(p.seeds.end, 4);
  EXPECT_EQ(p.latents.begin, 5);
  EXPECT_EQ(p.latents.end, 10);
  EXPECT_FALSE(p.writes_rows());
}

TEST(TrainLayout, RanksThatDoNotDivideAreRefused) {
  try {
    plan_layout(3, 0, 2, 1, 4, 10);
    FAIL() << "expected a UsageError";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("must divide the number of ranks (3)"), std::string::npos) << e.what();
  }
}
