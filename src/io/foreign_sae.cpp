#include "io/foreign_sae.hpp"

#include <ATen/Functions.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>

#include "core/error.hpp"
#include "io/h5.hpp"
#include "io/output.hpp"
#include "io/safetensors.hpp"
#include "io/text_file.hpp"

namespace universae::io {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kCfg = "cfg.json";
constexpr const char* kSparsifyWeights = "sae.safetensors";
constexpr const char* kSaeLensWeights = "sae_weights.safetensors";

std::string weights_file(SaeFormat f) { return f == SaeFormat::kSparsify ? kSparsifyWeights : kSaeLensWeights; }

std::string join(const std::string& dir, const std::string& name) { return (fs::path(dir) / name).string(); }

json parse_json(const std::string& text, const std::string& path) {
  try {
    json j = json::parse(text);
    if (!j.is_object()) throw UsageError(path + ": not a JSON object");
    return j;
  } catch (const json::exception& e) {
    throw UsageError(path + ": not valid JSON (" + e.what() + ")");
  }
}

// Typed cfg.json values; a wrong type is a UsageError naming the file and key.
const json* member(const json& j, const std::string& key) {
  const auto it = j.find(key);
  return it == j.end() || it->is_null() ? nullptr : &*it;
}
int64_t get_int(const json& j, const std::string& key, const std::string& file, std::optional<int64_t> fallback = {}) {
  const json* v = member(j, key);
  if (v == nullptr) {
    if (fallback) return *fallback;
    throw UsageError(file + ": no key '" + key + "'");
  }
  // Some writers store integers as floats (2048.0): accept those, refuse fractions.
  if (v->is_number_integer()) return v->get<int64_t>();
  if (v->is_number_float() && v->get<double>() == static_cast<double>(static_cast<int64_t>(v->get<double>())))
    return static_cast<int64_t>(v->get<double>());
  throw UsageError(file + ": key '" + key + "' must be an integer (got " + v->dump() + ")");
}
bool get_bool(const json& j, const std::string& key, const std::string& file, bool fallback) {
  const json* v = member(j, key);
  if (v == nullptr) return fallback;
  if (!v->is_boolean()) throw UsageError(file + ": key '" + key + "' must be true or false (got " + v->dump() + ")");
  return v->get<bool>();
}
std::string get_string(const json& j, const std::string& key, const std::string& file, const std::string& fallback) {
  const json* v = member(j, key);
  if (v == nullptr) return fallback;
  if (!v->is_string()) throw UsageError(file + ": key '" + key + "' must be a string (got " + v->dump() + ")");
  return v->get<std::string>();
}

// What a cfg.json says, in universae terms.
struct CfgInfo {
  core::Architecture architecture{};
  int64_t d_in = 0, n_latents = 0, k = 0;
  bool apply_b_dec_to_input = true;
  std::string model, hookpoint;
};

CfgInfo parse_sparsify_cfg(const json& j, const std::string& file) {
  CfgInfo c;
  c.architecture = core::Architecture::kTopK;
  c.d_in = get_int(j, "d_in", file);
  const int64_t num_latents = get_int(j, "num_latents", file, 0);
  c.n_latents = num_latents > 0 ? num_latents : get_int(j, "expansion_factor", file, 32) * c.d_in;
  c.k = get_int(j, "k", file);
  c.model = get_string(j, "model_name", file, "");  // universae's exports add it (sparsify's loader ignores it)
  const std::string activation = get_string(j, "activation", file, "topk");
  if (activation != "topk")
    throw UsageError(file + ": activation '" + activation + "' is not supported (universae reads sparsify's topk SAEs)");
  if (get_bool(j, "skip_connection", file, false))
    throw UsageError(file + ": skip_connection = true (a W_skip term) has no universae equivalent");
  if (get_bool(j, "transcode", file, false))
    throw UsageError(file + ": transcode = true: a transcoder maps one hookpoint to another, not an SAE");
  if (c.d_in < 1 || c.n_latents < 1 || c.k < 1 || c.k > c.n_latents)
    throw UsageError(file + ": need d_in >= 1, num_latents >= 1 and 1 <= k <= num_latents (got d_in " +
                     std::to_string(c.d_in) + ", num_latents " + std::to_string(c.n_latents) + ", k " + std::to_string(c.k) + ")");
  return c;
}

CfgInfo parse_saelens_cfg(const json& j, const std::string& file) {
  CfgInfo c;
  // v6 keeps model and hook in "metadata" ("meta" in some 6.x files); older configs are flat.
  const json empty = json::object();
  const json* meta = member(j, "metadata");
  if (meta == nullptr) meta = member(j, "meta");
  if (meta != nullptr && !meta->is_object()) throw UsageError(file + ": key 'metadata' must be an object");
  const json& m = meta ? *meta : empty;
  c.model = get_string(m, "model_name", file, get_string(j, "model_name", file, ""));
  c.hookpoint = get_string(m, "hook_name", file, get_string(j, "hook_name", file, get_string(j, "hook_point", file, "")));
  c.d_in = get_int(j, "d_in", file);
  c.n_latents = get_int(j, "d_sae", file);
  c.apply_b_dec_to_input = get_bool(j, "apply_b_dec_to_input", file, true);
  std::string arch = get_string(j, "architecture", file, "standard");
  const std::string activation = get_string(j, "activation_fn", file, get_string(j, "activation_fn_str", file, "relu"));
  if (arch == "standard" && activation == "topk") arch = "topk";  // before 6.0 TopK was standard + activation_fn topk
  if (arch == "standard") {
    if (activation != "relu")
      throw UsageError(file + ": activation_fn '" + activation + "' is not supported (relu or topk)");
    c.architecture = core::Architecture::kRelu;
  } else if (const auto a = core::choice_from<core::Architecture>(arch); a && arch != "relu") {
    c.architecture = *a;
  } else {
    throw UsageError(file + ": architecture '" + arch + "' is not supported (standard, topk, jumprelu, gated)");
  }
  if (core::has_top_k(c.architecture)) {
    if (member(j, "k") != nullptr) {
      c.k = get_int(j, "k", file);
    } else if (const json* kw = member(j, "activation_fn_kwargs"); kw != nullptr && kw->is_object()) {
      c.k = get_int(*kw, "k", file + " activation_fn_kwargs");
    } else {
      throw UsageError(file + ": architecture " + arch + " needs the key 'k'");
    }
    if (c.k < 1 || c.k > c.n_latents) throw UsageError(file + ": k must be in [1, d_sae] (got " + std::to_string(c.k) + ")");
  }
  if (get_bool(j, "rescale_acts_by_decoder_norm", file, false))
    throw UsageError(file + ": rescale_acts_by_decoder_norm = true is not supported; fold the decoder norms first");
  // normalize_activations: a bool before 6.0, a string since.
  if (const json* norm = member(j, "normalize_activations"); norm != nullptr) {
    const std::string n = norm->is_boolean() ? (norm->get<bool>() ? "expected_average_only_in" : "none")
                                             : get_string(j, "normalize_activations", file, "none");
    if (n == "expected_average_only_in")
      throw UsageError(file + ": normalize_activations = expected_average_only_in: the scaling factor is not in the "
                       "file; fold it into the weights first (SAELens: fold_activation_norm_scaling_factor)");
    if (n != "none")
      throw UsageError(file + ": normalize_activations = " + n + " (run-time normalisation) is not supported");
  }
  if (get_bool(j, "finetuning_scaling_factor", file, false))
    throw UsageError(file + ": finetuning_scaling_factor = true is not supported");
  if (c.d_in < 1 || c.n_latents < 1) throw UsageError(file + ": d_in and d_sae must be >= 1");
  return c;
}

// Where each universae tensor lives in the file.
struct Layout {
  Layout(SaeFormat f, std::string d, std::string path, std::string text, safetensors::Reader r)
      : format(f), dir(std::move(d)), cfg_path(std::move(path)), cfg_text(std::move(text)), reader(std::move(r)) {}
  SaeFormat format;
  std::string dir, cfg_path, cfg_text;
  safetensors::Reader reader;  // the weights file, its header parsed and checked once
  CfgInfo cfg;
  std::string W_enc, b_enc, W_dec = "W_dec", b_dec = "b_dec", threshold, r_mag, b_mag;
  bool enc_transposed = false;  // SAELens: W_enc is [d, F]
  std::string dtype;            // of W_dec, as written
};

void check_tensor(const safetensors::Reader& r, const std::string& name, const std::vector<int64_t>& expected,
                  const std::string& meaning) {
  const auto* t = r.find(name);
  if (t == nullptr) throw UsageError(r.path() + ": no tensor '" + name + "' (" + meaning + ")");
  if (t->shape != expected)
    throw UsageError(r.path() + ": tensor '" + name + "' has shape " + shape_text(t->shape) + ", expected " +
                     shape_text(expected) + " (" + meaning + ")");
  if (t->dtype != safetensors::DType::kF32 && t->dtype != safetensors::DType::kF16 && t->dtype != safetensors::DType::kBF16)
    throw UsageError(r.path() + ": tensor '" + name + "' has dtype " + t->dtype_string +
                     "; SAE weights must be F32, F16 or BF16");
}

Layout layout_of(const std::string& dir, SaeFormat format) {
  const std::string cfg_path = join(dir, kCfg);
  std::string cfg_text = read_text(cfg_path);
  const json cfg = parse_json(cfg_text, cfg_path);
  Layout L(format, dir, cfg_path, std::move(cfg_text), safetensors::Reader(join(dir, weights_file(format))));
  const safetensors::Reader& r = L.reader;
  std::vector<std::string> known;
  if (format == SaeFormat::kSparsify) {
    L.cfg = parse_sparsify_cfg(cfg, L.cfg_path);
    // A sparsify run names each SAE directory after its hookpoint (layers.3, layers.3.mlp).
    L.cfg.hookpoint = fs::path(dir).lexically_normal().filename().string();
    if (L.cfg.hookpoint.empty()) L.cfg.hookpoint = fs::path(dir).lexically_normal().parent_path().filename().string();
    L.W_enc = "encoder.weight", L.b_enc = "encoder.bias";
    const int64_t n = L.cfg.n_latents, d = L.cfg.d_in;
    check_tensor(r, L.W_enc, {n, d}, "encoder weight [num_latents, d_in]");
    check_tensor(r, L.b_enc, {n}, "encoder bias [num_latents]");
    check_tensor(r, L.W_dec, {n, d}, "decoder rows [num_latents, d_in]");
    check_tensor(r, L.b_dec, {d}, "decoder bias [d_in]");
    known = {L.W_enc, L.b_enc, L.W_dec, L.b_dec};
  } else {
    L.cfg = parse_saelens_cfg(cfg, L.cfg_path);
    const int64_t n = L.cfg.n_latents, d = L.cfg.d_in;
    L.W_enc = "W_enc", L.enc_transposed = true;
    const core::Architecture a = L.cfg.architecture;
    L.b_enc = a == core::Architecture::kGated ? "b_gate" : "b_enc";
    check_tensor(r, L.W_enc, {d, n}, "encoder [d_in, d_sae]");
    check_tensor(r, L.b_enc, {n}, "encoder bias [d_sae]");
    check_tensor(r, L.W_dec, {n, d}, "decoder [d_sae, d_in]");
    check_tensor(r, L.b_dec, {d}, "decoder bias [d_in]");
    known = {L.W_enc, L.b_enc, L.W_dec, L.b_dec};
    if (a == core::Architecture::kJumpRelu || (a == core::Architecture::kBatchTopK && r.find("threshold"))) {
      L.threshold = "threshold";
      check_tensor(r, L.threshold, {n}, "jumprelu threshold [d_sae]");
      known.push_back(L.threshold);
    }
    if (a == core::Architecture::kGated) {
      L.r_mag = "r_mag", L.b_mag = "b_mag";
      check_tensor(r, L.r_mag, {n}, "gated magnitude scale [d_sae]");
      check_tensor(r, L.b_mag, {n}, "gated magnitude bias [d_sae]");
      known.push_back(L.r_mag), known.push_back(L.b_mag);
    }
    if (r.find("scaling_factor")) {
      // Older SAELens files carry a scaling factor that is all ones (nothing to apply); anything else is not supported.
      const at::Tensor s = r.read("scaling_factor");
      if (!at::equal(s, at::ones_like(s)))
        throw UsageError(r.path() + ": tensor 'scaling_factor' is not all ones; fold it into W_dec first");
      known.push_back("scaling_factor");
    }
  }
  for (const auto& t : r.tensors())
    if (std::find(known.begin(), known.end(), t.name) == known.end())
      throw UsageError(r.path() + ": unexpected tensor '" + t.name + "' for a " + sae_format_name(format) + " " +
                       core::name_of(L.cfg.architecture) + " SAE" + (t.name == "W_skip" ? " (a skip connection)" : ""));
  L.dtype = r.find(L.W_dec)->dtype_string;
  return L;
}

SaeHeader header_of(const Layout& L) {
  SaeHeader h;
  h.path = L.dir;
  h.architecture = L.cfg.architecture;
  h.d_in = L.cfg.d_in;
  h.n_latents = L.cfg.n_latents;
  h.k = L.cfg.k;
  h.hookpoint = L.cfg.hookpoint;
  h.provenance.model = L.cfg.model;  // cfg.json's model_name
  h.provenance.model_name = L.cfg.model;
  h.provenance.source = absolute_path(join(L.dir, weights_file(L.format)));
  h.apply_b_dec_to_input = L.cfg.apply_b_dec_to_input;
  h.config = L.cfg_text;
  return h;
}

// Natural order: digit runs compare as numbers (layers.2 < layers.10).
bool natural_less(const std::string& a, const std::string& b) {
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (std::isdigit(static_cast<unsigned char>(a[i])) && std::isdigit(static_cast<unsigned char>(b[j]))) {
      size_t ie = i, je = j;
      while (ie < a.size() && std::isdigit(static_cast<unsigned char>(a[ie]))) ++ie;
      while (je < b.size() && std::isdigit(static_cast<unsigned char>(b[je]))) ++je;
      const std::string na = a.substr(i, ie - i), nb = b.substr(j, je - j);
      const std::string ta = na.substr(std::min(na.find_first_not_of('0'), na.size()));
      const std::string tb = nb.substr(std::min(nb.find_first_not_of('0'), nb.size()));
      if (ta.size() != tb.size()) return ta.size() < tb.size();
      if (ta != tb) return ta < tb;
      i = ie, j = je;
    } else {
      if (a[i] != b[j]) return a[i] < b[j];
      ++i, ++j;
    }
  }
  return a.size() - i < b.size() - j;
}

std::string torch_dtype_name(const std::string& st) {
  return st == "BF16" ? "bfloat16" : st == "F16" ? "float16" : "float32";
}

}  // namespace

const char* sae_format_name(SaeFormat f) {
  switch (f) {
    case SaeFormat::kUniversae: return "universae";
    case SaeFormat::kSparsify: return "sparsify";
    case SaeFormat::kSaeLens: return "saelens";
  }
  return "?";
}

SaeFormat parse_sae_format(const std::string& name, const std::string& what) {
  if (name == "universae") return SaeFormat::kUniversae;
  if (name == "sparsify") return SaeFormat::kSparsify;
  if (name == "saelens" || name == "sae_lens" || name == "SAELens") return SaeFormat::kSaeLens;
  throw UsageError(what + ": unknown SAE format '" + name + "' (universae, sparsify, saelens)");
}

std::optional<SaeFormat> detect_sae_format(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    if (!fs::is_regular_file(join(path, kCfg), ec)) return std::nullopt;
    if (fs::is_regular_file(join(path, kSparsifyWeights), ec)) return SaeFormat::kSparsify;
    if (fs::is_regular_file(join(path, kSaeLensWeights), ec)) return SaeFormat::kSaeLens;
    return std::nullopt;
  }
  if (fs::is_regular_file(path, ec) && file_format(path) == kSaeFormat) return SaeFormat::kUniversae;
  return std::nullopt;
}

std::vector<FoundSae> find_saes(const std::string& dir) {
  std::vector<FoundSae> found;
  std::error_code ec;
  fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec), end;
  if (ec) throw UsageError(dir + ": cannot list (" + ec.message() + ")");
  for (; it != end; it.increment(ec)) {
    if (ec) throw UsageError(dir + ": cannot list (" + ec.message() + ")");
    const std::string p = it->path().string();
    const auto format = detect_sae_format(p);
    if (!format) continue;
    found.push_back({p, fs::relative(it->path(), dir).generic_string(), *format});
    if (it->is_directory()) it.disable_recursion_pending();
  }
  std::sort(found.begin(), found.end(), [](const FoundSae& a, const FoundSae& b) { return natural_less(a.relative, b.relative); });
  return found;
}

SaeHeader read_foreign_header(const std::string& path, SaeFormat format) { return header_of(layout_of(path, format)); }

at::Tensor read_foreign_rows(const std::string& path, SaeFormat format, const std::string& dataset, core::Range rows) {
  const Layout L = layout_of(path, format);
  const safetensors::Reader& r = L.reader;
  if (dataset == "W_dec") return r.read_rows(L.W_dec, rows.begin, rows.end);
  if (dataset != "W_enc") throw InternalError("read_foreign_rows: dataset " + dataset);
  if (!L.enc_transposed) return r.read_rows(L.W_enc, rows.begin, rows.end);
  return r.read(L.W_enc).slice(1, rows.begin, rows.end).t().contiguous();
}

SaeWeights read_foreign_sae(const std::string& path, SaeFormat format) {
  const Layout L = layout_of(path, format);
  const safetensors::Reader& r = L.reader;
  SaeWeights w;
  w.header = header_of(L);
  w.W_enc = L.enc_transposed ? r.read(L.W_enc).t().contiguous() : r.read(L.W_enc);
  w.b_enc = r.read(L.b_enc);
  w.W_dec = r.read(L.W_dec);
  w.b_dec = r.read(L.b_dec);
  if (!L.threshold.empty()) w.threshold = r.read(L.threshold);
  if (!L.r_mag.empty()) w.r_mag = r.read(L.r_mag), w.b_mag = r.read(L.b_mag);
  w.string_attrs = {{"source_format", sae_format_name(format)},
                    {"source_path", path},
                    {"source_dtype", L.dtype},
                    {"source_config", L.cfg_text},
                    {"source_metadata", json(r.metadata()).dump()}};
  return w;
}

namespace {

// What a foreign directory is written from: its tensors, its cfg.json and the safetensors metadata.
struct ForeignFiles {
  std::vector<safetensors::Tensor> tensors;
  std::string cfg_text;
  std::map<std::string, std::string> metadata = {{"format", "pt"}};
  std::vector<std::string> notes;  // for the user: what was folded or mapped
};

// The model's name for the exports' model_name: the short name provenance records, else what it has.
std::string model_name(const SaeHeader& h) {
  return h.provenance.model_name.empty() ? h.provenance.model : h.provenance.model_name;
}

std::string string_attr(const SaeWeights& sae, const std::string& name) {
  for (const auto& [k, v] : sae.string_attrs)
    if (k == name) return v;
  return "";
}

// The cfg.json and metadata the SAE came with, kept verbatim when converting back to the same library
// and they still describe these weights (SAELens' cfg.json names the dtype: another --dtype needs a new one).
void reuse_source_files(const SaeWeights& sae, SaeFormat format, const std::string& dtype, ForeignFiles& out) {
  const SaeHeader& h = sae.header;
  const bool same_source = string_attr(sae, "source_format") == sae_format_name(format) &&
                           !string_attr(sae, "source_config").empty() &&
                           (format == SaeFormat::kSparsify || dtype == string_attr(sae, "source_dtype"));
  if (!same_source) return;
  try {
    const json j = parse_json(string_attr(sae, "source_config"), "source_config");
    const CfgInfo c = format == SaeFormat::kSparsify ? parse_sparsify_cfg(j, "source_config") : parse_saelens_cfg(j, "source_config");
    if (c.architecture == h.architecture && c.d_in == h.d_in && c.n_latents == h.n_latents && c.k == h.k &&
        c.apply_b_dec_to_input == h.apply_b_dec_to_input)
      out.cfg_text = string_attr(sae, "source_config");
  } catch (const UsageError&) {
  }
  if (string_attr(sae, "source_metadata").empty()) return;
  try {
    out.metadata = json::parse(string_attr(sae, "source_metadata")).get<std::map<std::string, std::string>>();
  } catch (const json::exception&) {
  }
}

// sparsify: TopK only; it always encodes x − b_dec.
void sparsify_files(const SaeWeights& sae, safetensors::DType st, ForeignFiles& out) {
  const SaeHeader& h = sae.header;
  at::Tensor b_enc = sae.b_enc;
  if (!h.apply_b_dec_to_input) {
    b_enc = sae.b_enc.to(at::kDouble).add(at::mv(sae.W_enc.to(at::kDouble), sae.b_dec.to(at::kDouble))).to(at::kFloat);
    out.notes.push_back("apply_b_dec_to_input = false: folded W_enc·b_dec into encoder.bias (sparsify always subtracts b_dec)");
  }
  out.tensors = {{"encoder.weight", sae.W_enc, st}, {"encoder.bias", b_enc, st}, {"W_dec", sae.W_dec, st}, {"b_dec", sae.b_dec, st}};
  if (!out.cfg_text.empty()) return;
  json cfg = {{"activation", "topk"},
              {"expansion_factor", std::max<int64_t>(1, h.n_latents / h.d_in)},
              {"normalize_decoder", true},
              {"num_latents", h.n_latents},
              {"k", h.k},
              {"multi_topk", false},
              {"skip_connection", false},
              {"transcode", false},
              {"d_in", h.d_in}};
  // Not a sparsify field (its loader drops extra fields): which model the SAE reads, as SAELens says it.
  if (!model_name(h).empty()) cfg["model_name"] = model_name(h);
  out.cfg_text = cfg.dump();
}

// SAELens: W_enc transposed; relu is "standard"; a batchtopk SAE is used as jumprelu with its threshold.
void saelens_files(const SaeWeights& sae, safetensors::DType st, const std::string& dtype, ForeignFiles& out) {
  using core::Architecture;
  const SaeHeader& h = sae.header;
  std::string arch = h.architecture == Architecture::kRelu ? "standard" : core::name_of(h.architecture);
  if (h.architecture == Architecture::kBatchTopK) {
    arch = "jumprelu";
    out.cfg_text.clear();
    out.notes.push_back("batchtopk: written as SAELens jumprelu with its inference threshold (how BatchTopK SAEs are used)");
  }
  out.tensors = {{"W_enc", sae.W_enc.t(), st}, {h.architecture == Architecture::kGated ? "b_gate" : "b_enc", sae.b_enc, st},
                 {"W_dec", sae.W_dec, st}, {"b_dec", sae.b_dec, st}};
  if (arch == "jumprelu") out.tensors.push_back({"threshold", sae.threshold, st});
  if (arch == "gated") out.tensors.push_back({"r_mag", sae.r_mag, st}), out.tensors.push_back({"b_mag", sae.b_mag, st});
  if (!out.cfg_text.empty()) return;
  json cfg = {{"architecture", arch},
              {"d_in", h.d_in},
              {"d_sae", h.n_latents},
              {"dtype", torch_dtype_name(dtype)},
              {"device", "cpu"},
              {"apply_b_dec_to_input", h.apply_b_dec_to_input},
              {"normalize_activations", "none"},
              {"reshape_activations", "none"},
              {"metadata", {{"model_name", model_name(h)}, {"hook_name", h.hookpoint}, {"sae_lens_version", "6.0.0"}}}};
  if (arch == "topk") cfg["k"] = h.k;
  out.cfg_text = cfg.dump();
}

}  // namespace

std::vector<std::string> write_foreign_sae(const std::string& dir, SaeFormat format, const SaeWeights& sae,
                                           const std::string& dtype, bool force) {
  const SaeHeader& h = sae.header;
  const std::string what = h.path.empty() ? std::string("SAE") : h.path;
  if (format == SaeFormat::kUniversae) throw InternalError("write_foreign_sae: universae is not a foreign format");
  if (format == SaeFormat::kSparsify && h.architecture != core::Architecture::kTopK)
    throw UsageError(what + ": a " + core::name_of(h.architecture) +
                     " SAE cannot be written for sparsify, which holds TopK SAEs only (convert it --to saelens)");
  if (format == SaeFormat::kSaeLens && h.architecture == core::Architecture::kBatchTopK && !sae.threshold.defined())
    throw UsageError(what + ": this batchtopk SAE has no inference threshold, so SAELens (jumprelu) cannot hold it");
  const std::string source_dtype = string_attr(sae, "source_dtype");
  const std::string dtype_name = !dtype.empty() ? dtype : !source_dtype.empty() ? source_dtype : "F32";
  const safetensors::DType st = safetensors::parse_dtype(dtype_name);
  if (st != safetensors::DType::kF32 && st != safetensors::DType::kF16 && st != safetensors::DType::kBF16)
    throw UsageError("--dtype " + dtype_name + ": choose F32, F16 or BF16");
  std::error_code ec;
  if (fs::exists(dir, ec) && !force) throw UsageError(dir + ": already exists (use --force to replace it)");

  ForeignFiles files;
  reuse_source_files(sae, format, dtype_name, files);
  if (format == SaeFormat::kSparsify) sparsify_files(sae, st, files);
  else saelens_files(sae, st, dtype_name, files);

  if (!fs::path(dir).parent_path().empty()) fs::create_directories(fs::path(dir).parent_path(), ec);
  Pending pending(dir);  // built beside the destination, renamed into place when complete
  fs::create_directories(pending.partial(), ec);
  if (ec) throw UsageError(pending.partial() + ": cannot create (" + ec.message() + ")");
  safetensors::write(join(pending.partial(), weights_file(format)), files.tensors, files.metadata);
  std::ofstream out(join(pending.partial(), kCfg), std::ios::binary | std::ios::trunc);
  out << files.cfg_text;
  out.close();
  if (!out) throw UsageError(join(pending.partial(), kCfg) + ": write failed");
  pending.commit();
  return files.notes;
}

}  // namespace universae::io
