// The SAE file, format "universae-sae" version 1 (DESIGN.md §4): one SAE per HDF5 file,
// weight rows = latents, written collectively (each rank its block of latent rows), published
// atomically, `complete = true` written last.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/sae_encode.hpp"
#include "core/sharding.hpp"
#include "io/sae_header.hpp"
#include "parallel/comm.hpp"

namespace universae::io {

struct SaeWeights {
  SaeHeader header;
  at::Tensor W_enc;      // (n_latents, d_in) float32
  at::Tensor b_enc;      // (n_latents)
  at::Tensor W_dec;      // (n_latents, d_in), row i = direction of latent i
  at::Tensor b_dec;      // (d_in)
  at::Tensor frequency;  // (n_latents) float64, optional: fraction of tokens a latent fires on
  at::Tensor threshold;  // (n_latents), jumprelu (and batchtopk's inference threshold) only
  at::Tensor r_mag, b_mag;  // (n_latents), gated only
  // Training metrics over time: /train/metrics (rows, columns) float64 and /train/columns.
  at::Tensor train_metrics;
  std::vector<std::string> train_columns;
  // Extra scalar root attributes (ground_truth_mmcs, fvu, l0, ...).
  std::vector<std::pair<std::string, double>> metrics;
  std::vector<std::pair<std::string, std::string>> string_attrs;
};

// What encoding needs of an SAE (core/sae_encode.hpp): its architecture, k and encoder tensors (shared, not copied).
core::SaeEncoderWeights encoder_weights(const SaeWeights& sae);

// Collective. Checks format, version, completeness, datasets and shapes; any problem is a
// UsageError on every rank naming the file and what is wrong.
SaeHeader read_sae_header(const parallel::Comm& comm, const std::string& path);

// Collective. Rows [rows.begin, rows.end) of a (n_latents, d_in) dataset ("W_enc" or "W_dec").
at::Tensor read_sae_rows(const parallel::Comm& comm, const std::string& path, const std::string& dataset,
                         core::Range rows);

// Collective: every rank gets the whole SAE.
SaeWeights read_sae(const parallel::Comm& comm, const std::string& path);

// Collective: every rank holds the same weights and writes its block of latent rows.
void write_sae(const parallel::Comm& comm, const std::string& path, const SaeWeights& sae);

}  // namespace universae::io
