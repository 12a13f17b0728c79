// Geometric median by Weiszfeld's iteration (used to initialise b_dec, METHODS.md §1).
#pragma once

#include <cstdint>
#include <vector>

namespace universae::core {

// points: row-major [n, d]. Starts from the mean; stops after max_iter iterations or when the
// step is below tol times the median's norm.
std::vector<double> geometric_median(const float* points, int64_t n, int64_t d, int max_iter = 100,
                                     double tol = 1e-7);
std::vector<double> mean_point(const float* points, int64_t n, int64_t d);

}  // namespace universae::core
