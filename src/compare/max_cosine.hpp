// Distributed max cosine similarity (METHODS.md §3, DESIGN.md §3): rows of A are sharded over
// ranks in whole tiles, B is replicated; row results stay local until gathered, column maxima
// are reduced with MAXLOC. Tile boundaries are global, so every number is bit-identical for any
// rank count.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "core/sharding.hpp"
#include "parallel/comm.hpp"

namespace universae::compare {

struct MaxCosine {
  std::vector<float> max_cos_ab;   // [n_a]
  std::vector<int64_t> argmax_ab;  // [n_a]
  std::vector<float> max_cos_ba;   // [n_b]
  std::vector<int64_t> argmax_ba;  // [n_b]
  double mcs_ab = 0;
  double mcs_ba = 0;
  int64_t zero_rows_a = 0;
  int64_t zero_rows_b = 0;
};

struct TileSizes {
  int64_t rows = 256;
  int64_t cols = 4096;
};

// The rows of A this rank owns.
inline core::Range a_rows_of_rank(int64_t n_a, const TileSizes& tiles, const parallel::Comm& comm) {
  return core::tile_shard(n_a, tiles.rows, comm.rank(), comm.size());
}

// Collective. a_local: the rows a_rows_of_rank() of A; b: all of B. Every rank gets every output.
MaxCosine max_cosine(const parallel::Comm& comm, const at::Tensor& a_local, int64_t n_a, const at::Tensor& b,
                     const TileSizes& tiles);

// Mean in index order, in double: the same on every rank.
double ordered_mean(const std::vector<float>& values);

}  // namespace universae::compare
