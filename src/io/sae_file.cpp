#include "io/sae_file.hpp"

#include <ATen/Functions.h>

#include <filesystem>

#include "core/error.hpp"
#include "io/foreign_sae.hpp"
#include "io/h5.hpp"
#include "io/output.hpp"
#include "io/schema.hpp"
#include "io/text_file.hpp"

namespace universae::io {
namespace {

void check_shape(const File& f, const std::string& name, const std::vector<int64_t>& expected) {
  if (!f.exists("/" + name)) throw UsageError(f.path() + ": missing dataset /" + name);
  const auto shape = f.shape("/" + name);
  if (shape != expected)
    throw UsageError(f.path() + ": dataset /" + name + " has shape " + shape_text(shape) + ", expected " +
                     shape_text(expected));
}

SaeHeader parse_header(const File& f) {
  SaeHeader h;
  h.path = f.path();
  if (!f.has_attr("/", "format"))
    throw UsageError(f.path() + ": not a universae SAE file (no 'format' attribute)");
  const std::string format = f.read_attr_string("/", "format");
  if (format != kSaeFormat)
    throw UsageError(f.path() + ": format is '" + format + "', expected '" + kSaeFormat + "'");
  const int64_t version = f.read_attr_int("/", "format_version");
  if (version != kSaeFormatVersion)
    throw UsageError(f.path() + ": format_version " + std::to_string(version) + " is not supported (this build reads 1)");
  if (!f.has_attr("/", "complete") || !f.read_attr_bool("/", "complete"))
    throw UsageError(f.path() + ": incomplete SAE file (the job writing it did not finish)");
  const std::string architecture = f.read_attr_string("/", "architecture");
  if (const auto a = core::choice_from<core::Architecture>(architecture)) {
    h.architecture = *a;
  } else {
    throw UsageError(f.path() + ": unknown architecture '" + architecture + "' (known: " +
                     core::choices<core::Architecture>().list() + ")");
  }
  h.d_in = f.read_attr_int("/", "d_in");
  h.n_latents = f.read_attr_int("/", "n_latents");
  if (h.d_in < 1 || h.n_latents < 1)
    throw UsageError(f.path() + ": d_in and n_latents must be >= 1");
  h.k = f.has_attr("/", "k") ? f.read_attr_int("/", "k") : 0;
  h.seed = f.has_attr("/", "seed") ? f.read_attr_int("/", "seed") : 0;
  h.hookpoint = f.has_attr("/", "hookpoint") ? f.read_attr_string("/", "hookpoint") : "";
  h.provenance = read_provenance(f, "/");
  h.apply_b_dec_to_input = f.has_attr("/", "apply_b_dec_to_input") ? f.read_attr_bool("/", "apply_b_dec_to_input") : true;
  h.config = f.has_attr("/", "config") ? f.read_attr_string("/", "config") : "";
  check_shape(f, "W_enc", {h.n_latents, h.d_in});
  check_shape(f, "b_enc", {h.n_latents});
  check_shape(f, "W_dec", {h.n_latents, h.d_in});
  check_shape(f, "b_dec", {h.d_in});
  if (core::has_top_k(h.architecture) && h.k < 1)
    throw UsageError(f.path() + ": architecture " + architecture + " needs the attribute k >= 1");
  if (h.architecture == core::Architecture::kJumpRelu) check_shape(f, "threshold", {h.n_latents});
  if (h.architecture == core::Architecture::kGated) check_shape(f, "r_mag", {h.n_latents}), check_shape(f, "b_mag", {h.n_latents});
  // read_sae reads each of these whenever it is there (fuzz_inspect: an [n, d] /r_mag in a topk SAE overflowed).
  for (const char* name : {"threshold", "r_mag", "b_mag"})
    if (f.exists(std::string("/") + name)) check_shape(f, name, {h.n_latents});
  h.has_frequency = f.exists("/frequency");
  if (h.has_frequency) check_shape(f, "frequency", {h.n_latents});
  return h;
}

// A sparsify or SAELens directory (io/foreign_sae.hpp), or nullopt for a file (read as a universae
// SAE file, which says itself what is wrong with it). Only directories are looked into: a file costs
// no extra open on this path, which every SAE read takes.
std::optional<SaeFormat> foreign_format(const std::string& path) {
  if (!std::filesystem::is_directory(path)) return std::nullopt;
  if (const auto format = detect_sae_format(path)) return format;
  throw UsageError(path + ": a directory, but not an SAE (no cfg.json beside sae.safetensors or "
                   "sae_weights.safetensors); name the SAE directories inside it");
}

}  // namespace

SaeHeader read_sae_header(const parallel::Comm& comm, const std::string& path) {
  SaeHeader header;
  std::string error;
  std::optional<SaeFormat> foreign;
  try {
    foreign = foreign_format(path);
    if (foreign) header = read_foreign_header(path, *foreign);
  } catch (const UsageError& e) {
    error = e.what();
  }
  parallel::agree_on_error(comm, error);
  if (foreign) return header;
  File f = File::open_read(comm, path);
  try {
    header = parse_header(f);
  } catch (const UsageError& e) {
    error = e.what();
  }
  parallel::agree_on_error(comm, error);
  return header;
}

at::Tensor read_sae_rows(const parallel::Comm& comm, const std::string& path, const std::string& dataset,
                         core::Range rows) {
  if (const auto foreign = foreign_format(path)) return read_foreign_rows(path, *foreign, dataset, rows);
  File f = File::open_read(comm, path);
  const auto shape = f.shape("/" + dataset);
  at::Tensor out = at::empty({rows.size(), shape.at(1)}, at::kFloat);
  f.read_rows("/" + dataset, rows, out.data_ptr<float>());
  return out;
}

SaeWeights read_sae(const parallel::Comm& comm, const std::string& path) {
  SaeWeights sae;
  sae.header = read_sae_header(comm, path);
  if (const auto foreign = foreign_format(path)) return read_foreign_sae(path, *foreign);
  const auto& h = sae.header;
  File f = File::open_read(comm, path);
  const core::Range all{0, h.n_latents};
  sae.W_enc = at::empty({h.n_latents, h.d_in}, at::kFloat);
  sae.W_dec = at::empty({h.n_latents, h.d_in}, at::kFloat);
  sae.b_enc = at::empty({h.n_latents}, at::kFloat);
  sae.b_dec = at::empty({h.d_in}, at::kFloat);
  f.read_rows("/W_enc", all, sae.W_enc.data_ptr<float>());
  f.read_rows("/W_dec", all, sae.W_dec.data_ptr<float>());
  f.read_rows("/b_enc", all, sae.b_enc.data_ptr<float>());
  f.read_rows("/b_dec", {0, h.d_in}, sae.b_dec.data_ptr<float>());
  if (h.has_frequency) {
    sae.frequency = at::empty({h.n_latents}, at::kDouble);
    f.read_rows("/frequency", all, sae.frequency.data_ptr<double>());
  }
  auto optional_vector = [&](const char* name, at::Tensor& out) {
    if (!f.exists(name)) return;
    out = at::empty({h.n_latents}, at::kFloat);
    f.read_rows(name, all, out.data_ptr<float>());
  };
  // Where a converted SAE came from (io/foreign_sae.hpp), so converting back restores it exactly.
  for (const char* name : {"source_format", "source_path", "source_dtype", "source_config", "source_metadata"})
    if (f.has_attr("/", name)) sae.string_attrs.emplace_back(name, f.read_attr_string("/", name));
  optional_vector("/threshold", sae.threshold);
  optional_vector("/r_mag", sae.r_mag);
  optional_vector("/b_mag", sae.b_mag);
  return sae;
}

void write_sae(const parallel::Comm& comm, const std::string& path, const SaeWeights& sae) {
  const auto& h = sae.header;
  Provenance provenance = h.provenance;
  hash_source(comm, provenance);  // converted from a sparsify/SAELens directory: its weights file
  Pending pending(comm, path);
  {
    File f = File::create(comm, pending.partial());
    const core::Range mine = core::shard_range(h.n_latents, comm.rank(), comm.size());
    auto write_matrix = [&](const char* name, const at::Tensor& t, int64_t cols) {
      const at::Tensor c = t.to(at::kFloat).contiguous();
      f.create_dataset(name, DType::kFloat32, cols ? std::vector<int64_t>{h.n_latents, cols}
                                                   : std::vector<int64_t>{h.n_latents});
      f.write_rows(name, mine, c.data_ptr<float>() + mine.begin * (cols ? cols : 1));
    };
    write_matrix("/W_enc", sae.W_enc, h.d_in);
    write_matrix("/b_enc", sae.b_enc, 0);
    write_matrix("/W_dec", sae.W_dec, h.d_in);
    const at::Tensor b_dec = sae.b_dec.to(at::kFloat).contiguous();
    f.create_dataset("/b_dec", DType::kFloat32, {h.d_in});
    f.write_rows("/b_dec", comm.is_root() ? core::Range{0, h.d_in} : core::Range{0, 0}, b_dec.data_ptr<float>());
    if (sae.threshold.defined()) write_matrix("/threshold", sae.threshold, 0);
    if (sae.r_mag.defined()) write_matrix("/r_mag", sae.r_mag, 0);
    if (sae.b_mag.defined()) write_matrix("/b_mag", sae.b_mag, 0);
    if (sae.frequency.defined()) {
      const at::Tensor freq = sae.frequency.to(at::kDouble).contiguous();
      f.create_dataset("/frequency", DType::kFloat64, {h.n_latents});
      f.write_rows("/frequency", mine, freq.data_ptr<double>() + mine.begin);
    }
    if (sae.train_metrics.defined()) {
      const at::Tensor m = sae.train_metrics.to(at::kDouble).contiguous();
      f.create_group("/train");
      f.create_dataset("/train/metrics", DType::kFloat64, {m.size(0), m.size(1)});
      f.write_rows("/train/metrics", comm.is_root() ? core::Range{0, m.size(0)} : core::Range{0, 0}, m.data_ptr<double>());
      f.write_strings("/train/columns", sae.train_columns);
    }
    f.write_attr("/", "format", kSaeFormat);
    f.write_attr("/", "format_version", kSaeFormatVersion);
    f.write_attr("/", "architecture", core::name_of(h.architecture));
    f.write_attr("/", "d_in", h.d_in);
    f.write_attr("/", "n_latents", h.n_latents);
    if (h.k > 0) f.write_attr("/", "k", h.k);
    f.write_attr("/", "seed", h.seed);
    f.write_attr("/", "hookpoint", h.hookpoint);
    write_provenance(f, "/", provenance);
    f.write_attr("/", "apply_b_dec_to_input", h.apply_b_dec_to_input);
    f.write_attr("/", "config", h.config);
    for (const auto& [name, value] : sae.metrics) f.write_attr("/", name, value);
    for (const auto& [name, value] : sae.string_attrs) f.write_attr("/", name, value);
    describe_objects(f, SchemaKind::kSae);
    f.write_attr("/", "complete", true);  // last: a file without it is never read as finished
  }
  pending.commit();
}

core::SaeEncoderWeights encoder_weights(const SaeWeights& w) {
  core::SaeEncoderWeights e;
  e.architecture = w.header.architecture;
  e.k = w.header.k;
  e.apply_b_dec_to_input = w.header.apply_b_dec_to_input;
  e.W_enc = w.W_enc, e.b_enc = w.b_enc, e.b_dec = w.b_dec;
  e.threshold = w.threshold, e.r_mag = w.r_mag, e.b_mag = w.b_mag;
  return e;
}

}  // namespace universae::io
