// SAEs in the layouts of the two public SAE libraries, read and written as universae SaeWeights so
// `compare`, `train` (train.init_from) and `convert` take them directly:
//
//  sparsify (EleutherAI): a directory with sae.safetensors + cfg.json. encoder.weight [F, d],
//    encoder.bias [F], W_dec [F, d], b_dec [d]; cfg d_in, k, num_latents (0: expansion_factor × d_in).
//    TopK of relu(W_enc (x − b_dec) + b_enc). A run directory holds one such directory per hookpoint
//    (named after it, e.g. layers.3), possibly under one directory per seed.
//  SAELens: a directory with sae_weights.safetensors + cfg.json. W_enc [d, F], b_enc [F] (gated:
//    b_gate, r_mag, b_mag), W_dec [F, d], b_dec [d], threshold [F] (jumprelu); cfg architecture
//    standard | topk | jumprelu | gated, d_in, d_sae, k, apply_b_dec_to_input, metadata {model_name,
//    hook_name} (v6), or the flat configs before 6.0 (hook_name/hook_point, activation_fn_str,
//    activation_fn_kwargs.k).
//
// What the file came with is kept in the universae SAE file's string attributes source_format,
// source_dtype, source_config (cfg.json verbatim) and source_metadata (the safetensors metadata), so
// converting back gives the same tensors bit for bit and the same cfg.json.
//
// No MPI: every rank that needs an SAE reads it itself (the files are read-only inputs).
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <string>
#include <vector>

#include "core/sharding.hpp"
#include "io/sae_file.hpp"

namespace universae::io {

enum class SaeFormat { kUniversae, kSparsify, kSaeLens };

const char* sae_format_name(SaeFormat f);  // "universae", "sparsify", "saelens"
// UsageError naming `what` (an option or key) for anything else.
SaeFormat parse_sae_format(const std::string& name, const std::string& what);

// What `path` is: a universae SAE file (an HDF5 file whose format attribute says so), a sparsify or a
// SAELens SAE directory (cfg.json beside sae.safetensors or sae_weights.safetensors). nullopt for
// anything else (a missing path, a run directory holding several SAEs, another file).
std::optional<SaeFormat> detect_sae_format(const std::string& path);

struct FoundSae {
  std::string path;      // the SAE file or directory
  std::string relative;  // its path below the directory searched, e.g. "seed1/layers.3" or "saes/seed0.h5"
  SaeFormat format;
};
// Every SAE below `dir` (a sparsify run directory, a directory of universae SAE files), in natural
// order (layers.2 before layers.10). Does not descend into an SAE directory.
std::vector<FoundSae> find_saes(const std::string& dir);

// The header of a sparsify or SAELens SAE: cfg.json and the safetensors header only, every tensor's
// presence, shape and dtype checked. UsageError naming the file, key or tensor.
SaeHeader read_foreign_header(const std::string& path, SaeFormat format);
// Rows of "W_enc" or "W_dec" in universae orientation (latent rows), float32.
at::Tensor read_foreign_rows(const std::string& path, SaeFormat format, const std::string& dataset, core::Range rows);
// The whole SAE as universae weights (float32), with the source_* string attributes.
SaeWeights read_foreign_sae(const std::string& path, SaeFormat format);

// Writes `sae` as a sparsify or SAELens directory at `dir`: built in `dir`.partial, then renamed.
// `dtype` ("F32", "F16", "BF16"; empty: the SAE's source_dtype if it has one, else F32). Refuses (UsageError)
// what the target cannot hold: sparsify is TopK only; a batchtopk SAE goes to SAELens as jumprelu with
// its inference threshold. `force` replaces an existing `dir`. Returns notes for the user (folds, mappings).
std::vector<std::string> write_foreign_sae(const std::string& dir, SaeFormat format, const SaeWeights& sae,
                                           const std::string& dtype, bool force);

}  // namespace universae::io
