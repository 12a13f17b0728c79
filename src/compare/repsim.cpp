#include "compare/repsim.hpp"

#include <ATen/Functions.h>
#include <ATen/ops/tensor.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <numeric>

#include "core/rng.hpp"
#include "core/sharding.hpp"

namespace universae::compare {
namespace {

struct NullSummary {
  double mean = 0, std = 0, p_value = 1;
};

// p = (1 + #{null >= observed}) / (N + 1), never 0; Lan et al.'s code (compare.compat = "lan2024")
// takes mean(null >= observed), which is 0 when no re-pairing reaches the score.
NullSummary summarise(const std::vector<double>& null, double observed, bool lan2024) {
  NullSummary s;
  double sum = 0, sum2 = 0;
  int64_t at_least = 0, n = 0;
  for (double v : null)
    if (!std::isnan(v)) sum += v, sum2 += v * v, at_least += v >= observed, ++n;
  const auto count = static_cast<double>(n);
  if (count > 0) {
    s.mean = sum / count;
    s.std = std::sqrt(std::max(0.0, sum2 / count - s.mean * s.mean));
  }
  s.p_value = lan2024 ? (count > 0 ? static_cast<double>(at_least) / count : 1.0) : (1.0 + static_cast<double>(at_least)) / (count + 1.0);
  return s;
}

// Where the scores are computed: `where.generic` scores permutations as tensors on where.device
// (core's scores()), else on the CPU one permutation at a time (score_with). The inputs' rows are
// copied to the device once per call (host → device: the comparison's input).
at::Tensor on(const at::Tensor& m, const ScanDevice& where) { return where.generic ? m.to(where.device) : m; }

template <typename Prepared>
double observed_score(const Prepared& prepared, int64_t n, const ScanDevice& where) {
  if (!where.generic) return prepared.score();
  const at::Tensor identity = at::arange(n, at::TensorOptions().dtype(at::kLong).device(where.device)).unsqueeze(0);
  return prepared.scores(identity).template item<double>();  // device → host: the score is gathered and written
}

// Permutation p is drawn from (seed, p) by the rank that owns it. The generic path scores the
// identity (the observed score) and this rank's permutations as one (1 + P) × n tensor: drawn on
// the host, one copy to the device, one copy of the 1 + P scores back (they are gathered over MPI).
template <typename Prepared>
RepSimResult permutation_test(const parallel::Comm& comm, const std::string& metric, int64_t n, uint64_t seed,
                              int64_t permutations, const Prepared& prepared, const ScanDevice& where, bool lan2024) {
  RepSimResult r;
  r.metric = metric;
  r.seed = seed;
  const core::Range mine = core::shard_range(permutations, comm.rank(), comm.size());
  std::vector<double> local;
  if (!where.generic) {
    r.score = prepared.score();
    for (int64_t p = mine.begin; p < mine.end; ++p)
      local.push_back(prepared.score_with(core::permutation(n, seed, static_cast<uint64_t>(p))));
  } else {
    std::vector<int64_t> rows(static_cast<size_t>(n));
    std::iota(rows.begin(), rows.end(), int64_t{0});
    for (int64_t p = mine.begin; p < mine.end; ++p) {
      const std::vector<int64_t> perm = core::permutation(n, seed, static_cast<uint64_t>(p));
      rows.insert(rows.end(), perm.begin(), perm.end());
    }
    const at::Tensor perms = at::tensor(rows, at::kLong).view({1 + mine.end - mine.begin, n}).to(where.device);
    const at::Tensor scores = prepared.scores(perms).to(at::kCPU).contiguous();
    const double* s = scores.data_ptr<double>();
    r.score = s[0];
    local.assign(s + 1, s + scores.numel());
  }
  r.null = comm.allgatherv(local);
  const NullSummary s = summarise(r.null, r.score, lan2024);
  r.null_mean = s.mean, r.null_std = s.std, r.p_value = s.p_value;
  return r;
}

core::SvccaOptions svcca_options(const config::CompareConfig& o) {
  return {o.svcca_variance, o.svcca_dims, o.compat == config::Compat::kLan2024};
}

}  // namespace

double similarity_score(const std::string& metric, const at::Tensor& x_in, const at::Tensor& y_in, const config::CompareConfig& o,
                        const ScanDevice& where) {
  const at::Tensor x = on(x_in, where), y = on(y_in, where);
  const int64_t n = x.size(0);
  if (metric == "svcca") return observed_score(core::Svcca(x, y, svcca_options(o)), n, where);
  if (metric == "rsa") return observed_score(core::Rsa(x, y), n, where);
  if (metric == "cka") return observed_score(core::Cka(x, y), n, where);
  return observed_score(core::MutualKnn(x, y, o.knn_k), n, where);
}

void summarise_null(const std::vector<double>& null, double observed, const config::CompareConfig& o, double& mean, double& std,
                    double& p_value) {
  const NullSummary s = summarise(null, observed, o.compat == config::Compat::kLan2024);
  mean = s.mean, std = s.std, p_value = s.p_value;
}

std::vector<RepSimResult> paired_similarity(const parallel::Comm& comm, const at::Tensor& x_all, const at::Tensor& y_all,
                                            const std::string& pair_name, const config::CompareConfig& o, const ScanDevice& where) {
  const uint64_t base = core::mix64(static_cast<uint64_t>(o.seed) ^ core::fnv1a64(pair_name));
  at::Tensor x = on(x_all, where), y = on(y_all, where);
  bool subsampled = false;
  if (x.size(0) > o.repsim_max_pairs) {
    // A seeded subset of the pairs, the same on every rank (its permutation's first max_pairs).
    std::vector<int64_t> pick = core::permutation(x.size(0), base, ~uint64_t{0});
    pick.resize(static_cast<size_t>(o.repsim_max_pairs));
    std::sort(pick.begin(), pick.end());
    const at::Tensor idx = at::tensor(pick, at::kLong).to(x.device());
    x = x.index_select(0, idx);
    y = y.index_select(0, idx);
    subsampled = true;
  }
  const int64_t n = x.size(0);
  std::vector<RepSimResult> out;
  auto run = [&](const std::string& metric, auto&& make) {
    const auto start = std::chrono::steady_clock::now();
    const uint64_t seed = core::mix64(base ^ core::fnv1a64(metric)) >> 1;  // 63 bits: stored as a non-negative int64
    const auto prepared = make();
    out.push_back(permutation_test(comm, metric, n, seed, o.permutations, prepared, where, o.compat == config::Compat::kLan2024));
    out.back().n_pairs = n;
    out.back().subsampled = subsampled;
    out.back().seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  // Each metric is prepared inside its own timing (the factory runs within `run`).
  run("svcca", [&] { return core::Svcca(x, y, svcca_options(o)); });
  run("rsa", [&] { return core::Rsa(x, y); });
  run("cka", [&] { return core::Cka(x, y); });
  run("mutual_knn", [&] { return core::MutualKnn(x, y, o.knn_k); });
  return out;
}

std::vector<RepSimResult> subspace_similarity(const parallel::Comm& comm, const at::Tensor& x, const at::Tensor& y,
                                              const at::Tensor& x_all_in, const at::Tensor& y_all_in, const std::string& name,
                                              const config::CompareConfig& o, const ScanDevice& where) {
  std::vector<RepSimResult> results = paired_similarity(comm, x, y, name, o, where);
  const auto m = std::min(x.size(0), o.repsim_max_pairs), n = x_all_in.size(0);
  if (n < m) return results;
  const at::Tensor x_all = on(x_all_in, where), y_all = on(y_all_in, where);
  for (auto& r : results) {
    const auto start = std::chrono::steady_clock::now();
    const uint64_t seed = core::mix64(r.seed ^ 0x7E572ull) >> 1;
    const core::Range mine = core::shard_range(o.permutations, comm.rank(), comm.size());
    std::vector<double> local;
    for (int64_t p = mine.begin; p < mine.end; ++p) {
      std::vector<int64_t> subset = core::permutation(n, seed, static_cast<uint64_t>(p));
      subset.resize(static_cast<size_t>(m));
      std::sort(subset.begin(), subset.end());
      // One score read back per draw: SVCCA's preparation reads its spectrum on the host anyway.
      const at::Tensor idx = at::tensor(subset, at::kLong).to(x_all.device());
      local.push_back(similarity_score(r.metric, x_all.index_select(0, idx), y_all.index_select(0, idx), o, where));
    }
    r.mapping_subset_null = comm.allgatherv(local);
    summarise_null(r.mapping_subset_null, r.score, o, r.mapping_subset_null_mean, r.mapping_subset_null_std,
                   r.mapping_subset_p_value);
    r.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  return results;
}

}  // namespace universae::compare
