// safetensors files: the header is checked before any tensor data is touched; every tensor the
// header admits can then be read. Anything else is a UsageError naming the file.
#include <ATen/core/Tensor.h>

#include "core/error.hpp"
#include "fuzz/fuzz_common.hpp"
#include "io/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = universae::fuzz::write_input("sae.safetensors", data, size);
  try {
    const universae::io::safetensors::Reader reader(path);
    for (const auto& t : reader.tensors()) {
      try {
        reader.read(t.name);
      } catch (const universae::UsageError&) {  // e.g. an integer tensor: named, not read
      }
    }
  } catch (const universae::UsageError&) {
  }
  return 0;
}
