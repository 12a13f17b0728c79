// What an SAE is, without its weights (no ATen): the header of the SAE file format (io/sae_file.hpp),
// also what results files record of every compared SAE.
#pragma once

#include <cstdint>
#include <string>

#include "core/architecture.hpp"
#include "io/provenance.hpp"

namespace universae::io {

inline constexpr const char* kSaeFormat = "universae-sae";
inline constexpr int64_t kSaeFormatVersion = 1;

struct SaeHeader {
  std::string path;
  core::Architecture architecture{};
  int64_t d_in = 0;
  int64_t n_latents = 0;
  int64_t k = 0;  // 0 when the architecture has none
  int64_t seed = 0;
  std::string hookpoint;
  Provenance provenance;  // the model, tokenizer and store it was trained on (a foreign SAE: its weights file)
  bool apply_b_dec_to_input = true;
  std::string config;
  bool has_frequency = false;
};

}  // namespace universae::io
