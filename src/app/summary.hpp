// The short tables printed to stdout by rank 0 at the end of a job, and the study's CSV.
#pragma once

#include <string>
#include <vector>

#include "io/results_file.hpp"
#include "lm/extract_stage.hpp"
#include "train/train_stage.hpp"

namespace universae::app {

void print_trained(const std::vector<train::TrainedSae>& trained, bool synthetic);
// The console tables of the statistics registry's columns (compare/statistics.hpp: Display), each
// printed when some pair has a value in it.
void print_pairs(const io::SummaryTable& pairs);
void print_extracted(const lm::ExtractResult& r);

// study_summary.csv (rank 0): one row per compared pair of a study, the columns of summary.csv
// after a `scope` column.
void write_study_summary(const io::SummaryTable& rows, const std::string& path);
void print_study(const io::SummaryTable& rows);

}  // namespace universae::app
