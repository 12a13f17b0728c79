// Where each rank sits in training (DESIGN.md §3): ranks = seed_groups × data-parallel ranks ×
// latent shards. plan_layout is the pure arithmetic (tested by playing every rank of a job in one
// process, tests/unit/test_train_layout.cpp); make_layout adds the communicators.
//
// Rank r of R: per_group = R / groups ranks per group; group = r / per_group; within the group the
// latent shard varies fastest: shard = r % shards, dp_rank = (r % per_group) / shards. A group owns a
// contiguous share of the seeds, a shard a contiguous share of the latents (core::shard_range).
#pragma once

#include <cstdint>
#include <string>

#include "core/sharding.hpp"
#include "parallel/comm.hpp"

namespace universae::train {

struct LayoutPlan {
  int groups = 1, shards = 1, dp = 1;
  int group = 0, shard = 0, dp_rank = 0;
  core::Range seeds;    // indices into sae.seeds owned by this rank's group
  core::Range latents;  // this shard's latent rows
  bool writes_rows() const { return dp_rank == 0; }
  bool group_root() const { return dp_rank == 0 && shard == 0; }
};

// The plan of rank `rank` of `ranks`. A UsageError when seed_groups × latent_shards does not divide
// the number of ranks.
LayoutPlan plan_layout(int ranks, int rank, int64_t seed_groups, int64_t latent_shards, int64_t n_seeds, int64_t n_latents);

// The plan with its communicators: the rank's seed group, the latent shards of one SAE (same group
// and data-parallel rank), and the data-parallel replicas of one latent shard.
struct Layout : LayoutPlan {
  Layout(const LayoutPlan& plan, parallel::Comm group_c, parallel::Comm latent_c, parallel::Comm dp_c)
      : LayoutPlan(plan), group_comm(std::move(group_c)), latent_comm(std::move(latent_c)), dp_comm(std::move(dp_c)) {}
  parallel::Comm group_comm, latent_comm, dp_comm;
};

// Collective over world.
Layout make_layout(const parallel::Comm& world, int64_t seed_groups, int64_t latent_shards, int64_t n_seeds, int64_t n_latents);

}  // namespace universae::train
