// llama2.c checkpoints: the header's sizes are checked against the file before anything is
// allocated, so a lying header is a UsageError, never a huge allocation or an out-of-bounds read.
#include "core/error.hpp"
#include "fuzz/fuzz_common.hpp"
#include "lm/model.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = universae::fuzz::write_input("model.bin", data, size);
  try {
    const universae::lm::LanguageModel model(path);
  } catch (const universae::UsageError&) {
  }
  return 0;
}
