#include "io/inspect.hpp"

#include <ATen/Functions.h>
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <vector>

#include "core/error.hpp"
#include "io/foreign_sae.hpp"
#include "io/fingerprint.hpp"
#include "io/h5.hpp"
#include "io/results_file.hpp"
#include "io/sae_file.hpp"
#include "io/text_file.hpp"
#include "io/token_text.hpp"

namespace universae::io {
namespace {

// The formats io/ describes without owning their constant: the activation store's (kept inside
// activation_store.cpp) and the training checkpoint's (train/checkpoint.cpp; io/ may not include train/).
constexpr const char* kStoreFormat = "universae-activations";
constexpr const char* kCheckpointFormat = "universae-checkpoint";
constexpr int64_t kSampleTokens = 40;        // the decoded sample: the first document's first tokens
constexpr int64_t kMaxVocab = int64_t{1} << 22;  // more pieces than any tokenizer has: a damaged /vocab
constexpr int64_t kMaxListed = 16;           // special tokens and inputs named one by one
constexpr int kMaxDepth = 32;                // the generic tree (hard links can make a group its own child)

std::string attr_text(const File& f, const std::string& object, const std::string& name) {
  try {
    return std::to_string(f.read_attr_int(object, name));  // integers exactly (seeds reach 2^63)
  } catch (...) {
  }
  try {
    return fmt::format("{:.6g}", f.read_attr_double(object, name));
  } catch (...) {
  }
  try {
    std::string s = f.read_attr_string(object, name);
    if (s.find('\n') != std::string::npos) return fmt::format("<{} lines of text>", std::count(s.begin(), s.end(), '\n'));
    return s;
  } catch (...) {
  }
  try {
    return f.read_attr_bool(object, name) ? "true" : "false";
  } catch (...) {
  }
  try {
    const auto list = f.read_attr_strings(object, name);
    return fmt::format("[{} strings]", list.size());
  } catch (...) {
  }
  return "<unreadable>";
}

// What an output records it was made from (io/provenance.hpp), one line per input.
std::string provenance_lines(const Provenance& p, const std::string& architecture = "") {
  std::string out;
  if (!p.model.empty()) {
    std::string what = p.model_format;
    if (!architecture.empty()) what += (what.empty() ? "" : ", ") + architecture;
    if (p.model_bytes > 0) what += fmt::format("{}{:.1f} MB", what.empty() ? "" : ", ", static_cast<double>(p.model_bytes) * 1e-6);
    if (!p.model_sha256.empty()) what += (what.empty() ? "" : ", ") + ("sha256 " + p.model_sha256);
    const bool named = !p.model_name.empty() && p.model_name != p.model;
    out += fmt::format("  model {}{}{}\n", named ? p.model_name + ": " : "", p.model, what.empty() ? "" : " (" + what + ")");
    for (const auto& line : p.model_files) out += "    " + line + "\n";
  }
  if (!p.tokenizer.empty())
    out += fmt::format("  tokenizer {}{}\n", p.tokenizer, p.tokenizer_sha256.empty() ? "" : " (sha256 " + p.tokenizer_sha256 + ")");
  if (!p.store.empty())
    out += fmt::format("  store {}{}\n", p.store, p.store_fingerprint.empty() ? "" : " (fingerprint " + p.store_fingerprint + ")");
  if (!p.source.empty())
    out += fmt::format("  source {}{}\n", p.source, p.source_sha256.empty() ? "" : " (sha256 " + p.source_sha256 + ")");
  return out;
}

void describe_tree(const File& f, const std::string& group, int depth, std::string& out) {
  if (depth > kMaxDepth) {
    out += fmt::format("{}... (deeper groups not shown)\n", std::string(static_cast<size_t>(2 * depth + 2), ' '));
    return;
  }
  for (const auto& name : f.children(group)) {
    const std::string path = (group == "/" ? "/" : group + "/") + name;
    const std::string indent(static_cast<size_t>(2 * depth + 2), ' ');
    if (f.is_group(path)) {
      out += fmt::format("{}{}/\n", indent, name);
      for (const auto& a : f.attr_names(path)) out += fmt::format("{}  @{} = {}\n", indent, a, attr_text(f, path, a));
      describe_tree(f, path, depth + 1, out);
    } else {
      out += fmt::format("{}{} {}\n", indent, name, shape_text(f.shape(path)));
    }
  }
}

std::string describe_sae(const parallel::Comm& comm, const std::string& path) {
  const SaeWeights sae = read_sae(comm, path);
  const auto& h = sae.header;
  const auto format = detect_sae_format(path);
  const bool foreign = format && *format != SaeFormat::kUniversae;
  std::string out = foreign ? fmt::format("{}: {} SAE directory\n", path, sae_format_name(*format))
                            : fmt::format("{}: universae SAE file (format_version 1, complete)\n", path);
  out += fmt::format("  architecture {}  d_in {}  n_latents {}", core::name_of(h.architecture), h.d_in, h.n_latents);
  if (h.k > 0) out += fmt::format("  k {}", h.k);
  out += fmt::format("  seed {}\n  hookpoint '{}'  apply_b_dec_to_input {}\n", h.seed, h.hookpoint,
                     h.apply_b_dec_to_input ? "true" : "false");
  out += provenance_lines(h.provenance);
  const at::Tensor norms = sae.W_dec.norm(2, 1);
  out += fmt::format("  decoder row norms: min {:.4f} max {:.4f}\n", norms.min().item<float>(), norms.max().item<float>());
  if (sae.frequency.defined()) {
    const at::Tensor f = sae.frequency;
    out += fmt::format("  firing frequency: mean {:.4g}, never fired {} of {} latents\n", f.mean().item<double>(),
                       at::eq(f, 0).sum().item<int64_t>(), h.n_latents);
  }
  for (const auto& [name, value] : sae.string_attrs)
    if (name == "source_format" || name == "source_dtype" || name == "source_path")
      out += fmt::format("  {} = {}\n", name, value);
  if (foreign) return out;
  File f = File::open_read(comm, path);
  if (f.has_attr("/", "snapshot_of"))
    out += fmt::format("  snapshot of {} after {} training tokens\n", attr_text(f, "/", "snapshot_of"),
                       f.has_attr("/", "train_tokens") ? attr_text(f, "/", "train_tokens") : "?");
  if (f.has_attr("/", "baseline"))
    out += fmt::format("  baseline '{}': an untrained SAE of the same shape, the chance level of every statistic\n",
                       attr_text(f, "/", "baseline"));
  for (const char* metric : {"ground_truth_mmcs", "ground_truth_mcc", "ground_truth_uniqueness", "ground_truth_f1", "fvu", "l0", "dead_fraction", "train_tokens", "ce_loss_score", "kl_div_score",
                             "explained_variance", "l2_ratio", "splice_tokens"})
    if (f.has_attr("/", metric)) out += fmt::format("  {} = {:.6g}\n", metric, f.read_attr_double("/", metric));
  return out;
}

// The summary columns transposed: one row per statistic, one column per pair (the first kMaxPairs).
std::string summary_text(const SummaryTable& t) {
  constexpr size_t kMaxPairs = 8;
  const size_t shown = std::min(t.rows.size(), kMaxPairs);
  const std::string title = "statistic (/summary_columns)";
  size_t name_width = title.size();
  for (const auto& c : t.columns) name_width = std::max(name_width, c.name.size());
  std::vector<size_t> widths;
  std::string out = fmt::format("  {:<{}}", title, name_width);
  for (size_t r = 0; r < shown; ++r) {
    widths.push_back(std::max<size_t>(12, t.rows[r].pair.size()));
    out += fmt::format(" {:>{}}", t.rows[r].pair, widths.back());
  }
  out += "\n";
  for (size_t c = 0; c < t.columns.size(); ++c) {
    out += fmt::format("  {:<{}}", t.columns[c].name, name_width);
    for (size_t r = 0; r < shown; ++r) {
      const double v = t.rows[r].values[c];
      out += fmt::format(" {:>{}}", std::isnan(v) ? std::string("-") : fmt::format("{:.6g}", v), widths[r]);
    }
    out += "\n";
  }
  if (t.rows.size() > shown) out += fmt::format("  ... and {} more pairs (summary.csv beside the file has every one)\n", t.rows.size() - shown);
  return out;
}

std::string describe_results(const parallel::Comm& comm, const File& f) {
  std::string out = fmt::format("{}: universae results file (format_version {}, {})\n", f.path(),
                                f.read_attr_int("/", "format_version"),
                                f.has_attr("/", "complete") && f.read_attr_bool("/", "complete") ? "complete" : "INCOMPLETE");
  for (const char* a : {"universae_version", "git_sha", "n_ranks"})
    if (f.has_attr("/", a)) out += fmt::format("  {} = {}\n", a, attr_text(f, "/", a));
  if (f.has_attr("/", "fingerprint"))
    out += fmt::format("  fingerprint {} (what decides reuse; the attribute holds the settings and inputs)\n",
                       fingerprint_hash(f.read_attr_string("/", "fingerprint")));
  if (f.exists("/saes")) {
    out += "  SAEs:\n";
    for (const auto& name : f.children("/saes")) {
      const std::string g = "/saes/" + name;
      out += fmt::format("    {:<16} {} n_latents {} d_in {} k {} seed {}  ({})\n", name, attr_text(f, g, "architecture"),
                         attr_text(f, g, "n_latents"), attr_text(f, g, "d_in"), attr_text(f, g, "k"),
                         attr_text(f, g, "seed"), attr_text(f, g, "path"));
      const Provenance p = read_provenance(f, g);
      if (!p.model_sha256.empty() || !p.source_sha256.empty())
        out += fmt::format("    {:<16} from {}{}\n", "", p.model_name.empty() ? p.model : p.model_name,
                           !p.model_sha256.empty() ? " (model sha256 " + p.model_sha256.substr(0, 16) + "...)"
                                                   : " (weights sha256 " + p.source_sha256.substr(0, 16) + "...)");
      if (f.has_attr(g, "activations_source") && f.exists("/activations") && f.has_attr("/activations", "stores") &&
          f.read_attr_int("/activations", "stores") > 1)
        out += fmt::format("    {:<16} reads {} at {} (model {})\n", "", attr_text(f, g, "activations_source"),
                           attr_text(f, g, "activations_hookpoint"), attr_text(f, g, "activations_model"));
    }
  }
  if (f.exists("/activations"))
    out += fmt::format("  activations: {} tokens of {} ({}, hookpoint {})\n", f.read_attr_int("/activations", "n_tokens"),
                       f.read_attr_string("/activations", "source"), f.read_attr_string("/activations", "input"),
                       f.read_attr_string("/activations", "hookpoint"));
  if (!f.exists("/pairs")) return out;
  for (const auto& pair : f.children("/pairs"))
    if (f.has_attr("/pairs/" + pair, "weight_space_skipped"))
      out += fmt::format("  {}: no weight-space statistics: {}\n", pair, f.read_attr_string("/pairs/" + pair, "weight_space_skipped"));
  if (!f.exists("/summary_columns")) {  // written before the column table existed
    out += "  (no /summary_columns: written by universae before 0.2; its groups follow)\n";
    describe_tree(f, "/pairs", 1, out);
    return out;
  }
  return out + summary_text(read_summary(comm, f.path()));
}

// ---- Checks that make a damaged file a UsageError naming it, before anything is indexed ----

[[noreturn]] void refuse(const File& f, const std::string& what) { throw UsageError(f.path() + ": " + what); }

// The length of the 1-D dataset `name`.
int64_t vector_length(const File& f, const std::string& name) {
  if (f.is_group(name)) refuse(f, name + " is a group where a dataset belongs");
  const auto shape = f.shape(name);
  if (shape.size() != 1) refuse(f, name + " has shape " + shape_text(shape) + "; it must be a vector");
  return shape[0];
}

int64_t value_at(const File& f, const std::string& name, int64_t row) {
  int64_t v = 0;
  f.read_rows(name, {row, row + 1}, &v);
  return v;
}

// An integer root attribute that restates a size must agree with the datasets.
void check_count(const File& f, const char* attribute, int64_t actual, const std::string& what) {
  if (!f.has_attr("/", attribute)) return;
  const int64_t claimed = f.read_attr_int("/", attribute);
  if (claimed != actual) refuse(f, fmt::format("attribute {} = {} but the file holds {} {}", attribute, claimed, actual, what));
}

// A root attribute as text, or `fallback` when the file has none.
std::string root_text(const File& f, const std::string& name, const std::string& fallback = "?") {
  return f.has_attr("/", name) ? attr_text(f, "/", name) : fallback;
}

// ---- Activation store ----

// Where a store's token offsets (/doc_offsets, /seq_offsets: [count + 1], 0 to the token count) say
// its first range ends, and how many ranges there are. Only the ends and the first range are read.
struct Offsets {
  int64_t count = 0, first_end = 0;
};

Offsets check_offsets(const File& f, const std::string& name, int64_t tokens, const std::string& tokens_from) {
  const int64_t n = vector_length(f, name);
  if (n < 1) refuse(f, name + " is empty; it must hold at least the offset 0");
  const int64_t first = value_at(f, name, 0), last = value_at(f, name, n - 1);
  if (first != 0) refuse(f, fmt::format("{} starts at {}, not 0", name, first));
  if (last != tokens)
    refuse(f, fmt::format("{} ends at {} but {} holds {} tokens (a truncated or damaged store)", name, last, tokens_from, tokens));
  const int64_t first_end = n >= 2 ? value_at(f, name, 1) : 0;
  if (first_end < 0 || first_end > tokens)
    refuse(f, fmt::format("{}[1] = {} lies outside the {} tokens", name, first_end, tokens));
  return {n - 1, first_end};
}

// The token count: /tokens' length, or the first hookpoint's rows in a store without /tokens.
int64_t store_token_count(const File& f, const std::vector<std::string>& hookpoints) {
  if (f.exists("/tokens")) return vector_length(f, "/tokens");
  for (const auto& h : hookpoints)
    if (!f.is_group("/activations/" + h)) {
      const auto shape = f.shape("/activations/" + h);
      if (!shape.empty()) return shape[0];
    }
  return 0;
}

std::vector<std::string> store_hookpoint_names(const File& f) {
  if (!f.exists("/activations")) refuse(f, "not an activation store: no /activations group");
  if (!f.is_group("/activations")) refuse(f, "/activations is a dataset where the group of hookpoints belongs");
  return f.children("/activations");
}

// One line per hookpoint: [T, d] and the stored dtype.
std::string store_hookpoints(const File& f, const std::vector<std::string>& hookpoints, int64_t tokens) {
  std::string out = hookpoints.empty() ? "  hookpoints: none\n" : "  hookpoints:\n";
  for (const auto& h : hookpoints) {
    const std::string ds = "/activations/" + h;
    if (f.is_group(ds)) refuse(f, ds + " is a group where a [tokens, d] dataset belongs");
    const auto shape = f.shape(ds);
    if (shape.size() != 2 || shape[0] != tokens)
      refuse(f, fmt::format("{} has shape {}; it must be [{}, d], one row per token", ds, shape_text(shape), tokens));
    const std::string dtype = f.has_attr(ds, "dtype") ? f.read_attr_string(ds, "dtype") : "float32";
    if (dtype != "float32" && dtype != "float16" && dtype != "bfloat16")
      refuse(f, ds + " has dtype '" + dtype + "' (known: float32, float16, bfloat16)");
    out += fmt::format("    {} {} {}\n", h, shape_text(shape), dtype);
  }
  return out;
}

// The token strings: the root attribute vocab, or the dataset /vocab of a large vocabulary.
std::vector<std::string> store_vocab(const File& f) {
  if (f.has_attr("/", "vocab")) return f.read_attr_strings("/", "vocab");
  if (!f.exists("/vocab")) return {};
  const int64_t n = vector_length(f, "/vocab");
  if (n > kMaxVocab) refuse(f, fmt::format("/vocab holds {} pieces, more than any tokenizer has ({})", n, kMaxVocab));
  return f.read_strings("/vocab");
}

// Ids read from `name` (rows [begin, begin + count)); each must name a piece when there is a vocabulary.
std::vector<int64_t> token_ids(const File& f, const std::string& name, int64_t begin, int64_t count, size_t vocab) {
  std::vector<int64_t> ids(static_cast<size_t>(count));
  if (count > 0) f.read_rows(name, {begin, begin + count}, ids.data());
  for (size_t i = 0; i < ids.size(); ++i)
    if (vocab > 0 && (ids[i] < 0 || static_cast<uint64_t>(ids[i]) >= vocab))
      refuse(f, fmt::format("{}[{}] = {} is not a token id of the store's vocabulary ({} pieces)", name,
                            begin + static_cast<int64_t>(i), ids[i], vocab));
  return ids;
}

std::string store_special_tokens(const File& f, const std::vector<std::string>& vocab) {
  if (!f.exists("/special_tokens")) return "";
  const int64_t n = vector_length(f, "/special_tokens");
  if (n > kMaxListed) return fmt::format("; {} special tokens", n);
  std::string out;
  for (int64_t id : token_ids(f, "/special_tokens", 0, n, vocab.size()))
    out += fmt::format("{} {}", out.empty() ? "" : ",", id) + (vocab.empty() ? "" : " " + quoted_text(vocab[static_cast<size_t>(id)]));
  return "; special tokens" + (out.empty() ? std::string(" none") : out);
}

// The first document's first tokens, decoded piece by piece (byte pieces as their bytes).
std::string store_sample(const File& f, const std::vector<std::string>& vocab, const Offsets& docs) {
  if (!f.exists("/tokens")) return "  no /tokens (written before the store kept its token ids)\n";
  const int64_t count = std::min(kSampleTokens, docs.first_end);
  const std::vector<int64_t> ids = token_ids(f, "/tokens", 0, count, vocab.size());
  std::string text;
  for (int64_t id : ids) text += vocab.empty() ? fmt::format("{}{}", text.empty() ? "" : " ", id) : token_piece(vocab, id);
  return fmt::format("  sample: document 0, its first {} of {} tokens{}:\n    {}\n", count, docs.first_end,
                     vocab.empty() ? " (ids: the store has no vocabulary)" : "", vocab.empty() ? text : quoted_text(text));
}

// "complete", or how far the extraction writing it got.
std::string store_state(const File& f) {
  if (f.has_attr("/", "complete") && f.read_attr_bool("/", "complete")) return "complete";
  const int64_t batches = f.exists("/batch_nll") ? vector_length(f, "/batch_nll") : 0;
  return fmt::format("INCOMPLETE: {} of {} batches written; an extraction is writing it or was stopped, and the same "
                     "command resumes it", root_text(f, "batches_done", "0"), batches);
}

std::string store_provenance(const File& f) {
  Provenance p = read_provenance(f, "/");
  std::string out = provenance_lines(p, root_text(f, "model_architecture", ""));
  if (f.has_attr("/", "activations_finite"))
    out += f.read_attr_bool("/", "activations_finite")
               ? "  every stored value verified finite as it was written\n"
               : "  not verified finite as written (a value that is not, or an extraction begun before 0.7): train and "
                 "compare scan it\n";
  if (f.has_attr("/", "inputs")) {
    const auto inputs = f.read_attr_strings("/", "inputs");
    out += "  inputs:";
    for (size_t i = 0; i < inputs.size() && i < kMaxListed; ++i) out += " " + inputs[i];
    out += inputs.size() > kMaxListed ? fmt::format(" ... and {} more\n", inputs.size() - kMaxListed) : "\n";
  }
  return out;
}

std::string store_footer(const File& f) {
  std::string out;
  if (f.has_attr("/", "loss"))
    out += fmt::format("  mean next-token loss {} nats over {} tokens\n", root_text(f, "loss"), root_text(f, "loss_tokens"));
  out += fmt::format("  token sequence {}", root_text(f, "token_sequence", "(not recorded before 0.3)"));
  if (f.has_attr("/", "fingerprint"))
    out += fmt::format("; fingerprint {} (what decides reuse)", fingerprint_hash(f.read_attr_string("/", "fingerprint")));
  return out + fmt::format("\n  written by universae {} ({})\n", root_text(f, "universae_version"), root_text(f, "git_sha"));
}

std::string describe_store(const File& f) {
  std::string out = fmt::format("{}: universae activation store (format_version {}, {})\n", f.path(),
                                root_text(f, "format_version"), store_state(f));
  out += store_provenance(f);
  const auto hookpoints = store_hookpoint_names(f);
  const int64_t tokens = store_token_count(f, hookpoints);
  const std::string tokens_from = f.exists("/tokens") ? "/tokens" : "the store";
  const Offsets none{1, tokens};
  const Offsets docs = f.exists("/doc_offsets") ? check_offsets(f, "/doc_offsets", tokens, tokens_from) : none;
  const Offsets seqs = f.exists("/seq_offsets") ? check_offsets(f, "/seq_offsets", tokens, tokens_from) : none;
  check_count(f, "n_tokens", tokens, "tokens");
  check_count(f, "n_documents", docs.count, "documents (/doc_offsets)");
  check_count(f, "n_sequences", seqs.count, "sequences (/seq_offsets)");
  out += fmt::format("  {} documents, {} sequences (seq_len {}), {} tokens; batches of {} tokens\n", docs.count, seqs.count,
                     root_text(f, "seq_len"), tokens, root_text(f, "batch_tokens"));
  out += store_hookpoints(f, hookpoints, tokens);
  const std::vector<std::string> vocab = store_vocab(f);
  out += fmt::format("  vocabulary {} pieces{}\n", vocab.size(), store_special_tokens(f, vocab));
  return out + store_sample(f, vocab, docs) + store_footer(f);
}

// ---- Training checkpoint ----

// The value of `key` in the table [section] of a fingerprint's TOML text, quotes removed ("" when
// absent): enough to show a checkpoint's sizes without a TOML parser in io/.
std::string toml_value(const std::string& text, const std::string& section, const std::string& key) {
  std::string table;
  size_t begin = 0;
  while (begin < text.size()) {
    size_t end = text.find('\n', begin);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(begin, end - begin);
    begin = end + 1;
    line.erase(0, line.find_first_not_of(" \t"));
    if (!line.empty() && line.front() == '[') table = line.substr(1, line.find(']') == std::string::npos ? 0 : line.find(']') - 1);
    const size_t eq = line.find(" = ");
    if (table != section || eq == std::string::npos || line.compare(0, eq, key) != 0 || eq != key.size()) continue;
    std::string value = line.substr(eq + 3);
    if (value.size() >= 2 && (value.front() == '\'' || value.front() == '"') && value.back() == value.front())
      value = value.substr(1, value.size() - 2);
    return value;
  }
  return "";
}

int64_t parse_count(const std::string& text) {
  int64_t v = -1;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  return ec == std::errc() && end == text.data() + text.size() ? v : -1;
}

// The seed groups /seed<S>, by seed.
std::vector<std::pair<int64_t, std::string>> checkpoint_seeds(const File& f) {
  std::vector<std::pair<int64_t, std::string>> seeds;
  for (const auto& name : f.children("/")) {
    const int64_t seed = name.rfind("seed", 0) == 0 ? parse_count(name.substr(4)) : -1;
    if (seed >= 0 && f.is_group("/" + name)) seeds.emplace_back(seed, "/" + name);
  }
  std::sort(seeds.begin(), seeds.end());
  if (seeds.empty()) refuse(f, "a checkpoint without seed groups (/seed<S>)");
  return seeds;
}

// What one seed group holds: "W_dec [512, 64], ..." for its datasets, then its groups ("adam_m/").
std::string seed_contents(const File& f, const std::string& group) {
  std::string datasets, groups;
  for (const auto& name : f.children(group)) {
    if (f.is_group(group + "/" + name)) groups += " " + name + "/";
    else datasets += (datasets.empty() ? "" : ", ") + name + " " + shape_text(f.shape(group + "/" + name));
  }
  if (datasets.find("W_dec [") == std::string::npos) refuse(f, group + " holds no W_dec");
  if (groups == " adam_m/ adam_v/") return datasets + "; Adam's moments of each parameter in adam_m/, adam_v/";
  return datasets + (groups.empty() ? "" : "; groups" + groups);
}

std::string checkpoint_progress(const File& f, const std::string& fingerprint) {
  const int64_t step = f.read_attr_int("/", "step"), total_tokens = parse_count(toml_value(fingerprint, "train", "tokens"));
  const int64_t batch = parse_count(toml_value(fingerprint, "train", "batch_size"));
  if (step < 0) refuse(f, fmt::format("attribute step = {} is negative", step));
  std::string out = fmt::format("  step {}", step);
  if (batch > 0 && total_tokens >= 0 && step > total_tokens / batch)
    refuse(f, fmt::format("attribute step = {} is past the {} steps its settings train", step, total_tokens / batch));
  if (batch > 0 && total_tokens >= 0)
    out += fmt::format(" of {}: {} of {} training tokens (batch_size {})", total_tokens / batch, step * batch, total_tokens, batch);
  return out + fmt::format("; Adam step {}; input_scale {}\n", f.read_attr_int("/", "adam_step"), attr_text(f, "/", "input_scale"));
}

std::string checkpoint_settings(const std::string& fingerprint) {
  auto value = [&](const char* section, const char* key) {
    const std::string v = toml_value(fingerprint, section, key);
    return v.empty() ? std::string("?") : v;
  };
  return fmt::format("  SAE {} with {} latents, k {}, at hookpoint '{}'; train.seed_groups {}, train.latent_shards {}\n",
                     value("sae", "architecture"), value("sae", "n_latents"), value("sae", "k"), value("data", "hookpoint"),
                     value("train", "seed_groups"), value("train", "latent_shards"));
}

std::string describe_checkpoint(const File& f) {
  const bool complete = f.has_attr("/", "complete") && f.read_attr_bool("/", "complete");
  const std::string fingerprint = f.read_attr_string("/", "fingerprint");
  std::string out = fmt::format("{}: universae training checkpoint ({})\n", f.path(),
                                complete ? "complete" : "INCOMPLETE: written when a run was killed; it is not resumed from");
  out += checkpoint_progress(f, fingerprint) + checkpoint_settings(fingerprint);
  const auto seeds = checkpoint_seeds(f);
  const std::string contents = seed_contents(f, seeds.front().second);
  std::string names, thresholds;
  for (const auto& [seed, group] : seeds) {
    if (seed_contents(f, group) != contents)
      refuse(f, group + " holds other tensors than " + seeds.front().second + ": " + seed_contents(f, group));
    names += (names.empty() ? "" : ", ") + std::to_string(seed);
    if (f.has_attr(group, "batchtopk_threshold") && f.read_attr_double(group, "batchtopk_threshold") >= 0)
      thresholds += fmt::format(" seed {} {}", seed, attr_text(f, group, "batchtopk_threshold"));
  }
  out += fmt::format("  seeds {}: each /seed<S> holds {}\n", names, contents);
  if (!thresholds.empty()) out += "  batchtopk threshold:" + thresholds + "\n";
  return out + fmt::format("  fingerprint {} (the data, sae and train settings it resumes under: rerun the same command "
                           "to resume; other settings need --fresh)\n", fingerprint_hash(fingerprint));
}

// ---- Any other HDF5 file ----

std::string describe_hdf5(const File& f, const std::string& format) {
  std::string out = fmt::format("{}: HDF5 file{}\n", f.path(), format.empty() ? "" : " with format '" + format + "'");
  for (const auto& a : f.attr_names("/")) out += fmt::format("  @{} = {}\n", a, attr_text(f, "/", a));
  describe_tree(f, "/", 0, out);
  return out;
}

std::string describe_any(const parallel::Comm& comm, const std::string& path) {
  if (const auto foreign = detect_sae_format(path); foreign && *foreign != SaeFormat::kUniversae)
    return describe_sae(comm, path);
  if (std::filesystem::is_directory(path))
    throw UsageError(path + ": a directory, but not a sparsify or SAELens SAE (cfg.json beside sae.safetensors or "
                     "sae_weights.safetensors); inspect takes one file or one SAE directory");
  std::string format;
  {
    File f = File::open_read(comm, path);
    if (f.has_attr("/", "format")) format = f.read_attr_string("/", "format");
    if (format == kResultsFormat) return describe_results(comm, f);
    if (format == kStoreFormat) return describe_store(f);
    if (format == kCheckpointFormat) return describe_checkpoint(f);
    if (format != kSaeFormat) return describe_hdf5(f, format);
  }
  return describe_sae(comm, path);
}

}  // namespace

std::string describe_file(const parallel::Comm& comm, const std::string& path) {
  try {
    return describe_any(comm, path);
  } catch (const InternalError& e) {
    // The HDF5 library refusing what the file holds (a string where numbers belong, a damaged
    // object) is a problem of the file, not of universae: every rank reads the same file and meets it.
    std::string what = e.what();
    if (what.rfind("HDF5: ", 0) != 0) throw;
    what.erase(0, what.compare(6, path.size() + 2, path + ": ") == 0 ? 6 + path.size() + 2 : 6);  // the path, once
    if (const size_t at = what.rfind(" ("); at != std::string::npos && what.find("h5.cpp:", at) != std::string::npos)
      what.erase(at);  // where in universae it failed says nothing about the file
    throw UsageError(path + ": cannot be read: " + what + " (a damaged file, or an object of another type than universae writes)");
  }
}

}  // namespace universae::io
