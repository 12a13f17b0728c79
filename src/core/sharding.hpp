// Partition arithmetic: pure functions of (n, rank, size), unit-tested serially for many sizes.
// Every split in universae goes through here so that a result never depends on the rank count:
// work is cut into globally fixed blocks (tiles, micro-batches) and ranks take whole blocks.
#pragma once

#include <cstdint>

namespace universae::core {

struct Range {
  int64_t begin = 0;
  int64_t end = 0;
  int64_t size() const { return end - begin; }
  bool empty() const { return end <= begin; }
  bool operator==(const Range& o) const { return begin == o.begin && end == o.end; }
};

// Balanced contiguous split of [0, n) over `size` ranks: the first n % size ranks get one more.
inline Range shard_range(int64_t n, int rank, int size) {
  const int64_t base = n / size, extra = n % size;
  const int64_t begin = rank * base + (rank < extra ? rank : extra);
  return {begin, begin + base + (rank < extra ? 1 : 0)};
}

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Rows [0, n) cut into fixed tiles of `tile` rows (the last may be short); each rank gets a
// contiguous run of whole tiles. Returned in rows. Tile boundaries are global, so the same tile
// is computed with the same shapes whatever the rank count.
inline Range tile_shard(int64_t n, int64_t tile, int rank, int size) {
  const Range tiles = shard_range(ceil_div(n, tile), rank, size);
  const int64_t begin = tiles.begin * tile < n ? tiles.begin * tile : n;
  const int64_t end = tiles.end * tile < n ? tiles.end * tile : n;
  return {begin, end};
}

}  // namespace universae::core
