// The short tables printed to stdout by rank 0 at the end of a job.
#pragma once

#include <vector>

#include "compare/compare_saes.hpp"
#include "train/train_stage.hpp"

namespace universae::app {

void print_trained(const std::vector<train::TrainedSae>& trained, bool synthetic);
void print_pairs(const std::vector<compare::PairSummary>& pairs);

}  // namespace universae::app
