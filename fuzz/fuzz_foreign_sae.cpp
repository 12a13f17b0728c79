// sparsify and SAELens SAE directories (cfg.json beside a safetensors file): byte 0 picks the library,
// bytes 1-2 the length of cfg.json, then cfg.json, then the safetensors file. The directory either
// reads (header, then weights) or is a UsageError naming the file and the key or tensor.
#include <filesystem>
#include <string>

#include "core/error.hpp"
#include "fuzz/fuzz_common.hpp"
#include "io/sae_file.hpp"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  universae::fuzz::world();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  const bool saelens = data[0] & 1;
  const size_t cfg_size = std::min<size_t>(size - 3, static_cast<size_t>(data[1]) | static_cast<size_t>(data[2]) << 8);
  const std::string dir = universae::fuzz::scratch_path("sae");
  std::filesystem::remove_all(dir);
  std::filesystem::create_directory(dir);
  universae::fuzz::write_input("sae/cfg.json", data + 3, cfg_size);
  universae::fuzz::write_input(saelens ? "sae/sae_weights.safetensors" : "sae/sae.safetensors", data + 3 + cfg_size,
                               size - 3 - cfg_size);
  const auto& comm = universae::fuzz::world();
  try {
    universae::io::read_sae_header(comm, dir);
    universae::io::read_sae(comm, dir);
  } catch (const universae::UsageError&) {
  }
  return 0;
}
