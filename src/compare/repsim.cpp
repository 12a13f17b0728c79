#include "compare/repsim.hpp"

#include <ATen/Functions.h>
#include <ATen/ops/tensor.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <memory>

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

RepSimResult permutation_test(const parallel::Comm& comm, const std::string& metric, int64_t n, uint64_t seed,
                              int64_t permutations, const std::function<double(const std::vector<int64_t>&)>& score_with,
                              double observed, bool lan2024) {
  RepSimResult r;
  r.metric = metric;
  r.score = observed;
  r.seed = seed;
  const core::Range mine = core::shard_range(permutations, comm.rank(), comm.size());
  std::vector<double> local;
  for (int64_t p = mine.begin; p < mine.end; ++p)
    local.push_back(score_with(core::permutation(n, seed, static_cast<uint64_t>(p))));
  r.null = comm.allgatherv(local);
  const NullSummary s = summarise(r.null, observed, lan2024);
  r.null_mean = s.mean, r.null_std = s.std, r.p_value = s.p_value;
  return r;
}

core::SvccaOptions svcca_options(const config::CompareConfig& o) {
  return {o.svcca_variance, o.svcca_dims, o.compat == config::Compat::kLan2024};
}

}  // namespace

double similarity_score(const std::string& metric, const at::Tensor& x, const at::Tensor& y, const config::CompareConfig& o) {
  if (metric == "svcca") return core::Svcca(x, y, svcca_options(o)).score();
  if (metric == "rsa") return core::Rsa(x, y).score();
  if (metric == "cka") return core::Cka(x, y).score();
  return core::MutualKnn(x, y, o.knn_k).score();
}

void summarise_null(const std::vector<double>& null, double observed, const config::CompareConfig& o, double& mean, double& std,
                    double& p_value) {
  const NullSummary s = summarise(null, observed, o.compat == config::Compat::kLan2024);
  mean = s.mean, std = s.std, p_value = s.p_value;
}

std::vector<RepSimResult> paired_similarity(const parallel::Comm& comm, const at::Tensor& x_all, const at::Tensor& y_all,
                                            const std::string& pair_name, const config::CompareConfig& o) {
  const uint64_t base = core::mix64(static_cast<uint64_t>(o.seed) ^ core::fnv1a64(pair_name));
  at::Tensor x = x_all, y = y_all;
  bool subsampled = false;
  if (x.size(0) > o.repsim_max_pairs) {
    // A seeded subset of the pairs, the same on every rank (its permutation's first max_pairs).
    std::vector<int64_t> pick = core::permutation(x.size(0), base, ~uint64_t{0});
    pick.resize(static_cast<size_t>(o.repsim_max_pairs));
    std::sort(pick.begin(), pick.end());
    const at::Tensor idx = at::tensor(pick, at::kLong);
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
    out.push_back(permutation_test(comm, metric, n, seed, o.permutations,
                                   [&](const std::vector<int64_t>& p) { return prepared.score_with(p); },
                                   prepared.score(), o.compat == config::Compat::kLan2024));
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
                                              const at::Tensor& x_all, const at::Tensor& y_all, const std::string& name,
                                              const config::CompareConfig& o) {
  std::vector<RepSimResult> results = paired_similarity(comm, x, y, name, o);
  const auto m = std::min(x.size(0), o.repsim_max_pairs), n = x_all.size(0);
  if (n < m) return results;
  for (auto& r : results) {
    const auto start = std::chrono::steady_clock::now();
    const uint64_t seed = core::mix64(r.seed ^ 0x7E572ull) >> 1;
    const core::Range mine = core::shard_range(o.permutations, comm.rank(), comm.size());
    std::vector<double> local;
    for (int64_t p = mine.begin; p < mine.end; ++p) {
      std::vector<int64_t> subset = core::permutation(n, seed, static_cast<uint64_t>(p));
      subset.resize(static_cast<size_t>(m));
      std::sort(subset.begin(), subset.end());
      const at::Tensor idx = at::tensor(subset, at::kLong);
      local.push_back(similarity_score(r.metric, x_all.index_select(0, idx), y_all.index_select(0, idx), o));
    }
    r.mapping_subset_null = comm.allgatherv(local);
    summarise_null(r.mapping_subset_null, r.score, o, r.mapping_subset_null_mean, r.mapping_subset_null_std,
                   r.mapping_subset_p_value);
    r.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  return results;
}

}  // namespace universae::compare
