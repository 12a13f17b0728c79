// Partition arithmetic, simulated for many rank counts in one process.
#include <gtest/gtest.h>

#include "core/sharding.hpp"

using namespace universae::core;

TEST(Sharding, ShardRangeCoversDisjointAndBalanced) {
  for (int size = 1; size <= 7; ++size) {
    for (int64_t n = 0; n <= 50; ++n) {
      int64_t next = 0, smallest = n, largest = 0;
      for (int rank = 0; rank < size; ++rank) {
        const Range r = shard_range(n, rank, size);
        EXPECT_EQ(r.begin, next) << "n=" << n << " size=" << size << " rank=" << rank;
        next = r.end;
        smallest = std::min(smallest, r.size());
        largest = std::max(largest, r.size());
      }
      EXPECT_EQ(next, n);
      EXPECT_LE(largest - smallest, 1);
    }
  }
}

TEST(Sharding, TileShardTakesWholeTiles) {
  for (int size = 1; size <= 5; ++size) {
    for (int64_t n : {0, 1, 7, 64, 100, 513}) {
      for (int64_t tile : {1, 8, 64}) {
        int64_t next = 0;
        for (int rank = 0; rank < size; ++rank) {
          const Range r = tile_shard(n, tile, rank, size);
          EXPECT_EQ(r.begin, next);
          // Every boundary is a tile boundary, except n itself (ranks past the last tile start there).
          for (int64_t edge : {r.begin, r.end}) {
            if (edge != n) {
              EXPECT_EQ(edge % tile, 0);
            }
          }
          next = r.end;
        }
        EXPECT_EQ(next, n) << "n=" << n << " tile=" << tile << " size=" << size;
      }
    }
  }
}

TEST(Sharding, CeilDiv) {
  EXPECT_EQ(ceil_div(0, 4), 0);
  EXPECT_EQ(ceil_div(1, 4), 1);
  EXPECT_EQ(ceil_div(8, 4), 2);
  EXPECT_EQ(ceil_div(9, 4), 3);
}
