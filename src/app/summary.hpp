// The short tables printed to stdout by rank 0 at the end of a job.
#pragma once

#include <string>
#include <vector>

#include "compare/compare_saes.hpp"
#include "lm/extract_stage.hpp"
#include "sweep/study.hpp"
#include "train/train_stage.hpp"

namespace universae::app {

void print_trained(const std::vector<train::TrainedSae>& trained, bool synthetic);
void print_pairs(const std::vector<compare::PairSummary>& pairs);
void print_extracted(const lm::ExtractResult& r);

using sweep::StudyRow;
void write_study_summary(const std::vector<StudyRow>& rows, const std::string& path);
void print_study(const std::vector<StudyRow>& rows);

}  // namespace universae::app
