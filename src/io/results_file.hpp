// The results file, format "universae-results" version 1 (docs/file-formats.md): the one module that
// writes and reads it. Layout:
//
//   /                      provenance attributes, `fingerprint`, `complete` (written last)
//   /saes/<name>           one group per compared SAE (its header as attributes; frequency, top examples)
//   /pairs/<a>--<b>        one group per compared pair; each statistic writes its own subgroups and
//                          attributes there (compare/statistics.hpp)
//   /summary_columns       the pair statistics' scalar columns: for each, its CSV name, the object
//                          (below the pair's group, or absolute with {a}/{b} for the SAEs' groups) and
//                          attribute holding it, and a description. Every reader of summaries (both
//                          CSVs, `inspect`, the report) reads the columns from here, so a statistic
//                          added to the registry reaches all of them without touching any reader.
//   /overlap, /activations  study-level outputs
//
// The file is written under <path>.partial by every rank collectively and published by commit().
#pragma once

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "io/h5.hpp"
#include "io/output.hpp"
#include "io/sae_header.hpp"
#include "parallel/comm.hpp"

namespace universae::io {

inline constexpr const char* kResultsFormat = "universae-results";
inline constexpr int64_t kResultsFormatVersion = 1;

// One scalar of a pair's statistics, as it appears in summary.csv and study_summary.csv.
struct SummaryColumn {
  std::string name;         // the CSV column: "mean_cos_decoder"
  std::string object;       // where the value is: "lap" (below /pairs/<a>--<b>), or "/saes/{a}" (absolute)
  std::string attribute;    // the attribute holding it: "mean_cos_decoder"
  std::string description;  // one line, for inspect and the docs
};

// One compared pair and its column values (NaN where the pair has no such statistic).
struct SummaryRow {
  std::string scope;  // a study's task id or "across KEY: GROUP" ("" for a single results file)
  std::string pair, a, b;
  bool baseline = false;
  std::vector<double> values;  // aligned with SummaryTable::columns
};

// The summary of one results file, or of a whole study (the union of the files' columns).
struct SummaryTable {
  std::vector<SummaryColumn> columns;
  std::vector<SummaryRow> rows;
  // The column's index, or -1.
  int64_t column(const std::string& name) const;
  // The row's value of `name`; NaN when the column or the value is absent.
  double value(const SummaryRow& row, const std::string& name) const;
  // Appends `other`'s rows, adding the columns this table lacks; a non-empty `scope` replaces theirs.
  void append(const SummaryTable& other, const std::string& scope = "");
};

// Writing a results file: every call is collective (every rank passes the same values).
class ResultsWriter {
 public:
  // Creates <path>.partial; `config` is the resolved config (TOML), `fingerprint` what decides reuse.
  // Resumable: a partial file an earlier run of the same universae left with the same fingerprint is
  // continued instead: its complete pairs among `pairs` ("a--b", those planned) are kept (kept_pair),
  // everything else in it is removed to be written again. Resumable or not, the partial file stays
  // when the writer goes away uncommitted (a stop, a crash) unless discard()ed.
  ResultsWriter(const parallel::Comm& comm, const std::string& path, const std::string& config, const std::string& fingerprint,
                bool resumable = false, const std::set<std::string>& pairs = {});
  ~ResultsWriter();
  File& file() { return *file_; }
  // Whether /pairs/<a>--<b> is a complete pair kept from the partial file resumed.
  bool kept_pair(const std::string& a, const std::string& b) const;
  size_t kept_pairs() const { return kept_.size(); }
  // Collective: marks the pair group complete and flushes the file (a point the next run resumes from).
  void pair_done(const std::string& group);
  // The partial file goes when the writer does (the input was refused: nothing to resume).
  void discard();
  // /saes/<name>: the SAE's header; `index` is its place in the comparison (the order of the pairs).
  std::string add_sae(const std::string& name, const SaeHeader& header, bool baseline, int64_t index);
  // /pairs/<a>--<b>, with its names and whether b is a baseline.
  std::string add_pair(const std::string& a, const std::string& b, bool baseline);
  // Writes /summary_columns and `complete`, closes the file and publishes it under its final name.
  void commit(const std::vector<SummaryColumn>& columns);

 private:
  void write_header(const std::string& config, const std::string& fingerprint);
  std::unique_ptr<Pending> pending_;
  std::unique_ptr<File> file_;
  std::set<std::string> kept_;  // complete pair groups of a resumed partial file
  bool discard_ = false;
};

// Collective: the summary of a complete results file. Rows are in the order the comparison made
// them (SAE pairs in the SAEs' order, then baselines). A file without /summary_columns (written before
// they existed) is a UsageError saying to recompute it.
SummaryTable read_summary(const parallel::Comm& comm, const std::string& path);
// Whether the results file has a summary column table (MPI-free; false for any other file).
bool has_summary_columns(const std::string& path);

// The table as CSV: pair (or, `with_scope`, the row's scope: a study's task or across-task group),
// a, b, baseline, then one column per summary column. Numbers with 9 significant digits; booleans 1/0; empty where a value is absent.
std::string summary_csv(const SummaryTable& table, bool with_scope);

}  // namespace universae::io
