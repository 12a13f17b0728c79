// `universae inspect` on every kind of file universae writes (structure-aware): the fuzzer's bytes
// choose the kind — activation store, SAE file, results file, training checkpoint, or another HDF5
// file — and then its objects: which are present, datasets or groups or strings where numbers belong,
// shapes and element types, token ids (inside the vocabulary or not), document and sequence offsets
// (ordered and ending at the token count, or not), vocabulary pieces (byte pieces, broken UTF-8),
// summary columns, seed groups, fingerprints, and attributes of every type. io::describe_file must
// describe the file or refuse it with a UsageError naming it; any other exception, a sanitizer report
// or a leak is a crash. The bytes of the HDF5 format are not mutated (fuzz/fuzz_h5.hpp says why).
#include <algorithm>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "fuzz/fuzz_common.hpp"
#include "fuzz/fuzz_h5.hpp"
#include "io/inspect.hpp"

namespace {

using universae::fuzz::fuzz_attr;
using universae::fuzz::fuzz_dataset;
using universae::fuzz::parents_lcpl;
using universae::fuzz::pick_type;

void string_attr(hid_t file, const char* object, const char* name, const std::string& value) {
  if (H5Oexists_by_name(file, object, H5P_DEFAULT) <= 0) return;
  const hid_t obj = H5Oopen(file, object, H5P_DEFAULT), space = H5Screate(H5S_SCALAR), type = H5Tcopy(H5T_C_S1);
  H5Tset_size(type, value.size() + 1);
  const hid_t a = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
  if (a >= 0) H5Awrite(a, type, value.c_str()), H5Aclose(a);
  H5Tclose(type), H5Sclose(space), H5Oclose(obj);
}

// Attributes as universae writes them three times in four (so that inputs reach past the first check),
// else fuzz_attr's (absent, another type, another value). An attribute written here first is kept:
// fuzz_attr cannot create it again.
void int_attr(hid_t file, FuzzedDataProvider& in, const char* object, const char* name, int64_t lo, int64_t hi) {
  if (in.ConsumeIntegralInRange<int>(0, 3) == 0) return fuzz_attr(file, in, object, name, {});
  if (H5Oexists_by_name(file, object, H5P_DEFAULT) <= 0) return;
  const int64_t value = in.ConsumeIntegralInRange<int64_t>(lo, hi);
  const hid_t obj = H5Oopen(file, object, H5P_DEFAULT), space = H5Screate(H5S_SCALAR);
  const hid_t a = H5Acreate2(obj, name, H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT);
  if (a >= 0) H5Awrite(a, H5T_NATIVE_INT64, &value), H5Aclose(a);
  H5Sclose(space), H5Oclose(obj);
}

void text_attr(hid_t file, FuzzedDataProvider& in, const char* object, const char* name, const std::vector<std::string>& values) {
  if (in.ConsumeIntegralInRange<int>(0, 3) == 0) return fuzz_attr(file, in, object, name, values);
  string_attr(file, object, name, values[in.ConsumeIntegralInRange<size_t>(0, values.size() - 1)]);
}

// A 1-D attribute of variable-length UTF-8 strings, as universae writes string lists.
void strings_attr(hid_t file, const char* object, const char* name, const std::vector<std::string>& values) {
  if (H5Oexists_by_name(file, object, H5P_DEFAULT) <= 0) return;
  std::vector<const char*> text;
  for (const auto& v : values) text.push_back(v.c_str());
  const hsize_t n = values.size();
  const hid_t obj = H5Oopen(file, object, H5P_DEFAULT), space = H5Screate_simple(1, &n, nullptr), type = H5Tcopy(H5T_C_S1);
  H5Tset_size(type, H5T_VARIABLE), H5Tset_cset(type, H5T_CSET_UTF8);
  const hid_t a = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
  if (a >= 0) H5Awrite(a, type, text.data()), H5Aclose(a);
  H5Tclose(type), H5Sclose(space), H5Oclose(obj);
}

// A 1-D dataset of fixed-length strings (a large store's /vocab).
void strings_dataset(hid_t file, const std::string& name, const std::vector<std::string>& values) {
  size_t width = 1;
  for (const auto& v : values) width = std::max(width, v.size());
  std::vector<char> raw(values.size() * width, '\0');
  for (size_t i = 0; i < values.size(); ++i) std::copy(values[i].begin(), values[i].end(), raw.begin() + i * width);
  const hsize_t n = values.size();
  const hid_t type = H5Tcopy(H5T_C_S1), space = H5Screate_simple(1, &n, nullptr), lcpl = parents_lcpl();
  H5Tset_size(type, width);
  const hid_t ds = H5Dcreate2(file, name.c_str(), type, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
  if (ds >= 0 && n > 0) H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw.data());
  if (ds >= 0) H5Dclose(ds);
  H5Pclose(lcpl), H5Tclose(type), H5Sclose(space);
}

void group(hid_t file, const std::string& name) {
  const hid_t lcpl = parents_lcpl();
  const hid_t g = H5Gcreate2(file, name.c_str(), lcpl, H5P_DEFAULT, H5P_DEFAULT);
  if (g >= 0) H5Gclose(g);
  H5Pclose(lcpl);
}

// `values` as a 1-D dataset of a fuzzed numeric type (HDF5 converts, clipping what does not fit).
void values_dataset(hid_t file, FuzzedDataProvider& in, const std::string& name, const std::vector<int64_t>& values) {
  const hid_t type = pick_type(in);
  const hsize_t n = values.size();
  const hid_t space = H5Screate_simple(1, &n, nullptr), lcpl = parents_lcpl();
  const hid_t ds = H5Dcreate2(file, name.c_str(), type, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
  if (ds >= 0 && n > 0) H5Dwrite(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data());
  if (ds >= 0) H5Dclose(ds);
  H5Pclose(lcpl), H5Sclose(space);
}

// A float32 dataset of exactly `dims`, its values the input's bytes (NaN and Inf included).
void floats_dataset(hid_t file, FuzzedDataProvider& in, const std::string& name, const std::vector<hsize_t>& dims) {
  hsize_t n = 1;
  for (hsize_t d : dims) n *= d;
  std::vector<uint8_t> bytes = in.ConsumeBytes<uint8_t>(n * 4);
  bytes.resize(n * 4);
  const hid_t space = H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), lcpl = parents_lcpl();
  const hid_t ds = H5Dcreate2(file, name.c_str(), H5T_IEEE_F32LE, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
  if (ds >= 0 && n > 0) H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, bytes.data());
  if (ds >= 0) H5Dclose(ds);
  H5Pclose(lcpl), H5Sclose(space);
}

// A vector the reader expects: mostly as written (`values`), else absent, any shape, a group, strings.
void fuzz_vector(hid_t file, FuzzedDataProvider& in, const std::string& name, const std::vector<int64_t>& values) {
  switch (in.ConsumeIntegralInRange<int>(0, 7)) {
    case 0: return;
    case 1: return fuzz_dataset(file, in, name, static_cast<int64_t>(values.size()), 1);
    case 2: return group(file, name);
    case 3: return strings_dataset(file, name, {"7", "x"});
    default: return values_dataset(file, in, name, values);
  }
}

// Token ids: mostly inside a vocabulary of `vocab` pieces, sometimes just outside it.
std::vector<int64_t> token_ids(FuzzedDataProvider& in, int64_t count, int64_t vocab) {
  const bool inside = vocab > 0 && in.ConsumeBool();
  std::vector<int64_t> ids;
  for (int64_t i = 0; i < count; ++i)
    ids.push_back(inside ? in.ConsumeIntegralInRange<int64_t>(0, vocab - 1) : in.ConsumeIntegralInRange<int64_t>(-2, vocab + 2));
  return ids;
}

// Offsets [count + 1] of ranges over `tokens`: mostly ordered from 0 to `tokens`, sometimes not.
std::vector<int64_t> offsets(FuzzedDataProvider& in, int64_t tokens) {
  std::vector<int64_t> cuts{0};
  const int64_t count = in.ConsumeIntegralInRange<int64_t>(0, 4);
  for (int64_t i = 0; i < count; ++i) cuts.push_back(in.ConsumeIntegralInRange<int64_t>(0, tokens));
  std::sort(cuts.begin(), cuts.end());
  cuts.push_back(tokens);
  if (in.ConsumeIntegralInRange<int>(0, 3) == 0)
    cuts[in.ConsumeIntegralInRange<size_t>(0, cuts.size() - 1)] = in.ConsumeIntegralInRange<int64_t>(-3, tokens + 3);
  return cuts;
}

std::vector<std::string> vocabulary(FuzzedDataProvider& in) {
  static const std::vector<std::string> pool = {"<unk>", "\n<s>\n", "<0x0A>", "<0xC3>", "<0xA9>", "<0xZZ>", "<0x0",
                                                " a", "\xC3", "\xE2\x96\x81" "b", "\"q\\", "\x7F\x01", ""};
  std::vector<std::string> vocab;
  const int64_t n = in.ConsumeIntegralInRange<int64_t>(0, 6);
  for (int64_t i = 0; i < n; ++i)
    vocab.push_back(in.ConsumeBool() ? pool[in.ConsumeIntegralInRange<size_t>(0, pool.size() - 1)] : in.ConsumeRandomLengthString(8));
  return vocab;
}

void store_vocabulary(hid_t f, FuzzedDataProvider& in, const std::vector<std::string>& vocab) {
  switch (in.ConsumeIntegralInRange<int>(0, 3)) {
    case 0: return;
    case 1: return strings_attr(f, "/", "vocab", vocab);
    case 2: return strings_dataset(f, "/vocab", vocab);
    default: return fuzz_attr(f, in, "/", "vocab", {"<unk>"});
  }
}

void store_hookpoints(hid_t f, FuzzedDataProvider& in, int64_t tokens) {
  if (in.ConsumeIntegralInRange<int>(0, 7) == 0) return fuzz_dataset(f, in, "/activations", tokens, 1);
  group(f, "/activations");
  const int64_t d = in.ConsumeIntegralInRange<int64_t>(0, 4), n = in.ConsumeIntegralInRange<int64_t>(0, 2);
  for (int64_t h = 0; h < n; ++h) {
    const std::string name = "/activations/blocks." + std::to_string(h) + ".hook_resid_post";
    in.ConsumeIntegralInRange<int>(0, 7) == 0 ? group(f, name) : fuzz_dataset(f, in, name, tokens, d);
    fuzz_attr(f, in, name.c_str(), "dtype", {"float32", "float16", "bfloat16", "fp8"});
  }
}

void write_store(hid_t f, FuzzedDataProvider& in) {
  string_attr(f, "/", "format", "universae-activations");
  const int64_t tokens = in.ConsumeIntegralInRange<int64_t>(0, 12);
  const std::vector<std::string> vocab = vocabulary(in);
  const auto V = static_cast<int64_t>(vocab.size());
  store_vocabulary(f, in, vocab);
  fuzz_vector(f, in, "/tokens", token_ids(in, tokens, V));
  fuzz_vector(f, in, "/doc_offsets", offsets(in, tokens));
  fuzz_vector(f, in, "/seq_offsets", offsets(in, tokens));
  fuzz_vector(f, in, "/special_tokens", token_ids(in, in.ConsumeIntegralInRange<int64_t>(0, 3), V));
  fuzz_vector(f, in, "/batch_nll", {1, 2, 3});
  store_hookpoints(f, in, tokens);
  in.ConsumeBool() ? strings_attr(f, "/", "inputs", {"a.txt", "b.jsonl"}) : fuzz_attr(f, in, "/", "inputs", {"a.txt"});
  int_attr(f, in, "/", "complete", 0, 1);
  int_attr(f, in, "/", "n_tokens", tokens - 1, tokens);
  for (const char* a : {"format_version", "batches_done", "loss", "loss_tokens", "n_documents", "n_sequences", "seq_len"})
    int_attr(f, in, "/", a, -1, 4);
  for (const char* a : {"model", "tokenizer", "model_format", "token_sequence", "fingerprint", "git_sha"})
    text_attr(f, in, "/", a, {"stories260K.bin", "[extract]\nloss = true\n", ""});
}

void write_sae(hid_t f, FuzzedDataProvider& in) {
  const int64_t n = in.ConsumeIntegralInRange<int64_t>(0, 8), d = in.ConsumeIntegralInRange<int64_t>(0, 6);
  string_attr(f, "/", "format", "universae-sae");  // the rest as fuzz_hdf5 chooses it, mostly as written
  int_attr(f, in, "/", "format_version", 1, 1);
  int_attr(f, in, "/", "complete", 0, 1);
  int_attr(f, in, "/", "n_latents", n - 1, n);
  int_attr(f, in, "/", "d_in", d, d + 1);
  int_attr(f, in, "/", "k", 0, n + 1);
  text_attr(f, in, "/", "architecture", {"relu", "topk", "batchtopk", "jumprelu", "gated"});
  if (in.ConsumeBool()) {  // the tensors of their right shapes (fuzz_sae_file cannot make them again)
    const auto N = static_cast<hsize_t>(n), D = static_cast<hsize_t>(d);
    for (const char* name : {"/W_enc", "/W_dec"}) floats_dataset(f, in, name, {N, D});
    floats_dataset(f, in, "/b_enc", {N});
    floats_dataset(f, in, "/b_dec", {D});
  }
  universae::fuzz::fuzz_sae_file(f, in);
  fuzz_attr(f, in, "/", "snapshot_of", {"saes/seed0.h5"});
  fuzz_attr(f, in, "/", "baseline", {"random_init"});
  for (const char* a : {"seed", "train_tokens", "fvu", "l0", "ce_loss_score"}) fuzz_attr(f, in, "/", a, {});
}

void results_pairs(hid_t f, FuzzedDataProvider& in, const std::vector<std::string>& names) {
  for (size_t a = 0; a < names.size(); ++a)
    for (size_t b = a + 1; b < names.size(); ++b) {
      const std::string g = "/pairs/" + names[a] + "--" + names[b];
      group(f, g + "/lap");
      text_attr(f, in, g.c_str(), "a", {names[a], "nope"});
      text_attr(f, in, g.c_str(), "b", {names[b]});
      int_attr(f, in, g.c_str(), "baseline", 0, 1);
      fuzz_attr(f, in, g.c_str(), "weight_space_skipped", {"SAEs of different widths"});
      fuzz_attr(f, in, (g + "/lap").c_str(), "mean_cos_decoder", {"0.5"});
    }
}

void results_columns(hid_t f, FuzzedDataProvider& in) {
  if (in.ConsumeBool()) return;
  group(f, "/summary_columns");
  static const std::vector<std::string> objects = {"", "lap", "/saes/{a}", "/saes/{b}", "/nope", "lap/x", "{a}"};
  std::vector<std::string> name, object, attribute;
  for (int64_t c = in.ConsumeIntegralInRange<int64_t>(0, 3); c > 0; --c) {
    name.push_back(in.ConsumeRandomLengthString(12));
    object.push_back(objects[in.ConsumeIntegralInRange<size_t>(0, objects.size() - 1)]);
    attribute.push_back(in.ConsumeBool() ? "mean_cos_decoder" : in.ConsumeRandomLengthString(6));
  }
  strings_attr(f, "/summary_columns", "name", name);
  strings_attr(f, "/summary_columns", "object", object);
  if (in.ConsumeBool()) strings_attr(f, "/summary_columns", "attribute", attribute);
  else fuzz_attr(f, in, "/summary_columns", "attribute", {"x"});
  const size_t descriptions = in.ConsumeBool() ? name.size() : in.ConsumeIntegralInRange<size_t>(0, 3);
  strings_attr(f, "/summary_columns", "description", std::vector<std::string>(descriptions, "d"));
}

void write_results(hid_t f, FuzzedDataProvider& in) {
  string_attr(f, "/", "format", "universae-results");
  int_attr(f, in, "/", "format_version", 1, 1);
  int_attr(f, in, "/", "complete", 0, 1);
  for (const char* a : {"n_ranks", "fingerprint", "git_sha"}) fuzz_attr(f, in, "/", a, {"1"});
  static const std::vector<std::string> pool = {"seed0", "seed1", "random_init"};
  std::vector<std::string> names;
  for (int64_t n = in.ConsumeIntegralInRange<int64_t>(0, 3); n > 0; --n)
    names.push_back(in.ConsumeBool() ? pool[in.ConsumeIntegralInRange<size_t>(0, 2)] : "s" + std::to_string(names.size()));
  for (const auto& name : names) {
    const std::string g = "/saes/" + name;
    in.ConsumeIntegralInRange<int>(0, 7) == 0 ? fuzz_dataset(f, in, g, 2, 1) : group(f, g);
    int_attr(f, in, g.c_str(), "index", -1, 3);
    for (const char* a : {"architecture", "n_latents", "d_in", "k", "seed", "path", "activations_source"})
      fuzz_attr(f, in, g.c_str(), a, {"topk"});
  }
  if (in.ConsumeBool()) {
    group(f, "/activations");
    int_attr(f, in, "/activations", "n_tokens", 0, 9);
    int_attr(f, in, "/activations", "stores", 0, 2);
    for (const char* a : {"source", "input", "hookpoint"}) text_attr(f, in, "/activations", a, {"store.h5", ""});
  }
  results_pairs(f, in, names);
  results_columns(f, in);
}

// A fingerprint as train writes it (TOML), with fuzzed sizes, or any text.
std::string fingerprint(FuzzedDataProvider& in) {
  if (in.ConsumeIntegralInRange<int>(0, 3) == 0) return in.ConsumeRandomLengthString(48);
  auto number = [&] {
    if (in.ConsumeIntegralInRange<int>(0, 3) == 0) return in.ConsumeRandomLengthString(6);
    return std::to_string(in.ConsumeIntegralInRange<int64_t>(-1, 12));
  };
  return "# universae train fingerprint\n[data]\nhookpoint = 'blocks.0.hook_resid_post'\n    [data.synthetic]\n    d = 8\n"
         "[sae]\narchitecture = 'topk'\nk = " + number() + "\n[train]\nbatch_size = " + number() + "\ntokens = " + number() + "\n";
}

void write_checkpoint(hid_t f, FuzzedDataProvider& in) {
  string_attr(f, "/", "format", "universae-checkpoint");
  int_attr(f, in, "/", "step", -1, 6);
  int_attr(f, in, "/", "adam_step", 0, 6);
  int_attr(f, in, "/", "complete", 0, 1);
  fuzz_attr(f, in, "/", "input_scale", {"1"});
  text_attr(f, in, "/", "fingerprint", {fingerprint(in)});
  const int64_t n = in.ConsumeIntegralInRange<int64_t>(0, 6), d = in.ConsumeIntegralInRange<int64_t>(0, 4);
  for (int64_t s = in.ConsumeIntegralInRange<int64_t>(0, 3); s > 0; --s) {
    const bool numbered = in.ConsumeIntegralInRange<int>(0, 3) > 0;
    const std::string g =
        "/seed" + (numbered ? std::to_string(in.ConsumeIntegralInRange<int>(0, 3)) : in.ConsumeRandomLengthString(4));
    if (in.ConsumeIntegralInRange<int>(0, 7) == 0) {
      fuzz_dataset(f, in, g, n, d);
      continue;
    }
    group(f, g);
    for (const char* t : {"/W_dec", "/W_enc", "/b_dec", "/history"})
      if (in.ConsumeIntegralInRange<int>(0, 7) > 0) fuzz_dataset(f, in, g + t, n, d);
    if (in.ConsumeBool()) group(f, g + "/adam_m"), group(f, g + "/adam_v");
    fuzz_attr(f, in, g.c_str(), "batchtopk_threshold", {});
  }
}

// Any other HDF5 file: a format attribute, and a few nested groups and datasets.
void write_other(hid_t f, FuzzedDataProvider& in) {
  fuzz_attr(f, in, "/", "format", {"universae-sae", "something-else", ""});
  for (const char* name : {"/a", "/g/b", "/g/h/c"})
    if (in.ConsumeBool()) fuzz_dataset(f, in, name, 2, 2);
  if (H5Lexists(f, "/g", H5P_DEFAULT) > 0) fuzz_attr(f, in, "/g", "note", {"x"});
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  universae::fuzz::world();
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const int kind = in.ConsumeIntegralInRange<int>(0, 4);
  const std::string path = universae::fuzz::scratch_path("inspect.h5");
  const hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (f < 0) std::abort();
  switch (kind) {
    case 0: write_store(f, in); break;
    case 1: write_sae(f, in); break;
    case 2: write_results(f, in); break;
    case 3: write_checkpoint(f, in); break;
    default: write_other(f, in);
  }
  H5Fclose(f);
  try {
    universae::io::describe_file(universae::fuzz::world(), path);
  } catch (const universae::UsageError&) {
  }
  return 0;
}
