// Representational similarity of paired decoder rows with permutation tests (METHODS.md §6-7).
// Permutation p is drawn from (seed, p) and computed by whichever rank owns p (shard_range), so the
// null distribution is the same for any rank count. p_value = (1 + #{null >= observed}) / (N + 1).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "compare/max_cosine.hpp"
#include "config/config.hpp"
#include "core/repsim.hpp"
#include "parallel/comm.hpp"

namespace universae::compare {

// The metrics, in the order they are computed and written (each a group /pairs/<a>--<b>/<metric>).
inline const std::vector<std::string> kRepSimMetrics = {"svcca", "rsa", "cka", "mutual_knn"};

struct RepSimResult {
  std::string metric;  // svcca, rsa, cka, mutual_knn
  double score = 0, null_mean = 0, null_std = 0, p_value = 1;
  std::vector<double> null;
  uint64_t seed = 0;
  int64_t n_pairs = 0;
  bool subsampled = false;
  double seconds = 0;  // preparation, score and permutations, on rank 0
  // Subspaces only. Test 2 as Lan et al. define it: random subsets of A's and B's latents of the
  // subspace's sizes, paired like the subspace (draws that yield fewer than 3 pairs are left out).
  std::vector<double> subset_null;
  double subset_null_mean = 0, subset_null_std = 0, subset_p_value = 1;
  // The variant universae computed before: random subsets of the subspace's size drawn from all
  // pairs of the whole-space mapping.
  std::vector<double> mapping_subset_null;
  double mapping_subset_null_mean = 0, mapping_subset_null_std = 0, mapping_subset_p_value = 1;
};

// Every function here computes on `where`: with where.generic on where.device through core's
// scores() (ATen only), else on the CPU's loops. Results are read back to the host, as they are
// gathered over MPI and written.

// The score of one metric of kRepSimMetrics on paired rows (no permutation test).
double similarity_score(const std::string& metric, const at::Tensor& x, const at::Tensor& y, const config::CompareConfig& config,
                        const ScanDevice& where = {});

// Mean, standard deviation and p-value of `null` (NaN entries left out) against `observed`:
// (1 + #{null >= observed}) / (N + 1), or with compat lan2024 mean(null >= observed).
void summarise_null(const std::vector<double>& null, double observed, const config::CompareConfig& config, double& mean,
                    double& std, double& p_value);

// Collective. x, y: the paired rows (row r of x with row r of y), the same on every rank. Uses
// compare.permutations, repsim_max_pairs (more pairs: a seeded random subset, RSA and kNN are O(n²)),
// svcca_variance, svcca_dims, compat, knn_k and seed.
std::vector<RepSimResult> paired_similarity(const parallel::Comm& comm, const at::Tensor& x, const at::Tensor& y,
                                            const std::string& pair_name, const config::CompareConfig& config,
                                            const ScanDevice& where = {});

// Collective. A subspace's paired rows (x, y): Test 1 as paired_similarity, plus the mapping-subset
// variant of Test 2: `config.permutations` random subsets of x.size(0) pairs of (x_all, y_all), the
// whole-space mapping's pairs (Test 2 itself needs the activations: compare/activation_statistics.cpp).
std::vector<RepSimResult> subspace_similarity(const parallel::Comm& comm, const at::Tensor& x, const at::Tensor& y,
                                              const at::Tensor& x_all, const at::Tensor& y_all, const std::string& name,
                                              const config::CompareConfig& config, const ScanDevice& where = {});

}  // namespace universae::compare
