#include "io/results_file.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <map>
#include <tuple>

#include "core/error.hpp"
#include "core/version.hpp"
#include "io/schema.hpp"
#include "parallel/log.hpp"

namespace universae::io {
namespace {

constexpr const char* kColumnsGroup = "/summary_columns";

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) text.replace(at, from.size(), to);
  return text;
}

// The object holding `column`'s value for the pair group `pair` of SAEs `a` and `b`.
std::string column_object(const SummaryColumn& column, const std::string& pair, const std::string& a, const std::string& b) {
  if (!column.object.empty() && column.object.front() == '/')
    return replace_all(replace_all(column.object, "{a}", a), "{b}", b);
  return column.object.empty() ? pair : pair + "/" + column.object;
}

std::vector<SummaryColumn> read_columns(const File& f) {
  if (!f.exists(kColumnsGroup))
    throw UsageError(f.path() + ": has no " + kColumnsGroup + " (written by a universae before 0.2); compare again "
                     "(universae compare --fresh, or remove the file) to rewrite it");
  const auto names = f.read_attr_strings(kColumnsGroup, "name"), objects = f.read_attr_strings(kColumnsGroup, "object"),
             attributes = f.read_attr_strings(kColumnsGroup, "attribute"),
             descriptions = f.read_attr_strings(kColumnsGroup, "description");
  if (objects.size() != names.size() || attributes.size() != names.size() || descriptions.size() != names.size())
    throw UsageError(f.path() + ": " + kColumnsGroup + " attributes differ in length");
  std::vector<SummaryColumn> columns;
  for (size_t i = 0; i < names.size(); ++i) columns.push_back({names[i], objects[i], attributes[i], descriptions[i]});
  return columns;
}

}  // namespace

int64_t SummaryTable::column(const std::string& name) const {
  for (size_t i = 0; i < columns.size(); ++i)
    if (columns[i].name == name) return static_cast<int64_t>(i);
  return -1;
}

double SummaryTable::value(const SummaryRow& row, const std::string& name) const {
  const int64_t c = column(name);
  return c < 0 || c >= static_cast<int64_t>(row.values.size()) ? std::nan("") : row.values[static_cast<size_t>(c)];
}

void SummaryTable::append(const SummaryTable& other, const std::string& scope) {
  for (const auto& c : other.columns)
    if (column(c.name) < 0) columns.push_back(c);
  for (auto& r : rows) r.values.resize(columns.size(), std::nan(""));
  for (const auto& r : other.rows) {
    SummaryRow row = r;
    if (!scope.empty()) row.scope = scope;
    row.values.assign(columns.size(), std::nan(""));
    for (size_t i = 0; i < other.columns.size() && i < r.values.size(); ++i)
      row.values[static_cast<size_t>(column(other.columns[i].name))] = r.values[i];
    rows.push_back(std::move(row));
  }
}

namespace {

// Collective: whether `partial` is a results file an earlier run with this fingerprint left unfinished.
bool resumable_partial(const parallel::Comm& comm, const std::string& partial, const std::string& fingerprint) {
  int64_t exists = comm.is_root() && std::filesystem::is_regular_file(partial) ? 1 : 0;
  comm.broadcast(&exists, 1, 0);
  if (!exists) return false;
  try {
    const File f = File::open_read(comm, partial);
    const auto attr = [&f](const char* name) { return f.has_attr("/", name) ? f.read_attr_string("/", name) : std::string(); };
    // The same comparison by the same universae (another build may compute a statistic differently).
    return attr("format") == kResultsFormat && attr("fingerprint") == fingerprint && attr("universae_version") == build::kVersion &&
           attr("git_sha") == build::kGitSha && !f.has_attr("/", "complete") && f.exists("/pairs");
  } catch (const UsageError&) {
    return false;  // not HDF5 (cut short): started again
  }
}

// Keeps the complete pair groups of a resumed file that the comparison still plans and removes
// everything else (written again).
std::set<std::string> keep_complete_pairs(File& f, const std::set<std::string>& planned) {
  std::set<std::string> kept;
  for (const auto& name : f.children("/"))
    if (name != "pairs") f.remove("/" + name);
  for (const auto& pair : f.children("/pairs")) {
    const std::string g = "/pairs/" + pair;
    if (planned.count(pair) > 0 && f.has_attr(g, "pair_complete") && f.read_attr_bool(g, "pair_complete"))
      kept.insert(pair);
    else
      f.remove(g);
  }
  return kept;
}

// Collective: the resumed file and its kept pairs, or no file when any rank could not read it (a
// partial file a kill damaged is started again, never a failure of every rerun).
std::unique_ptr<File> resume(const parallel::Comm& comm, const std::string& partial, const std::set<std::string>& planned,
                             std::set<std::string>& kept) {
  std::unique_ptr<File> file;
  double failed = 0;
  try {
    file = std::make_unique<File>(File::open_rw(comm, partial));
    kept = keep_complete_pairs(*file, planned);
  } catch (const std::exception& e) {
    failed = 1;
    log::debug("compare: cannot resume {}: {}", partial, e.what());
  }
  if (comm.allreduce_max(failed) == 0) return file;
  log::warn("compare: {} cannot be resumed (damaged); starting again", partial);
  kept.clear();
  return nullptr;
}

}  // namespace

ResultsWriter::ResultsWriter(const parallel::Comm& comm, const std::string& path, const std::string& config,
                             const std::string& fingerprint, bool resumable, const std::set<std::string>& pairs)
    : pending_(std::make_unique<Pending>(comm, path, OnAbandon::kKeep)) {
  if (resumable && resumable_partial(comm, pending_->partial(), fingerprint)) {
    file_ = resume(comm, pending_->partial(), pairs, kept_);
    if (file_) log::info("compare: resuming {}: {} complete pairs kept", pending_->partial(), kept_.size());
  }
  if (!file_) file_ = std::make_unique<File>(File::create(comm, pending_->partial()));  // truncates an old one
  write_header(config, fingerprint);
}

bool ResultsWriter::kept_pair(const std::string& a, const std::string& b) const { return kept_.count(a + "--" + b) > 0; }

void ResultsWriter::pair_done(const std::string& group) {
  file_->write_attr(group, "pair_complete", true);
  file_->flush();
}

void ResultsWriter::discard() { discard_ = true; }

void ResultsWriter::write_header(const std::string& config, const std::string& fingerprint) {
  File& f = *file_;
  f.write_attr("/", "format", kResultsFormat);
  f.write_attr("/", "format_version", kResultsFormatVersion);
  f.write_attr("/", "config", config);
  f.write_attr("/", "fingerprint", fingerprint);
  f.write_attr("/", "universae_version", build::kVersion);
  f.write_attr("/", "git_sha", build::kGitSha);
  f.write_attr("/", "n_ranks", static_cast<int64_t>(f.comm().size()));
  f.write_attr("/", "hdf5_version", hdf5_version());
}

ResultsWriter::~ResultsWriter() {
  if (!discard_ || !file_) return;
  file_->close();  // a refused input leaves nothing to resume
  std::error_code ignored;
  if (file_->comm().is_root()) std::filesystem::remove(pending_->partial(), ignored);
}

std::string ResultsWriter::add_sae(const std::string& name, const SaeHeader& h, bool baseline, int64_t index) {
  File& f = *file_;
  const std::string g = "/saes/" + name;
  f.create_group(g);
  f.write_attr(g, "path", absolute_path(h.path));
  f.write_attr(g, "architecture", core::name_of(h.architecture));
  f.write_attr(g, "n_latents", h.n_latents);
  f.write_attr(g, "d_in", h.d_in);
  f.write_attr(g, "k", h.k);
  f.write_attr(g, "seed", h.seed);
  f.write_attr(g, "hookpoint", h.hookpoint);
  Provenance p = h.provenance;
  hash_source(f.comm(), p);  // a foreign SAE's weights file
  // `model` is always there, as before 0.7 (write_provenance leaves empty fields out).
  if (p.model.empty()) f.write_attr(g, "model", std::string());
  write_provenance(f, g, p);
  f.write_attr(g, "baseline", baseline);
  f.write_attr(g, "index", index);  // the order of the comparison (and of its pairs)
  return g;
}

std::string ResultsWriter::add_pair(const std::string& a, const std::string& b, bool baseline) {
  File& f = *file_;
  const std::string g = "/pairs/" + a + "--" + b;
  f.create_group(g);
  f.write_attr(g, "a", a);
  f.write_attr(g, "b", b);
  f.write_attr(g, "baseline", baseline);
  return g;
}

void ResultsWriter::commit(const std::vector<SummaryColumn>& columns) {
  File& f = *file_;
  f.create_group(kColumnsGroup);
  std::vector<std::string> names, objects, attributes, descriptions;
  for (const auto& c : columns)
    names.push_back(c.name), objects.push_back(c.object), attributes.push_back(c.attribute), descriptions.push_back(c.description);
  f.write_attr(kColumnsGroup, "name", names);
  f.write_attr(kColumnsGroup, "object", objects);
  f.write_attr(kColumnsGroup, "attribute", attributes);
  f.write_attr(kColumnsGroup, "description", descriptions);
  describe_objects(f, SchemaKind::kResults);
  f.write_attr("/", "complete", true);  // last
  f.close();
  pending_->commit();
}

SummaryTable read_summary(const parallel::Comm& comm, const std::string& path) {
  const File f = File::open_read(comm, path);
  SummaryTable table;
  std::string error;
  try {
    table.columns = read_columns(f);
  } catch (const UsageError& e) {
    error = e.what();
  }
  parallel::agree_on_error(comm, error);
  if (!f.exists("/pairs")) return table;
  for (const auto& name : f.children("/pairs")) {
    const std::string g = "/pairs/" + name;
    SummaryRow row;
    row.pair = name;
    row.a = f.read_attr_string(g, "a");
    row.b = f.read_attr_string(g, "b");
    row.baseline = f.has_attr(g, "baseline") && f.read_attr_bool(g, "baseline");
    for (const auto& c : table.columns) {
      const std::string object = column_object(c, g, row.a, row.b);
      row.values.push_back(f.has_attr(object, c.attribute) ? f.read_attr_number(object, c.attribute) : std::nan(""));
    }
    table.rows.push_back(std::move(row));
  }
  // The order the comparison made them in: SAE pairs (i < j) in the SAEs' order, then baselines.
  std::map<std::string, int64_t> index;
  const auto saes = f.exists("/saes") ? f.children("/saes") : std::vector<std::string>{};
  for (size_t i = 0; i < saes.size(); ++i)
    index[saes[i]] = f.has_attr("/saes/" + saes[i], "index") ? f.read_attr_int("/saes/" + saes[i], "index") : static_cast<int64_t>(i);
  std::stable_sort(table.rows.begin(), table.rows.end(), [&](const SummaryRow& x, const SummaryRow& y) {
    return std::make_tuple(x.baseline, index[x.a], index[x.b]) < std::make_tuple(y.baseline, index[y.a], index[y.b]);
  });
  return table;
}

bool has_summary_columns(const std::string& path) { return has_object(path, kColumnsGroup); }

namespace {

// RFC 4180: a field holding a comma, a quote or a line break is quoted, its quotes doubled.
std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

}  // namespace

std::string summary_csv(const SummaryTable& table, bool with_scope) {
  std::string out = with_scope ? "scope,a,b,baseline" : "pair,a,b,baseline";
  for (const auto& c : table.columns) out += "," + c.name;
  out += "\n";
  for (const auto& r : table.rows) {
    out += csv_field(with_scope ? r.scope : r.pair) + "," + csv_field(r.a) + "," + csv_field(r.b) + "," + (r.baseline ? "1" : "0");
    for (double v : r.values) out += std::isnan(v) ? "," : fmt::format(",{:.9g}", v);
    out += "\n";
  }
  return out;
}

}  // namespace universae::io
