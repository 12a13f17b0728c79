#include "compare/max_cosine.hpp"

#include <ATen/Context.h>
#include <ATen/Functions.h>

#include <algorithm>
#include <climits>

#include "core/error.hpp"
#include "core/screen.hpp"
#include "core/similarity.hpp"
#include "core/topk_scan.hpp"
#include "parallel/log.hpp"

namespace universae::compare {

namespace {

// Column lists over all ranks. Ranks own increasing row ranges, so offering the ranks' lists in
// rank order keeps the lowest row index first among equal values.
void merge_columns(const parallel::Comm& comm, core::TopKLists& cols) {
  const int64_t n = cols.count(), k = cols.k();
  if (comm.size() == 1) return;
  if (k == 1) {
    std::vector<float> v = cols.all_values();
    std::vector<int64_t> i = cols.all_indices();
    // A rank with no rows has (-inf, -1); MAXLOC needs a valid index and any real value beats -inf.
    for (auto& x : i)
      if (x < 0) x = INT_MAX;
    comm.allreduce_maxloc(v.data(), i.data(), n);
    core::TopKLists merged(n, 1);
    for (int64_t j = 0; j < n; ++j) merged.offer(j, v[j], i[j]);
    cols = std::move(merged);
    return;
  }
  const std::vector<float> v = comm.allgatherv(cols.all_values());
  const std::vector<int64_t> i = comm.allgatherv(cols.all_indices());
  core::TopKLists merged(n, k);
  for (int r = 0; r < comm.size(); ++r)
    for (int64_t j = 0; j < n; ++j)
      for (int64_t c = 0; c < k; ++c) {
        const size_t at = static_cast<size_t>((r * n + j) * k + c);
        merged.offer(j, v[at], i[at]);
      }
  cols = std::move(merged);
}

// A tile's products in the pass's precision, as float32.
at::Tensor product(const at::Tensor& a, const at::Tensor& b, config::MatmulDtype dtype) {
  if (dtype != config::MatmulDtype::kBFloat16) return at::mm(a, b.t());
  return at::mm(a.to(at::kBFloat16), b.to(at::kBFloat16).t()).to(at::kFloat);
}

// The tile stream on a device: the unit rows copied there once (deliberate: they are read from files
// into host memory), the lists kept there as keys and copied back once at the end.
void scan_on_device(SimilarityPass& p, const TileSizes& tiles, int64_t k, at::Device device, config::MatmulDtype dtype) {
  const at::Tensor a = p.a_unit.to(device), b = p.b_unit.to(device);
  core::DeviceTopK rows(p.mine.size(), k, device), cols(p.n_b, k, device);
  for (int64_t r0 = 0; r0 < p.mine.size(); r0 += tiles.rows) {
    const int64_t tr = std::min(tiles.rows, p.mine.size() - r0);
    const at::Tensor tile = a.narrow(0, r0, tr);
    for (int64_t c0 = 0; c0 < p.n_b; c0 += tiles.cols) {
      const int64_t tc = std::min(tiles.cols, p.n_b - c0);
      core::DeviceTopK::offer_block(product(tile, b.narrow(0, c0, tc), dtype), p.mine.begin + r0, r0, c0, rows, cols);
    }
  }
  p.rows = rows.to_host();
  p.cols = cols.to_host();
}

bool screens(const ScanDevice& where) {
  if (where.generic || where.dtype != config::MatmulDtype::kFloat32 || where.screen == Screen::kOff) return false;
  static const bool bf16 = core::cpu_has_avx512_bf16();
  return where.screen == Screen::kOn || bf16;
}

// The float32 CPU pass screened in bfloat16 (core::ScreenedScan). On bench_hungarian.py's 32,768-latent pair
// (2 ranks, d = 256, an AMD EPYC whose float32 GEMM runs at 95 GFLOP/s on one core; bench/RESULTS.md) the
// pass with K = 1 went from 3.6-3.8 s to 2.0-2.3 s, with the matching's K = 16 from 3.8-4.2 s to 3.2-3.7 s
// (2.6-3.1 s with the later tighter ε and cheaper offers).
void screened_scan(const parallel::Comm& comm, SimilarityPass& p, const TileSizes& tiles, int64_t k) {
  const int64_t d = p.a_unit.size(1);
  const at::Tensor a16 = p.a_unit.to(at::kBFloat16), b16 = p.b_unit.to(at::kBFloat16);
  // The bound from the operands' rounding (the largest over every rank's rows of A), the same on every rank.
  core::RoundingNorms a_norms = core::bfloat16_rounding_norms(p.a_unit.data_ptr<float>(), p.mine.size(), d);
  a_norms.rounded = comm.allreduce_max(a_norms.rounded);
  a_norms.residual = comm.allreduce_max(a_norms.residual);
  const float eps = core::screening_error_bound(d, a_norms, core::bfloat16_rounding_norms(p.b_unit.data_ptr<float>(), p.n_b, d));
  core::ScreenedScan scan(p.a_unit.data_ptr<float>(), p.b_unit.data_ptr<float>(), d, p.mine.begin, p.mine.size(), p.n_b, k, eps);
  for (int64_t r0 = 0; r0 < p.mine.size(); r0 += tiles.rows) {
    const int64_t tr = std::min(tiles.rows, p.mine.size() - r0);
    const at::Tensor tile = a16.narrow(0, r0, tr);
    for (int64_t c0 = 0; c0 < p.n_b; c0 += tiles.cols) {
      const int64_t tc = std::min(tiles.cols, p.n_b - c0);
      const at::Tensor s = at::mm(tile, b16.narrow(0, c0, tc).t()).contiguous();  // (tr, tc) bfloat16
      scan.offer(static_cast<const uint16_t*>(s.data_ptr()), tr, tc, r0, c0);
    }
  }
  std::vector<float> column_kth = scan.column_kths();
  comm.allreduce_max(column_kth.data(), static_cast<int64_t>(column_kth.size()));
  const int64_t exact = scan.finish(column_kth.data(), p.rows, p.cols);
  log::debug("similarity pass: bfloat16 screen (within {:.4f}), {} of {} products recomputed exactly on this rank", eps,
             exact, p.mine.size() * p.n_b);
}

}  // namespace

SimilarityPass similarity_pass(const parallel::Comm& comm, const at::Tensor& a_local, int64_t n_a, const at::Tensor& b,
                               const TileSizes& tiles, int64_t k, const ScanDevice& where) {
  SimilarityPass p;
  p.mine = a_rows_of_rank(n_a, tiles, comm);
  if (a_local.size(0) != p.mine.size())
    throw InternalError("similarity_pass: rank holds " + std::to_string(a_local.size(0)) + " rows of A, expected " +
                        std::to_string(p.mine.size()));
  p.n_a = n_a;
  p.n_b = b.size(0);
  int64_t zero_a = 0;
  p.a_unit = core::unit_rows(a_local, &zero_a);
  p.b_unit = core::unit_rows(b, &p.zero_rows_b);
  p.zero_rows_a = comm.allreduce_sum(zero_a);
  p.slack = product_error_bound(where.dtype, where.device);
  // TF32 for this pass only (compare keeps it off: the certificate's bounds assume float32 products).
  const bool tf32 = where.dtype == config::MatmulDtype::kTF32 && where.device.is_cuda();
  if (tf32) at::globalContext().setAllowTF32CuBLAS(true);
  if (where.generic) {
    scan_on_device(p, tiles, k, where.device, where.dtype);
    if (tf32) at::globalContext().setAllowTF32CuBLAS(false);
    merge_columns(comm, p.cols);
    return p;
  }
  if (screens(where)) {  // its lists come from ScreenedScan::finish
    screened_scan(comm, p, tiles, k);
    merge_columns(comm, p.cols);
    return p;
  }
  p.rows = core::TopKLists(p.mine.size(), k);
  p.cols = core::TopKLists(p.n_b, k);
  for (int64_t r0 = 0; r0 < p.mine.size(); r0 += tiles.rows) {
    const int64_t tr = std::min(tiles.rows, p.mine.size() - r0);
    const at::Tensor tile = p.a_unit.narrow(0, r0, tr);
    for (int64_t c0 = 0; c0 < p.n_b; c0 += tiles.cols) {
      const int64_t tc = std::min(tiles.cols, p.n_b - c0);
      const at::Tensor s = product(tile, p.b_unit.narrow(0, c0, tc), where.dtype).contiguous();  // (tr, tc)
      core::offer_block(s.data_ptr<float>(), tr, tc, p.mine.begin + r0, r0, c0, p.rows, p.cols);
    }
  }
  merge_columns(comm, p.cols);
  return p;
}

double product_error_bound(config::MatmulDtype dtype, at::Device device) {
  if (dtype == config::MatmulDtype::kBFloat16) return 0x1p-7 + 0x1p-9;
  if (dtype == config::MatmulDtype::kTF32 && device.is_cuda()) return 0x1p-10;
  return 0.0;
}

MaxCosine max_cosine_from(const parallel::Comm& comm, const SimilarityPass& p) {
  MaxCosine out;
  std::vector<float> row_max(static_cast<size_t>(p.mine.size()));
  std::vector<int64_t> row_arg(static_cast<size_t>(p.mine.size()));
  for (int64_t r = 0; r < p.mine.size(); ++r) row_max[r] = p.rows.values(r)[0], row_arg[r] = p.rows.indices(r)[0];
  out.max_cos_ab = comm.allgatherv(row_max);
  out.argmax_ab = comm.allgatherv(row_arg);
  out.max_cos_ba.resize(static_cast<size_t>(p.n_b));
  out.argmax_ba.resize(static_cast<size_t>(p.n_b));
  for (int64_t j = 0; j < p.n_b; ++j) out.max_cos_ba[j] = p.cols.values(j)[0], out.argmax_ba[j] = p.cols.indices(j)[0];
  out.mcs_ab = ordered_mean(out.max_cos_ab);
  out.mcs_ba = ordered_mean(out.max_cos_ba);
  out.zero_rows_a = p.zero_rows_a;
  out.zero_rows_b = p.zero_rows_b;
  out.error_bound = p.slack;
  return out;
}

MaxCosine max_cosine(const parallel::Comm& comm, const at::Tensor& a_local, int64_t n_a, const at::Tensor& b,
                     const TileSizes& tiles) {
  return max_cosine_from(comm, similarity_pass(comm, a_local, n_a, b, tiles, 1));
}

}  // namespace universae::compare
