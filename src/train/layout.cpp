#include "train/layout.hpp"

#include <fmt/format.h>

#include "core/error.hpp"

namespace universae::train {

LayoutPlan plan_layout(int ranks, int rank, int64_t seed_groups, int64_t latent_shards, int64_t n_seeds, int64_t n_latents) {
  const auto groups = static_cast<int>(seed_groups), shards = static_cast<int>(latent_shards);
  if (ranks % (groups * shards) != 0)
    throw UsageError(fmt::format("train.seed_groups ({}) × train.latent_shards ({}) must divide the number of ranks ({})",
                                 groups, shards, ranks));
  LayoutPlan p;
  p.groups = groups, p.shards = shards, p.dp = ranks / (groups * shards);
  const int per_group = p.dp * shards;
  p.group = rank / per_group, p.dp_rank = (rank % per_group) / shards, p.shard = rank % shards;
  p.seeds = core::shard_range(n_seeds, p.group, groups);
  p.latents = core::shard_range(n_latents, p.shard, shards);
  return p;
}

Layout make_layout(const parallel::Comm& world, int64_t seed_groups, int64_t latent_shards, int64_t n_seeds, int64_t n_latents) {
  const LayoutPlan p = plan_layout(world.size(), world.rank(), seed_groups, latent_shards, n_seeds, n_latents);
  const parallel::Comm group = world.split(p.group, world.rank());
  return Layout(p, group, group.split(p.dp_rank, p.shard), group.split(p.shard, p.dp_rank));
}

}  // namespace universae::train
