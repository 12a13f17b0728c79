// Hugging Face model directories: the input is config.json, written beside a copy of a real tiny
// checkpoint's model.safetensors (stas/tiny-random-llama-2: hidden 16, 2 layers, vocab 3000). Every
// key is read with its type and range checked, so the directory loads, or config.json (or the shape
// it implies for a tensor) is refused with a UsageError naming the file and the key.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "core/error.hpp"
#include "fuzz/fuzz_common.hpp"
#include "lm/model.hpp"

namespace {

// The model directory; model.safetensors copied in once per process (UNIVERSAE_FUZZ_HF_MODEL: CMake).
const std::string& model_dir() {
  static const std::string dir = [] {
    const std::string d = universae::fuzz::scratch_path("hf_model");
    std::filesystem::create_directory(d);
    std::error_code error;
    std::filesystem::copy_file(UNIVERSAE_FUZZ_HF_MODEL, d + "/model.safetensors", std::filesystem::copy_options::overwrite_existing,
                               error);
    if (error) {
      std::fprintf(stderr, "fuzz_hf_config: cannot copy %s: %s\n", UNIVERSAE_FUZZ_HF_MODEL, error.message().c_str());
      std::exit(1);
    }
    return d;
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  model_dir();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  universae::fuzz::write_input("hf_model/config.json", data, size);
  try {
    const universae::lm::LanguageModel model(model_dir());
  } catch (const universae::UsageError&) {
  }
  return 0;
}
