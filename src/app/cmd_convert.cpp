// universae convert IN OUT: SAEs between the universae SAE file and the sparsify and SAELens layouts
// (io/foreign_sae.hpp), one SAE or a whole run directory.
#include <CLI/CLI.hpp>

#include <filesystem>

#include "app/commands.hpp"
#include "core/error.hpp"
#include "io/foreign_sae.hpp"
#include "io/h5.hpp"
#include "io/output.hpp"
#include "io/sae_file.hpp"
#include "parallel/comm.hpp"
#include "parallel/log.hpp"

namespace universae::app {
namespace fs = std::filesystem;

namespace {

struct ConvertOptions {
  std::string in, out, from, to, dtype;
  bool force = false;
};

// "seed0.h5" → "seed0": a universae file and the directory it becomes share a name.
std::string without_h5(const std::string& relative) {
  const fs::path p(relative);
  return p.extension() == ".h5" ? (p.parent_path() / p.stem()).generic_string() : relative;
}

int convert(const parallel::Comm& comm, const ConvertOptions& o) {
  // The SAEs to convert: IN itself, or every SAE below a run directory.
  std::vector<io::FoundSae> inputs;
  bool single = false;
  if (const auto format = io::detect_sae_format(o.in)) {
    inputs.push_back({o.in, fs::path(o.in).filename().string(), *format});
    single = true;
  } else if (fs::is_directory(o.in)) {
    inputs = io::find_saes(o.in);
    if (inputs.empty())
      throw UsageError(o.in + ": no SAEs found below it (universae SAE files, or sparsify/SAELens directories with cfg.json)");
  } else if (!fs::exists(o.in)) {
    throw UsageError(o.in + ": no such file or directory");
  } else {
    throw UsageError(o.in + ": not an SAE (a universae SAE file, or a sparsify/SAELens directory with cfg.json)");
  }
  if (!o.from.empty()) {
    const io::SaeFormat from = io::parse_sae_format(o.from, "--from");
    for (const auto& s : inputs)
      if (s.format != from)
        throw UsageError(s.path + ": is a " + std::string(io::sae_format_name(s.format)) + " SAE, not " + o.from);
  }
  io::SaeFormat to = io::SaeFormat::kUniversae;
  if (!o.to.empty()) {
    to = io::parse_sae_format(o.to, "--to");
  } else if (inputs.front().format == io::SaeFormat::kUniversae) {
    throw UsageError("convert: " + o.in + " holds universae SAEs; say --to sparsify or --to saelens");
  }
  std::vector<std::string> outputs;
  for (const auto& s : inputs) {
    if (single) {
      outputs.push_back(o.out);
    } else {
      const std::string stem = without_h5(s.relative);
      outputs.push_back((fs::path(o.out) / (to == io::SaeFormat::kUniversae ? stem + ".h5" : stem)).string());
    }
  }
  // Everything is checked before anything is written.
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i].format == to)
      throw UsageError(inputs[i].path + ": already a " + std::string(io::sae_format_name(to)) + " SAE");
    if (!o.force && fs::exists(outputs[i])) throw UsageError(outputs[i] + ": already exists (use --force to replace it)");
    (void)io::read_sae_header(comm, inputs[i].path);
  }
  for (size_t i = 0; i < inputs.size(); ++i) {
    io::SaeWeights sae = io::read_sae(comm, inputs[i].path);
    const auto& h = sae.header;
    std::vector<std::string> notes;
    if (to == io::SaeFormat::kUniversae) {
      const std::string parent = fs::path(outputs[i]).parent_path().string();
      if (!parent.empty()) io::ensure_directory(comm, parent);
      io::write_sae(comm, outputs[i], sae);
    } else {
      std::string error;
      if (comm.is_root()) {
        try {
          notes = io::write_foreign_sae(outputs[i], to, sae, o.dtype, o.force);
        } catch (const UsageError& e) {
          error = e.what();
        }
      }
      parallel::agree_on_error(comm, error);
    }
    log::info("convert: {} {} ({} d_in={} n={}{}) → {} {}", io::sae_format_name(inputs[i].format), inputs[i].path,
              core::name_of(h.architecture), h.d_in, h.n_latents, h.k > 0 ? " k=" + std::to_string(h.k) : "", io::sae_format_name(to),
              outputs[i]);
    for (const auto& note : notes) log::info("convert: note: {}", note);
  }
  return 0;
}

}  // namespace

void add_convert(CLI::App& app, Action& action) {
  auto opts = std::make_shared<ConvertOptions>();
  CLI::App* cmd = app.add_subcommand(
      "convert",
      "Convert SAEs between the universae SAE file (HDF5) and the layouts of sparsify (a directory with\n"
      "sae.safetensors + cfg.json) and SAELens (sae_weights.safetensors + cfg.json, v6 or older flat configs).\n"
      "IN may be one SAE or a run directory holding several (e.g. one directory per hookpoint and seed): then\n"
      "OUT is a directory and every SAE keeps its relative path (layers.3/ <-> layers.3.h5). Converting back\n"
      "gives the same tensors bit for bit and the same cfg.json. compare and train.init_from read sparsify and\n"
      "SAELens directories directly; convert is for keeping or sharing them.\n"
      "  universae convert runs/x/sparsify/layers.3 layers3.h5\n"
      "  universae convert runs/q/saes/seed0.h5 out/seed0 --to saelens --dtype BF16");
  cmd->add_option("in", opts->in, "an SAE (file or directory) or a directory of SAEs")->required();
  cmd->add_option("out", opts->out, "where the converted SAE(s) go (not overwritten without --force)")->required();
  cmd->add_option("--from", opts->from, "the input's format, checked: universae, sparsify or saelens (default: detected)");
  cmd->add_option("--to", opts->to, "universae, sparsify or saelens (default universae; needed for universae input)");
  cmd->add_option("--dtype", opts->dtype,
                  "safetensors dtype when writing sparsify/SAELens: F32, F16 or BF16 (default: the dtype the SAE was "
                  "converted from, else F32)");
  cmd->add_flag("--force", opts->force, "replace outputs that exist");
  cmd->callback([opts, &action] {
    action = [opts](const parallel::Comm& comm) { return convert(comm, *opts); };
  });
}

}  // namespace universae::app
