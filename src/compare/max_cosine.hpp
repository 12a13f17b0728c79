// Distributed similarity pass and max cosine (METHODS.md §3, DESIGN.md §3): rows of A are sharded
// over ranks in whole tiles, B is replicated; one stream of (tile rows × tile cols) GEMMs keeps
// every row's and every column's top-K (core/topk.hpp). Row lists stay on their rank; column lists
// are merged over ranks (MPI_MAXLOC when K = 1). Tile boundaries are global, so every number is
// bit-identical for any rank count. Max cosine is the top-1 of these lists; the Hungarian matching
// (matching.hpp) uses the top-K of the same pass as its candidates.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "config/config.hpp"
#include "core/sharding.hpp"
#include "core/topk.hpp"
#include "parallel/comm.hpp"

namespace universae::compare {

struct TileSizes {
  int64_t rows{};  // rows of A per tile (the unit of sharding)
  int64_t cols{};  // rows of B per tile
};
inline TileSizes tiles_of(const config::CompareConfig& c) { return {c.tile_rows, c.tile_cols}; }

// The rows of A this rank owns.
inline core::Range a_rows_of_rank(int64_t n_a, const TileSizes& tiles, const parallel::Comm& comm) {
  return core::tile_shard(n_a, tiles.rows, comm.rank(), comm.size());
}

struct SimilarityPass {
  core::Range mine;         // this rank's rows of A
  int64_t n_a = 0, n_b = 0;
  at::Tensor a_unit;        // (mine.size(), d) float32 unit rows (zero rows stay zero)
  at::Tensor b_unit;        // (n_b, d)
  core::TopKLists rows{0, 1};  // per local row of A: best B columns
  core::TopKLists cols{0, 1};  // per B column: best A rows, over all ranks
  int64_t zero_rows_a = 0, zero_rows_b = 0;
  double slack = 0;  // product_error_bound of the pass: the lists' values are within this of the exact cosines
};

// Where the pass's tiles are computed (run.device, run.kernels): the CPU with core::offer_block
// (the default), or any device with core::DeviceTopK, whose lists are the same bit for bit given the
// same tile products. The unit rows the matching rescores with stay on the host either way.
//
// A float32 pass on the CPU kernels may screen its tiles with a bfloat16 GEMM (core::ScreenedScan):
// the lists are then those of exact float64 dot products of the float32 unit rows, and still the same on
// every rank count (not those of plain float32 GEMMs: the last bits differ). `screen`: kAuto screens
// where the CPU has AVX512-BF16 (ATen's bfloat16 GEMM then runs in oneDNN at about twice float32's
// speed; compare.screen = false turns it off); kOn and kOff force it (tests).
enum class Screen { kAuto, kOn, kOff };
struct ScanDevice {
  at::Device device = at::kCPU;
  bool generic = false;
  config::MatmulDtype dtype = config::MatmulDtype::kFloat32;  // compare.dtype: the tile products' precision
  Screen screen = Screen::kAuto;
};

// The most a tile product in `dtype` can differ from the exact cosine of two unit rows of width d,
// beyond float32 rounding: bfloat16 rounds both operands (2^-8 relative each, so Σ|a_k b_k| ≤ 1 times
// 2^-7) and the product (2^-9); TF32 rounds both operands (2^-11 each) on a GPU; float32 adds nothing
// (compare.certificate_tolerance covers float32 rounding). The matching widens its bounds by this.
double product_error_bound(config::MatmulDtype dtype, at::Device device);

// Collective. a_local: the rows a_rows_of_rank() of A; b: all of B.
SimilarityPass similarity_pass(const parallel::Comm& comm, const at::Tensor& a_local, int64_t n_a, const at::Tensor& b,
                               const TileSizes& tiles, int64_t k, const ScanDevice& where = {});

struct MaxCosine {
  std::vector<float> max_cos_ab;   // [n_a]
  std::vector<int64_t> argmax_ab;  // [n_a]
  std::vector<float> max_cos_ba;   // [n_b]
  std::vector<int64_t> argmax_ba;  // [n_b]
  double mcs_ab = 0;
  double mcs_ba = 0;
  int64_t zero_rows_a = 0;
  int64_t zero_rows_b = 0;
  double error_bound = 0;  // the pass's slack: with compare.dtype below float32 the values are within this
};

// Collective: the top-1 of a pass, gathered on every rank.
MaxCosine max_cosine_from(const parallel::Comm& comm, const SimilarityPass& pass);

// Collective: similarity_pass with K = 1, then max_cosine_from.
MaxCosine max_cosine(const parallel::Comm& comm, const at::Tensor& a_local, int64_t n_a, const at::Tensor& b,
                     const TileSizes& tiles);

// Mean in index order, in double: the same on every rank.
template <typename T>
double ordered_mean(const std::vector<T>& values) {
  double sum = 0;
  for (T v : values) sum += static_cast<double>(v);
  return values.empty() ? 0.0 : sum / static_cast<double>(values.size());
}

}  // namespace universae::compare
